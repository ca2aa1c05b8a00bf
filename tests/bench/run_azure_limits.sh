#!/bin/sh
# tests/bench/azure_limits: `keyplane apply` of CHAINS chains into two HSM-backed emulated Key
# Vaults with Key Vault's throttling limits on, against the minimum those limits imply.
#
#   sh tests/bench/run_azure_limits.sh BUILD_DIR [CHAINS] [SCALE] [WINDOW]
#
# Defaults: 40 chains, the documented limits (SCALE 1: 10 creates per vault per WINDOW, 10 s). Each
# chain is born in a SoftHSM2 token and copied into both vaults as a JWK import (the token's key
# wrap is not RFC 5649, so no BYOK and no key-exchange key; an import is what Key Vault counts as a
# create), so C = CHAINS creates per vault at L = max(1, floor(10 x SCALE)) per window (a BYOK
# origin would add a key-exchange key per chain, and the emulator's RSA-3072 key generation in
# Python, not the limits, would set the pace). The vaults run side
# by side; in each, the k-th create cannot be admitted before floor(k / L) windows have passed,
# so the limit-implied minimum is
#     minimum = floor((C - 1) / L) x WINDOW + T0 / ceil(C / L)
# where T0 is the same apply (other chain names, same stores) with the limits off and the
# plugin's pacing off (`pace: false`), measured first in the same run: the waits the limits force,
# plus one window's share of the work. The protectors of both sets of chains are made in the
# token beforehand (an untimed apply copying them to a file store), so both timed runs only copy
# into the vaults. Printed: the
# wall time against the minimum (target at most 1.15x), the share of the vaults' keys requests
# answered 429 by the limits (target at most 5%), and the failed actions (target 0).
# KP_BENCH_PACE=false runs the limited apply without the plugin's pacing (only the vault's 429s
# slow it down), for comparison. KP_BENCH_MAX_THROTTLED=N fails the run when more than N keys
# requests were throttled (the smoke test: the pacer learns each vault's budget from one 429).
# KP_KEEP=1 keeps the temp dir (vault logs, journals).
set -eu
build=$(cd "${1:?usage: run_azure_limits.sh BUILD_DIR [CHAINS] [SCALE] [WINDOW]}" && pwd)
chains=${2:-40}
scale=${3:-1}
window=${4:-10}
here=$(cd "$(dirname "$0")" && pwd)
py=${KP_PYTHON:-/usr/bin/python3}
vaultctl="$here/../emulators/azure_keyvault/vaultctl.py"
kp="$build/bin/keyplane"
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-limits-XXXXXX")
export T
cleanup() {
    "$py" "$vaultctl" stop-all --dir "$T/vaults" --kill >/dev/null 2>&1 || true
    if [ -n "${KP_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "run_azure_limits.sh: $*" >&2; exit 1; }
. "$here/../cli/softhsm.sh"
softhsm_token origin 424242

for v in vault1 vault2; do
    "$py" "$vaultctl" start --dir "$T/vaults" --name $v -- --limits-window "$window" \
        --limits-scale "$scale" >/dev/null || fail "cannot start $v"
done
eval "$("$py" "$vaultctl" env --dir "$T/vaults")"
KEYPLANE_STATE_DIR=$T/state
KP_BENCH_AZ_SECRET=kp-secret
KP_BENCH_PIN=424242
export KEYPLANE_STATE_DIR KP_BENCH_AZ_SECRET KP_BENCH_PIN

# policy PREFIX PACE [REPLICAS]: the token, both vaults (pace: PACE), CHAINS chains named
# PREFIX-1.. replicated to REPLICAS (default both vaults)
policy() {
    echo "version: 1"
    echo "providers:"
    echo "  hsm: {plugin: pkcs11, module: $SOFTHSM_MODULE, token: origin, pin: env:KP_BENCH_PIN}"
    echo "  scratch: {plugin: file, path: $T/scratch, passphrase: env:KP_BENCH_PIN, kdf_iterations: 10000}"
    for v in vault1 vault2; do
        url=$(eval echo "\$KV_$(echo $v | tr a-z A-Z)_URL")
        cat <<YAML
  $v:
    plugin: azure-keyvault
    vault_url: $url
    tenant: 00000000-0000-0000-0000-000000000001
    client_id: kp-client
    client_secret: env:KP_BENCH_AZ_SECRET
    authority: $url
    ca_bundle: $KV_CA
    verify_challenge_resource: false
    hsm: true
    pace: $2
YAML
    done
    echo "chains:"
    i=1
    while [ "$i" -le "$chains" ]; do
        echo "  $1-$i: {protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}, replicas: [${3:-vault1, vault2}], algorithm: RSA-OAEP}"
        i=$((i + 1))
    done
}
policy base false >"$T/base.yaml"
policy tde "${KP_BENCH_PACE:-true}" >"$T/tde.yaml"
{ policy base false scratch; policy tde false scratch | sed -n '/^chains:/,$p' | tail -n +2; } \
    >"$T/prep.yaml"
"$kp" --policy "$T/prep.yaml" init >/dev/null 2>"$T/prep.err" || { cat "$T/prep.err" >&2; fail "keyplane init"; }
"$kp" --policy "$T/prep.yaml" apply >/dev/null 2>"$T/prep.err" || { cat "$T/prep.err" >&2; fail "prep"; }

limits() { # on|off: the limits of both vaults (turning them on starts a fresh window)
    for v in vault1 vault2; do
        "$py" "$vaultctl" control --dir "$T/vaults" --name $v POST config \
            "{\"limits\": $([ "$1" = on ] && echo true || echo false)}" >/dev/null ||
            fail "cannot turn the limits $1 on $v"
    done
}
stat_sum() { # the sum of a stats counter over both vaults
    for v in vault1 vault2; do
        "$py" "$vaultctl" stats --dir "$T/vaults" --name $v
    done | "$py" -c 'import json, sys
print(sum(json.loads(l)[sys.argv[1]] for l in sys.stdin if l.strip()))' "$1"
}
now() { "$py" -c 'import time; print(time.monotonic())'; }
apply() { # POLICY OUT: wall seconds on stdout
    t0=$(now)
    "$kp" --policy "$1" apply --json >"$2" 2>"$2.err" || true
    t1=$(now)
    "$py" -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1"
}

limits off
base=$(apply "$T/base.yaml" "$T/base.json")
limits on
r0=$(stat_sum keys_requests)
q0=$(stat_sum limits_429)
wall=$(apply "$T/tde.yaml" "$T/tde.json")
r1=$(stat_sum keys_requests)
q1=$(stat_sum limits_429)
"$py" - "$T/base.json" "$T/tde.json" "$chains" "$scale" "$window" "$base" "$wall" \
    "$((r1 - r0))" "$((q1 - q0))" "${KP_BENCH_MAX_THROTTLED:-}" <<'PYEOF' || { cat "$T/tde.json.err" >&2; fail "failed"; }
import json, math, sys
base_doc, doc = (json.load(open(p)) for p in sys.argv[1:3])
chains, scale, window = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
t0, wall = float(sys.argv[6]), float(sys.argv[7])
requests, throttled = int(sys.argv[8]), int(sys.argv[9])
if base_doc.get("failed", 0):
    sys.exit("the baseline apply failed %d actions" % base_doc["failed"])
creates = chains
per = max(1, math.floor(10 * scale))
minimum = (creates - 1) // per * window + t0 / math.ceil(creates / per)
minimum = max(minimum, t0)
failed = doc.get("failed", 0)
done = sum(1 for r in doc.get("results", []) if r.get("status") == "KP_OK")
print("limits: %d creates per vault at %d per %.0f s; %d actions, %d done, %d failed"
      % (creates, per, window, len(doc.get("results", [])), done, failed))
print("limits: baseline (no limits) %.2f s; minimum %.2f s" % (t0, minimum))
print("azure limits: apply %.2f s = %.3fx the minimum | %d of %d keys requests throttled (%.1f%%)"
      " | %d failed" % (wall, wall / minimum, throttled, requests,
                         100.0 * throttled / max(1, requests), failed))
if failed:
    sys.exit("%d actions failed" % failed)
most = int(sys.argv[10]) if sys.argv[10] else -1
if 0 <= most < throttled:
    sys.exit("%d requests throttled, more than %d: the pacer did not keep to the budget it "
             "learnt" % (throttled, most))
PYEOF
