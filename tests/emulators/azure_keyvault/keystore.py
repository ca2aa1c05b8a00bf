"""The vault's keys: one record per key name (all versions with their PKCS#8 private keys,
attributes, tags and soft-delete state), each persisted as one crash-safe file
STATE/keys/<lowercase name>.json, plus a cache of loaded private keys and the vault-wide
settings (recoverable days, paging, delete delay, the backup sealing key).
"""

import base64
import hashlib
import os
import threading
import time

from cryptography.hazmat.primitives import serialization

from common.persist import RecordDir

from .base import KVError, key_not_found, now


class KeyStore:
    """Call the record helpers with self.lock held; add_version takes it itself."""

    def __init__(self, opts):
        self.state_dir = os.path.abspath(opts.state_dir)
        self.dir = RecordDir(os.path.join(self.state_dir, "keys"))
        self.lock = threading.RLock()
        self.records = {}        # lower name -> record
        self.key_cache = {}      # (lower name, version) -> private key object
        self.recoverable_days = opts.recoverable_days
        self.purge_protection = opts.purge_protection
        self.page_size = opts.page_size
        self.empty_pages = opts.empty_pages
        self.delete_delay = opts.delete_delay
        secret = (opts.backup_secret or "keyplane-akv-emulator").encode()
        self.backup_key = hashlib.sha256(b"akv-emu-backup:" + secret).digest()
        for rec in self.dir.load():
            self.records[rec["name"].lower()] = rec

    def save(self, rec):
        self.dir.save(rec["name"].lower(), rec)

    def drop(self, rec):
        """Forgets a key for good (purge)."""
        lname = rec["name"].lower()
        self.records.pop(lname, None)
        for k in [k for k in self.key_cache if k[0] == lname]:
            del self.key_cache[k]
        self.dir.remove(lname)

    def purge_expired(self, rec):
        d = rec.get("deleted")
        if d and d["scheduledPurgeDate"] <= now():
            self.drop(rec)
            return True
        return False

    def get_rec(self, name):
        """The record of name, deleted or not, or None."""
        rec = self.records.get(name.lower())
        if rec is not None and self.purge_expired(rec):
            return None
        return rec

    def live(self, name):
        """The record of name when it is not deleted; else 404 KeyNotFound."""
        rec = self.get_rec(name)
        if rec is None or rec.get("deleted"):
            raise key_not_found(name)
        return rec

    def check_name_free_for_new_version(self, name):
        """The live record of name or None; 409 while name is deleted (being or recoverable)."""
        rec = self.get_rec(name)
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
        """The version of rec ("" or None: the latest); else 404 KeyNotFound."""
        if version in ("", None):
            return self.latest(rec)
        ver = rec["versions"].get(version.lower())
        if ver is None:
            raise key_not_found(rec["name"] + "/" + version)
        return ver

    def latest(self, rec):
        return rec["versions"][rec["order"][-1]]

    def add_version(self, name, ver, pkey):
        """Insert a new version (name checked again under the lock)."""
        with self.lock:
            rec = self.check_name_free_for_new_version(name)
            if rec is None:
                rec = {"name": name, "versions": {}, "order": [], "deleted": None}
            rec["versions"][ver["version"]] = ver
            rec["order"].append(ver["version"])
            self.records[name.lower()] = rec
            self.key_cache[(name.lower(), ver["version"])] = pkey
            self.save(rec)
            return rec, ver
