"""What the Key Vault emulator's identity and keys parts share: the vault's resource, the two
error shapes (Key Vault's and Azure AD's), base64 and base64url, and the clock.
"""

import base64
import re
import time
import uuid

from common.handler import ServiceError

VAULT_RESOURCE = "https://vault.azure.net"

KEY_NOT_FOUND_MSG = (
    "A key with (name/id) {} was not found in this key vault. If you recently"
    " deleted this key you may be able to recover it using the correct"
    " recovery command. For help resolving this issue, please see"
    " https://go.microsoft.com/fwlink/?linkid=2125182")


def now():
    return int(time.time())


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64_CHARS = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


def b64decode_any(value):
    """Decode base64url or standard base64, padded or not (the REST reference sends base64url; BYOK files carry padded base64url)."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    s = value.strip()
    if not _B64_CHARS.match(s):
        raise ValueError("invalid base64 characters")
    s = s.rstrip("=")
    if len(s) % 4 == 1:
        raise ValueError("invalid base64 length")
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def int_to_b64(i):
    return b64url(i.to_bytes(max(1, (i.bit_length() + 7) // 8), "big"))


def b64_to_int(value):
    return int.from_bytes(b64decode_any(value), "big")


class KVError(ServiceError):
    """An error answered in the KeyVaultError shape."""

    def __init__(self, status, code, message, inner=None, headers=None):
        super().__init__(message, headers)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner

    def body(self):
        err = {"code": self.code, "message": self.message}
        if self.inner:
            err["innererror"] = {"code": self.inner}
        return {"error": err}


def bad(msg, inner=None):
    return KVError(400, "BadParameter", msg, inner)


def key_not_found(name):
    return KVError(404, "KeyNotFound", KEY_NOT_FOUND_MSG.format(name))


class AADError(ServiceError):
    """An error answered in the Azure AD token-endpoint shape."""

    def __init__(self, status, error, code, description):
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self):
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        ts = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        return {
            "error": self.error,
            "error_description": "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s"
                                 % (self.code, self.description, trace, corr, ts),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": "https://login.microsoftonline.com/error?code=%d" % self.code,
        }
