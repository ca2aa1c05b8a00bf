#!/bin/sh
# Two runners making versions of one vault key at once (key generate, six rounds): never are
# both told they made a number; each number ends with one enabled, labelled vault version, the
# other disabled and tagged kp-rejected; an identity without keys/list (which walks the kp-prev links) sees the same
# versions and keys as one that lists.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/azure.sh"
akv_start vault1 --client kp-client:kp-secret --client app:app-secret \
    --permissions app=get,wrapKey,unwrapKey
export AZ_APP=app-secret
{
    echo "version: 1"
    echo "providers:"
    akv_instance vault1 "$KV_VAULT1_URL" "verify_challenge_resource: false" "hsm: true"
} >"$T/admin.yaml"
{
    echo "version: 1"
    echo "providers:"
    AKV_CLIENT=app AKV_SECRET_ENV=AZ_APP akv_instance vault1 "$KV_VAULT1_URL" \
        "verify_challenge_resource: false" "role: dek"
} >"$T/app.yaml"
for i in 1 2 3 4 5 6; do
    "$KP_BIN" --policy "$T/admin.yaml" key generate --instance vault1 --name race --bits 2048 \
        >"$T/o1" 2>&1 &
    "$KP_BIN" --policy "$T/admin.yaml" key generate --instance vault1 --name race --bits 2048 \
        >"$T/o2" 2>&1 &
    wait
    # never two runs told they made one number (each would take its own key for it)
    won=$(cat "$T/o1" "$T/o2" | grep -c "^generated race v" || true)
    [ "$won" -le 1 ] || { cat "$T/o1" "$T/o2"; fail "two runs both made a version in round $i"; }
    cat "$T/o1" "$T/o2" | grep -v "^generated race v" |
        grep -v "made concurrently by another run\|created concurrently by another run\|kp-version tag\|disabling a vault version" &&
        fail "round $i: an unexpected message" || true
done
$SDK show "$KV_VAULT1_URL" "$KV_CA" race >"$T/versions.json" || fail "SDK show"
"$PY" - "$T/versions.json" <<'PYEOF' || fail "a number is claimed by two enabled versions"
import json, sys
from collections import Counter
vs = json.load(open(sys.argv[1]))
live = Counter(v["tags"]["kp-version"] for v in vs if v["enabled"] and "kp-version" in v["tags"])
assert live and all(n == 1 for n in live.values()), live
for v in vs:
    if not v["enabled"]:
        assert "kp-rejected" in v["tags"] and "kp-version" not in v["tags"], v["tags"]
PYEOF
expect_rc 0 --policy "$T/admin.yaml" key list --instance vault1 --name race --json
cp "$T/out" "$T/admin.json"
expect_rc 0 --policy "$T/app.yaml" key list --instance vault1 --name race --json
"$PY" - "$T/admin.json" "$T/out" <<'PYEOF' || fail "the walk sees other versions than the listing"
import json, sys
def keys(p):
    d = json.load(open(p))
    return sorted((k["version"], k["fingerprint"], k["kid"]) for k in (d if isinstance(d, list) else d["keys"]))
a, b = keys(sys.argv[1]), keys(sys.argv[2])
assert a == b, (a, b)
assert len(a) >= 3, a  # a round where both runs yielded makes none
PYEOF
echo "ok: azure_race"
