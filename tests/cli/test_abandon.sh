#!/bin/sh
# Abandoning a version that never wrapped (issue 11, finding 12): v2 staged while one region
# could not be reached is a gap in verify; `rotate --abandon 2` ends that (verify ok, status
# shows it abandoned) without deleting anything; apply no longer copies it, wrap never uses it,
# and the next stage takes v3. The active and previous versions, and a version wrap may have
# used in a chain that never rotated, are refused.
. "$(dirname "$0")/lib.sh"
{
    file_providers a b c
    cat <<YAML
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: a, exportable: true}
    replicas: [a, b, c]
  app:
    protector: {type: rsa, bits: 2048, origin: a, exportable: true}
    replicas: [a, b]
YAML
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
expect_rc 0 $P init
expect_rc 0 $P apply
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env1"

# v2 is staged while b cannot be reached (a file where its directory was): it never gets there.
mv "$T/b" "$T/b.away"
: >"$T/b"
expect_rc 1 $P rotate tde --stage
expect_in "$T/out" "staged tde v2, NOT verified everywhere"
rm "$T/b"
mv "$T/b.away" "$T/b"
expect_rc 1 $P verify tde
expect_in "$T/err" "keyplane: gap: tde v2 in b: MISSING"

# What cannot be abandoned: a number nobody holds, the active version.
expect_rc 2 $P rotate tde --abandon 0
expect_rc 2 $P rotate tde --abandon 2 --stage
expect_rc 5 $P rotate tde --abandon 9
expect_in "$T/err" "chain 'tde' has no v9"
expect_rc 4 $P rotate tde --abandon 1
expect_in "$T/err" "not abandoning tde v1: it is active"

expect_rc 0 $P rotate tde --abandon 2 --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d=={"chain":"tde","step":"abandon","version":2,"state":"abandoned"}, d' "$T/out"
expect_rc 0 $P rotate tde --abandon 2 # already: nothing changes
expect_in "$T/out" "abandoned tde v2"
expect_rc 0 $P verify tde
expect_in "$T/out" "chain tde: ok"
expect_in "$T/out" "v2       abandoned"
[ ! -s "$T/err" ] || { cat "$T/err"; fail "verify named a gap of the abandoned version"; }
expect_rc 0 $P status tde --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
v = {r["version"]: r for r in d["chains"][0]["versions"]}
assert d["ok"] and v[2]["state"] == "abandoned" and v[1]["state"] == "active", d
assert v[2]["replicas"]["b"]["state"] == "MISSING" and v[2]["replicas"]["b"]["ok"], v[2]
' "$T/out"
for r in a c; do
    [ -s "$T/$r/keys/tde/2/private.p8" ] || fail "abandoning deleted v2 in $r"
done

# Nothing copies it any more; wrap stays on v1; old envelopes still open.
expect_rc 0 $P plan tde
if grep -q "tde v2" "$T/out"; then cat "$T/out" >&2; fail "plan still copies the abandoned v2"; fi
expect_rc 0 $P apply
[ ! -e "$T/b/keys/tde/2" ] || fail "apply copied the abandoned v2 into b"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env2" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 1, d' "$T/out"
expect_rc 4 $P retire tde --version 2
expect_in "$T/err" "tde v2 is abandoned"

# The next stage never reuses the number.
expect_rc 0 $P rotate tde --stage --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 3 and d["verified"], d' "$T/out"
expect_rc 0 $P rotate tde --activate
expect_rc 4 $P rotate tde --abandon 3
expect_in "$T/err" "not abandoning tde v3: it is active"
expect_rc 4 $P rotate tde --abandon 1
expect_in "$T/err" "not abandoning tde v1: it is previous"
expect_rc 0 $P verify tde
expect_rc 0 $P unwrap --in "$T/env1" --replica b --out "$T/back"
cmp "$T/dek" "$T/back" || fail "v1 envelope"

# A chain that never rotated: wrap picks the version every keystore holds, so it may have used
# it. A stray v2 made by hand in the origin only never wrapped: it can go (but not while b,
# which decides what wrap picks, is unreachable), and key replicate leaves it alone then.
expect_rc 4 $P rotate app --abandon 1
expect_in "$T/err" "not abandoning app v1: wrap picks v1 (the chain never rotated"
expect_rc 0 $P key generate --instance a --name app --exportable
expect_rc 1 $P verify app
expect_in "$T/err" "keyplane: gap: app v2 in b: MISSING"
mv "$T/b" "$T/b.away"
: >"$T/b"
expect_rc 4 $P rotate app --abandon 2
expect_in "$T/err" "b is unreachable"
rm "$T/b"
mv "$T/b.away" "$T/b"
expect_rc 0 $P rotate app --abandon 2
expect_rc 0 $P verify app
expect_in "$T/out" "v1       active"
expect_in "$T/out" "v2       abandoned"
expect_rc 0 $P key replicate --chain app
[ ! -e "$T/b/keys/app/2" ] || fail "key replicate copied the abandoned v2"
expect_rc 0 $P wrap --chain app --dek "file:$T/dek" --out "$T/env3" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 1, d' "$T/out"
expect_rc 0 $P rotate app --help
expect_in "$T/out" "--abandon N"
echo "ok: abandon"
