#!/bin/sh
# Runs tests/bench/verify: sh tests/bench/run_verify.sh BUILD_DIR [CHAINS] [ROUNDS] [BITS].
# Makes CHAINS chains (RSA BITS, default 1000 and 2048) replicated to 3 file stores (the default
# 100,000 PBKDF2 iterations), then times `keyplane verify` against the RSA-OAEP decryptions it
# performs, done with OpenSSL on the same keys (bench_verify). Setting up 1,000 chains takes a
# few minutes; KP_BENCH_DIR=DIR keeps the stores there and reuses them on the next run.
set -eu
build=$(cd "${1:?usage: run_verify.sh BUILD_DIR [CHAINS] [ROUNDS] [BITS]}" && pwd)
chains=${2:-1000}
rounds=${3:-5}
bits=${4:-2048}
if [ -n "${KP_BENCH_DIR:-}" ]; then
    T=$KP_BENCH_DIR
    mkdir -p "$T"
else
    T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-XXXXXX")
    trap 'rm -rf "$T"' EXIT
fi
KP=$build/bin/keyplane
KP_BENCH_PASS=bench-verify-passphrase
export KP_BENCH_PASS
KEYPLANE_STATE_DIR=$T/state
export KEYPLANE_STATE_DIR
policy=$T/verify-$chains-$bits.yaml
if [ ! -f "$policy" ]; then
    {
        echo "version: 1"
        echo "providers:"
        for s in s1 s2 s3; do
            echo "  $s: {plugin: file, path: $chains-$bits/$s, passphrase: env:KP_BENCH_PASS}"
        done
        echo "chains:"
        i=1
        while [ "$i" -le "$chains" ]; do
            printf '  c%05d:\n    protector: {type: rsa, bits: %s, origin: s1, exportable: true}\n' "$i" "$bits"
            echo "    replicas: [s1, s2, s3]"
            echo "    algorithm: RSA-OAEP-256"
            i=$((i + 1))
        done
    } >"$policy.tmp"
    "$KP" --policy "$policy.tmp" init >/dev/null
    echo "setting up $chains chains x 3 file stores (RSA-$bits)..." >&2
    "$KP" --policy "$policy.tmp" -q apply --workers 2
    mv "$policy.tmp" "$policy"
fi
exec "$build/bin/bench_verify" "$KP" "$policy" "$rounds" "$T/$chains-$bits/s1" \
    "$T/$chains-$bits/s2" "$T/$chains-$bits/s3"
