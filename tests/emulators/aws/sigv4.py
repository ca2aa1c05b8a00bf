"""SigV4 verification of every signed request, with botocore as the independent reference.

The Authorization header is parsed; the request is rebuilt as a botocore AWSRequest holding only
the signed headers (with their values as received), the query as parse_qsl pairs (blank values
kept) and the body; context["timestamp"] is the request's X-Amz-Date. botocore's SigV4Auth
(S3SigV4Auth for s3) then computes canonical request -> string to sign -> signature with the
caller's secret, and the result is compared in constant time. add_auth is never called (it stamps
the current time). S3 also needs x-amz-content-sha256 signed and equal to sha256(body) unless
UNSIGNED-PAYLOAD.

A refusal raises AuthFailure(kind, ...); errors.py's family shapes come from auth_errors.py.
"""

import datetime
import hashlib
import hmac
import re
import time

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
STREAMING = ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
             "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
             "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER")
UNSIGNED = "UNSIGNED-PAYLOAD"
# how far X-Amz-Date may be from the server's clock, per signing service (seconds): S3 documents
# 15 minutes (RequestTimeTooSkewed, MaxAllowedSkewMilliseconds 900000); KMS and Secrets Manager
# answer "Signature expired: ... (... - 5 min.)"; STS 15 minutes (inferred)
SKEW = {"s3": 900, "kms": 300, "secretsmanager": 300, "sts": 900}


class AuthFailure(Exception):
    """A refused signature: kind names the reason (see auth_errors.py), fields its details."""

    def __init__(self, kind, reason, **fields):
        super().__init__(reason)
        self.kind, self.reason, self.fields = kind, reason, fields


class _Exact:
    """Signs exactly the headers the AWSRequest holds (the client's SignedHeaders): botocore's
    own blacklist (user-agent, expect, ...) is a client rule, not a server one."""

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name, value in request.headers.items():
            out[name.lower()] = value
        return out


class ExactSigV4(_Exact, SigV4Auth):
    pass


class ExactS3SigV4(_Exact, S3SigV4Auth):
    pass


def parse_authorization(value):
    """{"akid", "date", "region", "service", "terminator", "signed_headers" (list),
    "signature"} of an AWS4-HMAC-SHA256 Authorization header; AuthFailure when malformed."""
    if not value.startswith(ALGORITHM + " "):
        raise AuthFailure("unsupported", "Authorization is not %s" % ALGORITHM)
    parts = {}
    for item in value[len(ALGORITHM) + 1:].split(","):
        k, sep, v = item.strip().partition("=")
        if not sep or not k or k in parts:
            raise AuthFailure("malformed", "malformed Authorization component %r" % item.strip()[:40])
        parts[k] = v
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in parts]
    if missing:
        raise AuthFailure("incomplete", "Authorization lacks %s" % ", ".join(missing), missing=missing)
    cred = parts["Credential"].split("/")
    if len(cred) != 5 or not all(cred):
        raise AuthFailure("malformed", "Credential is not AKID/DATE/REGION/SERVICE/aws4_request",
                          credential_parts=len(cred))
    signed = parts["SignedHeaders"].split(";")
    if not all(signed):
        raise AuthFailure("malformed", "empty name in SignedHeaders")
    return {"akid": cred[0], "date": cred[1], "region": cred[2], "service": cred[3],
            "terminator": cred[4], "signed_headers": signed, "signature": parts["Signature"]}


def header_values(headers, name):
    """Every value of header name as received (http.client keeps repeats)."""
    vals = headers.get_all(name)
    return list(vals) if vals else []


def parse_amz_date(value):
    try:
        return datetime.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


class Verifier:
    """Verifies requests for one region against an identity.Identity."""

    def __init__(self, region, identity, clock=time.time):
        self.region = region
        self.identity = identity
        self.clock = clock

    def verify(self, req, service, query_pairs):
        """The identity.Principal that signed req (a handler.Request) for signing service
        service ("s3", "kms", ...); query_pairs: the query as parse_qsl pairs. AuthFailure
        otherwise."""
        h = req.headers
        auth_values = header_values(h, "Authorization")
        if not auth_values:
            if any(k.lower() == "x-amz-algorithm" for k, _ in query_pairs):
                raise AuthFailure("query_auth", "query-string (presigned) authentication")
            raise AuthFailure("missing", "no Authorization header")
        if len(auth_values) > 1:
            raise AuthFailure("malformed", "more than one Authorization header")
        a = parse_authorization(auth_values[0].strip())
        signed = a["signed_headers"]
        date_values = header_values(h, "X-Amz-Date")
        amz_date = date_values[0].strip() if len(date_values) == 1 else None
        if amz_date is None or not AMZ_DATE_RE.match(amz_date) or parse_amz_date(amz_date) is None:
            raise AuthFailure("no_date", "no valid X-Amz-Date header")
        if "host" not in signed:
            raise AuthFailure("host_unsigned", "host is not among the signed headers",
                              signed_headers=";".join(signed))
        if "x-amz-date" not in signed:
            raise AuthFailure("date_unsigned", "x-amz-date is not among the signed headers",
                              signed_headers=";".join(signed))
        if service == "s3":
            unsigned = sorted({k.lower() for k in h.keys() if k.lower().startswith("x-amz-")}
                              - set(signed))
            if unsigned:
                raise AuthFailure("headers_not_signed", "x-amz-* headers not signed: %s"
                                  % ",".join(unsigned), headers=unsigned)
        if a["date"] != amz_date[:8]:
            raise AuthFailure("scope_date", "credential date %s is not X-Amz-Date's %s"
                              % (a["date"], amz_date[:8]), scope_date=a["date"], amz_date=amz_date)
        if a["terminator"] != "aws4_request":
            raise AuthFailure("terminator", "credential scope ends with %r" % a["terminator"],
                              terminator=a["terminator"])
        if a["service"] != service:
            raise AuthFailure("wrong_service", "credential scope service %r, request for %r"
                              % (a["service"], service), scope_service=a["service"], service=service)
        if a["region"] != self.region:
            raise AuthFailure("wrong_region", "credential scope region %r, this region is %r"
                              % (a["region"], self.region), scope_region=a["region"], region=self.region)
        req_time = parse_amz_date(amz_date)
        now = self.clock()
        skew = SKEW.get(service, 900)
        if abs(now - req_time) > skew:
            raise AuthFailure("skew", "X-Amz-Date %s is %d s from the server's clock"
                              % (amz_date, int(req_time - now)), amz_date=amz_date, now=now,
                              skew=skew, late=req_time < now)
        found = self.identity.lookup(a["akid"])
        tokens = header_values(h, "X-Amz-Security-Token")
        token = tokens[0] if tokens else None
        if found is None:
            raise AuthFailure("unknown_key", "unknown access key %s" % a["akid"], akid=a["akid"])
        kind, secret, rec = found
        if kind == "static" and token is not None:
            raise AuthFailure("token_invalid", "a session token with long-term key %s" % a["akid"],
                              akid=a["akid"])
        if kind == "temporary":
            if token is None:
                raise AuthFailure("token_missing", "temporary key %s without its session token"
                                  % a["akid"], akid=a["akid"])
            if not hmac.compare_digest(token.encode(), rec["token"].encode()):
                raise AuthFailure("token_invalid", "wrong session token for %s" % a["akid"],
                                  akid=a["akid"])
            if rec["expiration"] <= now:
                raise AuthFailure("token_expired", "temporary key %s expired at %d"
                                  % (a["akid"], rec["expiration"]), akid=a["akid"])
        if service == "s3":
            self.check_s3_payload_header(h)
        else:
            sent = header_values(h, "X-Amz-Content-SHA256")
            if sent and sent[0] != hashlib.sha256(req.body).hexdigest():
                raise AuthFailure("payload_mismatch", "x-amz-content-sha256 is not the body's hash",
                                  client=sent[0])
        canonical, sts, expected = self.compute(req, service, a, amz_date, query_pairs, secret)
        if not hmac.compare_digest(expected.encode(), a["signature"].encode()):
            raise AuthFailure("signature", "signature mismatch for %s" % a["akid"], akid=a["akid"],
                              canonical_request=canonical, string_to_sign=sts,
                              signature_provided=a["signature"])
        if service == "s3":
            sent = header_values(h, "X-Amz-Content-SHA256")[0]
            if sent != UNSIGNED and sent != hashlib.sha256(req.body).hexdigest():
                raise AuthFailure("payload_mismatch", "x-amz-content-sha256 is not the body's hash",
                                  client=sent, computed=hashlib.sha256(req.body).hexdigest())
        return self.identity.principal(a["akid"], kind, rec)

    @staticmethod
    def check_s3_payload_header(h):
        sent = header_values(h, "X-Amz-Content-SHA256")
        if not sent:
            raise AuthFailure("payload_missing", "no x-amz-content-sha256 header")
        v = sent[0]
        if v in STREAMING:
            raise AuthFailure("payload_streaming", "aws-chunked payload %s" % v, value=v)
        if v != UNSIGNED and not SHA256_RE.match(v):
            raise AuthFailure("payload_bad", "x-amz-content-sha256 %r" % v[:80], value=v)

    def compute(self, req, service, a, amz_date, query_pairs, secret):
        """(canonical request, string to sign, signature) as botocore computes them."""
        host = (header_values(req.headers, "Host") or ["localhost"])[0]
        areq = AWSRequest(method=req.method, url="https://%s%s" % (host, req.path),
                          data=req.body, params=list(query_pairs))
        for name in a["signed_headers"]:
            values = header_values(req.headers, name)
            for v in values or [""]:
                areq.headers[name] = v
        areq.context["timestamp"] = amz_date
        creds = Credentials(a["akid"], secret)
        cls = ExactS3SigV4 if service == "s3" else ExactSigV4
        signer = cls(creds, service, a["region"])
        canonical = signer.canonical_request(areq)
        sts = signer.string_to_sign(areq, canonical)
        return canonical, sts, signer.signature(sts, areq)
