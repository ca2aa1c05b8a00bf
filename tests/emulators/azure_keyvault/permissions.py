"""Access policies of the vault's keys: the key permissions each identity holds (a service
principal by its client id, the managed identity by its client id), the permission each keys-API
operation needs, and the 403 the service answers an identity without it.

By default every identity holds every permission. --permissions ID=PERMS on the command line and
POST /_emulator/permissions change that (README.md, "Access policies").
"""

import threading

from .base import KVError

# the key permissions of a vault access policy (Key Vault's access policy model)
KEY_PERMISSIONS = ("get", "list", "create", "import", "update", "wrapKey", "unwrapKey",
                   "encrypt", "decrypt", "sign", "verify", "backup", "restore", "delete",
                   "recover", "purge")
_CANON = {p.lower(): p for p in KEY_PERMISSIONS}

# keys_api.op_name's operations -> the permission each needs (the others are the same name)
OP_PERMISSION = {"listDeleted": "list", "getDeleted": "get"}

ACCESS_DENIED_MSG = (
    "The user, group or application 'appid={appid};oid={oid};iss=https://sts.windows.net/{tenant}/'"
    " does not have keys {perm} permission on key vault '{vault};location={region}'. For help"
    " resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287")


def permission_of(op):
    """The key permission operation op (keys_api.op_name) needs, or None."""
    if op is None:
        return None
    perm = OP_PERMISSION.get(op, op)
    return perm if perm in KEY_PERMISSIONS else None


def parse_permissions(value):
    """The canonical permission names of value: a list of names, or a comma-separated string;
    "all" (or the list ["all"]) is every permission, "" or "none" none. Names are
    case-insensitive; an unknown name raises ValueError."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise ValueError("permissions must be a list of names or a comma-separated string")
    low = [v.lower() for v in items]
    if low == ["all"]:
        return list(KEY_PERMISSIONS)
    if low in ([], ["none"]):
        return []
    out = []
    for v in low:
        if v not in _CANON:
            raise ValueError("unknown key permission %r (known: %s, all, none)"
                             % (v, ", ".join(KEY_PERMISSIONS)))
        if _CANON[v] not in out:
            out.append(_CANON[v])
    return out


def access_denied(ident, perm, vault_name, region, text=None):
    """The 403 of identity ident (appid, oid, tenant) without key permission perm. text: a
    test's own wording ("{op}" standing for the permission) instead of the service's."""
    p = perm.lower()
    if text is not None:
        return KVError(403, "Forbidden", text.replace("{op}", p), "AccessDenied")
    return KVError(403, "Forbidden",
                   ACCESS_DENIED_MSG.format(appid=ident["appid"], oid=ident["oid"],
                                            tenant=ident["tenant"], perm=p, vault=vault_name,
                                            region=region),
                   "AccessDenied")


class AccessPolicies:
    """The key permissions of every identity of the vault (thread-safe). identities: the client
    ids the vault knows (its --client ids and the managed identity's)."""

    def __init__(self, identities):
        self.lock = threading.Lock()
        self.identities = list(identities)
        self.perms = {i: set(KEY_PERMISSIONS) for i in self.identities}

    def set(self, identity, perms):
        """Gives identity exactly perms (None: every permission)."""
        if identity not in self.perms:
            raise ValueError("unknown identity %r (known: %s)"
                             % (identity, ", ".join(self.identities)))
        new = set(KEY_PERMISSIONS) if perms is None else set(parse_permissions(perms))
        with self.lock:
            self.perms[identity] = new

    def allows(self, identity, perm):
        """True when identity holds perm (an identity the vault does not know holds none)."""
        with self.lock:
            return perm in self.perms.get(identity, ())

    def snapshot(self):
        """{identity: [permissions, in KEY_PERMISSIONS order]}."""
        with self.lock:
            return {i: [p for p in KEY_PERMISSIONS if p in self.perms[i]] for i in self.identities}
