"""Key material for an import (PUT /keys/{name}): the RSA private key of a plain JWK, or of a
BYOK transfer file in key_hsm (Key Vault BYOK specification: RSA-OAEP of a transfer key with the
vault's key exchange key, then AES key wrap with padding, RFC 5649, of the PKCS#8 key).
"""

import json
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from .base import KVError, b64_to_int, b64decode_any, bad, now
from .keys_model import VERSION_RE

BYOK_ENCS = {"CKM_RSA_AES_KEY_WRAP": hashes.SHA1,
             "RSA_AES_KEY_WRAP_256": hashes.SHA256,
             "RSA_AES_KEY_WRAP_384": hashes.SHA384}


def jwk_private_key(jwk):
    """The RSA private key of a JWK with n, e, d, p and q (dp, dq and qi checked if present)."""
    try:
        n, e = b64_to_int(jwk["n"]), b64_to_int(jwk["e"])
    except (KeyError, ValueError):
        raise bad("The JSON Web Key is invalid: n and e are required base64url values.")
    if "d" not in jwk:
        raise bad("The JSON Web Key is invalid: the private key (d, p, q) is required for import.")
    try:
        d = b64_to_int(jwk["d"])
        p, q = b64_to_int(jwk["p"]), b64_to_int(jwk["q"])
    except (KeyError, ValueError):
        raise bad("The JSON Web Key is invalid: d, p and q must be base64url values.")
    if p * q != n or p < 2 or q < 2:
        raise bad("The JSON Web Key is invalid: p*q does not equal n.")
    # the service accepts a short/odd d; derive a consistent d from p, q, e
    phi = (p - 1) * (q - 1)
    try:
        dd = pow(e, -1, phi)
    except ValueError:
        raise bad("The JSON Web Key is invalid: e is not invertible.")
    try:
        dp = b64_to_int(jwk["dp"]) if "dp" in jwk else dd % (p - 1)
        dq = b64_to_int(jwk["dq"]) if "dq" in jwk else dd % (q - 1)
        qi = b64_to_int(jwk["qi"]) if "qi" in jwk else pow(q, -1, p)
    except ValueError:
        raise bad("The JSON Web Key is invalid: dp, dq and qi must be base64url values.")
    if dp != dd % (p - 1) or dq != dd % (q - 1) or qi != pow(q, -1, p):
        raise bad("The JSON Web Key is invalid: inconsistent CRT parameters.")
    del d
    try:
        return rsa.RSAPrivateNumbers(p, q, dd, dp, dq, qi, rsa.RSAPublicNumbers(e, n)).private_key()
    except ValueError as ex:
        raise bad("The JSON Web Key is invalid: %s" % ex)


def parse_transfer_file(key_hsm):
    """(KEK kid, enc, ciphertext) of the BYOK transfer file in key_hsm."""
    try:
        raw = b64decode_any(key_hsm)
    except ValueError:
        raise bad("key_hsm is not valid base64 or base64url.")
    try:
        tf = json.loads(raw.decode("utf-8"))
        hdr = tf["header"]
        kek_kid, alg, enc = hdr["kid"], hdr["alg"], hdr["enc"]
        ct = b64decode_any(tf["ciphertext"])
        if not isinstance(tf.get("schema_version"), str):
            raise KeyError("schema_version")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise bad("key_hsm must be a BYOK transfer file: base64 of JSON"
                  " {schema_version, header{kid,alg,enc}, ciphertext, generator}.")
    if alg != "dir":
        raise bad("Unsupported BYOK header alg '%s' (expected 'dir')." % alg)
    if enc not in BYOK_ENCS:
        raise bad("Unsupported BYOK header enc '%s'." % enc)
    return kek_kid, enc, ct


def kek_private_key(store, is_this_vault, kek_kid):
    """The private key of the key exchange key kek_kid: a versioned kid of this vault (host and
    port checked by is_this_vault(netloc)), RSA-HSM with key_ops ["import"], enabled and valid."""
    u = urllib.parse.urlsplit(kek_kid)
    parts = u.path.split("/")
    if (u.scheme != "https" or not is_this_vault(u.netloc) or len(parts) != 4
            or parts[1] != "keys" or not VERSION_RE.match(parts[3].lower())):
        raise bad("The key exchange key '%s' is not a versioned key of this vault." % kek_kid)
    with store.lock:
        try:
            rec = store.live(parts[2])
            kver = store.version_of(rec, parts[3])
        except KVError:
            raise bad("The key exchange key '%s' was not found in this vault." % kek_kid)
        if kver["kty"] != "RSA-HSM" or kver["key_ops"] != ["import"]:
            raise bad("The key '%s' is not a key exchange key (RSA-HSM with key_ops ['import'])."
                      % kek_kid)
        a = kver["attributes"]
        t = now()
        if not a.get("enabled", True) or (a.get("exp") and a["exp"] <= t) or \
                (a.get("nbf") and a["nbf"] > t):
            raise bad("The key exchange key '%s' is disabled, expired or not yet valid." % kek_kid)
        return store.private_key(rec, kver)


def der_sequence_length(data):
    """The encoded length (tag, length and contents) of the DER SEQUENCE data starts with, or
    None when data does not start with one: tag 0x30, a definite length in the short form
    (< 0x80) or the minimal long form (0x81..0x84 and that many length bytes, no leading zero,
    at least 0x80), never the indefinite form (0x80), and the contents within data. Parsed here
    rather than left to python-cryptography, whose tolerance of trailing bytes changed with
    its versions."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        length, head = first, 2
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(data) < 2 + n:     # 0x80: indefinite length
            return None
        lb = data[2:2 + n]
        if lb[0] == 0:                               # not the minimal encoding
            return None
        length, head = int.from_bytes(lb, "big"), 2 + n
        if length < 0x80:                            # the short form was required
            return None
    total = head + length
    return total if total <= len(data) else None


def byok_unwrap(store, is_this_vault, key_hsm):
    """The RSA private key in the BYOK transfer file key_hsm (see kek_private_key)."""
    kek_kid, enc, ct = parse_transfer_file(key_hsm)
    kek = kek_private_key(store, is_this_vault, kek_kid)
    mlen = (kek.key_size + 7) // 8
    if len(ct) <= mlen + 8:
        raise bad("The BYOK ciphertext is too short.")
    h = BYOK_ENCS[enc]
    try:
        aes_key = kek.decrypt(ct[:mlen], padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None))
    except ValueError:
        raise bad("Failed to unwrap the BYOK transfer key with the key exchange key.")
    if len(aes_key) not in (16, 24, 32):
        raise bad("The BYOK transfer key has an invalid length.")
    try:
        pkcs8 = aes_key_unwrap_with_padding(aes_key, ct[mlen:])
    except (InvalidUnwrap, ValueError):
        raise bad("Failed to unwrap the BYOK key material (AES key wrap with padding).")
    # the unwrapped plaintext must be exactly one DER SEQUENCE: nothing after it, not even the
    # zero padding a non-RFC-5649 wrap (e.g. SoftHSM 2.6.1's) leaves inside the data
    total = der_sequence_length(pkcs8)
    if total is None:
        raise bad("The BYOK key material is not a DER-encoded PKCS#8 private key.")
    if total != len(pkcs8):
        raise bad("The BYOK key material has %d bytes after its PKCS#8 private key"
                  " (the AES key wrap with padding must carry exactly the key, RFC 5649)."
                  % (len(pkcs8) - total))
    try:
        pkey = serialization.load_der_private_key(pkcs8, password=None)
    except (ValueError, TypeError):
        raise bad("The BYOK key material is not a PKCS#8 private key.")
    if not isinstance(pkey, rsa.RSAPrivateKey):
        raise bad("The BYOK key material is not an RSA private key.")
    return pkey
