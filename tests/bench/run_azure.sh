#!/bin/sh
# Runs tests/bench/azure: sh tests/bench/run_azure.sh BUILD_DIR [OPS] [ROUNDS]. Starts one
# emulated Key Vault (vaultctl.py, in a temp dir, always stopped), writes a policy with one
# azure-keyvault instance, and prints unwrapKey latency through keyplane against raw libcurl.
# Defaults: 300 ops per side per round, 5 rounds. KP_KEEP=1 keeps the temp dir (vault log).
#
# The emulator must set TCP_NODELAY (emulator.py Handler.setup): it answers with two writes,
# headers then body, and with Nagle's algorithm on every answer waits for the client's delayed
# ACK, about 40 ms on Linux, which hides everything measured here. The runner says so when the
# raw p50 looks like that stall.
set -eu
build=$(cd "${1:?usage: run_azure.sh BUILD_DIR [OPS] [ROUNDS]}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
py=${KP_PYTHON:-/usr/bin/python3}
vaultctl="$here/../emulators/azure_keyvault/vaultctl.py"
tenant=00000000-0000-0000-0000-000000000001
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-azure-XXXXXX")
cleanup() {
    "$py" "$vaultctl" stop-all --dir "$T/vaults" --kill >/dev/null 2>&1 || true
    if [ -n "${KP_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "run_azure.sh: $*" >&2; exit 1; }

"$py" "$vaultctl" start --dir "$T/vaults" --name vault1 >/dev/null || fail "cannot start the vault"
eval "$("$py" "$vaultctl" env --dir "$T/vaults")"
[ -n "${KV_VAULT1_URL:-}" ] && [ -f "$KV_CA" ] || fail "vaultctl env"

cat >"$T/policy.yaml" <<EOF
version: 1
providers:
  vault1:
    plugin: azure-keyvault
    vault_url: $KV_VAULT1_URL
    tenant: $tenant
    client_id: kp-client
    client_secret: env:KP_BENCH_AZ_SECRET
    authority: $KV_VAULT1_URL
    ca_bundle: $KV_CA
    verify_challenge_resource: false
EOF
KP_BENCH_AZ_SECRET=kp-secret
export KP_BENCH_AZ_SECRET

rc=0
"$build/bin/bench_azure" "$build/lib/keyplane/plugins" "$T/policy.yaml" vault1 "$KV_CA" \
    "$KV_VAULT1_URL/$tenant/oauth2/v2.0/token" kp-client KP_BENCH_AZ_SECRET \
    "${2:-300}" "${3:-5}" >"$T/out" || rc=$?
cat "$T/out"
if [ "$rc" -ne 0 ]; then
    tail -n 20 "$T/vaults/vault1.log" >&2 2>/dev/null || true
    fail "bench_azure failed ($rc)"
fi
grep -q '^azure unwrap: raw p50 .* | keyplane p50 .* | p50 overhead' "$T/out" ||
    fail "no summary line"
# a loopback round trip of 35 ms or more is the delayed-ACK stall, not the client
awk '/^azure unwrap:/ && $5 + 0 >= 35 {
    print "note: raw p50 >= 35 ms on loopback: the emulator stalls on delayed ACKs (Nagle), " \
          "so the overhead figure says little"
}' "$T/out"
