"""KMS of one region (JSON 1.1, target prefix TrentService, signing name kms): the key records
(symmetric SYMMETRIC_DEFAULT and RSA_2048/3072/4096 ENCRYPT_DECRYPT keys, Origin AWS_KMS or
EXTERNAL), aliases, tags and key states, and resolve(), which names a key by id, key ARN, alias
name or alias ARN within this region only (S3 and Secrets Manager use it). The cryptographic
operations are kms_data.py's, imported material kms_import.py's, the cryptography kms_crypto.py's;
OPERATIONS maps every operation to (handler, member specs).

State: STATE/kms/keys/<key id>.json (with the key material: "material", 32 bytes hex, of a
symmetric key; "rsa", PKCS#8 DER hex, of an RSA key; none while PendingImport),
STATE/kms/aliases/<sha256 of the alias name>.json, STATE/kms/imports/ (kms_import.py).
"""

import base64
import hashlib
import os
import re
import threading
import time
import uuid

from common.persist import RecordDir

from . import kms_crypto as kc
from .errors import kms_error
from .jsonproto import ST, B, I, L, S
from .kms_data import RSA_ALGS, DataOps
from .kms_import import ImportOps

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# the AWS managed keys a service creates on first use (and DescribeKey of their alias creates)
MANAGED = {"alias/aws/s3": "Default key that protects my S3 objects when no other key is defined",
           "alias/aws/secretsmanager": "Default key that protects my Secrets Manager data when no"
                                       " other key is defined"}
KEY_SPECS = ("SYMMETRIC_DEFAULT", "RSA_2048", "RSA_3072", "RSA_4096")
OTHER_SPECS = ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "HMAC_224",
               "HMAC_256", "HMAC_384", "HMAC_512", "SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87",
               "ECC_NIST_EDWARDS25519")
LIMIT_DEFAULT = 100

CREATE_KEY = {"Policy": S(min=1, max=131072), "Description": S(min=0, max=8192),
              "KeyUsage": S(enum=["SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC"]),
              "CustomerMasterKeySpec": S(), "KeySpec": S(),
              "Origin": S(enum=["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"]),
              "CustomKeyStoreId": S(min=1, max=64), "BypassPolicyLockoutSafetyCheck": B(),
              "Tags": L(ST({"TagKey": S(min=1, max=128, required=True),
                            "TagValue": S(min=0, max=256, required=True)})),
              "MultiRegion": B(), "XksKeyId": S(min=1, max=128)}
DESCRIBE_KEY = {"KeyId": S(min=1, max=2048, required=True), "GrantTokens": L(S(min=1, max=8192), max=10)}
CREATE_ALIAS = {"AliasName": S(min=1, max=256, pattern=r"^[a-zA-Z0-9:/_-]+$", required=True),
                "TargetKeyId": S(min=1, max=2048, required=True)}
LIST_ALIASES = {"KeyId": S(min=1, max=2048), "Limit": I(min=1, max=1000),
                "Marker": S(min=1, max=1024, pattern=r"[\u0020-\u00FF]*")}
DELETE_ALIAS = {"AliasName": S(min=1, max=256, pattern=r"^[a-zA-Z0-9:/_-]+$", required=True)}
KEY_ONLY = {"KeyId": S(min=1, max=2048, required=True)}
TAG = ST({"TagKey": S(min=1, max=128, required=True), "TagValue": S(min=0, max=256, required=True)})
TAG_RESOURCE = {"KeyId": S(min=1, max=2048, required=True), "Tags": L(TAG, required=True)}
UNTAG_RESOURCE = {"KeyId": S(min=1, max=2048, required=True),
                  "TagKeys": L(S(min=1, max=128), required=True)}
LIST_TAGS = {"KeyId": S(min=1, max=2048, required=True), "Limit": I(min=1, max=50),
             "Marker": S(min=1, max=1024, pattern=r"[\u0020-\u00FF]*")}
SCHEDULE_DELETION = {"KeyId": S(min=1, max=2048, required=True),
                     "PendingWindowInDays": I(min=1, max=365)}
LIST_KEYS = {"Limit": I(min=1, max=1000), "Marker": S(min=1, max=1024, pattern=r"[\u0020-\u00FF]*")}


def _b64_answer(func):
    """func with the bytes members of its answer base64-encoded, as JSON 1.1 carries blobs."""
    def call(p, principal):
        out = func(p, principal)
        if isinstance(out, dict):
            out = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
                   for k, v in out.items()}
        return out
    return call


class NotFound(Exception):
    """A key reference that names no key of this region; str() is KMS's message."""


class Kms:
    def __init__(self, state_dir, region, account):
        self.region, self.account = region, account
        self.lock = threading.RLock()
        self.keys_dir = RecordDir(os.path.join(state_dir, "kms", "keys"))
        self.alias_dir = RecordDir(os.path.join(state_dir, "kms", "aliases"))
        self.keys = {k["KeyId"]: k for k in self.keys_dir.load()}
        self.aliases = {a["AliasName"]: a for a in self.alias_dir.load()}
        # a test's concurrent operator (control config kms_alias_flip): after `after` answered
        # GetPublicKey requests naming `alias`, the alias is moved to `target`, once
        self.alias_flip = None
        self.OPERATIONS = {
            "CreateKey": (self.create_key, CREATE_KEY),
            "DescribeKey": (self.describe_key, DESCRIBE_KEY),
            "ListKeys": (self.list_keys, LIST_KEYS),
            "CreateAlias": (self.create_alias, CREATE_ALIAS),
            "ListAliases": (self.list_aliases, LIST_ALIASES),
            "DeleteAlias": (self.delete_alias, DELETE_ALIAS),
            "UpdateAlias": (self.update_alias, CREATE_ALIAS),
            "TagResource": (self.tag_resource, TAG_RESOURCE),
            "UntagResource": (self.untag_resource, UNTAG_RESOURCE),
            "ListResourceTags": (self.list_resource_tags, LIST_TAGS),
            "EnableKey": (self.enable_key, KEY_ONLY),
            "DisableKey": (self.disable_key, KEY_ONLY),
            "ScheduleKeyDeletion": (self.schedule_deletion, SCHEDULE_DELETION),
            "CancelKeyDeletion": (self.cancel_deletion, KEY_ONLY),
        }
        self.imports = ImportOps(self, state_dir)
        self.OPERATIONS.update(self.imports.operations())
        self.OPERATIONS.update(DataOps(self).operations())
        self.OPERATIONS = {op: (_b64_answer(f), spec) for op, (f, spec) in self.OPERATIONS.items()}

    # ---- names ----
    def key_arn(self, key_id):
        return "arn:aws:kms:%s:%s:key/%s" % (self.region, self.account, key_id)

    def alias_arn(self, name):
        return "arn:aws:kms:%s:%s:%s" % (self.region, self.account, name)

    def save_key(self, k):
        with self.lock:
            self._save_key(k)

    def key_for(self, ref):
        """The live key record ref names (NotFoundException otherwise), its imported material
        dropped once its ValidTo has passed."""
        with self.lock:
            try:
                k = self._resolve(ref)
            except NotFound as e:
                raise kms_error("NotFoundException", str(e))
            if k.get("ValidTo") is not None and k["ValidTo"] <= time.time() \
                    and k["KeyState"] in ("Enabled", "Disabled"):
                for f in ("material", "rsa", "ValidTo"):
                    k.pop(f, None)
                k.update({"KeyState": "PendingImport", "Enabled": False})
                self._save_key(k)
            if k["KeyState"] == "PendingDeletion" and k["DeletionDate"] <= time.time():
                self.keys.pop(k["KeyId"], None)
                self.keys_dir.remove(k["KeyId"])
                for a in [a for a in self.aliases.values() if a["TargetKeyId"] == k["KeyId"]]:
                    self.aliases.pop(a["AliasName"], None)
                    self.alias_dir.remove(hashlib.sha256(a["AliasName"].encode()).hexdigest())
                raise kms_error("NotFoundException", "Key '%s' does not exist" % k["Arn"])
            return k

    def _save_key(self, k):
        self.keys[k["KeyId"]] = k
        self.keys_dir.save(k["KeyId"], k)

    def _save_alias(self, a):
        self.aliases[a["AliasName"]] = a
        self.alias_dir.save(hashlib.sha256(a["AliasName"].encode()).hexdigest(), a)

    def _new_key(self, description, usage="ENCRYPT_DECRYPT", spec="SYMMETRIC_DEFAULT",
                 origin="AWS_KMS", manager="CUSTOMER", tags=()):
        key_id = str(uuid.uuid4())
        k = {"KeyId": key_id, "Arn": self.key_arn(key_id), "AWSAccountId": self.account,
             "CreationDate": time.time(), "Enabled": True, "Description": description,
             "KeyUsage": usage, "KeyState": "Enabled", "Origin": origin, "KeyManager": manager,
             "CustomerMasterKeySpec": spec, "KeySpec": spec,
             "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False,
             "Tags": list(tags)}
        if spec != "SYMMETRIC_DEFAULT":
            k["EncryptionAlgorithms"] = list(RSA_ALGS)
        if origin == "EXTERNAL":
            k.update({"KeyState": "PendingImport", "Enabled": False})
        elif spec == "SYMMETRIC_DEFAULT":
            k["material"] = os.urandom(32).hex()
        else:
            k["rsa"] = kc.pkcs8(kc.new_rsa(spec)).hex()
        self._save_key(k)
        return k

    def _managed(self, alias):
        """The AWS managed key of alias (alias/aws/s3 ...), made on first use."""
        a = self.aliases.get(alias)
        if a is None:
            k = self._new_key(MANAGED[alias], manager="AWS")
            now = time.time()
            a = {"AliasName": alias, "AliasArn": self.alias_arn(alias), "TargetKeyId": k["KeyId"],
                 "CreationDate": now, "LastUpdatedDate": now}
            self._save_alias(a)
        return self.keys[a["TargetKeyId"]]

    def managed_key(self, alias):
        with self.lock:
            return dict(self._managed(alias))

    def resolve(self, ref):
        """The key record ref names (key id, key ARN, alias/NAME, alias ARN), in this region
        only; raises NotFound with KMS's message otherwise."""
        with self.lock:
            return dict(self._resolve(ref))

    def _resolve(self, ref):
        if ref.startswith("arn:"):
            parts = ref.split(":", 5)
            if len(parts) != 6 or parts[2] != "kms" or not parts[5]:
                raise NotFound("Invalid arn %s" % ref)
            region, account, resource = parts[3], parts[4], parts[5]
            if region != self.region:
                raise NotFound("Invalid arn %s" % region)
            if account != self.account:
                raise NotFound("Key '%s' does not exist" % ref)
            if resource.startswith("key/"):
                return self._by_id(resource[4:], ref)
            if resource.startswith("alias/"):
                return self._by_alias(resource)
            raise NotFound("Invalid arn %s" % ref)
        if ref.startswith("alias/"):
            return self._by_alias(ref)
        if not UUID_RE.match(ref):
            raise NotFound("Invalid keyId '%s'" % ref)
        return self._by_id(ref, self.key_arn(ref))

    def _by_id(self, key_id, shown):
        k = self.keys.get(key_id)
        if k is None:
            raise NotFound("Key '%s' does not exist" % (self.key_arn(key_id) if UUID_RE.match(key_id)
                                                        else shown))
        return k

    def _by_alias(self, name):
        if name in MANAGED:
            return self._managed(name)
        a = self.aliases.get(name)
        if a is None:
            raise NotFound("Alias %s is not found." % self.alias_arn(name))
        return self.keys[a["TargetKeyId"]]

    @staticmethod
    def metadata(k):
        return {f: v for f, v in k.items() if f[:1].isupper() and f != "Tags"}

    # ---- the API (params already validated by jsonproto) ----
    def create_key(self, p, principal):
        spec = p.get("KeySpec") or p.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
        given = [p[k] for k in ("KeySpec", "CustomerMasterKeySpec") if p.get(k)]
        if len(set(given)) > 1:
            raise kms_error("ValidationException", "You cannot specify both KeySpec and"
                            " CustomerMasterKeySpec with different values.")
        if spec in OTHER_SPECS:
            raise kms_error("UnsupportedOperationException", "KeySpec %s is not emulated (the"
                            " emulator has SYMMETRIC_DEFAULT and RSA_2048/3072/4096 keys)." % spec)
        if spec not in KEY_SPECS:
            raise kms_error("ValidationException", "1 validation error detected: Value '%s' at"
                            " 'keySpec' failed to satisfy constraint: Member must satisfy enum value"
                            " set: [%s]" % (spec, ", ".join(KEY_SPECS + OTHER_SPECS)))
        if spec != "SYMMETRIC_DEFAULT" and "KeyUsage" not in p:
            raise kms_error("ValidationException", "You must specify a KeyUsage value for an"
                            " asymmetric KMS key.")
        usage = p.get("KeyUsage", "ENCRYPT_DECRYPT")
        if usage == "SIGN_VERIFY" and spec != "SYMMETRIC_DEFAULT":
            raise kms_error("UnsupportedOperationException", "KeyUsage SIGN_VERIFY is not emulated.")
        if usage != "ENCRYPT_DECRYPT":
            raise kms_error("ValidationException", "KeyUsage %s is not compatible with KeySpec %s"
                            % (usage, spec))
        origin = p.get("Origin", "AWS_KMS")
        if origin not in ("AWS_KMS", "EXTERNAL"):
            raise kms_error("UnsupportedOperationException", "Origin %s is not emulated." % origin)
        if p.get("MultiRegion"):
            raise kms_error("UnsupportedOperationException", "Multi-Region keys are not emulated.")
        if p.get("CustomKeyStoreId") or p.get("XksKeyId"):
            raise kms_error("UnsupportedOperationException", "Custom key stores are not emulated.")
        with self.lock:
            k = self._new_key(p.get("Description", ""), usage, spec, origin, tags=p.get("Tags", []))
        return {"KeyMetadata": self.metadata(k)}

    def describe_key(self, p, principal):
        with self.lock:
            k = self.key_for(p["KeyId"])
        return {"KeyMetadata": self.metadata(k)}

    def create_alias(self, p, principal):
        name, target = p["AliasName"], p["TargetKeyId"]
        if not name.startswith("alias/"):
            raise kms_error("InvalidAliasNameException", "Alias must start with the prefix"
                            " \"alias/\". Please see"
                            " https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html")
        if name.startswith("alias/aws/"):
            raise kms_error("NotAuthorizedException", "Cannot create alias with prefix 'alias/aws/'")
        if target.startswith("alias/") or (target.startswith("arn:") and ":alias/" in target):
            raise kms_error("ValidationException", "Aliases must refer to keys. Not aliases")
        with self.lock:
            try:
                k = self._resolve(target)
            except NotFound as e:
                raise kms_error("NotFoundException", str(e))
            if name in self.aliases:
                raise kms_error("AlreadyExistsException", "An alias with the name %s already exists"
                                % self.alias_arn(name))
            now = time.time()
            self._save_alias({"AliasName": name, "AliasArn": self.alias_arn(name),
                              "TargetKeyId": k["KeyId"], "CreationDate": now, "LastUpdatedDate": now})
        return None

    def delete_alias(self, p, principal):
        name = p["AliasName"]
        with self.lock:
            if name.startswith("alias/aws/"):
                raise kms_error("NotAuthorizedException", "Cannot delete alias with prefix"
                                " 'alias/aws/'")
            if name not in self.aliases:
                raise kms_error("NotFoundException", "Alias %s is not found."
                                % self.alias_arn(name))
            self.aliases.pop(name)
            self.alias_dir.remove(hashlib.sha256(name.encode()).hexdigest())
        return None

    def public_key_answered(self, ref):
        """Counts an answered GetPublicKey of ref for kms_alias_flip; moves the alias when due."""
        with self.lock:
            f = self.alias_flip
            if f is None or ref != f["alias"]:
                return
            f["after"] -= 1
            if f["after"] > 0:
                return
            self.alias_flip = None
            a = self.aliases.get(f["alias"])
            if a is not None:
                k = self._resolve(f["target"])
                self._save_alias(dict(a, TargetKeyId=k["KeyId"], LastUpdatedDate=time.time()))

    def set_alias_flip(self, v):
        """kms_alias_flip: null, or {"alias": A, "target": KEY, "after": N >= 1}."""
        if v is None:
            self.alias_flip = None
            return
        if (not isinstance(v, dict) or set(v) != {"alias", "target", "after"}
                or not isinstance(v["alias"], str) or not isinstance(v["target"], str)
                or isinstance(v["after"], bool) or not isinstance(v["after"], int)
                or v["after"] < 1):
            raise ValueError('kms_alias_flip: null or {"alias": A, "target": KEY, "after": N}')
        with self.lock:
            try:
                self._resolve(v["target"])
            except NotFound as e:
                raise ValueError("kms_alias_flip: %s" % e)
            self.alias_flip = dict(v)

    def update_alias(self, p, principal):
        """UpdateAlias: the alias must exist and the new target be a key of the same type and
        usage (KMS API reference)."""
        name, target = p["AliasName"], p["TargetKeyId"]
        if name.startswith("alias/aws/"):
            raise kms_error("NotAuthorizedException", "Cannot update alias with prefix 'alias/aws/'")
        with self.lock:
            a = self.aliases.get(name)
            if a is None:
                raise kms_error("NotFoundException", "Alias %s is not found." % self.alias_arn(name))
            try:
                k = self._resolve(target)
            except NotFound as e:
                raise kms_error("NotFoundException", str(e))
            old = self.keys.get(a["TargetKeyId"])
            if old is not None and (old["KeyUsage"] != k["KeyUsage"]
                                    or (old["KeySpec"] == "SYMMETRIC_DEFAULT")
                                    != (k["KeySpec"] == "SYMMETRIC_DEFAULT")):
                raise kms_error("ValidationException", "The new target key must be of the same"
                                " type and usage as the current target key.")
            self._save_alias(dict(a, TargetKeyId=k["KeyId"], LastUpdatedDate=time.time()))
        return None

    @staticmethod
    def _page(items, p, what):
        limit = p.get("Limit", LIMIT_DEFAULT)
        start = 0
        if "Marker" in p:
            try:
                start = int(p["Marker"])
                if not 0 <= start <= len(items):
                    raise ValueError()
            except ValueError:
                raise kms_error("InvalidMarkerException", "Invalid marker: %s" % p["Marker"])
        page = items[start:start + limit]
        out = {what: page, "Truncated": start + limit < len(items)}
        if out["Truncated"]:
            out["NextMarker"] = str(start + limit)
        return out

    def list_aliases(self, p, principal):
        with self.lock:
            items = sorted(self.aliases.values(), key=lambda a: a["AliasName"])
            if "KeyId" in p:
                try:
                    k = self._resolve(p["KeyId"])
                except NotFound as e:
                    raise kms_error("NotFoundException", str(e))
                items = [a for a in items if a["TargetKeyId"] == k["KeyId"]]
        return self._page([dict(a) for a in items], p, "Aliases")

    def list_keys(self, p, principal):
        with self.lock:
            items = [{"KeyId": k["KeyId"], "KeyArn": k["Arn"]}
                     for k in sorted(self.keys.values(), key=lambda k: k["CreationDate"])]
        return self._page(items, p, "Keys")

    # ---- tags ----
    def tag_resource(self, p, principal):
        with self.lock:
            k = self.key_for(p["KeyId"])
            tags = {t["TagKey"]: t["TagValue"] for t in k["Tags"]}
            tags.update({t["TagKey"]: t["TagValue"] for t in p["Tags"]})
            if len(tags) > 50:
                raise kms_error("TagException", "A KMS key can have at most 50 tags.")
            k["Tags"] = [{"TagKey": n, "TagValue": v} for n, v in tags.items()]
            self._save_key(k)
        return None

    def untag_resource(self, p, principal):
        with self.lock:
            k = self.key_for(p["KeyId"])
            k["Tags"] = [t for t in k["Tags"] if t["TagKey"] not in p["TagKeys"]]
            self._save_key(k)
        return None

    def list_resource_tags(self, p, principal):
        with self.lock:
            tags = sorted((dict(t) for t in self.key_for(p["KeyId"])["Tags"]),
                          key=lambda t: t["TagKey"])
        p = dict(p, Limit=p.get("Limit", 50))
        return self._page(tags, p, "Tags")

    # ---- states ----
    def _set_state(self, ref, allowed, state):
        with self.lock:
            k = self.key_for(ref)
            if k["KeyState"] not in allowed:
                raise kms_error("KMSInvalidStateException", "%s is %s" % (k["Arn"], k["KeyState"]))
            if k["Origin"] == "EXTERNAL" and "material" not in k and "rsa" not in k:
                state = "PendingImport"          # a cancelled deletion of a key without material
            k.update({"KeyState": state, "Enabled": state == "Enabled"})
            k.pop("DeletionDate", None)
            k.pop("PendingDeletionWindowInDays", None)
            self._save_key(k)
            return k

    def enable_key(self, p, principal):
        self._set_state(p["KeyId"], ("Enabled", "Disabled"), "Enabled")

    def disable_key(self, p, principal):
        self._set_state(p["KeyId"], ("Enabled", "Disabled"), "Disabled")

    def schedule_deletion(self, p, principal):
        days = p.get("PendingWindowInDays", 30)
        if not 7 <= days <= 30:
            raise kms_error("ValidationException", "PendingWindowInDays must be between 7 and 30.")
        with self.lock:
            k = self.key_for(p["KeyId"])
            if k["KeyState"] == "PendingDeletion":
                raise kms_error("KMSInvalidStateException", "%s is pending deletion." % k["Arn"])
            k.update({"KeyState": "PendingDeletion", "Enabled": False,
                      "DeletionDate": time.time() + days * 86400,
                      "PendingDeletionWindowInDays": days})
            self._save_key(k)
        return {"KeyId": k["Arn"], "DeletionDate": k["DeletionDate"], "KeyState": "PendingDeletion",
                "PendingWindowInDays": days}

    def cancel_deletion(self, p, principal):
        k = self._set_state(p["KeyId"], ("PendingDeletion",), "Disabled")
        return {"KeyId": k["Arn"]}
