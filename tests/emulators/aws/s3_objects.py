"""S3's object operations: PutObject, GetObject (Range, partNumber, conditional headers,
response-* overrides), HeadObject, DeleteObject, DeleteObjects, and the commit of a new object
version that PutObject and CompleteMultipartUpload share (versioning; If-None-Match: * and
If-Match conditions checked at commit time under the store lock, so of two racing conditional
writes one wins and the other is refused: 412 PreconditionFailed, or 409
ConditionalRequestConflict while a conditional multipart completion is still assembling).
"""

import re
import secrets
import time

from common.handler import FileBody

from .errors import S3Error
from .s3_common import (STORAGE_CLASSES, body_md5, check_body_length, check_integrity, el, http_date,
                        invalid_argument, malformed_xml, no_such_bucket, no_such_key, not_implemented,
                        parse_http_date, parse_xml, request_sse, sse_headers, stored_headers,
                        user_metadata, xml_answer)

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
RESPONSE_OVERRIDES = {"response-content-type": "Content-Type",
                      "response-content-language": "Content-Language",
                      "response-expires": "Expires", "response-cache-control": "Cache-Control",
                      "response-content-disposition": "Content-Disposition",
                      "response-content-encoding": "Content-Encoding"}
ACLS_ALLOWED = (None, "bucket-owner-full-control")


def new_version_id():
    return secrets.token_urlsafe(24)[:32]


def precondition_failed(condition, resource):
    return S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did"
                   " not hold", resource, [("Condition", condition)])


def etag_matches(header_value, etag):
    tags = [t.strip() for t in header_value.split(",")]
    return "*" in tags or etag in tags or etag.strip('"') in [t.strip('"') for t in tags]


def first(req, name, default=None):
    v = req.query.get(name)
    return v[0] if v else default


class Objects:
    def __init__(self, s3):
        self.s3 = s3
        self.store = s3.store

    # ---- shared with multipart ----
    def write_conditions(self, req, resource):
        """(if_none_match, if_match) of a write: If-None-Match takes only "*"."""
        inm = req.headers.get("If-None-Match")
        if inm is not None and inm.strip() != "*":
            raise not_implemented("If-None-Match on a write takes only *", resource)
        im = req.headers.get("If-Match")
        return inm is not None, im

    def check_write_headers(self, req, bucket_rec, resource):
        acl = req.headers.get("x-amz-acl")
        grants = any(k.lower().startswith("x-amz-grant-") for k in req.headers.keys())
        if acl not in ACLS_ALLOWED or grants:
            raise S3Error(400, "AccessControlListNotSupported", "The bucket does not allow ACLs",
                          resource)
        if any(k.lower().startswith("x-amz-object-lock-") for k in req.headers.keys()) \
                and not bucket_rec.get("object_lock"):
            raise S3Error(400, "InvalidRequest", "Bucket is missing Object Lock Configuration",
                          resource)
        sc = req.headers.get("x-amz-storage-class")
        if sc is not None and sc not in STORAGE_CLASSES:
            raise S3Error(400, "InvalidStorageClass", "The storage class you specified is not valid",
                          resource, [("StorageClassRequested", sc)])
        return sc

    def commit(self, bucket, key, ver, if_none_match, if_match, resource, conflict_check=True):
        """Adds ver as key's newest version (store lock taken here); returns the answer's
        version id header ({} when the bucket was never versioned). The data file of a replaced
        version is removed."""
        st = self.store
        with st.lock:
            b = st.buckets.get(bucket)
            if b is None:
                st.remove_data(ver["data"])
                raise no_such_bucket(bucket)
            if conflict_check and (if_none_match or if_match) and (bucket, key) in st.in_flight:
                st.remove_data(ver["data"])
                raise S3Error(409, "ConditionalRequestConflict", "A conflicting conditional"
                              " operation is currently in progress against this resource. Try"
                              " again.", resource)
            obj = st.objects[bucket].get(key)
            cur = st.latest(obj)
            if if_none_match and cur is not None:
                st.remove_data(ver["data"])
                raise precondition_failed("If-None-Match", resource)
            if if_match is not None:
                if cur is None:
                    st.remove_data(ver["data"])
                    raise no_such_key(bucket, key)
                if not etag_matches(if_match, cur["etag"]):
                    st.remove_data(ver["data"])
                    raise precondition_failed("If-Match", resource)
            obj = obj or {"key": key, "versions": []}
            versioning = b.get("versioning")
            dropped = []
            if versioning == "Enabled":
                ver["version_id"] = new_version_id()
            else:
                ver["version_id"] = "null"
                dropped = [v for v in obj["versions"] if v["version_id"] == "null"]
                obj["versions"] = [v for v in obj["versions"] if v["version_id"] != "null"]
            obj["versions"].append(ver)
            st.save_object(bucket, obj)
            for v in dropped:
                st.remove_data(v.get("data"))
            return {"x-amz-version-id": ver["version_id"]} if versioning else {}

    # ---- PutObject ----
    def put(self, req, bucket, key):
        resource = "/%s/%s" % (bucket, key)
        check_body_length(req, resource)
        with self.store.lock:
            b = self.store.buckets.get(bucket)
            if b is None:
                raise no_such_bucket(bucket)
            b = dict(b)
        sc = self.check_write_headers(req, b, resource)
        if_none_match, if_match = self.write_conditions(req, resource)
        meta = user_metadata(req)
        checksums = check_integrity(req)
        sse = request_sse(req, b, self.s3.kms)
        fn, size = self.store.write_data([req.body])
        md5 = body_md5(req).hex()
        ver = {"etag": '"%s"' % md5, "size": size, "last_modified": time.time(), "data": fn,
               "content_type": req.headers.get("Content-Type") or "binary/octet-stream",
               "headers": stored_headers(req), "meta": meta, "sse": sse, "checksums": checksums,
               "storage_class": sc, "delete_marker": False, "parts": None}
        h = self.commit(bucket, key, ver, if_none_match, if_match, resource)
        h.update({"ETag": ver["etag"]})
        h.update(sse_headers(sse))
        for alg, v in checksums.items():
            h["x-amz-checksum-" + alg] = v
        return 200, None, h

    # ---- GetObject and HeadObject ----
    def _find_version(self, bucket, key, version_id, resource):
        """The version a GET or HEAD reads (store lock held)."""
        st = self.store
        if bucket not in st.buckets:
            raise no_such_bucket(bucket)
        obj = st.objects[bucket].get(key)
        if version_id is None:
            if obj is None or not obj["versions"]:
                raise no_such_key(bucket, key)
            v = obj["versions"][-1]
            if v.get("delete_marker"):
                e = no_such_key(bucket, key)
                e.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": v["version_id"]}
                raise e
            return v
        for v in (obj or {"versions": []})["versions"]:
            if v["version_id"] == version_id:
                if v.get("delete_marker"):
                    raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed"
                                  " against this resource.", resource,
                                  [("Method", "GET"), ("ResourceType", "DeleteMarker")],
                                  headers={"x-amz-delete-marker": "true",
                                           "x-amz-version-id": version_id, "Allow": "DELETE"})
                return v
        raise S3Error(404, "NoSuchVersion", "The specified version does not exist.", resource,
                      [("Key", key), ("VersionId", version_id)])

    def get(self, req, bucket, key, head=False):
        resource = "/%s/%s" % (bucket, key)
        for k in req.headers.keys():
            if k.lower().startswith("x-amz-server-side-encryption-customer-"):
                raise not_implemented("SSE-C is not emulated", resource)
        version_id = first(req, "versionId")
        part_number = first(req, "partNumber")
        with self.store.lock:
            ver = self._find_version(bucket, key, version_id, resource)
            versioned = self.store.buckets[bucket].get("versioning") is not None
            f = self.store.open_data(ver["data"])
        try:
            return self._answer(req, bucket, key, ver, versioned, f, part_number, head, resource)
        except BaseException:
            f.close()
            raise

    def _answer(self, req, bucket, key, ver, versioned, f, part_number, head, resource):
        h = {"ETag": ver["etag"], "Last-Modified": http_date(ver["last_modified"]),
             "Accept-Ranges": "bytes", "Content-Type": ver["content_type"]}
        h.update(ver.get("headers") or {})
        for name, value in ver["meta"].items():
            h["x-amz-meta-" + name] = value
        h.update(sse_headers(ver["sse"]))
        if ver.get("storage_class") and ver["storage_class"] != "STANDARD":
            h["x-amz-storage-class"] = ver["storage_class"]
        if versioned or ver["version_id"] != "null":
            h["x-amz-version-id"] = ver["version_id"]
        if (req.headers.get("x-amz-checksum-mode") or "").upper() == "ENABLED":
            for alg, v in (ver.get("checksums") or {}).items():
                h["x-amz-checksum-" + alg] = v
        if not head:
            for q, name in RESPONSE_OVERRIDES.items():
                v = first(req, q)
                if v is not None:
                    h[name] = v
        status = self._conditions(req, ver, resource)
        if status == 304:
            f.close()
            return 304, None, {k: v for k, v in h.items() if k in ("ETag", "Last-Modified",
                                                                    "x-amz-version-id")}
        size = ver["size"]
        offset, length, status = 0, size, 200
        if part_number is not None:
            offset, length = self._part(ver, part_number, resource)
            status = 206 if ver.get("parts") else 200
            if ver.get("parts"):
                h["x-amz-mp-parts-count"] = str(len(ver["parts"]))
                h["Content-Range"] = "bytes %d-%d/%d" % (offset, offset + length - 1, size)
        else:
            rng = self._range(req.headers.get("Range"), size, resource)
            if rng is not None:
                offset, length = rng
                status = 206
                h["Content-Range"] = "bytes %d-%d/%d" % (offset, offset + length - 1, size)
        return status, FileBody(f, offset, length), h

    @staticmethod
    def _conditions(req, ver, resource):
        etag, mtime = ver["etag"], int(ver["last_modified"])
        im, inm = req.headers.get("If-Match"), req.headers.get("If-None-Match")
        ims, ius = req.headers.get("If-Modified-Since"), req.headers.get("If-Unmodified-Since")
        if im is not None and not etag_matches(im, etag):
            raise precondition_failed("If-Match", resource)
        if im is None and ius is not None:
            t = parse_http_date(ius)
            if t is not None and mtime > t:
                raise precondition_failed("If-Unmodified-Since", resource)
        if inm is not None and etag_matches(inm, etag):
            return 304
        if inm is None and ims is not None:
            t = parse_http_date(ims)
            if t is not None and mtime <= t:
                return 304
        return 200

    @staticmethod
    def _range(value, size, resource):
        """(offset, length) of a satisfiable single byte range, None to answer it all."""
        if value is None:
            return None
        m = RANGE_RE.match(value.strip())
        if m is None or (not m.group(1) and not m.group(2)):
            return None                 # not a single byte range: the whole object
        a, b = m.group(1), m.group(2)
        if a:
            start = int(a)
            end = min(int(b), size - 1) if b else size - 1
            if b and int(b) < start:
                return None
        else:
            n = int(b)
            if n == 0:
                start, end = size, size - 1
            else:
                start, end = max(0, size - n), size - 1
        if start >= size:
            raise S3Error(416, "InvalidRange", "The requested range is not satisfiable", resource,
                          [("RangeRequested", value), ("ActualObjectSize", size)])
        return start, end - start + 1

    @staticmethod
    def _part(ver, raw, resource):
        try:
            n = int(raw)
            if n < 1 or n > 10000:
                raise ValueError()
        except ValueError:
            raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive",
                                   "partNumber", raw, resource)
        parts = ver.get("parts") or [ver["size"]]
        if n > len(parts):
            raise S3Error(416, "InvalidPartNumber", "The requested partnumber is not satisfiable",
                          resource, [("PartNumberRequested", n), ("ActualPartCount", len(parts))])
        return sum(parts[:n - 1]), parts[n - 1]

    # ---- DeleteObject and DeleteObjects ----
    def _delete(self, bucket, key, version_id):
        """The answer headers of deleting key (or one version); store lock held."""
        st = self.store
        b = st.buckets[bucket]
        obj = st.objects[bucket].get(key) or {"key": key, "versions": []}
        versioning = b.get("versioning")
        if version_id is not None:
            gone = [v for v in obj["versions"] if v["version_id"] == version_id]
            obj["versions"] = [v for v in obj["versions"] if v["version_id"] != version_id]
            st.save_object(bucket, obj)
            h = {"x-amz-version-id": version_id}
            for v in gone:
                st.remove_data(v.get("data"))
                if v.get("delete_marker"):
                    h["x-amz-delete-marker"] = "true"
            return h
        if versioning is None:
            gone = obj["versions"]
            obj["versions"] = []
            st.save_object(bucket, obj)
            for v in gone:
                st.remove_data(v.get("data"))
            return {}
        marker = {"version_id": new_version_id() if versioning == "Enabled" else "null",
                  "delete_marker": True, "last_modified": time.time(), "data": None, "etag": "",
                  "size": 0}
        gone = []
        if versioning == "Suspended":
            gone = [v for v in obj["versions"] if v["version_id"] == "null"]
            obj["versions"] = [v for v in obj["versions"] if v["version_id"] != "null"]
        obj["versions"].append(marker)
        st.save_object(bucket, obj)
        for v in gone:
            st.remove_data(v.get("data"))
        return {"x-amz-delete-marker": "true", "x-amz-version-id": marker["version_id"]}

    def delete(self, req, bucket, key):
        with self.store.lock:
            if bucket not in self.store.buckets:
                raise no_such_bucket(bucket)
            h = self._delete(bucket, key, first(req, "versionId"))
        return 204, None, h

    def delete_many(self, req, bucket):
        if req.headers.get("Content-MD5") is None and not any(
                k.lower().startswith("x-amz-checksum-") for k in req.headers.keys()):
            raise S3Error(400, "InvalidRequest", "Missing required header for this request:"
                          " Content-Md5.", "/" + bucket)
        check_integrity(req)
        root = parse_xml(req.body, "Delete")
        quiet = (root.findtext("Quiet") or "").strip().lower() == "true"
        items = root.findall("Object")
        if not items or len(items) > 1000:
            raise malformed_xml()
        out = []
        with self.store.lock:
            if bucket not in self.store.buckets:
                raise no_such_bucket(bucket)
            for o in items:
                key = o.findtext("Key")
                if key is None:
                    raise malformed_xml()
                vid = o.findtext("VersionId")
                h = self._delete(bucket, key, vid)
                if quiet:
                    continue
                inner = el("Key", key)
                if vid is not None:
                    inner += el("VersionId", vid)
                if h.get("x-amz-delete-marker"):
                    inner += el("DeleteMarker", "true")
                    if vid is None:
                        inner += el("DeleteMarkerVersionId", h["x-amz-version-id"])
                out.append("<Deleted>%s</Deleted>" % inner)
        return xml_answer("DeleteResult", "".join(out))
