#!/bin/sh
# Where one store's word stops (issue 11, invariants 1, 2 and 5, after review):
# - `restore --to c --from b` while the origin answers takes b as the source, not as a voucher:
#   a version only b holds is not copied into c (else it would become 2 of 3 and spread);
# - `key create --chain` refuses while a secret replica holds a version the origin lacks;
# - a state document planted in one store of a never-rotated chain is named, not followed:
#   wrap refuses, `rotate --stage` writes the origin's document everywhere and wraps resume;
# - `retire` while the origin is unreachable is refused (apply would undo it);
# - a stage recorded in the document but never made (a run killed between the two) is made on
#   the next `rotate --stage`, and no version is ever made that no document names.
. "$(dirname "$0")/lib.sh"
file_chain tde RSA-OAEP a b c >"$T/policy.yaml"
P="--policy $T/policy.yaml"
file_providers b >"$T/b-only.yaml"
plant_b() { # a version of someone's own in b alone
    (cd "$T" && "$KP_BIN" --policy "$T/b-only.yaml" key generate --instance b --name tde \
        --exportable >/dev/null 2>&1) || fail "cannot plant a version in b"
}
expect_rc 0 $P init
expect_rc 0 $P apply
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env1"

# restore --from b with the origin answering: b's v2 is not the chain's.
plant_b
rm -rf "$T/c"
expect_rc 0 $P restore tde --to c --from b
[ -d "$T/c/keys/tde/1" ] && [ ! -d "$T/c/keys/tde/2" ] || fail "restore copied b's v2 into c"
expect_rc 1 $P apply
[ ! -d "$T/a/keys/tde/2" ] || fail "apply spread b's v2 into the origin"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env2" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 1, d' "$T/out"

# A state document planted in b while the origin keeps none (never rotated).
"$PY" - "$T/b/keys/tde/state.json" <<'PY'
import json, sys
json.dump({"format": "keyplane-chain-state", "chain": "tde", "serial": 5, "updated": 1,
           "versions": [{"version": 1, "state": "previous", "active_from": 0,
                         "active_until": 1, "verified": 0},
                        {"version": 2, "state": "active", "active_from": 1,
                         "active_until": 0, "verified": 1}]}, open(sys.argv[1], "w"))
PY
expect_rc 7 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env3"
expect_in "$T/err" "b keeps a state document naming v2 active (serial 5), but the origin a keeps none"
expect_rc 1 $P verify
expect_in "$T/err" "b keeps a state document"

# key create refuses while a store holds a version the origin lacks.
expect_rc 5 $P key create --chain tde
expect_in "$T/err" "b holds tde v2, which the origin a lacks"
[ ! -d "$T/a/keys/tde/3" ] || fail "a refused key create made a version"

# rotate --stage writes the origin's document everywhere; b's is replaced.
expect_rc 0 $P rotate tde --stage
expect_in "$T/out" "staged tde v3: replicated and proved usable in every keystore"
"$PY" -c '
import json, sys
for p in sys.argv[1:]:
    d = json.load(open(p))
    act = [v["version"] for v in d["versions"] if v["state"] == "active"]
    st = [v["version"] for v in d["versions"] if v["state"] == "staged"]
    assert act == [1] and st == [3], (p, d)
' "$T/a/keys/tde/state.json" "$T/b/keys/tde/state.json" "$T/c/keys/tde/state.json"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env3" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 1, d' "$T/out"
expect_rc 0 $P rotate tde --activate

# retire with the origin away is refused, and nothing is written.
mv "$T/a" "$T/a.away"
cp "$T/b/keys/tde/state.json" "$T/state.before"
expect_rc 6 $P retire tde --version 1
expect_in "$T/err" "origin a is unreachable"
cmp "$T/state.before" "$T/b/keys/tde/state.json" || fail "a refused retire wrote a document"
mv "$T/a.away" "$T/a"

# A stage recorded but never made (killed between the document and the key): the next stage
# makes it, with the recorded number.
"$PY" - "$T/a/keys/tde/state.json" "$T/b/keys/tde/state.json" "$T/c/keys/tde/state.json" <<'PY'
import json, sys
for p in sys.argv[1:]:
    d = json.load(open(p))
    d["versions"].append({"version": 4, "state": "staged", "active_from": 0,
                          "active_until": 0, "verified": 0})
    d["serial"] += 1
    json.dump(d, open(p, "w"))
PY
[ ! -d "$T/a/keys/tde/4" ] || fail "v4 exists before the stage"
expect_rc 0 $P rotate tde --stage
[ -d "$T/a/keys/tde/4" ] && [ -d "$T/c/keys/tde/4" ] || fail "the recorded stage was not made"
expect_rc 0 $P rotate tde --activate
for e in env1 env2 env3; do
    expect_rc 0 $P unwrap --in "$T/$e" --replica c --out "$T/back.$e"
    cmp "$T/dek" "$T/back.$e" || fail "$e unwrapped another DEK"
done
echo "ok: one store's word"
