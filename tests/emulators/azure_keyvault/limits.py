"""The vault's transaction limits (opt-in: --limits): Key Vault's documented key transaction limits
per vault and per 10-second window, weighted by key type, with a 429 and an honest Retry-After
beyond them.

The service-limits page gives, per key type, the transactions allowed in 10 seconds: CREATE key
(10 for HSM keys, 20 for software keys) and "all other transactions" (RSA-2048: 2,000 HSM, 4,000
software; RSA-3072: 500 and 1,000; RSA-4096: 250 and 500), and says the thresholds are weighted
and enforced on their sum. So each transaction costs 1/limit of its class, creates (imports
count as creates) draw on one budget and all other transactions on another, and a request is
admitted while its budget's sum over the sliding window, with it, stays at most 1. Requests that
name no existing key (listings, restore, a missing key) cost 1/4,000 of the transaction budget
(inferred: the page's limit for vault transactions). Answered 429s cost nothing (the throttling
guidance: they do not count towards the limits).

For tests, --limits-window shortens the window and --limits-scale multiplies every limit (each
stays at least 1), so a test meets the limits with a few requests in a second or two.
"""

import math
import threading
import time
from collections import deque
from fractions import Fraction

WINDOW = 10.0
# class -> (budget, documented transactions per WINDOW)
CLASSES = {
    "create-hsm": ("create", 10),
    "create-software": ("create", 20),
    "hsm-rsa2048": ("transactions", 2000),
    "hsm-rsa3072": ("transactions", 500),
    "hsm-rsa4096": ("transactions", 250),
    "software-rsa2048": ("transactions", 4000),
    "software-rsa3072": ("transactions", 1000),
    "software-rsa4096": ("transactions", 500),
    "vault": ("transactions", 4000),
}


def key_class(kty, key_size):
    """The class of a transaction on a key of type kty and size key_size (bits)."""
    kind = "hsm" if kty and kty.endswith("-HSM") else "software"
    size = key_size if key_size in (2048, 3072, 4096) else 2048
    return "%s-rsa%d" % (kind, size)


def create_class(hsm):
    return "create-hsm" if hsm else "create-software"


class Limits:
    """One vault's sliding-window transaction budgets (thread-safe)."""

    def __init__(self, enabled=False, window=WINDOW, scale=1.0):
        self.lock = threading.Lock()
        self.configure(enabled, window, scale)

    def configure(self, enabled, window, scale):
        """Sets the limits (and forgets the window's transactions)."""
        if not isinstance(enabled, bool):
            raise ValueError("limits must be true or false")
        window, scale = float(window), float(scale)
        if not 0 < window <= 3600:
            raise ValueError("limits_window must be in (0, 3600] seconds")
        if not 0 < scale <= 1000:
            raise ValueError("limits_scale must be in (0, 1000]")
        with self.lock:
            self.enabled, self.window, self.scale = enabled, window, scale
            self.events = {"create": deque(), "transactions": deque()}   # (time, weight)
            self.used = {"create": Fraction(0), "transactions": Fraction(0)}

    def limit(self, cls):
        """The transactions of class cls allowed per window, scaled."""
        return max(1, int(CLASSES[cls][1] * self.scale))

    def config(self):
        with self.lock:
            return {"limits": self.enabled, "limits_window": self.window,
                    "limits_scale": self.scale}

    def snapshot(self):
        """The configuration, the scaled limit of every class, and each budget's use now."""
        with self.lock:
            now = time.monotonic()
            for b in self.events:
                self._expire(b, now)
            return {"enabled": self.enabled, "window": self.window, "scale": self.scale,
                    "limits": {c: self.limit(c) for c in CLASSES},
                    "used": {b: float(u) for b, u in self.used.items()}}

    def _expire(self, budget, now):
        ev = self.events[budget]
        while ev and ev[0][0] + self.window <= now:
            self.used[budget] -= ev.popleft()[1]

    def admit(self, cls):
        """None when a transaction of class cls is admitted (and counted), else the seconds (an
        integer, at least 1) until one of that class would be."""
        with self.lock:
            if not self.enabled:
                return None
            budget = CLASSES[cls][0]
            w = Fraction(1, self.limit(cls))
            now = time.monotonic()
            self._expire(budget, now)
            if self.used[budget] + w <= 1:
                self.events[budget].append((now, w))
                self.used[budget] += w
                return None
            # the oldest transactions leave the window first: wait until enough of them have
            left = self.used[budget]
            wait = self.window
            for t, ew in self.events[budget]:
                left -= ew
                if left + w <= 1:
                    wait = t + self.window - now
                    break
            return max(1, math.ceil(wait))
