#!/bin/sh
# keyplane quickstart, on the embedded default (the file plugin) plus a SoftHSM2 escrow token:
# two file stores stand for two regions. keyplane init creates the two (empty) file stores;
# keyplane apply creates the protector in region-a and replicates it to region-b and the HSM; verify proves every copy usable; a DEK wrapped in
# region-a unwraps in region-b; region-a is "lost" and unwrap fails over, then rebuilt from the
# escrow by restore (which makes its new store); the protector is rotated (staged everywhere,
# verified, activated) and the envelope moved to the new version.
#
# Everything it makes stays under build/ (ignored by git): the stores, the token and keyplane's
# state directory (journal and lock, --state-dir build/quickstart/state), so the source tree is
# left as it was (`git status` shows nothing).
#
# Usage: scripts/quickstart.sh   (builds keyplane and every plugin of plugins/ into build/release
#                                 first, unless KP_BIN is set)
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
    # every plugin of the tree (plugins/NAME builds the target NAME-plugin), so that step 1
    # lists them all
    plugins=$(for d in plugins/*/CMakeLists.txt; do
        printf '%s-plugin ' "$(basename "$(dirname "$d")")"
    done)
    # shellcheck disable=SC2086
    cmake --build build/release --target keyplane-cli $plugins \
        -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
    KP_BIN=build/release/bin/keyplane
fi
kp() {
    echo "\$ keyplane $*"
    "$KP_BIN" --policy "$policy" --state-dir "$state/state" "$@"
}

umask 077
rm -rf "$state"
mkdir -p "$state/tokens"
# Fresh random secrets each run: the quickstart stores are thrown away each time.
KEYPLANE_QUICKSTART_PASSPHRASE=${KEYPLANE_QUICKSTART_PASSPHRASE:-$(openssl rand -hex 32)}
KEYPLANE_QUICKSTART_HSM_PIN=$(openssl rand -hex 8)
export KEYPLANE_QUICKSTART_PASSPHRASE KEYPLANE_QUICKSTART_HSM_PIN
# The escrow HSM: a SoftHSM2 token of its own, made from scratch.
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$(realpath "$state")" >"$state/softhsm2.conf"
SOFTHSM2_CONF=$(realpath "$state/softhsm2.conf")
export SOFTHSM2_CONF
softhsm2-util --init-token --free --label quickstart-escrow --so-pin "$(openssl rand -hex 8)" \
    --pin "$KEYPLANE_QUICKSTART_HSM_PIN" >/dev/null

echo "== 1. the plugins keyplane can load"
kp plugins
echo
echo "== 2. the policy: two file regions and an HSM escrow, one chain (tde-demo)"
kp policy validate
kp init # the file stores are made here, explicitly: nothing else creates one
kp check
echo
echo "== 3. plan and apply: the protector is born in region-a and copied everywhere"
kp plan
kp apply
kp apply
echo
echo "== 4. verify: every copy holds the same usable key"
kp verify
echo
echo "== 5. wrap a fresh 256-bit DEK in region-a, unwrap it in region-b"
openssl rand 32 >"$state/dek"
kp wrap --chain tde-demo --replica region-a --dek "file:$state/dek" --out "$state/dek.envelope"
echo "envelope: $(cut -c1-150 "$state/dek.envelope")..."
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
cmp -s "$state/dek" "$state/dek.failover" || { echo "RESULT: failover MISMATCH" >&2; exit 1; }
echo "RESULT: with region-a gone, the DEK was unwrapped in region-b"
echo
echo "== 7. rebuild region-a from the HSM escrow (restore makes its new, empty store first)"
rm -rf "$state/region-a.lost"
kp restore tde-demo --to region-a --from hsm-escrow
echo
echo "== 8. rotate: stage v2 everywhere and prove it, then activate it"
kp rotate tde-demo --stage
kp rotate tde-demo --activate
kp verify
kp status
echo
echo "== 9. move the envelope to v2 (the data stays as it is) and unwrap it in the HSM escrow"
kp rewrap "$state/dek.envelope"
kp unwrap --replica hsm-escrow --in "$state/dek.envelope" --out "$state/dek.from-escrow"
cmp -s "$state/dek" "$state/dek.from-escrow" || { echo "RESULT: rewrap MISMATCH" >&2; exit 1; }
echo "RESULT: after rotation the same DEK unwraps under v2, in the escrow HSM too"
echo
echo "quickstart: OK (stores in $state)"
