#!/bin/sh
# The quickstart story by hand: a protector in two regions, wrap in one, unwrap in the other,
# and `unwrap` failing over when the first region is gone.
. "$(dirname "$0")/lib.sh"
two_regions
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P check --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] and len(d["instances"])==2, d' "$T/out"
expect_rc 0 $P key create --chain tde --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"]==1 and d["instance"]=="region-a", d' "$T/out"
expect_rc 0 $P key list --json
"$PY" -c '
import json, sys
k = json.load(open(sys.argv[1]))["keys"]
assert sorted(x["instance"] for x in k) == ["region-a", "region-b"], k
assert len({x["fingerprint"] for x in k}) == 1, k
' "$T/out"
head -c 32 /dev/urandom >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --replica region-a --out "$T/env"
expect_rc 0 $P unwrap --in "$T/env" --replica region-b --out "$T/dek.b"
cmp "$T/dek" "$T/dek.b" || fail "region-b unwrapped a different DEK"
# stdin and fd sources work too, and unwrap reads the envelope from stdin.
"$KP_BIN" $P wrap --chain tde <"$T/dek" >"$T/env2" || fail "wrap from stdin"
"$KP_BIN" $P unwrap --out "$T/dek.c" <"$T/env2" 2>/dev/null || fail "unwrap from stdin"
cmp "$T/dek" "$T/dek.c" || fail "stdin round trip"
"$KP_BIN" $P wrap --chain tde --dek fd:7 --out "$T/env3" 7<"$T/dek" 2>/dev/null || fail "fd source"
# Region a is lost: unwrap fails over to b and says so.
mv "$T/a" "$T/a.lost"
expect_rc 0 $P unwrap --in "$T/env" --out "$T/dek.d" --json
expect_in "$T/err" "unwrap with region-a failed"
expect_in "$T/err" "failing over to region-b"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="region-b" and d["bytes"]==32, d' "$T/out"
cmp "$T/dek" "$T/dek.d" || fail "failover unwrapped a different DEK"
# Wrap with region-a (the origin) lost: its store is unreachable, not empty, and one store alone
# (region-b, one of two) cannot confirm a version, so wrap refuses; naming region-b is the
# operator's word (docs/engine.md, invariant 2), and wrap goes on there.
expect_rc 5 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env.dr"
expect_in "$T/err" "no confirmed protector version"
expect_in "$T/err" "the origin region-a is unreachable: name the keystore you trust with --replica"
expect_rc 0 $P wrap --chain tde --replica region-b --dek "file:$T/dek" --out "$T/env.dr" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="region-b" and d["version"]==1, d' "$T/out"
expect_rc 0 $P check region-b
# Pinned to the lost region: unreachable (exit 6, its store is not there), not "no such key".
expect_rc 6 $P unwrap --in "$T/env" --replica region-a --out "$T/x"
expect_in "$T/err" "region-a: file store $T/a is not initialised"
# Both gone: a clear error naming both (unreachable: exit 6, retry once they are back).
mv "$T/b" "$T/b.lost"
expect_rc 6 $P unwrap --in "$T/env" --out "$T/x"
expect_in "$T/err" "no replica of chain 'tde' could unwrap (region-a: service unavailable; region-b: service unavailable)"
[ ! -e "$T/x" ] || fail "a failed unwrap left an output file"
echo "ok: failover"
