"""Key material and envelopes in software, without keyplane: fingerprints (SHA-256 of the
SubjectPublicKeyInfo DER, docs/envelope.md), a file store's private keys and secret values
(docs/file-plugin.md), a secret replica's password-protected copy (docs/engine.md, "Secret
replicas"), and envelopes wrapped or opened with python3-cryptography (docs/envelope.md).
"""

import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sympadding
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def spki_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(public_key):
    return hashlib.sha256(spki_der(public_key)).hexdigest()


def fingerprint_der(der):
    """The fingerprint of a public key given as DER (re-encoded, so any RSA form works)."""
    return fingerprint(serialization.load_der_public_key(der))


def _oaep(alg):
    h = {"RSA-OAEP": hashes.SHA1, "RSA-OAEP-256": hashes.SHA256}[alg]()
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)


def make_envelope(chain, version, public_key, dek, alg):
    """An envelope of chain vVERSION made in software: what `keyplane wrap` would write."""
    w = public_key.encrypt(dek, _oaep(alg))
    return json.dumps({"kp": 1, "chain": chain, "wraps": [
        {"fpr": fingerprint(public_key), "v": version, "alg": alg,
         "w": base64.b64encode(w).decode()}]}, separators=(",", ":")) + "\n"


def envelope_wraps(text):
    """[(version, fingerprint, alg)] of an envelope's text, or None when it is not one."""
    try:
        e = json.loads(text)
        return [(w["v"], w["fpr"], w["alg"]) for w in e["wraps"]]
    except (ValueError, KeyError, TypeError):
        return None


def open_envelope(text, version, private_key):
    """The DEK of the envelope's wrap under VERSION, opened with private_key; None on failure."""
    try:
        for w in json.loads(text)["wraps"]:
            if w["v"] == version:
                return private_key.decrypt(base64.b64decode(w["w"]), _oaep(w["alg"]))
    except Exception:
        return None
    return None


class FileStore:
    """Reads one file store's directory with its passphrase (caches what decryption costs).

    Format 2 (docs/file-plugin.md): the header seals a random store key under the passphrase in
    `openssl enc -pbkdf2` form; its hex text is every private.p8's password, and HKDF-SHA256 of it
    keys the secret values ("KPS2"). Format 1: private.p8 under the passphrase itself, values
    ("KPS1") under PBKDF2 of the passphrase and the header's salt.
    """

    def __init__(self, passphrase):
        self.passphrase = passphrase.encode()
        self._unlocked = {}    # (header path, header text) -> (p8 password, values key, magic)
        self._keys = {}        # (p8 path, inode, mtime) -> private key or an error text

    def unlock(self, d):
        """(p8 password, values key, value magic) of the store in directory d."""
        h = os.path.join(d, "keyplane-store.json")
        with open(h) as f:
            text = f.read()
        k = (h, text)
        if k not in self._unlocked:
            self._unlocked[k] = self._derive(json.loads(text))
        return self._unlocked[k]

    def _derive(self, hdr):
        if hdr.get("version", 1) == 1:
            mk = hashlib.pbkdf2_hmac("sha256", self.passphrase, base64.b64decode(hdr["salt"]),
                                     hdr["iterations"], 32)
            return self.passphrase, mk, b"KPS1"
        blob = base64.b64decode(hdr["store_key"])
        if blob[:8] != b"Salted__":
            raise ValueError("store_key: no openssl salt header")
        kiv = hashlib.pbkdf2_hmac("sha256", self.passphrase, blob[8:16], hdr["iterations"], 48)
        dec = Cipher(algorithms.AES(kiv[:32]), modes.CBC(kiv[32:])).decryptor()
        unpad = sympadding.PKCS7(128).unpadder()
        text = unpad.update(dec.update(blob[16:]) + dec.finalize()) + unpad.finalize()
        sk = bytes.fromhex(text.decode())
        values = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                      info=b"keyplane-file-store values").derive(sk)
        return text, values, b"KPS2"

    def p8_password(self, d):
        return self.unlock(d)[0]

    def private_key(self, p8):
        """The private key in a version's private.p8 (STORE/keys/CHAIN/N/private.p8), or a text
        saying why not."""
        st = os.stat(p8)
        k = (p8, st.st_ino, st.st_mtime_ns)
        if k not in self._keys:
            try:
                d = p8
                for _ in range(4):
                    d = os.path.dirname(d)
                with open(p8, "rb") as f:
                    self._keys[k] = serialization.load_der_private_key(f.read(),
                                                                       self.p8_password(d))
            except Exception as e:  # a damaged or foreign file is an observation, not a crash
                self._keys[k] = "cannot open %s: %s" % (p8, e)
        return self._keys[k]

    def secret(self, d, name, version):
        """(meta, value) of secret NAME vVERSION in store directory d."""
        sd = os.path.join(d, "secrets", name, str(version))
        with open(os.path.join(sd, "meta.json")) as f:
            meta = json.load(f)
        with open(os.path.join(sd, "value.enc"), "rb") as f:
            blob = f.read()
        _, key, magic = self.unlock(d)
        if blob[:4] != magic:
            raise ValueError("%s/value.enc: not %s" % (sd, magic.decode()))
        value = AESGCM(key).decrypt(blob[4:16], blob[16:], ("%s/%s" % (name, version)).encode())
        return meta, value


class SecretCopies:
    """Opens a secret replica's copies of a chain's versions (PKCS#8 under a password kept in the
    chain's secret store); each copy is opened once (600,000 PBKDF2 iterations)."""

    def __init__(self, files):
        self.files = files
        self._cache = {}     # (value.enc path, inode, mtime) -> private key or an error text

    def open(self, bucket, passwords, chain, n, meta):
        p = os.path.join(bucket, "secrets", chain + ".key", str(n), "value.enc")
        st = os.stat(p)
        k = (p, st.st_ino, st.st_mtime_ns)
        if k not in self._cache:
            try:
                _, pem = self.files.secret(bucket, chain + ".key", n)
                m = meta.get("meta", {})
                _, pw = self.files.secret(passwords, chain + ".password",
                                          int(m["password-version"]))
                self._cache[k] = serialization.load_pem_private_key(pem, pw)
            except Exception as e:
                self._cache[k] = "cannot open %s copy v%s: %s" % (chain, n, e)
        return self._cache[k]
