"""S3's multipart uploads: CreateMultipartUpload (SSE headers, metadata and Content-* given
there), UploadPart (1..10000; the part's ETag is its MD5), CompleteMultipartUpload (the XML list
of parts in ascending order with their ETags: InvalidPart, InvalidPartOrder; every part but the
last at least 5 MiB: EntityTooSmall; If-None-Match: * and If-Match as PutObject; the ETag is
"<md5 of the parts' binary MD5s>-<part count>"), AbortMultipartUpload and ListParts
(max-parts, part-number-marker).
"""

import hashlib
import secrets
import time

from .errors import S3Error
from .s3_common import (body_md5, check_body_length, check_integrity, el, invalid_argument, iso_ms,
                        malformed_xml, no_such_bucket, parse_xml, request_sse, sse_headers,
                        stored_headers, user_metadata, xml_answer)

MIN_PART = 5 * 1024 * 1024
MAX_PARTS_LISTED = 1000


def first(req, name, default=None):
    v = req.query.get(name)
    return v[0] if v else default


def no_such_upload(upload_id, resource):
    return S3Error(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be"
                   " invalid, or the upload may have been aborted or completed.", resource,
                   [("UploadId", upload_id)])


class Multipart:
    def __init__(self, s3, objects):
        self.s3 = s3
        self.store = s3.store
        self.objects = objects

    def _upload(self, bucket, key, upload_id, resource):
        """The upload record (store lock held)."""
        if bucket not in self.store.buckets:
            raise no_such_bucket(bucket)
        u = self.store.uploads.get(upload_id)
        if u is None or u["bucket"] != bucket or u["key"] != key:
            raise no_such_upload(upload_id, resource)
        return u

    def create(self, req, bucket, key):
        resource = "/%s/%s" % (bucket, key)
        with self.store.lock:
            b = self.store.buckets.get(bucket)
            if b is None:
                raise no_such_bucket(bucket)
            b = dict(b)
        sc = self.objects.check_write_headers(req, b, resource)
        meta = user_metadata(req)
        sse = request_sse(req, b, self.s3.kms)
        upload_id = secrets.token_urlsafe(48)
        u = {"upload_id": upload_id, "bucket": bucket, "key": key, "initiated": time.time(),
             "sse": sse, "meta": meta, "headers": stored_headers(req),
             "content_type": req.headers.get("Content-Type") or "binary/octet-stream",
             "storage_class": sc, "parts": {}}
        with self.store.lock:
            if bucket not in self.store.buckets:
                raise no_such_bucket(bucket)
            self.store.save_upload(u)
        inner = el("Bucket", bucket) + el("Key", key) + el("UploadId", upload_id)
        return xml_answer("InitiateMultipartUploadResult", inner, headers=sse_headers(sse))

    def upload_part(self, req, bucket, key):
        resource = "/%s/%s" % (bucket, key)
        upload_id = first(req, "uploadId")
        raw = first(req, "partNumber")
        try:
            n = int(raw)
            if not 1 <= n <= 10000:
                raise ValueError()
        except (TypeError, ValueError):
            raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive",
                                   "partNumber", raw, resource)
        check_body_length(req, resource)
        with self.store.lock:
            u = self._upload(bucket, key, upload_id, resource)
            sse = u["sse"]
        checksums = check_integrity(req)
        fn, size = self.store.write_data([req.body])
        md5 = body_md5(req).hex()
        with self.store.lock:
            u = self.store.uploads.get(upload_id)
            if u is None:
                self.store.remove_data(fn)
                raise no_such_upload(upload_id, resource)
            old = u["parts"].get(str(n))
            u["parts"][str(n)] = {"etag": '"%s"' % md5, "size": size, "data": fn,
                                  "last_modified": time.time(), "md5": md5, "checksums": checksums}
            self.store.save_upload(u)
            if old is not None:
                self.store.remove_data(old["data"])
        h = {"ETag": '"%s"' % md5}
        h.update(sse_headers(sse))
        for alg, v in checksums.items():
            h["x-amz-checksum-" + alg] = v
        return 200, None, h

    def complete(self, req, bucket, key):
        resource = "/%s/%s" % (bucket, key)
        upload_id = first(req, "uploadId")
        if_none_match, if_match = self.objects.write_conditions(req, resource)
        root = parse_xml(req.body, "CompleteMultipartUpload")
        listed = []
        for p in root.findall("Part"):
            num, etag = p.findtext("PartNumber"), p.findtext("ETag")
            if num is None or etag is None:
                raise malformed_xml()
            try:
                listed.append((int(num.strip()), etag.strip()))
            except ValueError:
                raise malformed_xml()
        if not listed:
            raise malformed_xml()
        st = self.store
        with st.lock:
            u = self._upload(bucket, key, upload_id, resource)
            prev = 0
            for num, _ in listed:
                if num <= prev:
                    raise S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending"
                                  " order. Parts must be ordered by part number.", resource,
                                  [("UploadId", upload_id)])
                prev = num
            parts = []
            for num, etag in listed:
                part = u["parts"].get(str(num))
                if part is None or part["etag"].strip('"') != etag.strip('"'):
                    raise S3Error(400, "InvalidPart", "One or more of the specified parts could not"
                                  " be found.  The part may not have been uploaded, or the specified"
                                  " entity tag may not match the part's entity tag.", resource,
                                  [("UploadId", upload_id), ("PartNumber", num), ("ETag", etag)])
                parts.append((num, part))
            for num, part in parts[:-1]:
                if part["size"] < MIN_PART:
                    raise S3Error(400, "EntityTooSmall", "Your proposed upload is smaller than the"
                                  " minimum allowed object size.", resource,
                                  [("ProposedSize", part["size"]), ("MinSizeAllowed", MIN_PART),
                                   ("PartNumber", num), ("ETag", part["etag"])])
            conditional = if_none_match or if_match is not None
            if conditional:
                if (bucket, key) in st.in_flight:
                    raise S3Error(409, "ConditionalRequestConflict", "A conflicting conditional"
                                  " operation is currently in progress against this resource. Try"
                                  " again.", resource)
                cur = st.latest(st.objects[bucket].get(key))
                if if_none_match and cur is not None:
                    raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you"
                                  " specified did not hold", resource, [("Condition", "If-None-Match")])
                st.in_flight.add((bucket, key))
            u = dict(u)
        try:
            # the parts are joined outside the lock (large); the commit checks the conditions again
            fn, size = st.write_data(c for _, part in parts for c in st.data_chunks(part["data"]))
            digest = hashlib.md5(b"".join(bytes.fromhex(p["md5"]) for _, p in parts)).hexdigest()
            ver = {"etag": '"%s-%d"' % (digest, len(parts)), "size": size,
                   "last_modified": time.time(), "data": fn, "content_type": u["content_type"],
                   "headers": u["headers"], "meta": u["meta"], "sse": u["sse"], "checksums": {},
                   "storage_class": u.get("storage_class"), "delete_marker": False,
                   "parts": [p["size"] for _, p in parts]}
            with st.lock:
                if st.uploads.get(upload_id) is None:
                    st.remove_data(fn)
                    raise no_such_upload(upload_id, resource)
                h = self.objects.commit(bucket, key, ver, if_none_match, if_match, resource,
                                        conflict_check=False)
                for part in st.uploads[upload_id]["parts"].values():
                    st.remove_data(part["data"])
                st.drop_upload(upload_id)
        finally:
            if conditional:
                with st.lock:
                    st.in_flight.discard((bucket, key))
        inner = (el("Location", "%s/%s/%s" % (self.s3.base_url(), bucket, key)) + el("Bucket", bucket)
                 + el("Key", key) + el("ETag", ver["etag"]))
        h.update(sse_headers(u["sse"]))
        return xml_answer("CompleteMultipartUploadResult", inner, headers=h)

    def abort(self, req, bucket, key):
        resource = "/%s/%s" % (bucket, key)
        upload_id = first(req, "uploadId")
        with self.store.lock:
            u = self._upload(bucket, key, upload_id, resource)
            for part in u["parts"].values():
                self.store.remove_data(part["data"])
            self.store.drop_upload(upload_id)
        return 204, None

    def list_uploads(self, req, bucket):
        """ListMultipartUploads: the uploads in progress under prefix, by key then initiation
        (one page of at most 1000; no markers or delimiter)."""
        prefix = first(req, "prefix", "")
        with self.store.lock:
            if bucket not in self.store.buckets:
                raise no_such_bucket(bucket)
            ups = sorted((u for u in self.store.uploads.values()
                          if u["bucket"] == bucket and u["key"].startswith(prefix)),
                         key=lambda u: (u["key"], u["initiated"]))[:1000]
        inner = [el("Bucket", bucket), el("Prefix", prefix), el("MaxUploads", "1000"),
                 el("IsTruncated", "false")]
        for u in ups:
            inner.append("<Upload>%s%s%s</Upload>" % (el("Key", u["key"]), el("UploadId", u["upload_id"]),
                                                    el("Initiated", iso_ms(u["initiated"]))))
        return xml_answer("ListMultipartUploadsResult", "".join(inner))

    def list_parts(self, req, bucket, key):
        resource = "/%s/%s" % (bucket, key)
        upload_id = first(req, "uploadId")
        raw_max = first(req, "max-parts", str(MAX_PARTS_LISTED))
        raw_marker = first(req, "part-number-marker", "0")
        try:
            max_parts = min(int(raw_max), MAX_PARTS_LISTED)
            if max_parts < 0:
                raise ValueError()
        except ValueError:
            raise invalid_argument("Provided max-parts not an integer or within integer range",
                                   "max-parts", raw_max, resource)
        try:
            marker = int(raw_marker)
        except ValueError:
            raise invalid_argument("Provided part-number-marker not an integer or within integer"
                                   " range", "part-number-marker", raw_marker, resource)
        with self.store.lock:
            u = self._upload(bucket, key, upload_id, resource)
            nums = sorted(int(n) for n in u["parts"] if int(n) > marker)
            page = nums[:max_parts]
            truncated = len(nums) > max_parts
            inner = [el("Bucket", bucket), el("Key", key), el("UploadId", upload_id),
                     el("PartNumberMarker", marker)]
            if page:
                inner.append(el("NextPartNumberMarker", page[-1]))
            inner += [el("MaxParts", max_parts), el("IsTruncated", "true" if truncated else "false")]
            for n in page:
                p = u["parts"][str(n)]
                inner.append("<Part>%s%s%s%s</Part>" % (el("PartNumber", n),
                                                        el("LastModified", iso_ms(p["last_modified"])),
                                                        el("ETag", p["etag"]), el("Size", p["size"])))
            owner = "%s%s" % (el("ID", self.s3.canonical_id), el("DisplayName", "keyplane-test"))
            inner.append("<Initiator>%s</Initiator><Owner>%s</Owner>" % (owner, owner))
            inner.append(el("StorageClass", u.get("storage_class") or "STANDARD"))
        return xml_answer("ListPartsResult", "".join(inner))
