#!/bin/sh
# Issue 11, finding 5: a copy checks the key before it becomes visible anywhere. The origin's
# keys/tde/1/private.p8 is replaced by another key of the same store while public.der and
# meta.json still give v1's fingerprint. apply to two new stores (a file region and an HSM
# escrow) refuses both copies before any import (the source refuses to export a private key
# that does not match its recorded public key, and the core checks an exported key against the
# version's fingerprint before the import): neither target holds anything under v1, and no key
# material is printed. Once the source is repaired, apply copies the right key and verify is ok
# (before the fix the target got the wrong key under v1 and verify showed MISMATCH for good).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
hsm_policy hsm 520417
cat >>"$T/policy.yaml" <<YAML
  a: {plugin: file, path: a, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
  b: {plugin: file, path: b, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
  c: {plugin: file, path: c, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: a, exportable: true}
    replicas: [a, b]
    algorithm: RSA-OAEP
  other:
    protector: {type: rsa, bits: 2048, origin: a, exportable: true}
    replicas: [a]
    algorithm: RSA-OAEP
YAML
# Later the chain grows: a new region c and the HSM escrow.
sed 's/^    replicas: \[a, b\]$/    replicas: [a, b, c]\n    escrow: [hsm]/' "$T/policy.yaml" >"$T/grown.yaml"
grep -q 'escrow: \[hsm\]' "$T/grown.yaml" || fail "grown.yaml lacks the escrow"
P="--policy $T/policy.yaml"
G="--policy $T/grown.yaml"
expect_rc 0 $G init
expect_rc 0 $P apply
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"

# The tampering: tde v1's private key is now other's, its public half still tde's.
cp "$T/a/keys/tde/1/private.p8" "$T/good.p8"
cp "$T/a/keys/other/1/private.p8" "$T/a/keys/tde/1/private.p8"

# The source refuses its own private key, naming the store and version.
expect_rc 7 $P unwrap --in "$T/env" --replica a --out "$T/back"
expect_in "$T/err" "the private key of tde v1 does not match the public key recorded for it"
expect_rc 1 $P verify tde
expect_in "$T/err" "keyplane: gap: tde v1 in a: UNUSABLE:"
expect_in "$T/err" "does not match the public key recorded for it"

# apply to the grown chain: both copies refused before anything is imported.
expect_rc 7 $G --audit "$T/audit.jsonl" apply tde
cat "$T/out" "$T/err" >"$T/all"
expect_in "$T/all" "FAIL copy tde v1 -> c"
expect_in "$T/all" "FAIL copy tde v1 -> hsm"
expect_in "$T/all" "does not match the public key recorded for it"
if grep -q -e "PRIVATE KEY" -e "MII" "$T/out" "$T/err"; then fail "key material printed"; fi
"$PY" -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
imports = [e for e in ev if e.get("op") == "key.import" and e.get("name") == "tde"]
assert imports == [], imports
' "$T/audit.jsonl"
[ ! -e "$T/c/keys/tde/1" ] || fail "c holds something under tde v1 after a refused copy"
expect_rc 0 $G key list --instance c --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert "tde" not in json.dumps(d), d
' "$T/out"
[ "$(p11_objects escrow "$HSM_PIN")" -eq 0 ] || fail "the HSM holds objects after a refused copy"
expect_rc 1 $G verify tde
expect_in "$T/err" "keyplane: gap: tde v1 in c: MISSING"
expect_in "$T/err" "keyplane: gap: tde v1 in hsm: MISSING"

# The source repaired: apply copies the right key, and every copy is proved.
cp "$T/good.p8" "$T/a/keys/tde/1/private.p8"
expect_rc 0 $G apply tde
cat "$T/out" "$T/err" >"$T/all"
expect_in "$T/all" "ok   copy tde v1 -> c: done"
expect_in "$T/all" "ok   copy tde v1 -> hsm: done"
expect_rc 0 $G verify tde --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
c = d["chains"][0]
assert d["ok"] and len(c["versions"]) == 1, d
assert all(x["state"] == "ok" for x in c["versions"][0]["replicas"].values()), d
' "$T/out"
for r in a b c hsm; do
    expect_rc 0 $G unwrap --in "$T/env" --replica "$r" --out "$T/back.$r"
    cmp "$T/dek" "$T/back.$r" || fail "$r unwrapped another DEK"
done
echo "ok: copy check"
