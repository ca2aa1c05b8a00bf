#!/bin/sh
# Two `keyplane apply` runs started together on one policy (an HSM origin and two file regions):
# the policy lock serialises them, both succeed, and the token never holds a version twice.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
HSM_PIN=135246
KP_TEST_PASS=$(openssl rand -hex 16)
export HSM_PIN KP_TEST_PASS
for round in 1 2 3; do
    rm -rf "$T/tokens" "$T/west" "$T/east" "$T/policy.yaml.journal"
    mkdir -p "$T/tokens"
    softhsm_token escrow $HSM_PIN
    cat >"$T/policy.yaml" <<YAML
version: 1
providers:
  hsm: {plugin: pkcs11, module: $SOFTHSM_MODULE, token: escrow, pin: env:HSM_PIN}
  west: {plugin: file, path: west, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
  east: {plugin: file, path: east, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}
    replicas: [west, east]
    escrow: [hsm]
    algorithm: RSA-OAEP
YAML
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
