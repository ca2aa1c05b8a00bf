#!/bin/sh
# Runs the provider kit's unit test (test_kit) against a real Key Vault emulator over TLS.
# Usage: run_kit_test.sh TEST_BINARY
# Starts one vault ("kit") with vaultctl.py in a fresh directory, exports KV_CA, KV_KIT_URL and
# KV_KIT_PORT, runs the binary, and always stops the vault. KP_KEEP=1 keeps the directory
# (logs, state) for debugging.
set -eu
test_bin=$1
here=$(cd "$(dirname "$0")/.." && pwd)
py=${KP_PYTHON:-/usr/bin/python3}
vaultctl="$here/emulators/azure_keyvault/vaultctl.py"
dir=$(mktemp -d "${TMPDIR:-/tmp}/kp-kit.XXXXXX")

cleanup() {
    "$py" "$vaultctl" stop-all --dir "$dir" >/dev/null 2>&1 || true
    if [ -n "${KP_KEEP:-}" ]; then
        echo "kept $dir" >&2
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$py" "$vaultctl" start --dir "$dir" --name kit >/dev/null
eval "$("$py" "$vaultctl" env --dir "$dir")"
KP_KIT_TMP=$dir
export KP_KIT_TMP

rc=0
"$test_bin" || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "test_kit failed ($rc); the vault's log:" >&2
    tail -n 30 "$dir/kit.log" >&2 || true
fi
exit "$rc"
