"""The Python client of the emulators' control endpoints (/_emulator/...): the one way ctl
scripts (emuctl.py) and the emulators' own tests talk to them. The C tests have theirs in the
test support library.
"""

import http.client
import json
import ssl

from .control import PREFIX


class ControlError(Exception):
    """A control request that did not answer 200."""


class ControlClient:
    """Control requests to the emulator on 127.0.0.1:port, trusting the CA in cafile. Each
    request uses its own connection."""

    def __init__(self, port, cafile, host="127.0.0.1", timeout=20):
        self.port, self.host, self.timeout = port, host, timeout
        self.ctx = ssl.create_default_context(cafile=cafile)

    def exchange(self, method, name, body=None):
        """(status, answer text) of METHOD /_emulator/NAME; body is a dict or list (sent as
        JSON), str or bytes (sent as they are), or None."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                           timeout=self.timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, PREFIX + name, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def call(self, method, name, body=None):
        """(status, answer JSON or None) of METHOD /_emulator/NAME, whatever the status."""
        status, text = self.exchange(method, name, body)
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, None

    def ok(self, method, name, body=None):
        """The answer JSON of METHOD /_emulator/NAME; raises ControlError unless it is a 200."""
        status, text = self.exchange(method, name, body)
        if status != 200:
            raise ControlError("%s %s%s: HTTP %d %s" % (method, PREFIX, name, status, text.strip()))
        return json.loads(text)

    def set_faults(self, config):
        """Replaces the fault configuration (a dict or its JSON text); returns the new one."""
        return self.ok("PUT", "faults", config)

    def stats(self):
        return self.ok("GET", "stats")

    def health(self):
        return self.ok("GET", "health")
