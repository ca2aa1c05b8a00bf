"""What S3's bucket, object and multipart operations share: XML in and out, S3's time formats,
the common errors, user metadata (x-amz-meta-*, 2 KB), Content-MD5 and x-amz-checksum-*
verification, and server-side encryption (x-amz-server-side-encryption*, the bucket default,
the KMS key resolved in this region's KMS, echoed as its ARN).
"""

import base64
import binascii
import datetime
import email.utils
import hashlib
import json
import xml.etree.ElementTree as ET
import zlib
from xml.sax.saxutils import escape

from .errors import S3Error
from .kms import NotFound

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
META_PREFIX = "x-amz-meta-"
META_LIMIT = 2048
SSE = "x-amz-server-side-encryption"
SSE_KEY = "x-amz-server-side-encryption-aws-kms-key-id"
SSE_CONTEXT = "x-amz-server-side-encryption-context"
SSE_BUCKET_KEY = "x-amz-server-side-encryption-bucket-key-enabled"
SSE_ALGS = ("AES256", "aws:kms", "aws:kms:dsse")
CHECKSUMS = ("crc32", "crc32c", "sha1", "sha256")
STORAGE_CLASSES = ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
                   "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR",
                   "SNOW", "EXPRESS_ONEZONE")
# Content-* answers stored with an object and echoed by GET and HEAD
STORED_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language",
                  "Expires", "x-amz-website-redirect-location")
NOT_IMPLEMENTED = "A header you provided implies functionality that is not implemented"


# ---- XML ----
def xml_answer(root, inner, status=200, headers=None):
    """(status, bytes, headers) of an S3 XML answer <root xmlns=S3>inner</root>."""
    body = "%s<%s xmlns=\"%s\">%s</%s>" % (XML_HEAD, root, S3_NS, inner, root)
    h = {"Content-Type": "application/xml"}
    h.update(headers or {})
    return status, body.encode(), h


def el(tag, text):
    return "<%s>%s</%s>" % (tag, escape(str(text)), tag)


def parse_xml(body, root):
    """The root element of an XML request body (namespaces dropped); MalformedXML when it is
    not XML or its root is not root."""
    try:
        tree = ET.fromstring(body)
    except ET.ParseError:
        raise malformed_xml()
    for e in tree.iter():
        if "}" in e.tag:
            e.tag = e.tag.split("}", 1)[1]
    if tree.tag != root:
        raise malformed_xml()
    return tree


def malformed_xml():
    return S3Error(400, "MalformedXML", "The XML you provided was not well-formed or did not"
                   " validate against our published schema")


# ---- time ----
def iso_ms(ts):
    """2009-10-12T17:50:30.000Z"""
    d = datetime.datetime.utcfromtimestamp(ts)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def http_date(ts):
    return email.utils.formatdate(int(ts), usegmt=True)


def parse_http_date(value):
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if d is None:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


# ---- common errors ----
def no_such_bucket(bucket):
    return S3Error(404, "NoSuchBucket", "The specified bucket does not exist", "/" + bucket,
                   [("BucketName", bucket)])


def no_such_key(bucket, key):
    return S3Error(404, "NoSuchKey", "The specified key does not exist.", "/%s/%s" % (bucket, key),
                   [("Key", key)])


def invalid_argument(message, name=None, value=None, resource=None):
    extra = []
    if name is not None:
        extra.append(("ArgumentName", name))
        extra.append(("ArgumentValue", value if value is not None else ""))
    return S3Error(400, "InvalidArgument", message, resource, extra)


def not_implemented(what=None, resource=None):
    msg = NOT_IMPLEMENTED if what is None else "%s (%s)" % (NOT_IMPLEMENTED, what)
    return S3Error(501, "NotImplemented", msg, resource)


def check_body_length(req, resource):
    """An upload must carry the Content-Length it announced (411 without one, unless chunked;
    400 IncompleteBody when the connection ended early)."""
    cl = req.headers.get("Content-Length")
    if cl is None:
        if req.headers.get("Transfer-Encoding", "").lower() != "chunked":
            raise S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP"
                          " header.", resource)
        return
    if int(cl) != len(req.body):
        raise S3Error(400, "IncompleteBody", "You did not provide the number of bytes specified by"
                      " the Content-Length HTTP header", resource)


# ---- user metadata ----
def user_metadata(req):
    """{lower-case name without the prefix: value} of the x-amz-meta-* headers; MetadataTooLarge
    beyond 2 KB (the UTF-8 bytes of every name and value)."""
    meta = {}
    for k, v in req.headers.items():
        lk = k.lower()
        if lk.startswith(META_PREFIX):
            name = lk[len(META_PREFIX):]
            meta[name] = meta[name] + "," + v if name in meta else v
    size = sum(len(k.encode("utf-8", "surrogateescape")) + len(v.encode("utf-8", "surrogateescape"))
               for k, v in meta.items())
    if size > META_LIMIT:
        raise S3Error(400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed"
                      " metadata size.", None, [("Size", size), ("MaxSizeAllowed", META_LIMIT)])
    return meta


def stored_headers(req):
    out = {}
    for name in STORED_HEADERS:
        v = req.headers.get(name)
        if v is not None:
            out[name] = v
    return out


# ---- integrity ----
def _crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    table = _crc32c.table
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_crc32c.table = _crc32c_table()


def checksum_of(alg, data):
    if alg == "crc32":
        return base64.b64encode((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")).decode()
    if alg == "crc32c":
        return base64.b64encode(_crc32c(data).to_bytes(4, "big")).decode()
    if alg == "sha1":
        return base64.b64encode(hashlib.sha1(data).digest()).decode()
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def body_md5(req):
    """The MD5 digest of req's body, hashed once per request: Content-MD5 and the ETag both need
    it (hashing an 8 MiB part twice was a third of UploadPart's time)."""
    d = getattr(req, "md5_digest", None)
    if d is None:
        d = req.md5_digest = hashlib.md5(req.body).digest()
    return d


def check_integrity(req):
    """Content-MD5 (InvalidDigest, BadDigest) and x-amz-checksum-* (InvalidRequest, BadDigest)
    of an upload's body; returns the checksums sent, {alg: value}."""
    body = req.body
    md5_b64 = req.headers.get("Content-MD5")
    if md5_b64 is not None:
        try:
            want = base64.b64decode(md5_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            want = b""
        if len(want) != 16:
            raise S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.", None,
                          [("Content-MD5", md5_b64)])
        got = body_md5(req)
        if got != want:
            raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we"
                          " received.", None, [("ExpectedDigest", want.hex()),
                                                ("CalculatedDigest", base64.b64encode(got).decode())])
    out = {}
    for alg in CHECKSUMS:
        v = req.headers.get("x-amz-checksum-" + alg)
        if v is None:
            continue
        if out:
            raise S3Error(400, "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple"
                          " checksum Types are not allowed.")
        if checksum_of(alg, body) != v.strip():
            raise S3Error(400, "BadDigest", "The %s you specified did not match the calculated"
                          " checksum." % alg.upper())
        out[alg] = v.strip()
    return out


# ---- server-side encryption ----
def _bool_header(req, name):
    v = req.headers.get(name)
    if v is None:
        return None
    if v.lower() not in ("true", "false"):
        raise invalid_argument("Invalid value for %s" % name, name, v)
    return v.lower() == "true"


def resolve_kms_key(kms, ref):
    """The ARN of KMS key ref in this region; 400 KMS.NotFoundException otherwise."""
    try:
        return kms.resolve(ref)["Arn"]
    except NotFound as e:
        raise S3Error(400, "KMS.NotFoundException", str(e))


def request_sse(req, bucket, kms):
    """{"alg", "kms_key" (ARN or None), "bucket_key", "context"} for an upload: its SSE headers,
    else the bucket's default encryption (AES256 when none is set)."""
    for k in req.headers.keys():
        if k.lower().startswith("x-amz-server-side-encryption-customer-"):
            raise not_implemented("SSE-C is not emulated")
    alg = req.headers.get(SSE)
    key = req.headers.get(SSE_KEY)
    context = req.headers.get(SSE_CONTEXT)
    bucket_key = _bool_header(req, SSE_BUCKET_KEY)
    if alg is None and (key is not None or context is not None):
        raise invalid_argument("Server Side Encryption with AWS KMS managed key requires HTTP header"
                               " x-amz-server-side-encryption : aws:kms", SSE, "")
    if alg is None:
        default = bucket.get("encryption") or {"alg": "AES256"}
        alg, key = default["alg"], default.get("kms_key")
        if bucket_key is None:
            bucket_key = default.get("bucket_key", False)
    if alg not in SSE_ALGS:
        raise invalid_argument("The encryption method specified is not supported", SSE, alg)
    if alg == "AES256":
        if key is not None or context is not None:
            raise invalid_argument("Server Side Encryption with AWS KMS managed key requires HTTP"
                                   " header x-amz-server-side-encryption : aws:kms", SSE, alg)
        return {"alg": alg, "kms_key": None, "bucket_key": False, "context": None}
    if context is not None:
        try:
            if not isinstance(json.loads(base64.b64decode(context, validate=True)), dict):
                raise ValueError()
        except (ValueError, binascii.Error):
            raise invalid_argument("The header 'x-amz-server-side-encryption-context' shall be"
                                   " Base64-encoded UTF-8 string holding JSON which represents a"
                                   " string-string map", SSE_CONTEXT, context)
    arn = resolve_kms_key(kms, key) if key else kms.managed_key("alias/aws/s3")["Arn"]
    return {"alg": alg, "kms_key": arn, "bucket_key": bool(bucket_key), "context": context}


def sse_headers(sse):
    """The x-amz-server-side-encryption* headers answering for an object encrypted as sse."""
    if not sse:
        return {}
    h = {SSE: sse["alg"]}
    if sse.get("kms_key"):
        h[SSE_KEY] = sse["kms_key"]
    if sse.get("bucket_key"):
        h[SSE_BUCKET_KEY] = "true"
    return h
