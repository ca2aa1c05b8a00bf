"""The instance and container credential endpoints of one region: plain HTTP on loopback, each on
its own port, as an EC2 instance and an ECS task see them.

IMDS (IMDSv2 only): PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1..21600,
else 400; a PUT carrying X-Forwarded-For is refused 403, as IMDS refuses proxied token requests)
gives a token; every GET needs X-aws-ec2-metadata-token (401 without it or once it expired):
/latest/meta-data/iam/security-credentials/ (the role's name), .../ROLE (Code, LastUpdated, Type
AWS-HMAC, AccessKeyId, SecretAccessKey, Token, Expiration), /latest/meta-data/placement/region,
.../placement/availability-zone, /latest/meta-data/instance-id and
/latest/dynamic/instance-identity/document. The credentials are the instance role's temporary
credentials, renewed once less than half their lifetime is left (imds_lifetime).

Container credentials: GET on the configured path with Authorization equal to the configured
token (401 without one, 403 with another) gives {AccessKeyId, SecretAccessKey, Token, Expiration,
RoleArn} (container_lifetime).

Requests are counted per path; nothing here logs a token or a key.
"""

import datetime
import http.server
import json
import os
import secrets
import socketserver
import sys
import threading
import time

from .identity import iso8601

MAX_TTL = 21600
INSTANCE_ID = "i-0keyplane0test00"
NOT_FOUND_HTML = (b'<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD'
                  b' XHTML 1.0 Transitional//EN"\n\t"http://www.w3.org/TR/xhtml1/DTD/'
                  b'xhtml1-transitional.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml"'
                  b' xml:lang="en" lang="en">\n <head>\n  <title>404 - Not Found</title>\n </head>\n'
                  b' <body>\n  <h1>404 - Not Found</h1>\n </body>\n</html>\n')


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"
    sys_version = ""
    timeout = 30

    def log_message(self, fmt, *args):
        if self.server.owner.log:
            sys.stderr.write("%s %s\n" % (self.server.owner.name, fmt % args))

    def answer(self, status, body=b"", ctype="text/plain", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def serve(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        owner = self.server.owner
        owner.count(path)
        status, body, ctype, headers = owner.handle(method, path, self.headers)
        self.answer(status, body, ctype, headers)

    def do_GET(self):
        self.serve("GET")

    def do_PUT(self):
        self.serve("PUT")

    def do_POST(self):
        self.serve("POST")

    def do_HEAD(self):
        self.serve("HEAD")


class _Endpoint:
    """A plain-HTTP listener on 127.0.0.1 run by a daemon thread."""

    name = "endpoint"

    def __init__(self, port, log):
        self.log = log
        self.lock = threading.Lock()
        self.requests = {}
        self.srv = _Server(("127.0.0.1", port), _Handler)
        self.srv.owner = self
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.2},
                         name=self.name, daemon=True).start()

    def count(self, path):
        with self.lock:
            self.requests[path] = self.requests.get(path, 0) + 1

    def stats(self):
        with self.lock:
            return dict(self.requests)


class Imds(_Endpoint):
    name = "imds"

    def __init__(self, port, log, region, account, identity, role_name):
        self.region, self.account, self.identity = region, account, identity
        self.role_name = role_name
        self.role_arn = identity.role_arn(role_name)
        identity.set_role(self.role_arn)
        self.lifetime = 3600
        self.tokens = {}             # token -> expiry (monotonic)
        self.creds = None
        self.creds_lock = threading.Lock()
        super().__init__(port, log)

    def current_credentials(self):
        """The instance role's credentials, renewed when less than half their lifetime is left."""
        with self.creds_lock:
            now = time.time()
            c = self.creds
            if c is None or c["expiration"] - now < (c["expiration"] - c["issued"]) / 2.0:
                c = self.identity.issue(self.role_arn, INSTANCE_ID, self.lifetime, "imds")
                self.creds = c
            return c

    def _token_ok(self, headers):
        tok = headers.get("X-aws-ec2-metadata-token")
        if not tok:
            return False
        with self.lock:
            exp = self.tokens.get(tok)
            if exp is None or exp <= time.monotonic():
                self.tokens.pop(tok, None)
                return False
            return True

    def handle(self, method, path, headers):
        if path == "/latest/api/token":
            if method != "PUT":
                return 405, b"", "text/plain", {"Allow": "OPTIONS, PUT"}
            if headers.get("X-Forwarded-For") is not None:
                return 403, b"", "text/plain", {}
            ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            try:
                n = int(ttl)
            except (TypeError, ValueError):
                return 400, b"", "text/plain", {}
            if not 1 <= n <= MAX_TTL:
                return 400, b"", "text/plain", {}
            tok = "AQAEA" + secrets.token_urlsafe(40)
            with self.lock:
                now = time.monotonic()
                self.tokens = {t: e for t, e in self.tokens.items() if e > now}
                self.tokens[tok] = now + n
            return 200, tok.encode(), "text/plain", {"X-aws-ec2-metadata-token-ttl-seconds": str(n)}
        if method not in ("GET", "HEAD"):
            return 405, b"", "text/plain", {"Allow": "OPTIONS, GET, HEAD"}
        if not self._token_ok(headers):
            return 401, b"", "text/plain", {}
        return self.metadata(path)

    def metadata(self, path):
        creds_dir = "/latest/meta-data/iam/security-credentials/"
        if path == creds_dir:
            return 200, self.role_name.encode(), "text/plain", {}
        if path == creds_dir + self.role_name:
            c = self.current_credentials()
            doc = {"Code": "Success", "LastUpdated": iso8601(c["issued"]), "Type": "AWS-HMAC",
                   "AccessKeyId": c["akid"], "SecretAccessKey": c["secret"], "Token": c["token"],
                   "Expiration": iso8601(c["expiration"])}
            return 200, json.dumps(doc, indent=2).encode(), "text/plain", {}
        simple = {"/latest/meta-data/placement/region": self.region,
                  "/latest/meta-data/placement/availability-zone": self.region + "a",
                  "/latest/meta-data/instance-id": INSTANCE_ID,
                  "/latest/meta-data/iam/info": json.dumps({
                      "Code": "Success", "LastUpdated": iso8601(time.time()),
                      "InstanceProfileArn": "arn:aws:iam::%s:instance-profile/%s"
                                            % (self.account, self.role_name),
                      "InstanceProfileId": "AIPAKEYPLANETEST0000"}, indent=2)}
        if path in simple:
            return 200, simple[path].encode(), "text/plain", {}
        if path == "/latest/dynamic/instance-identity/document":
            doc = {"accountId": self.account, "architecture": "x86_64",
                   "availabilityZone": self.region + "a", "imageId": "ami-0keyplane000test",
                   "instanceId": INSTANCE_ID, "instanceType": "t3.micro",
                   "pendingTime": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "privateIp": "10.0.0.10", "region": self.region, "version": "2017-09-30"}
            return 200, json.dumps(doc, indent=2).encode(), "text/plain", {}
        return 404, NOT_FOUND_HTML, "text/html", {}


class ContainerCredentials(_Endpoint):
    name = "container-credentials"

    def __init__(self, port, log, identity, role_name, path, token):
        self.identity = identity
        self.role_arn = identity.role_arn(role_name)
        identity.set_role(self.role_arn)
        self.path = path
        self.token = token
        self.lifetime = 3600
        self.creds = None
        self.creds_lock = threading.Lock()
        super().__init__(port, log)

    def handle(self, method, path, headers):
        if path != self.path:
            return 404, b'{"code":"NotFound","message":"not found"}', "application/json", {}
        if method != "GET":
            return 405, b"", "text/plain", {}
        if self.token:
            got = headers.get("Authorization")
            if got is None:
                return 401, b'{"code":"Unauthorized","message":"missing authorization"}', \
                    "application/json", {}
            if not secrets.compare_digest(got.encode(), self.token.encode()):
                return 403, b'{"code":"AccessDenied","message":"invalid authorization token"}', \
                    "application/json", {}
        with self.creds_lock:
            now = time.time()
            c = self.creds
            if c is None or c["expiration"] - now < (c["expiration"] - c["issued"]) / 2.0:
                c = self.creds = self.identity.issue(self.role_arn, "ecs-task-" + os.urandom(4).hex(),
                                                     self.lifetime, "container")
        doc = {"RoleArn": self.role_arn, "AccessKeyId": c["akid"], "SecretAccessKey": c["secret"],
               "Token": c["token"], "Expiration": iso8601(c["expiration"])}
        return 200, json.dumps(doc).encode(), "application/json", {}
