#!/bin/sh
# A wrong PIN costs one C_Login per token per process, however many chains open the token: an
# HSM locks its user PIN after a few wrong tries, and a cron `status` over many chains must not
# spend them. The refusal is remembered for that PIN only: the right PIN, given again, works.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
hsm_and_regions 246810
hsm_tde_chain
for c in tde2 tde3 tde4; do
    cat >>"$T/policy.yaml" <<YAML
  $c:
    protector: {type: rsa, bits: 2048, origin: west, exportable: true}
    replicas: [west, east]
    escrow: [hsm]
    algorithm: RSA-OAEP
YAML
done
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply

HSM_PIN=135790 expect_rc 1 $P status
cat "$T/out" "$T/err" >"$T/all"
tried=$(grep -c "C_Login: CKR_PIN_INCORRECT (wrong PIN for token 'escrow')" "$T/all" || true)
[ "$tried" -eq 1 ] || { cat "$T/all"; fail "the wrong PIN was tried $tried times, not once"; }
kept=$(grep -c "wrong PIN for token 'escrow' earlier in this process; not tried again" "$T/all" ||
    true)
[ "$kept" -ge 3 ] || { cat "$T/all"; fail "the other chains did not reuse the refusal ($kept)"; }

# The right PIN is not held to the wrong one's refusal.
expect_rc 0 $P status
echo "ok: pin_once"
