#!/bin/sh
# cli.policy_bounds: `policy validate` stays cheap and says one clear thing on policies built to
# make it work hard or talk at length (issue 12, finding 1 and the policy part of finding 10):
# the 192 KB alias bomb (one 90,000-entry list aliased by 1,000 chains) and its 20-chain variant
# fail with one error line, within 256 MiB of address space and 30 s; a policy with a thousand
# errors prints the first 50 and "... and 950 more errors"; an instance whose plugin is unknown is
# one error, with the plugins there are, not one more per chain that names it; a boolean reads
# the same in any of its spellings. The small alias bombs are fixtures in
# tests/fixtures/policies/invalid (policy.invalid.alias-*).
. "$(dirname "$0")/lib.sh"

# 256 MiB of address space where the binary starts in that much (a sanitizer build reserves
# terabytes of it, and is bounded by time only).
limit=262144
if ! (ulimit -v $limit && "$KP_BIN" --version) >/dev/null 2>&1; then
    limit=unlimited
fi

# validate ARGS...: `keyplane policy validate ARGS`, bounded; $T/out, $T/err, $rc as kp() does.
validate() {
    set +e
    (ulimit -v $limit && exec timeout -s KILL 30 "$KP_BIN" policy validate "$@") \
        >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    if [ "$rc" -ge 124 ]; then
        cat "$T/err" >&2
        fail "policy validate $* was stopped (exit $rc): not bounded"
    fi
}

# expect_lines FILE TEXT: FILE holds exactly TEXT (every line of it, nothing more).
expect_lines() {
    printf '%s\n' "$2" >"$T/want"
    if ! cmp -s "$1" "$T/want"; then
        echo "--- want" >&2; cat "$T/want" >&2; echo "--- got (first 5 lines)" >&2
        head -5 "$1" >&2
        fail "$1 is not what was expected"
    fi
}

head_policy() {
    echo "version: 1"
    echo "providers:"
    echo "  a: {plugin: file, path: $T/a, passphrase: env:KP_TEST_PASS}"
}

# The alias bomb: one 90,000-entry list, aliased by N chains.
for chains in 1000 20; do
    p=$T/bomb-$chains.yaml
    {
        head_policy
        "$PY" -c 'import sys; sys.stdout.write("x-stores: &s [" + ",".join(["a"] * 90000) + "]\n")'
        echo "chains:"
        i=0
        while [ $i -lt $chains ]; do
            echo "  c$i: {replicas: *s}"
            i=$((i + 1))
        done
    } >"$p"
    # Ten aliases repeat 900,010 nodes; c10's, with the 13 before them, the list and the
    # chains' own nodes, passes 1000000 there (line 16, column 19).
    validate "$p"
    [ "$rc" -eq 3 ] || fail "alias bomb of $chains chains: exit $rc, want 3"
    expect_lines "$T/err" "$p:16:19: error: more than 1000000 YAML nodes once aliases are expanded (an alias counts as every node it repeats)"
    [ ! -s "$T/out" ] || fail "alias bomb of $chains chains: something on stdout"
done
size=$(wc -c <"$T/bomb-1000.yaml")
[ "$size" -gt 180000 ] && [ "$size" -lt 210000 ] || fail "the bomb is $size bytes, not about 200 KB (the issue's was 192 KB)"
validate --json "$T/bomb-1000.yaml"
[ "$rc" -eq 3 ] || fail "alias bomb --json: exit $rc, want 3"
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is False and len(d["errors"]) == 1, d
e = d["errors"][0]
assert (e["line"], e["column"]) == (16, 19), e
assert e["message"] == "more than 1000000 YAML nodes once aliases are expanded (an alias counts as every node it repeats)", e
' "$T/out" || fail "alias bomb --json: not one error at 16:19"

# A thousand errors: the first 50, then one line for the rest, at the first one left out.
p=$T/many.yaml
{
    head_policy
    echo "chains:"
    i=0
    while [ $i -lt 1000 ]; do
        echo "  c$i: []"
        i=$((i + 1))
    done
} >"$p"
validate "$p"
[ "$rc" -eq 3 ] || fail "many errors: exit $rc, want 3"
[ "$(wc -l <"$T/err")" -eq 51 ] || fail "many errors: $(wc -l <"$T/err") lines, want 51"
head -1 "$T/err" >"$T/err.first"
expect_lines "$T/err.first" "$p:5:7: error: chain 'c0' must be a mapping"
tail -1 "$T/err" >"$T/err.last"
expect_lines "$T/err.last" "$p:55:8: error: ... and 950 more errors"

# An unknown plugin is one error, however many chains name its instance; it offers the plugins
# the directories hold (file among them) and the nearest name.
p=$T/cascade.yaml
{
    echo "version: 1"
    echo "providers:"
    echo "  a: {plugin: fiel, path: $T/a, passphrase: env:KP_TEST_PASS}"
    echo "chains:"
    i=0
    while [ $i -lt 20 ]; do
        echo "  c$i: {protector: {type: rsa, origin: a}, replicas: [a], escrow: [a]}"
        i=$((i + 1))
    done
} >"$p"
validate "$p"
[ "$rc" -eq 3 ] || fail "unknown plugin: exit $rc, want 3"
[ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "unknown plugin: more than one error"; }
grep -E -x -q "$p:3:15: error: instance 'a': unknown plugin 'fiel'; did you mean 'file'\\? available: ([a-z0-9_-]+, )*file(, [a-z0-9_-]+)* \\(plugin 'fiel' not found in [0-9]+ plugin director(y|ies)\\)" "$T/err" ||
    { cat "$T/err" >&2; fail "unknown plugin: not the line wanted"; }

# Booleans: any spelling, in a plugin's parameters as in the protector.
p=$T/bool.yaml
{
    echo "version: 1"
    echo "providers:"
    echo "  v: {plugin: azure-keyvault, vault_url: 'https://x.vault.azure.net', auth: managed_identity, hsm: YES, verify_challenge_resource: Off}"
    echo "  a: {plugin: file, path: $T/a, passphrase: env:KP_TEST_PASS}"
    echo "chains:"
    echo "  c: {protector: {type: rsa, origin: a, exportable: on}, replicas: [a, v]}"
} >"$p"
validate "$p"
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "booleans: exit $rc, want 0"; }
expect_lines "$T/out" "$p: valid (2 provider instances, 1 chain)"
sed 's/hsm: YES/hsm: 1/' "$p" >"$T/bool-bad.yaml"
validate "$T/bool-bad.yaml"
[ "$rc" -eq 3 ] || fail "boolean 1: exit $rc, want 3"
expect_lines "$T/err" "$T/bool-bad.yaml:3:100: error: instance 'v': parameter 'hsm' must be true or false (or yes/no, on/off)"
# Mappings: 'chains' holds more than other mappings' 1024 keys (10,000 chains validate); any
# other mapping keyplane reads stops at 1024 keys, with one error naming it.
p=$T/many.yaml
{
    echo "version: 1"
    echo "providers:"
    echo "  a: {plugin: file, path: a, passphrase: env:NOPE}"
    echo "chains:"
    i=0
    while [ $i -lt 10000 ]; do
        echo "  c$i: {protector: {type: rsa, origin: a}, replicas: [a]}"
        i=$((i + 1))
    done
} >"$p"
validate "$p"
[ "$rc" -eq 0 ] || { cat "$T/err" >&2; fail "10,000 chains: exit $rc, want 0"; }
p=$T/wide.yaml
{
    echo "version: 1"
    echo "providers:"
    printf '  a: {plugin: file, path: a'
    i=0
    while [ $i -lt 1025 ]; do
        printf ', k%d: %d' $i $i
        i=$((i + 1))
    done
    echo "}"
    echo "chains: {}"
} >"$p"
validate "$p"
[ "$rc" -eq 3 ] || fail "an instance of 1025 keys: exit $rc, want 3"
expect_lines "$T/err" "$p:3:6: error: instance 'a' has more than 1024 keys"
echo "ok"
