#!/bin/sh
# `keyplane key export-byok` writes a .byok transfer file that the official Azure SDK imports
# exactly as `az keyvault key import --byok-file` does (the file's bytes as the JWK's t, kty
# RSA-HSM), into an emulated vault that checks the unwrapped key is one PKCS#8 and nothing more;
# the file names the given key-exchange key; bad --kek-kid values and a file made for another
# key-exchange key are refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/azure.sh"
akv_start vault1

file_providers soft >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P key generate --instance soft --name tde --exportable
expect_rc 0 $P key public --instance soft --name tde --out "$T/tde.pem"

# the key-exchange key, as `az keyvault key create --kty RSA-HSM --ops import` makes it
KID=$($SDK kek "$KV_VAULT1_URL" "$KV_CA" kek1 "$T/kek1.pub") || fail "cannot make the KEK"
expect_rc 0 $P key export-byok --instance soft --name tde --kek "$T/kek1.pub" --kek-kid "$KID" \
    --out "$T/tde.byok" --json
"$PY" - "$T/tde.byok" "$KID" "$T/out" <<'PYEOF' || fail "the .byok file is not a transfer file"
import base64, json, re, sys
doc = json.load(open(sys.argv[1]))
assert set(doc) == {"schema_version", "header", "ciphertext", "generator"}, doc.keys()
assert doc["schema_version"] == "1.0.0"
assert doc["header"] == {"kid": sys.argv[2], "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}, doc
assert re.fullmatch(r"[A-Za-z0-9_-]+", doc["ciphertext"]), "ciphertext is not base64url"
ct = base64.urlsafe_b64decode(doc["ciphertext"] + "=" * (-len(doc["ciphertext"]) % 4))
assert len(ct) > 256 + 8, len(ct)  # RSA-2048 block, then the RFC 5649 wrap of the key
assert doc["generator"].startswith("keyplane "), doc["generator"]
out = json.load(open(sys.argv[3]))
assert out["kek_kid"] == sys.argv[2] and out["out"] == sys.argv[1], out
PYEOF
$SDK import-byok "$KV_VAULT1_URL" "$KV_CA" imported "$T/tde.byok" >"$T/imported.pem" ||
    fail "the SDK could not import the .byok file"
cmp "$T/tde.pem" "$T/imported.pem" || fail "the vault holds another key than the one exported"

# a file made for another key-exchange key does not open under it
KID2=$($SDK kek "$KV_VAULT1_URL" "$KV_CA" kek2 "$T/kek2.pub") || fail "cannot make KEK 2"
expect_rc 0 $P key export-byok --instance soft --name tde --kek "$T/kek1.pub" --kek-kid "$KID2" \
    --out "$T/wrong.byok"
if $SDK import-byok "$KV_VAULT1_URL" "$KV_CA" wrong "$T/wrong.byok" >/dev/null 2>"$T/sdk.err"; then
    fail "a .byok wrapped for KEK 1 imported under KEK 2"
fi
grep -q "BYOK" "$T/sdk.err" || { cat "$T/sdk.err" >&2; fail "no BYOK refusal from the vault"; }

# bad input: a usage error (exit 2), nothing written
for kid in "" "http://vault/keys/k/1" "https://vault/keys/k\"x" "https://vault/secrets/k/1" \
    "https://vault/keys/k" "https://vault/keys/k/" "https://vault/keys//1" "https://vault/keys/k/1/x"; do
    expect_rc 2 $P key export-byok --instance soft --name tde --kek "$T/kek1.pub" \
        --kek-kid "$kid" --out "$T/bad.byok"
    expect_in "$T/err" "--kek-kid must be the key-exchange key's kid"
done
expect_rc 2 $P key export-byok --instance soft --name tde --kek "$T/kek1.pub" --out "$T/bad.byok"
expect_in "$T/err" "--kek-kid"
[ ! -e "$T/bad.byok" ] || fail "a refused export wrote its output"

# a vault without purge protection is named by check before keyplane puts anything there, as soon
# as it holds a key (here the key-exchange key an operator made for a hand BYOK)
akv_start bare --no-purge-protection
{ cat "$T/policy.yaml"; akv_instance bare "$KV_BARE_URL" "verify_challenge_resource: false"; } \
    >"$T/bare.yaml"
expect_rc 0 --policy "$T/bare.yaml" check bare
expect_in "$T/out" "not known yet: the vault holds no key"
$SDK kek "$KV_BARE_URL" "$KV_CA" kek "$T/kek-bare.pub" >/dev/null || fail "cannot make a key in bare"
expect_rc 1 --policy "$T/bare.yaml" check bare
expect_in "$T/out" "purge protection"
expect_in "$T/out" "has no purge protection (recoveryLevel Recoverable+Purgeable)"
echo "ok: azure_byok"
