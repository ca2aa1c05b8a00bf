#!/usr/bin/python3
"""unit.sigv4_botocore: the kit's SigV4 signer (providers/kit/src/sigv4.c) against botocore's.

Usage: sigv4_botocore.py TOOL [ARG...]
  TOOL [ARG...] runs tests/unit/sigv4_tool.c (valgrind.unit puts valgrind in front of it).

Makes 300 random requests from a fixed seed: random methods; S3 paths and keys with Unicode,
spaces, reserved characters, '//', '.' and '..' segments; other services' paths with dot segments
and repeated slashes; queries with odd characters, encoded in upper- or lower-case hex or not at
all, valueless and empty parameters; x-amz-meta-* headers in any case, with runs of spaces and
tabs, some given twice; the SSE-KMS headers in either order; session tokens; bodies hashed by the
signer, hashes given, UNSIGNED-PAYLOAD; hosts with and without ports. Each is signed by the kit
(through the tool, all in one process) and by botocore's SigV4Auth / S3SigV4Auth
(request.context["timestamp"] set, then canonical_request, string_to_sign and signature as
add_auth calls them, without add_auth's stamping of the current time), and everything is
compared: the canonical request, the string to sign, the signature, the Authorization value and
the X-Amz-Date, X-Amz-Security-Token and X-Amz-Content-SHA256 lines. The tool also encodes each
S3 key (kpk_aws_uri_encode, against botocore's quote(key, safe='/~')) and builds each query from
its parameters (kpk_sigv4_query, against botocore's canonical query of the same parameters).

Debian's python3-botocore (1.29) loads only in /usr/bin/python3; without botocore the test
prints SKIP and ctest reports it skipped.
"""
import datetime
import hashlib
import json
import random
import subprocess
import sys
from urllib.parse import quote, unquote

try:
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as exc:
    print("SKIP: botocore is not importable (python3-botocore, /usr/bin/python3): %s" % exc)
    sys.exit(0)

SEED = 20150830
COUNT = 300

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
RESERVED = "!$&'()*+,;=:@/?#[]%\"<>\\^`{|} "
UNICODE = ["\u00e9", "\u00fc", "\u1234", "\u65e5\u672c", "\U0001f511", "\u00a0"]
# characters a query may carry unencoded in a URL without changing how it splits
QUERY_RAW_OK = "/:@!$'()*,;+=~"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]
SERVICES = ["kms", "secretsmanager", "sts", "execute-api", "lambda", "iam"]


def rand_text(rng, alphabet_weight=0.6, maxlen=12):
    out = []
    for _ in range(rng.randint(0, maxlen)):
        r = rng.random()
        if r < alphabet_weight:
            out.append(rng.choice(UNRESERVED))
        elif r < alphabet_weight + 0.3:
            out.append(rng.choice(RESERVED))
        else:
            out.append(rng.choice(UNICODE))
    return "".join(out)


def s3_key(rng):
    parts = []
    for _ in range(rng.randint(1, 5)):
        r = rng.random()
        if r < 0.12:
            parts.append(rng.choice([".", "..", "", " "]))
        else:
            parts.append(rand_text(rng).replace("/", "") or "k")
    key = "/".join(parts)
    if rng.random() < 0.2:
        key = key + "/"
    return key


def other_path(rng):
    segs = []
    for _ in range(rng.randint(0, 6)):
        r = rng.random()
        if r < 0.25:
            segs.append(rng.choice([".", "..", ""]))
        elif r < 0.35:
            segs.append(rng.choice(["@connections", "a:b", "x;y=1", "~user", "%2E%2E"]))
        else:
            segs.append(quote(rand_text(rng), safe=""))
    path = "/" + "/".join(segs)
    if rng.random() < 0.2:
        path += "/"
    return path


def encode_query_text(rng, text):
    """text as a URL's query carries it: each character encoded, in either case of hex, or not."""
    out = []
    for ch in text:
        if ch in UNRESERVED and rng.random() < 0.9:
            out.append(ch)
        elif ch in QUERY_RAW_OK and ch != "=" and rng.random() < 0.4:
            out.append(ch)
        else:
            enc = quote(ch, safe="")
            if enc == ch:
                enc = "".join("%%%02X" % b for b in ch.encode())
            out.append(enc.lower() if rng.random() < 0.3 else enc)
    return "".join(out)


def make_query(rng):
    """(the query as sent, its parameters decoded, the raw parameters for kpk_sigv4_query)"""
    sent, decoded, raw = [], [], []
    for _ in range(rng.choice([0, 0, 1, 2, 3, 6])):
        name = rand_text(rng, 0.7, 8) or "n"
        r = rng.random()
        if r < 0.2:
            value = None  # "?uploads"
        elif r < 0.3:
            value = ""
        else:
            value = rand_text(rng)
        if rng.random() < 0.2 and raw:
            name = raw[0][0]  # a repeated name
        raw.append((name, value))
        part = encode_query_text(rng, name)
        if value is not None:
            part += "=" + encode_query_text(rng, value)
        sent.append(part)
    query = "&".join(sent)
    for part in query.split("&") if query else []:
        n, _, v = part.partition("=")
        decoded.append((unquote(n), unquote(v)))
    return query, decoded, raw


def spaced(rng, value):
    """value with runs of spaces and tabs inside and around it"""
    words = value.split(" ")
    seps = [rng.choice([" ", "  ", "\t", " \t  "]) for _ in words[1:]]
    out = words[0] + "".join(s + w for s, w in zip(seps, words[1:]))
    return rng.choice(["", " ", "  ", "\t"]) + out + rng.choice(["", " ", "\t "])


def header_value(rng):
    alphabet = UNRESERVED + " ,;:=/+\"'()!@#$%&*?"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))


def make_headers(rng, s3):
    headers = []
    for _ in range(rng.randint(0, 4)):
        name = "x-amz-meta-" + "".join(rng.choice("abcdefghij-0123") for _ in range(
            rng.randint(1, 8)))
        name = "".join(c.upper() if rng.random() < 0.3 else c for c in name)
        headers.append((name, spaced(rng, header_value(rng))))
        if rng.random() < 0.25:  # the same name again, in another case
            headers.append((name.swapcase(), spaced(rng, header_value(rng))))
    if rng.random() < 0.4:
        sse = [("x-amz-server-side-encryption", "aws:kms"),
               ("x-amz-server-side-encryption-aws-kms-key-id",
                rng.choice(["alias/keyplane", "1234abcd-12ab-34cd-56ef-1234567890ab",
                            "arn:aws:kms:us-east-1:111122223333:key/1234abcd"]))]
        if rng.random() < 0.5:
            sse.reverse()
        headers.extend((n if rng.random() < 0.5 else n.title(), v) for n, v in sse)
        if rng.random() < 0.3:
            headers.append(("X-Amz-Server-Side-Encryption-Context", "eyJhIjoiYiJ9"))
    if rng.random() < 0.5:
        headers.append(("Content-Type", rng.choice(["application/octet-stream",
                                                    "application/x-amz-json-1.1",
                                                    "text/plain; charset=utf-8"])))
    if not s3 and rng.random() < 0.5:
        headers.append(("X-Amz-Target", "TrentService.GenerateDataKey"))
    if rng.random() < 0.2:
        headers.append(("x-amz-meta-empty", rng.choice(["", "  "])))
    rng.shuffle(headers)
    return headers


def make_host(rng, s3, region):
    scheme = rng.choice(["https", "https", "http"])
    name = rng.choice(["s3.%s.amazonaws.com" % region, "bucket-1.s3.%s.amazonaws.com" % region,
                       "127.0.0.1", "localhost", "[::1]", "minio.internal"] if s3 else
                      ["kms.%s.amazonaws.com" % region, "secretsmanager.%s.amazonaws.com" % region,
                       "127.0.0.1", "localhost", "vpce-0a1b.kms.%s.vpce.amazonaws.com" % region])
    port = rng.choice([None, None, 443, 80, 4566, 8443, 9000])
    url_host = name if port is None else "%s:%d" % (name, port)
    default = {"https": 443, "http": 80}[scheme]
    host = name if port in (None, default) else "%s:%d" % (name, port)
    return scheme, url_host, host


def make_request(rng, i):
    s3 = rng.random() < 0.5
    region = rng.choice(REGIONS)
    service = "s3" if s3 else rng.choice(SERVICES)
    scheme, url_host, host = make_host(rng, s3, region)
    method = rng.choice(["GET", "PUT", "POST", "HEAD", "DELETE"])
    key = None
    if s3:
        key = s3_key(rng)
        path = quote(key, safe="/~")
        if rng.random() < 0.7:
            path = "/bucket-%d/%s" % (i % 7, path)
        elif not path.startswith("/"):
            path = "/" + path
    else:
        path = other_path(rng)
    query, decoded, raw = make_query(rng)
    body = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 0, 1, 17, 64]))) \
        if method in ("PUT", "POST") else b""
    payload_hash = None
    unsigned = False
    r = rng.random()
    if s3 and r < 0.25:
        unsigned = True
        payload_hash = "UNSIGNED-PAYLOAD"
    elif r < 0.5:
        payload_hash = hashlib.sha256(body).hexdigest()
    when = rng.randint(946684800, 1893456000)  # 2000 to 2030
    token = None
    if rng.random() < 0.3:
        token = "".join(rng.choice(UNRESERVED + "/+=") for _ in range(rng.randint(16, 400)))
    return {
        "s3": s3, "region": region, "service": service, "scheme": scheme, "url_host": url_host,
        "host": host, "method": method, "path": path, "key": key, "query": query,
        "decoded": decoded, "raw": raw, "headers": make_headers(rng, s3), "body": body,
        "payload_hash": payload_hash, "unsigned": unsigned, "when": when,
        "akid": "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
        "secret": "".join(rng.choice(UNRESERVED + "/+") for _ in range(40)),
        "token": token,
    }


def tool_input(r):
    d = {
        "method": r["method"], "host": r["host"], "path": r["path"], "query": r["query"],
        "region": r["region"], "service": r["service"], "s3": r["s3"], "when": r["when"],
        "akid": r["akid"], "secret": r["secret"],
        "headers": ["%s:%s" % hv for hv in r["headers"]],
        "body_hex": r["body"].hex(),
        "params": [[n, v] for n, v in r["raw"]],
    }
    if r["token"] is not None:
        d["token"] = r["token"]
    if r["payload_hash"] is not None:
        d["payload_hash"] = r["payload_hash"]
    if r["key"] is not None:
        d["encode"] = {"text": r["key"], "keep_slash": True}
    return d


class _S3Config:
    s3 = {"payload_signing_enabled": False}


def boto_sign(r):
    url = "%s://%s%s" % (r["scheme"], r["url_host"], r["path"])
    req = AWSRequest(method=r["method"], url=url, data=r["body"] or None, params=r["decoded"])
    for name, value in r["headers"]:
        req.headers[name] = value  # HTTPHeaders: a second assignment adds a second header
    ts = datetime.datetime.fromtimestamp(r["when"], datetime.timezone.utc)
    req.context["timestamp"] = ts.strftime("%Y%m%dT%H%M%SZ")
    if r["unsigned"]:
        req.context["client_config"] = _S3Config()
    creds = Credentials(r["akid"], r["secret"], r["token"])
    signer = (S3SigV4Auth if r["s3"] else SigV4Auth)(creds, r["service"], r["region"])
    # what add_auth does, but for the timestamp it would take from the clock
    signer._modify_request_before_signing(req)
    creq = signer.canonical_request(req)
    sts = signer.string_to_sign(req, creq)
    sig = signer.signature(sts, req)
    signer._inject_signature_to_request(req, sig)
    h = req.headers
    return {
        "creq": creq, "sts": sts, "signature": sig,
        "authorization": "Authorization: " + h["Authorization"],
        "amz_date": "X-Amz-Date: " + h["X-Amz-Date"],
        "content_sha256": ("X-Amz-Content-SHA256: " + h["X-Amz-Content-SHA256"]) if r["s3"]
        else "",
        "security_token": ("X-Amz-Security-Token: " + h["X-Amz-Security-Token"])
        if r["token"] else None,
        "query": signer._canonical_query_string_params(
            [(n, "" if v is None else v) for n, v in r["raw"]]),
        "encoded": quote(r["key"], safe="/~") if r["key"] is not None else None,
    }


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    rng = random.Random(SEED)
    reqs = [make_request(rng, i) for i in range(COUNT)]
    text = "".join(json.dumps(tool_input(r)) + "\n" for r in reqs)
    p = subprocess.run(argv[1:], input=text, capture_output=True, text=True, check=False)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        sys.exit("sigv4_botocore: the tool failed (exit %d)" % p.returncode)
    answers = [json.loads(line) for line in p.stdout.splitlines()]
    if len(answers) != COUNT:
        sys.exit("sigv4_botocore: %d answers to %d requests" % (len(answers), COUNT))
    bad = 0
    for i, (r, got) in enumerate(zip(reqs, answers)):
        want = boto_sign(r)
        diffs = []
        if got["status"] != 0:
            diffs.append("the kit refused it: %s (status %d)" % (got["error"], got["status"]))
        else:
            for k in ("creq", "sts", "signature", "authorization", "amz_date", "content_sha256",
                      "security_token", "query", "encoded"):
                if k == "encoded" and want[k] is None:
                    continue
                if got.get(k) != want[k]:
                    diffs.append("%s:\n  kit:      %r\n  botocore: %r" % (k, got.get(k), want[k]))
        if diffs:
            bad += 1
            if bad <= 5:
                print("request %d (%s %s %s?%s, %s):\n%s" % (
                    i, r["method"], r["host"], r["path"], r["query"], r["service"],
                    "\n".join(diffs)))
    kinds = {
        "s3": sum(r["s3"] for r in reqs),
        "with a session token": sum(r["token"] is not None for r in reqs),
        "UNSIGNED-PAYLOAD": sum(r["unsigned"] for r in reqs),
        "with a query": sum(bool(r["query"]) for r in reqs),
        "with a header given twice": sum(
            len({n.lower() for n, _ in r["headers"]}) < len(r["headers"]) for r in reqs),
        "with SSE-KMS": sum(any(n.lower() == "x-amz-server-side-encryption"
                                for n, _ in r["headers"]) for r in reqs),
    }
    print("sigv4_botocore: %d requests (seed %d; %s): %s" % (
        COUNT, SEED, ", ".join("%d %s" % (v, k) for k, v in kinds.items()),
        "all equal" if bad == 0 else "%d differ" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
