"""KMS's cryptography, free of requests and records: the emulator's own symmetric ciphertext
format, RSA-OAEP with the asymmetric keys, and the unwrapping of imported key material.

Symmetric ciphertext (the emulator's own, versioned; AWS's is opaque too):
    b"KPK" | version 0x01 | key id (36 ASCII bytes) | nonce (12) | AES-256-GCM ciphertext+tag
under the key's 32-byte secret, with AAD = the first 40 bytes (header and key id) followed by the
encryption context as canonical JSON (sorted keys, no spaces). A changed key id or context fails
the tag: InvalidCiphertextException.
"""

import functools
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

MAGIC = b"KPK\x01"
KEY_ID_LEN = 36
HEADER_LEN = len(MAGIC) + KEY_ID_LEN
NONCE_LEN = 12
RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
OAEP_HASHES = {"RSAES_OAEP_SHA_1": hashes.SHA1, "RSAES_OAEP_SHA_256": hashes.SHA256,
               "RSA_AES_KEY_WRAP_SHA_1": hashes.SHA1, "RSA_AES_KEY_WRAP_SHA_256": hashes.SHA256}


class CryptoError(Exception):
    """Ciphertext or wrapped material that does not decrypt."""


def _aad(header, context):
    return header + json.dumps(context or {}, sort_keys=True, separators=(",", ":")).encode()


def sym_encrypt(secret, key_id, plaintext, context):
    header = MAGIC + key_id.encode("ascii")
    nonce = os.urandom(NONCE_LEN)
    return header + nonce + AESGCM(secret).encrypt(nonce, plaintext, _aad(header, context))


def sym_key_id(blob):
    """The key id a symmetric ciphertext names, or None when blob is not one."""
    if len(blob) < HEADER_LEN + NONCE_LEN + 16 or not blob.startswith(MAGIC):
        return None
    try:
        return blob[len(MAGIC):HEADER_LEN].decode("ascii")
    except UnicodeDecodeError:
        return None


def sym_decrypt(secret, blob, context):
    header, nonce, body = blob[:HEADER_LEN], blob[HEADER_LEN:HEADER_LEN + NONCE_LEN], \
        blob[HEADER_LEN + NONCE_LEN:]
    try:
        return AESGCM(secret).decrypt(nonce, body, _aad(header, context))
    except InvalidTag:
        raise CryptoError("tag mismatch")


def oaep(alg):
    h = OAEP_HASHES[alg]
    return padding.OAEP(mgf=padding.MGF1(algorithm=h()), algorithm=h(), label=None)


def new_rsa(spec):
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[spec])


def pkcs8(private_key):
    return private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


@functools.lru_cache(maxsize=64)
def load_pkcs8(der):
    """The private key of PKCS#8 DER, parsed once per DER (the key objects are immutable and may
    be shared between threads): loading runs OpenSSL's RSA key check, 40 to 90 ms for RSA-2048,
    which every Decrypt, Encrypt and GetPublicKey of an RSA key would otherwise pay, a delay no
    KMS has (the private operation itself is under a millisecond)."""
    return serialization.load_der_private_key(der, password=None)


def spki(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def max_plaintext(spec, alg):
    """RSA-OAEP's largest message: k - 2 hLen - 2."""
    return RSA_BITS[spec] // 8 - 2 * OAEP_HASHES[alg].digest_size - 2


def rsa_encrypt(private_key, alg, plaintext):
    return private_key.public_key().encrypt(plaintext, oaep(alg))


def rsa_decrypt(private_key, alg, blob):
    try:
        return private_key.decrypt(blob, oaep(alg))
    except ValueError:
        raise CryptoError("OAEP decryption failed")


def unwrap(wrapping_key, alg, blob):
    """The key material of EncryptedKeyMaterial under wrapping_key (the import's private half):
    RSAES_OAEP_*: RSA-OAEP of the material itself; RSA_AES_KEY_WRAP_*: RSA-OAEP of an ephemeral
    AES key (the first modulus-size bytes), then that key's RFC 5649 wrap of the material."""
    k = wrapping_key.key_size // 8
    if alg.startswith("RSAES_OAEP"):
        return rsa_decrypt(wrapping_key, alg, blob)
    if len(blob) <= k:
        raise CryptoError("too short for RSA_AES_KEY_WRAP")
    aes_key = rsa_decrypt(wrapping_key, alg, blob[:k])
    if len(aes_key) not in (16, 24, 32):
        raise CryptoError("the ephemeral AES key is not 128, 192 or 256 bits")
    try:
        return aes_key_unwrap_with_padding(aes_key, blob[k:])
    except (InvalidUnwrap, ValueError):
        raise CryptoError("AES key unwrap failed")


def rsa_spec_of(der):
    """(private key, KeySpec) of PKCS#8 DER, or CryptoError when it is not an RSA key of a KMS
    size."""
    try:
        key = load_pkcs8(der)
    except (ValueError, TypeError):
        raise CryptoError("not a PKCS#8 private key")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError("not an RSA private key")
    for spec, bits in RSA_BITS.items():
        if key.key_size == bits:
            return key, spec
    raise CryptoError("RSA key of %d bits" % key.key_size)
