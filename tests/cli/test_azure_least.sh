#!/bin/sh
# Least privilege against an emulated vault that enforces per-identity key permissions (access
# policies) with the real 403: an application identity holding only get, wrapKey and unwrapKey
# (Azure SQL's documented minimum for a TDE protector) wraps while the chain has one version (and
# refuses once a second is staged: no store of its policy keeps the chain's state), and unwraps,
# also with a version older than the newest, found through the kp-prev links without listing;
# `check` with role dek
# passes and with role manage names the missing list; a missing wrapKey is named; making a
# version without list is refused before anything is sent; every request carried an
# x-ms-client-request-id; a version without its kp-prev link (as an older keyplane made it)
# ends the walk with a message that says why.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/azure.sh"
for v in vault1 vault2; do
    akv_start $v --client kp-client:kp-secret --client app:app-secret \
        --permissions app=get,wrapKey,unwrapKey
done
export AZ_APP=app-secret
vault() { # vault NAME URL CLIENT SECRET_ENV [ROLE]
    AKV_CLIENT=$3 AKV_SECRET_ENV=$4 akv_instance "$1" "$2" "verify_challenge_resource: false" \
        "hsm: true" ${5:+"role: $5"}
}
# the admin's policy: born in a file store, copied into both vaults, rotated once below
{
    file_providers soft
    vault vault1 "$KV_VAULT1_URL" kp-client AZ_SECRET
    vault vault2 "$KV_VAULT2_URL" kp-client AZ_SECRET
    cat <<YAML
chains:
  tde:
    protector: { type: rsa, bits: 2048, origin: soft, exportable: true }
    replicas: [vault1, vault2]
YAML
} >"$T/admin.yaml"
A="--policy $T/admin.yaml"
init_stores "$T/admin.yaml"
expect_rc 0 $A apply
head -c 32 /dev/urandom >"$T/dek1"
expect_rc 0 $A wrap --chain tde --dek "file:$T/dek1" --out "$T/env1"

# the application's policy: the two vaults alone, through the identity with get, wrapKey and
# unwrapKey
{
    echo "version: 1"
    echo "providers:"
    vault vault1 "$KV_VAULT1_URL" app AZ_APP dek
    vault vault2 "$KV_VAULT2_URL" app AZ_APP dek
    cat <<YAML
chains:
  tde:
    protector: { type: rsa, bits: 2048, origin: vault1, exportable: true }
    replicas: [vault2]
YAML
} >"$T/app.yaml"
B="--policy $T/app.yaml"
# while the chain has one version, the application wraps with it
head -c 32 /dev/urandom >"$T/dek0"
expect_rc 0 $B wrap --chain tde --dek "file:$T/dek0" --out "$T/env0"
expect_rc 0 $A unwrap --in "$T/env0" --replica soft --out "$T/dek0.soft"
cmp "$T/dek0" "$T/dek0.soft" || fail "the application wrapped under another key than v1"

expect_rc 0 $A rotate tde --stage
# with v2 staged, no store of the application's policy can say which version is active (Key
# Vault keeps no chain-state documents): wrap refuses rather than take v2
expect_rc 5 $B wrap --chain tde --dek "file:$T/dek0" --out "$T/x"
expect_in "$T/err" "no reachable keystore of it in this policy keeps chain-state documents"
[ ! -e "$T/x" ] || fail "a refused wrap wrote its output"
expect_rc 0 $A rotate tde --activate
$SDK show "$KV_VAULT1_URL" "$KV_CA" tde >"$T/versions.json" || fail "SDK show"
"$PY" - "$T/versions.json" <<'PYEOF2' || fail "the versions are not linked by kp-prev"
import json, sys
vs = {v["tags"]["kp-version"]: v for v in json.load(open(sys.argv[1])) if "kp-version" in v["tags"]}
assert set(vs) == {"1", "2"}, vs.keys()
assert "kp-prev" not in vs["1"]["tags"], vs["1"]["tags"]
assert vs["2"]["tags"]["kp-prev"] == vs["1"]["version"], (vs["2"]["tags"], vs["1"]["version"])
PYEOF2

# v1 is older than the newest version: reached without listing, through v2's kp-prev
for v in vault1 vault2; do
    expect_rc 0 $B unwrap --in "$T/env1" --replica $v --out "$T/dek1.$v"
    cmp "$T/dek1" "$T/dek1.$v" || fail "the application unwrapped another DEK in $v"
done
# v2 active: what the admin wraps, the application unwraps
head -c 32 /dev/urandom >"$T/dek2"
expect_rc 0 $A wrap --chain tde --dek "file:$T/dek2" --out "$T/env2"
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1])); assert [w["v"] for w in e["wraps"]]==[2], e' \
    "$T/env2" || fail "the admin did not wrap with v2"
expect_rc 0 $B unwrap --in "$T/env2" --out "$T/dek2.app"
cmp "$T/dek2" "$T/dek2.app" || fail "the application unwrapped another DEK (v2)"
expect_rc 0 $B status
# key list: every key needs list, one key's versions only get (found by the walk, with their kids)
expect_rc 1 $B key list --instance vault1
expect_in "$T/err" "the versions of one key need only keys/get: key list --name"
expect_rc 0 $B key list --instance vault1 --name tde --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); ks=d if isinstance(d, list) else d["keys"]; assert sorted(k["version"] for k in ks)==[1,2] and all(k["kid"].startswith("https://") for k in ks), d' \
    "$T/out" || fail "key list --name through the walk"

# check: role dek probes what it needs and passes; role manage names the missing list
expect_rc 0 $B check --json
"$PY" - "$T/out" <<'PYEOF' || fail "check with role dek"
import json, sys
d = json.load(open(sys.argv[1]))
items = {c["item"]: c["ok"] for i in d["instances"] for c in i["items"]}
assert items.get("keys/get") and items.get("keys/wrapKey") and items.get("keys/unwrapKey"), items
assert "keys/list" not in items and "keys/create" not in items, items
PYEOF
sed 's/    role: dek/    role: manage/' "$T/app.yaml" >"$T/app-manage.yaml"
expect_rc 1 --policy "$T/app-manage.yaml" check
expect_in "$T/out" "keys/list"
expect_in "$T/out" "does not have keys list permission on key vault"
# a missing wrapKey is named
$VCTL control --dir "$V" --name vault1 POST permissions '{"app": "get,unwrapKey"}' >/dev/null ||
    fail "cannot change the permissions"
expect_rc 1 $B check vault1
expect_in "$T/out" "keys/wrapKey"
expect_in "$T/out" "does not have keys wrapkey permission"
$VCTL control --dir "$V" --name vault1 POST permissions '{"app": "get,wrapKey,unwrapKey"}' \
    >/dev/null || fail "cannot change the permissions back"

# making a version needs list: refused before anything is sent, naming it
expect_rc 4 $B key generate --instance vault1 --name other --bits 2048
expect_in "$T/err" "needs the keys/list permission"

# every request of every run carried its own x-ms-client-request-id
$VCTL stats --dir "$V" --name vault1 >"$T/stats.json"
"$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["keys_requests"] > 20 and s["keys_no_client_request_id"] == 0, s' \
    "$T/stats.json" || fail "a request went without x-ms-client-request-id"

# a version without its kp-prev link (as a keyplane before the links made it) ends the walk:
# v1 cannot be reached without list, and the message says why
v2=$("$PY" -c 'import json,sys; print([v["version"] for v in json.load(open(sys.argv[1])) if v["tags"].get("kp-version") == "2"][0])' "$T/versions.json")
$SDK untag "$KV_VAULT1_URL" "$KV_CA" tde "$v2" kp-prev || fail "SDK untag"
expect_rc 5 $B unwrap --in "$T/env1" --replica vault1 --out "$T/x"
expect_in "$T/err" "not all linked by keyplane's kp-prev tags"
[ ! -e "$T/x" ] || fail "a failed unwrap wrote its output"
# the admin, who may list, still reaches it
expect_rc 0 $A unwrap --in "$T/env1" --replica vault1 --out "$T/dek1.admin"
cmp "$T/dek1" "$T/dek1.admin" || fail "the admin unwrapped another DEK"
echo "ok: azure_least"
