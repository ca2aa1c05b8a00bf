"""KMS's cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
GenerateDataKeyWithoutPlaintext, GetPublicKey.

Symmetric keys (SYMMETRIC_DEFAULT): the ciphertext names its key and binds the encryption context
(kms_crypto), so Decrypt needs no KeyId; a KeyId naming another key is IncorrectKeyException, a
changed context or a spoiled blob InvalidCiphertextException. RSA keys (ENCRYPT_DECRYPT): RSA-OAEP
with SHA-1 or SHA-256 (MGF1 the same), raw ciphertext as AWS gives it; Decrypt needs KeyId (without
it the blob is taken for a symmetric one: InvalidCiphertextException) and the EncryptionAlgorithm
(SYMMETRIC_DEFAULT with an RSA key, or RSAES_* with a symmetric key: InvalidKeyUsageException).
"""

import os

from . import kms_crypto as kc
from .errors import kms_error
from .jsonproto import BLOB, B, I, L, S

ALGS = ["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"]
RSA_ALGS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
KEY_ID = S(min=1, max=2048)
CONTEXT = {"type": "map", "value": S()}
GRANTS = L(S(min=1, max=8192), max=10)
RECIPIENT = {"type": "structure", "members": {"KeyEncryptionAlgorithm": S(),
                                              "AttestationDocument": BLOB(min=1, max=262144)}}
ENCRYPT = {"KeyId": dict(KEY_ID, required=True), "Plaintext": BLOB(min=1, max=4096, required=True,
                                                                    sensitive=True),
           "EncryptionContext": CONTEXT, "GrantTokens": GRANTS, "EncryptionAlgorithm": S(enum=ALGS),
           "DryRun": B()}
DECRYPT = {"CiphertextBlob": BLOB(min=1, max=6144), "EncryptionContext": CONTEXT,
           "GrantTokens": GRANTS, "KeyId": KEY_ID, "EncryptionAlgorithm": S(enum=ALGS),
           "Recipient": RECIPIENT, "DryRun": B()}
REENCRYPT = {"CiphertextBlob": BLOB(min=1, max=6144), "SourceEncryptionContext": CONTEXT,
             "SourceKeyId": KEY_ID, "DestinationKeyId": dict(KEY_ID, required=True),
             "DestinationEncryptionContext": CONTEXT, "SourceEncryptionAlgorithm": S(enum=ALGS),
             "DestinationEncryptionAlgorithm": S(enum=ALGS), "GrantTokens": GRANTS, "DryRun": B()}
DATA_KEY = {"KeyId": dict(KEY_ID, required=True), "EncryptionContext": CONTEXT,
            "NumberOfBytes": I(min=1, max=1024), "KeySpec": S(enum=["AES_256", "AES_128"]),
            "GrantTokens": GRANTS, "Recipient": RECIPIENT, "DryRun": B()}
DATA_KEY_NP = {k: v for k, v in DATA_KEY.items() if k != "Recipient"}
PUBLIC_KEY = {"KeyId": dict(KEY_ID, required=True), "GrantTokens": GRANTS}


def _invalid_ciphertext():
    return kms_error("InvalidCiphertextException", "")


class DataOps:
    def __init__(self, kms):
        self.kms = kms

    def operations(self):
        return {"Encrypt": (self.encrypt, ENCRYPT), "Decrypt": (self.decrypt, DECRYPT),
                "ReEncrypt": (self.reencrypt, REENCRYPT),
                "GenerateDataKey": (self.generate_data_key, DATA_KEY),
                "GenerateDataKeyWithoutPlaintext": (self.generate_data_key_np, DATA_KEY_NP),
                "GetPublicKey": (self.get_public_key, PUBLIC_KEY)}

    # ---- helpers ----
    def _usable(self, ref):
        """The key record ref names, if its state lets it be used."""
        k = self.kms.key_for(ref)
        state = k["KeyState"]
        if state == "Disabled":
            raise kms_error("DisabledException", "%s is disabled." % k["Arn"])
        if state != "Enabled":
            raise kms_error("KMSInvalidStateException", "%s is %s" % (k["Arn"], state))
        if k["KeyUsage"] != "ENCRYPT_DECRYPT":
            raise kms_error("InvalidKeyUsageException", "%s key usage is %s which is not valid for"
                            " this operation." % (k["Arn"], k["KeyUsage"]))
        return k

    @staticmethod
    def _check_alg(k, alg):
        if k["KeySpec"] == "SYMMETRIC_DEFAULT":
            ok = alg == "SYMMETRIC_DEFAULT"
        else:
            ok = alg in RSA_ALGS
        if not ok:
            raise kms_error("InvalidKeyUsageException", "The operation failed because the"
                            " specified KMS key %s does not support the encryption algorithm %s."
                            % (k["Arn"], alg))

    def _encrypt(self, k, plaintext, context, alg):
        self._check_alg(k, alg)
        if k["KeySpec"] == "SYMMETRIC_DEFAULT":
            return kc.sym_encrypt(bytes.fromhex(k["material"]), k["KeyId"], plaintext, context)
        if context:
            raise kms_error("ValidationException", "EncryptionContext is not supported with"
                            " asymmetric KMS keys.")
        if len(plaintext) > kc.max_plaintext(k["KeySpec"], alg):
            raise kms_error("ValidationException", "Plaintext too large for %s with %s (at most %d"
                            " bytes)." % (k["KeySpec"], alg,
                                          kc.max_plaintext(k["KeySpec"], alg)))
        return kc.rsa_encrypt(kc.load_pkcs8(bytes.fromhex(k["rsa"])), alg, plaintext)

    def _decrypt(self, blob, context, key_ref, alg):
        """(key record, plaintext)."""
        alg = alg or "SYMMETRIC_DEFAULT"
        if key_ref is None or alg == "SYMMETRIC_DEFAULT":
            if alg != "SYMMETRIC_DEFAULT":
                raise kms_error("ValidationException", "KeyId is required for asymmetric"
                                " EncryptionAlgorithm %s." % alg)
            named = self.kms.key_for(key_ref) if key_ref is not None else None
            if named is not None and named["KeySpec"] != "SYMMETRIC_DEFAULT":
                self._usable(key_ref)
                self._check_alg(named, alg)
            key_id = kc.sym_key_id(blob)
            if key_id is None or key_id not in self.kms.keys:
                raise _invalid_ciphertext()
            if named is not None and named["KeyId"] != key_id:
                raise kms_error("IncorrectKeyException", "The key ID in the request does not"
                                " identify a CMK that can perform this operation.")
            k = self._usable(key_id)
            try:
                return k, kc.sym_decrypt(bytes.fromhex(k["material"]), blob, context)
            except kc.CryptoError:
                raise _invalid_ciphertext()
        k = self._usable(key_ref)
        self._check_alg(k, alg)
        if context:
            raise kms_error("ValidationException", "EncryptionContext is not supported with"
                            " asymmetric KMS keys.")
        try:
            return k, kc.rsa_decrypt(kc.load_pkcs8(bytes.fromhex(k["rsa"])), alg, blob)
        except kc.CryptoError:
            raise _invalid_ciphertext()

    @staticmethod
    def _need_blob(p):
        if "CiphertextBlob" not in p:
            raise kms_error("ValidationException", "1 validation error detected: Value null at"
                            " 'ciphertextBlob' failed to satisfy constraint: Member must not be null")
        return p["CiphertextBlob"]

    # ---- the API ----
    def encrypt(self, p, principal):
        k = self._usable(p["KeyId"])
        alg = p.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
        blob = self._encrypt(k, p["Plaintext"], p.get("EncryptionContext"), alg)
        return {"CiphertextBlob": blob, "KeyId": k["Arn"], "EncryptionAlgorithm": alg}

    def decrypt(self, p, principal):
        k, plain = self._decrypt(self._need_blob(p), p.get("EncryptionContext"), p.get("KeyId"),
                                 p.get("EncryptionAlgorithm"))
        return {"KeyId": k["Arn"], "Plaintext": plain,
                "EncryptionAlgorithm": p.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")}

    def reencrypt(self, p, principal):
        src, plain = self._decrypt(self._need_blob(p), p.get("SourceEncryptionContext"),
                                   p.get("SourceKeyId"), p.get("SourceEncryptionAlgorithm"))
        dst = self._usable(p["DestinationKeyId"])
        alg = p.get("DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT")
        blob = self._encrypt(dst, plain, p.get("DestinationEncryptionContext"), alg)
        return {"CiphertextBlob": blob, "SourceKeyId": src["Arn"], "KeyId": dst["Arn"],
                "SourceEncryptionAlgorithm": p.get("SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT"),
                "DestinationEncryptionAlgorithm": alg}

    def _data_key(self, p):
        spec, n = p.get("KeySpec"), p.get("NumberOfBytes")
        if spec is None and n is None:
            raise kms_error("ValidationException", "Please specify either number of bytes or key"
                            " spec.")
        if spec is not None and n is not None:
            raise kms_error("ValidationException", "Please specify either number of bytes or key"
                            " spec, not both.")
        k = self._usable(p["KeyId"])
        if k["KeySpec"] != "SYMMETRIC_DEFAULT":
            raise kms_error("InvalidKeyUsageException", "%s key spec is %s, which is not valid for"
                            " data keys." % (k["Arn"], k["KeySpec"]))
        plain = os.urandom(n if n is not None else (32 if spec == "AES_256" else 16))
        blob = kc.sym_encrypt(bytes.fromhex(k["material"]), k["KeyId"], plain,
                              p.get("EncryptionContext"))
        return k, plain, blob

    def generate_data_key(self, p, principal):
        if "Recipient" in p:
            raise kms_error("UnsupportedOperationException", "Recipient (Nitro Enclaves) is not"
                            " emulated.")
        k, plain, blob = self._data_key(p)
        return {"CiphertextBlob": blob, "Plaintext": plain, "KeyId": k["Arn"]}

    def generate_data_key_np(self, p, principal):
        k, _, blob = self._data_key(p)
        return {"CiphertextBlob": blob, "KeyId": k["Arn"]}

    def get_public_key(self, p, principal):
        k = self.kms.key_for(p["KeyId"])
        if k["KeySpec"] == "SYMMETRIC_DEFAULT":
            raise kms_error("UnsupportedOperationException", "%s key spec SYMMETRIC_DEFAULT has no"
                            " public key." % k["Arn"])
        if k["KeyState"] == "Disabled":
            raise kms_error("DisabledException", "%s is disabled." % k["Arn"])
        if k["KeyState"] != "Enabled":
            raise kms_error("KMSInvalidStateException", "%s is %s" % (k["Arn"], k["KeyState"]))
        out = {"KeyId": k["Arn"], "PublicKey": kc.spki(kc.load_pkcs8(bytes.fromhex(k["rsa"]))),
               "CustomerMasterKeySpec": k["KeySpec"], "KeySpec": k["KeySpec"],
               "KeyUsage": k["KeyUsage"], "EncryptionAlgorithms": list(RSA_ALGS)}
        self.kms.public_key_answered(p["KeyId"])
        return out
