"""The JSON 1.1 protocol of KMS and Secrets Manager: the request's framing (POST /,
Content-Type application/x-amz-json-1.1, X-Amz-Target PREFIX.Operation, a JSON object body) and
the validation of its members against the service model, answered as Coral does:
SerializationException for a wrong JSON type or bad base64, ValidationException
("1 validation error detected: Value 'x' at 'secretId' failed to satisfy constraint: Member must
have length less than or equal to 2048"; values of sensitive members are left out) for the model's
constraints. Unknown members are ignored, as the services do; they are counted for the stats.

A member spec is a dict: {"type": "string"|"integer"|"long"|"boolean"|"blob"|"list"|"map"|
"structure", "required", "min", "max", "pattern", "enum", "sensitive", "member" (a list's spec),
"members" (a structure's specs)}.
"""

import base64
import binascii
import json
import re

from .errors import CORAL, JsonError, serialization_error, validation_error

CONTENT_TYPES = ("application/x-amz-json-1.1", "application/x-amz-json-1.0")


def lower_camel(name):
    return name[:1].lower() + name[1:]


def parse_request(req, prefix):
    """(operation, params dict) of a JSON 1.1 request to the service whose target prefix is
    prefix; raises the service's framing errors."""
    target = req.headers.get("X-Amz-Target", "")
    op = target[len(prefix) + 1:] if target.startswith(prefix + ".") else ""
    if req.method != "POST" or req.path != "/":
        raise JsonError(404, CORAL + "UnknownOperationException", "")
    ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype not in CONTENT_TYPES:
        raise JsonError(400, CORAL + "SerializationException",
                        "Unsupported Content-Type %r: send application/x-amz-json-1.1" % ctype,
                        member="Message")
    if not op:
        raise JsonError(400, CORAL + "UnknownOperationException", "")
    try:
        params = json.loads(req.body.decode("utf-8")) if req.body.strip() else None
    except (UnicodeDecodeError, ValueError):
        raise serialization_error("Unexpected character in the request body: not JSON.")
    if not isinstance(params, dict):
        raise serialization_error()
    return op, params


def _type_error(path, expected):
    return serialization_error("Invalid type for '%s': expected %s." % (path, expected))


class Validator:
    """Checks one request's params against a structure's member specs."""

    def __init__(self, family):
        self.family = family
        self.errors = []
        self.unknown = []

    def _constraint(self, spec, path, value, text):
        if spec.get("sensitive") or isinstance(value, (dict, list, bytes)):
            self.errors.append("Value at '%s' failed to satisfy constraint: %s" % (path, text))
        else:
            shown = "null" if value is None else "'%s'" % value
            self.errors.append("Value %s at '%s' failed to satisfy constraint: %s" % (shown, path, text))

    def check(self, value, spec, path):
        """The value converted (blobs decoded); raises SerializationException at once, collects
        constraint errors."""
        t = spec["type"]
        if t == "string":
            if not isinstance(value, str):
                raise _type_error(path, "a string")
            self._length(spec, path, value, len(value))
            if "enum" in spec and value not in spec["enum"]:
                self._constraint(spec, path, value, "Member must satisfy enum value set: [%s]"
                                 % ", ".join(spec["enum"]))
            if "pattern" in spec and not re.fullmatch(spec["pattern"], value):
                self._constraint(spec, path, value, "Member must satisfy regular expression pattern: %s"
                                 % spec["pattern"])
            return value
        if t in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise _type_error(path, "an integer")
            if "min" in spec and value < spec["min"]:
                self._constraint(spec, path, value, "Member must have value greater than or equal to %d"
                                 % spec["min"])
            if "max" in spec and value > spec["max"]:
                self._constraint(spec, path, value, "Member must have value less than or equal to %d"
                                 % spec["max"])
            return value
        if t == "timestamp":             # JSON 1.1: epoch seconds
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _type_error(path, "a timestamp (epoch seconds)")
            return float(value)
        if t == "boolean":
            if not isinstance(value, bool):
                raise _type_error(path, "a boolean")
            return value
        if t == "blob":
            if not isinstance(value, str):
                raise _type_error(path, "a base64 string")
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise serialization_error("Base64 encoded value of '%s' is not valid." % path)
            self._length(spec, path, data, len(data))
            return data
        if t == "list":
            if not isinstance(value, list):
                raise _type_error(path, "a list")
            self._length(spec, path, value, len(value))
            return [self.check(v, spec["member"], "%s.%d.member" % (path, i + 1))
                    for i, v in enumerate(value)]
        if t == "map":
            if not isinstance(value, dict):
                raise _type_error(path, "a map")
            return {k: self.check(v, spec["value"], "%s.%s" % (path, k)) for k, v in value.items()}
        if t == "structure":
            if not isinstance(value, dict):
                raise _type_error(path, "a structure")
            return self.structure(value, spec["members"], path + ".")
        raise ValueError("unknown spec type %r" % t)

    def _length(self, spec, path, value, n):
        unit = "length"
        if "min" in spec and n < spec["min"]:
            self._constraint(spec, path, value, "Member must have %s greater than or equal to %d"
                             % (unit, spec["min"]))
        if "max" in spec and n > spec["max"]:
            self._constraint(spec, path, value, "Member must have %s less than or equal to %d"
                             % (unit, spec["max"]))

    def structure(self, params, members, prefix=""):
        out = {}
        for name, value in params.items():
            spec = members.get(name)
            if spec is None:
                self.unknown.append(prefix + name)
                continue
            if value is None:          # JSON null: as if absent
                continue
            out[name] = self.check(value, spec, prefix + lower_camel(name))
        for name, spec in members.items():
            if spec.get("required") and name not in out:
                self._constraint(spec, prefix + lower_camel(name), None, "Member must not be null")
        return out


def validate(family, params, members):
    """(the params converted, the unknown member names) or the Coral error raised."""
    v = Validator(family)
    out = v.structure(params, members)
    if v.errors:
        raise validation_error(family, v.errors)
    return out, v.unknown


def S(**kw):
    return dict(kw, type="string")


def I(**kw):  # noqa: E743
    return dict(kw, type="integer")


def B(**kw):
    return dict(kw, type="boolean")


def BLOB(**kw):
    return dict(kw, type="blob")


def L(member, **kw):
    return dict(kw, type="list", member=member)


def ST(members, **kw):
    return dict(kw, type="structure", members=members)


TAGS_SM = L(ST({"Key": S(min=1, max=128), "Value": S(min=0, max=256)}))
