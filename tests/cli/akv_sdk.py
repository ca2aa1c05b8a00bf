#!/usr/bin/python3
"""The official Azure SDK (python3-azure) as an independent reader of the emulated vaults.

    akv_sdk.py show   VAULT_URL CA NAME         JSON: every version's kid, kty, tags, SPKI PEM
    akv_sdk.py delete VAULT_URL CA NAME         soft-deletes NAME (and waits until it is done)
    akv_sdk.py purge  VAULT_URL CA NAME         purges a soft-deleted NAME
    akv_sdk.py unwrap VAULT_URL CA NAME VERSION ALG HEXCT   prints the unwrapped key in hex
    akv_sdk.py kek    VAULT_URL CA NAME PEM     makes a key-exchange key (RSA-HSM, key_ops
                                                import) as `az keyvault key create --ops import`
                                                does; writes its public key, prints its kid
    akv_sdk.py untag  VAULT_URL CA NAME VERSION TAG    removes one tag of a version (as if an
                                                older keyplane had made it)
    akv_sdk.py import-byok VAULT_URL CA NAME FILE   imports a .byok file the way `az keyvault key
                                                import --byok-file` does (the file's bytes as the
                                                JWK's t, kty RSA-HSM); prints the new key's PEM

The credentials are the emulator defaults of vaultctl.py (imported from it); the authority is the
emulator itself. Run with Debian's /usr/bin/python3, the only interpreter that sees python3-azure.
"""
import json
import os
import sys

from azure.identity import ClientSecretCredential
from azure.keyvault.keys import JsonWebKey, KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "emulators"))
from azure_keyvault.vaultctl import DEFAULT_CLIENT, DEFAULT_TENANT  # noqa: E402

CLIENT_ID, _, SECRET = DEFAULT_CLIENT.partition(":")


def clients(url, ca):
    cred = ClientSecretCredential(DEFAULT_TENANT, CLIENT_ID, SECRET, authority=url,
                                  instance_discovery=False, connection_verify=ca)
    return cred, KeyClient(url, cred, verify_challenge_resource=False, connection_verify=ca)


def pem(jwk):
    n = int.from_bytes(jwk.n, "big")
    e = int.from_bytes(jwk.e, "big")
    return RSAPublicNumbers(e, n).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def main(argv):
    cmd, url, ca, name = argv[1:5]
    cred, kc = clients(url, ca)
    if cmd == "show":
        out = []
        for p in kc.list_properties_of_key_versions(name):
            k = kc.get_key(name, p.version)
            out.append({"kid": k.id, "version": p.version, "kty": str(k.key_type),
                        "tags": k.properties.tags or {}, "enabled": k.properties.enabled,
                        "expires": str(k.properties.expires_on) if k.properties.expires_on else None,
                        "key_ops": [str(o) for o in k.key_operations], "pem": pem(k.key)})
        print(json.dumps(out))
    elif cmd == "delete":
        kc.begin_delete_key(name).wait()
    elif cmd == "purge":
        kc.purge_deleted_key(name)
    elif cmd == "unwrap":
        version, alg, hexct = argv[5:8]
        key = kc.get_key(name, version)
        cc = CryptographyClient(key, cred, verify_challenge_resource=False, connection_verify=ca)
        res = cc.unwrap_key(KeyWrapAlgorithm(alg), bytes.fromhex(hexct))
        print(res.key.hex())
    elif cmd == "kek":
        k = kc.create_rsa_key(name, size=2048, hardware_protected=True, key_operations=["import"])
        with open(argv[5], "w") as f:
            f.write(pem(k.key))
        print(k.id)
    elif cmd == "untag":
        version, tag = argv[5:7]
        tags = dict(kc.get_key(name, version).properties.tags or {})
        tags.pop(tag)
        kc.update_key_properties(name, version, tags=tags)
    elif cmd == "import-byok":
        with open(argv[5], "rb") as f:
            byok = f.read()
        k = kc.import_key(name, JsonWebKey(kty="RSA-HSM", t=byok, key_ops=["wrapKey", "unwrapKey"]))
        print(pem(k.key), end="")
    else:
        print("unknown command", cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
