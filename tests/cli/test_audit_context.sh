#!/bin/sh
# Every audit event says who and where: the run id (32 hex digits, the same in every event of
# one command, another in the next command), the user and uid (id -un, id -u), the host
# (hostname), the pid of the keyplane process, the command (the subcommand and the option names
# as given, no values and no arguments) and the policy's canonical path.
. "$(dirname "$0")/lib.sh"
export KEYPLANE_STATE_DIR="$T/state" # journals and locks stay in the scratch directory
{ file_chain c RSA-OAEP-256 a b; } >"$T/policy.yaml"
init_stores "$T/policy.yaml"
ln -s "$T/policy.yaml" "$T/link.yaml"

# run_audited LOG ARGS...: keyplane ARGS with --audit LOG; $pid is its process id
run_audited() {
    log=$1
    shift
    "$KP_BIN" --policy "$T/link.yaml" --audit "$log" "$@" >"$T/out" 2>"$T/err" &
    pid=$!
    wait "$pid" || { cat "$T/err"; fail "keyplane $*: exit $?"; }
}
run_audited "$T/apply.log" apply --workers=2
apply_pid=$pid
export KP_DEK=0123456789abcdef0123456789abcdef
run_audited "$T/wrap.log" wrap --chain c --dek env:KP_DEK --out "$T/env1" -r a
wrap_pid=$pid

"$PY" - "$T/apply.log" "$T/wrap.log" "$apply_pid" "$wrap_pid" "$(id -un)" "$(id -u)" \
    "$(hostname)" "$(realpath "$T/policy.yaml")" <<'PY'
import json, re, sys
apply_log, wrap_log, apply_pid, wrap_pid, user, uid, host, policy = sys.argv[1:]

def check(path, pid, command, min_events):
    events = [json.loads(l) for l in open(path)]
    assert len(events) >= min_events, (path, len(events))
    runs = {e.get("run") for e in events}
    assert len(runs) == 1, ("one run id per command", path, runs)
    run = runs.pop()
    assert run is not None and re.fullmatch(r"[0-9a-f]{32}", run), run
    for e in events:
        want = {"user": user, "uid": int(uid), "host": host, "pid": int(pid),
                "command": command, "policy": policy}
        got = {k: e.get(k) for k in want}
        assert got == want, (path, e["op"], got, want)
    return run, {e["op"] for e in events}

run1, ops1 = check(apply_log, apply_pid, "apply --workers", 3)
assert {"key.create", "key.export", "key.import"} <= ops1, ops1
run2, ops2 = check(wrap_log, wrap_pid, "wrap --chain --dek --out -r", 2)
assert "key.wrap" in ops2, ops2
assert run1 != run2, "two commands share a run id"
print("ok: %s (%s) and %s (%s)" % (run1, ",".join(sorted(ops1)), run2, ",".join(sorted(ops2))))
PY
echo "ok: audit_context"
