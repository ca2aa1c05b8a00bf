#!/bin/sh
# Runs tests/bench/cli for status: sh tests/bench/run_status.sh BUILD_DIR [CHAINS] [ROUNDS].
# CHAINS chains (default 100, RSA-2048) in two file stores, and the same chains with an escrow
# copy on a SoftHSM2 token: `keyplane status` of the policy with the escrow against the same
# policy without it (issue 13, target 2: within 1.5x). The token and stores are made fresh in a
# temp directory.
set -eu
build=$(cd "${1:?usage: run_status.sh BUILD_DIR [CHAINS] [ROUNDS]}" && pwd)
chains=${2:-100}
rounds=${3:-5}
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "run_status.sh: $*" >&2; exit 1; }
. "$(dirname "$0")/../cli/softhsm.sh"
softhsm_token escrow 424242
KP=$build/bin/keyplane
KP_BENCH_PIN=424242
KP_BENCH_PASS=bench-status-passphrase
KEYPLANE_STATE_DIR=$T/state
export KP_BENCH_PIN KP_BENCH_PASS KEYPLANE_STATE_DIR
# policy NAME ESCROW: $T/NAME.yaml, its chains with ESCROW as their escrow line (or none).
policy() {
    {
        echo "version: 1"
        echo "providers:"
        echo "  a: {plugin: file, path: a, passphrase: env:KP_BENCH_PASS}"
        echo "  b: {plugin: file, path: b, passphrase: env:KP_BENCH_PASS}"
        echo "  hsm: {plugin: pkcs11, module: $SOFTHSM_MODULE, token: escrow, pin: env:KP_BENCH_PIN}"
        echo "chains:"
        i=1
        while [ "$i" -le "$chains" ]; do
            printf '  c%05d:\n    protector: {type: rsa, bits: 2048, origin: a, exportable: true}\n' "$i"
            echo "    replicas: [a, b]"
            [ -n "$2" ] && echo "    escrow: [$2]"
            echo "    algorithm: RSA-OAEP"
            i=$((i + 1))
        done
    } >"$T/$1.yaml"
}
policy plain ""
policy escrow hsm
"$KP" --policy "$T/plain.yaml" init a b >/dev/null
echo "setting up $chains chains x 2 file stores + a SoftHSM2 escrow..." >&2
"$KP" --policy "$T/escrow.yaml" -q apply --workers 2
"$KP" --policy "$T/escrow.yaml" -q verify >/dev/null || fail "the escrow policy does not verify"
B=$build/bin
"$B/bench_cli" "$rounds" "status (2 file stores)" \
    "'$KP' --policy '$T/plain.yaml' status" "status (2 file stores + SoftHSM2 escrow)" \
    "'$KP' --policy '$T/escrow.yaml' status" "at most 1.5x"
"$B/bench_cli" "$rounds" "status (2 file stores), then the module's own start" \
    "'$KP' --policy '$T/plain.yaml' status >/dev/null && '$B/bench_p11_open' '$SOFTHSM_MODULE' escrow KP_BENCH_PIN" \
    "status (2 file stores + SoftHSM2 escrow)" "'$KP' --policy '$T/escrow.yaml' status"
