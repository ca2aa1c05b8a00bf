"""KMS keys with imported material (Origin EXTERNAL): GetParametersForImport, ImportKeyMaterial,
DeleteImportedKeyMaterial.

GetParametersForImport makes a fresh RSA wrapping key pair and an opaque import token bound to the
KMS key, the wrapping algorithm and the pair, valid `lifetime` seconds (24 h, as AWS; the
control setting `kms_import_token_lifetime` shortens it for tests). ImportKeyMaterial unwraps
with the token's private half, checks the material against the key's KeySpec and any material
imported before (the same material only, forever: IncorrectKeyMaterialException), and enables the
key.

State: STATE/kms/imports/<sha256 of the token>.json {"KeyId", "alg", "wrapping" (PKCS#8 hex),
"valid_to"}; kept until it expires, so a token survives a restart as it survives in AWS.
"""

import hashlib
import os
import time

from common.persist import RecordDir

from . import kms_crypto as kc
from .errors import kms_error
from .jsonproto import BLOB, S

LIFETIME = 24 * 3600
WRAPPING_ALGS = ("RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256",
                 "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "SM2PKE")
GET_PARAMETERS = {"KeyId": S(min=1, max=2048, required=True),
                  "WrappingAlgorithm": S(enum=list(WRAPPING_ALGS), required=True),
                  "WrappingKeySpec": S(enum=["RSA_2048", "RSA_3072", "RSA_4096", "SM2"],
                                       required=True)}
IMPORT = {"KeyId": S(min=1, max=2048, required=True),
          "ImportToken": BLOB(min=1, max=6144, required=True),
          "EncryptedKeyMaterial": BLOB(min=1, max=6144, required=True),
          "ValidTo": {"type": "timestamp"},
          "ExpirationModel": S(enum=["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"]),
          "ImportType": S(enum=["NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"]),
          "KeyMaterialDescription": S(min=0, max=256), "KeyMaterialId": S(min=64, max=64)}
DELETE = {"KeyId": S(min=1, max=2048, required=True), "KeyMaterialId": S(min=64, max=64)}


def _digest(b):
    return hashlib.sha256(b).hexdigest()


WRAPPING_RING = 4


class ImportOps:
    def __init__(self, kms, state_dir):
        self.kms = kms
        self.lifetime = LIFETIME
        self.dir = RecordDir(os.path.join(state_dir, "kms", "imports"))
        now = time.time()
        self.tokens = {}
        # A ring of WRAPPING_RING wrapping keys per KeySpec, made as first needed and then
        # handed out in turn: an RSA-4096 key costs the emulator about a second to make, and
        # every import asks for parameters. Two answers in a row never share a wrapping key,
        # and each token is bound to its own key, algorithm and wrapping key.
        self.wrapping_keys = {}
        self.wrapping_next = {}
        self.ring = WRAPPING_RING
        for t in self.dir.load():
            if t["valid_to"] > now:
                self.tokens[t["id"]] = t
            else:
                self.dir.remove(t["id"])

    def set_ring(self, n):
        """kms_wrapping_ring: n wrapping keys per spec from now on (1: one key serves every
        answer, for tests that import many keys and time them)."""
        with self.kms.lock:
            self.ring = n
            for spec in self.wrapping_keys:
                del self.wrapping_keys[spec][n:]
                self.wrapping_next[spec] = 0

    def operations(self):
        return {"GetParametersForImport": (self.get_parameters, GET_PARAMETERS),
                "ImportKeyMaterial": (self.import_material, IMPORT),
                "DeleteImportedKeyMaterial": (self.delete_material, DELETE)}

    def _external_key(self, ref):
        k = self.kms.key_for(ref)
        if k["Origin"] != "EXTERNAL":
            raise kms_error("UnsupportedOperationException", "%s origin is invalid for this"
                            " operation." % k["Origin"])
        if k["KeyState"] in ("PendingDeletion", "Unavailable"):
            raise kms_error("KMSInvalidStateException", "%s is %s" % (k["Arn"], k["KeyState"]))
        return k

    def get_parameters(self, p, principal):
        alg, wspec = p["WrappingAlgorithm"], p["WrappingKeySpec"]
        k = self._external_key(p["KeyId"])
        if wspec == "SM2" or alg == "SM2PKE":
            raise kms_error("ValidationException", "SM2 is only available in China Regions.")
        if alg == "RSAES_PKCS1_V1_5":
            raise kms_error("ValidationException", "The RSAES_PKCS1_V1_5 wrapping algorithm is no"
                            " longer supported.")
        if k["KeySpec"] in kc.RSA_BITS and not alg.startswith("RSA_AES_KEY_WRAP"):
            # an RSA private key does not fit in one OAEP block *(wording inferred)*
            raise kms_error("ValidationException", "Wrapping algorithm %s cannot be used to import"
                            " key material of KeySpec %s; use RSA_AES_KEY_WRAP_SHA_1 or"
                            " RSA_AES_KEY_WRAP_SHA_256." % (alg, k["KeySpec"]))
        with self.kms.lock:
            ring = self.wrapping_keys.setdefault(wspec, [])
            i = self.wrapping_next.get(wspec, 0)
            if i == len(ring):
                ring.append(kc.new_rsa(wspec))
            wrapping = ring[i]
            self.wrapping_next[wspec] = (i + 1) % self.ring
        token = b"KPIT\x01" + os.urandom(123)
        tid = _digest(token)
        rec = {"id": tid, "KeyId": k["KeyId"], "alg": alg, "wrapping": kc.pkcs8(wrapping).hex(),
               "valid_to": time.time() + self.lifetime}
        with self.kms.lock:
            self.tokens[tid] = rec
            self.dir.save(tid, rec)
        return {"KeyId": k["Arn"], "ImportToken": token, "PublicKey": kc.spki(wrapping),
                "ParametersValidTo": rec["valid_to"]}

    def import_material(self, p, principal):
        k = self._external_key(p["KeyId"])
        rec = self.tokens.get(_digest(p["ImportToken"]))
        if rec is None or rec["KeyId"] != k["KeyId"]:
            raise kms_error("InvalidImportTokenException", "Import token is invalid or does not"
                            " belong to this key.")
        if rec["valid_to"] <= time.time():
            raise kms_error("ExpiredImportTokenException", "The import token has expired.")
        model = p.get("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
        valid_to = p.get("ValidTo")
        if model == "KEY_MATERIAL_EXPIRES":
            if k["KeySpec"] != "SYMMETRIC_DEFAULT":
                raise kms_error("ValidationException", "ExpirationModel KEY_MATERIAL_EXPIRES is"
                                " supported only for symmetric encryption keys.")
            if valid_to is None:
                raise kms_error("ValidationException", "A ValidTo date must be specified when"
                                " ExpirationModel is KEY_MATERIAL_EXPIRES.")
            if valid_to <= time.time():
                raise kms_error("ValidationException", "ValidTo must be in the future.")
        elif valid_to is not None:
            raise kms_error("ValidationException", "ValidTo must not be specified when"
                            " ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.")
        wrapping = kc.load_pkcs8(bytes.fromhex(rec["wrapping"]))
        try:
            material = kc.unwrap(wrapping, rec["alg"], p["EncryptedKeyMaterial"])
        except kc.CryptoError:
            raise kms_error("InvalidCiphertextException", "The encrypted key material could not be"
                            " decrypted with the import parameters (wrapping key and algorithm)"
                            " of this import token.")
        fields = self._check_material(k, material)
        with self.kms.lock:
            k = self.kms.keys[k["KeyId"]]
            seen = k.get("imported_digest")
            if seen is not None and seen != fields["imported_digest"]:
                raise kms_error("IncorrectKeyMaterialException", "The key material in the request is"
                                " not the same key material that was previously imported into"
                                " this KMS key.")
            k.update(fields)
            state = "Disabled" if k["KeyState"] == "Disabled" else "Enabled"   # a disabled key stays so
            k.update({"KeyState": state, "Enabled": state == "Enabled", "ExpirationModel": model})
            k.pop("ValidTo", None)
            if valid_to is not None:
                k["ValidTo"] = valid_to
            self.kms.save_key(k)
            self.tokens.pop(rec["id"], None)
            self.dir.remove(rec["id"])
        return {"KeyId": k["Arn"]}

    @staticmethod
    def _check_material(k, material):
        if k["KeySpec"] == "SYMMETRIC_DEFAULT":
            if len(material) != 32:
                raise kms_error("IncorrectKeyMaterialException", "Symmetric key material must be"
                                " 256 bits (32 bytes).")
            return {"material": material.hex(), "imported_digest": _digest(material)}
        try:
            key, spec = kc.rsa_spec_of(material)
        except kc.CryptoError as e:
            raise kms_error("IncorrectKeyMaterialException", "The key material is not a valid"
                            " private key for KeySpec %s (%s)." % (k["KeySpec"], e))
        if spec != k["KeySpec"]:
            raise kms_error("IncorrectKeyMaterialException", "The key material is %s; the KMS key's"
                            " KeySpec is %s." % (spec, k["KeySpec"]))
        return {"rsa": kc.pkcs8(key).hex(), "imported_digest": _digest(kc.spki(key))}

    def delete_material(self, p, principal):
        k = self._external_key(p["KeyId"])
        with self.kms.lock:
            k = self.kms.keys[k["KeyId"]]
            for f in ("material", "rsa", "ValidTo"):
                k.pop(f, None)
            k.update({"KeyState": "PendingImport", "Enabled": False})
            self.kms.save_key(k)
        return {"KeyId": k["Arn"]}
