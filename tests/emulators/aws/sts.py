"""STS of one region (query protocol: POST / with Action=...&Version=2011-06-15 form-encoded,
XML answers): AssumeRole (signed), AssumeRoleWithWebIdentity (unsigned: the WebIdentityToken
must be one configured for the role) and GetCallerIdentity. The temporary credentials it issues
(ASIA... key, secret, session token, Expiration) are accepted by every service of the region, with
their token, until they expire.

Facts: the STS API reference (AssumeRole: RoleSessionName 2..64 of [\\w+=,.@-], DurationSeconds
900..43200 and at most the role's MaxSessionDuration, one hour for role chaining; errors
ValidationError, AccessDenied, InvalidIdentityToken) and botocore's sts/2011-06-15 model.
"""

import re
from xml.sax.saxutils import escape

from .errors import STS_NS, StsError, ctx, validation_error
from .identity import iso8601

VERSION = "2011-06-15"
SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]*$")
ROLE_ARN_RE = re.compile(r"^[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD]+$")
UNSIGNED_ACTIONS = ("AssumeRoleWithWebIdentity",)


def form_params(pairs):
    """{name: value} of the request's parameters (the first of repeated names)."""
    out = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


class Sts:
    def __init__(self, identity):
        self.identity = identity
        self.min_duration = 900          # POST /_emulator/config sts_min_duration (expiry tests)
        self.ACTIONS = {"AssumeRole": self.assume_role,
                        "AssumeRoleWithWebIdentity": self.assume_role_with_web_identity,
                        "GetCallerIdentity": self.get_caller_identity}

    def action_of(self, params):
        """The operation of a request's parameters; InvalidAction otherwise."""
        action = params.get("Action")
        if not action:
            raise StsError(400, "MissingAction", "Missing Action")
        version = params.get("Version")
        if version != VERSION or action not in self.ACTIONS:
            raise StsError(400, "InvalidAction", "Could not find operation %s for version %s"
                           % (action, version or "NO_VERSION_SPECIFIED"))
        return action

    def call(self, action, params, principal):
        body = self.ACTIONS[action](params, principal)
        xml = ('<%sResponse xmlns="%s">\n  <%sResult>\n%s  </%sResult>\n  <ResponseMetadata>\n'
               '    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n</%sResponse>\n'
               % (action, STS_NS, action, body, action, ctx().request_id, action))
        return xml.encode()

    # ---- validation (Coral's ValidationError) ----
    def _validate(self, p, specs):
        errs = []
        for name, (required, lo, hi, pattern) in specs.items():
            member = name[:1].lower() + name[1:]
            v = p.get(name)
            if v is None:
                if required:
                    errs.append("Value null at '%s' failed to satisfy constraint: Member must not be"
                                " null" % member)
                continue
            if lo is not None and len(v) < lo:
                errs.append("Value '%s' at '%s' failed to satisfy constraint: Member must have length"
                            " greater than or equal to %d" % (v, member, lo))
            if hi is not None and len(v) > hi:
                errs.append("Value '%s' at '%s' failed to satisfy constraint: Member must have length"
                            " less than or equal to %d" % (v, member, hi))
            if pattern is not None and not pattern.match(v):
                errs.append("Value '%s' at '%s' failed to satisfy constraint: Member must satisfy"
                            " regular expression pattern: %s" % (v, member, pattern.pattern))
        if errs:
            raise validation_error("sts", errs)

    def _duration(self, p, role, chained):
        raw = p.get("DurationSeconds")
        if raw is None:
            return 3600 if role["max_session_duration"] >= 3600 else role["max_session_duration"]
        try:
            d = int(raw)
        except ValueError:
            raise StsError(400, "MalformedInput", "Invalid value for DurationSeconds: %s" % raw)
        errs = []
        if d < self.min_duration:
            errs.append("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have"
                        " value greater than or equal to %d" % (d, self.min_duration))
        if d > 43200:
            errs.append("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have"
                        " value less than or equal to 43200" % d)
        if errs:
            raise validation_error("sts", errs)
        if chained and d > 3600:
            raise StsError(400, "ValidationError", "The requested DurationSeconds exceeds the 1 hour"
                           " session limit for roles assumed by role chaining.")
        if d > role["max_session_duration"]:
            raise StsError(400, "ValidationError", "The requested DurationSeconds exceeds the"
                           " MaxSessionDuration set for this role.")
        return d

    @staticmethod
    def _credentials_xml(rec):
        return ("    <Credentials>\n      <AccessKeyId>%s</AccessKeyId>\n"
                "      <SecretAccessKey>%s</SecretAccessKey>\n      <SessionToken>%s</SessionToken>\n"
                "      <Expiration>%s</Expiration>\n    </Credentials>\n"
                "    <AssumedRoleUser>\n      <AssumedRoleId>%s</AssumedRoleId>\n"
                "      <Arn>%s</Arn>\n    </AssumedRoleUser>\n"
                % (rec["akid"], escape(rec["secret"]), escape(rec["token"]),
                   iso8601(rec["expiration"]), escape(rec["assumed_role_id"]), escape(rec["arn"])))

    # ---- the actions ----
    def assume_role(self, p, principal):
        self._validate(p, {"RoleArn": (True, 20, 2048, ROLE_ARN_RE),
                           "RoleSessionName": (True, 2, 64, SESSION_NAME_RE),
                           "ExternalId": (False, 2, 1224, None)})
        role = self.identity.role(p["RoleArn"])
        allowed = role is not None and ("*" in role["principals"] or principal.arn in role["principals"]
                                        or principal.akid in role["principals"])
        if not allowed:
            raise StsError(403, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole"
                           " on resource: %s" % (principal.arn, p["RoleArn"]))
        chained = principal.temporary
        d = self._duration(p, role, chained)
        rec = self.identity.issue(role["arn"], p["RoleSessionName"], d, "sts:AssumeRole", chained)
        return self._credentials_xml(rec) + "    <PackedPolicySize>0</PackedPolicySize>\n"

    def assume_role_with_web_identity(self, p, principal):
        self._validate(p, {"RoleArn": (True, 20, 2048, ROLE_ARN_RE),
                           "RoleSessionName": (True, 2, 64, SESSION_NAME_RE),
                           "WebIdentityToken": (True, 4, 20000, None)})
        role = self.identity.role(p["RoleArn"])
        tok = p["WebIdentityToken"]
        if role is None or tok not in role["web_identity_tokens"]:
            raise StsError(403, "AccessDenied", "Not authorized to perform"
                           " sts:AssumeRoleWithWebIdentity")
        d = self._duration(p, role, False)
        rec = self.identity.issue(role["arn"], p["RoleSessionName"], d,
                                  "sts:AssumeRoleWithWebIdentity")
        return (self._credentials_xml(rec)
                + "    <SubjectFromWebIdentityToken>%s</SubjectFromWebIdentityToken>\n"
                  "    <Provider>keyplane-test-idp</Provider>\n"
                  "    <Audience>sts.amazonaws.com</Audience>\n"
                % escape(p["RoleSessionName"]))

    def get_caller_identity(self, p, principal):
        return ("    <Arn>%s</Arn>\n    <UserId>%s</UserId>\n    <Account>%s</Account>\n"
                % (escape(principal.arn), escape(principal.user_id), principal.account))
