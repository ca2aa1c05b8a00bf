#!/bin/sh
# Two `keyplane apply` runs started together on one policy (an HSM origin and two file regions):
# the policy lock serialises them, both succeed, and the token never holds a version twice.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
for round in 1 2 3; do
    rm -rf "$T/tokens" "$T/west" "$T/east" "$KEYPLANE_STATE_DIR"
    mkdir -p "$T/tokens"
    hsm_and_regions 135246
    hsm_tde_chain
    init_stores "$T/policy.yaml"
    "$KP_BIN" --policy "$T/policy.yaml" apply >"$T/a1" 2>&1 &
    p1=$!
    "$KP_BIN" --policy "$T/policy.yaml" apply >"$T/a2" 2>&1 &
    p2=$!
    wait $p1 || { cat "$T/a1"; fail "round $round: first apply failed"; }
    wait $p2 || { cat "$T/a2"; fail "round $round: second apply failed"; }
    expect_rc 0 --policy "$T/policy.yaml" verify
    [ "$(p11_objects escrow $HSM_PIN)" -eq 2 ] || fail "round $round: token holds $(p11_objects escrow $HSM_PIN) objects, want 2"
done
echo "ok: concurrent applies serialised, 3 rounds"
