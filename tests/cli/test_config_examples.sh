#!/bin/sh
# Every example policy in config/ validates (secrets are references: nothing needs to be set).
. "$(dirname "$0")/lib.sh"
n=0
for policy in "$KP_SRC"/config/*.yaml; do
    expect_rc 0 policy validate "$policy"
    expect_in "$T/out" "valid"
    n=$((n + 1))
done
[ "$n" -ge 2 ] || fail "found only $n example policies"
echo "ok: $n example policies valid"
