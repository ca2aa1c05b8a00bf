"""The answer each service gives a refused signature (sigv4.AuthFailure), in its own shape.

S3: AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch (with StringToSign and
CanonicalRequest, as real S3 sends), RequestTimeTooSkewed, AuthorizationHeaderMalformed (a wrong
region says "the region 'X' is wrong; expecting 'Y'" and names <Region>), ExpiredToken,
InvalidToken, XAmzContentSHA256Mismatch. KMS and Secrets Manager: Coral's
MissingAuthenticationTokenException, IncompleteSignatureException, UnrecognizedClientException,
InvalidSignatureException ("Signature expired: ...", "Credential should be scoped to a valid
region, not 'X'. "), ExpiredTokenException. STS: the query protocol's MissingAuthenticationToken,
InvalidClientTokenId, SignatureDoesNotMatch, ExpiredToken.

Statuses: JSON 1.1 services answer their signature errors 400 (reports of KMS, Secrets Manager,
Kinesis and ECS show "status code: 400"); a wrongly scoped region or service is 403 as the
restJson services report (inferred for JSON 1.1); S3 and STS as their documentation says.
"""

import datetime

from .errors import CORAL, JsonError, S3Error, StsError

SIG_MISMATCH_JSON = ("The request signature we calculated does not match the signature you"
                     " provided. Check your AWS Secret Access Key and signing method. Consult the"
                     " service documentation for details.")
SIG_MISMATCH_S3 = ("The request signature we calculated does not match the signature you"
                   " provided. Check your key and signing method.")
TOKEN_INVALID = "The security token included in the request is invalid."


def _hexbytes(s):
    return " ".join("%02x" % b for b in s.encode())


def _ts(t):
    return datetime.datetime.utcfromtimestamp(t).strftime("%Y%m%dT%H%M%SZ")


def _expired_text(f):
    """Coral's wording of an X-Amz-Date outside the window."""
    now, skew = f["now"], f["skew"]
    mins = skew // 60
    if f["late"]:
        return ("Signature expired: %s is now earlier than %s (%s - %d min.)"
                % (f["amz_date"], _ts(now - skew), _ts(now), mins))
    return ("Signature not yet current: %s is still later than %s (%s + %d min.)"
            % (f["amz_date"], _ts(now + skew), _ts(now), mins))


def s3_error(fail, resource=None):
    k, f = fail.kind, fail.fields
    if k == "missing":
        return S3Error(403, "AccessDenied", "Access Denied", resource)
    if k == "query_auth":
        return S3Error(501, "NotImplemented", "A header you provided implies functionality that is"
                       " not implemented (the emulator does not accept presigned URLs)", resource)
    if k == "unsupported":
        return S3Error(400, "InvalidRequest", "The authorization mechanism you have provided is not"
                       " supported. Please use AWS4-HMAC-SHA256.", resource)
    if k in ("malformed", "incomplete"):
        return S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed;"
                       " %s" % fail.reason, resource)
    if k == "no_date":
        return S3Error(403, "AccessDenied", "AWS authentication requires a valid Date or"
                       " x-amz-date header", resource)
    if k in ("host_unsigned", "date_unsigned", "headers_not_signed"):
        names = f.get("headers") or (["host"] if k == "host_unsigned" else ["x-amz-date"])
        return S3Error(403, "AccessDenied", "There were headers present in the request which were"
                       " not signed", resource, [("HeadersNotSigned", ", ".join(names))])
    if k == "scope_date":
        return S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed;"
                       " Invalid credential date. Date is not the same as X-Amz-Date.", resource)
    if k == "terminator":
        return S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed;"
                       " incorrect terminal \"%s\". This endpoint uses \"aws4_request\"."
                       % f["terminator"], resource)
    if k == "wrong_service":
        return S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed;"
                       " incorrect service \"%s\". This endpoint belongs to \"s3\"."
                       % f["scope_service"], resource)
    if k == "wrong_region":
        return S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed;"
                       " the region '%s' is wrong; expecting '%s'" % (f["scope_region"], f["region"]),
                       resource, [("Region", f["region"])])
    if k == "skew":
        return S3Error(403, "RequestTimeTooSkewed", "The difference between the request time and the"
                       " current time is too large.", resource,
                       [("RequestTime", f["amz_date"]), ("ServerTime", _ts(f["now"])),
                        ("MaxAllowedSkewMilliseconds", f["skew"] * 1000)])
    if k in ("unknown_key", "token_missing"):
        return S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist"
                       " in our records.", resource, [("AWSAccessKeyId", f["akid"])])
    if k == "token_invalid":
        return S3Error(400, "InvalidToken", "The provided token is malformed or otherwise invalid.",
                       resource)
    if k == "token_expired":
        return S3Error(400, "ExpiredToken", "The provided token has expired.", resource)
    if k == "payload_missing":
        return S3Error(400, "InvalidRequest", "Missing required header for this request:"
                       " x-amz-content-sha256", resource)
    if k == "payload_streaming":
        return S3Error(501, "NotImplemented", "A header you provided implies functionality that is"
                       " not implemented (the emulator does not accept aws-chunked uploads)", resource)
    if k == "payload_bad":
        return S3Error(400, "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD,"
                       " STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD,"
                       " STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER,"
                       " STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD,"
                       " STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
                       resource, [("ArgumentName", "x-amz-content-sha256"),
                                  ("ArgumentValue", f["value"])])
    if k == "payload_mismatch":
        return S3Error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header"
                       " does not match what was computed.", resource,
                       [("ClientComputedContentSHA256", f["client"]),
                        ("S3ComputedContentSHA256", f["computed"])])
    if k == "signature":
        return S3Error(403, "SignatureDoesNotMatch", SIG_MISMATCH_S3, resource,
                       [("AWSAccessKeyId", f["akid"]), ("StringToSign", f["string_to_sign"]),
                        ("SignatureProvided", f["signature_provided"]),
                        ("StringToSignBytes", _hexbytes(f["string_to_sign"])),
                        ("CanonicalRequest", f["canonical_request"]),
                        ("CanonicalRequestBytes", _hexbytes(f["canonical_request"]))])
    return S3Error(403, "AccessDenied", "Access Denied", resource)


def _with_canonical(f):
    """Coral's mismatch message with the canonical request and string to sign (as the services'
    answers to SDK developers show them)."""
    return ("%s\n\nThe Canonical String for this request should have been\n'%s'\n\nThe String-to-Sign"
            " should have been\n'%s'\n"
            % (SIG_MISMATCH_JSON, f["canonical_request"], f["string_to_sign"]))


def json_error(fail):
    k, f = fail.kind, fail.fields

    def e(status, t, m):
        return JsonError(status, CORAL + t, m)
    if k in ("missing", "query_auth"):
        return e(400, "MissingAuthenticationTokenException", "Missing Authentication Token")
    if k == "unsupported":
        return e(400, "IncompleteSignatureException", "Unsupported AWS 'algorithm': '%s'"
                 % fail.reason)
    if k == "incomplete":
        return e(400, "IncompleteSignatureException", " ".join(
            "Authorization header requires '%s' parameter." % m for m in f["missing"]))
    if k == "malformed":
        return e(400, "IncompleteSignatureException", "Authorization header is malformed: %s"
                 % fail.reason)
    if k == "no_date":
        return e(400, "IncompleteSignatureException", "Authorization header requires existence of"
                 " either a 'X-Amz-Date' or a 'Date' header.")
    if k == "host_unsigned":
        return e(400, "InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader'"
                 " in the AWS Authorization.")
    if k == "date_unsigned":
        return e(400, "InvalidSignatureException", "'X-Amz-Date' must be a 'SignedHeader' in the AWS"
                 " Authorization.")
    if k == "scope_date":
        return e(400, "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD"
                 " from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'."
                 % (f["scope_date"], f["amz_date"][:8], f["amz_date"]))
    if k == "terminator":
        return e(403, "InvalidSignatureException", "Credential should be scoped with a valid"
                 " terminator: 'aws4_request', not '%s'." % f["terminator"])
    if k == "wrong_service":
        return e(403, "InvalidSignatureException", "Credential should be scoped to correct service:"
                 " '%s'. " % f["service"])
    if k == "wrong_region":
        return e(403, "InvalidSignatureException", "Credential should be scoped to a valid region,"
                 " not '%s'. " % f["scope_region"])
    if k == "skew":
        return e(400, "InvalidSignatureException", _expired_text(f))
    if k in ("unknown_key", "token_missing", "token_invalid"):
        return e(400, "UnrecognizedClientException", TOKEN_INVALID)
    if k == "token_expired":
        return e(400, "ExpiredTokenException", "The security token included in the request is"
                 " expired")
    if k == "signature":
        return e(400, "InvalidSignatureException", _with_canonical(f))
    if k == "payload_mismatch":
        return e(400, "InvalidSignatureException", SIG_MISMATCH_JSON)
    return e(400, "IncompleteSignatureException", fail.reason)


def sts_error(fail):
    k, f = fail.kind, fail.fields
    if k in ("missing", "query_auth"):
        return StsError(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    if k in ("unsupported", "incomplete", "malformed", "no_date"):
        return StsError(400, "IncompleteSignature", "Authorization header is malformed or incomplete:"
                        " %s" % fail.reason)
    if k == "host_unsigned":
        return StsError(403, "SignatureDoesNotMatch", "'Host' or ':authority' must be a"
                        " 'SignedHeader' in the AWS Authorization.")
    if k == "date_unsigned":
        return StsError(403, "SignatureDoesNotMatch", "'X-Amz-Date' must be a 'SignedHeader' in"
                        " the AWS Authorization.")
    if k == "scope_date":
        return StsError(403, "SignatureDoesNotMatch", "Date in Credential scope does not match"
                        " YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'."
                        % (f["scope_date"], f["amz_date"][:8], f["amz_date"]))
    if k == "terminator":
        return StsError(403, "SignatureDoesNotMatch", "Credential should be scoped with a valid"
                        " terminator: 'aws4_request', not '%s'." % f["terminator"])
    if k == "wrong_service":
        return StsError(403, "SignatureDoesNotMatch", "Credential should be scoped to correct"
                        " service: 'sts'. ")
    if k == "wrong_region":
        return StsError(403, "SignatureDoesNotMatch", "Credential should be scoped to a valid"
                        " region, not '%s'. " % f["scope_region"])
    if k == "skew":
        return StsError(403, "SignatureDoesNotMatch", _expired_text(f))
    if k in ("unknown_key", "token_missing", "token_invalid"):
        return StsError(403, "InvalidClientTokenId", TOKEN_INVALID)
    if k == "token_expired":
        return StsError(400, "ExpiredToken", "The security token included in the request is expired")
    if k == "signature":
        return StsError(403, "SignatureDoesNotMatch", _with_canonical(f))
    return StsError(403, "SignatureDoesNotMatch", SIG_MISMATCH_JSON)


def auth_error(family, fail, resource=None):
    if family == "s3":
        return s3_error(fail, resource)
    if family == "sts":
        return sts_error(fail)
    return json_error(fail)
