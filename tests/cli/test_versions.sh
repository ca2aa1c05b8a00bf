#!/bin/sh
# A version that reached only some replicas is not used for wrapping until `key replicate`
# copies it everywhere; a swapped public key, an RSA1_5 envelope and a --replica outside the
# chain are refused.
. "$(dirname "$0")/lib.sh"
two_regions
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
openssl rand 32 >"$T/dek"
expect_rc 0 $P key create --chain tde
# v2 only in the origin (as if region-b had been down during the create).
expect_rc 0 $P key generate --instance region-a --name tde --exportable --json
"$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["version"] == 2' "$T/out"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --json --out "$T/env1"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 1, d' "$T/out"
expect_rc 0 $P key replicate --chain tde
expect_in "$T/err" "v2: replicated"
expect_rc 0 $P key replicate --chain tde # idempotent: nothing left to copy
[ ! -s "$T/err" ] || { cat "$T/err"; fail "second replicate did something"; }
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --json --out "$T/env2"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 2, d' "$T/out"
expect_rc 0 $P unwrap --in "$T/env2" --replica region-b --out "$T/dek2"
cmp "$T/dek" "$T/dek2" || fail "v2 round trip"
expect_rc 0 $P unwrap --in "$T/env1" --replica region-b --out "$T/dek1"
cmp "$T/dek" "$T/dek1" || fail "old v1 envelope"
# An envelope whose first wrap names a version no keystore holds opens with its second one, and
# unwrap --json reports the version it used, not the first wrap's.
"$PY" -c 'import json,sys
e = json.load(open(sys.argv[1]))
w = dict(e["wraps"][0], v=9)
e["wraps"] = [w] + e["wraps"]
open(sys.argv[2], "w").write(json.dumps(e, separators=(",", ":")))' "$T/env1" "$T/env-9-1"
expect_rc 0 $P unwrap --in "$T/env-9-1" --out "$T/dek91" --json
cmp "$T/dek" "$T/dek91" || fail "two-wrap envelope"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 1, d' "$T/out"

# A different key under an existing version number in a replica is reported, not overwritten.
expect_rc 0 $P key generate --instance region-a --name tde --exportable
expect_rc 0 $P key generate --instance region-b --name tde --version 3
expect_rc 7 $P key replicate --chain tde
expect_in "$T/err" "holds a different key as tde v3"

# --replica must belong to the chain.
cat >>"$T/policy.yaml" <<YAML
  other:
    protector: {type: rsa, bits: 2048, origin: region-a}
    replicas: [region-a]
YAML
expect_rc 2 $P unwrap --in "$T/env2" --replica region-z --out "$T/x"
sed 's/"chain":"tde"/"chain":"other"/' "$T/env2" >"$T/env-other"
expect_rc 2 $P unwrap --in "$T/env-other" --replica region-b --out "$T/x"
expect_in "$T/err" "'region-b' is not a keystore replica, escrow or origin of chain 'other'"

# RSA1_5 envelopes are refused before any key is touched.
sed 's/"alg":"RSA-OAEP-256"/"alg":"RSA1_5"/' "$T/env2" >"$T/env-pkcs1"
expect_rc 4 $P unwrap --in "$T/env-pkcs1" --out "$T/x"
expect_in "$T/err" "unwraps RSA-OAEP and RSA-OAEP-256 only"

# A public key swapped on disk is refused, both for wrap and for key public.
pub=$(find "$T/a/keys/tde/2" -name public.der)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null |
    openssl pkey -pubout -outform DER -out "$pub"
expect_rc 7 $P key public --instance region-a --name tde --version 2
expect_in "$T/err" "does not match the fingerprint recorded"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --json --out "$T/env3"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"] == "region-b", d' "$T/out"
expect_in "$T/err" "wrap with region-a failed"
echo "ok: versions"
