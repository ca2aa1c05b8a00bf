#!/bin/sh
# Secret replicas are restore sources and count as holders (issue 11, finding 4). A chain kept in
# one keystore (a) and, as password-protected PKCS#8, in a secret replica (bucket), the password
# in the chain's secret store. a is lost and re-created empty: plan proposes no new v1 (the
# bucket holds the chain), apply makes none, and the bucket's word alone (1 of 2 stores, not
# the origin) is not enough to copy it back; `restore --to a --from bucket` opens the bucket's
# copy with its password and rebuilds a, which then unwraps the old envelope. The bucket holds
# one key under v1 throughout, and a copy whose metadata names another key is refused before
# import.
. "$(dirname "$0")/lib.sh"
{
    file_providers a bucket sm
    cat <<YAML
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: a, exportable: true}
    replicas: [a]
    secret_replicas: [bucket]
    secrets: sm
    algorithm: RSA-OAEP
YAML
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
# The fingerprints the bucket holds under v1, from its metadata files.
bucket_v1() {
    "$PY" - "$T/bucket/secrets/tde.key" <<'PY'
import json, os, sys
root = sys.argv[1]
fprs = set()
for n in os.listdir(root):
    meta = json.load(open(os.path.join(root, n, "meta.json")))["meta"]
    if meta["kp-version"] == "1":
        fprs.add(meta["fingerprint"])
print(len(fprs))
PY
}
expect_rc 0 $P init
expect_rc 0 $P apply
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"
[ "$(bucket_v1)" = 1 ] || fail "the bucket does not hold one v1"

# a is lost; an operator re-creates it empty.
rm -rf "$T/a"
expect_rc 0 $P init a
expect_rc 1 $P plan
if grep -q "create" "$T/out"; then fail "plan proposes a new protector: $(cat "$T/out")"; fi
expect_in "$T/out" "bucket: holds tde v1"
expect_rc 1 $P apply
[ ! -d "$T/a/keys/tde/1" ] || fail "apply made a new v1 in a"
[ "$(bucket_v1)" = 1 ] || fail "the bucket now holds two keys as v1"

# Without --from: one store's word is not taken, and the warning says what to do.
expect_rc 1 $P restore tde --to a
expect_in "$T/err" "(name the store you trust with --from)"
[ ! -d "$T/a/keys/tde/1" ] || fail "restore copied on one store's word"
expect_rc 0 $P restore tde --to a --from bucket --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["verified"] and len(d["results"]) == 1 and d["results"][0]["source"] == "bucket", d
' "$T/out"
expect_rc 0 $P unwrap --in "$T/env" --replica a --out "$T/back"
cmp "$T/dek" "$T/back" || fail "the restored a unwrapped another DEK"
expect_rc 0 $P verify
[ "$(bucket_v1)" = 1 ] || fail "the bucket holds two keys as v1 after restore"

# Without the password store the copy cannot be opened: the restore fails and writes nothing.
rm -rf "$T/a"
expect_rc 0 $P init a
mv "$T/sm" "$T/sm.away"
expect_rc 6 $P restore tde --to a --from bucket
expect_in "$T/err" "copy tde v1 -> a: sm: file store"
[ ! -d "$T/a/keys/tde/1" ] || fail "a restore without the password store wrote a key"
mv "$T/sm.away" "$T/sm"

# A copy whose metadata names another fingerprint than the key inside is refused before import.
cp -r "$T/bucket" "$T/bucket.orig"
"$PY" - "$T/bucket/secrets/tde.key" <<'PY'
import json, os, sys
for n in os.listdir(sys.argv[1]):
    p = os.path.join(sys.argv[1], n, "meta.json")
    m = json.load(open(p))
    m["meta"]["fingerprint"] = "ab" * 32
    json.dump(m, open(p, "w"))
PY
expect_rc 7 $P restore tde --to a --from bucket
expect_in "$T/err" "bucket: the copy of tde v1 is another key"
[ ! -d "$T/a/keys/tde/1" ] || fail "a copy with another key was imported"
rm -rf "$T/bucket"
mv "$T/bucket.orig" "$T/bucket"
expect_rc 0 $P restore tde --to a --from bucket
echo "ok: secret replicas are restore sources"
