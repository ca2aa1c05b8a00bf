#!/bin/sh
# `keyplane apply` killed with SIGKILL at random points, 20 times: every rerun converges to a
# verified state, and no keystore ever holds a version twice or a version beyond v1.
. "$(dirname "$0")/lib.sh"
KP_TEST_PASS=$(openssl rand -hex 16)
export KP_TEST_PASS
{
    echo "version: 1"
    echo "providers:"
    for r in a b c; do
        echo "  $r: {plugin: file, path: $r, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}"
    done
    echo "chains:"
    for i in 1 2 3 4 5 6; do
        echo "  c$i: {protector: {type: rsa, bits: 2048, origin: a, exportable: true}, replicas: [a, b, c]}"
    done
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
killed=0
for round in $(seq 1 20); do
    rm -rf "$T/a" "$T/b" "$T/c"
    init_stores "$T/policy.yaml"
    # Kill after 0-600 ms: before, during and after the creates and the copies.
    delay=$(awk -v s="$round$$" 'BEGIN { srand(s); printf "%.3f", rand() * 0.6 }')
    "$KP_BIN" $P apply --workers 3 >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    if kill -KILL "$pid" 2>/dev/null; then
        killed=$((killed + 1))
    fi
    wait "$pid" 2>/dev/null || true
    expect_rc 0 $P apply
    expect_rc 0 $P verify
    # No duplicates: exactly one version (v1) of every chain in every store, nothing half-made.
    for r in a b c; do
        for i in 1 2 3 4 5 6; do
            n=$(ls "$T/$r/keys/c$i" | grep -c .)
            [ "$n" -eq 1 ] && [ -d "$T/$r/keys/c$i/1" ] \
                || fail "round $round: $r holds $(ls -a "$T/$r/keys/c$i" | tr '\n' ' ') for c$i"
        done
    done
done
[ "$killed" -ge 5 ] || fail "only $killed of 20 runs were still running when killed"
echo "ok: 20 rounds, $killed apply runs killed mid-way, every rerun converged"
