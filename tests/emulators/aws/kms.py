"""KMS of one region (JSON 1.1, target prefix TrentService, signing name kms): symmetric
customer keys and aliases. Kept to what S3 and Secrets Manager need today (CreateKey, DescribeKey,
ListKeys, CreateAlias, ListAliases, and resolve(), which names a key by id, key ARN, alias name or
alias ARN within this region only); the cryptographic operations, asymmetric keys and imported
material are meant to be added here: a key record already holds its spec, usage, origin and
state, and OPERATIONS maps an operation to (handler, member specs).

State: STATE/kms/keys/<key id>.json and STATE/kms/aliases/<sha256 of the alias name>.json.
"""

import hashlib
import os
import re
import threading
import time
import uuid

from common.persist import RecordDir

from .errors import kms_error
from .jsonproto import ST, B, I, L, S

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# the AWS managed keys a service creates on first use (and DescribeKey of their alias creates)
MANAGED = {"alias/aws/s3": "Default key that protects my S3 objects when no other key is defined",
           "alias/aws/secretsmanager": "Default key that protects my Secrets Manager data when no"
                                       " other key is defined"}
KEY_SPECS_NOW = ("SYMMETRIC_DEFAULT",)     # the others are the next task's
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
LIST_KEYS = {"Limit": I(min=1, max=1000), "Marker": S(min=1, max=1024, pattern=r"[\u0020-\u00FF]*")}


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
        self.OPERATIONS = {
            "CreateKey": (self.create_key, CREATE_KEY),
            "DescribeKey": (self.describe_key, DESCRIBE_KEY),
            "ListKeys": (self.list_keys, LIST_KEYS),
            "CreateAlias": (self.create_alias, CREATE_ALIAS),
            "ListAliases": (self.list_aliases, LIST_ALIASES),
        }

    # ---- names ----
    def key_arn(self, key_id):
        return "arn:aws:kms:%s:%s:key/%s" % (self.region, self.account, key_id)

    def alias_arn(self, name):
        return "arn:aws:kms:%s:%s:%s" % (self.region, self.account, name)

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
             "Tags": list(tags), "material": os.urandom(32).hex()}
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
        return {f: v for f, v in k.items() if f not in ("material", "Tags")}

    # ---- the API (params already validated by jsonproto) ----
    def create_key(self, p, principal):
        spec = p.get("KeySpec") or p.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
        given = [p[k] for k in ("KeySpec", "CustomerMasterKeySpec") if p.get(k)]
        if len(set(given)) > 1:
            raise kms_error("ValidationException", "You cannot specify both KeySpec and"
                            " CustomerMasterKeySpec with different values.")
        if spec not in KEY_SPECS_NOW:
            raise kms_error("UnsupportedOperationException", "KeySpec %s is not emulated yet"
                            " (the emulator has SYMMETRIC_DEFAULT keys only)." % spec)
        usage = p.get("KeyUsage", "ENCRYPT_DECRYPT")
        if usage != "ENCRYPT_DECRYPT":
            raise kms_error("ValidationException", "KeyUsage %s is not compatible with KeySpec %s"
                            % (usage, spec))
        origin = p.get("Origin", "AWS_KMS")
        if origin != "AWS_KMS":
            raise kms_error("UnsupportedOperationException", "Origin %s is not emulated yet." % origin)
        if p.get("MultiRegion"):
            raise kms_error("UnsupportedOperationException", "Multi-Region keys are not emulated.")
        if p.get("CustomKeyStoreId") or p.get("XksKeyId"):
            raise kms_error("UnsupportedOperationException", "Custom key stores are not emulated.")
        with self.lock:
            k = self._new_key(p.get("Description", ""), usage, spec, origin, tags=p.get("Tags", []))
        return {"KeyMetadata": self.metadata(k)}

    def describe_key(self, p, principal):
        try:
            with self.lock:
                k = self._resolve(p["KeyId"])
        except NotFound as e:
            raise kms_error("NotFoundException", str(e))
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
