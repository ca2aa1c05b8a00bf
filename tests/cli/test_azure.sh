#!/bin/sh
# Azure Key Vault end to end, against two emulated vaults (two regions) over real TLS with a
# test CA: a protector generated in a file store is BYOK-imported into both by `keyplane apply`
# and escrowed in SoftHSM; the official Azure SDK reads what keyplane imported; a DEK wrapped by
# vault 1 unwraps in vault 2 and in the HSM; `unwrap` fails over to vault 2 while vault 1 is
# stopped; then the failure paths: a wrong client secret, a 403, a soft-deleted name, a vault
# that is down. Last, a protector born in SoftHSM reaches a vault as PKCS#8 (a JWK import): the
# token's RFC 5649 pads private keys, so BYOK from it is refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
. "$(dirname "$0")/azure.sh"

akv_start vault1
# vault2 pages its listings one item at a time, after an empty page with a nextLink, as the
# service may (as the Azure SDK's recorded exchanges show): every listing must follow nextLink to the end
akv_start vault2 -- --page-size 1 --empty-pages 1

softhsm_token escrow 1234
KP_TEST_PASS=$(openssl rand -hex 16)
export HSM_PIN=1234 KP_TEST_PASS
vault() { # vault NAME URL
    akv_instance "$1" "$2" "verify_challenge_resource: false" "hsm: true" "max_attempts: 3"
}
{
    cat <<EOF
version: 1
providers:
  soft: {plugin: file, path: $T/soft, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
  hsm:
    plugin: pkcs11
    module: $SOFTHSM_MODULE
    token: escrow
    pin: env:HSM_PIN
EOF
    vault vault1 "$KV_VAULT1_URL"
    vault vault2 "$KV_VAULT2_URL"
    cat <<EOF
chains:
  tde:
    protector: { type: rsa, bits: 2048, origin: soft, exportable: true }
    replicas: [vault1, vault2]
    escrow: [hsm]
    algorithm: RSA-OAEP
EOF
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"

expect_rc 0 $P policy validate "$T/policy.yaml"
expect_rc 0 $P check --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"], d
items = {(i["instance"], c["item"]) for i in d["instances"] for c in i["items"]}
assert ("vault1", "token") in items and ("vault2", "keys/list") in items, items
' "$T/out"

# apply: create in the file store, BYOK into both vaults (the key leaves it wrapped under each
# vault's key-exchange key), escrow into the HSM
expect_rc 0 $P plan --json
expect_rc 0 $P apply --json
expect_rc 0 $P apply
expect_in "$T/out" "nothing to do"
expect_rc 0 $P verify
expect_rc 0 $P key public --instance hsm --name tde --out "$T/hsm.pem"
for v in 1 2; do
    eval url=\$KV_VAULT${v}_URL
    $SDK show "$url" "$KV_CA" tde >"$T/sdk$v.json" || fail "the Azure SDK cannot read vault$v"
    "$PY" - "$T/sdk$v.json" "$T/hsm.pem" <<'EOF' || fail "vault$v does not hold the HSM's key"
import json, sys
versions = json.load(open(sys.argv[1]))
hsm = open(sys.argv[2]).read()
assert len(versions) == 1, versions
k = versions[0]
assert k["pem"] == hsm, "public key differs from the HSM's"
assert k["kty"].endswith("RSA-HSM"), k["kty"]              # imported through key_hsm (BYOK)
assert k["tags"]["kp-chain"] == "tde" and k["tags"]["kp-version"] == "1", k["tags"]
assert len(k["tags"]["kp-fpr"]) == 64, k["tags"]
assert k["expires"] is None, "a TDE protector must not expire"
assert sorted(k["key_ops"]) == ["unwrapKey", "wrapKey"], k["key_ops"]
EOF
done
# the BYOK path was taken: each vault has its key-exchange key (import only)
$SDK show "$KV_VAULT1_URL" "$KV_CA" tde-kek >"$T/kek.json" || fail "no KEK in vault1"
"$PY" -c 'import json,sys; k=json.load(open(sys.argv[1])); assert k[0]["key_ops"]==["import"], k' "$T/kek.json"

expect_rc 0 $P key list --instance vault2 --json
"$PY" -c '
import json, sys
k = json.load(open(sys.argv[1]))["keys"]
assert [(x["name"], x["version"]) for x in k] == [("tde", 1)], k
' "$T/out"

# wrap in vault 1, unwrap in vault 2 and in the HSM
head -c 32 /dev/urandom >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --replica vault1 --out "$T/env" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="vault1", d' "$T/out"
expect_rc 0 $P unwrap --in "$T/env" --replica vault2 --out "$T/dek.v2"
cmp "$T/dek" "$T/dek.v2" || fail "vault2 unwrapped a different DEK"
expect_rc 0 $P unwrap --in "$T/env" --replica hsm --out "$T/dek.hsm"
cmp "$T/dek" "$T/dek.hsm" || fail "the HSM unwrapped a different DEK"

# vault 1 stopped: unwrap fails over to vault 2
$VCTL stop --dir "$V" --name vault1 >/dev/null
expect_rc 0 $P unwrap --in "$T/env" --out "$T/dek.fo" --json
expect_in "$T/err" "unwrap with vault1 failed"
expect_in "$T/err" "failing over to vault2"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="vault2", d' "$T/out"
cmp "$T/dek" "$T/dek.fo" || fail "failover unwrapped a different DEK"
expect_rc 6 $P unwrap --in "$T/env" --replica vault1 --out "$T/x"
expect_in "$T/err" "vault1"
[ ! -e "$T/x" ] || fail "a failed unwrap left an output file"
$VCTL start --dir "$V" --name vault1 --port-reuse >/dev/null || fail "cannot restart vault1"
expect_rc 0 $P unwrap --in "$T/env" --replica vault1 --out "$T/dek.v1"
cmp "$T/dek" "$T/dek.v1" || fail "vault1 after its restart"

# a wrong client secret: one line with the service's AADSTS code, auth exit status
AZ_SECRET=wrong expect_rc 4 $P unwrap --in "$T/env" --replica vault2 --out "$T/x"
expect_in "$T/err" "invalid_client"
expect_in "$T/err" "AADSTS7000215"
if grep -q "wrong" "$T/err"; then fail "the secret was echoed"; fi

# a 403 is reported with the service's message and not retried: the refused unwrap costs the
# vault as many requests as one that succeeds
requests() { $VCTL stats --dir "$V" --name vault2 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
r0=$(requests)
expect_rc 0 $P unwrap --in "$T/env" --replica vault2 --out "$T/dek.v2b"
r1=$(requests)
$VCTL faults --dir "$V" --name vault2 '{"forbidden_ops":["unwrapKey"]}' >/dev/null
expect_rc 4 $P unwrap --in "$T/env" --replica vault2 --out "$T/x"
expect_in "$T/err" "HTTP 403 Forbidden [request "
r2=$(requests)
[ $((r2 - r1)) -eq $((r1 - r0)) ] || fail "a 403 was retried ($((r1 - r0)) requests for an unwrap, $((r2 - r1)) for a refused one)"
$VCTL faults --dir "$V" --name vault2 '{}' >/dev/null

# vault2 without purge protection: Azure SQL refuses a TDE protector from such a vault, so
# verify and check report it as a gap, naming the fix
$VCTL stop --dir "$V" --name vault2 >/dev/null
$VCTL start --dir "$V" --name vault2 --port-reuse --no-purge-protection -- --page-size 1 \
    --empty-pages 1 >/dev/null || fail "cannot restart vault2"
expect_rc 1 $P verify --json
"$PY" - "$T/out" <<'PYEOF' || fail "verify --json does not show vault2's purge-protection gap"
import json, sys
d = json.load(open(sys.argv[1]))
cells = [(n, c) for ch in d["chains"] for v in ch["versions"] for n, c in v["replicas"].items()]
gaps = [c for n, c in cells if n == "vault2"]
assert gaps and all(not c["ok"] and "purge protection" in c["detail"] for c in gaps), gaps
assert all(c["ok"] for n, c in cells if n != "vault2"), cells
PYEOF
expect_rc 1 $P check vault2
expect_in "$T/out" "has no purge protection (recoveryLevel Recoverable+Purgeable)"
expect_in "$T/out" "az keyvault update --name"

# the provider's own backup, and a restore after the key was deleted and purged (a vault without
# purge protection lets a key be purged)
expect_rc 0 $P key backup --instance vault2 --name tde --out "$T/tde.backup"
$SDK delete "$KV_VAULT2_URL" "$KV_CA" tde || fail "SDK delete"
# soft-deleted: a new version cannot be made, and the error says how to recover
expect_rc 0 $P plan --json
expect_rc 5 $P apply
expect_in "$T/err" "deleted but recoverable"
expect_in "$T/err" "az keyvault key recover"
expect_rc 5 $P unwrap --in "$T/env" --replica vault2 --out "$T/x"
expect_in "$T/err" "key tde is deleted but recoverable"
$SDK purge "$KV_VAULT2_URL" "$KV_CA" tde || fail "SDK purge"
expect_rc 0 $P key restore-backup --instance vault2 --in "$T/tde.backup" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["name"]=="tde", d' "$T/out"
# purge protection on again: no gap
$VCTL stop --dir "$V" --name vault2 >/dev/null
$VCTL start --dir "$V" --name vault2 --port-reuse -- --page-size 1 --empty-pages 1 >/dev/null ||
    fail "cannot restart vault2"
expect_rc 0 $P verify
expect_rc 0 $P unwrap --in "$T/env" --replica vault2 --out "$T/dek.r"
cmp "$T/dek" "$T/dek.r" || fail "restored key unwrapped a different DEK"

# domain rules: RSA-4096 is refused for a TDE protector; so is a key name Key Vault rejects
expect_rc 3 $P key generate --instance vault1 --name big --bits 4096
expect_in "$T/err" "Azure SQL TDE protectors in Key Vault are RSA 2048 or 3072"
expect_rc 2 $P key generate --instance vault1 --name bad_name --bits 2048
expect_in "$T/err" "only letters, digits and '-'"
# a protector born in SoftHSM: the token pads private keys inside its RFC 5649 wrap, so it
# offers no wrapped export and the copy into a vault is a JWK import of its PKCS#8 (no
# key-exchange key is made); BYOK from it is refused, naming the defect
cp "$T/policy.yaml" "$T/born.yaml"
cat >>"$T/born.yaml" <<EOF
  from-hsm:
    protector: { type: rsa, bits: 2048, origin: hsm, exportable: true }
    replicas: [vault1]
    algorithm: RSA-OAEP
EOF
expect_rc 0 --policy "$T/born.yaml" apply
expect_rc 0 --policy "$T/born.yaml" verify
expect_rc 0 --policy "$T/born.yaml" key public --instance hsm --name from-hsm --out "$T/born.pem"
$SDK show "$KV_VAULT1_URL" "$KV_CA" from-hsm >"$T/born.json" || fail "vault1 has no from-hsm"
"$PY" - "$T/born.json" "$T/born.pem" <<'EOF' || fail "vault1 does not hold the HSM-born key"
import json, sys
versions = json.load(open(sys.argv[1]))
assert len(versions) == 1 and versions[0]["pem"] == open(sys.argv[2]).read(), versions
assert versions[0]["tags"]["kp-chain"] == "from-hsm", versions[0]["tags"]
EOF
# (the service lists the versions of a key that does not exist as an empty page)
kek_versions=$($SDK show "$KV_VAULT1_URL" "$KV_CA" from-hsm-kek 2>/dev/null || echo "[]")
[ "$kek_versions" = "[]" ] || fail "a key-exchange key was made: the HSM-born key went by BYOK"
head -c 32 /dev/urandom >"$T/dek.born"
expect_rc 0 --policy "$T/born.yaml" wrap --chain from-hsm --dek "file:$T/dek.born" \
    --replica hsm --out "$T/env.born"
expect_rc 0 --policy "$T/born.yaml" unwrap --in "$T/env.born" --replica vault1 --out "$T/x.born"
cmp "$T/dek.born" "$T/x.born" || fail "vault1 unwrapped another DEK than the HSM wrapped"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null |
    openssl pkey -pubout -out "$T/kek.pub"
expect_rc 3 --policy "$T/born.yaml" key export-byok --instance hsm --name from-hsm \
    --kek-kid "$KV_VAULT1_URL/keys/kek/00000000000000000000000000000000" \
    --kek "$T/kek.pub" --out "$T/x.byok"
# The plugin's reason once the core passes it on; until then the core's own refusal.
expect_in "$T/err" "token 'escrow' (SoftHSM v2) does not wrap keys as RFC 5649 says"
[ ! -e "$T/x.byok" ] || fail "a refused BYOK export wrote its output"
expect_rc 0 --policy "$T/born.yaml" check hsm
expect_in "$T/out" "(SoftHSM v2) does not wrap keys as RFC 5649 says"
echo "ok: azure"
