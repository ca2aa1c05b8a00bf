"""The AWS emulator's error shapes and the per-request context they need.

Three wire shapes, as the services answer them:
    S3Error     REST-XML: <Error><Code/><Message/>...<Resource/><RequestId/><HostId/></Error>, with
                x-amz-request-id and x-amz-id-2 (standard headers); a HEAD error has no body
    JsonError   JSON 1.1 (KMS, Secrets Manager): {"__type": T, "message"|"Message": M}, with
                x-amzn-RequestId; Coral's own errors (auth, validation, serialization) carry
                their "com.amazon.coral.*#" prefix, which botocore strips
    StsError    query protocol: <ErrorResponse><Error><Type/><Code/><Message/></Error>
                <RequestId/></ErrorResponse>

No error here ever carries Retry-After: AWS sends none with these answers.
"""

import base64
import os
import threading
import uuid
from xml.sax.saxutils import escape

from common.handler import ServiceError

JSON_TYPE = "application/x-amz-json-1.1"
XML_TYPE = "application/xml"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
CORAL = "com.amazon.coral.service#"
CORAL_VALIDATE = "com.amazon.coral.validate#"

_local = threading.local()


class Context:
    """What the answer to the request the current thread serves needs to know."""

    def __init__(self, method="GET", family="s3"):
        self.method = method
        self.family = family          # s3, kms, secretsmanager, sts
        self.request_id = str(uuid.uuid4())
        self.s3_request_id = base64.b16encode(os.urandom(8)).decode()
        self.host_id = base64.b64encode(os.urandom(48)).decode()
        self.op = None                # e.g. "secretsmanager:GetSecretValue", once known


def begin(method, family):
    """Starts the context of a new request on this thread."""
    _local.ctx = Context(method, family)
    return _local.ctx


def ctx():
    c = getattr(_local, "ctx", None)
    if c is None:
        c = _local.ctx = Context()
    return c


class S3Error(ServiceError):
    content_type = XML_TYPE
    retry_after = False

    def __init__(self, status, code, message, resource=None, extra=None, headers=None):
        """extra: more (element, text) pairs of the <Error>, e.g. [("BucketName", b)]."""
        super().__init__(message, headers)
        self.status, self.code, self.message = status, code, message
        self.resource = resource
        self.extra = list(extra or [])

    def body(self):
        c = ctx()
        if c.method == "HEAD":
            return None
        parts = ["<Code>%s</Code>" % escape(self.code), "<Message>%s</Message>" % escape(self.message)]
        for k, v in self.extra:
            parts.append("<%s>%s</%s>" % (k, escape(str(v)), k))
        if self.resource is not None:
            parts.append("<Resource>%s</Resource>" % escape(self.resource))
        parts.append("<RequestId>%s</RequestId>" % c.s3_request_id)
        parts.append("<HostId>%s</HostId>" % c.host_id)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>%s</Error>' % "".join(parts)).encode()


class JsonError(ServiceError):
    content_type = JSON_TYPE
    retry_after = False

    def __init__(self, status, type_, message, member="message", headers=None):
        super().__init__(message, headers)
        self.status, self.type, self.message, self.member = status, type_, message, member

    @property
    def code(self):
        return self.type.rsplit("#", 1)[-1]

    def body(self):
        return {"__type": self.type, self.member: self.message}


class StsError(ServiceError):
    content_type = "text/xml"
    retry_after = False

    def __init__(self, status, code, message, type_="Sender", headers=None):
        super().__init__(message, headers)
        self.status, self.code, self.message, self.type = status, code, message, type_

    def body(self):
        return ('<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n'
                '    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n'
                '</ErrorResponse>\n' % (STS_NS, self.type, escape(self.code), escape(self.message),
                                        ctx().request_id)).encode()


# ---- Secrets Manager and KMS errors (modelled shapes: SM's say "Message", KMS's "message") ----

def sm_error(type_, message, status=400):
    return JsonError(status, type_, message, member="Message")


def kms_error(type_, message, status=400):
    return JsonError(status, type_, message, member="message")


def validation_error(family, errors):
    """Coral's model-constraint answer for the list of error texts (the value part already in
    each): ValidationException for JSON services, ValidationError for STS."""
    n = len(errors)
    msg = "%d validation error%s detected: %s" % (n, "" if n == 1 else "s", "; ".join(errors))
    if family == "sts":
        return StsError(400, "ValidationError", msg)
    return JsonError(400, CORAL_VALIDATE + "ValidationException", msg)


def serialization_error(message="Start of structure or map found where not expected."):
    return JsonError(400, CORAL + "SerializationException", message, member="Message")


# ---- faults and plumbing in each family's shape ----

FAULTS = {
    # kind: {family: (status, code, message)}
    "429": {"s3": (503, "SlowDown", "Please reduce your request rate."),
            "kms": (400, "ThrottlingException", "You have exceeded the rate at which you may call"
                                                " KMS. Reduce the frequency of your calls."),
            "secretsmanager": (400, "ThrottlingException", "Rate exceeded"),
            "sts": (400, "Throttling", "Rate exceeded")},
    "500": {"s3": (500, "InternalError", "We encountered an internal error. Please try again."),
            "kms": (500, "KMSInternalException", "An internal error occurred (injected fault)."),
            "secretsmanager": (500, "InternalServiceError", "An error occurred on the server side."),
            "sts": (500, "InternalFailure", "The request processing has failed because of an"
                                            " unknown error, exception or failure.")},
    "503": {"s3": (503, "ServiceUnavailable", "Please reduce your request rate."),
            "kms": (503, "ServiceUnavailableException", "Service is unavailable."),
            "secretsmanager": (503, "ServiceUnavailableException", "Service is unavailable."),
            "sts": (503, "ServiceUnavailable", "Service is unavailable.")},
    "internal": {"s3": (500, "InternalError", "We encountered an internal error. Please try again."),
                 "kms": (500, "KMSInternalException", "An internal error occurred."),
                 "secretsmanager": (500, "InternalServiceError",
                                    "An error occurred on the server side."),
                 "sts": (500, "InternalFailure", "The request processing has failed because of an"
                                                 " unknown error, exception or failure.")},
    "bad_length": {"s3": (400, "BadRequest", "An error occurred when parsing the HTTP request."),
                   "kms": (400, CORAL + "SerializationException", "Invalid Content-Length."),
                   "secretsmanager": (400, CORAL + "SerializationException", "Invalid Content-Length."),
                   "sts": (400, "MalformedInput", "Invalid Content-Length.")},
}


def fault_error(kind, family):
    """The ServiceError of an injected fault or plumbing failure kind for family."""
    if kind == "too_large":
        if family == "s3":
            return S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        if family == "sts":
            return StsError(413, "RequestEntityTooLarge", "Request entity too large")
        return JsonError(413, CORAL + "RequestEntityTooLargeException", "Request entity too large")
    status, code, message = FAULTS[kind][family]
    if family == "s3":
        return S3Error(status, code, message)
    if family == "sts":
        return StsError(status, code, message, "Receiver" if status >= 500 else "Sender")
    return JsonError(status, code, message, member="Message" if family == "secretsmanager" else "message")


def access_denied(family, op, principal_arn, resource, text=None):
    """The answer to a forbidden operation (faults' forbidden_ops); text: a test's own wording,
    "{op}" standing for the operation."""
    if text is not None:
        msg = text.replace("{op}", op)
    elif family == "s3":
        msg = "Access Denied"
    else:
        msg = ("User: %s is not authorized to perform: %s on resource: %s because no identity-based"
               " policy allows the %s action" % (principal_arn, op, resource, op))
    if family == "s3":
        return S3Error(403, "AccessDenied", msg)
    if family == "sts":
        return StsError(403, "AccessDenied", msg)
    return JsonError(400, "AccessDeniedException", msg,
                     member="Message" if family == "secretsmanager" else "message")
