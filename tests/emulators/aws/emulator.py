#!/usr/bin/python3
"""Strict AWS emulator: one process per region, serving S3 (REST-XML), Secrets Manager and KMS
(JSON 1.1) and STS (query) on one HTTPS port, plus plain-HTTP IMDS and container-credential
endpoints on ports of their own.

Runs on Debian 12's /usr/bin/python3 with the standard library, python3-cryptography and
python3-botocore (the independent SigV4 verifier). README.md next to this file describes the
behaviour and where each fact comes from. This file is the entry: the command line and the
Region service, which decides each request's service (X-Amz-Target, a form Action, else S3),
verifies its signature (sigv4.py) for the signing service that decision names, checks the
faults' forbidden operations and hands it to the service's module.

    emulator.py --cert server.pem --key server-key.pem --state-dir DIR --region us-east-1 \
                [--credentials AKID:SECRET ...] [--peer REGION=URL ...] [--imds-port auto] ...

Prints "READY <port>" on stdout once it accepts connections.
"""

import argparse
import os
import re
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.server import Service, add_server_args, serve  # noqa: E402

from aws import errors, jsonproto  # noqa: E402
from aws.auth_errors import auth_error  # noqa: E402
from aws.errors import JsonError, StsError  # noqa: E402
from aws.identity import Identity  # noqa: E402
from aws.imds import ContainerCredentials, Imds  # noqa: E402
from aws.kms import Kms  # noqa: E402
from aws.replication import Replication  # noqa: E402
from aws.s3_api import S3  # noqa: E402
from aws.secrets_api import SecretsApi  # noqa: E402
from aws.secrets_store import SecretStore  # noqa: E402
from aws.sigv4 import AuthFailure, Verifier  # noqa: E402
from aws.sts import UNSIGNED_ACTIONS, Sts, form_params  # noqa: E402

DEFAULT_CREDENTIALS = "AKIDKEYPLANETEST:kp-aws-secret"
DEFAULT_ACCOUNT = "123456789012"
JSON_PREFIXES = {"secretsmanager": "secretsmanager", "TrentService": "kms"}
FORM_TYPE = "application/x-www-form-urlencoded"
SMALL_BODY = 1 << 20
LAST_REJECTIONS = 10
REDACT_RE = re.compile(r"((?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|"
                       r"WebIdentityToken|SessionToken|Token)=)[^&\s\"]*", re.IGNORECASE)
CONFIG_FIELDS = ("sts_min_duration", "imds_lifetime", "container_lifetime", "replication_retry",
                 "kms_import_token_lifetime", "kms_wrapping_ring", "kms_alias_flip")


def family_guess(method, path, headers, query_has_action=False):
    """The service a request is for, from what is known before its body: X-Amz-Target names a
    JSON 1.1 service, a form POST (or an Action query) to / is STS, anything else S3."""
    target = headers.get("X-Amz-Target")
    if target:
        return JSON_PREFIXES.get(target.split(".", 1)[0], "json")
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if path == "/" and ((method == "POST" and ctype == FORM_TYPE) or query_has_action):
        return "sts"
    return "s3"


class Region(Service):
    """One AWS region: S3, Secrets Manager, KMS and STS on one HTTPS port."""

    name = "aws-emu"
    fault_scope = "api"
    head_allowed = True
    corrupt_b64_paths = (("SecretBinary",), ("CiphertextBlob",), ("Plaintext",))

    def __init__(self, opts):
        super().__init__(opts)
        state = os.path.abspath(opts.state_dir)
        os.makedirs(state, exist_ok=True)
        self.region, self.account = opts.region, opts.account
        static = dict(c.split(":", 1) for c in (opts.credentials or [DEFAULT_CREDENTIALS]))
        self.identity = Identity(state, self.account, static)
        for r in opts.role:
            self.identity.set_role(r, principals=["*"])
        for spec in opts.web_identity_token:
            role, _, tok = spec.partition("=")
            self.identity.set_role(role, tokens=[tok])
        self.verifier = Verifier(self.region, self.identity)
        self.kms = Kms(state, self.region, self.account)
        self.secrets_store = SecretStore(state, self.region, self.account)
        peers = dict(p.split("=", 1) for p in opts.peer)
        ca = opts.ca or os.path.join(os.path.dirname(os.path.abspath(opts.cert)), "ca.pem")
        self.replication = Replication(self.secrets_store, self.kms, self.region, state, peers, ca,
                                       opts.replication_retry)
        self.secrets = SecretsApi(self.secrets_store, self.kms, self.replication)
        self.sts = Sts(self.identity)
        self.s3 = S3(state, self.region, self.account, self.kms, opts.s3_base_host,
                     lambda: self.port)
        self.imds = self.container = None
        if opts.imds_port is not None:
            self.imds = Imds(opts.imds_port, opts.log_requests, self.region, self.account,
                             self.identity, opts.imds_role)
            self.imds.lifetime = opts.imds_lifetime
        if opts.container_port is not None:
            self.container = ContainerCredentials(opts.container_port, opts.log_requests,
                                                  self.identity, opts.container_role,
                                                  opts.container_path, opts.container_token)
            self.container.lifetime = opts.container_lifetime
        self.counts_lock = threading.Lock()
        self.counts = {"requests_by_service": {}, "signature_rejected": 0,
                       "signature_rejected_by_reason": {}, "signature_rejected_last": [],
                       "unknown_members": 0, "unknown_members_last": []}
        c = self.control
        c.register("stats", ("GET",), self.stats)
        c.register("config", ("GET",), lambda req: self.config())
        c.register("config", ("POST",), self.set_config)
        c.register("credentials", ("GET",), lambda req: self.identity.counts())
        c.register("credentials", ("POST",), self.add_credentials)
        c.register("credentials/expire", ("POST",), self.expire_credentials)
        c.register("roles", ("GET",), lambda req: self.identity.roles_snapshot())
        c.register("roles", ("POST",), self.set_roles)
        c.register("peers", ("GET",), self.replication.get_peers)
        c.register("peers", ("POST",), self.replication.set_peers)
        c.register("replica", ("POST",), self.replication.receive)
        self.replication.start()

    # ---- the Service hooks ----
    def health(self):
        out = dict(super().health(), region=self.region, account=self.account,
                   url="https://127.0.0.1:%d" % self.port, s3_base_host=self.opts.s3_base_host)
        if self.imds is not None:
            out["imds_port"] = self.imds.port
        if self.container is not None:
            out["container_port"] = self.container.port
            out["container_path"] = self.container.path
        return out

    @property
    def server_version(self):
        return "AmazonS3" if errors.ctx().family == "s3" else "Server"

    def body_limit(self, method, path, headers):
        if family_guess(method, path, headers) == "s3":
            return self.opts.s3_max_body
        return SMALL_BODY

    def redact_log(self, line):
        return REDACT_RE.sub(r"\1REDACTED", line)

    def request_seen(self, method, path, headers):
        fam = family_guess(method, path, headers)
        errors.begin(method, "kms" if fam == "json" else fam)
        with self.counts_lock:
            r = self.counts["requests_by_service"]
            r[fam] = r.get(fam, 0) + 1

    def error(self, kind):
        return errors.fault_error(kind, errors.ctx().family)

    def standard_headers(self, path, headers=None):
        c = errors.ctx()
        if c.family == "s3":
            return {"x-amz-request-id": c.s3_request_id, "x-amz-id-2": c.host_id}
        return {"x-amzn-RequestId": c.request_id}

    def operation(self, req):
        """JSON services' operations may be corrupted (corrupt_ops); S3's and STS's never."""
        c = errors.ctx()
        return c.op if c.family in ("kms", "secretsmanager") else None

    # ---- routing ----
    def route(self, req):
        c = errors.ctx()
        pairs = [(k, v) for k, vs in req.query.items() for v in vs]
        fam = family_guess(req.method, req.path, req.headers, "Action" in req.query)
        c.family = "kms" if fam == "json" else fam
        if fam == "json":
            raise JsonError(400, errors.CORAL + "UnknownOperationException", "")
        if fam == "sts":
            return self.route_sts(req, pairs)
        if fam in ("kms", "secretsmanager"):
            return self.route_json(req, fam, pairs)
        return self.route_s3(req, pairs)

    def authenticate(self, req, family, pairs, resource=None):
        try:
            return self.verifier.verify(req, family, pairs)
        except AuthFailure as fail:
            err = auth_error(family, fail, resource)
            with self.counts_lock:
                n = self.counts
                n["signature_rejected"] += 1
                by = n["signature_rejected_by_reason"]
                by[fail.kind] = by.get(fail.kind, 0) + 1
                n["signature_rejected_last"] = (n["signature_rejected_last"] + [{
                    "time": round(time.time(), 3), "service": family, "kind": fail.kind,
                    "code": err.code, "reason": fail.reason}])[-LAST_REJECTIONS:]
            raise err

    def check_forbidden(self, family, op, principal, resource):
        if self.faults.forbidden(op):
            raise errors.access_denied(family, op, principal.arn if principal else "anonymous",
                                       resource, self.faults.forbidden_message())

    def route_json(self, req, family, pairs):
        c = errors.ctx()
        api = self.kms if family == "kms" else self.secrets
        prefix = "TrentService" if family == "kms" else "secretsmanager"
        principal = self.authenticate(req, family, pairs)
        op, params = jsonproto.parse_request(req, prefix)
        entry = api.OPERATIONS.get(op)
        if entry is None:
            raise JsonError(400, errors.CORAL + "UnknownOperationException", "")
        c.op = "%s:%s" % (family, op)
        func, spec = entry
        resource = params.get("SecretId") or params.get("KeyId") or params.get("Name") or "*"
        self.check_forbidden(family, c.op, principal, resource if isinstance(resource, str) else "*")
        params, unknown = jsonproto.validate(family, params, spec)
        if unknown:
            with self.counts_lock:
                self.counts["unknown_members"] += len(unknown)
                last = self.counts["unknown_members_last"] + ["%s:%s" % (c.op, u) for u in unknown]
                self.counts["unknown_members_last"] = last[-LAST_REJECTIONS:]
        result = func(params, principal)
        headers = {"Content-Type": errors.JSON_TYPE}
        return 200, (result if result is not None else b""), headers

    def route_sts(self, req, pairs):
        c = errors.ctx()
        if req.method == "POST":
            ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != FORM_TYPE:
                raise StsError(400, "MalformedInput", "The request body must be"
                               " application/x-www-form-urlencoded")
            try:
                body_pairs = urllib.parse.parse_qsl(req.body.decode("utf-8"), keep_blank_values=True)
            except (UnicodeDecodeError, ValueError):
                raise StsError(400, "MalformedInput", "The request body is not form-encoded")
        elif req.method == "GET":
            body_pairs = []
        else:
            raise StsError(405, "InvalidAction", "STS takes GET or POST")
        params = form_params(pairs + body_pairs)
        action = self.sts.action_of(params)
        c.op = "sts:" + action
        principal = None
        if not (action in UNSIGNED_ACTIONS and req.headers.get("Authorization") is None):
            principal = self.authenticate(req, "sts", pairs)
        self.check_forbidden("sts", c.op, principal, params.get("RoleArn", "*"))
        if action == "AssumeRole" or action == "GetCallerIdentity":
            if principal is None:
                raise StsError(403, "MissingAuthenticationToken", "Request is missing Authentication"
                               " Token")
        body = self.sts.call(action, params, principal)
        return 200, body, {"Content-Type": "text/xml"}

    def route_s3(self, req, pairs):
        c = errors.ctx()
        bucket, key, _ = self.s3.address(req)
        resource = "/" + (bucket or "") + ("/" + key if key else "")
        principal = self.authenticate(req, "s3", pairs, resource)
        op, bucket, key = self.s3.operation(req)
        c.op = "s3:" + op
        self.check_forbidden("s3", c.op, principal, "arn:aws:s3:::" + resource[1:])
        answer = self.s3.call(op, req, bucket, key)
        status, payload = answer[0], answer[1]
        headers = dict(answer[2]) if len(answer) > 2 and answer[2] else {}
        if payload is None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = None           # S3 answers an empty body without one
        return status, payload, headers

    # ---- its own control endpoints ----
    def stats(self, req):
        out = self.faults.snapshot()["stats"]
        with self.counts_lock:
            for k, v in self.counts.items():
                out[k] = v.copy() if isinstance(v, (dict, list)) else v
        with self.replication.counts_lock:
            out.update(self.replication.counts)
        out["credentials"] = self.identity.counts()
        if self.imds is not None:
            out["imds_requests"] = self.imds.stats()
        if self.container is not None:
            out["container_requests"] = self.container.stats()
        return out

    def config(self):
        return {"sts_min_duration": self.sts.min_duration,
                "imds_lifetime": self.imds.lifetime if self.imds else None,
                "container_lifetime": self.container.lifetime if self.container else None,
                "replication_retry": self.replication.retry_interval,
                "kms_import_token_lifetime": self.kms.imports.lifetime,
                "kms_wrapping_ring": self.kms.imports.ring,
                "kms_alias_flip": self.kms.alias_flip}

    def set_config(self, req):
        """POST /_emulator/config: sts_min_duration (1..900: AssumeRole's smallest
        DurationSeconds, for expiry tests), imds_lifetime and container_lifetime (seconds of
        the credentials they issue next), replication_retry (seconds between retries),
        kms_import_token_lifetime (seconds an import token is valid), kms_wrapping_ring (1..4:
        how many wrapping keys per spec GetParametersForImport hands out in turn)."""
        for k in req:
            if k not in CONFIG_FIELDS:
                raise ValueError("unknown config field: %s" % k)

        def num(k, lo, hi, integer=True):
            v = req[k]
            if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
                raise ValueError("%s must be a number" % k)
            if not lo <= v <= hi:
                raise ValueError("%s must be in [%s, %s]" % (k, lo, hi))
            return v
        if "sts_min_duration" in req:
            self.sts.min_duration = num("sts_min_duration", 1, 900)
        if "imds_lifetime" in req:
            if self.imds is None:
                raise ValueError("IMDS is off (--imds-port)")
            self.imds.lifetime = num("imds_lifetime", 1, 43200)
            self.imds.creds = None
        if "container_lifetime" in req:
            if self.container is None:
                raise ValueError("the container endpoint is off (--container-port)")
            self.container.lifetime = num("container_lifetime", 1, 43200)
            self.container.creds = None
        if "replication_retry" in req:
            self.replication.retry_interval = num("replication_retry", 0.05, 60, integer=False)
        if "kms_import_token_lifetime" in req:       # the next import tokens' validity (AWS: 24 h)
            self.kms.imports.lifetime = num("kms_import_token_lifetime", 1, 86400)
        if "kms_wrapping_ring" in req:               # wrapping keys per spec, in turn
            self.kms.imports.set_ring(num("kms_wrapping_ring", 1, 4))
        if "kms_alias_flip" in req:                  # a concurrent UpdateAlias, at a set moment
            self.kms.set_alias_flip(req["kms_alias_flip"])
        return self.config()

    def add_credentials(self, req):
        """POST /_emulator/credentials {AKID: SECRET, ...}: more long-term keys."""
        if not isinstance(req, dict) or not all(isinstance(v, str) for v in req.values()):
            raise ValueError("credentials: {access key id: secret}")
        for akid, secret in req.items():
            self.identity.add_static(akid, secret)
        return self.identity.counts()

    def expire_credentials(self, req):
        """POST /_emulator/credentials/expire {"access_key_id": ID} (or {}: all temporary
        credentials) makes them expired now."""
        akid = req.get("access_key_id")
        if akid is not None and not isinstance(akid, str):
            raise ValueError("access_key_id must be a string")
        return {"expired": self.identity.expire(akid)}

    def set_roles(self, req):
        """POST /_emulator/roles {ROLE_NAME_OR_ARN: {"principals": [...], "web_identity_tokens":
        [...], "max_session_duration": N}}: merged into the roles' configuration."""
        if not isinstance(req, dict):
            raise ValueError("roles: {role: {principals, web_identity_tokens, max_session_duration}}")
        for role, cfg in req.items():
            if not isinstance(cfg, dict) or set(cfg) - {"principals", "web_identity_tokens",
                                                        "max_session_duration"}:
                raise ValueError("role %s: principals, web_identity_tokens, max_session_duration" % role)
            self.identity.set_role(role, cfg.get("principals"), cfg.get("web_identity_tokens"),
                                   cfg.get("max_session_duration"))
        return self.identity.roles_snapshot()


def port_option(value):
    """--imds-port and --container-port: 0 (off), auto (an ephemeral port) or a port."""
    if value == "auto":
        return 0
    n = int(value)
    if n == 0:
        return None
    if not 0 < n < 65536:
        raise argparse.ArgumentTypeError("a port, 0 (off) or auto")
    return n


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Strict AWS emulator (S3, Secrets Manager, KMS, STS,"
                                             " IMDS) for one region")
    add_server_args(ap)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--account", default=DEFAULT_ACCOUNT)
    ap.add_argument("--credentials", action="append", default=[],
                    help="ACCESS_KEY_ID:SECRET of a long-term key (repeatable; default %s)"
                         % DEFAULT_CREDENTIALS)
    ap.add_argument("--role", action="append", default=[],
                    help="a role (name or ARN) every principal of the account may AssumeRole")
    ap.add_argument("--web-identity-token", action="append", default=[],
                    help="ROLE=TOKEN accepted by AssumeRoleWithWebIdentity for ROLE (repeatable)")
    ap.add_argument("--peer", action="append", default=[],
                    help="REGION=https://127.0.0.1:PORT of another region's emulator (replication)")
    ap.add_argument("--ca", default=None, help="CA of the peers' certificates (default: ca.pem"
                                               " next to --cert)")
    ap.add_argument("--replication-retry", type=float, default=1.0)
    ap.add_argument("--imds-port", type=port_option, default=None,
                    help="IMDS on 127.0.0.1 over plain HTTP: auto, a port, or 0 (off, the default)")
    ap.add_argument("--imds-role", default="keyplane-instance-role")
    ap.add_argument("--imds-lifetime", type=int, default=3600)
    ap.add_argument("--container-port", type=port_option, default=None,
                    help="the container credentials endpoint: auto, a port, or 0 (off)")
    ap.add_argument("--container-path", default="/creds")
    ap.add_argument("--container-token", default="kp-container-token",
                    help="the Authorization value it requires ('' : none)")
    ap.add_argument("--container-role", default="keyplane-task-role")
    ap.add_argument("--container-lifetime", type=int, default=3600)
    ap.add_argument("--s3-base-host", default="s3.localhost",
                    help="virtual-host addressing: Host BUCKET.<this> names a bucket")
    ap.add_argument("--s3-max-body", type=int, default=64 << 20,
                    help="largest S3 request body (bytes; default 64 MiB)")
    a = ap.parse_args(argv)
    for c in a.credentials:
        if ":" not in c or not c.split(":", 1)[0] or not c.split(":", 1)[1]:
            ap.error("--credentials takes ACCESS_KEY_ID:SECRET")
    for p in a.peer:
        if "=" not in p or not p.split("=", 1)[1].startswith("https://"):
            ap.error("--peer takes REGION=https://HOST:PORT")
    for w in a.web_identity_token:
        if "=" not in w or not w.split("=", 1)[1]:
            ap.error("--web-identity-token takes ROLE=TOKEN")
    return a


def main(argv=None):
    return serve(Region(parse_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
