"""The keys API beyond one key's versions: listings of keys, versions and deleted keys (paged with
an absolute nextLink and a $skiptoken, optional empty pages first), soft delete, recover, purge,
and backup and restore (an opaque, AES-GCM-sealed blob).
"""

import base64
import json
import os
import time
import urllib.parse

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .base import KVError, b64decode_any, b64url, bad, now
from .keys_bundles import attributes, bundle, deleted_bundle, deletion, kid
from .keys_model import NAME_RE

BACKUP_PREFIX = b"&AzureKeyVaultKeyBackupV1.microsoft.com"


class KeyLifecycle:
    """vault: the Vault service (its store and base_url)."""

    def __init__(self, vault):
        self.vault = vault
        self.store = vault.store

    # ---- listing ----
    def page_params(self, query):
        mr = query.get("maxresults")
        size = self.store.page_size
        if mr:
            try:
                m = int(mr[0])
            except ValueError:
                raise bad("Property maxresults has invalid value: %s" % mr[0])
            if not 1 <= m <= 25:
                raise bad("Invalid maxresults value %d: must be between 1 and 25." % m)
            size = min(size, m) if self.store.page_size < 25 else m
        tok = query.get("$skiptoken")
        off, empties = 0, 0
        if tok:
            try:
                st = json.loads(b64decode_any(tok[0]))
                off, empties = int(st["o"]), int(st.get("e", 0))
            except (ValueError, KeyError, TypeError):
                raise bad("The $skiptoken value is invalid.")
        return size, off, empties

    def paged(self, req, path, items, api):
        size, off, empties = self.page_params(req.query)
        page = items[off:off + size]
        nxt = off + len(page)
        link = None
        mr = req.query.get("maxresults")
        if nxt < len(items):
            link = {"o": nxt}
        elif empties < self.store.empty_pages:
            link = {"o": nxt, "e": empties + 1}
        if link is not None:
            q = "api-version=%s&$skiptoken=%s" % (api, b64url(json.dumps(link).encode()))
            if mr:
                q += "&maxresults=" + urllib.parse.quote(mr[0])
            link = "%s%s?%s" % (self.vault.base_url, path, q)
        return 200, {"value": page, "nextLink": link}

    def list_item(self, rec, vid, ver, api):
        item = {"kid": kid(self.vault.base_url, rec["name"], vid),
                "attributes": attributes(ver, api, self.store.recoverable_days,
                                         self.store.purge_protection)}
        if ver.get("tags"):
            item["tags"] = ver["tags"]
        return item

    def list_keys(self, req, api, deleted):
        s = self.store
        with s.lock:
            items = []
            for lname in sorted(s.records):
                rec = s.get_rec(lname)
                if rec is None or bool(rec.get("deleted")) != deleted:
                    continue
                if deleted and time.time() < rec["deleted"]["ready_at"]:
                    continue
                item = deletion(self.vault.base_url, rec) if deleted else {}
                item.update(self.list_item(rec, None, s.latest(rec), api))
                items.append(item)
        return self.paged(req, "/deletedkeys" if deleted else "/keys", items, api)

    def list_versions(self, req, name, api):
        """The versions of key name; a name without a live key has none: the service answers
        200 with an empty page ({"value":[],"nextLink":null}), not 404."""
        s = self.store
        with s.lock:
            rec = s.get_rec(name)
            if rec is None or rec.get("deleted"):
                return 200, {"value": [], "nextLink": None}
            items = [self.list_item(rec, vid, rec["versions"][vid], api)
                     for vid in sorted(rec["versions"])]
        return self.paged(req, "/keys/%s/versions" % rec["name"], items, api)

    # ---- soft delete ----
    def delete_key(self, name, api):
        s = self.store
        with s.lock:
            rec = s.live(name)
            t = now()
            days = s.recoverable_days
            rec["deleted"] = {"deletedDate": t, "scheduledPurgeDate": t + days * 86400,
                              "ready_at": time.time() + s.delete_delay}
            s.save(rec)
            return 200, deleted_bundle(s, self.vault.base_url, rec, api)

    def deleted_rec(self, name):
        rec = self.store.get_rec(name)
        if rec is None or not rec.get("deleted") or time.time() < rec["deleted"]["ready_at"]:
            raise KVError(404, "KeyNotFound", "Deleted Key not found: %s" % name)
        return rec

    def get_deleted(self, name, api):
        with self.store.lock:
            return 200, deleted_bundle(self.store, self.vault.base_url, self.deleted_rec(name), api)

    def recover(self, name, api):
        s = self.store
        with s.lock:
            rec = self.deleted_rec(name)
            rec["deleted"] = None
            s.save(rec)
            return 200, bundle(s, self.vault.base_url, rec, s.latest(rec), api)

    def purge(self, name):
        with self.store.lock:
            rec = self.deleted_rec(name)
            if self.store.purge_protection:
                # modelled on the service's refusal; its exact wording is not recorded
                raise KVError(403, "Forbidden", "Operation \"purge\" is not allowed because "
                              "purge protection is enabled for this vault. Key Vault service "
                              "will automatically purge it after the retention period has "
                              "passed.", "PurgeProtectionEnabled")
            self.store.drop(rec)
        return 204, None

    # ---- backup / restore ----
    def backup(self, name):
        s = self.store
        with s.lock:
            rec = s.live(name)
            payload = json.dumps({"name": rec["name"], "versions": rec["versions"],
                                  "order": rec["order"]}).encode()
        nonce = os.urandom(12)
        ct = AESGCM(s.backup_key).encrypt(nonce, payload, BACKUP_PREFIX)
        blob = BACKUP_PREFIX + base64.b64encode(nonce + ct)
        return 200, {"value": b64url(blob)}

    def restore(self, body, api):
        s = self.store
        val = body.get("value")
        if val is None:
            raise bad("Property value is required.")
        try:
            blob = b64decode_any(val)
            if not blob.startswith(BACKUP_PREFIX):
                raise ValueError("prefix")
            raw = base64.b64decode(blob[len(BACKUP_PREFIX):], validate=True)
            payload = AESGCM(s.backup_key).decrypt(raw[:12], raw[12:], BACKUP_PREFIX)
            data = json.loads(payload)
            name = data["name"]
            if not NAME_RE.match(name) or not data["order"]:
                raise ValueError("bad payload")
        except (ValueError, InvalidTag, TypeError, KeyError):
            raise bad("Backup blob contains invalid or corrupt version.")
        with s.lock:
            rec = s.check_name_free_for_new_version(name)
            if rec is not None:
                raise KVError(409, "Conflict",
                              "There was a conflict restoring the key '%s'. This may happen if a key with"
                              " the same name already exists." % name, "ObjectAlreadyExists")
            rec = {"name": name, "versions": data["versions"], "order": data["order"], "deleted": None}
            s.records[name.lower()] = rec
            s.save(rec)
            return 200, bundle(s, self.vault.base_url, rec, s.latest(rec), api)
