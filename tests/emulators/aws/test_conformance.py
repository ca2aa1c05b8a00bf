#!/usr/bin/python3
"""Conformance tests for the AWS emulator.

Drives emulator.py with boto3/botocore (Debian's python3-boto3 and python3-botocore) and with
Debian's aws CLI (/usr/bin/aws, package awscli), and with raw requests signed by botocore's own
signer for the strictness checks. Two regions (us-east-1 and us-west-2) start once for the module
through the shared ctl core (common/emuctl.py, as awsctl.py does for shell scripts) and are made
peers; a few tests start regions of their own (a peer that goes down, a kill -9). Plain
unittest; run with Debian's /usr/bin/python3:

    /usr/bin/python3 tests/emulators/aws/test_conformance.py -v
    AWS_EMU_KEEP=1 /usr/bin/python3 tests/emulators/aws/test_conformance.py   # keep state and logs
"""

import base64
import calendar
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid
import warnings
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import emuctl  # noqa: E402

from aws import awsctl  # noqa: E402

try:
    import boto3
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import ContainerProvider, Credentials, InstanceMetadataProvider
    from botocore.exceptions import ClientError
    from botocore.utils import InstanceMetadataFetcher
    HAVE_BOTO = True
except ImportError:  # pragma: no cover - reported by the skip below
    HAVE_BOTO = False

AWS_CLI = "/usr/bin/aws"
AKID, SECRET = "AKIDKEYPLANETEST", "kp-aws-secret"
ACCOUNT = "123456789012"
ROLE = "kp-role"
ROLE_ARN = "arn:aws:iam::%s:role/%s" % (ACCOUNT, ROLE)
WEB_ROLE, WEB_TOKEN = "kp-web-role", "kp-web-identity-token-0123"
CONTAINER_TOKEN = "kp-container-token"
MiB = 1024 * 1024
NO_RETRY = {"total_max_attempts": 1}
E = {}      # the module's regions: name -> Region


def amz_now(offset=0):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + offset))


class Region:
    """Region NAME of the run's directory d."""

    def __init__(self, d, name, region, extra=(), **kw):
        self.d, self.name, self.region, self.extra, self.kw = d, name, region, list(extra), kw
        self.port = None

    def start(self, port_reuse=False):
        args = awsctl.region_args(self.region, ["%s:%s" % (AKID, SECRET)],
                                  ca=os.path.join(self.d, "pki", "ca.pem"), **self.kw)
        self.port = emuctl.start(awsctl.SPEC, self.d, self.name, args, extra=self.extra,
                                 port_reuse=port_reuse)
        self.control = emuctl.control(awsctl.SPEC, self.d, self.name)
        return self

    def stop(self, kill=False):
        emuctl.stop(awsctl.SPEC, self.d, self.name, kill)

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    @property
    def ca(self):
        return os.path.join(self.d, "pki", "ca.pem")

    def client(self, service, akid=AKID, secret=SECRET, token=None, region=None, retries=None,
               config=None):
        cfg = Config(retries=retries) if retries is not None else (config or Config())
        return boto3.session.Session(aws_access_key_id=akid, aws_secret_access_key=secret,
                                     aws_session_token=token,
                                     region_name=region or self.region).client(
            service, endpoint_url=self.url, verify=self.ca, config=cfg)

    def stats(self):
        return self.control.stats()

    def health(self):
        return self.control.health()


def setUpModule():
    if not HAVE_BOTO:
        return
    # boto3 clients keep their pooled connections open until collected
    warnings.filterwarnings("ignore", category=ResourceWarning)
    d = tempfile.mkdtemp(prefix="aws-emu-test-")
    E["dir"] = d
    E["east"] = Region(d, "east", "us-east-1", roles=[ROLE],
                       web_tokens=["%s=%s" % (WEB_ROLE, WEB_TOKEN)], imds="auto",
                       container="auto", container_token=CONTAINER_TOKEN).start()
    E["west"] = Region(d, "west", "us-west-2", roles=[ROLE]).start()
    awsctl.link(d, "west")


def tearDownModule():
    if "dir" not in E:
        return
    emuctl.stop_all(awsctl.SPEC, E["dir"])
    if os.environ.get("AWS_EMU_KEEP"):
        sys.stderr.write("\nkept %s\n" % E["dir"])
    else:
        shutil.rmtree(E["dir"], ignore_errors=True)


# ---- the aws CLI ----
def cli_env(d, extra=None, keys=True):
    """An environment for /usr/bin/aws that reads no ~/.aws of the user's."""
    home = os.path.join(d, "cli-home")
    os.makedirs(home, exist_ok=True)
    for f in ("config", "credentials"):
        p = os.path.join(home, f)
        if not os.path.exists(p):
            open(p, "w").close()
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "AWS_CONFIG_FILE": os.path.join(home, "config"),
           "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "credentials"), "AWS_PAGER": "",
           "AWS_EC2_METADATA_DISABLED": "true", "LANG": "C.UTF-8"}
    if keys:
        env.update(AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET)
    env.update(extra or {})
    return env


def cli(region, *args, env=None, check=True, endpoint=True):
    """(returncode, parsed JSON stdout or text, stderr) of /usr/bin/aws against region."""
    if not os.path.exists(AWS_CLI):
        raise AssertionError("%s is missing: install Debian's awscli (scripts/setup-debian.sh); an"
                             " aws elsewhere on PATH is not used" % AWS_CLI)
    cmd = [AWS_CLI]
    if endpoint:
        cmd += ["--endpoint-url", region.url, "--ca-bundle", region.ca]
    cmd += ["--region", region.region, "--output", "json"] + list(args)
    p = subprocess.run(cmd, env=env or cli_env(E["dir"]), capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("aws %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    try:
        out = json.loads(p.stdout) if p.stdout.strip() else None
    except ValueError:
        out = p.stdout
    return p.returncode, out, p.stderr


# ---- raw requests signed by botocore's signer (any timestamp, any scope) ----
def sign(areq, service, region, akid=AKID, secret=SECRET, token=None, ts=None, payload_hash=None):
    """Signs areq as botocore's add_auth does, at time ts (X-Amz-Date form) and, for S3, with
    payload_hash as x-amz-content-sha256 when given."""
    creds = Credentials(akid, secret, token)
    auth = (S3SigV4Auth if service == "s3" else SigV4Auth)(creds, service, region)
    areq.context["timestamp"] = ts or amz_now()
    auth._modify_request_before_signing(areq)
    if payload_hash is not None:
        del areq.headers["X-Amz-Content-SHA256"]
        areq.headers["X-Amz-Content-SHA256"] = payload_hash
    canonical = auth.canonical_request(areq)
    sts = auth.string_to_sign(areq, canonical)
    auth._inject_signature_to_request(areq, auth.signature(sts, areq))
    return areq


def raw(region, method, path, body=b"", headers=None, service="s3", scope_region=None, sign_it=True,
        after_sign=None, **kw):
    """(status, headers, body bytes) of one request to region, signed by botocore unless
    sign_it is False; after_sign(headers) may spoil the request afterwards."""
    url = "https://127.0.0.1:%d%s" % (region.port, path)
    areq = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if sign_it:
        sign(areq, service, scope_region or region.region, **kw)
    h = dict(areq.headers.items())
    if after_sign:
        after_sign(h)
    ctx = ssl.create_default_context(cafile=region.ca)
    conn = http.client.HTTPSConnection("127.0.0.1", region.port, context=ctx, timeout=30)
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, resp, resp.read()
    finally:
        conn.close()


def xml(body):
    root = ET.fromstring(body)
    for e in root.iter():
        if "}" in e.tag:
            e.tag = e.tag.split("}", 1)[1]
    return root


def json_target(region, service, op, params, **kw):
    prefix = "TrentService" if service == "kms" else "secretsmanager"
    return raw(region, "POST", "/", json.dumps(params).encode(), service=service,
               headers={"Content-Type": "application/x-amz-json-1.1",
                        "X-Amz-Target": "%s.%s" % (prefix, op)}, **kw)


def code_of(e):
    return e.response["Error"]["Code"]


def rejected(region):
    return region.stats()["signature_rejected"]


@unittest.skipUnless(HAVE_BOTO, "python3-boto3 / python3-botocore not installed")
class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.east, cls.west = E["east"], E["west"]

    def tearDown(self):
        self.east.control.set_faults({})

    def assertClientError(self, code, func, *args, **kwargs):
        with self.assertRaises(ClientError) as cm:
            func(*args, **kwargs)
        self.assertEqual(code_of(cm.exception), code, cm.exception.response["Error"])
        return cm.exception

    def bucket(self, prefix="kp"):
        name = "%s-%s" % (prefix, uuid.uuid4().hex[:12])
        self.east.client("s3").create_bucket(Bucket=name)
        return name

    def kms_key(self, region=None, alias=None):
        kms = (region or self.east).client("kms")
        k = kms.create_key(Description="conformance")["KeyMetadata"]
        if alias:
            kms.create_alias(AliasName=alias, TargetKeyId=k["KeyId"])
        return k


# --------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------

class S3Test(Base):
    def test_cli_sse_kms_put_head_get(self):
        b = "kp-cli-" + uuid.uuid4().hex[:10]
        cli(self.east, "s3api", "create-bucket", "--bucket", b)
        _, key, _ = cli(self.east, "kms", "create-key", "--description", "cli")
        alias = "alias/kp-cli-" + uuid.uuid4().hex[:8]
        cli(self.east, "kms", "create-alias", "--alias-name", alias, "--target-key-id",
            key["KeyMetadata"]["KeyId"])
        d = tempfile.mkdtemp(dir=E["dir"])
        src, dst = os.path.join(d, "in.bin"), os.path.join(d, "out.bin")
        data = os.urandom(3000) + b"\x00\xff end"
        with open(src, "wb") as f:
            f.write(data)
        _, put, _ = cli(self.east, "s3api", "put-object", "--bucket", b, "--key", "dir/obj one.bin",
                        "--body", src, "--server-side-encryption", "aws:kms", "--ssekms-key-id",
                        alias, "--metadata", "Purpose=DR,Owner=kp")
        arn = key["KeyMetadata"]["Arn"]
        self.assertEqual(put["SSEKMSKeyId"], arn)
        _, head, _ = cli(self.east, "s3api", "head-object", "--bucket", b, "--key", "dir/obj one.bin")
        self.assertEqual(head["ServerSideEncryption"], "aws:kms")
        self.assertEqual(head["SSEKMSKeyId"], arn)
        self.assertEqual(head["ContentLength"], len(data))
        self.assertEqual(head["Metadata"], {"purpose": "DR", "owner": "kp"})
        cli(self.east, "s3api", "get-object", "--bucket", b, "--key", "dir/obj one.bin", dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        # the same through boto3, and the key named by its ARN, its id and the alias ARN
        s3 = self.east.client("s3")
        for ref in (arn, key["KeyMetadata"]["KeyId"],
                    "arn:aws:kms:us-east-1:%s:%s" % (ACCOUNT, alias)):
            r = s3.put_object(Bucket=b, Key="k", Body=b"x", ServerSideEncryption="aws:kms",
                              SSEKMSKeyId=ref, BucketKeyEnabled=True)
            self.assertEqual(r["SSEKMSKeyId"], arn)
            self.assertTrue(r["BucketKeyEnabled"])
            self.assertTrue(s3.head_object(Bucket=b, Key="k")["BucketKeyEnabled"])

    def test_cli_multipart_copy_round_trip(self):
        b = self.bucket()
        d = tempfile.mkdtemp(dir=E["dir"])
        src, dst = os.path.join(d, "big.bin"), os.path.join(d, "back.bin")
        data = os.urandom(9 * MiB + 12345)
        with open(src, "wb") as f:
            f.write(data)
        cli(self.east, "s3", "cp", "--no-progress", src, "s3://%s/backups/big.bin" % b)
        head = self.east.client("s3").head_object(Bucket=b, Key="backups/big.bin")
        self.assertEqual(head["ContentLength"], len(data))
        self.assertRegex(head["ETag"], r'^"[0-9a-f]{32}-2"$')       # the CLI's 8 MiB parts
        parts = [data[:8 * MiB], data[8 * MiB:]]
        want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
        self.assertEqual(head["ETag"], '"%s-2"' % want)
        cli(self.east, "s3", "cp", "--no-progress", "s3://%s/backups/big.bin" % b, dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        _, out, _ = cli(self.east, "s3", "ls", "s3://%s/backups/" % b)
        self.assertIn("big.bin", out)

    def test_list_objects_v2_paging(self):
        b = self.bucket()
        s3 = self.east.client("s3")
        keys = ["a/1", "a/2", "b/1", "c", "d e+f", "z/x/y"]
        for k in keys:
            s3.put_object(Bucket=b, Key=k, Body=k.encode())
        got, token, pages = [], None, 0
        while True:
            args = ["s3api", "list-objects-v2", "--bucket", b, "--max-keys", "2", "--no-paginate"]
            if token:
                args += ["--continuation-token", token]
            _, page, _ = cli(self.east, *args)
            pages += 1
            self.assertLessEqual(page["KeyCount"], 2)
            got += [c["Key"] for c in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                self.assertFalse(page["IsTruncated"])
                break
            self.assertTrue(page["IsTruncated"])
        self.assertEqual(got, sorted(keys))
        self.assertEqual(pages, 3)
        _, allk, _ = cli(self.east, "s3api", "list-objects-v2", "--bucket", b, "--page-size", "4")
        self.assertEqual([c["Key"] for c in allk["Contents"]], sorted(keys))
        # delimiter and prefix: common prefixes count as one entry each
        r = s3.list_objects_v2(Bucket=b, Delimiter="/")
        self.assertEqual([c["Key"] for c in r["Contents"]], ["c", "d e+f"])
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]], ["a/", "b/", "z/"])
        r = s3.list_objects_v2(Bucket=b, Delimiter="/", MaxKeys=2)
        self.assertEqual(r["KeyCount"], 2)
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]], ["a/", "b/"])
        r2 = s3.list_objects_v2(Bucket=b, Delimiter="/", MaxKeys=2,
                                ContinuationToken=r["NextContinuationToken"])
        self.assertEqual(([c["Key"] for c in r2["Contents"]], r2.get("CommonPrefixes")),
                         (["c", "d e+f"], None))
        r3 = s3.list_objects_v2(Bucket=b, Delimiter="/", MaxKeys=2,
                                ContinuationToken=r2["NextContinuationToken"])
        self.assertEqual(([p["Prefix"] for p in r3["CommonPrefixes"]], r3["IsTruncated"]),
                         (["z/"], False))
        r = s3.list_objects_v2(Bucket=b, Prefix="a/", StartAfter="a/1")
        self.assertEqual([c["Key"] for c in r["Contents"]], ["a/2"])
        self.assertClientError("InvalidArgument", s3.list_objects_v2, Bucket=b,
                               ContinuationToken="not-a-token")
        _, ls, _ = cli(self.east, "s3", "ls", "s3://%s/" % b)
        self.assertIn("PRE a/", ls)
        self.assertIn("d e+f", ls)

    def test_bucket_default_encryption(self):
        b = self.bucket()
        s3 = self.east.client("s3")
        enc = s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"][0]
        self.assertEqual(enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256")
        self.assertEqual(s3.put_object(Bucket=b, Key="plain", Body=b"1")["ServerSideEncryption"],
                         "AES256")
        k = self.kms_key()
        s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                   "KMSMasterKeyID": k["KeyId"]},
            "BucketKeyEnabled": True}]})
        s3.put_object(Bucket=b, Key="default", Body=b"2")
        h = s3.head_object(Bucket=b, Key="default")
        self.assertEqual((h["ServerSideEncryption"], h["SSEKMSKeyId"], h["BucketKeyEnabled"]),
                         ("aws:kms", k["Arn"], True))
        h = s3.head_object(Bucket=b, Key="plain")
        self.assertEqual(h["ServerSideEncryption"], "AES256")
        self.assertNotIn("SSEKMSKeyId", h)
        r = s3.put_object(Bucket=b, Key="explicit", Body=b"3", ServerSideEncryption="AES256")
        self.assertEqual(r["ServerSideEncryption"], "AES256")
        # aws:kms without a key id: the AWS managed key aws/s3, made on first use
        r = s3.put_object(Bucket=b, Key="managed", Body=b"4", ServerSideEncryption="aws:kms")
        managed = self.east.client("kms").describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
        self.assertEqual(r["SSEKMSKeyId"], managed["Arn"])
        self.assertEqual(managed["KeyManager"], "AWS")

    def test_sse_key_of_another_region_or_unknown_refused(self):
        b = self.bucket()
        s3 = self.east.client("s3", retries=NO_RETRY)
        west_key = self.kms_key(self.west)
        e = self.assertClientError("KMS.NotFoundException", s3.put_object, Bucket=b, Key="k",
                                   Body=b"x", ServerSideEncryption="aws:kms",
                                   SSEKMSKeyId=west_key["Arn"])
        self.assertIn("us-west-2", e.response["Error"]["Message"])
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        # the key id of a west key names no key in us-east-1
        self.assertClientError("KMS.NotFoundException", s3.put_object, Bucket=b, Key="k",
                               Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=west_key["KeyId"])
        self.assertClientError("KMS.NotFoundException", s3.put_object, Bucket=b, Key="k",
                               Body=b"x", ServerSideEncryption="aws:kms",
                               SSEKMSKeyId="alias/no-such-alias")
        self.assertClientError("InvalidArgument", s3.put_object, Bucket=b, Key="k", Body=b"x",
                               ServerSideEncryption="aws:kms:nope")
        # a bucket default naming a west key: the object PUT is refused, nothing stored
        s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                   "KMSMasterKeyID": west_key["Arn"]}}]})
        self.assertClientError("KMS.NotFoundException", s3.put_object, Bucket=b, Key="k", Body=b"x")
        self.assertEqual(s3.list_objects_v2(Bucket=b)["KeyCount"], 0)

    def _conditional_client(self, header="If-None-Match", value="*"):
        s3 = self.east.client("s3", retries=NO_RETRY)

        def add(request, **kw):
            request.headers[header] = value
        s3.meta.events.register("before-sign.s3.PutObject", add)
        s3.meta.events.register("before-sign.s3.CompleteMultipartUpload", add)
        return s3

    def test_if_none_match_and_races(self):
        b = self.bucket()
        s3 = self._conditional_client()
        s3.put_object(Bucket=b, Key="once", Body=b"first")
        e = self.assertClientError("PreconditionFailed", s3.put_object, Bucket=b, Key="once",
                                   Body=b"second")
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 412)
        self.assertEqual(self.east.client("s3").get_object(Bucket=b, Key="once")["Body"].read(),
                         b"first")
        # If-Match: the current ETag replaces, another is 412
        etag = self.east.client("s3").head_object(Bucket=b, Key="once")["ETag"]
        self.assertClientError("PreconditionFailed",
                               self._conditional_client("If-Match", '"00"').put_object,
                               Bucket=b, Key="once", Body=b"x")
        self._conditional_client("If-Match", etag).put_object(Bucket=b, Key="once", Body=b"third")
        # racing conditional writes of one new key: exactly one wins
        for round_ in range(3):
            key = "race-%d" % round_
            results = []
            barrier = threading.Barrier(4)

            def writer(i):
                c = self._conditional_client()
                barrier.wait()
                try:
                    c.put_object(Bucket=b, Key=key, Body=b"writer %d" % i + b"." * 200000)
                    results.append("ok")
                except ClientError as err:
                    results.append(code_of(err))
            ts = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(results.count("ok"), 1, results)
            self.assertTrue(all(r in ("ok", "PreconditionFailed", "ConditionalRequestConflict")
                                for r in results), results)
        # CompleteMultipartUpload with If-None-Match on an existing key
        up = s3.create_multipart_upload(Bucket=b, Key="once")
        p = s3.upload_part(Bucket=b, Key="once", UploadId=up["UploadId"], PartNumber=1, Body=b"mp")
        self.assertClientError("PreconditionFailed", s3.complete_multipart_upload, Bucket=b,
                               Key="once", UploadId=up["UploadId"],
                               MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
        self.assertClientError("NotImplemented",
                               self._conditional_client("If-None-Match", '"abc"').put_object,
                               Bucket=b, Key="other", Body=b"x")

    def test_multipart_rules(self):
        b = self.bucket()
        s3 = self.east.client("s3", retries=NO_RETRY)
        k = self.kms_key()
        up = s3.create_multipart_upload(Bucket=b, Key="mp", ServerSideEncryption="aws:kms",
                                        SSEKMSKeyId=k["KeyId"], Metadata={"Kind": "dump"})
        self.assertEqual(up["SSEKMSKeyId"], k["Arn"])
        uid = up["UploadId"]
        p1 = os.urandom(5 * MiB)
        small = os.urandom(1000)
        e1 = s3.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = s3.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=2, Body=small)["ETag"]
        e3 = s3.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=3, Body=b"tail")["ETag"]
        self.assertEqual(e1, '"%s"' % hashlib.md5(p1).hexdigest())
        parts = s3.list_parts(Bucket=b, Key="mp", UploadId=uid, MaxParts=2)
        self.assertEqual([p["PartNumber"] for p in parts["Parts"]], [1, 2])
        self.assertTrue(parts["IsTruncated"])
        self.assertClientError("EntityTooSmall", s3.complete_multipart_upload, Bucket=b, Key="mp",
                               UploadId=uid, MultipartUpload={"Parts": [
                                   {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2},
                                   {"PartNumber": 3, "ETag": e3}]})
        self.assertClientError("InvalidPart", s3.complete_multipart_upload, Bucket=b, Key="mp",
                               UploadId=uid, MultipartUpload={"Parts": [
                                   {"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}]})
        self.assertClientError("InvalidPartOrder", s3.complete_multipart_upload, Bucket=b, Key="mp",
                               UploadId=uid, MultipartUpload={"Parts": [
                                   {"PartNumber": 3, "ETag": e3}, {"PartNumber": 1, "ETag": e1}]})
        self.assertClientError("InvalidArgument", s3.upload_part, Bucket=b, Key="mp", UploadId=uid,
                               PartNumber=10001, Body=b"x")
        r = s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e3}]})
        want = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(b"tail").digest()).hexdigest()
        self.assertEqual(r["ETag"], '"%s-2"' % want)
        self.assertEqual(r["SSEKMSKeyId"], k["Arn"])
        g = s3.get_object(Bucket=b, Key="mp")
        self.assertEqual(g["Body"].read(), p1 + b"tail")
        self.assertEqual((g["SSEKMSKeyId"], g["Metadata"]), (k["Arn"], {"kind": "dump"}))
        g = s3.get_object(Bucket=b, Key="mp", PartNumber=2)
        self.assertEqual((g["PartsCount"], g["Body"].read()), (2, b"tail"))
        self.assertClientError("NoSuchUpload", s3.list_parts, Bucket=b, Key="mp", UploadId=uid)
        up = s3.create_multipart_upload(Bucket=b, Key="gone")
        s3.abort_multipart_upload(Bucket=b, Key="gone", UploadId=up["UploadId"])
        self.assertClientError("NoSuchUpload", s3.upload_part, Bucket=b, Key="gone",
                               UploadId=up["UploadId"], PartNumber=1, Body=b"x")

    def test_integrity_and_metadata_limits(self):
        b = self.bucket()
        s3 = self.east.client("s3", retries=NO_RETRY)
        wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        self.assertClientError("BadDigest", s3.put_object, Bucket=b, Key="k", Body=b"data",
                               ContentMD5=wrong)
        self.assertClientError("InvalidDigest", s3.put_object, Bucket=b, Key="k", Body=b"data",
                               ContentMD5="bm90IG1kNQ==")
        self.assertClientError("BadDigest", s3.put_object, Bucket=b, Key="k", Body=b"data",
                               ChecksumSHA256=base64.b64encode(hashlib.sha256(b"x").digest()).decode())
        crc = base64.b64encode(bytes.fromhex("e3069283")).decode()     # CRC32C("123456789")
        s3.put_object(Bucket=b, Key="c", Body=b"123456789", ChecksumCRC32C=crc)
        self.assertClientError("BadDigest", s3.put_object, Bucket=b, Key="c", Body=b"12345678",
                               ChecksumCRC32C=crc)
        ok = base64.b64encode(hashlib.md5(b"data").digest()).decode()
        s3.put_object(Bucket=b, Key="k", Body=b"data", ContentMD5=ok)
        meta = {"a": "x" * 1000, "b": "y" * 1000}
        s3.put_object(Bucket=b, Key="m", Body=b"1", Metadata=meta)         # 2002 bytes: fits
        e = self.assertClientError("MetadataTooLarge", s3.put_object, Bucket=b, Key="m2", Body=b"1",
                                   Metadata={"a": "x" * 1024, "b": "y" * 1024})
        self.assertEqual(e.response["Error"]["MaxSizeAllowed"], "2048")
        self.assertEqual(s3.head_object(Bucket=b, Key="m")["Metadata"], meta)
        big = os.urandom(3 * MiB)                  # over the shared handler's 1 MiB default
        s3.put_object(Bucket=b, Key="big", Body=big)
        self.assertEqual(s3.get_object(Bucket=b, Key="big", Range="bytes=1048570-1048579")["Body"].read(),
                         big[1048570:1048580])
        self.assertClientError("InvalidRange", s3.get_object, Bucket=b, Key="k", Range="bytes=10-20")

    # ---- what keyplane backup (issue 18) relies on ----
    def test_metadata_limit_exact(self):
        # an S3 client-side-encrypted object's envelope is user metadata: the 2 KB limit is the
        # UTF-8 bytes of the names (without x-amz-meta-) and values, 2048 included, and it holds
        # for a multipart upload too, when it is created
        b = self.bucket()
        s3 = self.east.client("s3", retries=NO_RETRY)
        s3.put_object(Bucket=b, Key="fits", Body=b"1", Metadata={"x-amz-key": "k" * (2048 - 9)})
        self.assertEqual(len(s3.head_object(Bucket=b, Key="fits")["Metadata"]["x-amz-key"]), 2039)
        e = self.assertClientError("MetadataTooLarge", s3.put_object, Bucket=b, Key="over",
                                   Body=b"1", Metadata={"x-amz-key": "k" * (2048 - 8)})
        self.assertEqual((e.response["Error"]["Size"], e.response["Error"]["MaxSizeAllowed"]),
                         ("2049", "2048"))
        self.assertClientError("MetadataTooLarge", s3.create_multipart_upload, Bucket=b,
                               Key="over", Metadata={"x-amz-key": "k" * (2048 - 8)})
        self.assertEqual(s3.list_objects_v2(Bucket=b)["KeyCount"], 1)
        self.assertNotIn("Uploads", s3.list_multipart_uploads(Bucket=b))

    def test_unsigned_parts_and_conditional_complete(self):
        # parts sent with x-amz-content-sha256 UNSIGNED-PAYLOAD (allowed over TLS; the signature
        # still covers the headers), a signed part's hash still checked, and a completion with
        # If-None-Match: * that never replaces an existing object
        b = self.bucket()
        s3 = self.east.client("s3", config=Config(s3={"payload_signing_enabled": False},
                                                  retries=NO_RETRY))
        sent = []

        def seen(request, **kw):
            v = request.headers["X-Amz-Content-SHA256"]
            sent.append(v.decode() if isinstance(v, bytes) else v)
        s3.meta.events.register("before-send.s3.UploadPart", seen)
        part, tail = os.urandom(5 * MiB), b"tail"

        def upload(key):
            uid = s3.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
            tags = [s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n, Body=body)["ETag"]
                    for n, body in ((1, part), (2, tail))]
            return uid, {"Parts": [{"PartNumber": n + 1, "ETag": t} for n, t in enumerate(tags)]}
        uid, parts = upload("bak")
        self.assertEqual(sent, ["UNSIGNED-PAYLOAD"] * 2)
        self.assertEqual(parts["Parts"][0]["ETag"], '"%s"' % hashlib.md5(part).hexdigest())
        st, _, body = raw(self.east, "PUT", "/%s/bak?partNumber=2&uploadId=%s" % (b, uid), b"evil",
                          payload_hash=hashlib.sha256(tail).hexdigest())
        self.assertEqual((st, xml(body).findtext("Code")), (400, "XAmzContentSHA256Mismatch"))
        s3.put_object(Bucket=b, Key="bak", Body=b"the backup already there")
        cond = self._conditional_client()
        e = self.assertClientError("PreconditionFailed", cond.complete_multipart_upload, Bucket=b,
                                   Key="bak", UploadId=uid, MultipartUpload=parts)
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 412)
        self.assertEqual(s3.get_object(Bucket=b, Key="bak")["Body"].read(),
                         b"the backup already there")
        uid, parts = upload("new")
        r = cond.complete_multipart_upload(Bucket=b, Key="new", UploadId=uid, MultipartUpload=parts)
        self.assertTrue(r["ETag"].endswith('-2"'), r["ETag"])
        self.assertEqual(s3.get_object(Bucket=b, Key="new")["Body"].read(), part + tail)

    def test_ranged_get_if_match(self):
        # a reader that fetches an object in ranges pins its ETag: a stale one is 412
        # PreconditionFailed (before the range is looked at), never bytes of another version
        b = self.bucket()
        s3 = self.east.client("s3", retries=NO_RETRY)
        one, two = os.urandom(64 * 1024), os.urandom(64 * 1024)
        etag = s3.put_object(Bucket=b, Key="k", Body=one)["ETag"]
        g = s3.get_object(Bucket=b, Key="k", Range="bytes=100-199", IfMatch=etag)
        self.assertEqual((g["ResponseMetadata"]["HTTPStatusCode"], g["ContentRange"]),
                         (206, "bytes 100-199/65536"))
        self.assertEqual(g["Body"].read(), one[100:200])
        s3.put_object(Bucket=b, Key="k", Body=two)
        for rng in ("bytes=100-199", "bytes=999999-"):
            e = self.assertClientError("PreconditionFailed", s3.get_object, Bucket=b, Key="k",
                                       Range=rng, IfMatch=etag)
            self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 412)
        self.assertClientError("412", s3.head_object, Bucket=b, Key="k", IfMatch=etag)
        new = s3.head_object(Bucket=b, Key="k")["ETag"]
        self.assertEqual(s3.get_object(Bucket=b, Key="k", Range="bytes=-5", IfMatch=new)["Body"].read(),
                         two[-5:])

    def test_error_shapes(self):
        b = self.bucket()
        st, resp, body = raw(self.east, "GET", "/%s/missing-key" % b)
        self.assertEqual(st, 404)
        err = xml(body)
        self.assertEqual(err.tag, "Error")
        self.assertEqual(err.findtext("Code"), "NoSuchKey")
        self.assertEqual(err.findtext("Resource"), "/%s/missing-key" % b)
        self.assertEqual(err.findtext("RequestId"), resp.getheader("x-amz-request-id"))
        self.assertTrue(resp.getheader("x-amz-id-2"))
        self.assertEqual(resp.getheader("Content-Type"), "application/xml")
        st, resp, body = raw(self.east, "HEAD", "/%s/missing-key" % b)
        self.assertEqual((st, body), (404, b""))
        st, _, body = raw(self.east, "GET", "/no-such-bucket-kp/x")
        self.assertEqual((st, xml(body).findtext("Code")), (404, "NoSuchBucket"))
        st, _, body = raw(self.east, "PUT", "/Bad_Bucket")
        self.assertEqual((st, xml(body).findtext("Code")), (400, "InvalidBucketName"))
        st, _, body = raw(self.east, "PUT", "/%s/k?acl" % b, b"")
        self.assertEqual((st, xml(body).findtext("Code")), (501, "NotImplemented"))
        st, _, body = raw(self.east, "PUT", "/%s/k" % b, b"x", {"x-amz-copy-source": "/%s/m" % b})
        self.assertEqual(st, 501)
        st, _, body = raw(self.east, "PUT", "/%s/%s" % (b, "k" * 1025), b"x")
        self.assertEqual((st, xml(body).findtext("Code")), (400, "KeyTooLongError"))

    def test_create_bucket_location_constraint(self):
        s3e, s3w = self.east.client("s3", retries=NO_RETRY), self.west.client("s3", retries=NO_RETRY)
        name = "kp-loc-" + uuid.uuid4().hex[:8]
        self.assertClientError("InvalidLocationConstraint", s3e.create_bucket, Bucket=name,
                               CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
        self.assertClientError("IllegalLocationConstraintException", s3e.create_bucket, Bucket=name,
                               CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        self.assertClientError("IllegalLocationConstraintException", s3w.create_bucket, Bucket=name)
        self.assertClientError("IllegalLocationConstraintException", s3w.create_bucket, Bucket=name,
                               CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3w.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        self.assertClientError("BucketAlreadyOwnedByYou", s3w.create_bucket, Bucket=name,
                               CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        self.assertEqual(s3w.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]
                         ["x-amz-bucket-region"], "us-west-2")
        self.assertEqual(s3w.get_bucket_location(Bucket=name)["LocationConstraint"], "us-west-2")
        s3e.create_bucket(Bucket=name)                       # us-east-1's own namespace here
        s3e.create_bucket(Bucket=name)                       # and its legacy 200 for the owner
        self.assertIsNone(s3e.get_bucket_location(Bucket=name)["LocationConstraint"])
        s3e.put_object(Bucket=name, Key="k", Body=b"x")
        self.assertClientError("BucketNotEmpty", s3e.delete_bucket, Bucket=name)
        s3e.delete_object(Bucket=name, Key="k")
        s3e.delete_bucket(Bucket=name)
        self.assertClientError("404", s3e.head_bucket, Bucket=name)

    def test_virtual_host_addressing(self):
        b = self.bucket("kpvh")
        real = socket.getaddrinfo

        def resolve(host, *args, **kw):           # *.s3.localhost -> 127.0.0.1 for this test
            if isinstance(host, str) and (host == "s3.localhost" or host.endswith(".s3.localhost")):
                host = "127.0.0.1"
            return real(host, *args, **kw)
        socket.getaddrinfo = resolve
        try:
            s3 = boto3.session.Session(aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                                       region_name="us-east-1").client(
                "s3", endpoint_url="https://s3.localhost:%d" % self.east.port, verify=self.east.ca,
                config=Config(s3={"addressing_style": "virtual"}))
            seen = []
            s3.meta.events.register("before-send.s3.*", lambda request, **kw: seen.append(request.url))
            s3.put_object(Bucket=b, Key="vh/key.txt", Body=b"virtual")
            self.assertTrue(seen[0].startswith("https://%s.s3.localhost:" % b), seen[0])
            self.assertEqual(s3.get_object(Bucket=b, Key="vh/key.txt")["Body"].read(), b"virtual")
            self.assertEqual(s3.list_objects_v2(Bucket=b)["KeyCount"], 1)
        finally:
            socket.getaddrinfo = real
        self.assertEqual(self.east.client("s3").get_object(Bucket=b, Key="vh/key.txt")["Body"].read(),
                         b"virtual")

    def test_versioning_and_delete(self):
        b = self.bucket()
        s3 = self.east.client("s3", retries=NO_RETRY)
        self.assertNotIn("Status", s3.get_bucket_versioning(Bucket=b))
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        self.assertEqual(s3.get_bucket_versioning(Bucket=b)["Status"], "Enabled")
        v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
        v2 = s3.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
        self.assertNotEqual(v1, v2)
        self.assertEqual(s3.get_object(Bucket=b, Key="k")["Body"].read(), b"two")
        self.assertEqual(s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read(), b"one")
        d = s3.delete_object(Bucket=b, Key="k")
        self.assertTrue(d["DeleteMarker"])
        self.assertClientError("NoSuchKey", s3.get_object, Bucket=b, Key="k")
        self.assertEqual(s3.get_object(Bucket=b, Key="k", VersionId=v2)["Body"].read(), b"two")
        self.assertClientError("NoSuchVersion", s3.get_object, Bucket=b, Key="k", VersionId="nope")
        s3.delete_object(Bucket=b, Key="k", VersionId=d["VersionId"])
        self.assertEqual(s3.get_object(Bucket=b, Key="k")["Body"].read(), b"two")
        r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k", "VersionId": v1},
                                                            {"Key": "k", "VersionId": v2}]})
        self.assertEqual(len(r["Deleted"]), 2)
        self.assertClientError("NoSuchKey", s3.get_object, Bucket=b, Key="k")


class S3LargeObjectTest(Base):
    def test_multipart_object_is_never_held_in_memory(self):
        """A 128 MiB object in 8 MiB parts, on a region of its own: parts and the joined object
        go to files and GET streams from the file, so the process's peak memory (VmHWM) grows by
        about a part, not by the object (a 1 GiB backup must fit the emulator)."""
        r = Region(E["dir"], "stream", "eu-west-1").start()
        try:
            s3 = r.client("s3", retries=NO_RETRY)
            s3.create_bucket(Bucket="kp-stream",
                             CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
            with open(os.path.join(E["dir"], "stream.pid")) as f:
                status = "/proc/%d/status" % int(f.read())

            def peak():
                with open(status) as f:
                    return next(int(line.split()[1]) * 1024 for line in f
                                if line.startswith("VmHWM:"))
            before = peak()
            uid = s3.create_multipart_upload(Bucket="kp-stream", Key="big")["UploadId"]
            parts, whole = [], hashlib.md5()
            for n in range(1, 17):
                body = hashlib.sha256(b"%d" % n).digest() * (8 * MiB // 32)
                whole.update(body)
                etag = s3.upload_part(Bucket="kp-stream", Key="big", UploadId=uid, PartNumber=n,
                                      Body=body)["ETag"]
                parts.append({"PartNumber": n, "ETag": etag})
            s3.complete_multipart_upload(Bucket="kp-stream", Key="big", UploadId=uid,
                                         MultipartUpload={"Parts": parts})
            got = hashlib.md5()
            for c in s3.get_object(Bucket="kp-stream", Key="big")["Body"].iter_chunks(MiB):
                got.update(c)
            self.assertEqual(got.hexdigest(), whole.hexdigest())
            grown = peak() - before
            self.assertLess(grown, 40 * MiB, "the peak grew by %d MiB for a 128 MiB object"
                            % (grown // MiB))
        finally:
            r.stop()


# --------------------------------------------------------------------------
# SigV4
# --------------------------------------------------------------------------

class SigV4Test(Base):
    def test_wrong_secret_rejected_and_counted(self):
        before = rejected(self.east)
        kw = dict(secret="not-the-secret", retries=NO_RETRY)
        e = self.assertClientError("SignatureDoesNotMatch", self.east.client("s3", **kw).list_buckets)
        err = e.response["Error"]
        self.assertIn("GET\n/\n", err["CanonicalRequest"])
        self.assertTrue(err["StringToSign"].startswith("AWS4-HMAC-SHA256\n"))
        self.assertEqual(err["AWSAccessKeyId"], AKID)
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        e = self.assertClientError("InvalidSignatureException",
                                   self.east.client("secretsmanager", **kw).list_secrets)
        self.assertIn("Canonical String", e.response["Error"]["Message"])
        self.assertClientError("InvalidSignatureException", self.east.client("kms", **kw).list_keys)
        self.assertClientError("SignatureDoesNotMatch", self.east.client("sts", **kw).get_caller_identity)
        st = self.east.stats()
        self.assertEqual(st["signature_rejected"], before + 4)
        self.assertEqual([r["kind"] for r in st["signature_rejected_last"][-4:]], ["signature"] * 4)
        self.assertEqual([r["service"] for r in st["signature_rejected_last"][-4:]],
                         ["s3", "secretsmanager", "kms", "sts"])
        rc, _, err = cli(self.east, "s3api", "list-buckets", check=False,
                         env=cli_env(E["dir"], {"AWS_SECRET_ACCESS_KEY": "wrong"}))
        self.assertNotEqual(rc, 0)
        self.assertIn("SignatureDoesNotMatch", err)
        # the right secret is accepted and counts nothing
        n = rejected(self.east)
        self.east.client("s3").list_buckets()
        self.east.client("secretsmanager").list_secrets()
        self.assertEqual(rejected(self.east), n)

    def test_unknown_access_key(self):
        kw = dict(akid="AKIDUNKNOWN0000000", retries=NO_RETRY)
        e = self.assertClientError("InvalidAccessKeyId", self.east.client("s3", **kw).list_buckets)
        self.assertEqual(e.response["Error"]["AWSAccessKeyId"], "AKIDUNKNOWN0000000")
        self.assertClientError("UnrecognizedClientException",
                               self.east.client("secretsmanager", **kw).list_secrets)
        self.assertClientError("InvalidClientTokenId", self.east.client("sts", **kw).get_caller_identity)
        st, _, body = json_target(self.east, "secretsmanager", "ListSecrets", {},
                                  akid="AKIDUNKNOWN0000000")
        self.assertEqual(json.loads(body)["__type"],
                         "com.amazon.coral.service#UnrecognizedClientException")

    def test_wrong_region_scope(self):
        b = self.bucket()
        st, _, body = raw(self.east, "GET", "/%s?list-type=2" % b, scope_region="us-west-2")
        err = xml(body)
        self.assertEqual((st, err.findtext("Code")), (400, "AuthorizationHeaderMalformed"))
        self.assertIn("the region 'us-west-2' is wrong; expecting 'us-east-1'", err.findtext("Message"))
        self.assertEqual(err.findtext("Region"), "us-east-1")
        sm = boto3.session.Session(aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                                   region_name="eu-west-1").client(
            "secretsmanager", endpoint_url=self.east.url, verify=self.east.ca,
            config=Config(retries=NO_RETRY))
        e = self.assertClientError("InvalidSignatureException", sm.list_secrets)
        self.assertIn("Credential should be scoped to a valid region", e.response["Error"]["Message"])
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        # a service that is not the request's
        st, _, body = raw(self.east, "POST", "/", b"{}", service="secretsmanager",
                          headers={"Content-Type": "application/x-amz-json-1.1",
                                   "X-Amz-Target": "TrentService.ListKeys"})
        self.assertEqual(st, 403)
        self.assertIn("correct service", json.loads(body)["message"])

    def test_skewed_clock(self):
        b = self.bucket()
        st, _, body = raw(self.east, "GET", "/%s?list-type=2" % b, ts=amz_now(-16 * 60))
        err = xml(body)
        self.assertEqual((st, err.findtext("Code")), (403, "RequestTimeTooSkewed"))
        self.assertEqual(err.findtext("MaxAllowedSkewMilliseconds"), "900000")
        st, _, _ = raw(self.east, "GET", "/%s?list-type=2" % b, ts=amz_now(-14 * 60))
        self.assertEqual(st, 200)
        st, _, body = json_target(self.east, "secretsmanager", "ListSecrets", {}, ts=amz_now(-6 * 60))
        self.assertEqual(st, 400)
        self.assertIn("Signature expired", json.loads(body)["message"])
        st, _, body = json_target(self.east, "kms", "ListKeys", {}, ts=amz_now(6 * 60))
        self.assertIn("Signature not yet current", json.loads(body)["message"])
        st, _, _ = json_target(self.east, "kms", "ListKeys", {}, ts=amz_now(-4 * 60))
        self.assertEqual(st, 200)

    def test_signed_header_rules(self):
        b = self.bucket()
        # host not signed: botocore always signs it, so drop it from SignedHeaders afterwards
        def unsign_host(h):
            a = h["Authorization"]
            i = a.index("SignedHeaders=") + len("SignedHeaders=")
            j = a.index(",", i)
            names = [n for n in a[i:j].split(";") if n != "host"]
            h["Authorization"] = a[:i] + ";".join(names) + a[j:]
        st, _, body = raw(self.east, "GET", "/%s?list-type=2" % b, after_sign=unsign_host)
        self.assertEqual((st, xml(body).findtext("Code")), (403, "AccessDenied"))
        st, _, body = json_target(self.east, "kms", "ListKeys", {}, after_sign=unsign_host)
        self.assertIn("'Host'", json.loads(body)["message"])
        # an x-amz-* header added after signing
        st, _, body = raw(self.east, "PUT", "/%s/k" % b, b"x",
                          after_sign=lambda h: h.update({"x-amz-meta-late": "1"}))
        err = xml(body)
        self.assertEqual((st, err.findtext("Code"), err.findtext("HeadersNotSigned")),
                         (403, "AccessDenied", "x-amz-meta-late"))
        # the payload hash: wrong, missing, malformed
        st, _, body = raw(self.east, "PUT", "/%s/k" % b, b"x",
                          payload_hash=hashlib.sha256(b"y").hexdigest())
        self.assertEqual((st, xml(body).findtext("Code")), (400, "XAmzContentSHA256Mismatch"))
        st, _, body = raw(self.east, "PUT", "/%s/k" % b, b"x", payload_hash="not-a-hash")
        self.assertEqual((st, xml(body).findtext("Code")), (400, "InvalidArgument"))
        st, _, body = raw(self.east, "PUT", "/%s/k" % b, b"x",
                          payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        self.assertEqual(st, 501)
        st, _, body = raw(self.east, "PUT", "/%s/k" % b, b"x",
                          after_sign=lambda h: h.pop("X-Amz-Content-SHA256"))
        self.assertEqual(st, 400)
        st, _, body = raw(self.east, "PUT", "/%s/k" % b, b"x", payload_hash="UNSIGNED-PAYLOAD")
        self.assertEqual(st, 200)
        # the same request body hash for JSON services, sent and wrong
        st, _, body = json_target(self.east, "kms", "ListKeys", {},
                                  after_sign=lambda h: h.update(
                                      {"X-Amz-Content-SHA256": hashlib.sha256(b"?").hexdigest()}))
        self.assertEqual(st, 400)
        # no signature at all
        st, _, body = raw(self.east, "GET", "/%s?list-type=2" % b, sign_it=False)
        self.assertEqual((st, xml(body).findtext("Code")), (403, "AccessDenied"))
        st, _, body = raw(self.east, "POST", "/", b"{}", sign_it=False,
                          headers={"Content-Type": "application/x-amz-json-1.1",
                                   "X-Amz-Target": "secretsmanager.ListSecrets"})
        self.assertIn("MissingAuthenticationToken", json.loads(body)["__type"])
        # a client that signs more headers than botocore would (curl signs user-agent) is fine
        st, _, _ = raw(self.east, "GET", "/%s?list-type=2" % b,
                       headers={"User-Agent": "curl/7.88.1", "X-Custom": "a  b   c"})
        self.assertEqual(st, 200)

    def test_query_canonicalization(self):
        b = self.bucket()
        s3 = self.east.client("s3")
        s3.put_object(Bucket=b, Key="dir/a b+c~d", Body=b"1")
        r = s3.list_objects_v2(Bucket=b, Prefix="dir/a b+c", Delimiter="/", StartAfter="dir/")
        self.assertEqual([c["Key"] for c in r["Contents"]], ["dir/a b+c~d"])
        self.assertEqual(s3.get_object(Bucket=b, Key="dir/a b+c~d")["Body"].read(), b"1")
        # the server canonicalizes the query itself: a signature over the raw, unsorted query
        # (as curl 7.88 makes it) is refused
        url = "https://127.0.0.1:%d/%s?prefix=a&list-type=2" % (self.east.port, b)
        areq = AWSRequest(method="GET", url=url)
        creds = Credentials(AKID, SECRET)
        auth = S3SigV4Auth(creds, "s3", "us-east-1")
        areq.context["timestamp"] = amz_now()
        auth._modify_request_before_signing(areq)
        canonical = auth.canonical_request(areq).split("\n")
        canonical[2] = "prefix=a&list-type=2"                  # unsorted, as sent
        canonical = "\n".join(canonical)
        sig = auth.signature(auth.string_to_sign(areq, canonical), areq)
        auth._inject_signature_to_request(areq, sig)
        ctx = ssl.create_default_context(cafile=self.east.ca)
        conn = http.client.HTTPSConnection("127.0.0.1", self.east.port, context=ctx, timeout=30)
        conn.request("GET", "/%s?prefix=a&list-type=2" % b, headers=dict(areq.headers.items()))
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        err = xml(body)
        self.assertEqual((resp.status, err.findtext("Code")), (403, "SignatureDoesNotMatch"))
        self.assertIn("\nlist-type=2&prefix=a\n", err.findtext("CanonicalRequest"))
        st, _, _ = raw(self.east, "GET", "/%s?prefix=a&list-type=2" % b)
        self.assertEqual(st, 200)       # botocore's signer sorts, as the server does


# --------------------------------------------------------------------------
# Secrets Manager
# --------------------------------------------------------------------------

class SecretsTest(Base):
    def test_cli_secret_versions_and_stages(self):
        name = "kp/cli/" + uuid.uuid4().hex[:8]
        _, c, _ = cli(self.east, "secretsmanager", "create-secret", "--name", name,
                      "--secret-string", "v1")
        self.assertRegex(c["ARN"], r"^arn:aws:secretsmanager:us-east-1:%s:secret:%s-[A-Za-z0-9]{6}$"
                         % (ACCOUNT, name))
        _, p, _ = cli(self.east, "secretsmanager", "put-secret-value", "--secret-id", name,
                      "--secret-string", "v2")
        self.assertEqual(p["VersionStages"], ["AWSCURRENT"])
        _, g, _ = cli(self.east, "secretsmanager", "get-secret-value", "--secret-id", c["ARN"])
        self.assertEqual((g["SecretString"], g["VersionId"]), ("v2", p["VersionId"]))
        _, g, _ = cli(self.east, "secretsmanager", "get-secret-value", "--secret-id", name,
                      "--version-id", c["VersionId"])
        self.assertEqual((g["SecretString"], g["VersionStages"]), ("v1", ["AWSPREVIOUS"]))
        _, g, _ = cli(self.east, "secretsmanager", "get-secret-value", "--secret-id", name,
                      "--version-stage", "AWSPREVIOUS")
        self.assertEqual(g["VersionId"], c["VersionId"])
        _, d, _ = cli(self.east, "secretsmanager", "describe-secret", "--secret-id", name)
        self.assertEqual(d["VersionIdsToStages"], {c["VersionId"]: ["AWSPREVIOUS"],
                                                   p["VersionId"]: ["AWSCURRENT"]})
        rc, _, err = cli(self.east, "secretsmanager", "get-secret-value", "--secret-id", name,
                         "--version-stage", "AWSPENDING", check=False)
        self.assertIn("ResourceNotFoundException", err)
        # binary values through the CLI
        d2 = tempfile.mkdtemp(dir=E["dir"])
        fn = os.path.join(d2, "v.bin")
        with open(fn, "wb") as f:
            f.write(b"\x00\x01binary\xff")
        cli(self.east, "secretsmanager", "put-secret-value", "--secret-id", name,
            "--secret-binary", "fileb://" + fn)
        g = self.east.client("secretsmanager").get_secret_value(SecretId=name)
        self.assertEqual(g["SecretBinary"], b"\x00\x01binary\xff")
        self.assertNotIn("SecretString", g)

    def test_list_secret_version_ids_paging(self):
        sm = self.east.client("secretsmanager", retries=NO_RETRY)
        name = "kp/page/" + uuid.uuid4().hex[:8]
        sm.create_secret(Name=name, SecretString="v0")
        for i in range(5):
            sm.put_secret_value(SecretId=name, SecretString="v%d" % (i + 1))
        r = sm.list_secret_version_ids(SecretId=name)
        self.assertEqual(sorted(s for v in r["Versions"] for s in v["VersionStages"]),
                         ["AWSCURRENT", "AWSPREVIOUS"])
        ids, token, pages = [], None, 0
        while True:
            kw = {"NextToken": token} if token else {}
            r = sm.list_secret_version_ids(SecretId=name, MaxResults=2, IncludeDeprecated=True, **kw)
            pages += 1
            self.assertLessEqual(len(r["Versions"]), 2)
            ids += [v["VersionId"] for v in r["Versions"]]
            token = r.get("NextToken")
            if not token:
                break
        self.assertEqual((len(ids), len(set(ids)), pages), (6, 6, 3))
        self.assertClientError("InvalidNextTokenException", sm.list_secret_version_ids,
                               SecretId=name, NextToken="bm9wZQ==")
        self.assertClientError("ValidationException", sm.list_secret_version_ids, SecretId=name,
                               MaxResults=101)
        _, out, _ = cli(self.east, "secretsmanager", "list-secret-version-ids", "--secret-id", name,
                        "--include-deprecated", "--max-results", "4")
        self.assertEqual(len(out["Versions"]), 4)
        self.assertIn("NextToken", out)
        names = [s["Name"] for p in sm.get_paginator("list_secrets").paginate(
            PaginationConfig={"PageSize": 1}, Filters=[{"Key": "name", "Values": ["kp/page/"]}])
            for s in p["SecretList"]]
        self.assertIn(name, names)

    def test_client_request_token_rules(self):
        sm = self.east.client("secretsmanager", retries=NO_RETRY)
        name = "kp/token/" + uuid.uuid4().hex[:8]
        tok = str(uuid.uuid4())
        c = sm.create_secret(Name=name, SecretString="a", ClientRequestToken=tok)
        self.assertEqual(c["VersionId"], tok)
        again = sm.create_secret(Name=name, SecretString="a", ClientRequestToken=tok)
        self.assertEqual((again["ARN"], again["VersionId"]), (c["ARN"], tok))
        self.assertClientError("ResourceExistsException", sm.create_secret, Name=name,
                               SecretString="a")
        tok2 = "t" * 40
        p = sm.put_secret_value(SecretId=name, SecretString="b", ClientRequestToken=tok2)
        p2 = sm.put_secret_value(SecretId=name, SecretString="b", ClientRequestToken=tok2)
        self.assertEqual(p["VersionId"], p2["VersionId"])
        self.assertEqual(len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)
                             ["Versions"]), 2)
        e = self.assertClientError("ResourceExistsException", sm.put_secret_value, SecretId=name,
                                   SecretString="c", ClientRequestToken=tok2)
        self.assertIn("can't modify an existing version", e.response["Error"]["Message"])
        st, _, body = json_target(self.east, "secretsmanager", "PutSecretValue",
                                  {"SecretId": name, "SecretString": "c", "ClientRequestToken": "short"})
        js = json.loads(body)
        self.assertEqual((st, js["__type"]), (400, "com.amazon.coral.validate#ValidationException"))
        self.assertIn("Value 'short' at 'clientRequestToken' failed to satisfy constraint: Member must"
                      " have length greater than or equal to 32", js["message"])
        # a raw client that sends no token is refused (the API reference: it must send one)
        st, _, body = json_target(self.east, "secretsmanager", "PutSecretValue",
                                  {"SecretId": name, "SecretString": "c"})
        self.assertEqual((st, json.loads(body)["__type"]), (400, "InvalidParameterException"))
        self.assertIn("Message", json.loads(body))
        self.assertEqual(sm.get_secret_value(SecretId=name)["SecretString"], "b")

    def test_value_and_name_limits(self):
        sm = self.east.client("secretsmanager", retries=NO_RETRY)
        name = "kp/size/" + uuid.uuid4().hex[:8]
        sm.create_secret(Name=name, SecretString="x" * 65536)
        e = self.assertClientError("ValidationException", sm.put_secret_value, SecretId=name,
                                   SecretString="x" * 65537)
        self.assertIn("secretString", e.response["Error"]["Message"])
        self.assertNotIn("xxxx", e.response["Error"]["Message"])       # a sensitive value
        self.assertClientError("ValidationException", sm.put_secret_value, SecretId=name,
                               SecretBinary=b"\x01" * 65537)
        self.assertClientError("InvalidParameterException", sm.put_secret_value, SecretId=name,
                               SecretString="a", SecretBinary=b"b")
        self.assertClientError("InvalidRequestException", sm.put_secret_value, SecretId=name)
        self.assertClientError("InvalidParameterException", sm.create_secret, Name="bad name!",
                               SecretString="a")
        self.assertClientError("ValidationException", sm.create_secret, Name="n" * 513,
                               SecretString="a")
        self.assertClientError("ResourceNotFoundException", sm.get_secret_value,
                               SecretId="kp/no/such/secret")
        self.assertClientError("ResourceNotFoundException", sm.get_secret_value,
                               SecretId=sm.describe_secret(SecretId=name)["ARN"].replace(
                                   "us-east-1", "us-west-1"))
        rc, _, err = cli(self.east, "secretsmanager", "put-secret-value", "--secret-id", name,
                         "--secret-string", "y" * 65537, check=False)
        self.assertIn("ValidationException", err)
        st, resp, body = json_target(self.east, "secretsmanager", "GetSecretValue",
                                     {"SecretId": "kp/no/such"})
        js = json.loads(body)
        self.assertEqual((st, js["__type"]), (400, "ResourceNotFoundException"))
        self.assertEqual(js["Message"], "Secrets Manager can't find the specified secret.")
        self.assertTrue(resp.getheader("x-amzn-RequestId"))

    def test_staging_labels_and_deletion(self):
        sm = self.east.client("secretsmanager", retries=NO_RETRY)
        name = "kp/stages/" + uuid.uuid4().hex[:8]
        v1 = sm.create_secret(Name=name, SecretString="1")["VersionId"]
        pending = sm.put_secret_value(SecretId=name, SecretString="2",
                                      VersionStages=["AWSPENDING"])["VersionId"]
        self.assertEqual(sm.get_secret_value(SecretId=name)["VersionId"], v1)
        self.assertEqual(sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")
                         ["SecretString"], "2")
        self.assertClientError("ResourceNotFoundException", sm.get_secret_value, SecretId=name,
                               VersionId=pending, VersionStage="AWSCURRENT")
        v3 = sm.put_secret_value(SecretId=name, SecretString="3")["VersionId"]
        stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
        self.assertEqual(stages, {v1: ["AWSPREVIOUS"], pending: ["AWSPENDING"], v3: ["AWSCURRENT"]})
        self.assertClientError("InvalidParameterException", sm.delete_secret, SecretId=name,
                               RecoveryWindowInDays=3)
        d = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
        self.assertAlmostEqual(d["DeletionDate"].timestamp(), time.time() + 7 * 86400, delta=60)
        self.assertClientError("InvalidRequestException", sm.get_secret_value, SecretId=name)
        self.assertClientError("InvalidRequestException", sm.put_secret_value, SecretId=name,
                               SecretString="4")
        self.assertClientError("InvalidRequestException", sm.create_secret, Name=name,
                               SecretString="4")
        self.assertIn("DeletedDate", sm.describe_secret(SecretId=name))
        listed = [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}])
                  ["SecretList"]]
        self.assertEqual(listed, [])
        sm.restore_secret(SecretId=name)
        self.assertEqual(sm.get_secret_value(SecretId=name)["SecretString"], "3")
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        self.assertClientError("ResourceNotFoundException", sm.describe_secret, SecretId=name)

    def test_replication_to_second_region(self):
        sme, smw = self.east.client("secretsmanager", retries=NO_RETRY), \
            self.west.client("secretsmanager", retries=NO_RETRY)
        name = "kp/repl/" + uuid.uuid4().hex[:8]
        c = sme.create_secret(Name=name, SecretString="replicated-1")
        r = sme.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "us-west-2"}])
        self.assertEqual([(s["Region"], s["Status"]) for s in r["ReplicationStatus"]],
                         [("us-west-2", "InSync")])
        d = sme.describe_secret(SecretId=name)
        self.assertEqual(d["PrimaryRegion"], "us-east-1")
        self.assertEqual(d["ReplicationStatus"][0]["Status"], "InSync")
        _, g, _ = cli(self.west, "secretsmanager", "get-secret-value", "--secret-id", name)
        self.assertEqual((g["SecretString"], g["VersionId"]), ("replicated-1", c["VersionId"]))
        self.assertEqual(g["ARN"], c["ARN"].replace(":us-east-1:", ":us-west-2:"))
        p = sme.put_secret_value(SecretId=name, SecretString="replicated-2")
        g = smw.get_secret_value(SecretId=name)
        self.assertEqual((g["SecretString"], g["VersionId"]), ("replicated-2", p["VersionId"]))
        self.assertEqual(smw.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["VersionId"],
                         c["VersionId"])
        self.assertEqual(smw.describe_secret(SecretId=name)["PrimaryRegion"], "us-east-1")
        for call, kw in ((smw.put_secret_value, {"SecretString": "local"}),
                         (smw.delete_secret, {}),
                         (smw.tag_resource, {"Tags": [{"Key": "a", "Value": "b"}]}),
                         (smw.replicate_secret_to_regions,
                          {"AddReplicaRegions": [{"Region": "eu-west-1"}]})):
            e = self.assertClientError("InvalidRequestException", call, SecretId=name, **kw)
            self.assertIn("replica", e.response["Error"]["Message"])
        self.assertClientError("InvalidRequestException", sme.delete_secret, SecretId=name)
        self.assertClientError("InvalidParameterException", sme.replicate_secret_to_regions,
                               SecretId=name, AddReplicaRegions=[{"Region": "us-east-1"}])
        r = sme.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["us-west-2"])
        self.assertEqual(r["ReplicationStatus"], [])
        self.assertClientError("ResourceNotFoundException", smw.get_secret_value, SecretId=name)
        sme.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)

    def test_replica_kms_key_checked_in_replica_region(self):
        sme = self.east.client("secretsmanager", retries=NO_RETRY)
        east_key = self.kms_key(alias="alias/kp-repl-" + uuid.uuid4().hex[:8])
        name = "kp/replkms/" + uuid.uuid4().hex[:8]
        sme.create_secret(Name=name, SecretString="v", KmsKeyId=east_key["Arn"])
        self.assertEqual(sme.describe_secret(SecretId=name)["KmsKeyId"], east_key["Arn"])
        r = sme.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[
            {"Region": "us-west-2", "KmsKeyId": east_key["Arn"]}])
        s = r["ReplicationStatus"][0]
        self.assertEqual(s["Status"], "Failed")
        self.assertIn("us-west-2", s["StatusMessage"])
        self.assertClientError("ResourceNotFoundException",
                               self.west.client("secretsmanager").get_secret_value, SecretId=name)
        sme.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["us-west-2"])
        west_alias = "alias/kp-west-" + uuid.uuid4().hex[:8]
        self.kms_key(self.west, alias=west_alias)
        r = sme.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[
            {"Region": "us-west-2", "KmsKeyId": west_alias}])
        self.assertEqual(r["ReplicationStatus"][0]["Status"], "InSync")
        self.assertEqual(self.west.client("secretsmanager").describe_secret(SecretId=name)["KmsKeyId"],
                         west_alias)
        self.assertClientError("EncryptionFailure", sme.create_secret, Name=name + "-x",
                               SecretString="v", KmsKeyId=west_alias)

    def test_replication_peer_down_then_retried(self):
        eu = Region(E["dir"], "eu", "eu-west-1").start()
        try:
            awsctl.link(E["dir"], "eu")
            self.east.control.ok("POST", "config", {"replication_retry": 0.2})
            eu.stop(kill=True)
            sme = self.east.client("secretsmanager", retries=NO_RETRY)
            name = "kp/down/" + uuid.uuid4().hex[:8]
            sme.create_secret(Name=name, SecretString="before")
            r = sme.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "eu-west-1"}])
            s = r["ReplicationStatus"][0]
            self.assertEqual(s["Status"], "Failed")
            self.assertIn("unreachable", s["StatusMessage"])
            sme.put_secret_value(SecretId=name, SecretString="while-down")
            eu.start(port_reuse=True)
            deadline = time.time() + 15
            while time.time() < deadline:
                status = sme.describe_secret(SecretId=name)["ReplicationStatus"][0]
                if status["Status"] == "InSync":
                    break
                time.sleep(0.2)
            self.assertEqual(status["Status"], "InSync", status)
            self.assertEqual(eu.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"],
                             "while-down")
            sme.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["eu-west-1"])
        finally:
            self.east.control.ok("POST", "config", {"replication_retry": 1.0})
            self.east.control.ok("POST", "peers", {"eu-west-1": None})
            eu.stop()


# --------------------------------------------------------------------------
# KMS
# --------------------------------------------------------------------------

class KmsTest(Base):
    def test_keys_and_aliases(self):
        kms = self.east.client("kms", retries=NO_RETRY)
        k = kms.create_key(Description="d")["KeyMetadata"]
        self.assertRegex(k["Arn"], r"^arn:aws:kms:us-east-1:%s:key/[0-9a-f-]{36}$" % ACCOUNT)
        self.assertEqual((k["KeySpec"], k["KeyUsage"], k["KeyState"], k["Origin"]),
                         ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled", "AWS_KMS"))
        alias = "alias/kp-" + uuid.uuid4().hex[:8]
        kms.create_alias(AliasName=alias, TargetKeyId=k["Arn"])
        for ref in (k["KeyId"], k["Arn"], alias, "arn:aws:kms:us-east-1:%s:%s" % (ACCOUNT, alias)):
            self.assertEqual(kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"], k["KeyId"])
        e = self.assertClientError("NotFoundException", kms.describe_key,
                                   KeyId=k["Arn"].replace("us-east-1", "us-west-2"))
        self.assertIn("us-west-2", e.response["Error"]["Message"])
        self.assertClientError("NotFoundException", self.west.client("kms").describe_key, KeyId=alias)
        self.assertClientError("NotFoundException", kms.describe_key, KeyId=str(uuid.uuid4()))
        self.assertClientError("AlreadyExistsException", kms.create_alias, AliasName=alias,
                               TargetKeyId=k["KeyId"])
        self.assertClientError("InvalidAliasNameException", kms.create_alias, AliasName="kp-noprefix",
                               TargetKeyId=k["KeyId"])
        self.assertClientError("NotAuthorizedException", kms.create_alias, AliasName="alias/aws/kp",
                               TargetKeyId=k["KeyId"])
        self.assertClientError("ValidationException", kms.create_alias, AliasName="alias/bad name",
                               TargetKeyId=k["KeyId"])
        kms.create_alias(AliasName=alias + "-2", TargetKeyId=k["KeyId"])
        mine = kms.list_aliases(KeyId=k["KeyId"])["Aliases"]
        self.assertEqual([a["AliasName"] for a in mine], [alias, alias + "-2"])
        self.assertEqual(mine[0]["AliasArn"], "arn:aws:kms:us-east-1:%s:%s" % (ACCOUNT, alias))
        pages = list(kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 1}))
        self.assertGreaterEqual(len(pages), 2)
        self.assertClientError("UnsupportedOperationException", kms.create_key, KeySpec="ECC_NIST_P256",
                               KeyUsage="SIGN_VERIFY")
        _, out, _ = cli(self.east, "kms", "describe-key", "--key-id", alias)
        self.assertEqual(out["KeyMetadata"]["Arn"], k["Arn"])
        st, _, body = json_target(self.east, "kms", "DescribeKey", {"KeyId": "alias/none-such"})
        js = json.loads(body)
        self.assertEqual((st, js["__type"]), (400, "NotFoundException"))
        self.assertIn("message", js)


def rsa_aes_wrap(wrapping_spki, material, sha="SHA_256"):
    """EncryptedKeyMaterial for RSA_AES_KEY_WRAP_<sha>, built as AWS documents it: RSA-OAEP
    (MGF1 the same hash) of an ephemeral AES-256 key under the wrapping public key, followed by
    that key's AES key wrap with padding (RFC 5649) of the material."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
    h = hashes.SHA256 if sha == "SHA_256" else hashes.SHA1
    pub = serialization.load_der_public_key(wrapping_spki)
    aes = os.urandom(32)
    return pub.encrypt(aes, padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)) + \
        aes_key_wrap_with_padding(aes, material)


def rsa_key_pkcs8(bits=2048):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key, key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())


def oaep(sha="SHA_256"):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    h = hashes.SHA256 if sha == "SHA_256" else hashes.SHA1
    return padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)


class KmsCryptoTest(Base):
    def external_rsa_key(self, kms, spec="RSA_2048"):
        return kms.create_key(KeySpec=spec, KeyUsage="ENCRYPT_DECRYPT", Origin="EXTERNAL",
                              Description="imported",
                              Tags=[{"TagKey": "kp", "TagValue": "protector"}])["KeyMetadata"]

    def test_import_round_trip(self):
        from cryptography.hazmat.primitives import serialization
        kms = self.east.client("kms", retries=NO_RETRY)
        k = self.external_rsa_key(kms)
        self.assertEqual((k["KeySpec"], k["KeyState"], k["Origin"], k["Enabled"]),
                         ("RSA_2048", "PendingImport", "EXTERNAL", False))
        self.assertEqual(kms.list_resource_tags(KeyId=k["KeyId"])["Tags"],
                         [{"TagKey": "kp", "TagValue": "protector"}])
        self.assertClientError("KMSInvalidStateException", kms.get_public_key, KeyId=k["KeyId"])
        self.assertClientError("KMSInvalidStateException", kms.encrypt, KeyId=k["KeyId"],
                               Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
        params = kms.get_parameters_for_import(KeyId=k["Arn"], WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                               WrappingKeySpec="RSA_4096")
        wrapping = serialization.load_der_public_key(params["PublicKey"])
        self.assertEqual(wrapping.key_size, 4096)
        left = params["ParametersValidTo"].timestamp() - time.time()
        self.assertTrue(23.9 * 3600 < left <= 24 * 3600, left)
        key, der = rsa_key_pkcs8()
        kms.import_key_material(KeyId=k["KeyId"], ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=rsa_aes_wrap(params["PublicKey"], der),
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        md = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
        self.assertEqual((md["KeyState"], md["Enabled"], md["ExpirationModel"]),
                         ("Enabled", True, "KEY_MATERIAL_DOES_NOT_EXPIRE"))
        self.assertEqual(md["EncryptionAlgorithms"], ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
        pub = kms.get_public_key(KeyId=k["KeyId"])
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        self.assertEqual(pub["PublicKey"], spki)
        self.assertEqual((pub["KeyId"], pub["KeySpec"], pub["KeyUsage"], pub["EncryptionAlgorithms"]),
                         (k["Arn"], "RSA_2048", "ENCRYPT_DECRYPT",
                          ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]))
        for sha in ("SHA_256", "SHA_1"):
            ct = key.public_key().encrypt(b"protector secret", oaep(sha))
            r = kms.decrypt(KeyId=k["KeyId"], CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_" + sha)
            self.assertEqual((r["Plaintext"], r["KeyId"]), (b"protector secret", k["Arn"]))
        ct = key.public_key().encrypt(b"protector secret", oaep("SHA_256"))
        # the errors AWS gives: a wrong algorithm, no algorithm, no KeyId, a spoiled blob
        self.assertClientError("InvalidCiphertextException", kms.decrypt, KeyId=k["KeyId"],
                               CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_SHA_1")
        self.assertClientError("InvalidKeyUsageException", kms.decrypt, KeyId=k["KeyId"],
                               CiphertextBlob=ct)
        self.assertClientError("InvalidCiphertextException", kms.decrypt, CiphertextBlob=ct)
        self.assertClientError("InvalidCiphertextException", kms.decrypt, KeyId=k["KeyId"],
                               CiphertextBlob=ct[:-1] + bytes([ct[-1] ^ 1]),
                               EncryptionAlgorithm="RSAES_OAEP_SHA_256")
        # Encrypt with the public key, inside KMS, decrypted outside
        e = kms.encrypt(KeyId=k["KeyId"], Plaintext=b"in kms", EncryptionAlgorithm="RSAES_OAEP_SHA_1")
        self.assertEqual(key.decrypt(e["CiphertextBlob"], oaep("SHA_1")), b"in kms")
        self.assertClientError("InvalidKeyUsageException", kms.generate_data_key, KeyId=k["KeyId"],
                               KeySpec="AES_256")
        # the aws CLI decrypts an asymmetric ciphertext
        ctfile = os.path.join(E["dir"], "rsa-ct.bin")
        with open(ctfile, "wb") as f:
            f.write(ct)
        _, out, _ = cli(self.east, "kms", "decrypt", "--key-id", k["Arn"], "--ciphertext-blob",
                        "fileb://" + ctfile, "--encryption-algorithm", "RSAES_OAEP_SHA_256")
        self.assertEqual(base64.b64decode(out["Plaintext"]), b"protector secret")
        # the same material again is fine; other material is refused
        params = kms.get_parameters_for_import(KeyId=k["KeyId"], WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_1",
                                               WrappingKeySpec="RSA_2048")
        kms.import_key_material(KeyId=k["KeyId"], ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=rsa_aes_wrap(params["PublicKey"], der, "SHA_1"))
        params = kms.get_parameters_for_import(KeyId=k["KeyId"], WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_1",
                                               WrappingKeySpec="RSA_2048")
        other = rsa_key_pkcs8()[1]
        self.assertClientError("IncorrectKeyMaterialException", kms.import_key_material,
                               KeyId=k["KeyId"], ImportToken=params["ImportToken"],
                               EncryptedKeyMaterial=rsa_aes_wrap(params["PublicKey"], other, "SHA_1"))
        self.assertEqual(kms.get_public_key(KeyId=k["KeyId"])["PublicKey"], spki)
        # tags after creation
        kms.tag_resource(KeyId=k["KeyId"], Tags=[{"TagKey": "kp2", "TagValue": "v"}])
        kms.untag_resource(KeyId=k["KeyId"], TagKeys=["kp"])
        self.assertEqual(kms.list_resource_tags(KeyId=k["KeyId"])["Tags"],
                         [{"TagKey": "kp2", "TagValue": "v"}])
        # disabled: refused
        kms.disable_key(KeyId=k["KeyId"])
        self.assertClientError("DisabledException", kms.decrypt, KeyId=k["KeyId"], CiphertextBlob=ct,
                               EncryptionAlgorithm="RSAES_OAEP_SHA_256")
        kms.enable_key(KeyId=k["KeyId"])
        self.assertEqual(kms.decrypt(KeyId=k["KeyId"], CiphertextBlob=ct,
                                     EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"],
                         b"protector secret")

    def test_import_refusals(self):
        kms = self.east.client("kms", retries=NO_RETRY)
        k = self.external_rsa_key(kms)
        k2 = self.external_rsa_key(kms)
        _, der = rsa_key_pkcs8()
        # RSAES_OAEP cannot carry an RSA private key; PKCS1 v1.5 is gone; an AWS_KMS key has no import
        self.assertClientError("ValidationException", kms.get_parameters_for_import, KeyId=k["KeyId"],
                               WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
        self.assertClientError("ValidationException", kms.get_parameters_for_import, KeyId=k["KeyId"],
                               WrappingAlgorithm="RSAES_PKCS1_V1_5", WrappingKeySpec="RSA_2048")
        self.assertClientError("UnsupportedOperationException", kms.get_parameters_for_import,
                               KeyId=self.kms_key()["KeyId"], WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                               WrappingKeySpec="RSA_2048")
        p = kms.get_parameters_for_import(KeyId=k["KeyId"], WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                          WrappingKeySpec="RSA_2048")
        # the token of another key
        self.assertClientError("InvalidImportTokenException", kms.import_key_material, KeyId=k2["KeyId"],
                               ImportToken=p["ImportToken"],
                               EncryptedKeyMaterial=rsa_aes_wrap(p["PublicKey"], der))
        # wrapped with the other hash than the token's algorithm
        self.assertClientError("InvalidCiphertextException", kms.import_key_material, KeyId=k["KeyId"],
                               ImportToken=p["ImportToken"],
                               EncryptedKeyMaterial=rsa_aes_wrap(p["PublicKey"], der, "SHA_1"))
        # another wrapping key's public half
        p2 = kms.get_parameters_for_import(KeyId=k["KeyId"], WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
        self.assertClientError("InvalidCiphertextException", kms.import_key_material, KeyId=k["KeyId"],
                               ImportToken=p["ImportToken"],
                               EncryptedKeyMaterial=rsa_aes_wrap(p2["PublicKey"], der))
        # material of the wrong key spec
        self.assertClientError("IncorrectKeyMaterialException", kms.import_key_material, KeyId=k["KeyId"],
                               ImportToken=p["ImportToken"],
                               EncryptedKeyMaterial=rsa_aes_wrap(p["PublicKey"], rsa_key_pkcs8(3072)[1]))
        self.assertClientError("ValidationException", kms.import_key_material, KeyId=k["KeyId"],
                               ImportToken=p["ImportToken"],
                               EncryptedKeyMaterial=rsa_aes_wrap(p["PublicKey"], der),
                               ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=time.time() + 3600)
        self.assertEqual(kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"], "PendingImport")
        # an expired token
        self.east.control.ok("POST", "config", {"kms_import_token_lifetime": 1})
        try:
            p3 = kms.get_parameters_for_import(KeyId=k["KeyId"], WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                               WrappingKeySpec="RSA_2048")
        finally:
            self.east.control.ok("POST", "config", {"kms_import_token_lifetime": 86400})
        time.sleep(1.2)
        self.assertClientError("ExpiredImportTokenException", kms.import_key_material, KeyId=k["KeyId"],
                               ImportToken=p3["ImportToken"],
                               EncryptedKeyMaterial=rsa_aes_wrap(p3["PublicKey"], der))
        # the token still good after those refusals
        kms.import_key_material(KeyId=k["KeyId"], ImportToken=p2["ImportToken"],
                                EncryptedKeyMaterial=rsa_aes_wrap(p2["PublicKey"], der))
        self.assertEqual(kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"], "Enabled")

    def test_generated_rsa_and_external_symmetric(self):
        from cryptography.hazmat.primitives import serialization
        kms = self.east.client("kms", retries=NO_RETRY)
        self.assertClientError("ValidationException", kms.create_key, KeySpec="RSA_3072")
        k = kms.create_key(KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
        self.assertEqual((k["KeyState"], k["Origin"]), ("Enabled", "AWS_KMS"))
        pub = serialization.load_der_public_key(kms.get_public_key(KeyId=k["KeyId"])["PublicKey"])
        self.assertEqual(pub.key_size, 3072)
        ct = pub.encrypt(b"generated", oaep("SHA_1"))
        self.assertEqual(kms.decrypt(KeyId=k["Arn"], CiphertextBlob=ct,
                                     EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"], b"generated")
        # symmetric material imported with RSAES_OAEP_SHA_256, then used for data keys
        s = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
        p = kms.get_parameters_for_import(KeyId=s["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                          WrappingKeySpec="RSA_2048")
        wrapped = serialization.load_der_public_key(p["PublicKey"]).encrypt(os.urandom(32), oaep())
        kms.import_key_material(KeyId=s["KeyId"], ImportToken=p["ImportToken"],
                                EncryptedKeyMaterial=wrapped, ExpirationModel="KEY_MATERIAL_EXPIRES",
                                ValidTo=time.time() + 86400)
        md = kms.describe_key(KeyId=s["KeyId"])["KeyMetadata"]
        self.assertEqual((md["KeyState"], md["ExpirationModel"]), ("Enabled", "KEY_MATERIAL_EXPIRES"))
        dk = kms.generate_data_key(KeyId=s["KeyId"], KeySpec="AES_128")
        self.assertEqual(kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"], dk["Plaintext"])
        # the import done with the aws CLI
        c = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT", Origin="EXTERNAL")["KeyMetadata"]
        _, out, _ = cli(self.east, "kms", "get-parameters-for-import", "--key-id", c["KeyId"],
                        "--wrapping-algorithm", "RSA_AES_KEY_WRAP_SHA_256", "--wrapping-key-spec", "RSA_3072")
        key, der = rsa_key_pkcs8()
        files = {}
        for name, data in (("token", base64.b64decode(out["ImportToken"])),
                           ("material", rsa_aes_wrap(base64.b64decode(out["PublicKey"]), der))):
            files[name] = os.path.join(E["dir"], "cli-import-%s.bin" % name)
            with open(files[name], "wb") as f:
                f.write(data)
        cli(self.east, "kms", "import-key-material", "--key-id", c["KeyId"], "--import-token",
            "fileb://" + files["token"], "--encrypted-key-material", "fileb://" + files["material"],
            "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
        _, out, _ = cli(self.east, "kms", "get-public-key", "--key-id", c["Arn"])
        self.assertEqual(base64.b64decode(out["PublicKey"]), key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def test_symmetric_data_keys_and_contexts(self):
        kms = self.east.client("kms", retries=NO_RETRY)
        alias = "alias/kp-dk-" + uuid.uuid4().hex[:8]
        k = self.kms_key(alias=alias)
        k2 = self.kms_key()
        ctx = {"kp": "protector", "Case": "Sensitive"}
        dk = kms.generate_data_key(KeyId=alias, KeySpec="AES_256", EncryptionContext=ctx)
        self.assertEqual((len(dk["Plaintext"]), dk["KeyId"]), (32, k["Arn"]))
        self.assertEqual(len(kms.generate_data_key(KeyId=k["KeyId"], NumberOfBytes=7)["Plaintext"]), 7)
        self.assertNotIn("Plaintext", kms.generate_data_key_without_plaintext(KeyId=k["KeyId"],
                                                                              KeySpec="AES_128"))
        self.assertClientError("ValidationException", kms.generate_data_key, KeyId=k["KeyId"])
        self.assertClientError("ValidationException", kms.generate_data_key, KeyId=k["KeyId"],
                               KeySpec="AES_256", NumberOfBytes=32)
        self.assertClientError("ValidationException", kms.generate_data_key, KeyId=k["KeyId"],
                               NumberOfBytes=1025)
        blob = dk["CiphertextBlob"]
        r = kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
        self.assertEqual((r["Plaintext"], r["KeyId"], r["EncryptionAlgorithm"]),
                         (dk["Plaintext"], k["Arn"], "SYMMETRIC_DEFAULT"))
        self.assertEqual(kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx, KeyId=alias)["Plaintext"],
                         dk["Plaintext"])
        for bad in ({}, {"kp": "protector"}, {"kp": "protector", "case": "Sensitive"},
                    dict(ctx, more="x")):
            self.assertClientError("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                                   EncryptionContext=bad)
        self.assertClientError("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob,
                               EncryptionContext=ctx, KeyId=k2["KeyId"])
        self.assertClientError("InvalidCiphertextException", kms.decrypt,
                               CiphertextBlob=blob[:-1] + bytes([blob[-1] ^ 1]), EncryptionContext=ctx)
        # ReEncrypt to another key and context
        re = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=ctx, DestinationKeyId=k2["Arn"],
                            DestinationEncryptionContext={"to": "k2"})
        self.assertEqual((re["SourceKeyId"], re["KeyId"]), (k["Arn"], k2["Arn"]))
        self.assertEqual(kms.decrypt(CiphertextBlob=re["CiphertextBlob"],
                                     EncryptionContext={"to": "k2"})["Plaintext"], dk["Plaintext"])
        self.assertClientError("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob,
                               DestinationKeyId=k2["Arn"])
        # Encrypt, and the CLI's decrypt
        e = kms.encrypt(KeyId=k["KeyId"], Plaintext=b"hello", EncryptionContext={"a": "b"})
        ctfile = os.path.join(E["dir"], "sym-ct.bin")
        with open(ctfile, "wb") as f:
            f.write(e["CiphertextBlob"])
        _, out, _ = cli(self.east, "kms", "decrypt", "--ciphertext-blob", "fileb://" + ctfile,
                        "--encryption-context", "a=b")
        self.assertEqual((base64.b64decode(out["Plaintext"]), out["KeyId"]), (b"hello", k["Arn"]))
        # key states
        kms.disable_key(KeyId=k["KeyId"])
        self.assertClientError("DisabledException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
        self.assertClientError("DisabledException", kms.generate_data_key, KeyId=k["KeyId"],
                               KeySpec="AES_256")
        self.assertEqual(kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"], "Disabled")
        kms.enable_key(KeyId=k["KeyId"])
        d = kms.schedule_key_deletion(KeyId=k2["KeyId"], PendingWindowInDays=7)
        self.assertEqual(d["KeyState"], "PendingDeletion")
        self.assertClientError("KMSInvalidStateException", kms.encrypt, KeyId=k2["KeyId"], Plaintext=b"x")
        kms.cancel_key_deletion(KeyId=k2["KeyId"])
        self.assertEqual(kms.describe_key(KeyId=k2["KeyId"])["KeyMetadata"]["KeyState"], "Disabled")
        # a key of the other region cannot decrypt it
        self.assertClientError("InvalidCiphertextException", self.west.client("kms").decrypt,
                               CiphertextBlob=blob, EncryptionContext=ctx)

    def test_s3_encryption_client_contexts(self):
        # how the S3 encryption clients (and keyplane backup, issue 18) use KMS: content keys of
        # 16, 24 and 32 bytes wrapped by Encrypt under a context, and the kms+context wrap's
        # context key "aws:x-amz-cek-alg", which holds a ':'
        kms = self.east.client("kms", retries=NO_RETRY)
        k = self.kms_key()
        ctx = {"kms_cmk_id": k["Arn"], "aws:x-amz-cek-alg": "AES/GCM/NoPadding"}
        for n in (16, 24, 32):
            key = os.urandom(n)
            blob = kms.encrypt(KeyId=k["KeyId"], Plaintext=key, EncryptionContext=ctx)["CiphertextBlob"]
            r = kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
            self.assertEqual((r["Plaintext"], r["KeyId"]), (key, k["Arn"]))
        dk = kms.generate_data_key(KeyId=k["Arn"], KeySpec="AES_256", EncryptionContext=ctx)
        self.assertEqual(kms.decrypt(CiphertextBlob=dk["CiphertextBlob"],
                                     EncryptionContext=ctx)["Plaintext"], dk["Plaintext"])
        for bad in (dict(ctx, **{"aws:x-amz-cek-alg": "AES/CBC/PKCS5Padding"}),
                    {"kms_cmk_id": k["Arn"]}, {"aws:x-amz-cek-alg": "AES/GCM/NoPadding"},
                    {"kms_cmk_id": k["Arn"], "aws_x-amz-cek-alg": "AES/GCM/NoPadding"}):
            self.assertClientError("InvalidCiphertextException", kms.decrypt,
                                   CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=bad)
        # the aws CLI sends the same context as JSON
        ctfile = os.path.join(E["dir"], "cek-ctx.bin")
        with open(ctfile, "wb") as f:
            f.write(dk["CiphertextBlob"])
        _, out, _ = cli(self.east, "kms", "decrypt", "--ciphertext-blob", "fileb://" + ctfile,
                        "--encryption-context", json.dumps(ctx))
        self.assertEqual(base64.b64decode(out["Plaintext"]), dk["Plaintext"])


# --------------------------------------------------------------------------
# STS and temporary credentials
# --------------------------------------------------------------------------

class StsTest(Base):
    def test_cli_assume_role_and_caller_identity(self):
        _, me, _ = cli(self.east, "sts", "get-caller-identity")
        self.assertEqual((me["Account"], me["Arn"]), (ACCOUNT, "arn:aws:iam::%s:user/%s"
                                                      % (ACCOUNT, AKID.lower())))
        _, ar, _ = cli(self.east, "sts", "assume-role", "--role-arn", ROLE_ARN,
                       "--role-session-name", "kp-cli")
        cr = ar["Credentials"]
        self.assertTrue(cr["AccessKeyId"].startswith("ASIA"))
        self.assertEqual(ar["AssumedRoleUser"]["Arn"],
                         "arn:aws:sts::%s:assumed-role/%s/kp-cli" % (ACCOUNT, ROLE))
        env = cli_env(E["dir"], {"AWS_ACCESS_KEY_ID": cr["AccessKeyId"],
                                 "AWS_SECRET_ACCESS_KEY": cr["SecretAccessKey"],
                                 "AWS_SESSION_TOKEN": cr["SessionToken"]})
        _, who, _ = cli(self.east, "sts", "get-caller-identity", env=env)
        self.assertEqual(who["Arn"], ar["AssumedRoleUser"]["Arn"])
        kw = dict(akid=cr["AccessKeyId"], secret=cr["SecretAccessKey"], token=cr["SessionToken"])
        b = self.bucket()
        self.east.client("s3", **kw).put_object(Bucket=b, Key="k", Body=b"by role")
        self.east.client("secretsmanager", **kw).list_secrets()
        # the key without its token, and with another's
        self.assertClientError("InvalidAccessKeyId", self.east.client(
            "s3", akid=cr["AccessKeyId"], secret=cr["SecretAccessKey"], retries=NO_RETRY).list_buckets)
        self.assertClientError("UnrecognizedClientException", self.east.client(
            "secretsmanager", akid=cr["AccessKeyId"], secret=cr["SecretAccessKey"],
            retries=NO_RETRY).list_secrets)
        self.assertClientError("InvalidToken", self.east.client(
            "s3", retries=NO_RETRY, **dict(kw, token=cr["SessionToken"][:-4] + "AAAA")).list_buckets)
        self.assertClientError("InvalidToken", self.east.client(
            "s3", token=cr["SessionToken"], retries=NO_RETRY).list_buckets)
        # the region's credentials are its own
        self.assertClientError("InvalidAccessKeyId",
                               self.west.client("s3", retries=NO_RETRY, **kw).list_buckets)

    def test_temporary_credentials_expire(self):
        # botocore refuses DurationSeconds under 900 itself: let the server judge
        sts = self.east.client("sts", config=Config(retries=NO_RETRY, parameter_validation=False))
        self.assertClientError("ValidationError", sts.assume_role, RoleArn=ROLE_ARN,
                               RoleSessionName="short", DurationSeconds=2)
        self.east.control.ok("POST", "config", {"sts_min_duration": 1})
        try:
            cr = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="short",
                                 DurationSeconds=2)["Credentials"]
        finally:
            self.east.control.ok("POST", "config", {"sts_min_duration": 900})
        kw = dict(akid=cr["AccessKeyId"], secret=cr["SecretAccessKey"], token=cr["SessionToken"],
                  retries=NO_RETRY)
        self.east.client("sts", **kw).get_caller_identity()
        time.sleep(max(0.0, cr["Expiration"].timestamp() - time.time()) + 0.5)
        before = rejected(self.east)
        e = self.assertClientError("ExpiredToken", self.east.client("s3", **kw).list_buckets)
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assertClientError("ExpiredTokenException",
                               self.east.client("secretsmanager", **kw).list_secrets)
        self.assertClientError("ExpiredTokenException", self.east.client("kms", **kw).list_keys)
        self.assertClientError("ExpiredToken", self.east.client("sts", **kw).get_caller_identity)
        self.assertEqual(rejected(self.east), before + 4)
        # the control endpoint expires a credential at once (for C tests)
        cr = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="ctl")["Credentials"]
        self.assertEqual(self.east.control.ok("POST", "credentials/expire",
                                              {"access_key_id": cr["AccessKeyId"]}), {"expired": 1})
        self.assertClientError("ExpiredToken", self.east.client(
            "s3", akid=cr["AccessKeyId"], secret=cr["SecretAccessKey"], token=cr["SessionToken"],
            retries=NO_RETRY).list_buckets)

    def test_assume_role_rules(self):
        sts = self.east.client("sts", retries=NO_RETRY)
        e = self.assertClientError("AccessDenied", sts.assume_role,
                                   RoleArn="arn:aws:iam::%s:role/not-configured" % ACCOUNT,
                                   RoleSessionName="x1")
        self.assertIn("is not authorized to perform: sts:AssumeRole", e.response["Error"]["Message"])
        self.assertClientError("ValidationError", sts.assume_role, RoleArn=ROLE_ARN,
                               RoleSessionName="bad name!")
        self.assertClientError("ValidationError", sts.assume_role, RoleArn=ROLE_ARN,
                               RoleSessionName="x1", DurationSeconds=7200)   # over MaxSessionDuration
        self.assertClientError("ValidationError", sts.assume_role, RoleArn=ROLE_ARN,
                               RoleSessionName="x1", DurationSeconds=43201)
        cr = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="chain")["Credentials"]
        chained = self.east.client("sts", akid=cr["AccessKeyId"], secret=cr["SecretAccessKey"],
                                   token=cr["SessionToken"], retries=NO_RETRY)
        self.east.control.ok("POST", "roles", {ROLE: {"max_session_duration": 7200}})
        try:
            self.assertClientError("ValidationError", chained.assume_role, RoleArn=ROLE_ARN,
                                   RoleSessionName="c2", DurationSeconds=7200)
            sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="long", DurationSeconds=7200)
        finally:
            self.east.control.ok("POST", "roles", {ROLE: {"max_session_duration": 3600}})
        self.assertEqual(chained.assume_role(RoleArn=ROLE_ARN, RoleSessionName="c3")
                         ["AssumedRoleUser"]["Arn"],
                         "arn:aws:sts::%s:assumed-role/%s/c3" % (ACCOUNT, ROLE))

    def test_web_identity(self):
        sts = self.east.client("sts", retries=NO_RETRY)
        seen = []
        sts.meta.events.register("before-send.sts.*", lambda request, **kw: seen.append(
            request.headers.get("Authorization")))
        arn = "arn:aws:iam::%s:role/%s" % (ACCOUNT, WEB_ROLE)
        r = sts.assume_role_with_web_identity(RoleArn=arn, RoleSessionName="wi",
                                              WebIdentityToken=WEB_TOKEN)
        self.assertIsNone(seen[0])                 # botocore sends it unsigned
        cr = r["Credentials"]
        who = self.east.client("sts", akid=cr["AccessKeyId"], secret=cr["SecretAccessKey"],
                               token=cr["SessionToken"]).get_caller_identity()
        self.assertEqual(who["Arn"], "arn:aws:sts::%s:assumed-role/%s/wi" % (ACCOUNT, WEB_ROLE))
        self.assertClientError("AccessDenied", sts.assume_role_with_web_identity, RoleArn=arn,
                               RoleSessionName="wi", WebIdentityToken="not-the-token")
        self.assertClientError("AccessDenied", sts.assume_role_with_web_identity, RoleArn=ROLE_ARN,
                               RoleSessionName="wi", WebIdentityToken=WEB_TOKEN)


class MetadataCredentialsTest(Base):
    def imds(self, method, path, headers=None):
        port = self.east.health()["imds_port"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def test_imds_token_flow(self):
        T = "X-aws-ec2-metadata-token-ttl-seconds"
        self.assertEqual(self.imds("PUT", "/latest/api/token")[0], 400)
        self.assertEqual(self.imds("PUT", "/latest/api/token", {T: "0"})[0], 400)
        self.assertEqual(self.imds("PUT", "/latest/api/token", {T: "21601"})[0], 400)
        self.assertEqual(self.imds("PUT", "/latest/api/token",
                                   {T: "60", "X-Forwarded-For": "1.2.3.4"})[0], 403)
        st, tok = self.imds("PUT", "/latest/api/token", {T: "60"})
        self.assertEqual(st, 200)
        creds = "/latest/meta-data/iam/security-credentials/"
        self.assertEqual(self.imds("GET", creds)[0], 401)                   # IMDSv2 only
        self.assertEqual(self.imds("GET", creds, {"X-aws-ec2-metadata-token": "bogus"})[0], 401)
        h = {"X-aws-ec2-metadata-token": tok.decode()}
        st, role = self.imds("GET", creds, h)
        self.assertEqual((st, role), (200, b"keyplane-instance-role"))
        st, doc = self.imds("GET", creds + role.decode(), h)
        doc = json.loads(doc)
        self.assertEqual((doc["Code"], doc["Type"]), ("Success", "AWS-HMAC"))
        self.assertTrue(doc["AccessKeyId"].startswith("ASIA"))
        self.assertRegex(doc["Expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.imds("GET", creds + "other-role", h)[0], 404)
        self.assertEqual(self.imds("GET", "/latest/meta-data/placement/region", h), (200, b"us-east-1"))
        st, ident = self.imds("GET", "/latest/dynamic/instance-identity/document", h)
        self.assertEqual(json.loads(ident)["region"], "us-east-1")
        s3 = self.east.client("s3", akid=doc["AccessKeyId"], secret=doc["SecretAccessKey"],
                              token=doc["Token"])
        s3.list_buckets()
        st, short = self.imds("PUT", "/latest/api/token", {T: "1"})
        time.sleep(1.3)
        self.assertEqual(self.imds("GET", creds, {"X-aws-ec2-metadata-token": short.decode()})[0], 401)
        counts = self.east.stats()["imds_requests"]
        self.assertGreaterEqual(counts["/latest/api/token"], 6)
        self.assertGreaterEqual(counts[creds], 4)

    def test_botocore_instance_metadata_provider_and_cli(self):
        url = "http://127.0.0.1:%d" % self.east.health()["imds_port"]
        before = self.east.stats()["imds_requests"].get("/latest/api/token", 0)
        fetcher = InstanceMetadataFetcher(timeout=5, num_attempts=2,
                                          config={"ec2_metadata_service_endpoint": url})
        creds = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
        self.assertIsNotNone(creds)
        fc = creds.get_frozen_credentials()
        who = self.east.client("sts", akid=fc.access_key, secret=fc.secret_key,
                               token=fc.token).get_caller_identity()
        self.assertEqual(who["Arn"], "arn:aws:sts::%s:assumed-role/keyplane-instance-role/%s"
                         % (ACCOUNT, "i-0keyplane0test00"))
        self.assertGreater(self.east.stats()["imds_requests"]["/latest/api/token"], before)
        env = cli_env(E["dir"], {"AWS_EC2_METADATA_DISABLED": "false",
                                 "AWS_EC2_METADATA_SERVICE_ENDPOINT": url + "/"}, keys=False)
        _, out, _ = cli(self.east, "sts", "get-caller-identity", env=env)
        self.assertIn("assumed-role/keyplane-instance-role/", out["Arn"])
        # a shorter lifetime: the next credentials are new and expire sooner
        self.east.control.ok("POST", "config", {"imds_lifetime": 900})
        try:
            again = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
            self.assertNotEqual(again.get_frozen_credentials().access_key, fc.access_key)
            # (botocore stretches an expiry this near itself: read the document as served)
            _, tok = self.imds("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
            _, doc = self.imds("GET", "/latest/meta-data/iam/security-credentials/keyplane-instance-role",
                               {"X-aws-ec2-metadata-token": tok.decode()})
            doc = json.loads(doc)
            self.assertEqual(doc["AccessKeyId"], again.get_frozen_credentials().access_key)
            exp = calendar.timegm(time.strptime(doc["Expiration"], "%Y-%m-%dT%H:%M:%SZ"))
            self.assertLess(exp - time.time(), 901)
        finally:
            self.east.control.ok("POST", "config", {"imds_lifetime": 3600})

    def test_container_provider(self):
        h = self.east.health()
        url = "http://127.0.0.1:%d%s" % (h["container_port"], h["container_path"])
        prov = ContainerProvider(environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": url,
                                          "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN})
        fc = prov.load().get_frozen_credentials()
        who = self.east.client("sts", akid=fc.access_key, secret=fc.secret_key,
                               token=fc.token).get_caller_identity()
        self.assertIn(":assumed-role/keyplane-task-role/", who["Arn"])
        for headers, status in (({}, 401), ({"Authorization": "wrong"}, 403),
                                ({"Authorization": CONTAINER_TOKEN}, 200)):
            req = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    got = r.status
            except urllib.error.HTTPError as e:
                got = e.code
            self.assertEqual(got, status, headers)
        env = cli_env(E["dir"], {"AWS_CONTAINER_CREDENTIALS_FULL_URI": url,
                                 "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN}, keys=False)
        _, out, _ = cli(self.east, "sts", "get-caller-identity", env=env)
        self.assertIn(":assumed-role/keyplane-task-role/", out["Arn"])
        self.assertGreaterEqual(self.east.stats()["container_requests"][h["container_path"]], 4)


# --------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------

class FaultsTest(Base):
    def test_throttles_are_retried_as_throttling(self):
        name = "kp/faults/" + uuid.uuid4().hex[:8]
        sm = self.east.client("secretsmanager", config=Config(retries={"mode": "standard",
                                                                       "total_max_attempts": 4}))
        sm.create_secret(Name=name, SecretString="v")
        self.east.control.set_faults({"sequence": ["429", "429"]})
        r = sm.get_secret_value(SecretId=name)
        self.assertEqual((r["SecretString"], r["ResponseMetadata"]["RetryAttempts"]), ("v", 2))
        # the shape botocore classifies: 400 ThrottlingException, no Retry-After
        self.east.control.set_faults({"sequence": ["429"]})
        st, resp, body = json_target(self.east, "secretsmanager", "GetSecretValue", {"SecretId": name})
        self.assertEqual((st, json.loads(body)["__type"]), (400, "ThrottlingException"))
        self.assertIsNone(resp.getheader("Retry-After"))
        self.east.control.set_faults({"sequence": ["429"]})
        st, resp, body = raw(self.east, "GET", "/")
        self.assertEqual((st, xml(body).findtext("Code")), (503, "SlowDown"))
        self.assertIsNone(resp.getheader("Retry-After"))
        s3 = self.east.client("s3", config=Config(retries={"mode": "legacy", "max_attempts": 3}))
        self.east.control.set_faults({"sequence": ["429", "500"]})
        self.assertEqual(s3.list_buckets()["ResponseMetadata"]["RetryAttempts"], 2)
        kms = self.east.client("kms", config=Config(retries={"mode": "legacy", "max_attempts": 3}))
        self.east.control.set_faults({"sequence": ["500", "429"]})
        self.assertEqual(kms.list_keys()["ResponseMetadata"]["RetryAttempts"], 2)
        self.east.control.set_faults({"sequence": ["500"]})
        st, _, body = json_target(self.east, "kms", "ListKeys", {})
        self.assertEqual((st, json.loads(body)["__type"]), (500, "KMSInternalException"))
        sts = self.east.client("sts", config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
        self.east.control.set_faults({"sequence": ["429"]})
        self.assertEqual(sts.get_caller_identity()["ResponseMetadata"]["RetryAttempts"], 1)
        self.east.control.set_faults({"sequence": ["drop"]})
        self.assertEqual(sm.get_secret_value(SecretId=name)["ResponseMetadata"]["RetryAttempts"], 1)

    def test_forbidden_is_not_retried(self):
        name = "kp/forbidden/" + uuid.uuid4().hex[:8]
        sm = self.east.client("secretsmanager", config=Config(retries={"mode": "standard",
                                                                       "total_max_attempts": 4}))
        sm.create_secret(Name=name, SecretString="v")
        b = self.bucket()
        self.east.control.set_faults({"forbidden_ops": ["secretsmanager:GetSecretValue", "s3:GetObject"]})
        e = self.assertClientError("AccessDeniedException", sm.get_secret_value, SecretId=name)
        self.assertEqual(e.response["ResponseMetadata"]["RetryAttempts"], 0)
        self.assertIn("secretsmanager:GetSecretValue", e.response["Error"]["Message"])
        s3 = self.east.client("s3")
        s3.put_object(Bucket=b, Key="k", Body=b"x")
        e = self.assertClientError("AccessDenied", s3.get_object, Bucket=b, Key="k")
        self.assertEqual((e.response["ResponseMetadata"]["HTTPStatusCode"],
                          e.response["ResponseMetadata"]["RetryAttempts"]), (403, 0))
        sm.describe_secret(SecretId=name)                                   # others still pass
        self.east.control.set_faults({"forbidden_ops": ["*"], "forbidden_message": "no {op} today"})
        e = self.assertClientError("AccessDeniedException", sm.describe_secret, SecretId=name)
        self.assertEqual(e.response["Error"]["Message"], "no secretsmanager:DescribeSecret today")

    def test_corrupt_json_answers(self):
        name = "kp/corrupt/" + uuid.uuid4().hex[:8]
        sm = self.east.client("secretsmanager", retries=NO_RETRY)
        sm.create_secret(Name=name, SecretBinary=b"\x01\x02")
        self.east.control.set_faults({"corrupt": "bad_base64", "corrupt_ops":
                                      ["secretsmanager:GetSecretValue"], "corrupt_count": 1})
        st, _, body = json_target(self.east, "secretsmanager", "GetSecretValue", {"SecretId": name})
        self.assertEqual(json.loads(body)["SecretBinary"], "!!!not base64!!!")
        self.assertEqual(sm.get_secret_value(SecretId=name)["SecretBinary"], b"\x01\x02")


# --------------------------------------------------------------------------
# persistence, the request log, the ctl
# --------------------------------------------------------------------------

class PersistenceTest(Base):
    def test_kill_9_and_restart_keep_state(self):
        r = Region(E["dir"], "persist", "us-east-2", extra=["--log-requests"], roles=[ROLE])
        r.start()
        try:
            s3, sm, kms = r.client("s3"), r.client("secretsmanager"), r.client("kms")
            k = kms.create_key()["KeyMetadata"]
            kms.create_alias(AliasName="alias/kp-persist", TargetKeyId=k["KeyId"])
            s3.create_bucket(Bucket="kp-persist",
                             CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
            data = os.urandom(2 * MiB + 3)
            s3.put_object(Bucket="kp-persist", Key="obj", Body=data, ServerSideEncryption="aws:kms",
                          SSEKMSKeyId="alias/kp-persist", Metadata={"m": "1"})
            up = s3.create_multipart_upload(Bucket="kp-persist", Key="open-upload")
            s3.upload_part(Bucket="kp-persist", Key="open-upload", UploadId=up["UploadId"],
                           PartNumber=1, Body=b"part one")
            secret_value = "persisted-secret-%s" % uuid.uuid4().hex
            v1 = sm.create_secret(Name="kp/persist", SecretString="first")["VersionId"]
            v2 = sm.put_secret_value(SecretId="kp/persist", SecretString=secret_value)["VersionId"]
            cr = r.client("sts").assume_role(RoleArn=ROLE_ARN, RoleSessionName="persist")["Credentials"]
            # KMS key material: a symmetric ciphertext, an imported RSA key, an unused import token
            sym_ct = kms.encrypt(KeyId=k["KeyId"], Plaintext=b"sym", EncryptionContext={"c": "1"})
            rk = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT",
                                Origin="EXTERNAL")["KeyMetadata"]
            rsa_key, der = rsa_key_pkcs8()
            ip = kms.get_parameters_for_import(KeyId=rk["KeyId"],
                                               WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                               WrappingKeySpec="RSA_2048")
            kms.import_key_material(KeyId=rk["KeyId"], ImportToken=ip["ImportToken"],
                                    EncryptedKeyMaterial=rsa_aes_wrap(ip["PublicKey"], der))
            rk2 = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT",
                                 Origin="EXTERNAL")["KeyMetadata"]
            ip2 = kms.get_parameters_for_import(KeyId=rk2["KeyId"],
                                                WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                                WrappingKeySpec="RSA_2048")
            r.stop(kill=True)
            r.start(port_reuse=True)
            s3, sm, kms = r.client("s3"), r.client("secretsmanager"), r.client("kms")
            g = s3.get_object(Bucket="kp-persist", Key="obj")
            self.assertEqual(g["Body"].read(), data)
            self.assertEqual((g["SSEKMSKeyId"], g["Metadata"]), (k["Arn"], {"m": "1"}))
            parts = s3.list_parts(Bucket="kp-persist", Key="open-upload", UploadId=up["UploadId"])
            self.assertEqual([p["Size"] for p in parts["Parts"]], [8])
            self.assertEqual(kms.describe_key(KeyId="alias/kp-persist")["KeyMetadata"]["KeyId"],
                             k["KeyId"])
            self.assertEqual(sm.get_secret_value(SecretId="kp/persist")["SecretString"], secret_value)
            self.assertEqual(kms.decrypt(CiphertextBlob=sym_ct["CiphertextBlob"],
                                         EncryptionContext={"c": "1"})["Plaintext"], b"sym")
            rsa_ct = rsa_key.public_key().encrypt(b"rsa", oaep())
            self.assertEqual(kms.decrypt(KeyId=rk["Arn"], CiphertextBlob=rsa_ct,
                                         EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"], b"rsa")
            kms.import_key_material(KeyId=rk2["KeyId"], ImportToken=ip2["ImportToken"],
                                    EncryptedKeyMaterial=rsa_aes_wrap(ip2["PublicKey"], der))
            self.assertEqual(kms.describe_key(KeyId=rk2["KeyId"])["KeyMetadata"]["KeyState"], "Enabled")
            self.assertEqual(sm.describe_secret(SecretId="kp/persist")["VersionIdsToStages"],
                             {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]})
            who = r.client("sts", akid=cr["AccessKeyId"], secret=cr["SecretAccessKey"],
                           token=cr["SessionToken"]).get_caller_identity()
            self.assertIn("assumed-role/kp-role/persist", who["Arn"])
            self.assertEqual(r.stats()["signature_rejected"], 0)
            # the request log names requests, never a secret value, key or token
            with open(os.path.join(E["dir"], "persist.log")) as f:
                log = f.read()
            self.assertIn("PUT /kp-persist/obj", log)
            for leak in (secret_value, SECRET, cr["SecretAccessKey"], cr["SessionToken"]):
                self.assertNotIn(leak, log)
        finally:
            r.stop()

    def test_ctl_env_and_link(self):
        out = subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                               "awsctl.py"), "env", "--dir", E["dir"]],
                             capture_output=True, text=True, check=True).stdout
        imds = self.east.health()["imds_port"]
        self.assertIn("AWS_CA=%s" % os.path.join(E["dir"], "pki", "ca.pem"), out)
        self.assertIn("AWS_EAST_URL=https://127.0.0.1:%d" % self.east.port, out)
        self.assertIn("AWS_EAST_REGION=us-east-1", out)
        self.assertIn("AWS_EAST_IMDS_URL=http://127.0.0.1:%d/\n" % imds, out)
        self.assertIn("AWS_EAST_CONTAINER_URL=http://127.0.0.1:", out)
        self.assertIn("AWS_WEST_REGION=us-west-2", out)
        st = self.east.stats()
        self.assertIsInstance(st["requests"], int)              # the shared counter is kept
        self.assertGreater(st["requests_by_service"]["s3"], 0)
        self.assertEqual(self.east.control.ok("GET", "peers")["us-west-2"], self.west.url)
        self.assertEqual(self.west.control.ok("GET", "peers")["us-east-1"], self.east.url)


if __name__ == "__main__":
    unittest.main()
