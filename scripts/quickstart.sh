#!/bin/sh
# keyplane quickstart, on the embedded default (the file plugin) only: two file stores stand for
# two regions. A protector is created in region-a and replicated to region-b; a DEK is wrapped
# in region-a and unwrapped in region-b; then region-a is "lost" and unwrap fails over.
#
# Usage: scripts/quickstart.sh   (builds keyplane into build/release first, unless KP_BIN is set)
set -eu
cd "$(dirname "$0")/.."
policy=${KEYPLANE_QUICKSTART_POLICY:-config/quickstart.yaml}
state=$(realpath -m --relative-to=. "$(dirname "$policy")/../build/quickstart")

if [ -z "${KP_BIN:-}" ]; then
    gen=""
    command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
    echo "== building keyplane (build/release)"
    # shellcheck disable=SC2086
    cmake -S . -B build/release $gen -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build/release --target keyplane-cli file-plugin -j "$(nproc 2>/dev/null || echo 2)" \
        >/dev/null
    KP_BIN=build/release/bin/keyplane
fi
kp() {
    echo "\$ keyplane $*" | sed "s|$policy|config/quickstart.yaml|"
    "$KP_BIN" --policy "$policy" "$@"
}

umask 077
rm -rf "$state"
mkdir -p "$state"
if [ -z "${KEYPLANE_QUICKSTART_PASSPHRASE:-}" ]; then
    # A fresh random passphrase each run: the quickstart stores are thrown away each time.
    KEYPLANE_QUICKSTART_PASSPHRASE=$(openssl rand -hex 32)
    export KEYPLANE_QUICKSTART_PASSPHRASE
fi

echo "== 1. the plugins keyplane can load"
kp plugins
echo
echo "== 2. the policy: two file instances (region-a, region-b), one chain (tde-demo)"
kp policy validate
kp check
echo
echo "== 3. create the protector in region-a and replicate it to region-b"
kp key create --chain tde-demo
kp key list
echo
echo "== 4. wrap a fresh 256-bit DEK in region-a"
openssl rand 32 >"$state/dek"
kp wrap --chain tde-demo --replica region-a --dek "file:$state/dek" --out "$state/dek.envelope"
echo "envelope: $(cut -c1-150 "$state/dek.envelope")..."
echo
echo "== 5. unwrap it in region-b"
kp unwrap --replica region-b --in "$state/dek.envelope" --out "$state/dek.from-region-b"
if cmp -s "$state/dek" "$state/dek.from-region-b"; then
    echo "RESULT: the DEK unwrapped in region-b equals the DEK wrapped in region-a"
else
    echo "RESULT: MISMATCH: region-b unwrapped a different DEK" >&2
    exit 1
fi
echo
echo "== 6. lose region-a; unwrap fails over to region-b"
mv "$state/region-a" "$state/region-a.lost"
kp unwrap --in "$state/dek.envelope" --out "$state/dek.failover"
mv "$state/region-a.lost" "$state/region-a"
cmp -s "$state/dek" "$state/dek.failover" || { echo "RESULT: failover MISMATCH" >&2; exit 1; }
echo "RESULT: with region-a gone, the DEK was unwrapped in region-b"
echo
echo "quickstart: OK (stores in $state)"
