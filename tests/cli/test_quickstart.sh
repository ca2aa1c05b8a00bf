#!/bin/sh
# The README's quickstart runs end to end (on a copy of the policy, so the source tree is left
# alone) and shows that region-b unwraps what region-a wrapped.
. "$(dirname "$0")/lib.sh"
mkdir -p "$T/config"
cp "$KP_SRC/config/quickstart.yaml" "$T/config/"
set +e
KEYPLANE_QUICKSTART_POLICY="$T/config/quickstart.yaml" sh "$KP_SRC/scripts/quickstart.sh" \
    >"$T/qs.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || { cat "$T/qs.out"; fail "quickstart exited $rc"; }
expect_in "$T/qs.out" "RESULT: the DEK unwrapped in region-b equals the DEK wrapped in region-a"
expect_in "$T/qs.out" "region-a: initialised"
expect_in "$T/qs.out" "region-b: initialised"
expect_in "$T/qs.out" "failing over to region-b"
expect_in "$T/qs.out" "initialised region-a: a new, empty store"
expect_in "$T/qs.out" "restored: region-a holds every version of tde-demo, each proved usable"
expect_in "$T/qs.out" "staged tde-demo v2: replicated and proved usable in every keystore"
expect_in "$T/qs.out" "activated tde-demo v2"
expect_in "$T/qs.out" "RESULT: after rotation the same DEK unwraps under v2, in the escrow HSM too"
[ "$(grep -c '^chain tde-demo: ok' "$T/qs.out")" -ge 3 ] || fail "verify did not pass three times"
expect_in "$T/qs.out" "quickstart: OK"
[ -d "$T/build/quickstart/region-b/keys/tde-demo/1" ] || fail "no replica in region-b"
[ -d "$T/build/quickstart/region-b/keys/tde-demo/2" ] || fail "no v2 in region-b"
echo "ok: quickstart"
