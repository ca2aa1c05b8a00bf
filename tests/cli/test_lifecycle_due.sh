#!/bin/sh
# Rotation is due by the active version (issue 11, finding 11): neither a version made outside
# the lifecycle nor a staged one that is not activated silences "rotation overdue"; status shows
# when each version was created and activated and when rotation is due (text and --json); a
# stage does not make a stray version active; key create --chain on a chain with a rotation
# period is refused, naming rotate --stage.
. "$(dirname "$0")/lib.sh"
{
    file_chain tde RSA-OAEP-256 a b
    echo "    rotation: {every: 8s, warn_before: 2s}"
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
expect_rc 0 $P init
expect_rc 0 $P apply

# A chain that never rotated is due `every` after the version wrap uses was created.
expect_rc 0 $P status tde --json
created1=$("$PY" -c '
import json, sys
c = json.load(open(sys.argv[1]))["chains"][0]
v = {r["version"]: r for r in c["versions"]}
assert v[1]["created"] > 0 and v[1]["activated"] == 0, v
assert c["due"] == v[1]["created"] + 8 and c["due_version"] == 1, c
assert 0 < c["due_in"] <= 8 and "warning" not in c, c
print(v[1]["created"])
' "$T/out")
expect_rc 0 $P status tde
expect_in "$T/out" "chain tde: ok; rotation due in"
expect_in "$T/out" "VERSION  STATE     CREATED    ACTIVATED  FINGERPRINT"
expect_in "$T/out" "$(date -u -d "@$created1" +%Y-%m-%d) -"

# key create would add a version outside the lifecycle: refused, nothing made.
expect_rc 4 $P key create --chain tde
expect_in "$T/err" "chain 'tde' has a rotation period"
expect_in "$T/err" "'keyplane rotate tde --stage'"
[ ! -e "$T/a/keys/tde/2" ] || fail "a refused key create made v2"

while [ "$(date +%s)" -le $((created1 + 8)) ]; do sleep 1; done
expect_rc 0 $P status tde
expect_in "$T/out" "chain tde: ok; rotation overdue by"

# A stray version made by hand in the origin (so not in b: wrap still uses v1) does not make
# the chain look freshly rotated.
expect_rc 0 $P key generate --instance a --name tde --exportable
expect_rc 1 $P status tde
expect_in "$T/out" "chain tde: GAPS; rotation overdue by"

# Staging goes past it (v3) without making it active, and does not silence the warning either.
expect_rc 0 $P rotate tde --stage --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 3, d' "$T/out"
expect_rc 0 $P status tde
expect_in "$T/out" "chain tde: ok; rotation overdue by"
expect_rc 0 $P status tde --json
"$PY" -c '
import json, sys
c = json.load(open(sys.argv[1]))["chains"][0]
v = {r["version"]: r for r in c["versions"]}
assert [v[n]["state"] for n in (1, 2, 3)] == ["active", "none", "staged"], v
assert all(v[n]["created"] > 0 and v[n]["activated"] == 0 for n in (1, 2, 3)), v
assert c["due_version"] == 1 and c["due"] == v[1]["created"] + 8, c
assert c["due_in"] < 0 and c["warning"] == "rotation overdue", c
' "$T/out"
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 1, d' "$T/out"

# Activation moves the due date: `every` after v3 became active.
expect_rc 0 $P rotate tde --activate --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 3, d' "$T/out"
expect_rc 0 $P status tde --json
"$PY" -c '
import json, sys, time
c = json.load(open(sys.argv[1]))["chains"][0]
v = {r["version"]: r for r in c["versions"]}
assert v[3]["state"] == "active" and v[3]["activated"] > 0, v
assert v[3]["activated"] == v[3]["active_from"] and v[1]["state"] == "previous", v
assert c["due_version"] == 3 and c["due"] == v[3]["activated"] + 8, c
assert c["due_in"] > 0 and c.get("warning") != "rotation overdue", c
' "$T/out"
expect_rc 0 $P status tde
if grep -q "overdue" "$T/out"; then cat "$T/out" >&2; fail "overdue right after activation"; fi
echo "ok: lifecycle_due"
