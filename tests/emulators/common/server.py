"""The emulators' HTTPS server and the Service class every emulator subclasses.

An emulator is a Service: it names itself, answers its routes, shapes its errors and registers its
own control endpoints; serve() runs it on loopback over TLS with the test CA's certificate, one
thread per connection, until SIGTERM or SIGINT. README.md has the whole contract.
"""

import http.server
import json
import os
import signal
import socketserver
import ssl
import threading

from .control import ControlEndpoints
from .faults import Faults
from .handler import MAX_BODY, Handler


class Service:
    """One emulated service. Subclasses set the class attributes and define route() and error();
    the other hooks have defaults."""

    name = "emulator"              # prefix of --log-requests lines
    server_version = "emulator"    # the Server header
    fault_scope = "api"            # name of the default fault scope (in_fault_scope's paths)
    corrupt_b64_paths = ()         # base64 members the bad_base64 corruption spoils
    head_allowed = False           # HEAD requests reach route() (else 501, as http.server does)

    def __init__(self, opts):
        """opts: the parsed command line, with at least add_server_args()'s options."""
        self.opts = opts
        self.faults = Faults(self.fault_scope, self.in_fault_scope)
        if opts.faults:
            self.faults.configure(json.loads(opts.faults))
        self.control = ControlEndpoints(self)
        self.port = None

    def bound(self, port):
        """Called once the listening port is known, before the first request."""
        self.port = port

    def health(self):
        """The answer of GET /_emulator/health."""
        return {"status": "ok", "port": self.port}

    def in_fault_scope(self, path):
        """True when path belongs to the default fault scope."""
        return True

    def route(self, req):
        """(status, payload[, headers]) of a service request (handler.Request): payload is a
        dict or list (sent as JSON), bytes, or None (no body). Raises a handler.ServiceError for
        an error answer."""
        raise NotImplementedError

    def operation(self, req):
        """The operation name of req for forbidden_ops and corrupt_ops, or None (never corrupted)."""
        return None

    def error(self, kind):
        """The handler.ServiceError answering kind: "429", "500" or "503" (injected; the handler
        adds Retry-After to 429 and 503), "too_large" (a body over the limit), "bad_length" (an
        unreadable Content-Length) or "internal" (an emulator bug)."""
        raise NotImplementedError

    def standard_headers(self, path, headers=None):
        """Headers every answer to path carries, besides Content-Type and Content-Length;
        headers: the request's headers (e.g. for a request id the service echoes)."""
        return {}

    def body_limit(self, method, path, headers):
        """The largest request body (bytes) accepted for this request; a larger one is answered
        error("too_large")."""
        return MAX_BODY

    def redact_log(self, line):
        """A --log-requests line as it may be printed (e.g. without secrets in a query)."""
        return line

    def request_seen(self, method, path, headers):
        """Called once per service request (never for /_emulator/...), before its body is read
        and before any fault: for the service's own counters."""

    def answered(self, path, status):
        """Called with the status of every answer to a service request (faults included)."""


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def add_server_args(ap):
    """The command-line options every emulator has (argparse parser ap)."""
    ap.add_argument("--cert", required=True, help="server certificate PEM (chain allowed)")
    ap.add_argument("--key", required=True, help="server private key PEM")
    ap.add_argument("--state-dir", required=True, help="directory holding all persistent state")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = ephemeral (default)")
    ap.add_argument("--faults", default=None, help="fault config as JSON (same as POST /_emulator/faults)")
    ap.add_argument("--ready-file", default=None, help="also write the port to this file")
    ap.add_argument("--log-requests", action="store_true")


def serve(service):
    """Runs service until SIGTERM or SIGINT; prints "READY <port>" (and writes --ready-file)
    once it accepts connections. Returns the exit status."""
    opts = service.opts
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(opts.cert, opts.key)
    srv = Server((opts.host, opts.port), Handler)
    srv.ssl_ctx = ctx
    srv.service = service
    service.bound(srv.server_address[1])

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if opts.ready_file:
        tmp = opts.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % service.port)
        os.replace(tmp, opts.ready_file)
    print("READY %d" % service.port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0
