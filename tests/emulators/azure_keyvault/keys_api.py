"""The Key Vault keys API (/keys and /deletedkeys, behind the 401 challenge): the api-version
check, the caller's access policy (permissions.py) and the vault's limits (limits.py), routing,
the operation names faults use, and the operations on one key: create, import (plain JWK or
BYOK), get, update and the RSA crypto operations. Listings, soft delete and
backup/restore are in keys_lifecycle.py.
"""

import base64
import json
import re
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .base import KVError, b64decode_any, b64url, bad, now
from .keys_bundles import bundle, kid
from .keys_import import byok_unwrap, jwk_private_key
from .keys_lifecycle import KeyLifecycle
from .keys_model import (DEFAULT_RSA_OPS, RSA_ALGS, RSA_SIZES, check_kek_ops, check_name,
                         check_release_policy, check_rsa_size, check_rsa_type, check_validity,
                         max_plaintext, parse_attributes, parse_key_ops, parse_tags, rsa_padding)
from .limits import create_class, key_class
from .permissions import access_denied, permission_of

# 7.0..7.6 (and the 7.x previews the SDKs use, e.g. 7.4-preview.1, the
# default of Debian's azure-keyvault-keys 4.8.0b3) and 2025-07-01.
API_VERSION_RE = re.compile(r"^(7\.[0-6](-preview(\.[0-9]+)?)?|2025-07-01)$")
LATEST_API = "2025-07-01"
KEYS_PATH_RE = re.compile(r"^/(keys|deletedkeys)(/|$)", re.I)
CRYPTO_OPS = {"wrapkey": "wrapKey", "unwrapkey": "unwrapKey",
              "encrypt": "encrypt", "decrypt": "decrypt",
              "sign": "sign", "verify": "verify"}
UNSUPPORTED_SUBRESOURCES = ("rotate", "rotationpolicy", "release")
# the 429 of the limits; the reason as a real throttled answer of Key Vault words it
THROTTLED_MSG = ("Request was not processed because too many requests were received."
                 " Reason: VaultRequestTypeLimitReached")


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


def json_body(body, required=True):
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


def new_version_record(kty, pkey, key_ops, attrs, tags, rp, extra=None):
    t = now()
    a = {"enabled": attrs.get("enabled", True), "created": t, "updated": t,
         "exportable": attrs.get("exportable", False)}
    for k in ("nbf", "exp"):
        if k in attrs:
            a[k] = attrs[k]
    pkcs8 = pkey.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    return {"version": uuid.uuid4().hex, "kty": kty, "key_ops": key_ops, "attributes": a,
            "tags": tags, "release_policy": rp, "extra": extra or {},
            "key_size": pkey.key_size, "pkcs8": base64.b64encode(pkcs8).decode()}


class KeysApi:
    """vault: the Vault service (its opts, store, faults, api_re and base_url)."""

    def __init__(self, vault):
        self.vault = vault
        self.store = vault.store
        self.lifecycle = KeyLifecycle(vault)

    def api_version(self, req):
        vals = req.query.get("api-version")
        if not vals or not vals[0]:
            raise bad("The api-version query parameter (?api-version=) is required for all requests.")
        v = vals[0]
        if not self.vault.api_re.match(v):
            raise bad("The specified version (%s) is not recognized. Consider using the latest"
                      " supported version (%s)." % (v, LATEST_API))
        return v

    def route(self, req, ident):
        """(status, payload) of a /keys or /deletedkeys request authenticated as identity ident
        ({"appid", "oid", "tenant"}): the identity's permission for the operation is checked
        before anything else looks at a key, then the vault's limits (when on) admit it."""
        api = self.api_version(req)
        segs = req.segs
        op = op_name(req.method, segs)
        perm = permission_of(op)
        if perm is not None and not self.vault.policies.allows(ident["appid"], perm):
            raise self.forbidden(ident, perm, fault=False)
        self.throttle(req, op)
        if segs[0].lower() == "keys":
            answer = self.route_keys(req, segs[1:], api, ident)
        else:
            answer = self.route_deleted(req, segs[1:], api)
        if answer is not None:
            return answer
        method = req.method
        raise KVError(405 if method not in ("GET", "POST") else 404, "NotFound" if method in ("GET", "POST")
                      else "MethodNotAllowed",
                      "The requested operation %s %s is not supported." % (method, req.path))

    def route_keys(self, req, rest, api, ident):
        """The answer to /keys/REST..., or None for an unknown operation."""
        method, lc = req.method, self.lifecycle

        def body():
            return json_body(req.body)
        if rest in ([], [""]):
            if method == "GET":
                return lc.list_keys(req, api, deleted=False)
        elif len(rest) == 1 and rest[0].lower() == "restore" and method == "POST":
            return lc.restore(body(), api)
        elif len(rest) == 1 or (len(rest) == 2 and rest[1] == ""):
            name = rest[0]
            check_name(name)
            if method == "GET":
                return self.get_key(name, "", api)
            if method == "PUT":
                return self.import_key(name, body(), api)
            if method == "DELETE":
                return lc.delete_key(name, api)
            if method == "PATCH":
                return self.update_key(name, "", body(), api)
        elif len(rest) == 2:
            name, sub = rest[0], rest[1]
            check_name(name)
            lsub = sub.lower()
            if lsub == "create" and method == "POST":
                return self.create_key(name, body(), api)
            if lsub == "backup" and method == "POST":
                return lc.backup(name)
            if lsub == "versions" and method == "GET":
                return lc.list_versions(req, name, api)
            if lsub in UNSUPPORTED_SUBRESOURCES:
                raise bad("The operation '%s' is not supported by this emulator." % sub)
            if method == "GET":
                return self.get_key(name, sub, api)
            if method == "PATCH":
                return self.update_key(name, sub, body(), api)
            if method == "POST" and lsub in CRYPTO_OPS:
                return self.crypto(name, "", CRYPTO_OPS[lsub], body(), ident)
        elif len(rest) == 3 and method == "POST":
            name, version, op = rest
            check_name(name)
            if op.lower() in CRYPTO_OPS:
                return self.crypto(name, version, CRYPTO_OPS[op.lower()], body(), ident)
        return None

    def route_deleted(self, req, rest, api):
        """The answer to /deletedkeys/REST..., or None for an unknown operation."""
        method, lc = req.method, self.lifecycle
        if rest in ([], [""]):
            if method == "GET":
                return lc.list_keys(req, api, deleted=True)
        elif len(rest) == 1 or (len(rest) == 2 and rest[1] == ""):
            name = rest[0]
            check_name(name)
            if method == "GET":
                return lc.get_deleted(name, api)
            if method == "DELETE":
                return lc.purge(name)
        elif len(rest) == 2 and rest[1].lower() == "recover" and method == "POST":
            check_name(rest[0])
            return lc.recover(rest[0], api)
        return None

    # ---- operations on one key ----
    def bundle(self, rec, ver, api):
        return bundle(self.store, self.vault.base_url, rec, ver, api)

    def create_key(self, name, body, api):
        s = self.store
        kty = body.get("kty")
        if kty is None:
            raise bad("Property kty is required.")
        check_rsa_type(kty)
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
        attrs = parse_attributes(body.get("attributes"))
        tags = parse_tags(body.get("tags"))
        rp = check_release_policy(body, attrs)
        with s.lock:
            s.check_name_free_for_new_version(name)
        pkey = rsa.generate_private_key(public_exponent=65537, key_size=size)
        rec, ver = s.add_version(name, new_version_record(kty, pkey, ops, attrs, tags, rp), pkey)
        return 200, self.bundle(rec, ver, api)

    def import_key(self, name, body, api):
        jwk = body.get("key")
        if not isinstance(jwk, dict):
            raise bad("Property key is required.")
        hsm = body.get("Hsm", body.get("hsm"))
        if hsm is not None and not isinstance(hsm, bool):
            raise bad("Property Hsm has invalid value")
        kty = jwk.get("kty")
        check_rsa_type(kty)
        ops = parse_key_ops(jwk.get("key_ops"), DEFAULT_RSA_OPS)
        attrs = parse_attributes(body.get("attributes"))
        tags = parse_tags(body.get("tags"))
        rp = check_release_policy(body, attrs)
        if jwk.get("key_hsm") is not None:
            if kty != "RSA-HSM":
                raise bad("key_hsm (BYOK) requires kty RSA-HSM.")
            pkey = byok_unwrap(self.store, self.vault.same_vault, jwk["key_hsm"])
            out_kty = "RSA-HSM"
        else:
            pkey = jwk_private_key(jwk)
            out_kty = "RSA-HSM" if (hsm or kty == "RSA-HSM") else "RSA"
        check_kek_ops(out_kty, ops)
        check_rsa_size(pkey.key_size)
        # extra JWK members are stored and echoed back (akv-recordings README, 'crv' on RSA)
        extra = {k: val for k, val in jwk.items() if k == "crv" and isinstance(val, str)}
        rec, ver = self.store.add_version(
            name, new_version_record(out_kty, pkey, ops, attrs, tags, rp, extra), pkey)
        return 200, self.bundle(rec, ver, api)

    def get_key(self, name, version, api):
        s = self.store
        with s.lock:
            rec = s.live(name)
            return 200, self.bundle(rec, s.version_of(rec, version), api)

    def update_key(self, name, version, body, api):
        s = self.store
        for k in body:
            if k not in ("key_ops", "attributes", "tags", "release_policy"):
                raise bad("Property %s is not a valid key update property." % k)
        with s.lock:
            rec = s.live(name)
            ver = s.version_of(rec, version)
            if "key_ops" in body:
                ops = parse_key_ops(body["key_ops"], ver["key_ops"])
                check_kek_ops(ver["kty"], ops)
            attrs = parse_attributes(body.get("attributes"))
            tags = parse_tags(body.get("tags")) if "tags" in body else ver.get("tags")
            a = dict(ver["attributes"])
            a.update({k: val for k, val in attrs.items() if k != "exportable"})
            check_validity(a)
            if "key_ops" in body:
                ver["key_ops"] = ops
            a["updated"] = now()
            ver["attributes"] = a
            ver["tags"] = tags
            if "release_policy" in body:
                if not a.get("exportable"):
                    raise bad("Non-exportable keys must not have release policy")
                ver["release_policy"] = body["release_policy"]
            s.save(rec)
            return 200, self.bundle(rec, ver, api)

    def forbidden(self, ident, perm, fault=True):
        """The 403 an access policy without permission perm gives identity ident: an access
        policy's (fault False), or the forbidden_ops fault's, whose text forbidden_message
        replaces when set."""
        o = self.vault.opts
        text = self.vault.faults.forbidden_message() if fault else None
        return access_denied(ident, perm, o.vault_name, o.region, text)

    def throttle(self, req, op):
        """Raises the 429 of the vault's limits when they do not admit req (operation op)."""
        lim = self.vault.limits
        if not lim.enabled:
            return
        wait = lim.admit(self.limit_class(req, op))
        if wait is not None:
            self.vault.limits_429()
            raise KVError(429, "Throttled", THROTTLED_MSG, headers={"Retry-After": str(wait)})

    def limit_class(self, req, op):
        """The limits' class of req: a create or import by the key type it asks for, another
        operation on an existing key by that key's type and size, anything else "vault"."""
        if op in ("create", "import"):
            try:
                body = json.loads(req.body.decode("utf-8")) if req.body else {}
            except (UnicodeDecodeError, ValueError):
                body = {}
            if not isinstance(body, dict):
                body = {}
            if op == "create":
                return create_class(body.get("kty") == "RSA-HSM")
            jwk = body.get("key") if isinstance(body.get("key"), dict) else {}
            return create_class(jwk.get("kty") == "RSA-HSM" or jwk.get("key_hsm") is not None
                                or body.get("Hsm") is True or body.get("hsm") is True)
        rest = [x for x in req.segs[1:] if x != ""]
        if not rest or rest[0].lower() == "restore" or op is None:
            return "vault"
        s = self.store
        with s.lock:
            rec = s.records.get(rest[0].lower())
            if rec is None:
                return "vault"
            ver = None
            if req.segs[0].lower() == "keys" and len(req.segs) >= 3:
                ver = rec["versions"].get(req.segs[2].lower())
            if ver is None:
                ver = s.latest(rec)
            return key_class(ver["kty"], ver.get("key_size"))

    def usable_version(self, name, version, op):
        """(version, key id, private key) of the version op is carried out with; 403 when the
        key's state or key_ops do not allow op."""
        s = self.store
        with s.lock:
            rec = s.live(name)
            ver = s.version_of(rec, version)
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
            return ver, kid(self.vault.base_url, rec["name"], ver["version"]), s.private_key(rec, ver)

    def crypto(self, name, version, op, body, ident):
        if self.vault.faults.forbidden(op):
            raise self.forbidden(ident, op)
        if op in ("sign", "verify"):
            raise bad("The operation '%s' is not supported by this emulator." % op)
        alg, value = body.get("alg"), body.get("value")
        if alg is None:
            raise bad("Property alg is required.")
        if value is None:
            raise bad("Property value is required.")
        ver, key_id, pkey = self.usable_version(name, version, op)
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
        return 200, {"kid": key_id, "value": b64url(out)}
