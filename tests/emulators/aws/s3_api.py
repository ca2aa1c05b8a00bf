"""S3's REST-XML API of one region: addressing (virtual host BUCKET.<base host> decided by the
Host header, else path style /BUCKET/KEY), the operation a method, path and subresource name,
and the dispatch to s3_buckets, s3_objects and s3_multipart. What S3 has and the emulator does
not is answered 501 NotImplemented, never silently accepted.
"""

import hashlib
import urllib.parse

from .errors import S3Error
from .s3_buckets import Buckets
from .s3_common import not_implemented
from .s3_multipart import Multipart
from .s3_objects import Objects
from .s3_store import S3Store

MAX_KEY = 1024
# subresources the emulator knows; any other ?name on a bucket or object is NotImplemented
BUCKET_SUBRESOURCES = {"encryption", "versioning", "location", "list-type", "uploads", "delete",
                       "versions", "prefix", "delimiter", "max-keys", "marker", "encoding-type",
                       "continuation-token", "start-after", "fetch-owner", "x-id"}
OBJECT_SUBRESOURCES = {"uploads", "uploadId", "partNumber", "versionId", "max-parts",
                       "part-number-marker", "x-id"} | {
    "response-content-type", "response-content-language", "response-expires",
    "response-cache-control", "response-content-disposition", "response-content-encoding"}


class S3:
    def __init__(self, state_dir, region, account, kms, base_host, port_getter):
        self.region, self.account, self.kms = region, account, kms
        self.base_host = base_host.lower()
        self.port_getter = port_getter
        self.canonical_id = hashlib.sha256(("keyplane-" + account).encode()).hexdigest()
        self.store = S3Store(state_dir)
        self.buckets = Buckets(self)
        self.objects = Objects(self)
        self.multipart = Multipart(self, self.objects)

    def base_url(self):
        return "https://127.0.0.1:%d" % self.port_getter()

    def address(self, req):
        """(bucket or None, key or None, virtual) of req."""
        host = (req.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            hostname = host.split("]")[0] + "]"
        else:
            hostname = host.rsplit(":", 1)[0] if ":" in host else host
        path = req.path
        if self.base_host and hostname.endswith("." + self.base_host):
            bucket = hostname[:-len(self.base_host) - 1]
            key = urllib.parse.unquote(path[1:]) if len(path) > 1 else None
            return bucket, key, True
        rest = path[1:]
        if not rest:
            return None, None, False
        bucket, sep, key = rest.partition("/")
        return urllib.parse.unquote(bucket), (urllib.parse.unquote(key) if sep and key else None), False

    def operation(self, req):
        """(operation name, bucket, key) of req; NotImplemented for what the emulator lacks."""
        bucket, key, _ = self.address(req)
        q = req.query
        m = req.method
        if bucket is None:
            if m == "GET":
                return "ListBuckets", None, None
            raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this"
                          " resource.", "/", [("Method", m), ("ResourceType", "SERVICE")])
        if key is None:
            unknown = set(q) - BUCKET_SUBRESOURCES
            if unknown:
                raise not_implemented("bucket subresource %s" % sorted(unknown)[0], "/" + bucket)
            if m == "PUT":
                if "encryption" in q:
                    return "PutBucketEncryption", bucket, None
                if "versioning" in q:
                    return "PutBucketVersioning", bucket, None
                return "CreateBucket", bucket, None
            if m == "GET":
                for sub, op in (("encryption", "GetBucketEncryption"),
                                ("versioning", "GetBucketVersioning"),
                                ("location", "GetBucketLocation")):
                    if sub in q:
                        return op, bucket, None
                if "uploads" in q:
                    return "ListMultipartUploads", bucket, None
                if "versions" in q:
                    raise not_implemented("ListObjectVersions is not emulated", "/" + bucket)
                if "list-type" in q:
                    if q["list-type"] != ["2"]:
                        raise S3Error(400, "InvalidArgument", "Invalid List Type specified in"
                                      " Request", "/" + bucket)
                    return "ListObjectsV2", bucket, None
                return "ListObjects", bucket, None
            if m == "HEAD":
                return "HeadBucket", bucket, None
            if m == "DELETE":
                return ("DeleteBucketEncryption" if "encryption" in q else "DeleteBucket"), bucket, None
            if m == "POST" and "delete" in q:
                return "DeleteObjects", bucket, None
            raise not_implemented("%s on a bucket" % m, "/" + bucket)
        resource = "/%s/%s" % (bucket, key)
        size = len(key.encode("utf-8", "surrogateescape"))
        if size > MAX_KEY:
            raise S3Error(400, "KeyTooLongError", "Your key is too long", resource,
                          [("MaxSizeAllowed", MAX_KEY), ("Size", size)])
        unknown = set(q) - OBJECT_SUBRESOURCES
        if unknown:
            raise not_implemented("object subresource %s" % sorted(unknown)[0], resource)
        if req.headers.get("x-amz-copy-source") is not None:
            raise not_implemented("CopyObject and UploadPartCopy are not emulated", resource)
        if m == "PUT":
            return ("UploadPart" if "uploadId" in q or "partNumber" in q else "PutObject"), bucket, key
        if m == "GET":
            return ("ListParts" if "uploadId" in q else "GetObject"), bucket, key
        if m == "HEAD":
            return "HeadObject", bucket, key
        if m == "DELETE":
            return ("AbortMultipartUpload" if "uploadId" in q else "DeleteObject"), bucket, key
        if m == "POST":
            if "uploads" in q:
                return "CreateMultipartUpload", bucket, key
            if "uploadId" in q:
                return "CompleteMultipartUpload", bucket, key
        raise not_implemented("%s on an object" % m, resource)

    def call(self, op, req, bucket, key):
        owner = req.headers.get("x-amz-expected-bucket-owner")
        if owner is not None and owner != self.account:
            raise S3Error(403, "AccessDenied", "Access Denied", "/" + (bucket or ""))
        b, o, mp = self.buckets, self.objects, self.multipart
        table = {
            "ListBuckets": lambda: b.list_buckets(req),
            "CreateBucket": lambda: b.create(req, bucket),
            "HeadBucket": lambda: b.head(req, bucket),
            "DeleteBucket": lambda: b.delete(req, bucket),
            "GetBucketLocation": lambda: b.location(req, bucket),
            "PutBucketEncryption": lambda: b.put_encryption(req, bucket),
            "GetBucketEncryption": lambda: b.get_encryption(req, bucket),
            "DeleteBucketEncryption": lambda: b.delete_encryption(req, bucket),
            "PutBucketVersioning": lambda: b.put_versioning(req, bucket),
            "GetBucketVersioning": lambda: b.get_versioning(req, bucket),
            "ListObjectsV2": lambda: b.list_objects(req, bucket, True),
            "ListObjects": lambda: b.list_objects(req, bucket, False),
            "DeleteObjects": lambda: o.delete_many(req, bucket),
            "PutObject": lambda: o.put(req, bucket, key),
            "GetObject": lambda: o.get(req, bucket, key),
            "HeadObject": lambda: o.get(req, bucket, key, head=True),
            "DeleteObject": lambda: o.delete(req, bucket, key),
            "CreateMultipartUpload": lambda: mp.create(req, bucket, key),
            "UploadPart": lambda: mp.upload_part(req, bucket, key),
            "CompleteMultipartUpload": lambda: mp.complete(req, bucket, key),
            "AbortMultipartUpload": lambda: mp.abort(req, bucket, key),
            "ListParts": lambda: mp.list_parts(req, bucket, key),
            "ListMultipartUploads": lambda: mp.list_uploads(req, bucket),
        }
        return table[op]()
