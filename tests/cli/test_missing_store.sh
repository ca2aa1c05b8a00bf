#!/bin/sh
# A missing store is unreachable, never empty (issue 11, finding 3). With both file stores of a
# chain moved away (a disk not mounted yet), plan proposes no new v1 and apply creates nothing:
# no directory appears, and apply fails naming the stores; once they are back, the envelope
# wrapped before unwraps and verify shows the one version there ever was. A store is created only
# by 'keyplane init' (or by restore for the store it names): a never-initialised one gives the
# clear error on apply, check reports it, and init says so when run twice. verify and status name
# each missing store with its reason, in text and JSON, though no version is there to show it.
. "$(dirname "$0")/lib.sh"
two_regions
P="--policy $T/policy.yaml"

# Never initialised: every command that reaches the stores says so; nothing is created.
expect_rc 1 $P apply
expect_in "$T/err" "region-a: file store $T/a is not initialised (no keyplane-store.json)"
expect_in "$T/err" "bring it back; to create a new, empty store there, run 'keyplane init'"
expect_in "$T/out" "nothing applied"
[ ! -e "$T/a" ] && [ ! -e "$T/b" ] || fail "apply created a store that was never initialised"
expect_rc 1 $P check region-a
expect_in "$T/out" "FAIL  directory      file store $T/a is not initialised"
openssl rand 32 >"$T/dek"
expect_rc 1 $P key list --instance region-a
expect_in "$T/err" "is not initialised"
expect_rc 6 $P key create --chain tde
expect_in "$T/err" "is not initialised"
[ ! -e "$T/a" ] || fail "key create created the store"

# A path that is a file cannot be made a store: init says why, naming the instance once.
: >"$T/b"
expect_rc 3 $P init region-b
expect_in "$T/err" "keyplane: error: init region-b: path $T/b is not a directory"
! grep -q "region-b: region-b:" "$T/err" || fail "init repeated the instance name: $(cat "$T/err")"
expect_rc 3 $P init region-b --json
"$PY" -c '
import json, sys
(i,) = json.load(open(sys.argv[1]))["instances"]
assert i["result"] == "failed" and i["detail"].startswith("path "), i
' "$T/out"
rm "$T/b"

# init makes both (0700, with the header), a second init leaves them as they are.
expect_rc 0 $P init
expect_in "$T/out" "region-a: initialised"
expect_in "$T/out" "region-b: initialised"
[ "$(stat -c %a "$T/a")" = 700 ] || fail "store directory is not 0700"
[ -f "$T/a/keyplane-store.json" ] || fail "init wrote no header"
expect_rc 0 $P init region-b
expect_in "$T/out" "region-b: already initialised"
expect_rc 0 $P init --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"], d
assert [(i["instance"], i["result"]) for i in d["instances"]] == [
    ("region-a", "already initialised"), ("region-b", "already initialised")], d
' "$T/out"
expect_rc 5 $P init nosuch
expect_rc 0 $P check

# init + apply works; a DEK is wrapped under v1.
expect_rc 0 $P apply
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/dek.env"

# Both disks "not mounted": plan proposes nothing to create, apply creates nothing.
mv "$T/a" "$T/a.away"
mv "$T/b" "$T/b.away"
expect_rc 1 $P plan --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["actions"] == [], d["actions"]
assert sorted((f["finding"], f["instance"]) for f in d["findings"]) == [
    ("unreachable", "region-a"), ("unreachable", "region-b")], d["findings"]
assert all("is not initialised" in f["detail"] for f in d["findings"]), d["findings"]
' "$T/out"
expect_rc 1 $P apply
expect_in "$T/err" "region-b: file store $T/b is not initialised"
# verify and status have no version to show: each store gets a gap line with its reason.
for cmd in verify status; do
    expect_rc 1 $P $cmd
    expect_in "$T/out" "chain tde: no protector version anywhere"
    expect_in "$T/err" "keyplane: gap: tde: region-a: unreachable: file store $T/a is not initialised"
    expect_in "$T/err" "keyplane: gap: tde: region-b: unreachable: file store $T/b is not initialised"
done
expect_rc 1 $P verify --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
(tde,) = d["chains"]
assert tde["versions"] == [] and not tde["ok"], tde
assert [u["instance"] for u in tde["unreachable"]] == ["region-a", "region-b"], tde
assert all("is not initialised" in u["detail"] for u in tde["unreachable"]), tde
' "$T/out"
[ ! -e "$T/a" ] && [ ! -e "$T/b" ] || fail "apply created a store while both were away"
kp $P wrap --chain tde --dek "file:$T/dek" --out "$T/dek.env2"
[ "$rc" -ne 0 ] || fail "wrap succeeded with every store away"
[ ! -e "$T/a" ] && [ ! -e "$T/b" ] || fail "wrap created a store"

# Back again: the old envelope unwraps, verify shows exactly the one version.
mv "$T/a.away" "$T/a"
mv "$T/b.away" "$T/b"
expect_rc 0 $P unwrap --in "$T/dek.env" --out "$T/dek.again"
cmp -s "$T/dek" "$T/dek.again" || fail "the envelope wrapped before unwrapped to another DEK"
expect_rc 0 $P verify --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"], d
(tde,) = d["chains"]
assert [v["version"] for v in tde["versions"]] == [1], tde
assert tde["unreachable"] == [], tde
' "$T/out"
echo "ok: missing_store"
