#!/bin/sh
# Runs tests/bench/unwrap: sh tests/bench/run_unwrap.sh BUILD_DIR [MS] [ROUNDS] [smoke]
# (each side runs MS milliseconds per round, default 1000, and ROUNDS rounds, default 7).
# In-process kp_chain_unwrap, as an engine embedding libkeyplane calls it (bench_unwrap), four
# comparisons in one run (issue 13):
#   target 5  a file store's chain against raw OpenSSL RSA-OAEP on the same key (at most 1.05x)
#   target 3  the chain with 32 versions against the chain with one (at most 1.1x)
#   target 3  a SoftHSM2 token also holding 300 unrelated keypairs against one holding only the
#             chain (at most 1.2x)
#   target 6  the DEK cache on: cached unwraps per second (at least 1,000,000)
# "smoke" makes 3 versions and 3 unrelated keypairs instead (ctest's bench.unwrap.smoke).
set -eu
build=$(cd "${1:?usage: run_unwrap.sh BUILD_DIR [MS] [ROUNDS] [smoke]}" && pwd)
ms=${2:-1000}
rounds=${3:-7}
versions=32
others=300
if [ "${4:-}" = smoke ]; then
    versions=3
    others=3
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-XXXXXX")
[ -n "${KP_KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
fail() { echo "run_unwrap.sh: $*" >&2; exit 1; }
. "$(dirname "$0")/../cli/softhsm.sh"
KP=$build/bin/keyplane
B=$build/bin/bench_unwrap
KP_BENCH_PIN=424242
KP_BENCH_PASS=bench-unwrap-passphrase
KEYPLANE_STATE_DIR=$T/state
KEYPLANE_PLUGIN_PATH=$build/lib/keyplane/plugins
export KP_BENCH_PIN KP_BENCH_PASS KEYPLANE_STATE_DIR KEYPLANE_PLUGIN_PATH
softhsm_token one "$KP_BENCH_PIN"
softhsm_token full "$KP_BENCH_PIN"

# policy NAME STORE_LINE: $T/NAME.yaml with the store s and the chain c on it alone.
policy() {
    cat >"$T/$1.yaml" <<YAML
version: 1
providers:
  s: $2
chains:
  c:
    protector: {type: rsa, bits: 2048, origin: s}
    replicas: [s]
    algorithm: RSA-OAEP
YAML
}
policy file1 "{plugin: file, path: file1, passphrase: env:KP_BENCH_PASS}"
policy filen "{plugin: file, path: filen, passphrase: env:KP_BENCH_PASS}"
policy tok1 "{plugin: pkcs11, module: $SOFTHSM_MODULE, token: one, pin: env:KP_BENCH_PIN}"
policy tokn "{plugin: pkcs11, module: $SOFTHSM_MODULE, token: full, pin: env:KP_BENCH_PIN}"

echo "setting up: a chain in 2 file stores and 2 tokens, $versions versions in one store," \
    "$others unrelated keypairs on one token..." >&2
"$KP" --policy "$T/file1.yaml" init s >/dev/null
"$KP" --policy "$T/filen.yaml" init s >/dev/null
for p in file1 filen tok1 tokn; do
    "$KP" --policy "$T/$p.yaml" -q apply || fail "apply of $p"
done
i=1
while [ "$i" -lt "$versions" ]; do
    "$KP" --policy "$T/filen.yaml" -q key create --chain c >/dev/null || fail "key create"
    i=$((i + 1))
done
i=1
while [ "$i" -le "$others" ]; do
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label full --login --pin "$KP_BENCH_PIN" \
        --keypairgen --key-type rsa:1024 --label "other-$i" --id "$(printf '%04x' "$i")" \
        >/dev/null 2>&1 || fail "cannot make unrelated keypair $i"
    i=$((i + 1))
done

echo "== target 5: in-process unwrap against raw OpenSSL RSA-OAEP (at most 1.05x)"
"$B" "$ms" "$rounds" c "raw OpenSSL" "raw:$T/file1:$T/file1.yaml" \
    "keyplane" "kp:$T/file1.yaml" "at most 1.05x"
echo "== target 3: file store, $versions versions against 1 (at most 1.1x)"
"$B" "$ms" "$rounds" c "1 version" "kp:$T/file1.yaml" \
    "$versions versions" "kp:$T/filen.yaml" "at most 1.1x"
echo "== target 3: token with $others unrelated keypairs against a token with none (at most 1.2x)"
"$B" "$ms" "$rounds" c "token, chain only" "kp:$T/tok1.yaml" \
    "token + $others keypairs" "kp:$T/tokn.yaml" "at most 1.2x"
echo "== target 6: DEK cache on, against raw OpenSSL RSA-OAEP (at least 1,000,000 unwraps/s)"
"$B" "$ms" "$rounds" c "raw OpenSSL" "raw:$T/file1:$T/file1.yaml" \
    "keyplane, DEK cache" "cache:$T/file1.yaml" "at least 1000000/s"
