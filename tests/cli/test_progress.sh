#!/bin/sh
# Progress on a terminal (docs/cli.md, "keyplane verify" and "keyplane plan"): with stderr on a
# pty, verify and status say how many stores they have asked ("verify: checking 2/4 stores
# (chain two)"), plan that it is asking them, each line overwritten with \r and cleared before
# anything else is printed; nothing of it with -q, with --json, or when stderr is no terminal.
. "$(dirname "$0")/lib.sh"
{
    file_providers a b
    echo "chains:"
    for c in one two; do
        echo "  $c:"
        echo "    protector: {type: rsa, bits: 2048, origin: a, exportable: true}"
        echo "    replicas: [a, b]"
    done
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"

# on_tty OUT ARGS...: keyplane ARGS with stderr on a pty (read into OUT.tty) and stdout into
# OUT.out, as `keyplane verify >report` in a terminal; $rc its exit status.
on_tty() {
    out=$1
    shift
    set +e
    "$PY" - "$out" "$KP_BIN" "$@" <<'PY'
import os, pty, subprocess, sys
out, argv = sys.argv[1], sys.argv[2:]
master, slave = pty.openpty()
with open(out + ".out", "wb") as so:
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=slave)
os.close(slave)
got = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:  # EIO: every writer is gone
        break
    if not chunk:
        break
    got += chunk
open(out + ".tty", "wb").write(got)
sys.exit(p.wait())
PY
    rc=$?
    set -e
}

# has TTYFILE TEXT: the pty got TEXT (printf escapes: \r, \033).
has() {
    "$PY" -c 'import sys; t=open(sys.argv[1],"rb").read(); w=sys.argv[2].encode().decode("unicode_escape").encode("latin-1"); sys.exit(0 if w in t else 1)' "$1" "$2" ||
        fail "$2 not on the terminal: $(od -c "$1" | head -20)"
}
hasnt() {
    if grep -q "checking\|asking" "$1"; then fail "progress where there should be none: $(cat "$1")"; fi
}

on_tty "$T/plan" $P plan
[ "$rc" -eq 0 ] || fail "plan on a terminal: exit $rc"
has "$T/plan.tty" '\rplan: asking 4 stores of every chain\033[K\r\033[K'
expect_in "$T/plan.out" "  + create  one v1 in a"
on_tty "$T/plan1" $P plan two
has "$T/plan1.tty" '\rplan: asking 2 stores of two\033[K\r\033[K'
expect_rc 0 -q $P apply

on_tty "$T/verify" $P verify
[ "$rc" -eq 0 ] || fail "verify on a terminal: exit $rc"
has "$T/verify.tty" '\rverify: checking 0/4 stores (chain one)\033[K\r\033[K'
has "$T/verify.tty" '\rverify: checking 2/4 stores (chain two)\033[K\r\033[K'
expect_in "$T/verify.out" "chain one: ok"
expect_in "$T/verify.out" "chain two: ok"
if grep -q "$(printf '\r')" "$T/verify.out"; then fail "progress on stdout"; fi
on_tty "$T/status" $P status two
has "$T/status.tty" '\rstatus: checking 0/2 stores (chain two)\033[K\r\033[K'

# Not with -q or --json, nor when stderr is a file.
on_tty "$T/q" -q $P verify
[ "$rc" -eq 0 ] || fail "-q verify on a terminal: exit $rc"
hasnt "$T/q.tty"
on_tty "$T/j" $P verify --json
[ "$rc" -eq 0 ] || fail "verify --json on a terminal: exit $rc"
hasnt "$T/j.tty"
on_tty "$T/pq" $P plan -q
[ "$rc" -eq 0 ] || fail "plan -q on a terminal: exit $rc"
hasnt "$T/pq.tty"
expect_rc 0 $P verify
hasnt "$T/err"

echo "ok: progress on a terminal"
