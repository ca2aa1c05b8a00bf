#!/bin/sh
# Runs `keyplane policy validate` on one malformed policy whose first line says what to expect:
#   # expect: LINE:COL: REASON
# The line numbers in the expectation count that comment line too. Passes only when the command
# exits 3 and prints FILE:LINE:COL: error: ...REASON..., and never echoes an inline secret.
# Every run is bounded, so that a policy built to exhaust the validator (the alias bombs) fails
# here instead of hanging: 30 s each, and 256 MiB of address space where the binary starts in
# that much (a sanitizer build reserves terabytes of it, and is bounded by time only).
set -u
policy=$1
: "${KP_BIN:?KP_BIN must name the keyplane binary}"
expect=$(sed -n '1s/^# expect: //p' "$policy")
pos=${expect%%: *}
reason=${expect#*: }
limit=262144
if ! (ulimit -v $limit && "$KP_BIN" --version) >/dev/null 2>&1; then
    limit=unlimited
fi
bounded() {
    (ulimit -v $limit && exec timeout -s KILL 30 "$KP_BIN" "$@")
}
out=$(bounded policy validate "$policy" 2>&1)
rc=$?
if [ "$rc" -ne 3 ]; then
    echo "FAIL: $policy: exit $rc, want 3"; echo "$out"; exit 1
fi
if ! printf '%s\n' "$out" | grep -F -q -- "$policy:$pos: error: "; then
    echo "FAIL: $policy: no diagnostic at $pos"; echo "$out"; exit 1
fi
if ! printf '%s\n' "$out" | grep -F "$policy:$pos: error: " | grep -F -q -- "$reason"; then
    echo "FAIL: $policy: diagnostic at $pos lacks '$reason'"; echo "$out"; exit 1
fi
if printf '%s\n' "$out" | grep -q 'Hunter2-Inline-Secret'; then
    echo "FAIL: $policy: an inline secret was echoed"; exit 1
fi
# --json says the same.
json=$(bounded policy validate --json "$policy" 2>&1)
if ! printf '%s' "$json" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
line, col = (int(x) for x in sys.argv[1].split(":"))
assert d["valid"] is False, d
assert any(e["line"] == line and e["column"] == col and sys.argv[2] in e["message"] for e in d["errors"]), d
' "$pos" "$reason"; then
    echo "FAIL: $policy: --json output does not match"; echo "$json"; exit 1
fi
echo "ok: $policy: $pos: $reason"
