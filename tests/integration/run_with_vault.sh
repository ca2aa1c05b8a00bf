#!/bin/sh
# Runs a test program against one Key Vault emulator over TLS: keyplane_test(... VAULT NAME)
# (tests/CMakeLists.txt) registers a test through it; tests/support/kp_test_vault.h reads what
# it exports. Usage: run_with_vault.sh [--name NAME] PROGRAM [ARGS...]
# Starts the vault NAME (default vault1) with vaultctl.py in a fresh directory, exports KV_CA,
# KV_<NAME>_URL, KV_<NAME>_PORT and KP_VAULT_DIR (the directory: NAME.state/, NAME.log), runs
# the program, and always stops the vault (also on ^C or a crash).
# On a failure the vault's log tail follows the program's output. KP_KEEP=1 keeps the directory.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
py=${KP_PYTHON:-/usr/bin/python3}
vaultctl="$here/emulators/azure_keyvault/vaultctl.py"
name=vault1
if [ "${1:-}" = "--name" ]; then
    name=$2
    shift 2
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/kp-vault.XXXXXX")

cleanup() {
    "$py" "$vaultctl" stop-all --dir "$dir" --kill >/dev/null 2>&1 || true
    if [ -n "${KP_KEEP:-}" ]; then
        echo "kept $dir" >&2
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$py" "$vaultctl" start --dir "$dir" --name "$name" >/dev/null
eval "$("$py" "$vaultctl" env --dir "$dir")"
var=KV_$(echo "$name" | tr 'a-z-' 'A-Z_')_PORT
eval "port=\${$var:-}"
[ -n "$port" ] || { echo "run_with_vault.sh: vault $name is not running" >&2; exit 1; }
KP_VAULT_DIR=$dir
export KP_VAULT_DIR

rc=0
"$@" || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "$(basename "$1") failed ($rc); the vault's log:" >&2
    tail -n 30 "$dir/$name.log" >&2 || true
fi
exit "$rc"
