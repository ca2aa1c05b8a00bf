#!/usr/bin/python3
"""Strict Azure Key Vault (keys data plane) emulator: one process per vault.

Runs on Debian 12's /usr/bin/python3 with the standard library and
python3-cryptography only.  See README.md next to this file for the behaviour
it reproduces and where each fact comes from (the Key Vault REST reference and
swagger, the BYOK specification, and the Azure SDK's recorded exchanges).
This file is the entry: the command line and the Vault service, which plugs
the identity and keys parts (the other files of this package) into the
emulators' shared server (tests/emulators/common).

    emulator.py --cert server.pem --key server-key.pem --state-dir DIR \
                [--tenant T] [--client ID:SECRET ...] [--port 0] ...

Prints "READY <port>" on stdout once it accepts connections.
"""

import argparse
import os
import re
import sys
import threading
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.server import Service, add_server_args, serve  # noqa: E402

from azure_keyvault.base import KVError  # noqa: E402
from azure_keyvault.identity import IMDS_PATH, Identity, TokenStore  # noqa: E402
from azure_keyvault.keys_api import API_VERSION_RE, KEYS_PATH_RE, KeysApi, op_name  # noqa: E402
from azure_keyvault.keystore import KeyStore  # noqa: E402
from azure_keyvault.limits import Limits  # noqa: E402
from azure_keyvault.permissions import AccessPolicies, parse_permissions  # noqa: E402

SERVICE_VERSION = "1.9.3070.2-emulator"
DEFAULT_CLIENT = "keyplane-test-client:keyplane-test-secret"
# the plumbing's and injected faults' answers, in the KeyVaultError shape
ERRORS = {
    "too_large": (413, "RequestEntityTooLarge", "The request body is too large."),
    "bad_length": (400, "BadParameter", "Invalid Content-Length header."),
    "429": (429, "Throttled", "Request was not processed because too many requests were received."
                              " Reason: VaultRequestTypeLimitReached"),
    "500": (500, "InternalServerError", "An internal server error occurred (injected fault)."),
    "503": (503, "ServiceUnavailable", "The service is temporarily unavailable (injected fault)."),
    "internal": (500, "InternalServerError", "Unexpected emulator error."),
}
CONFIG_FIELDS = ("token_lifetime", "page_size", "empty_pages", "delete_delay", "challenge",
                 "limits", "limits_window", "limits_scale")
CLIENT_REQUEST_ID = "x-ms-client-request-id"


class Vault(Service):
    """One vault: the identity endpoints and the keys API on one HTTPS port."""

    name = "akv-emu"
    server_version = "Microsoft-IIS/10.0"
    fault_scope = "keys"
    corrupt_b64_paths = (("value",), ("key", "n"))

    def __init__(self, opts, clients, permissions=()):
        """clients: client id -> secret; permissions: (identity, permissions) pairs of the
        identities whose access policy is not every key permission."""
        super().__init__(opts)
        self.clients = clients      # client id -> secret
        self.api_re = re.compile(opts.api_versions) if opts.api_versions else API_VERSION_RE
        self.store = KeyStore(opts)
        self.tokens = TokenStore(self.store.state_dir, opts.token_lifetime)
        self.identity = Identity(self)
        self.policies = AccessPolicies(list(clients) + [opts.mi_client_id])
        for ident, perms in permissions:
            self.policies.set(ident, perms)
        self.limits = Limits(opts.limits, opts.limits_window, opts.limits_scale)
        self.counts_lock = threading.Lock()
        self.counts = {"keys_requests": 0, "keys_429": 0, "limits_429": 0,
                       "keys_no_client_request_id": 0}
        self.keys = KeysApi(self)
        self.base_url = None
        self.control.register("config", ("POST",), self.set_config)
        self.control.register("tokens/revoke", ("POST",), self.revoke)
        self.control.register("permissions", ("GET",), lambda req: self.policies.snapshot())
        self.control.register("permissions", ("POST", "PUT"), self.set_permissions)
        self.control.register("limits", ("GET",), lambda req: self.limits.snapshot())
        self.control.register("stats", ("GET",), self.stats)

    def bound(self, port):
        super().bound(port)
        self.base_url = "https://%s:%d" % (self.opts.public_host, port)

    def health(self):
        return dict(super().health(), vault_url=self.base_url)

    def same_vault(self, netloc):
        """True when netloc (host[:port]) names this vault."""
        host, _, port = netloc.rpartition(":")
        if not host:
            host, port = netloc, "443"
        return port == str(self.port) and host.lower() in ("127.0.0.1", "localhost",
                                                          self.opts.public_host.lower())

    # ---- the Service hooks ----
    def in_fault_scope(self, path):
        return bool(KEYS_PATH_RE.match(path))

    def route(self, req):
        low0 = req.segs[0].lower() if req.segs else ""
        if req.path == IMDS_PATH and req.method == "GET":
            return self.identity.imds(req)
        if low0 not in ("keys", "deletedkeys"):
            return self.identity.route(req)
        ident = self.identity.authenticate(req)
        return self.keys.route(req, ident)

    def operation(self, req):
        return op_name(req.method, req.segs)

    def error(self, kind):
        return KVError(*ERRORS[kind])

    def standard_headers(self, path, headers=None):
        h = {"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "-1",
             "Strict-Transport-Security": "max-age=31536000;includeSubDomains",
             "X-Content-Type-Options": "nosniff", "x-ms-request-id": str(uuid.uuid4())}
        if KEYS_PATH_RE.match(path):
            h["x-ms-keyvault-region"] = self.opts.region
            h["x-ms-keyvault-service-version"] = SERVICE_VERSION
            # the vault echoes the client's request id, whatever x-ms-return-client-request-id
            # says (the recorded exchanges)
            crid = headers.get(CLIENT_REQUEST_ID) if headers is not None else None
            if crid:
                h[CLIENT_REQUEST_ID] = crid
        return h

    def request_seen(self, method, path, headers):
        if KEYS_PATH_RE.match(path):
            with self.counts_lock:
                self.counts["keys_requests"] += 1
                if not headers.get(CLIENT_REQUEST_ID):
                    self.counts["keys_no_client_request_id"] += 1

    def answered(self, path, status):
        if status == 429 and KEYS_PATH_RE.match(path):
            with self.counts_lock:
                self.counts["keys_429"] += 1

    def limits_429(self):
        """Counts a 429 of the vault's limits."""
        with self.counts_lock:
            self.counts["limits_429"] += 1

    # ---- its own control endpoints ----
    def stats(self, req):
        """GET /_emulator/stats: the shared fault counters plus the vault's own."""
        out = self.faults.snapshot()["stats"]
        with self.counts_lock:
            out.update(self.counts)
        return out

    def set_permissions(self, req):
        """POST /_emulator/permissions {IDENTITY: [PERMISSION, ...] or "get,list" or null (all),
        ...}: sets the key permissions of the identities named (the others keep theirs); answers
        every identity's."""
        if not isinstance(req, dict):
            raise ValueError("permissions: a JSON object {identity: permissions}")
        known = self.policies.snapshot()
        for ident, perms in req.items():     # all checked before any is set
            if ident not in known:
                raise ValueError("unknown identity %r" % ident)
            if perms is not None:
                parse_permissions(perms)
        for ident, perms in req.items():
            self.policies.set(ident, perms)
        return self.policies.snapshot()

    def set_config(self, req):
        """POST /_emulator/config: token_lifetime, page_size, empty_pages, delete_delay,
        challenge (the WWW-Authenticate value of the 401, null for the service's own), limits,
        limits_window, limits_scale (the vault's transaction limits; setting any restarts
        their window)."""
        s, t = self.store, self.tokens
        for k in req:
            if k not in CONFIG_FIELDS:
                raise ValueError("unknown config field: %s" % k)
        if any(k in req for k in ("limits", "limits_window", "limits_scale")):
            cur = self.limits.config()
            self.limits.configure(req.get("limits", cur["limits"]),
                                  req.get("limits_window", cur["limits_window"]),
                                  req.get("limits_scale", cur["limits_scale"]))
        if "challenge" in req:
            ch = req["challenge"]
            if ch is not None and (not isinstance(ch, str) or any(c in ch for c in "\r\n")):
                raise ValueError("challenge must be null or a one-line string")
            self.identity.challenge = ch
        t.lifetime = int(req.get("token_lifetime", t.lifetime))
        s.page_size = max(1, min(25, int(req.get("page_size", s.page_size))))
        s.empty_pages = int(req.get("empty_pages", s.empty_pages))
        s.delete_delay = float(req.get("delete_delay", s.delete_delay))
        return dict({"token_lifetime": t.lifetime, "page_size": s.page_size,
                     "empty_pages": s.empty_pages, "delete_delay": s.delete_delay,
                     "challenge": self.identity.challenge}, **self.limits.config())

    def revoke(self, req):
        """POST /_emulator/tokens/revoke: {"token": T} revokes one token, {} all."""
        tok = req.get("token")
        if tok is not None and not isinstance(tok, str):
            raise ValueError("token must be a string")
        self.tokens.revoke(tok)
        return {"revoked": "all" if tok is None else "one"}


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Strict Azure Key Vault keys emulator (one vault)")
    add_server_args(ap)
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
    ap.add_argument("--purge-protection", action="store_true",
                    help="the vault has purge protection: recoveryLevel without +Purgeable, "
                    "purge refused (Azure SQL requires it of a TDE protector's vault)")
    ap.add_argument("--backup-secret", default=None,
                    help="backups restore only into emulators with the same secret")
    ap.add_argument("--api-versions", default=None,
                    help="regex of accepted api-versions (default 7.0-7.6 incl. previews, 2025-07-01)")
    ap.add_argument("--region", default="emulated-region")
    ap.add_argument("--vault-name", default="emulated-vault",
                    help="the vault's name in access-denied messages (default emulated-vault)")
    ap.add_argument("--permissions", action="append", default=[], metavar="ID=PERMS",
                    help="key permissions of identity ID (a --client id or --mi-client-id):"
                         " comma-separated names, 'all' or 'none' (repeatable; default all)")
    ap.add_argument("--limits", action="store_true",
                    help="enforce Key Vault's key transaction limits (429 with Retry-After)")
    ap.add_argument("--limits-window", type=float, default=10.0,
                    help="seconds of the limits' sliding window (default 10)")
    ap.add_argument("--limits-scale", type=float, default=1.0,
                    help="factor on every limit, each at least 1 (default 1)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    clients = {}
    for c in args.client or [DEFAULT_CLIENT]:
        cid, sep, sec = c.partition(":")
        if not sep or not cid or not sec:
            sys.exit("--client must be CLIENT_ID:SECRET")
        clients[cid] = sec
    permissions = []
    for p in args.permissions:
        ident, sep, perms = p.partition("=")
        if not sep or not ident:
            sys.exit("--permissions must be ID=PERMS")
        permissions.append((ident, perms))
    try:
        vault = Vault(args, clients, permissions)
    except ValueError as e:
        sys.exit("emulator: %s" % e)
    return serve(vault)


if __name__ == "__main__":
    sys.exit(main())
