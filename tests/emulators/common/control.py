"""The control endpoints under /_emulator/ on an emulator's own port: not part of any emulated
service, without auth and never hit by faults. Built in: health, faults (GET shows, PUT or POST
replaces, PATCH merges) and stats; an emulator registers its own (e.g. config) with register().
Their clients are client.py (Python) and the C tests' support library, so names and answers stay
as they are.
"""

import json

PREFIX = "/_emulator/"


class ControlEndpoints:
    def __init__(self, service):
        self.routes = {}
        faults = service.faults
        self.register("health", None, lambda req: service.health())
        self.register("faults", ("GET",), lambda req: faults.snapshot())
        self.register("faults", ("PUT", "POST"),
                      lambda req: {"config": faults.configure(req, replace=True)})
        self.register("faults", ("PATCH",),
                      lambda req: {"config": faults.configure(req, replace=False)})
        self.register("stats", ("GET",), lambda req: faults.snapshot()["stats"])

    def register(self, name, methods, func):
        """Serves /_emulator/NAME for methods (None: any): func(request JSON, {} when there is
        no body) returns the 200 answer; a ValueError or TypeError it raises answers 400 with its
        text."""
        for m in methods or ("*",):
            self.routes[(m, name)] = func

    def handle(self, method, path, body):
        """(status, JSON answer) of one control request."""
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": "invalid JSON"}
        name = path[len(PREFIX):]
        func = self.routes.get((method, name)) or self.routes.get(("*", name))
        if func is None:
            return 404, {"error": "unknown control endpoint"}
        try:
            return 200, func(req)
        except (ValueError, TypeError) as e:
            return 400, {"error": str(e)}
