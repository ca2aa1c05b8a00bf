"""Secrets Manager's secrets of one region: one record per secret name, with its versions (values,
staging labels), deletion schedule and replication state, persisted crash-safe as
STATE/secretsmanager/secrets/<sha256 of the name>.json.

A record: {"name", "arn", "description", "kms_key_id" (as given; None: aws/secretsmanager),
"tags", "created", "last_changed", "last_accessed", "deleted_date", "deletion_date",
"versions": {version id: {"created", "string" | "binary" (base64), "stages", "last_accessed"}},
"order": [version ids, oldest first], "primary_region", "replicas" (primary: {region:
{"kms_key_id", "status", "message", "pending", "permanent"}}), "replica_of" (a replica: the
primary's ARN), "pending_removals" (regions whose replica is still to be deleted)}.

Call the helpers with self.lock held.
"""

import hashlib
import os
import secrets
import string
import threading
import time

from common.persist import RecordDir

from .errors import sm_error

MAX_VERSIONS = 100
SUFFIX_CHARS = string.ascii_letters + string.digits
NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED_FOR_DELETION = ("You can't perform this operation on the secret because it was marked for"
                       " deletion.")
REPLICA_READ_ONLY = ("Operation not permitted on a replica secret. Call must be made in primary"
                     " secret's region.")


def day(ts):
    """LastAccessedDate: the day (UTC midnight) of ts."""
    return float(int(ts) // 86400 * 86400)


def value_of(version):
    """("string", str) or ("binary", base64 str) of a version."""
    if "string" in version:
        return "string", version["string"]
    return "binary", version["binary"]


class SecretStore:
    def __init__(self, state_dir, region, account):
        self.region, self.account = region, account
        self.lock = threading.RLock()
        self.dir = RecordDir(os.path.join(state_dir, "secretsmanager", "secrets"))
        self.records = {r["name"]: r for r in self.dir.load()}

    # ---- records ----
    def save(self, rec):
        self.records[rec["name"]] = rec
        self.dir.save(hashlib.sha256(rec["name"].encode()).hexdigest(), rec)

    def drop(self, rec):
        self.records.pop(rec["name"], None)
        self.dir.remove(hashlib.sha256(rec["name"].encode()).hexdigest())

    def new_arn(self, name):
        suffix = "".join(secrets.choice(SUFFIX_CHARS) for _ in range(6))
        return "arn:aws:secretsmanager:%s:%s:secret:%s-%s" % (self.region, self.account, name, suffix)

    def arn_in(self, arn, region):
        """The same secret's ARN in another region (same name and suffix)."""
        parts = arn.split(":", 6)
        parts[3] = region
        return ":".join(parts)

    def purge_due(self, rec):
        """Forgets rec when its deletion date has passed; True then."""
        if rec.get("deleted_date") is not None and rec["deletion_date"] <= time.time():
            self.drop(rec)
            return True
        return False

    def by_name(self, name):
        rec = self.records.get(name)
        if rec is not None and self.purge_due(rec):
            return None
        return rec

    def find(self, secret_id):
        """The record secret_id names (name, full ARN or partial ARN of this region), deleted
        or not; else ResourceNotFoundException."""
        if secret_id.startswith("arn:"):
            parts = secret_id.split(":", 6)
            if (len(parts) != 7 or parts[2] != "secretsmanager" or parts[5] != "secret"
                    or parts[3] != self.region or parts[4] != self.account):
                raise sm_error("ResourceNotFoundException", NOT_FOUND)
            for rec in list(self.records.values()):
                if rec["arn"] == secret_id and not self.purge_due(rec):
                    return rec
            rec = self.by_name(parts[6])         # a partial ARN (without the suffix)
            if rec is not None:
                return rec
            raise sm_error("ResourceNotFoundException", NOT_FOUND)
        rec = self.by_name(secret_id)
        if rec is None:
            raise sm_error("ResourceNotFoundException", NOT_FOUND)
        return rec

    @staticmethod
    def check_writable(rec):
        """A write to rec: refused on a replica and while it is scheduled for deletion."""
        if rec.get("replica_of"):
            raise sm_error("InvalidRequestException", REPLICA_READ_ONLY)
        if rec.get("deleted_date") is not None:
            raise sm_error("InvalidRequestException", MARKED_FOR_DELETION)

    @staticmethod
    def new_record(name, arn, region):
        now = time.time()
        return {"name": name, "arn": arn, "description": None, "kms_key_id": None, "tags": [],
                "created": now, "last_changed": now, "last_accessed": None, "deleted_date": None,
                "deletion_date": None, "versions": {}, "order": [], "primary_region": region,
                "replicas": {}, "replica_of": None, "pending_removals": []}

    # ---- versions and staging labels ----
    @staticmethod
    def version_with_stage(rec, stage):
        for vid in rec["order"]:
            if stage in rec["versions"][vid]["stages"]:
                return vid
        return None

    def add_version(self, rec, vid, kind, value, stages):
        """Adds version vid (kind "string"|"binary") carrying stages, moving each label off the
        version that had it; AWSCURRENT moving turns its old holder AWSPREVIOUS."""
        now = time.time()
        rec["versions"][vid] = {"created": now, kind: value, "stages": [], "last_accessed": None}
        rec["order"].append(vid)
        self.move_stages(rec, vid, stages)
        rec["last_changed"] = now
        self.trim(rec)

    def move_stages(self, rec, vid, stages):
        old_current = self.version_with_stage(rec, "AWSCURRENT")
        for stage in stages:
            for other in rec["order"]:
                if other != vid and stage in rec["versions"][other]["stages"]:
                    rec["versions"][other]["stages"].remove(stage)
            if stage not in rec["versions"][vid]["stages"]:
                rec["versions"][vid]["stages"].append(stage)
        if "AWSCURRENT" in stages and old_current is not None and old_current != vid:
            for other in rec["order"]:
                if "AWSPREVIOUS" in rec["versions"][other]["stages"]:
                    rec["versions"][other]["stages"].remove("AWSPREVIOUS")
            rec["versions"][old_current]["stages"].append("AWSPREVIOUS")

    @staticmethod
    def trim(rec):
        """Keeps at most MAX_VERSIONS versions, dropping the oldest without a staging label."""
        while len(rec["order"]) > MAX_VERSIONS:
            for vid in rec["order"]:
                if not rec["versions"][vid]["stages"]:
                    rec["order"].remove(vid)
                    del rec["versions"][vid]
                    break
            else:
                break

    def touch(self, rec, vid):
        """Records an access (LastAccessedDate, a day); saved only when the day changes."""
        d = day(time.time())
        changed = rec.get("last_accessed") != d or rec["versions"][vid].get("last_accessed") != d
        rec["last_accessed"] = d
        rec["versions"][vid]["last_accessed"] = d
        if changed:
            self.save(rec)
