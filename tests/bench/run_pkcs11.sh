#!/bin/sh
# Runs tests/bench/pkcs11 on a fresh SoftHSM2 token: sh tests/bench/run_pkcs11.sh BUILD_DIR
# [PAIRS] [ROUNDS]. Prints keyplane's wrap+unwrap rate against direct PKCS#11 calls.
set -eu
build=$(cd "${1:?usage: run_pkcs11.sh BUILD_DIR [PAIRS] [ROUNDS]}" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "run_pkcs11.sh: $*" >&2; exit 1; }
. "$(dirname "$0")/../cli/softhsm.sh"
softhsm_token bench 424242
KP_BENCH_PIN=424242
export KP_BENCH_PIN
"$build/bin/bench_pkcs11" "$build/lib/keyplane/plugins" "$SOFTHSM_MODULE" bench KP_BENCH_PIN \
    "${2:-200}" "${3:-3}"
