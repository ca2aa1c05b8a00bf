#!/bin/sh
# Corrupt chain-state documents do not hide (issue 11, finding 7). Every keystore's state.json
# replaced by `{garbage`: verify, status and plan exit 1 naming the unreadable documents (not a
# chain that never rotated); wrap refuses with the detail, not a bare "integrity check failed".
# One corrupt document while the origin's is fine: wrap refuses naming it, plan proposes the
# repair, apply makes it, and the chain is whole again.
. "$(dirname "$0")/lib.sh"
file_chain tde RSA-OAEP a b >"$T/policy.yaml"
P="--policy $T/policy.yaml"
expect_rc 0 $P init
expect_rc 0 $P apply
expect_rc 0 $P rotate tde --stage
expect_rc 0 $P rotate tde --activate
for s in a b; do cp "$T/$s/keys/tde/state.json" "$T/state.$s"; done
for s in a b; do printf '{garbage' >"$T/$s/keys/tde/state.json"; done

for cmd in verify status; do
    expect_rc 1 $P $cmd
    expect_in "$T/err" "the state document in a is unreadable"
    expect_in "$T/err" "the state document in b is unreadable"
done
expect_rc 1 $P status --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
c = d["chains"][0]
assert not d["ok"] and not c["ok"] and "unreadable" in c["problem"], d
' "$T/out" || fail "status --json does not report the unreadable documents"
expect_rc 1 $P plan
expect_in "$T/out" "! state       tde: a: cannot tell which version of chain 'tde' is active: the state document in a is unreadable"
openssl rand 32 >"$T/dek"
expect_rc 7 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"
expect_in "$T/err" "the state document in a is unreadable"
[ ! -e "$T/env" ] || fail "a refused wrap wrote an envelope"

# The origin's document is back; b's is still garbage.
cp "$T/state.a" "$T/a/keys/tde/state.json"
expect_rc 7 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"
expect_in "$T/err" "the state document in b is unreadable"
expect_rc 1 $P plan
expect_in "$T/out" "state   tde"
expect_rc 1 $P apply
cmp "$T/a/keys/tde/state.json" "$T/b/keys/tde/state.json" || fail "apply did not repair b's document"
expect_rc 0 $P verify
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 2, d' "$T/out"
echo "ok: corrupt state documents are reported"
