"""Secrets Manager's API of one region (JSON 1.1, target prefix secretsmanager): CreateSecret,
PutSecretValue, GetSecretValue, DescribeSecret, ListSecretVersionIds, ListSecrets, DeleteSecret,
RestoreSecret, TagResource, UntagResource, and (through replication.py) ReplicateSecretToRegions
and RemoveRegionsFromReplication.

Facts from the service model (botocore's secretsmanager/2017-10-17) and the API reference:
ClientRequestToken 32..64 becomes the VersionId (same token + same value: the existing version,
no new one; same token + another value: ResourceExistsException); staging labels move as
PutSecretValue's documentation says; values 1..65536 bytes, exactly one of SecretString and
SecretBinary; names 1..512 of ASCII letters, digits and /_+=.@-; errors carry "Message".
"""

import base64
import json
import time

from .errors import sm_error, validation_error
from .jsonproto import BLOB, TAGS_SM, B, I, L, S, ST
from .kms import NotFound
from .secrets_store import MARKED_FOR_DELETION, REPLICA_READ_ONLY, value_of

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-")
MAX_VALUE = 65536
SECRET_ID = S(min=1, max=2048, required=True)
TOKEN = S(min=32, max=64)
VALUE_STRING = S(min=0, max=MAX_VALUE, sensitive=True)
VALUE_BINARY = BLOB(min=0, max=MAX_VALUE, sensitive=True)
REGION = S(min=1, max=128, pattern=r"^([a-z]+-)+\d+$")
REPLICA_REGIONS = L(ST({"Region": REGION, "KmsKeyId": S(min=0, max=2048)}), min=1)

SPECS = {
    "CreateSecret": {"Name": S(min=1, max=512, required=True), "ClientRequestToken": TOKEN,
                     "Description": S(max=2048), "KmsKeyId": S(min=0, max=2048),
                     "SecretBinary": VALUE_BINARY, "SecretString": VALUE_STRING, "Tags": TAGS_SM,
                     "AddReplicaRegions": REPLICA_REGIONS, "ForceOverwriteReplicaSecret": B()},
    "PutSecretValue": {"SecretId": SECRET_ID, "ClientRequestToken": TOKEN,
                       "SecretBinary": VALUE_BINARY, "SecretString": VALUE_STRING,
                       "VersionStages": L(S(min=1, max=256), min=1, max=20),
                       "RotationToken": S(min=36, max=256, sensitive=True)},
    "GetSecretValue": {"SecretId": SECRET_ID, "VersionId": S(min=32, max=64),
                       "VersionStage": S(min=1, max=256)},
    "DescribeSecret": {"SecretId": SECRET_ID},
    "ListSecretVersionIds": {"SecretId": SECRET_ID, "MaxResults": I(min=1, max=100),
                             "NextToken": S(min=1, max=4096), "IncludeDeprecated": B()},
    "ListSecrets": {"MaxResults": I(min=1, max=100), "NextToken": S(min=1, max=4096),
                    "Filters": L(ST({"Key": S(enum=["description", "name", "tag-key", "tag-value",
                                                    "primary-region", "all"]),
                                     "Values": L(S(max=512, pattern=r"^\!?[a-zA-Z0-9 :_@\/\+\=\.\-]*$"),
                                                 min=1, max=10)}), max=10),
                    "SortOrder": S(enum=["asc", "desc"]), "IncludePlannedDeletion": B()},
    "DeleteSecret": {"SecretId": SECRET_ID, "RecoveryWindowInDays": I(),
                     "ForceDeleteWithoutRecovery": B()},
    "RestoreSecret": {"SecretId": SECRET_ID},
    "TagResource": {"SecretId": SECRET_ID, "Tags": dict(TAGS_SM, required=True)},
    "UntagResource": {"SecretId": SECRET_ID, "TagKeys": L(S(min=1, max=128), required=True)},
    "ReplicateSecretToRegions": {"SecretId": SECRET_ID,
                                 "AddReplicaRegions": dict(REPLICA_REGIONS, required=True),
                                 "ForceOverwriteReplicaSecret": B()},
    "RemoveRegionsFromReplication": {"SecretId": SECRET_ID,
                                     "RemoveReplicaRegions": L(REGION, min=1, required=True)},
}
ENCRYPTION_FAILURE = ("Secrets Manager can't encrypt the protected secret text using the provided"
                      " KMS key. Check that the KMS key is available, enabled, and not in an invalid"
                      " state. (%s)")


def b64(data):
    return base64.b64encode(data).decode()


def invalid_param(msg):
    return sm_error("InvalidParameterException", msg)


def invalid_request(msg):
    return sm_error("InvalidRequestException", msg)


def too_large(member):
    return validation_error("secretsmanager", [
        "Value at '%s' failed to satisfy constraint: Member must have length less than or equal"
        " to %d" % (member, MAX_VALUE)])


def secret_value(p, required):
    """(kind, stored value) of the request's SecretString or SecretBinary, or None when neither
    (and not required)."""
    has_s, has_b = "SecretString" in p, "SecretBinary" in p
    if has_s and has_b:
        raise invalid_param("You can't specify both a binary secret value and a string secret value"
                            " in the same secret.")
    if not has_s and not has_b:
        if required:
            raise invalid_request("You must provide either SecretString or SecretBinary.")
        return None
    if has_s:
        size = len(p["SecretString"].encode("utf-8"))
        if size > MAX_VALUE:
            raise too_large("secretString")
        if size == 0:
            raise invalid_param("You must provide a non-empty SecretString (1 to 65536 bytes).")
        return "string", p["SecretString"]
    if len(p["SecretBinary"]) == 0:
        raise invalid_param("You must provide a non-empty SecretBinary (1 to 65536 bytes).")
    return "binary", b64(p["SecretBinary"])


class SecretsApi:
    def __init__(self, store, kms, replication):
        self.store = store
        self.kms = kms
        self.replication = replication
        self.OPERATIONS = {op: (getattr(self, _snake(op)), spec) for op, spec in SPECS.items()}

    def _kms_check(self, key_ref):
        if key_ref:
            try:
                self.kms.resolve(key_ref)
            except NotFound as e:
                raise sm_error("EncryptionFailure", ENCRYPTION_FAILURE % e)

    @staticmethod
    def _token(p, required=True):
        tok = p.get("ClientRequestToken")
        if tok is None and required:
            # botocore and the CLI fill it in; the API reference says a raw client must send one
            raise invalid_param("ClientRequestToken is required: the API reference requires raw"
                                " HTTP clients to generate one (32 to 64 characters, e.g. a UUID).")
        return tok

    # ---- create and write ----
    def create_secret(self, p, principal):
        name = p["Name"]
        if not set(name) <= NAME_CHARS:
            raise invalid_param("Invalid name. Must be a valid name containing alphanumeric"
                                " characters, or any of the following: -/_+=.@!")
        value = secret_value(p, required=False)
        tok = self._token(p, required=value is not None)
        self._kms_check(p.get("KmsKeyId"))
        st = self.store
        with st.lock:
            rec = st.by_name(name)
            if rec is not None:
                if rec.get("deleted_date") is not None:
                    raise invalid_request("You can't create this secret because a secret with this"
                                          " name is already scheduled for deletion.")
                if rec.get("replica_of"):
                    raise sm_error("ResourceExistsException", "The operation failed because the"
                                   " secret %s already exists (as a replica)." % name)
                ver = rec["versions"].get(tok) if tok else None
                if ver is not None and value is not None and value_of(ver) == value:
                    return self._create_answer(rec, tok)
                if ver is not None:
                    raise sm_error("ResourceExistsException", "You can't modify an existing version,"
                                   " you can only create a new version.")
                raise sm_error("ResourceExistsException", "The operation failed because the secret"
                               " %s already exists." % name)
            rec = st.new_record(name, st.new_arn(name), st.region)
            rec["description"] = p.get("Description")
            rec["kms_key_id"] = p.get("KmsKeyId") or None
            rec["tags"] = p.get("Tags", [])
            if value is not None:
                st.add_version(rec, tok, value[0], value[1], ["AWSCURRENT"])
            st.save(rec)
        if p.get("AddReplicaRegions"):
            self.replication.add_regions(rec["name"], p["AddReplicaRegions"],
                                         p.get("ForceOverwriteReplicaSecret", False))
        with st.lock:
            return self._create_answer(st.by_name(name) or rec, tok if value is not None else None)

    def _create_answer(self, rec, vid):
        out = {"ARN": rec["arn"], "Name": rec["name"]}
        if vid:
            out["VersionId"] = vid
        if rec["replicas"]:
            out["ReplicationStatus"] = self.replication.status_list(rec)
        return out

    def put_secret_value(self, p, principal):
        value = secret_value(p, required=True)
        tok = self._token(p)
        stages = p.get("VersionStages", ["AWSCURRENT"])
        st = self.store
        with st.lock:
            rec = st.find(p["SecretId"])
            st.check_writable(rec)
            ver = rec["versions"].get(tok)
            if ver is not None:
                if value_of(ver) != value:
                    raise sm_error("ResourceExistsException", "You can't modify an existing version,"
                                   " you can only create a new version.")
                return {"ARN": rec["arn"], "Name": rec["name"], "VersionId": tok,
                        "VersionStages": list(ver["stages"])}
            st.add_version(rec, tok, value[0], value[1], stages)
            st.save(rec)
            out = {"ARN": rec["arn"], "Name": rec["name"], "VersionId": tok,
                   "VersionStages": list(rec["versions"][tok]["stages"])}
            name = rec["name"]
        self.replication.changed(name)
        return out

    # ---- read ----
    def get_secret_value(self, p, principal):
        st = self.store
        with st.lock:
            rec = st.find(p["SecretId"])
            if rec.get("deleted_date") is not None:
                raise invalid_request(MARKED_FOR_DELETION)
            vid, stage = p.get("VersionId"), p.get("VersionStage")
            if vid is not None:
                ver = rec["versions"].get(vid)
                if ver is None:
                    raise sm_error("ResourceNotFoundException", "Secrets Manager can't find the"
                                   " specified secret value for VersionId: %s" % vid)
                if stage is not None and stage not in ver["stages"]:
                    raise sm_error("ResourceNotFoundException", "Secrets Manager can't find the"
                                   " specified secret value for VersionId: %s and staging label: %s"
                                   % (vid, stage))
            else:
                stage = stage or "AWSCURRENT"
                vid = st.version_with_stage(rec, stage)
                if vid is None:
                    raise sm_error("ResourceNotFoundException", "Secrets Manager can't find the"
                                   " specified secret value for staging label: %s" % stage)
                ver = rec["versions"][vid]
            st.touch(rec, vid)
            out = {"ARN": rec["arn"], "Name": rec["name"], "VersionId": vid,
                   "VersionStages": list(ver["stages"]), "CreatedDate": ver["created"]}
            kind, value = value_of(ver)
            out["SecretString" if kind == "string" else "SecretBinary"] = value
            return out

    def _common(self, rec, stages_member):
        out = {"ARN": rec["arn"], "Name": rec["name"], "LastChangedDate": rec["last_changed"],
               "CreatedDate": rec["created"]}
        if rec.get("description") is not None:
            out["Description"] = rec["description"]
        if rec.get("kms_key_id"):
            out["KmsKeyId"] = rec["kms_key_id"]
        if rec.get("last_accessed") is not None:
            out["LastAccessedDate"] = rec["last_accessed"]
        if rec.get("deleted_date") is not None:
            out["DeletedDate"] = rec["deleted_date"]
        if rec.get("tags"):
            out["Tags"] = rec["tags"]
        out[stages_member] = {vid: list(rec["versions"][vid]["stages"]) for vid in rec["order"]
                              if rec["versions"][vid]["stages"]}
        if rec["replicas"] or rec.get("replica_of"):
            out["PrimaryRegion"] = rec["primary_region"]
        return out

    def describe_secret(self, p, principal):
        with self.store.lock:
            rec = self.store.find(p["SecretId"])
            out = self._common(rec, "VersionIdsToStages")
            if rec["replicas"]:
                out["ReplicationStatus"] = self.replication.status_list(rec)
            return out

    def list_secret_version_ids(self, p, principal):
        with self.store.lock:
            rec = self.store.find(p["SecretId"])
            vids = [v for v in reversed(rec["order"])
                    if p.get("IncludeDeprecated") or rec["versions"][v]["stages"]]
            items = []
            for vid in vids:
                ver = rec["versions"][vid]
                e = {"VersionId": vid, "VersionStages": list(ver["stages"]),
                     "CreatedDate": ver["created"],
                     "KmsKeyIds": [rec.get("kms_key_id") or "DefaultEncryptionKey"]}
                if ver.get("last_accessed") is not None:
                    e["LastAccessedDate"] = ver["last_accessed"]
                items.append(e)
            out = {"ARN": rec["arn"], "Name": rec["name"]}
        page, token = paginate(items, p, "v:" + rec["arn"])
        out["Versions"] = page
        if token:
            out["NextToken"] = token
        return out

    def list_secrets(self, p, principal):
        with self.store.lock:
            recs = [r for r in list(self.store.records.values()) if not self.store.purge_due(r)]
            if not p.get("IncludePlannedDeletion"):
                recs = [r for r in recs if r.get("deleted_date") is None]
            for f in p.get("Filters", []):
                recs = [r for r in recs if filter_match(r, f)]
            recs.sort(key=lambda r: (r["created"], r["name"]), reverse=p.get("SortOrder") == "desc")
            items = [self._common(r, "SecretVersionsToStages") for r in recs]
        page, token = paginate(items, p, "s:" + json.dumps(p.get("Filters", []), sort_keys=True))
        out = {"SecretList": page}
        if token:
            out["NextToken"] = token
        return out

    # ---- lifecycle and tags ----
    def delete_secret(self, p, principal):
        force = p.get("ForceDeleteWithoutRecovery", False)
        if force and "RecoveryWindowInDays" in p:
            raise invalid_param("You can't use ForceDeleteWithoutRecovery in conjunction with"
                                " RecoveryWindowInDays.")
        days = p.get("RecoveryWindowInDays", 30)
        if not force and not 7 <= days <= 30:
            raise invalid_param("The RecoveryWindowInDays value must be between 7 and 30 days"
                                " (inclusive).")
        st = self.store
        with st.lock:
            rec = st.find(p["SecretId"])
            if rec.get("replica_of"):
                raise invalid_request(REPLICA_READ_ONLY)
            if rec["replicas"]:
                raise invalid_request("You can't delete secret %s while it is replicated to %s:"
                                      " remove the replica regions first."
                                      % (rec["name"], ", ".join(sorted(rec["replicas"]))))
            if rec.get("deleted_date") is not None and not force:
                raise invalid_request(MARKED_FOR_DELETION)
            now = time.time()
            out = {"ARN": rec["arn"], "Name": rec["name"]}
            if force:
                st.drop(rec)
                out["DeletionDate"] = now
            else:
                rec["deleted_date"] = now
                rec["deletion_date"] = now + days * 86400
                st.save(rec)
                out["DeletionDate"] = rec["deletion_date"]
            return out

    def restore_secret(self, p, principal):
        st = self.store
        with st.lock:
            rec = st.find(p["SecretId"])
            if rec.get("replica_of"):
                raise invalid_request(REPLICA_READ_ONLY)
            if rec.get("deleted_date") is not None:
                rec["deleted_date"] = rec["deletion_date"] = None
                st.save(rec)
            return {"ARN": rec["arn"], "Name": rec["name"]}

    def tag_resource(self, p, principal):
        st = self.store
        with st.lock:
            rec = st.find(p["SecretId"])
            st.check_writable(rec)
            tags = {t["Key"]: t.get("Value", "") for t in rec["tags"]}
            for t in p["Tags"]:
                tags[t["Key"]] = t.get("Value", "")
            if len(tags) > 50:
                raise invalid_param("The request failed because it would exceed the limit of 50 tags.")
            rec["tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
            st.save(rec)
            name = rec["name"]
        self.replication.changed(name)
        return None

    def untag_resource(self, p, principal):
        st = self.store
        with st.lock:
            rec = st.find(p["SecretId"])
            st.check_writable(rec)
            rec["tags"] = [t for t in rec["tags"] if t["Key"] not in set(p["TagKeys"])]
            st.save(rec)
            name = rec["name"]
        self.replication.changed(name)
        return None

    # ---- replication (replication.py does the work) ----
    def replicate_secret_to_regions(self, p, principal):
        with self.store.lock:
            rec = self.store.find(p["SecretId"])
            self.store.check_writable(rec)
            name = rec["name"]
        statuses = self.replication.add_regions(name, p["AddReplicaRegions"],
                                                p.get("ForceOverwriteReplicaSecret", False))
        return {"ARN": rec["arn"], "ReplicationStatus": statuses}

    def remove_regions_from_replication(self, p, principal):
        with self.store.lock:
            rec = self.store.find(p["SecretId"])
            if rec.get("replica_of"):
                raise invalid_request(REPLICA_READ_ONLY)
            name = rec["name"]
        remaining = self.replication.remove_regions(name, p["RemoveReplicaRegions"])
        return {"ARN": rec["arn"], "ReplicationStatus": remaining}


def _snake(op):
    out = ""
    for i, c in enumerate(op):
        if c.isupper() and i:
            out += "_"
        out += c.lower()
    return out


def paginate(items, p, scope):
    """(page, NextToken or None) of items; the token names its listing (scope), so a token of
    another listing is InvalidNextTokenException."""
    start = 0
    if "NextToken" in p:
        try:
            tok = json.loads(base64.urlsafe_b64decode(p["NextToken"].encode()).decode())
            if tok["scope"] != scope or not 0 <= int(tok["start"]) <= len(items):
                raise ValueError()
            start = int(tok["start"])
        except (ValueError, KeyError, TypeError):
            raise sm_error("InvalidNextTokenException", "The NextToken value is invalid.")
    n = p.get("MaxResults", 100)
    page = items[start:start + n]
    token = None
    if start + n < len(items):
        raw = json.dumps({"scope": scope, "start": start + n}).encode()
        token = base64.urlsafe_b64encode(raw).decode()
    return page, token


def filter_match(rec, f):
    """ListSecrets' Filters: prefix matches per key, "!" negates a value."""
    key = f.get("Key", "all")
    fields = {"name": [rec["name"]], "description": [rec.get("description") or ""],
              "tag-key": [t["Key"] for t in rec.get("tags", [])],
              "tag-value": [t.get("Value", "") for t in rec.get("tags", [])],
              "primary-region": [rec["primary_region"]]}
    cands = sum(fields.values(), []) if key == "all" else fields[key]
    for v in f.get("Values", []):
        neg = v.startswith("!")
        v = v[1:] if neg else v
        hit = any(c.startswith(v) for c in cands)
        if hit == neg:
            return False
    return True
