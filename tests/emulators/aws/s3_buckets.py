"""S3's bucket operations: CreateBucket (the LocationConstraint must be this region; us-east-1
takes none), HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation, Put/Get/DeleteBucketEncryption
(the default encryption of new objects: AES256 unless set), Put/GetBucketVersioning, and the
listings ListObjectsV2 (prefix, delimiter, max-keys, start-after, continuation-token,
encoding-type=url, fetch-owner) and ListObjects (marker).
"""

import base64
import ipaddress
import json
import re
import time
import urllib.parse

from .errors import S3Error
from .s3_common import (SSE_ALGS, el, invalid_argument, iso_ms, malformed_xml, no_such_bucket,
                        parse_xml, xml_answer)

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEYS = 1000


def valid_bucket_name(name):
    if not BUCKET_RE.match(name) or ".." in name or name.startswith("xn--"):
        return False
    if name.endswith("-s3alias") or name.endswith("--ol-s3"):
        return False
    try:
        ipaddress.IPv4Address(name)
        return False
    except ValueError:
        return True


def first(req, name, default=None):
    v = req.query.get(name)
    return v[0] if v else default


class Buckets:
    def __init__(self, s3):
        self.s3 = s3                   # s3_api.S3: store, region, account, kms
        self.store = s3.store

    def owner_xml(self):
        return "<Owner>%s%s</Owner>" % (el("ID", self.s3.canonical_id),
                                        el("DisplayName", "keyplane-test"))

    def bucket(self, name):
        """The bucket record (store lock held); NoSuchBucket otherwise."""
        b = self.store.buckets.get(name)
        if b is None:
            raise no_such_bucket(name)
        return b

    # ---- buckets ----
    def create(self, req, name):
        if not valid_bucket_name(name):
            raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.", "/" + name,
                          [("BucketName", name)])
        region = self.s3.region
        constraint = None
        if req.body.strip():
            root = parse_xml(req.body, "CreateBucketConfiguration")
            lc = root.find("LocationConstraint")
            constraint = (lc.text or "").strip() if lc is not None else None
            constraint = constraint or None
        acl = req.headers.get("x-amz-acl")
        if acl not in (None, "private", "bucket-owner-full-control"):
            raise S3Error(400, "InvalidBucketAclWithObjectOwnership", "Bucket cannot have ACLs set"
                          " with ObjectOwnership's BucketOwnerEnforced setting", "/" + name)
        if region == "us-east-1":
            if constraint == "us-east-1":
                raise S3Error(400, "InvalidLocationConstraint", "The specified location-constraint is"
                              " not valid", "/" + name, [("LocationConstraint", constraint)])
            if constraint is not None:
                raise S3Error(400, "IllegalLocationConstraintException", "The %s location constraint"
                              " is incompatible for the region specific endpoint this request was"
                              " sent to." % constraint, "/" + name)
        elif constraint != region:
            raise S3Error(400, "IllegalLocationConstraintException", "The %s location constraint is"
                          " incompatible for the region specific endpoint this request was sent to."
                          % (constraint or "unspecified"), "/" + name)
        with self.store.lock:
            if name in self.store.buckets:
                if region == "us-east-1":       # S3's legacy answer in us-east-1: 200, no change
                    return 200, None, {"Location": "/" + name}
                raise S3Error(409, "BucketAlreadyOwnedByYou", "Your previous request to create the"
                              " named bucket succeeded and you already own it.", "/" + name,
                              [("BucketName", name)])
            self.store.save_bucket({"name": name, "created": time.time(), "region": region,
                                    "encryption": None, "versioning": None,
                                    "object_lock": (req.headers.get("x-amz-bucket-object-lock-enabled")
                                                    or "").lower() == "true"})
        loc = "/" + name if region == "us-east-1" else "http://%s.s3.%s.amazonaws.com/" % (name, region)
        return 200, None, {"Location": loc}

    def head(self, req, name):
        with self.store.lock:
            self.bucket(name)
        return 200, None, {"x-amz-bucket-region": self.s3.region, "x-amz-access-point-alias": "false"}

    def delete(self, req, name):
        with self.store.lock:
            self.bucket(name)
            if self.store.objects.get(name):
                raise S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty",
                              "/" + name, [("BucketName", name)])
            for uid in [u for u, rec in self.store.uploads.items() if rec["bucket"] == name]:
                for part in self.store.uploads[uid]["parts"].values():
                    self.store.remove_data(part["data"])
                self.store.drop_upload(uid)
            self.store.drop_bucket(name)
        return 204, None

    def list_buckets(self, req):
        with self.store.lock:
            items = sorted(self.store.buckets.values(), key=lambda b: b["name"])
            inner = "".join("<Bucket>%s%s</Bucket>" % (el("Name", b["name"]),
                                                        el("CreationDate", iso_ms(b["created"])))
                            for b in items)
        return xml_answer("ListAllMyBucketsResult", self.owner_xml() + "<Buckets>%s</Buckets>" % inner)

    def location(self, req, name):
        with self.store.lock:
            self.bucket(name)
        region = "" if self.s3.region == "us-east-1" else self.s3.region
        return xml_answer("LocationConstraint", region)

    # ---- default encryption ----
    def put_encryption(self, req, name):
        root = parse_xml(req.body, "ServerSideEncryptionConfiguration")
        rules = root.findall("Rule")
        if len(rules) != 1:
            raise malformed_xml()
        rule = rules[0]
        d = rule.find("ApplyServerSideEncryptionByDefault")
        if d is None or d.find("SSEAlgorithm") is None:
            raise malformed_xml()
        alg = (d.find("SSEAlgorithm").text or "").strip()
        if alg not in SSE_ALGS:
            raise malformed_xml()
        key_el = d.find("KMSMasterKeyID")
        key = (key_el.text or "").strip() if key_el is not None else None
        if key and alg == "AES256":
            raise invalid_argument("a KMSMasterKeyID is not applicable if the default sse algorithm"
                                   " is not aws:kms or aws:kms:dsse",
                                   "ApplyServerSideEncryptionByDefault")
        bk = rule.find("BucketKeyEnabled")
        bucket_key = bk is not None and (bk.text or "").strip().lower() == "true"
        with self.store.lock:
            b = self.bucket(name)
            b["encryption"] = {"alg": alg, "kms_key": key or None, "bucket_key": bucket_key}
            self.store.save_bucket(b)
        return 200, None

    def get_encryption(self, req, name):
        with self.store.lock:
            enc = self.bucket(name).get("encryption") or {"alg": "AES256", "bucket_key": False}
        inner = el("SSEAlgorithm", enc["alg"])
        if enc.get("kms_key"):
            inner += el("KMSMasterKeyID", enc["kms_key"])
        body = "<Rule><ApplyServerSideEncryptionByDefault>%s</ApplyServerSideEncryptionByDefault>%s" \
               "</Rule>" % (inner, el("BucketKeyEnabled", "true" if enc.get("bucket_key") else "false"))
        return xml_answer("ServerSideEncryptionConfiguration", body)

    def delete_encryption(self, req, name):
        with self.store.lock:
            b = self.bucket(name)
            b["encryption"] = None
            self.store.save_bucket(b)
        return 204, None

    # ---- versioning ----
    def put_versioning(self, req, name):
        root = parse_xml(req.body, "VersioningConfiguration")
        st = root.find("Status")
        status = (st.text or "").strip() if st is not None else None
        if status not in ("Enabled", "Suspended"):
            raise malformed_xml()
        mfa = root.find("MfaDelete")
        if mfa is not None and (mfa.text or "").strip() == "Enabled":
            raise not_supported_mfa(name)
        with self.store.lock:
            b = self.bucket(name)
            b["versioning"] = status
            self.store.save_bucket(b)
        return 200, None

    def get_versioning(self, req, name):
        with self.store.lock:
            status = self.bucket(name).get("versioning")
        return xml_answer("VersioningConfiguration", el("Status", status) if status else "")

    # ---- listings ----
    def list_objects(self, req, name, v2):
        encoding = first(req, "encoding-type")
        if encoding is not None and encoding != "url":
            raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type",
                                   encoding)
        raw_max = first(req, "max-keys", str(MAX_KEYS))
        try:
            max_keys = int(raw_max)
            if max_keys < 0 or max_keys > 2 ** 31 - 1:
                raise ValueError()
        except ValueError:
            raise invalid_argument("Provided max-keys not an integer or within integer range",
                                   "max-keys", raw_max)
        max_keys = min(max_keys, MAX_KEYS)
        prefix = first(req, "prefix", "")
        delim = first(req, "delimiter", "")
        token = first(req, "continuation-token") if v2 else None
        start_after = first(req, "start-after", "") if v2 else first(req, "marker", "")
        after, after_prefix = start_after, False
        if token is not None:
            try:
                t = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                after, after_prefix = t["k"], bool(t["p"])
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                raise invalid_argument("The continuation token provided is incorrect",
                                       "continuation-token", token)
        with self.store.lock:
            self.bucket(name)
            objs = self.store.objects.get(name, {})
            live = sorted((k, v) for k, o in objs.items() for v in [self.store.latest(o)] if v)
        contents, prefixes, truncated, last = [], [], False, None
        for key, ver in live:
            if after and (key <= after or (after_prefix and key.startswith(after))):
                continue
            if not key.startswith(prefix):
                continue
            if delim:
                i = key.find(delim, len(prefix))
                if i >= 0:
                    cp = key[:i + len(delim)]
                    if prefixes and prefixes[-1] == cp:
                        continue
                    if len(contents) + len(prefixes) >= max_keys:
                        truncated = True
                        break
                    prefixes.append(cp)
                    last = (cp, True)
                    continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            contents.append((key, ver))
            last = (key, False)
        if max_keys == 0:
            truncated = False
        enc = (lambda s: urllib.parse.quote(s, safe="/")) if encoding == "url" else (lambda s: s)
        parts = [el("Name", name), el("Prefix", enc(prefix))]
        if v2:
            if token is not None:
                parts.append(el("ContinuationToken", token))
            if start_after:
                parts.append(el("StartAfter", enc(start_after)))
            parts.append(el("KeyCount", len(contents) + len(prefixes)))
        else:
            parts.append(el("Marker", enc(start_after)))
        parts.append(el("MaxKeys", max_keys))
        if delim:
            parts.append(el("Delimiter", enc(delim)))
        if encoding:
            parts.append(el("EncodingType", encoding))
        parts.append(el("IsTruncated", "true" if truncated else "false"))
        if truncated and last is not None:
            if v2:
                nt = base64.urlsafe_b64encode(json.dumps({"k": last[0], "p": last[1]}).encode()).decode()
                parts.append(el("NextContinuationToken", nt))
            elif delim:
                parts.append(el("NextMarker", enc(last[0])))
        owner = not v2 or first(req, "fetch-owner") == "true"
        for key, ver in contents:
            parts.append("<Contents>%s%s%s%s%s%s</Contents>" % (
                el("Key", enc(key)), el("LastModified", iso_ms(ver["last_modified"])),
                el("ETag", ver["etag"]), el("Size", ver["size"]),
                self.owner_xml() if owner else "",
                el("StorageClass", ver.get("storage_class") or "STANDARD")))
        for cp in prefixes:
            parts.append("<CommonPrefixes>%s</CommonPrefixes>" % el("Prefix", enc(cp)))
        return xml_answer("ListBucketResult", "".join(parts))


def not_supported_mfa(name):
    return S3Error(400, "InvalidRequest", "MFA delete is not emulated", "/" + name)
