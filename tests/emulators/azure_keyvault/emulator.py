#!/usr/bin/python3
"""Strict Azure Key Vault (keys data plane) emulator: one process per vault.

Runs on Debian 12's /usr/bin/python3 with the standard library and
python3-cryptography only.  See README.md next to this file for the behaviour
it reproduces and where each fact comes from (the Key Vault REST reference and
swagger, the BYOK specification, and the Azure SDK's recorded exchanges).

    emulator.py --cert server.pem --key server-key.pem --state-dir DIR \
                [--tenant T] [--client ID:SECRET ...] [--port 0] ...

Prints "READY <port>" on stdout once it accepts connections.
"""

import argparse
import base64
import hashlib
import http.server
import json
import os
import random
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap, aes_key_unwrap_with_padding)

# --------------------------------------------------------------------------
# constants
# --------------------------------------------------------------------------

VAULT_RESOURCE = "https://vault.azure.net"
SERVICE_VERSION = "1.9.3070.2-emulator"
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
VERSION_RE = re.compile(r"^[0-9a-f]{32}$")
# 7.0..7.6 (and the 7.x previews the SDKs use, e.g. 7.4-preview.1, the
# default of Debian's azure-keyvault-keys 4.8.0b3) and 2025-07-01.
API_VERSION_RE = re.compile(r"^(7\.[0-6](-preview(\.[0-9]+)?)?|2025-07-01)$")
LATEST_API = "2025-07-01"
KEY_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey",
           "import", "export")
DEFAULT_RSA_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey",
                   "unwrapKey"]
RSA_SIZES = (2048, 3072, 4096)
RSA_ALGS = ("RSA-OAEP", "RSA-OAEP-256", "RSA1_5")
CRYPTO_OPS = {"wrapkey": "wrapKey", "unwrapkey": "unwrapKey",
              "encrypt": "encrypt", "decrypt": "decrypt",
              "sign": "sign", "verify": "verify"}
BYOK_ENCS = {"CKM_RSA_AES_KEY_WRAP": hashes.SHA1,
             "RSA_AES_KEY_WRAP_256": hashes.SHA256,
             "RSA_AES_KEY_WRAP_384": hashes.SHA384}
BACKUP_PREFIX = b"&AzureKeyVaultKeyBackupV1.microsoft.com"
MAX_BODY = 1 << 20
MAX_TAGS = 15
IMDS_API_VERSIONS = ("2018-02-01", "2019-03-11", "2019-08-01", "2019-11-01",
                     "2020-06-01", "2021-02-01", "2021-12-13", "2023-07-01")

KEY_NOT_FOUND_MSG = (
    "A key with (name/id) {} was not found in this key vault. If you recently"
    " deleted this key you may be able to recover it using the correct"
    " recovery command. For help resolving this issue, please see"
    " https://go.microsoft.com/fwlink/?linkid=2125182")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

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


def new_version():
    return uuid.uuid4().hex


def atomic_write_json(path, obj):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, separators=(",", ":"), sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def api_at_least(api, minor):
    """True if api-version is 7.<minor> or later (2025-07-01 is later than 7.x)."""
    if api.startswith("2025"):
        return True
    try:
        return int(api.split(".")[1].split("-")[0]) >= minor
    except (IndexError, ValueError):
        return False


class KVError(Exception):
    """An error answered in the KeyVaultError shape."""

    def __init__(self, status, code, message, inner=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner
        self.headers = headers or {}

    def body(self):
        err = {"code": self.code, "message": self.message}
        if self.inner:
            err["innererror"] = {"code": self.inner}
        return {"error": err}


def bad(msg, inner=None):
    return KVError(400, "BadParameter", msg, inner)


def key_not_found(name):
    return KVError(404, "KeyNotFound", KEY_NOT_FOUND_MSG.format(name))


class AADError(Exception):
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


# --------------------------------------------------------------------------
# fault injection
# --------------------------------------------------------------------------

CORRUPT_KINDS = ("not_json", "missing_fields", "bad_base64", "truncated", "oversize")
CORRUPT_PAD_TO = 9 * 1024 * 1024   # size of an "oversize" body
NOT_BASE64 = "!!!not base64!!!"


def op_name(method, segs):
    """The operation a keys-API request names (the names of forbidden_ops/corrupt_ops):
    list, get, create, import, update, delete, backup, restore, wrapKey, unwrapKey, encrypt,
    decrypt, listDeleted, getDeleted, recover, purge; None for anything else."""
    coll = segs[0].lower() if segs else ""
    rest = segs[1:]
    if rest and rest[-1] == "":
        rest = rest[:-1]
    if coll == "keys":
        if not rest:
            return "list" if method == "GET" else None
        if len(rest) == 1:
            if rest[0].lower() == "restore" and method == "POST":
                return "restore"
            return {"GET": "get", "PUT": "import", "DELETE": "delete", "PATCH": "update"}.get(method)
        sub = rest[1].lower()
        if len(rest) == 2:
            if method == "POST":
                if sub in ("create", "backup"):
                    return sub
                return CRYPTO_OPS.get(sub)
            if method == "GET":
                return "list" if sub == "versions" else "get"
            return "update" if method == "PATCH" else None
        if len(rest) == 3 and method == "POST":
            return CRYPTO_OPS.get(rest[2].lower())
    elif coll == "deletedkeys":
        if not rest:
            return "listDeleted" if method == "GET" else None
        if len(rest) == 1:
            return {"GET": "getDeleted", "DELETE": "purge"}.get(method)
        if len(rest) == 2 and rest[1].lower() == "recover" and method == "POST":
            return "recover"
    return None


def corrupt_body(kind, payload):
    """(content type, body bytes) of a success answer corrupted as kind says."""
    ctype = "application/json; charset=utf-8"
    if kind == "not_json":
        return "text/html", b"<html>oops</html>"
    if kind == "missing_fields":
        return ctype, b"{}"
    data = dict(payload) if isinstance(payload, dict) else {"value": payload}
    if kind == "bad_base64":
        if isinstance(data.get("value"), str):
            data["value"] = NOT_BASE64
        if isinstance(data.get("key"), dict):
            data["key"] = dict(data["key"])
            if "n" in data["key"]:
                data["key"]["n"] = NOT_BASE64
        return ctype, json.dumps(data, separators=(",", ":")).encode()
    if kind == "truncated":
        full = json.dumps(data, separators=(",", ":")).encode()
        return ctype, full[:len(full) // 2]
    # oversize: the real answer plus a "pad" member, CORRUPT_PAD_TO bytes in all
    base = len(json.dumps(dict(data, pad=""), separators=(",", ":")).encode())
    data["pad"] = "x" * max(0, CORRUPT_PAD_TO - base)
    return ctype, json.dumps(data, separators=(",", ":")).encode()


class Faults:
    FIELDS = {"latency_ms": 0, "rate_429": 0.0, "rate_500": 0.0,
              "rate_503": 0.0, "rate_drop": 0.0, "retry_after": 1,
              "seed": None, "sequence": [], "scope": "keys",
              "forbidden_ops": [], "corrupt": None, "corrupt_ops": ["*"],
              "corrupt_count": None}

    def __init__(self):
        self.lock = threading.Lock()
        self.cfg = dict(self.FIELDS)
        self.cfg["sequence"] = []
        self.cfg["forbidden_ops"] = []
        self.cfg["corrupt_ops"] = ["*"]
        self.rng = random.Random()
        self.stats = {"requests": 0, "429": 0, "500": 0, "503": 0,
                      "drop": 0, "ok": 0, "corrupt": 0}

    def configure(self, new, replace=True):
        if not isinstance(new, dict):
            raise ValueError("faults must be a JSON object")
        for k in new:
            if k not in self.FIELDS:
                raise ValueError("unknown fault field: %s" % k)
        for k in ("rate_429", "rate_500", "rate_503", "rate_drop"):
            v = new.get(k, 0)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError("%s must be a number in [0,1]" % k)
        seq = new.get("sequence", [])
        if not isinstance(seq, list) or any(
                s not in ("ok", "429", "500", "503", "drop") for s in seq):
            raise ValueError("sequence items must be ok|429|500|503|drop")
        if new.get("scope", "keys") not in ("keys", "all"):
            raise ValueError("scope must be keys or all")
        if new.get("corrupt") is not None and new["corrupt"] not in CORRUPT_KINDS:
            raise ValueError("corrupt must be null or one of " + "|".join(CORRUPT_KINDS))
        cops = new.get("corrupt_ops", ["*"])
        if not isinstance(cops, list) or any(not isinstance(o, str) for o in cops):
            raise ValueError("corrupt_ops must be a list of operation names")
        cc = new.get("corrupt_count")
        if cc is not None and (isinstance(cc, bool) or not isinstance(cc, int) or cc < 0):
            raise ValueError("corrupt_count must be null or a non-negative integer")
        with self.lock:
            base = dict(self.FIELDS) if replace else dict(self.cfg)
            base["sequence"] = list(base["sequence"])
            base["forbidden_ops"] = list(base["forbidden_ops"])
            base["corrupt_ops"] = list(base["corrupt_ops"])
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
        """Return (latency_seconds, action) for one request."""
        with self.lock:
            c = self.cfg
            if c["scope"] == "keys" and not re.match(r"^/(keys|deletedkeys)(/|$)", path, re.I):
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
        with self.lock:
            fo = self.cfg["forbidden_ops"]
            return "*" in fo or op in fo

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


# --------------------------------------------------------------------------
# vault state
# --------------------------------------------------------------------------

class Vault:
    def __init__(self, args):
        self.args = args
        self.state_dir = os.path.abspath(args.state_dir)
        self.keys_dir = os.path.join(self.state_dir, "keys")
        os.makedirs(self.keys_dir, exist_ok=True)
        self.lock = threading.RLock()
        self.records = {}        # lower name -> record
        self.key_cache = {}      # (lower name, version) -> private key object
        self.tokens = {}         # token -> {exp, client_id, tenant}
        self.token_lock = threading.Lock()
        self.recoverable_days = args.recoverable_days
        self.token_lifetime = args.token_lifetime
        self.page_size = args.page_size
        self.empty_pages = args.empty_pages
        self.delete_delay = args.delete_delay
        secret = (args.backup_secret or "keyplane-akv-emulator").encode()
        self.backup_key = hashlib.sha256(b"akv-emu-backup:" + secret).digest()
        self._load()

    # ---- persistence ----
    def _load(self):
        for fn in os.listdir(self.keys_dir):
            if fn.endswith(".json") and not fn.startswith("."):
                with open(os.path.join(self.keys_dir, fn)) as f:
                    rec = json.load(f)
                self.records[rec["name"].lower()] = rec
            elif fn.startswith(".tmp-"):
                os.unlink(os.path.join(self.keys_dir, fn))
        tpath = os.path.join(self.state_dir, "tokens.json")
        if os.path.exists(tpath):
            with open(tpath) as f:
                self.tokens = json.load(f)

    def _save(self, rec):
        atomic_write_json(os.path.join(self.keys_dir, rec["name"].lower() + ".json"), rec)

    def _remove(self, rec):
        try:
            os.unlink(os.path.join(self.keys_dir, rec["name"].lower() + ".json"))
        except FileNotFoundError:
            pass

    # ---- tokens ----
    def issue_token(self, client_id, tenant, lifetime=None):
        lifetime = self.token_lifetime if lifetime is None else lifetime
        iat = now()
        header = {"typ": "JWT", "alg": "RS256", "kid": "akv-emulator"}
        claims = {"aud": VAULT_RESOURCE, "iss": "https://sts.windows.net/%s/" % tenant,
                  "iat": iat, "nbf": iat, "exp": iat + lifetime, "appid": client_id,
                  "tid": tenant, "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
                  "jti": uuid.uuid4().hex, "ver": "1.0"}
        token = ".".join([b64url(json.dumps(header).encode()),
                          b64url(json.dumps(claims).encode()),
                          b64url(os.urandom(64))])
        with self.token_lock:
            t = time.time()
            self.tokens = {k: v for k, v in self.tokens.items() if v["exp"] > t}
            self.tokens[token] = {"exp": t + lifetime, "client_id": client_id,
                                  "tenant": tenant}
            atomic_write_json(os.path.join(self.state_dir, "tokens.json"), self.tokens)
        return token, lifetime, iat

    def check_token(self, token):
        """Return None if valid, else the reason."""
        with self.token_lock:
            info = self.tokens.get(token)
        if info is None:
            return "unknown"
        if info["exp"] <= time.time():
            return "expired"
        return None

    def revoke_tokens(self, token=None):
        with self.token_lock:
            if token is None:
                self.tokens = {}
            else:
                self.tokens.pop(token, None)
            atomic_write_json(os.path.join(self.state_dir, "tokens.json"), self.tokens)

    # ---- record helpers (call with self.lock held) ----
    def _purge_expired(self, rec):
        d = rec.get("deleted")
        if d and d["scheduledPurgeDate"] <= now():
            self._drop(rec)
            return True
        return False

    def _drop(self, rec):
        lname = rec["name"].lower()
        self.records.pop(lname, None)
        for k in [k for k in self.key_cache if k[0] == lname]:
            del self.key_cache[k]
        self._remove(rec)

    def _get_rec(self, name):
        rec = self.records.get(name.lower())
        if rec is not None and self._purge_expired(rec):
            return None
        return rec

    def live(self, name):
        rec = self._get_rec(name)
        if rec is None or rec.get("deleted"):
            raise key_not_found(name)
        return rec

    def _check_name_free_for_new_version(self, name):
        rec = self._get_rec(name)
        if rec is not None and rec.get("deleted"):
            if time.time() < rec["deleted"]["ready_at"]:
                raise KVError(409, "Conflict",
                              "Key %s is currently being deleted and cannot be re-created; retry later." % name,
                              "ObjectIsBeingDeleted")
            raise KVError(409, "Conflict",
                          "Key %s is currently in a deleted but recoverable state, and its name cannot be"
                          " reused; in this state, the key can only be recovered or purged." % name,
                          "ObjectIsDeletedButRecoverable")
        return rec

    def private_key(self, rec, ver):
        k = (rec["name"].lower(), ver["version"])
        key = self.key_cache.get(k)
        if key is None:
            key = serialization.load_der_private_key(
                base64.b64decode(ver["pkcs8"]), password=None)
            self.key_cache[k] = key
        return key

    def version_of(self, rec, version):
        if version in ("", None):
            return rec["versions"][rec["order"][-1]]
        ver = rec["versions"].get(version.lower())
        if ver is None:
            raise key_not_found(rec["name"] + "/" + version)
        return ver

    def add_version(self, name, ver, pkey):
        """Insert a new version (name checked again under the lock)."""
        with self.lock:
            rec = self._check_name_free_for_new_version(name)
            if rec is None:
                rec = {"name": name, "versions": {}, "order": [], "deleted": None}
            rec["versions"][ver["version"]] = ver
            rec["order"].append(ver["version"])
            self.records[name.lower()] = rec
            self.key_cache[(name.lower(), ver["version"])] = pkey
            self._save(rec)
            return rec, ver


# --------------------------------------------------------------------------
# request model validation
# --------------------------------------------------------------------------

def parse_attributes(attrs, creating):
    out = {}
    if attrs is None:
        return out
    if not isinstance(attrs, dict):
        raise bad("Property attributes has invalid value")
    for k in ("enabled", "exportable"):
        if k in attrs and attrs[k] is not None:
            if not isinstance(attrs[k], bool):
                raise bad("Property attributes.%s has invalid value" % k)
            out[k] = attrs[k]
    for k in ("nbf", "exp"):
        if k in attrs and attrs[k] is not None:
            v = attrs[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad("Property attributes.%s has invalid value" % k)
            out[k] = v
    if "nbf" in out and "exp" in out and out["nbf"] > out["exp"]:
        raise bad("The 'nbf' attribute must be earlier than the 'exp' attribute.")
    return out


def parse_tags(tags):
    if tags is None:
        return None
    if not isinstance(tags, dict):
        raise bad("Property tags has invalid value")
    if len(tags) > MAX_TAGS:
        raise bad("Too many tags: at most %d tags are allowed." % MAX_TAGS)
    for k, v in tags.items():
        if not isinstance(v, str) or len(k) > 512 or len(v) > 256:
            raise bad("Tag '%s' has an invalid value" % k)
    return dict(tags)


def parse_key_ops(ops, default):
    if ops is None:
        return list(default)
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise bad("Property key_ops has invalid value")
    out = []
    for o in ops:
        canon = next((k for k in KEY_OPS if k.lower() == o.lower()), None)
        if canon is None:
            raise bad("Invalid key operation: %s" % o)
        if canon not in out:
            out.append(canon)
    return out


def check_release_policy(body, attrs):
    rp = body.get("release_policy")
    exportable = attrs.get("exportable", False)
    if rp is not None and not exportable:
        raise bad("Non-exportable keys must not have release policy")
    if exportable and rp is None:
        raise bad("Exportable keys must have release policy")
    return rp


def check_kek_ops(kty, ops):
    if "import" in ops:
        if ops != ["import"]:
            raise bad("A key exchange key (key_ops 'import') must not allow other operations.")
        if kty != "RSA-HSM":
            raise bad("A key exchange key (key_ops 'import') must be of type RSA-HSM.")


def rsa_padding(alg):
    if alg == "RSA-OAEP":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    if alg == "RSA-OAEP-256":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    raise bad("Invalid algorithm: %s" % alg)


def max_plaintext(alg, nbytes):
    return {"RSA-OAEP": nbytes - 42, "RSA-OAEP-256": nbytes - 66, "RSA1_5": nbytes - 11}[alg]


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

class DropConnection(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 120  # idle keep-alive timeout

    # ---- connection setup: TLS handshake in the worker thread ----
    def setup(self):
        self.tls_ok = True
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
            if not getattr(self, "dropped", False):
                self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.request.close()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.opts.log_requests:
            sys.stderr.write("akv-emu %s - %s\n" % (self.address_string(), fmt % args))

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

    def read_body(self):
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
                if total > MAX_BODY:
                    raise KVError(413, "RequestEntityTooLarge", "The request body is too large.")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise KVError(400, "BadParameter", "Invalid Content-Length header.")
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            raise KVError(413, "RequestEntityTooLarge", "The request body is too large.")
        return self.rfile.read(n)

    def send(self, status, body=None, headers=None, content_type="application/json; charset=utf-8"):
        if isinstance(body, (dict, list)):
            data = json.dumps(body, separators=(",", ":")).encode()
        elif body is None:
            data = b""
        else:
            data = body
        self.send_response(status)
        if status != 204 or data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Pragma", "no-cache")
        self.send_header("Expires", "-1")
        self.send_header("Strict-Transport-Security", "max-age=31536000;includeSubDomains")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        if self.path_only.lower().startswith(("/keys", "/deletedkeys")):
            self.send_header("x-ms-keyvault-region", self.server.opts.region)
            self.send_header("x-ms-keyvault-service-version", SERVICE_VERSION)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def drop(self):
        """Close the socket without a response (RST, like a dead peer)."""
        self.close_connection = True
        self.dropped = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    @property
    def base_url(self):
        return self.server.base_url

    # ---- dispatch ----
    def dispatch(self, method):
        parsed = urllib.parse.urlsplit(self.path)
        self.path_only = parsed.path
        try:
            self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        except ValueError:
            self.query = {}
        try:
            body = self.read_body()
        except KVError as e:
            self.send(e.status, e.body())
            return
        except (DropConnection, ValueError):
            self.drop()
            return
        try:
            path = self.path_only
            if path.startswith("/_emulator/"):
                return self.control(method, path, body)
            latency, action = self.server.faults.decide(path)
            if latency:
                time.sleep(latency)
            if action == "drop":
                return self.drop()
            if action == "429":
                ra = self.server.faults.retry_after()
                return self.send(429, KVError(429, "Throttled",
                                              "Request was not processed because too many requests were received."
                                              " Reason: VaultRequestTypeLimitReached").body(),
                                 {"Retry-After": str(ra)})
            if action == "500":
                return self.send(500, KVError(500, "InternalServerError",
                                              "An internal server error occurred (injected fault).").body())
            if action == "503":
                return self.send(503, KVError(503, "ServiceUnavailable",
                                              "The service is temporarily unavailable (injected fault).").body(),
                                 {"Retry-After": str(self.server.faults.retry_after())})
            segs = path.split("/")[1:]
            low0 = segs[0].lower() if segs else ""
            if path == "/metadata/identity/oauth2/token" and method == "GET":
                return self.imds()
            if low0 not in ("keys", "deletedkeys"):
                return self.identity(method, segs, body)
            self.authenticate()
            api = self.api_version()
            result = self.keys_api(method, segs, body, api)
            status, payload = result
            kind = None
            if 200 <= status < 300 and payload is not None:
                kind = self.server.faults.take_corrupt(op_name(method, segs))
            if kind is None:
                return self.send(status, payload)
            ctype, data = corrupt_body(kind, payload)
            try:
                self.send(status, data, content_type=ctype)
            except (OSError, ssl.SSLError):  # a client that stops reading an oversize body
                self.close_connection = True
        except KVError as e:
            self.send(e.status, e.body(), e.headers)
        except AADError as e:
            self.send(e.status, e.body())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # an emulator bug: answer like the service would, and log it
            import traceback
            traceback.print_exc()
            try:
                self.send(500, KVError(500, "InternalServerError", "Unexpected emulator error.").body())
            except OSError:
                self.close_connection = True

    # ---- auth ----
    def challenge_header(self):
        o = self.server.opts
        return 'Bearer authorization="%s/%s", resource="%s"' % (
            self.server.authority_url, o.tenant, VAULT_RESOURCE)

    def authenticate(self):
        auth = self.headers.get("Authorization")
        hdr = {"WWW-Authenticate": self.challenge_header()}
        if not auth:
            raise KVError(401, "Unauthorized",
                          "AKV10000: Request is missing a Bearer or PoP token.", headers=hdr)
        parts = auth.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise KVError(401, "Unauthorized",
                          "AKV10000: Request is missing a Bearer or PoP token.", headers=hdr)
        why = self.server.vault.check_token(parts[1].strip())
        if why == "expired":
            raise KVError(401, "Unauthorized",
                          "AKV10032: Token expired. Obtain a new access token and retry.", headers=hdr)
        if why:
            raise KVError(401, "Unauthorized",
                          "AKV10022: Invalid token: the token was not issued for this vault.", headers=hdr)

    def api_version(self):
        vals = self.query.get("api-version")
        if not vals or not vals[0]:
            raise bad("The api-version query parameter (?api-version=) is required for all requests.")
        v = vals[0]
        if not self.server.api_re.match(v):
            raise bad("The specified version (%s) is not recognized. Consider using the latest"
                      " supported version (%s)." % (v, LATEST_API))
        return v

    # ---- identity endpoints (token, openid configuration, IMDS) ----
    def identity(self, method, segs, body):
        o = self.server.opts
        if len(segs) >= 1 and segs[0] and segs[0] != o.tenant and (
                segs[1:3] in (["oauth2", "v2.0"], ["oauth2", "token"], ["v2.0", ".well-known"])):
            raise AADError(400, "invalid_request", 90002,
                           "Tenant '%s' not found. Check to make sure you have the correct tenant ID"
                           " and are signing into the correct cloud." % segs[0])
        if method == "GET" and segs[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            base = "%s/%s" % (self.server.authority_url, o.tenant)
            return self.send(200, {
                "token_endpoint": base + "/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                          "client_secret_basic"],
                "jwks_uri": base + "/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": base + "/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": base + "/oidc/userinfo",
                "authorization_endpoint": base + "/oauth2/v2.0/authorize",
                "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": base + "/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            })
        if method == "POST" and segs[1:] in (["oauth2", "v2.0", "token"], ["oauth2", "token"]):
            return self.token_endpoint(segs[1:] == ["oauth2", "token"], body)
        raise KVError(404, "NotFound", "The requested resource was not found: %s" % self.path_only)

    def token_endpoint(self, v1, body):
        o = self.server.opts
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise AADError(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'grant_type'.")
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise AADError(400, "invalid_request", 900144, "The request body could not be parsed.")
        f = {k: v[0] for k, v in form.items()}
        if "grant_type" not in f:
            raise AADError(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'grant_type'.")
        if f["grant_type"] != "client_credentials":
            raise AADError(400, "unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type '%s'." % f["grant_type"])
        if v1:
            res = f.get("resource", "").rstrip("/")
            if res != VAULT_RESOURCE:
                raise AADError(400, "invalid_resource", 500011,
                               "The resource principal named %s was not found in the tenant." % res)
        else:
            scope = f.get("scope")
            if not scope:
                raise AADError(400, "invalid_request", 900144,
                               "The request body must contain the following parameter: 'scope'.")
            if scope not in (VAULT_RESOURCE + "/.default", VAULT_RESOURCE + "//.default"):
                raise AADError(400, "invalid_scope", 1002012,
                               "The provided value for scope %s is not valid. Client credential flows"
                               " must have a scope value with /.default suffixed to the resource"
                               " identifier (application ID URI)." % scope)
        cid = f.get("client_id")
        if not cid:
            raise AADError(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'client_id'.")
        if cid not in self.server.clients:
            raise AADError(400, "unauthorized_client", 700016,
                           "Application with identifier '%s' was not found in the directory '%s'."
                           % (cid, o.tenant))
        secret = f.get("client_secret")
        if not secret:
            raise AADError(401, "invalid_client", 7000216,
                           "'client_assertion', 'client_secret' or 'request' is required for the"
                           " 'client_credentials' grant type.")
        if secret != self.server.clients[cid]:
            raise AADError(401, "invalid_client", 7000215,
                           "Invalid client secret provided. Ensure the secret being sent in the request"
                           " is the client secret value, not the client secret ID, for a secret added"
                           " to app '%s'." % cid)
        token, life, iat = self.server.vault.issue_token(cid, o.tenant)
        if v1:
            return self.send(200, {"token_type": "Bearer", "expires_in": str(life),
                                   "ext_expires_in": str(life), "expires_on": str(iat + life),
                                   "not_before": str(iat), "resource": VAULT_RESOURCE,
                                   "access_token": token})
        return self.send(200, {"token_type": "Bearer", "expires_in": life,
                               "ext_expires_in": life, "access_token": token})

    def imds(self):
        o = self.server.opts
        if self.headers.get("Metadata", "").lower() != "true":
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "Required metadata header not specified"})
        q = {k: v[0] for k, v in self.query.items()}
        if "api-version" not in q:
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "Required query variable 'api-version' is missing"})
        if q["api-version"] not in IMDS_API_VERSIONS:
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "Invalid api-version '%s'" % q["api-version"]})
        res = q.get("resource", "")
        if not res:
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "Required query variable 'resource' is missing"})
        if res.rstrip("/") != VAULT_RESOURCE:
            return self.send(400, {"error": "invalid_resource",
                                   "error_description": "AADSTS500011: The resource principal named %s"
                                                        " was not found in the tenant" % res})
        ident = {"client_id": o.mi_client_id, "object_id": o.mi_object_id, "mi_res_id": o.mi_res_id}
        for k, want in ident.items():
            if k in q and q[k] != want:
                return self.send(400, {"error": "invalid_request",
                                       "error_description": "Identity not found"})
        token, life, iat = self.server.vault.issue_token(o.mi_client_id, o.tenant)
        return self.send(200, {"access_token": token, "refresh_token": "",
                               "expires_in": str(life), "expires_on": str(iat + life),
                               "ext_expires_in": str(life), "not_before": str(iat),
                               "resource": res, "token_type": "Bearer",
                               "client_id": o.mi_client_id})

    # ---- control endpoint ----
    def control(self, method, path, body):
        srv = self.server
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            return self.send(400, {"error": "invalid JSON"})
        try:
            if path == "/_emulator/health":
                return self.send(200, {"status": "ok", "port": srv.port, "vault_url": srv.base_url})
            if path == "/_emulator/faults":
                if method == "GET":
                    return self.send(200, srv.faults.snapshot())
                if method in ("POST", "PUT"):  # replace the whole configuration
                    return self.send(200, {"config": srv.faults.configure(req, replace=True)})
                if method == "PATCH":
                    return self.send(200, {"config": srv.faults.configure(req, replace=False)})
            if path == "/_emulator/stats" and method == "GET":
                return self.send(200, srv.faults.snapshot()["stats"])
            if path == "/_emulator/config" and method == "POST":
                v = srv.vault
                for k in req:
                    if k not in ("token_lifetime", "page_size", "empty_pages", "delete_delay"):
                        raise ValueError("unknown config field: %s" % k)
                v.token_lifetime = int(req.get("token_lifetime", v.token_lifetime))
                v.page_size = max(1, min(25, int(req.get("page_size", v.page_size))))
                v.empty_pages = int(req.get("empty_pages", v.empty_pages))
                v.delete_delay = float(req.get("delete_delay", v.delete_delay))
                return self.send(200, {"token_lifetime": v.token_lifetime, "page_size": v.page_size,
                                       "empty_pages": v.empty_pages, "delete_delay": v.delete_delay})
            if path == "/_emulator/tokens/revoke" and method == "POST":
                tok = req.get("token")
                if tok is not None and not isinstance(tok, str):
                    raise ValueError("token must be a string")
                srv.vault.revoke_tokens(tok)
                return self.send(200, {"revoked": "all" if tok is None else "one"})
        except (ValueError, TypeError) as e:
            return self.send(400, {"error": str(e)})
        return self.send(404, {"error": "unknown control endpoint"})

    # ----------------------------------------------------------------------
    # keys API
    # ----------------------------------------------------------------------
    def json_body(self, body, required=True):
        if not body:
            if required:
                raise bad("The request body is required.")
            return {}
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise bad("The request body is not valid JSON: %s" % e)
        if not isinstance(obj, dict):
            raise bad("The request body must be a JSON object.")
        return obj

    def check_name(self, name):
        if not NAME_RE.match(name):
            raise bad("The request URI contains an invalid name: %s" % name)

    def keys_api(self, method, segs, body, api):
        coll = segs[0].lower()
        rest = segs[1:]
        if coll == "keys":
            if rest in ([], [""]):
                if method == "GET":
                    return self.list_keys(api, deleted=False)
            elif len(rest) == 1 and rest[0].lower() == "restore" and method == "POST":
                return self.restore(self.json_body(body), api)
            elif len(rest) == 1 or (len(rest) == 2 and rest[1] == ""):
                name = rest[0]
                self.check_name(name)
                if method == "GET":
                    return self.get_key(name, "", api)
                if method == "PUT":
                    return self.import_key(name, self.json_body(body), api)
                if method == "DELETE":
                    return self.delete_key(name, api)
                if method == "PATCH":
                    return self.update_key(name, "", self.json_body(body), api)
            elif len(rest) == 2:
                name, sub = rest[0], rest[1]
                self.check_name(name)
                lsub = sub.lower()
                if lsub == "create" and method == "POST":
                    return self.create_key(name, self.json_body(body), api)
                if lsub == "backup" and method == "POST":
                    return self.backup(name)
                if lsub == "versions" and method == "GET":
                    return self.list_versions(name, api)
                if lsub in ("rotate", "rotationpolicy", "release") :
                    raise bad("The operation '%s' is not supported by this emulator." % sub)
                if method == "GET":
                    return self.get_key(name, sub, api)
                if method == "PATCH":
                    return self.update_key(name, sub, self.json_body(body), api)
                if method == "POST" and lsub in CRYPTO_OPS:
                    return self.crypto(name, "", CRYPTO_OPS[lsub], self.json_body(body))
            elif len(rest) == 3 and method == "POST":
                name, version, op = rest
                self.check_name(name)
                if op.lower() in CRYPTO_OPS:
                    return self.crypto(name, version, CRYPTO_OPS[op.lower()], self.json_body(body))
        else:  # deletedkeys
            if rest in ([], [""]):
                if method == "GET":
                    return self.list_keys(api, deleted=True)
            elif len(rest) == 1 or (len(rest) == 2 and rest[1] == ""):
                name = rest[0]
                self.check_name(name)
                if method == "GET":
                    return self.get_deleted(name, api)
                if method == "DELETE":
                    return self.purge(name)
            elif len(rest) == 2 and rest[1].lower() == "recover" and method == "POST":
                self.check_name(rest[0])
                return self.recover(rest[0], api)
        raise KVError(405 if method not in ("GET", "POST") else 404, "NotFound" if method in ("GET", "POST")
                      else "MethodNotAllowed",
                      "The requested operation %s %s is not supported." % (method, self.path_only))

    # ---- bundles ----
    def kid(self, name, version=None):
        k = "%s/keys/%s" % (self.base_url, name)
        return k + "/" + version if version else k

    def attributes(self, ver, api):
        a = ver["attributes"]
        out = {"enabled": a.get("enabled", True)}
        pk = ver.get("key_size")
        if api.startswith("2025") and pk:
            out["key_size"] = pk
        for k in ("nbf", "exp"):
            if a.get(k) is not None:
                out[k] = a[k]
        out["created"] = a["created"]
        out["updated"] = a["updated"]
        days = self.server.vault.recoverable_days
        out["recoveryLevel"] = "Recoverable+Purgeable" if days == 90 else "CustomizedRecoverable+Purgeable"
        if api_at_least(api, 1):
            out["recoverableDays"] = days
        if api_at_least(api, 3):
            out["exportable"] = a.get("exportable", False)
        if api.startswith("2025"):
            out["hsmPlatform"] = "0"
        return out

    def bundle(self, rec, ver, api):
        nums = self.server.vault.private_key(rec, ver).public_key().public_numbers()
        key = {"kid": self.kid(rec["name"], ver["version"]), "kty": ver["kty"],
               "key_ops": list(ver["key_ops"]), "n": int_to_b64(nums.n), "e": int_to_b64(nums.e)}
        for k, val in (ver.get("extra") or {}).items():
            key.setdefault(k, val)
        out = {"key": key, "attributes": self.attributes(ver, api)}
        if ver.get("tags"):
            out["tags"] = ver["tags"]
        if ver.get("release_policy") is not None:
            out["release_policy"] = ver["release_policy"]
        return out

    def deleted_bundle(self, rec, api):
        ver = rec["versions"][rec["order"][-1]]
        out = {"recoveryId": "%s/deletedkeys/%s" % (self.base_url, rec["name"]),
               "deletedDate": rec["deleted"]["deletedDate"],
               "scheduledPurgeDate": rec["deleted"]["scheduledPurgeDate"]}
        out.update(self.bundle(rec, ver, api))
        return out

    # ---- operations ----
    def new_version_record(self, kty, pkey, key_ops, attrs, tags, rp, extra=None):
        t = now()
        a = {"enabled": attrs.get("enabled", True), "created": t, "updated": t,
             "exportable": attrs.get("exportable", False)}
        for k in ("nbf", "exp"):
            if k in attrs:
                a[k] = attrs[k]
        pkcs8 = pkey.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
        return {"version": new_version(), "kty": kty, "key_ops": key_ops, "attributes": a,
                "tags": tags, "release_policy": rp, "extra": extra or {},
                "key_size": pkey.key_size, "pkcs8": base64.b64encode(pkcs8).decode()}

    def create_key(self, name, body, api):
        v = self.server.vault
        kty = body.get("kty")
        if kty is None:
            raise bad("Property kty is required.")
        if kty not in ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM"):
            raise bad("Invalid key type: %s" % kty)
        if kty not in ("RSA", "RSA-HSM"):
            raise bad("Key type %s is not supported by this emulator (RSA and RSA-HSM only)." % kty)
        size = body.get("key_size", 2048)
        if size is None:
            size = 2048
        if isinstance(size, bool) or not isinstance(size, int) or size not in RSA_SIZES:
            raise bad("The specified RSA key size (%s) is not supported; use 2048, 3072 or 4096." % size)
        pe = body.get("public_exponent")
        if pe is not None and pe != 65537:
            raise bad("The specified public exponent (%s) is not supported; use 65537." % pe)
        ops = parse_key_ops(body.get("key_ops"), DEFAULT_RSA_OPS)
        check_kek_ops(kty, ops)
        attrs = parse_attributes(body.get("attributes"), True)
        tags = parse_tags(body.get("tags"))
        rp = check_release_policy(body, attrs)
        with v.lock:
            v._check_name_free_for_new_version(name)
        pkey = rsa.generate_private_key(public_exponent=65537, key_size=size)
        rec, ver = v.add_version(name, self.new_version_record(kty, pkey, ops, attrs, tags, rp), pkey)
        return 200, self.bundle(rec, ver, api)

    def import_key(self, name, body, api):
        v = self.server.vault
        jwk = body.get("key")
        if not isinstance(jwk, dict):
            raise bad("Property key is required.")
        hsm = body.get("Hsm", body.get("hsm"))
        if hsm is not None and not isinstance(hsm, bool):
            raise bad("Property Hsm has invalid value")
        kty = jwk.get("kty")
        if kty not in ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM"):
            raise bad("Invalid key type: %s" % kty)
        if kty not in ("RSA", "RSA-HSM"):
            raise bad("Key type %s is not supported by this emulator (RSA and RSA-HSM only)." % kty)
        ops = parse_key_ops(jwk.get("key_ops"), DEFAULT_RSA_OPS)
        attrs = parse_attributes(body.get("attributes"), True)
        tags = parse_tags(body.get("tags"))
        rp = check_release_policy(body, attrs)
        if jwk.get("key_hsm") is not None:
            if kty != "RSA-HSM":
                raise bad("key_hsm (BYOK) requires kty RSA-HSM.")
            pkey = self.byok_unwrap(jwk["key_hsm"])
            out_kty = "RSA-HSM"
        else:
            pkey = self.jwk_private_key(jwk)
            out_kty = "RSA-HSM" if (hsm or kty == "RSA-HSM") else "RSA"
        check_kek_ops(out_kty, ops)
        if pkey.key_size not in RSA_SIZES:
            raise bad("The RSA key size (%d) is not supported; use 2048, 3072 or 4096." % pkey.key_size)
        # extra JWK members are stored and echoed back (akv-recordings README, 'crv' on RSA)
        extra = {k: val for k, val in jwk.items() if k == "crv" and isinstance(val, str)}
        rec, ver = v.add_version(name, self.new_version_record(out_kty, pkey, ops, attrs, tags, rp, extra),
                                 pkey)
        return 200, self.bundle(rec, ver, api)

    def jwk_private_key(self, jwk):
        try:
            n, e = b64_to_int(jwk["n"]), b64_to_int(jwk["e"])
        except (KeyError, ValueError):
            raise bad("The JSON Web Key is invalid: n and e are required base64url values.")
        if "d" not in jwk:
            raise bad("The JSON Web Key is invalid: the private key (d, p, q) is required for import.")
        try:
            d = b64_to_int(jwk["d"])
            p, q = b64_to_int(jwk["p"]), b64_to_int(jwk["q"])
        except (KeyError, ValueError):
            raise bad("The JSON Web Key is invalid: d, p and q must be base64url values.")
        if p * q != n or p < 2 or q < 2:
            raise bad("The JSON Web Key is invalid: p*q does not equal n.")
        # the service accepts a short/odd d; derive a consistent d from p, q, e
        phi = (p - 1) * (q - 1)
        try:
            dd = pow(e, -1, phi)
        except ValueError:
            raise bad("The JSON Web Key is invalid: e is not invertible.")
        try:
            dp = b64_to_int(jwk["dp"]) if "dp" in jwk else dd % (p - 1)
            dq = b64_to_int(jwk["dq"]) if "dq" in jwk else dd % (q - 1)
            qi = b64_to_int(jwk["qi"]) if "qi" in jwk else pow(q, -1, p)
        except ValueError:
            raise bad("The JSON Web Key is invalid: dp, dq and qi must be base64url values.")
        if dp != dd % (p - 1) or dq != dd % (q - 1) or qi != pow(q, -1, p):
            raise bad("The JSON Web Key is invalid: inconsistent CRT parameters.")
        del d
        try:
            return rsa.RSAPrivateNumbers(p, q, dd, dp, dq, qi, rsa.RSAPublicNumbers(e, n)).private_key()
        except ValueError as ex:
            raise bad("The JSON Web Key is invalid: %s" % ex)

    def byok_unwrap(self, key_hsm):
        """Unwrap a BYOK transfer file (Key Vault BYOK specification, key_hsm)."""
        v = self.server.vault
        try:
            raw = b64decode_any(key_hsm)
        except ValueError:
            raise bad("key_hsm is not valid base64 or base64url.")
        try:
            tf = json.loads(raw.decode("utf-8"))
            hdr = tf["header"]
            kek_kid, alg, enc = hdr["kid"], hdr["alg"], hdr["enc"]
            ct = b64decode_any(tf["ciphertext"])
            if not isinstance(tf.get("schema_version"), str):
                raise KeyError("schema_version")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            raise bad("key_hsm must be a BYOK transfer file: base64 of JSON"
                      " {schema_version, header{kid,alg,enc}, ciphertext, generator}.")
        if alg != "dir":
            raise bad("Unsupported BYOK header alg '%s' (expected 'dir')." % alg)
        if enc not in BYOK_ENCS:
            raise bad("Unsupported BYOK header enc '%s'." % enc)
        u = urllib.parse.urlsplit(kek_kid)
        parts = u.path.split("/")
        if (u.scheme != "https" or not self.server.same_vault(u.netloc) or len(parts) != 4
                or parts[1] != "keys" or not VERSION_RE.match(parts[3].lower())):
            raise bad("The key exchange key '%s' is not a versioned key of this vault." % kek_kid)
        with v.lock:
            try:
                rec = v.live(parts[2])
                kver = v.version_of(rec, parts[3])
            except KVError:
                raise bad("The key exchange key '%s' was not found in this vault." % kek_kid)
            if kver["kty"] != "RSA-HSM" or kver["key_ops"] != ["import"]:
                raise bad("The key '%s' is not a key exchange key (RSA-HSM with key_ops ['import'])."
                          % kek_kid)
            a = kver["attributes"]
            t = now()
            if not a.get("enabled", True) or (a.get("exp") and a["exp"] <= t) or \
                    (a.get("nbf") and a["nbf"] > t):
                raise bad("The key exchange key '%s' is disabled, expired or not yet valid." % kek_kid)
            kek = v.private_key(rec, kver)
        mlen = (kek.key_size + 7) // 8
        if len(ct) <= mlen + 8:
            raise bad("The BYOK ciphertext is too short.")
        h = BYOK_ENCS[enc]
        try:
            aes_key = kek.decrypt(ct[:mlen], padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None))
        except ValueError:
            raise bad("Failed to unwrap the BYOK transfer key with the key exchange key.")
        if len(aes_key) not in (16, 24, 32):
            raise bad("The BYOK transfer key has an invalid length.")
        try:
            pkcs8 = aes_key_unwrap_with_padding(aes_key, ct[mlen:])
        except (InvalidUnwrap, ValueError):
            raise bad("Failed to unwrap the BYOK key material (AES key wrap with padding).")
        try:
            pkey = serialization.load_der_private_key(pkcs8, password=None)
        except (ValueError, TypeError):
            raise bad("The BYOK key material is not a PKCS#8 private key.")
        if not isinstance(pkey, rsa.RSAPrivateKey):
            raise bad("The BYOK key material is not an RSA private key.")
        return pkey

    def get_key(self, name, version, api):
        v = self.server.vault
        with v.lock:
            rec = v.live(name)
            ver = v.version_of(rec, version)
            return 200, self.bundle(rec, ver, api)

    def update_key(self, name, version, body, api):
        v = self.server.vault
        for k in body:
            if k not in ("key_ops", "attributes", "tags", "release_policy"):
                raise bad("Property %s is not a valid key update property." % k)
        with v.lock:
            rec = v.live(name)
            ver = v.version_of(rec, version)
            if "key_ops" in body:
                ops = parse_key_ops(body["key_ops"], ver["key_ops"])
                check_kek_ops(ver["kty"], ops)
            attrs = parse_attributes(body.get("attributes"), False)
            tags = parse_tags(body.get("tags")) if "tags" in body else ver.get("tags")
            a = dict(ver["attributes"])
            a.update({k: val for k, val in attrs.items() if k != "exportable"})
            if "nbf" in a and "exp" in a and a["nbf"] > a["exp"]:
                raise bad("The 'nbf' attribute must be earlier than the 'exp' attribute.")
            if "key_ops" in body:
                ver["key_ops"] = ops
            a["updated"] = now()
            ver["attributes"] = a
            ver["tags"] = tags
            if "release_policy" in body:
                if not a.get("exportable"):
                    raise bad("Non-exportable keys must not have release policy")
                ver["release_policy"] = body["release_policy"]
            v._save(rec)
            return 200, self.bundle(rec, ver, api)

    def crypto(self, name, version, op, body):
        v = self.server.vault
        if self.server.faults.forbidden(op):
            oid = "00000000-0000-0000-0000-000000000000"
            raise KVError(403, "Forbidden",
                          "The user, group or application 'appid=%s;oid=%s;iss=https://sts.windows.net/%s/'"
                          " does not have keys %s permission on key vault '%s'. For help resolving this"
                          " issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
                          % ("client", oid, self.server.opts.tenant, op.lower(), self.server.base_url),
                          "AccessDenied")
        if op in ("sign", "verify"):
            raise bad("The operation '%s' is not supported by this emulator." % op)
        alg, value = body.get("alg"), body.get("value")
        if alg is None:
            raise bad("Property alg is required.")
        if value is None:
            raise bad("Property value is required.")
        with v.lock:
            rec = v.live(name)
            ver = v.version_of(rec, version)
            a = ver["attributes"]
            t = now()
            if not a.get("enabled", True):
                raise KVError(403, "Forbidden", "Operation %s is not allowed on a disabled key." % op,
                              "KeyDisabled")
            if a.get("nbf") and a["nbf"] > t:
                raise KVError(403, "Forbidden", "Operation %s is not allowed on a key that is not yet valid."
                              % op, "KeyNotYetValid")
            if a.get("exp") and a["exp"] <= t:
                raise KVError(403, "Forbidden", "Operation %s is not allowed on an expired key." % op,
                              "KeyExpired")
            if op not in ver["key_ops"]:
                raise KVError(403, "Forbidden", "Operation %s is not permitted on this key." % op,
                              "KeyOperationForbidden")
            pkey = v.private_key(rec, ver)
            kid = self.kid(rec["name"], ver["version"])
        if alg not in RSA_ALGS:
            raise bad("Invalid algorithm: %s is not supported for key type %s." % (alg, ver["kty"]))
        try:
            data = b64decode_any(value)
        except ValueError:
            raise bad("Property value has invalid value: not base64url.")
        nbytes = (pkey.key_size + 7) // 8
        if op in ("wrapKey", "encrypt"):
            if len(data) > max_plaintext(alg, nbytes):
                raise bad("The value is too long for algorithm %s with this key." % alg)
            out = pkey.public_key().encrypt(data, rsa_padding(alg))
        else:
            if len(data) != nbytes:
                raise bad("The ciphertext length (%d) does not match the key size (%d bytes)."
                          % (len(data), nbytes))
            try:
                out = pkey.decrypt(data, rsa_padding(alg))
            except ValueError:
                raise bad("Failed to %s: the ciphertext could not be decrypted with this key and algorithm."
                          % op)
        return 200, {"kid": kid, "value": b64url(out)}

    # ---- listing ----
    def page_params(self):
        mr = self.query.get("maxresults")
        size = self.server.vault.page_size
        if mr:
            try:
                m = int(mr[0])
            except ValueError:
                raise bad("Property maxresults has invalid value: %s" % mr[0])
            if not 1 <= m <= 25:
                raise bad("Invalid maxresults value %d: must be between 1 and 25." % m)
            size = min(size, m) if self.server.vault.page_size < 25 else m
        tok = self.query.get("$skiptoken")
        off, empties = 0, 0
        if tok:
            try:
                st = json.loads(b64decode_any(tok[0]))
                off, empties = int(st["o"]), int(st.get("e", 0))
            except (ValueError, KeyError, TypeError):
                raise bad("The $skiptoken value is invalid.")
        return size, off, empties

    def paged(self, path, items, api):
        size, off, empties = self.page_params()
        page = items[off:off + size]
        nxt = off + len(page)
        link = None
        extra = {}
        mr = self.query.get("maxresults")
        if mr:
            extra["maxresults"] = mr[0]
        if nxt < len(items):
            link = {"o": nxt}
        elif empties < self.server.vault.empty_pages:
            link = {"o": nxt, "e": empties + 1}
        if link is not None:
            q = "api-version=%s&$skiptoken=%s" % (api, b64url(json.dumps(link).encode()))
            if mr:
                q += "&maxresults=" + urllib.parse.quote(mr[0])
            link = "%s%s?%s" % (self.server.base_url_with_port, path, q)
        return 200, {"value": page, "nextLink": link}

    def list_keys(self, api, deleted):
        v = self.server.vault
        with v.lock:
            items = []
            for lname in sorted(v.records):
                rec = v._get_rec(lname)
                if rec is None or bool(rec.get("deleted")) != deleted:
                    continue
                if deleted and time.time() < rec["deleted"]["ready_at"]:
                    continue
                ver = rec["versions"][rec["order"][-1]]
                item = {}
                if deleted:
                    item = {"recoveryId": "%s/deletedkeys/%s" % (self.base_url, rec["name"]),
                            "deletedDate": rec["deleted"]["deletedDate"],
                            "scheduledPurgeDate": rec["deleted"]["scheduledPurgeDate"]}
                item["kid"] = self.kid(rec["name"])
                item["attributes"] = self.attributes(ver, api)
                if ver.get("tags"):
                    item["tags"] = ver["tags"]
                items.append(item)
        return self.paged("/deletedkeys" if deleted else "/keys", items, api)

    def list_versions(self, name, api):
        v = self.server.vault
        with v.lock:
            rec = v.live(name)
            items = []
            for vid in sorted(rec["versions"]):
                ver = rec["versions"][vid]
                item = {"kid": self.kid(rec["name"], vid), "attributes": self.attributes(ver, api)}
                if ver.get("tags"):
                    item["tags"] = ver["tags"]
                items.append(item)
        return self.paged("/keys/%s/versions" % rec["name"], items, api)

    # ---- soft delete ----
    def delete_key(self, name, api):
        v = self.server.vault
        with v.lock:
            rec = v.live(name)
            t = now()
            days = v.recoverable_days
            rec["deleted"] = {"deletedDate": t, "scheduledPurgeDate": t + days * 86400,
                              "ready_at": time.time() + v.delete_delay}
            v._save(rec)
            return 200, self.deleted_bundle(rec, api)

    def deleted_rec(self, name):
        v = self.server.vault
        rec = v._get_rec(name)
        if rec is None or not rec.get("deleted") or time.time() < rec["deleted"]["ready_at"]:
            raise KVError(404, "KeyNotFound", "Deleted Key not found: %s" % name)
        return rec

    def get_deleted(self, name, api):
        with self.server.vault.lock:
            return 200, self.deleted_bundle(self.deleted_rec(name), api)

    def recover(self, name, api):
        v = self.server.vault
        with v.lock:
            rec = self.deleted_rec(name)
            rec["deleted"] = None
            v._save(rec)
            return 200, self.bundle(rec, rec["versions"][rec["order"][-1]], api)

    def purge(self, name):
        v = self.server.vault
        with v.lock:
            rec = self.deleted_rec(name)
            v._drop(rec)
        return 204, None

    # ---- backup / restore ----
    def backup(self, name):
        v = self.server.vault
        with v.lock:
            rec = v.live(name)
            payload = json.dumps({"name": rec["name"], "versions": rec["versions"],
                                  "order": rec["order"]}).encode()
        nonce = os.urandom(12)
        ct = AESGCM(v.backup_key).encrypt(nonce, payload, BACKUP_PREFIX)
        blob = BACKUP_PREFIX + base64.b64encode(nonce + ct)
        return 200, {"value": b64url(blob)}

    def restore(self, body, api):
        v = self.server.vault
        val = body.get("value")
        if val is None:
            raise bad("Property value is required.")
        try:
            blob = b64decode_any(val)
            if not blob.startswith(BACKUP_PREFIX):
                raise ValueError("prefix")
            raw = base64.b64decode(blob[len(BACKUP_PREFIX):], validate=True)
            payload = AESGCM(v.backup_key).decrypt(raw[:12], raw[12:], BACKUP_PREFIX)
            data = json.loads(payload)
            name = data["name"]
            if not NAME_RE.match(name) or not data["order"]:
                raise ValueError("bad payload")
        except (ValueError, InvalidTag, TypeError, KeyError):
            raise bad("Backup blob contains invalid or corrupt version.")
        with v.lock:
            rec = v._check_name_free_for_new_version(name)
            if rec is not None:
                raise KVError(409, "Conflict",
                              "There was a conflict restoring the key '%s'. This may happen if a key with"
                              " the same name already exists." % name, "ObjectAlreadyExists")
            rec = {"name": name, "versions": data["versions"], "order": data["order"], "deleted": None}
            v.records[name.lower()] = rec
            v._save(rec)
            return 200, self.bundle(rec, rec["versions"][rec["order"][-1]], api)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def same_vault(self, netloc):
        host, _, port = netloc.rpartition(":")
        if not host:
            host, port = netloc, "443"
        return port == str(self.port) and host.lower() in ("127.0.0.1", "localhost",
                                                          self.opts.public_host.lower())


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Strict Azure Key Vault keys emulator (one vault)")
    ap.add_argument("--cert", required=True, help="server certificate PEM (chain allowed)")
    ap.add_argument("--key", required=True, help="server private key PEM")
    ap.add_argument("--state-dir", required=True, help="directory holding all persistent state")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = ephemeral (default)")
    ap.add_argument("--public-host", default="127.0.0.1",
                    help="host name used in kids, nextLinks and the challenge (default 127.0.0.1)")
    ap.add_argument("--tenant", default="00000000-0000-0000-0000-000000000001")
    ap.add_argument("--client", action="append", default=[],
                    help="CLIENT_ID:SECRET accepted by the token endpoint (repeatable)")
    ap.add_argument("--mi-client-id", default="00000000-0000-0000-0000-0000000000aa",
                    help="client_id of the managed identity served by the IMDS endpoint")
    ap.add_argument("--mi-object-id", default="00000000-0000-0000-0000-0000000000ab")
    ap.add_argument("--mi-res-id", default="/subscriptions/0/resourcegroups/rg/providers/"
                    "Microsoft.ManagedIdentity/userAssignedIdentities/keyplane")
    ap.add_argument("--token-lifetime", type=int, default=3599, help="seconds (default 3599)")
    ap.add_argument("--page-size", type=int, default=25, help="list page size, 1..25 (default 25)")
    ap.add_argument("--empty-pages", type=int, default=0,
                    help="empty pages (with a nextLink) served before the final page")
    ap.add_argument("--delete-delay", type=float, default=0.0,
                    help="seconds a delete stays 'in progress' (ObjectIsBeingDeleted)")
    ap.add_argument("--recoverable-days", type=int, default=90, choices=range(7, 91), metavar="7..90")
    ap.add_argument("--backup-secret", default=None,
                    help="backups restore only into emulators with the same secret")
    ap.add_argument("--api-versions", default=None,
                    help="regex of accepted api-versions (default 7.0-7.6 incl. previews, 2025-07-01)")
    ap.add_argument("--region", default="emulated-region")
    ap.add_argument("--faults", default=None, help="fault config as JSON (same as POST /_emulator/faults)")
    ap.add_argument("--ready-file", default=None, help="also write the port to this file")
    ap.add_argument("--log-requests", action="store_true")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    clients = {}
    for c in args.client or ["keyplane-test-client:keyplane-test-secret"]:
        cid, sep, sec = c.partition(":")
        if not sep or not cid or not sec:
            sys.exit("--client must be CLIENT_ID:SECRET")
        clients[cid] = sec
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    vault = Vault(args)
    faults = Faults()
    if args.faults:
        faults.configure(json.loads(args.faults))

    srv = Server((args.host, args.port), Handler)
    srv.ssl_ctx = ctx
    srv.opts = args
    srv.vault = vault
    srv.faults = faults
    srv.clients = clients
    srv.port = srv.server_address[1]
    srv.api_re = re.compile(args.api_versions) if args.api_versions else API_VERSION_RE
    srv.base_url = "https://%s:%d" % (args.public_host, srv.port)
    srv.base_url_with_port = srv.base_url
    srv.authority_url = srv.base_url

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.port)
        os.replace(tmp, args.ready_file)
    print("READY %d" % srv.port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
