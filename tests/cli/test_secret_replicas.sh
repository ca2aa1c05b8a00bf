#!/bin/sh
# A secret store as a replica: each protector version lands there as password-protected PKCS#8
# (the way SQL Server keeps a certificate's key in a bucket), the password in the chain's
# secret store; verify opens it with that password and decrypts a challenge; rotation reaches
# it too; a lost copy is a gap that apply repairs.
. "$(dirname "$0")/lib.sh"
{
    file_providers vault bucket passwords
    cat <<YAML
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: vault, exportable: true}
    replicas: [vault]
    secret_replicas: [bucket]
    secrets: passwords
YAML
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
sed '/secrets: passwords/d' "$T/policy.yaml" >"$T/nosecrets.yaml"
expect_rc 3 policy validate "$T/nosecrets.yaml"
expect_in "$T/err" "needs 'secrets: INSTANCE' to keep the passwords"

expect_rc 0 $P plan
expect_in "$T/out" "create  tde v1 in vault"
expect_rc 0 $P apply --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
kinds = sorted(r["action"] for r in d["results"])
assert d["failed"] == 0 and kinds == ["create", "secret"], d
' "$T/out"
expect_rc 0 $P apply
expect_in "$T/out" "nothing to do"
expect_rc 0 $P verify --json
"$PY" -c '
import json, sys
c = json.load(open(sys.argv[1]))["chains"][0]["versions"][0]["replicas"]
assert c["bucket"]["state"] == "ok" and "opened with its password" in c["bucket"]["detail"], c
assert c["vault"]["state"] == "ok", c
' "$T/out"
# The bucket holds PKCS#8 encrypted under a password the password store keeps: no plaintext.
grep -r -q "BEGIN PRIVATE KEY" "$T/bucket" && fail "plaintext private key in the bucket"

# Rotation reaches the secret replica.
expect_rc 0 $P rotate tde --stage
expect_rc 0 $P rotate tde --activate
expect_rc 0 $P verify --json
"$PY" -c '
import json, sys
rows = json.load(open(sys.argv[1]))["chains"][0]["versions"]
assert [r["version"] for r in rows] == [1, 2], rows
assert all(r["replicas"]["bucket"]["state"] == "ok" for r in rows), rows
' "$T/out"

# A lost bucket shows as a gap (unreachable: its store is gone, not empty); once a new one is
# made (init), apply puts the copies back.
rm -rf "$T/bucket"
expect_rc 1 $P verify
expect_in "$T/err" "tde v1 in bucket: UNREACHABLE"
expect_rc 1 $P apply
[ ! -e "$T/bucket" ] || fail "apply made the lost bucket's store"
expect_rc 0 $P init bucket
expect_rc 0 $P apply
expect_rc 0 $P verify
# Recovery without keyplane, as docs/file-plugin.md says: each store key out of its header with
# openssl enc, the values with HKDF and AES-GCM (Python's cryptography), the key with openssl.
for s in bucket passwords; do
    h="$T/$s/keyplane-store.json"
    iter=$(sed -n 's/.*"iterations": \([0-9]*\).*/\1/p' "$h")
    sed -n 's/.*"store_key": "\([^"]*\)".*/\1/p' "$h" | openssl base64 -d -A >"$T/sk.$s.enc"
    openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter "$iter" -pass env:KP_TEST_PASS \
        -in "$T/sk.$s.enc" -out "$T/sk.$s" || fail "openssl enc cannot open the store key of $s"
done
"$PY" - "$T" <<'PY'
import sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
t = sys.argv[1]
def value(store, name, version):
    store_key = bytes.fromhex(open(f"{t}/sk.{store}").read())
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"keyplane-file-store values").derive(store_key)
    blob = open(f"{t}/{store}/secrets/{name}/{version}/value.enc", "rb").read()
    assert blob[:4] == b"KPS2", blob[:4]
    return AESGCM(key).decrypt(blob[4:16], blob[16:], f"{name}/{version}".encode())
import json, os
# The copy of tde v2 in the bucket, and the password version its metadata names.
for v in os.listdir(f"{t}/bucket/secrets/tde.key"):
    meta = json.load(open(f"{t}/bucket/secrets/tde.key/{v}/meta.json"))["meta"]
    if meta["kp-version"] == "2":
        open(f"{t}/recovered.p8", "wb").write(value("bucket", "tde.key", int(v)))
        open(f"{t}/recovered.pass", "wb").write(
            value("passwords", "tde.password", int(meta["password-version"])))
PY
openssl pkey -in "$T/recovered.p8" -passin "file:$T/recovered.pass" -pubout -outform DER \
    -out "$T/recovered.der" || fail "the recovered PKCS#8 does not open with its password"
cmp "$T/recovered.der" "$T/vault/keys/tde/2/public.der" ||
    fail "the key recovered from the bucket is not tde v2"

# The password store losing its passwords makes the copies unusable: verify says so.
rm -rf "$T/passwords"
expect_rc 1 $P verify
expect_in "$T/err" "in bucket: UNUSABLE"
echo "ok: secret replicas"
