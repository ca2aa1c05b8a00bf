"""Validation of the keys API's request models (names, attributes, tags, key_ops, release policy,
key exchange keys) and the RSA paddings and size limits of its crypto operations, as the Key Vault
REST reference and swagger define them.
"""

import re

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .base import bad

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
VERSION_RE = re.compile(r"^[0-9a-f]{32}$")
KEY_TYPES = ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM")
KEY_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey",
           "import", "export")
DEFAULT_RSA_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey",
                   "unwrapKey"]
RSA_SIZES = (2048, 3072, 4096)
RSA_ALGS = ("RSA-OAEP", "RSA-OAEP-256", "RSA1_5")
MAX_TAGS = 15


def check_name(name):
    if not NAME_RE.match(name):
        raise bad("The request URI contains an invalid name: %s" % name)


def check_rsa_type(kty):
    """Only RSA and RSA-HSM are emulated; the other key types give a different 400."""
    if kty not in KEY_TYPES:
        raise bad("Invalid key type: %s" % kty)
    if kty not in ("RSA", "RSA-HSM"):
        raise bad("Key type %s is not supported by this emulator (RSA and RSA-HSM only)." % kty)


def check_rsa_size(size):
    if size not in RSA_SIZES:
        raise bad("The RSA key size (%d) is not supported; use 2048, 3072 or 4096." % size)


def parse_attributes(attrs):
    out = {}
    if attrs is None:
        return out
    if not isinstance(attrs, dict):
        raise bad("Property attributes has invalid value")
    for k in ("enabled", "exportable"):
        if k in attrs and attrs[k] is not None:
            if not isinstance(attrs[k], bool):
                raise bad("Property attributes.%s has invalid value" % k)
            out[k] = attrs[k]
    for k in ("nbf", "exp"):
        if k in attrs and attrs[k] is not None:
            v = attrs[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad("Property attributes.%s has invalid value" % k)
            out[k] = v
    check_validity(out)
    return out


def check_validity(attrs):
    if "nbf" in attrs and "exp" in attrs and attrs["nbf"] > attrs["exp"]:
        raise bad("The 'nbf' attribute must be earlier than the 'exp' attribute.")


def parse_tags(tags):
    if tags is None:
        return None
    if not isinstance(tags, dict):
        raise bad("Property tags has invalid value")
    if len(tags) > MAX_TAGS:
        raise bad("Too many tags: at most %d tags are allowed." % MAX_TAGS)
    for k, v in tags.items():
        if not isinstance(v, str) or len(k) > 512 or len(v) > 256:
            raise bad("Tag '%s' has an invalid value" % k)
    return dict(tags)


def parse_key_ops(ops, default):
    if ops is None:
        return list(default)
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise bad("Property key_ops has invalid value")
    out = []
    for o in ops:
        canon = next((k for k in KEY_OPS if k.lower() == o.lower()), None)
        if canon is None:
            raise bad("Invalid key operation: %s" % o)
        if canon not in out:
            out.append(canon)
    return out


def check_release_policy(body, attrs):
    rp = body.get("release_policy")
    exportable = attrs.get("exportable", False)
    if rp is not None and not exportable:
        raise bad("Non-exportable keys must not have release policy")
    if exportable and rp is None:
        raise bad("Exportable keys must have release policy")
    return rp


def check_kek_ops(kty, ops):
    if "import" in ops:
        if ops != ["import"]:
            raise bad("A key exchange key (key_ops 'import') must not allow other operations.")
        if kty != "RSA-HSM":
            raise bad("A key exchange key (key_ops 'import') must be of type RSA-HSM.")


def rsa_padding(alg):
    if alg == "RSA-OAEP":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    if alg == "RSA-OAEP-256":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    raise bad("Invalid algorithm: %s" % alg)


def max_plaintext(alg, nbytes):
    return {"RSA-OAEP": nbytes - 42, "RSA-OAEP-256": nbytes - 66, "RSA1_5": nbytes - 11}[alg]
