"""The one HTTP request handler of every emulator: the TLS handshake in the worker thread,
request bodies (Content-Length or chunked, at most MAX_BODY unless the service allows more),
answers carrying the service's standard headers (a body may be streamed from a file: FileBody),
dropped connections (RST), the control endpoints, and fault injection around the service's
routes, including corruption of its success answers.

What is the service's own comes from the Service object (server.py): its routes, its error shape,
its standard headers and the names of its operations.
"""

import http.server
import json
import socket
import ssl
import struct
import sys
import time
import traceback
import urllib.parse

from .control import PREFIX as CONTROL_PREFIX
from .faults import JSON_TYPE, corrupt_body

MAX_BODY = 1 << 20


class ServiceError(Exception):
    """An error answer in the emulated service's shape: a subclass sets status (and headers,
    content_type) and defines body(); retry_after False: an injected 429 or 503 goes without the
    Retry-After header (a service that never sends one)."""

    status = 500
    content_type = JSON_TYPE
    retry_after = True

    def __init__(self, message, headers=None):
        super().__init__(message)
        self.headers = headers or {}

    def body(self):
        raise NotImplementedError


class FileBody:
    """A body sent from an open binary file: length bytes from offset (the rest of the file when
    length is None). The handler streams it and closes the file; a HEAD answer sends only its
    Content-Length."""

    def __init__(self, fileobj, offset=0, length=None):
        self.fileobj = fileobj
        self.offset = offset
        if length is None:
            fileobj.seek(0, 2)
            length = fileobj.tell() - offset
        self.length = length

    def write_to(self, wfile, chunk=1 << 20):
        self.fileobj.seek(self.offset)
        left = self.length
        while left > 0:
            data = self.fileobj.read(min(chunk, left))
            if not data:
                break
            wfile.write(data)
            left -= len(data)

    def close(self):
        try:
            self.fileobj.close()
        except OSError:
            pass


class DropConnection(Exception):
    """The request cannot be read: the connection closes without an answer."""


class Request:
    """One service request as an emulator's routes see it."""

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path            # without the query string
        self.query = query          # name -> [values]
        self.headers = headers
        self.body = body            # bytes

    @property
    def segs(self):
        """The path's segments after the leading slash ("/keys/k/" gives ["keys", "k", ""])."""
        return self.path.split("/")[1:]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 120  # idle keep-alive timeout

    @property
    def service(self):
        return self.server.service

    @property
    def server_version(self):   # the Server header (with sys_version)
        return self.service.server_version

    # ---- connection setup: TLS handshake in the worker thread ----
    def setup(self):
        self.tls_ok = True
        self.dropped = False
        self.request.settimeout(self.timeout)
        try:
            # headers and body go out as two TLS records: without this, Nagle holds the second
            # until the client's delayed ACK (40 ms per answer on Linux)
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        try:
            self.request = self.server.ssl_ctx.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            # not TLS (or a failed handshake): close without an HTTP answer
            self.tls_ok = False
            self.rfile = self.wfile = None
            return
        super().setup()

    def handle(self):
        if not self.tls_ok:
            return
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError):
            pass

    def finish(self):
        if self.tls_ok:
            try:
                super().finish()
            except OSError:
                pass
        # the TLS socket replaced the raw one in setup(), so close it here;
        # with SO_LINGER 0 (see drop()) the close sends a RST
        try:
            if not self.dropped:
                self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.request.close()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.service.opts.log_requests:
            line = self.service.redact_log(fmt % args)
            sys.stderr.write("%s %s - %s\n" % (self.service.name, self.address_string(), line))

    # ---- plumbing ----
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        if self.service.head_allowed:
            self.dispatch("HEAD")
        else:   # what BaseHTTPRequestHandler answers a method it has no do_ for
            self.send_error(501, "Unsupported method ('HEAD')")

    def read_body(self):
        limit = self.service.body_limit(self.command, self.path_only, self.headers)
        te = self.headers.get("Transfer-Encoding", "").lower()
        if te == "chunked":
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise DropConnection()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > limit:
                    raise self.service.error("too_large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise self.service.error("bad_length")
        if n < 0 or n > limit:
            self.close_connection = True
            raise self.service.error("too_large")
        return self.rfile.read(n)

    def send(self, status, body=None, headers=None, content_type=JSON_TYPE):
        """Answers status with body (a dict or list sent as JSON, bytes, a FileBody, or None: no
        body); content_type None sends no Content-Type header (nor does a 204 without a body), and
        a Content-Type among headers replaces it (a header whose value is None is not sent:
        {"Content-Type": None} answers without one)."""
        stream = None
        if isinstance(body, FileBody):
            stream, data = body, b""
        elif isinstance(body, (dict, list)):
            data = json.dumps(body, separators=(",", ":")).encode()
        elif body is None:
            data = b""
        else:
            data = body
        try:
            length = stream.length if stream is not None else len(data)
            if headers and any(k.lower() == "content-type" for k in headers):
                content_type = None
            self.send_response(status)
            if content_type is not None and (status != 204 or length):
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            if not self.path_only.startswith(CONTROL_PREFIX):
                self.service.answered(self.path_only, status)
            for k, v in self.service.standard_headers(self.path_only, self.headers).items():
                self.send_header(k, v)
            for k, v in (headers or {}).items():
                if v is not None:
                    self.send_header(k, v)
            for k, v in getattr(self, "extra_headers", {}).items():
                self.send_header(k, v)
            self.extra_headers = {}
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                if stream is not None:
                    stream.write_to(self.wfile)
                else:
                    self.wfile.write(data)
        finally:
            if stream is not None:
                stream.close()

    def send_error_answer(self, e, headers=None):
        self.send(e.status, e.body(), headers if headers is not None else e.headers,
                  content_type=e.content_type)

    def drop(self):
        """Close the socket without a response (RST, like a dead peer)."""
        self.close_connection = True
        self.dropped = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    # ---- dispatch ----
    def dispatch(self, method):
        parsed = urllib.parse.urlsplit(self.path)
        self.path_only = parsed.path
        if not self.path_only.startswith(CONTROL_PREFIX):
            self.service.request_seen(method, self.path_only, self.headers)
        try:
            query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        except ValueError:
            query = {}
        try:
            body = self.read_body()
        except ServiceError as e:
            self.send_error_answer(e)
            return
        except (DropConnection, ValueError):
            self.drop()
            return
        try:
            self.serve_request(Request(method, self.path_only, query, self.headers, body))
        except ServiceError as e:
            self.send_error_answer(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # an emulator bug: answer like the service would, and log it
            traceback.print_exc()
            try:
                self.send_error_answer(self.service.error("internal"))
            except OSError:
                self.close_connection = True

    def serve_request(self, req):
        svc = self.service
        if req.path.startswith(CONTROL_PREFIX):
            return self.send(*svc.control.handle(req.method, req.path, req.body))
        latency, action = svc.faults.decide(req.path)
        pad = svc.faults.header_pad() if svc.faults.in_scope_of(req.path) else 0
        if pad:  # one oversized header line on this answer (the header_pad fault)
            self.extra_headers = {"x-emulator-pad": "x" * pad}
        if latency:
            time.sleep(latency)
        if action == "drop":
            return self.drop()
        if action != "ok":
            e = svc.error(action)
            headers = dict(e.headers)
            if action in ("429", "503") and e.retry_after:
                headers["Retry-After"] = str(svc.faults.retry_after())
            return self.send_error_answer(e, headers)
        answer = svc.route(req)
        status, payload = answer[0], answer[1]
        headers = answer[2] if len(answer) > 2 else None
        kind = None
        if 200 <= status < 300 and payload is not None:
            kind = svc.faults.take_corrupt(svc.operation(req))
        if kind is None:
            return self.send(status, payload, headers)
        ctype, data = corrupt_body(kind, payload, svc.corrupt_b64_paths)
        try:
            self.send(status, data, headers, content_type=ctype)
        except (OSError, ssl.SSLError):  # a client that stops reading an oversize body
            self.close_connection = True
