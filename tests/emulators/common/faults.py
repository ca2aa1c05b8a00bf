"""Fault injection for the emulators, configured through /_emulator/faults (or --faults): latency,
injected 429/500/503 answers (random rates or a fixed sequence), dropped connections, operations
answered 403 (in a test's words when given), one oversized header line, and corruption of success
answers, with the counters /_emulator/stats shows.

The emulator names its operations and its default fault scope (the service API, e.g. "keys");
what the error answers look like is its own (Service.error in server.py).
"""

import json
import random
import threading

ACTIONS = ("ok", "429", "500", "503", "drop")
CORRUPT_KINDS = ("not_json", "missing_fields", "bad_base64", "truncated", "oversize")
CORRUPT_PAD_TO = 9 * 1024 * 1024   # size of an "oversize" body
NOT_BASE64 = "!!!not base64!!!"
JSON_TYPE = "application/json; charset=utf-8"


def _copy(cfg):
    """A configuration that shares no list with cfg."""
    out = dict(cfg)
    for k in ("sequence", "forbidden_ops", "corrupt_ops"):
        out[k] = list(out[k])
    return out


def _compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def _spoil(data, path):
    """Sets the string member at path (a tuple of keys) of data to NOT_BASE64, copying the dicts
    on the way so the stored answer is not changed."""
    node = data
    for k in path[:-1]:
        child = node.get(k)
        if not isinstance(child, dict):
            return
        node[k] = child = dict(child)
        node = child
    if isinstance(node.get(path[-1]), str):
        node[path[-1]] = NOT_BASE64


def corrupt_body(kind, payload, b64_paths):
    """(content type, body bytes) of the JSON success answer payload corrupted as kind says;
    b64_paths are the base64 members that bad_base64 spoils, e.g. (("value",), ("key", "n"))."""
    if kind == "not_json":
        return "text/html", b"<html>oops</html>"
    if kind == "missing_fields":
        return JSON_TYPE, b"{}"
    data = dict(payload) if isinstance(payload, dict) else {"value": payload}
    if kind == "bad_base64":
        for path in b64_paths:
            _spoil(data, path)
        return JSON_TYPE, _compact(data)
    if kind == "truncated":
        full = _compact(data)
        return JSON_TYPE, full[:len(full) // 2]
    # oversize: the real answer plus a "pad" member, CORRUPT_PAD_TO bytes in all
    base = len(_compact(dict(data, pad="")))
    data["pad"] = "x" * max(0, CORRUPT_PAD_TO - base)
    return JSON_TYPE, _compact(data)


class Faults:
    """One emulator's fault configuration and counters (thread-safe).

    scope: the name of the default scope (the service API, e.g. "keys"); in_scope(path) says
    whether a request path belongs to it. The other scope, "all", hits every request but the
    control endpoints."""

    def __init__(self, scope, in_scope):
        self.scope_name = scope
        self.in_scope = in_scope
        self.fields = {"latency_ms": 0, "rate_429": 0.0, "rate_500": 0.0,
                       "rate_503": 0.0, "rate_drop": 0.0, "retry_after": 1,
                       "seed": None, "sequence": [], "scope": scope,
                       "forbidden_ops": [], "forbidden_message": None, "header_pad": 0,
                       "corrupt": None, "corrupt_ops": ["*"], "corrupt_count": None}
        self.lock = threading.Lock()
        self.cfg = _copy(self.fields)
        self.rng = random.Random()
        self.stats = {"requests": 0, "429": 0, "500": 0, "503": 0,
                      "drop": 0, "ok": 0, "corrupt": 0}

    def validate(self, new):
        if not isinstance(new, dict):
            raise ValueError("faults must be a JSON object")
        for k in new:
            if k not in self.fields:
                raise ValueError("unknown fault field: %s" % k)
        for k in ("rate_429", "rate_500", "rate_503", "rate_drop"):
            v = new.get(k, 0)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError("%s must be a number in [0,1]" % k)
        seq = new.get("sequence", [])
        if not isinstance(seq, list) or any(s not in ACTIONS for s in seq):
            raise ValueError("sequence items must be " + "|".join(ACTIONS))
        if new.get("scope", self.scope_name) not in (self.scope_name, "all"):
            raise ValueError("scope must be %s or all" % self.scope_name)
        if new.get("corrupt") is not None and new["corrupt"] not in CORRUPT_KINDS:
            raise ValueError("corrupt must be null or one of " + "|".join(CORRUPT_KINDS))
        cops = new.get("corrupt_ops", ["*"])
        if not isinstance(cops, list) or any(not isinstance(o, str) for o in cops):
            raise ValueError("corrupt_ops must be a list of operation names")
        fm = new.get("forbidden_message")
        if fm is not None and not isinstance(fm, str):
            raise ValueError("forbidden_message must be null or a string")
        hp = new.get("header_pad", 0)
        if isinstance(hp, bool) or not isinstance(hp, int) or not 0 <= hp <= 1 << 20:
            raise ValueError("header_pad must be an integer in [0,1048576]")
        cc = new.get("corrupt_count")
        if cc is not None and (isinstance(cc, bool) or not isinstance(cc, int) or cc < 0):
            raise ValueError("corrupt_count must be null or a non-negative integer")

    def configure(self, new, replace=True):
        """Replaces the configuration with new (or merges new into it); returns the result."""
        self.validate(new)
        with self.lock:
            base = _copy(self.fields if replace else self.cfg)
            base.update(new)
            self.cfg = base
            self.rng = random.Random(base["seed"])
            return self.snapshot_locked()

    def snapshot_locked(self):
        out = dict(self.cfg)
        out["sequence"] = list(out["sequence"])
        return out

    def snapshot(self):
        with self.lock:
            return {"config": self.snapshot_locked(), "stats": dict(self.stats)}

    def decide(self, path):
        """(latency in seconds, action) for one request: action is one of ACTIONS."""
        with self.lock:
            c = self.cfg
            if c["scope"] != "all" and not self.in_scope(path):
                return 0.0, "ok"
            self.stats["requests"] += 1
            if c["sequence"]:
                action = c["sequence"].pop(0)
            else:
                r = self.rng.random()
                action = "ok"
                acc = 0.0
                for name in ("429", "500", "503", "drop"):
                    acc += c["rate_" + name]
                    if r < acc:
                        action = name
                        break
            self.stats[action] += 1
            return c["latency_ms"] / 1000.0, action

    def retry_after(self):
        with self.lock:
            return self.cfg["retry_after"]

    def forbidden(self, op):
        """True when operation op is to be answered 403."""
        with self.lock:
            fo = self.cfg["forbidden_ops"]
            return "*" in fo or op in fo

    def forbidden_message(self):
        """The text of a forbidden_ops 403 set by the test ("{op}" stands for the operation),
        or None for the service's own."""
        with self.lock:
            return self.cfg["forbidden_message"]

    def in_scope_of(self, path):
        """True when the configured scope hits path."""
        with self.lock:
            return self.cfg["scope"] == "all" or self.in_scope(path)

    def header_pad(self):
        """Bytes of the one padding header every answer in scope carries (0: none)."""
        with self.lock:
            return self.cfg["header_pad"]

    def take_corrupt(self, op):
        """The corruption for the success answer of op, or None; counts it."""
        with self.lock:
            c = self.cfg
            kind, ops, left = c["corrupt"], c["corrupt_ops"], c["corrupt_count"]
            if kind is None or op is None or (left is not None and left <= 0):
                return None
            if "*" not in ops and op not in ops:
                return None
            if left is not None:
                c["corrupt_count"] = left - 1
            self.stats["corrupt"] += 1
            return kind
