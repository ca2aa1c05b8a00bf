#!/usr/bin/python3
"""A TLS proxy in front of the AWS emulator that misbehaves the way a faulty S3 (or a middlebox)
might, for cli.backup_hostile. Requests go through unchanged (their SigV4 signature names the
proxy's host, which the emulator checks as sent); answers are changed by the mode in MODEFILE,
read at each request:

  ""               pass through
  range-shift      the first ranged GET past offset 0 answers its range but the first 16 bytes, with
                   an honest Content-Range (a store that served other bytes than asked)
  range-short      a ranged GET answers the first half of its range (legal HTTP: a short 206)
  complete-500     CompleteMultipartUpload answers 500 InternalError, not carried out
  complete-500-once  the same for the first CompleteMultipartUpload only
  no-list          a missing key answers 403 AccessDenied, as S3 does to a caller without
                   s3:ListBucket
  complete-drop    CompleteMultipartUpload (and a single PutObject) is carried out, then the
                   connection is closed with no answer

Usage: s3_fault_proxy.py UPSTREAM_PORT CERT KEY MODEFILE PORTFILE
"""
import http.client
import http.server
import re
import socketserver
import ssl
import sys

UP_PORT, CERT, KEY, MODEFILE, PORTFILE = sys.argv[1:6]
CTX_UP = ssl.create_default_context()
CTX_UP.check_hostname = False
CTX_UP.verify_mode = ssl.CERT_NONE


def mode():
    try:
        with open(MODEFILE) as f:
            return f.read().strip()
    except OSError:
        return ""


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    shifted = False  # range-shift: once, the first ranged GET past offset 0
    failed = False  # complete-500-once: done

    def log_message(self, *a):
        pass

    def _forward(self, headers):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        c = http.client.HTTPSConnection("127.0.0.1", int(UP_PORT), context=CTX_UP, timeout=60)
        c.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            c.putheader(k, v)
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def _answer(self, r, data, extra=None):
        self.send_response(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() in ("content-length", "connection", "transfer-encoding",
                             "content-range"):
                continue
            self.send_header(k, v)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", r.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _do(self):
        m = mode()
        headers = list(self.headers.items())
        rng = self.headers.get("Range")
        got = re.match(r"bytes=(\d+)-(\d+)$", rng or "")
        if self.command == "GET" and got and m in ("range-shift", "range-short"):
            # the Range header is signed: the asked range is fetched, and part of it answered
            r, data = self._forward(headers)
            cr = re.match(r"bytes (\d+)-(\d+)/(\d+)$", r.getheader("Content-Range") or "")
            if r.status != 206 or not cr or len(data) < 32:
                self._answer(r, data, {"Content-Range": cr.group(0)} if cr else None)
                return
            a, b, total = (int(x) for x in cr.groups())
            if m == "range-shift" and a > 0 and not H.shifted:
                a, data = a + 16, data[16:]
                H.shifted = True
            elif m == "range-short":
                data = data[: len(data) // 2]
                b = a + len(data) - 1
            self._answer(r, data, {"Content-Range": "bytes %d-%d/%d" % (a, b, total)})
            return
        once = m == "complete-500-once" and not H.failed
        if (m == "complete-500" or once) and self.command == "POST" and "uploadId=" in self.path:
            H.failed = True
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            body = (b"<Error><Code>InternalError</Code><Message>We encountered an internal "
                    b"error. Please try again.</Message></Error>")
            self.send_response(500)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        r, data = self._forward(headers)
        if m == "no-list" and r.status == 404 and self.command in ("HEAD", "GET"):
            # S3 to a caller without s3:ListBucket: a missing key is 403, not 404
            body = b"" if self.command == "HEAD" else (
                b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        complete = self.command == "POST" and "uploadId=" in self.path
        single = self.command == "PUT" and "uploadId=" not in self.path and "If-None-Match" in self.headers
        if m == "complete-drop" and (complete or single) and r.status == 200:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        cr = r.getheader("Content-Range")
        self._answer(r, data, {"Content-Range": cr} if cr else None)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _do


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = S(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os

os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
