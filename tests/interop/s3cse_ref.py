#!/usr/bin/python3
"""s3cse_ref.py: an independent reference implementation of S3 client-side encryption with a KMS
data key, written against AWS's own descriptions rather than keyplane's code, so that keyplane's
`backup encrypt|decrypt` (issue 18) can be tested against something it did not write itself.

The algorithm is the AWS Database Blog's "Client-Side Encryption and Decryption of Microsoft SQL
Server Backups for Use with Amazon RDS": GenerateDataKey AES_256 with the encryption context
{"kms_cmk_id": KEY}, AES-256-CBC with PKCS#7 padding and a random IV, the object's user metadata
carrying the wrapped key, the IV and the context. The metadata names of the AWS SDKs' S3
encryption clients are also written and read (x-amz-key-v2, x-amz-wrap-alg kms or kms+context,
x-amz-cek-alg AES/CBC/PKCS5Padding or AES/GCM/NoPadding). As the SDKs do, a kms+context object
keeps its whole KMS context in x-amz-matdesc, "aws:x-amz-cek-alg" included, and decryption
refuses one whose value is not x-amz-cek-alg. Decryption is strict: x-amz-key and x-amz-key-v2
equal when both are present, the IV's length, PKCS#7 padding, the GCM tag, and
x-amz-unencrypted-content-length when present.

    s3cse_ref.py [--endpoint-url URL] [--region R] [--ca-bundle PEM] COMMAND ...
      encrypt FILE s3://B/K --kms-key ID [--shape rds|sdk|sdk-gcm] [--wrap kms|kms+context]
                                         [--matdesc JSON]
      decrypt s3://B/K OUT
      put-vector NAME --vectors PATH s3://B/K --kms-key ID [--expect-out FILE]
      list-vectors --vectors PATH        the names of the vectors that carry a data key

The endpoint, region and CA bundle default to AWS_ENDPOINT_URL, AWS_REGION (or
AWS_DEFAULT_REGION, else us-east-1) and AWS_CA_BUNDLE; credentials come from boto3's usual chain.
Exit 0 on success, 1 on any failure (one line on stderr), 2 on a usage error. Run it with Debian's
/usr/bin/python3 (python3-boto3, python3-cryptography).
"""

import argparse
import base64
import binascii
import json
import os
import sys
import tempfile

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CBC = "AES/CBC/PKCS5Padding"
GCM = "AES/GCM/NoPadding"
CEK_CONTEXT_KEY = "aws:x-amz-cek-alg"     # kms+context: the cek algorithm bound into the context
TAG_LEN = 16
CHUNK = 1 << 20


class Failure(Exception):
    pass


def s3_url(url):
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise Failure("not an s3://BUCKET/KEY URL: %s" % url)
    bucket, key = url[5:].split("/", 1)
    if not bucket or not key:
        raise Failure("not an s3://BUCKET/KEY URL: %s" % url)
    return bucket, key


def b64d(name, value):
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Failure("%s is not base64" % name)


def b64e(data):
    return base64.b64encode(data).decode()


def clients(a):
    session = boto3.session.Session(region_name=a.region)
    kw = {"endpoint_url": a.endpoint_url, "verify": a.ca_bundle or None}
    s3 = session.client("s3", config=Config(s3={"addressing_style": "path"}), **kw)
    return s3, session.client("kms", **kw)


# ---- encrypt ----
def encrypt_body(cek_alg, key, plaintext):
    """(iv, ciphertext): CBC with PKCS#7 padding and a 16-byte IV, or GCM with a 12-byte IV and
    the 16-byte tag appended to the ciphertext (what the SDKs store)."""
    if cek_alg == CBC:
        iv = os.urandom(16)
        p = padding.PKCS7(128).padder()
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return iv, e.update(p.update(plaintext) + p.finalize()) + e.finalize()
    iv = os.urandom(12)
    e = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    ct = e.update(plaintext) + e.finalize()
    return iv, ct + e.tag


def cmd_encrypt(a):
    bucket, key = s3_url(a.url)
    if a.shape == "rds" and a.wrap != "kms":
        raise Failure("--wrap kms+context needs an SDK shape (sdk or sdk-gcm)")
    cek_alg = GCM if a.shape == "sdk-gcm" else CBC
    context = {"kms_cmk_id": a.kms_key} if a.matdesc is None else json.loads(a.matdesc)
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise Failure("--matdesc is not a JSON object of strings")
    if a.wrap == "kms+context":
        context[CEK_CONTEXT_KEY] = cek_alg
    with open(a.file, "rb") as f:
        plaintext = f.read()
    s3, kms = clients(a)
    dk = kms.generate_data_key(KeyId=a.kms_key, KeySpec="AES_256", EncryptionContext=context)
    iv, body = encrypt_body(cek_alg, dk["Plaintext"], plaintext)
    if a.shape == "rds":
        # the blog's metadata, its context written by Python's json.dumps (with a space after
        # the colon): a reader must parse the JSON, not compare strings
        meta = {"x-amz-key": b64e(dk["CiphertextBlob"]), "x-amz-iv": b64e(iv),
                "x-amz-matdesc": json.dumps(context)}
    else:
        meta = {"x-amz-key-v2": b64e(dk["CiphertextBlob"]), "x-amz-iv": b64e(iv),
                "x-amz-matdesc": json.dumps(context, separators=(",", ":")),
                "x-amz-wrap-alg": a.wrap, "x-amz-cek-alg": cek_alg,
                "x-amz-unencrypted-content-length": str(len(plaintext))}
        if cek_alg == GCM:
            meta["x-amz-tag-len"] = "128"
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=meta)
    print(json.dumps({"bucket": bucket, "key": key, "metadata": meta}, sort_keys=True))


# ---- decrypt ----
def envelope(meta):
    """(wrapped key, iv, context, cek alg) of an object's user metadata, checked as the SDKs
    check it."""
    v2, v1 = meta.get("x-amz-key-v2"), meta.get("x-amz-key")
    if v2 is None and v1 is None:
        raise Failure("not an S3 client-side-encrypted object: no x-amz-key-v2 or x-amz-key")
    if v2 is not None and v1 is not None and v1 != v2:
        raise Failure("x-amz-key and x-amz-key-v2 differ")       # keyplane writes both, equal
    wrapped = b64d("x-amz-key-v2" if v2 is not None else "x-amz-key", v2 or v1)
    if "x-amz-iv" not in meta:
        raise Failure("not an S3 client-side-encrypted object: no x-amz-iv")
    iv = b64d("x-amz-iv", meta["x-amz-iv"])
    wrap = meta.get("x-amz-wrap-alg")
    if wrap is None and v2 is not None:
        raise Failure("x-amz-key-v2 without x-amz-wrap-alg")
    if wrap not in (None, "kms", "kms+context"):
        raise Failure("x-amz-wrap-alg %r is not a KMS wrap" % wrap)
    # without a wrap algorithm (RDS, the blog): x-amz-key is a KMS CiphertextBlob, CBC content
    cek_alg = meta.get("x-amz-cek-alg", CBC if wrap is None else None)
    if cek_alg not in (CBC, GCM):
        raise Failure("x-amz-cek-alg %r is not supported" % cek_alg)
    try:
        context = json.loads(meta.get("x-amz-matdesc", "{}"))
    except ValueError:
        raise Failure("x-amz-matdesc is not JSON")
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise Failure("x-amz-matdesc is not a JSON object of strings")
    if wrap == "kms+context" and context.get(CEK_CONTEXT_KEY) != cek_alg:
        # the SDKs store the cek algorithm in the context and refuse a mismatch
        raise Failure("kms+context: x-amz-matdesc's %s is not x-amz-cek-alg" % CEK_CONTEXT_KEY)
    if len(iv) != (16 if cek_alg == CBC else 12):
        raise Failure("a %d-byte IV for %s" % (len(iv), cek_alg))
    if cek_alg == GCM and meta.get("x-amz-tag-len") != "128":
        raise Failure("x-amz-tag-len %r, want 128" % meta.get("x-amz-tag-len"))
    return wrapped, iv, context, cek_alg


def decrypt_stream(chunks, cek_alg, key, iv, out):
    """Decrypts the body's chunks into out; Failure on a bad length, padding or tag."""
    size = 0
    if cek_alg == CBC:
        d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        u = padding.PKCS7(128).unpadder()
        for c in chunks:
            size += len(c)
            out.write(u.update(d.update(c)))
        if size == 0 or size % 16:
            raise Failure("the ciphertext is %d bytes, not a positive multiple of 16" % size)
        try:
            out.write(u.update(d.finalize()) + u.finalize())
        except ValueError:
            raise Failure("bad padding")
        return
    d = Cipher(algorithms.AES(key), modes.GCM(iv)).decryptor()
    held = b""                         # the last 16 bytes seen are the tag, not ciphertext
    for c in chunks:
        held += c
        if len(held) > TAG_LEN:
            out.write(d.update(held[:-TAG_LEN]))
            held = held[-TAG_LEN:]
    if len(held) < TAG_LEN:
        raise Failure("the ciphertext is shorter than its GCM tag")
    try:
        out.write(d.finalize_with_tag(held))
    except InvalidTag:
        raise Failure("GCM tag mismatch")


def cmd_decrypt(a):
    bucket, key = s3_url(a.url)
    s3, kms = clients(a)
    obj = s3.get_object(Bucket=bucket, Key=key)
    wrapped, iv, context, cek_alg = envelope(obj["Metadata"])
    try:
        cek = kms.decrypt(CiphertextBlob=wrapped, EncryptionContext=context)["Plaintext"]
    except ClientError as e:
        raise Failure("KMS Decrypt: %s" % e.response["Error"]["Code"])
    if len(cek) not in (16, 24, 32):
        raise Failure("a %d-byte data key" % len(cek))
    d = os.path.dirname(os.path.abspath(a.out))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".s3cse-")
    try:
        with os.fdopen(fd, "wb") as out:
            decrypt_stream(obj["Body"].iter_chunks(CHUNK), cek_alg, cek, iv, out)
            size = out.tell()
        want = obj["Metadata"].get("x-amz-unencrypted-content-length")
        if want is not None and want != str(size):
            raise Failure("x-amz-unencrypted-content-length %s, the plaintext is %d bytes"
                          % (want, size))
        os.rename(tmp, a.out)
    except BaseException:
        os.unlink(tmp)
        raise


# ---- the SDKs' test vectors ----
def short_name(v):
    return v["name"].split(" ")[0]


def load_vectors(path):
    with open(path) as f:
        return json.load(f)


def cmd_list_vectors(a):
    for v in load_vectors(a.vectors):
        if "data_key_hex" in v:
            print(short_name(v))


def cmd_put_vector(a):
    found = [v for v in load_vectors(a.vectors) if a.name in (v["name"], short_name(v))]
    if len(found) != 1:
        raise Failure("no vector named %s" % a.name)
    v = found[0]
    if "data_key_hex" not in v:
        raise Failure("vector %s carries no plaintext data key" % a.name)
    bucket, key = s3_url(a.url)
    meta = dict(v["metadata"])
    if "x-amz-iv_hex" in meta:          # kept as hex in the file: the Go test wrote it so
        meta["x-amz-iv"] = b64e(bytes.fromhex(meta.pop("x-amz-iv_hex")))
    if "x-amz-key-v2" not in meta:
        raise Failure("vector %s has no x-amz-key-v2" % a.name)
    context = json.loads(meta["x-amz-matdesc"]) if "x-amz-matdesc" in meta else {}
    if meta.get("x-amz-wrap-alg") == "kms+context":
        context.setdefault(CEK_CONTEXT_KEY, meta["x-amz-cek-alg"])
    body = base64.b64decode(v["body_b64"]) if "body_b64" in v else bytes.fromhex(v["body_hex"])
    s3, kms = clients(a)
    # the vector's own x-amz-key-v2 is a stub of its test's KMS: wrap its data key for real
    blob = kms.encrypt(KeyId=a.kms_key, Plaintext=bytes.fromhex(v["data_key_hex"]),
                       EncryptionContext=context)["CiphertextBlob"]
    meta["x-amz-key-v2"] = b64e(blob)
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=meta)
    if a.expect_out:
        with open(a.expect_out, "wb") as f:
            f.write(bytes.fromhex(v["expected_plaintext_hex"]))


def parse_args(argv):
    env = os.environ.get
    ap = argparse.ArgumentParser(prog="s3cse_ref.py", description="S3 client-side encryption"
                                 " with KMS: an independent reference for keyplane's tests")
    ap.add_argument("--endpoint-url", default=env("AWS_ENDPOINT_URL"))
    ap.add_argument("--region",
                    default=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1")
    ap.add_argument("--ca-bundle", default=env("AWS_CA_BUNDLE"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("encrypt")
    p.add_argument("file")
    p.add_argument("url")
    p.add_argument("--kms-key", required=True)
    p.add_argument("--shape", choices=("rds", "sdk", "sdk-gcm"), default="rds")
    p.add_argument("--wrap", choices=("kms", "kms+context"), default="kms")
    p.add_argument("--matdesc", help="the context as JSON (default {\"kms_cmk_id\": ID})")
    p.set_defaults(func=cmd_encrypt)
    p = sub.add_parser("decrypt")
    p.add_argument("url")
    p.add_argument("out")
    p.set_defaults(func=cmd_decrypt)
    p = sub.add_parser("put-vector")
    p.add_argument("name")
    p.add_argument("url")
    p.add_argument("--vectors", required=True)
    p.add_argument("--kms-key", required=True)
    p.add_argument("--expect-out", help="write the vector's expected plaintext here")
    p.set_defaults(func=cmd_put_vector)
    p = sub.add_parser("list-vectors")
    p.add_argument("--vectors", required=True)
    p.set_defaults(func=cmd_list_vectors)
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        a.func(a)
    except Failure as e:
        sys.stderr.write("s3cse_ref: %s\n" % e)
        return 1
    except ClientError as e:
        sys.stderr.write("s3cse_ref: %s: %s\n" % (e.operation_name, e.response["Error"]["Code"]))
        return 1
    except (BotoCoreError, OSError, ValueError) as e:
        sys.stderr.write("s3cse_ref: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
