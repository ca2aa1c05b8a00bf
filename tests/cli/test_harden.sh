#!/bin/sh
# keyplane is non-dumpable from its start (core/cli/harden.c), seen from outside the process:
# a keyplane blocked reading its envelope from a FIFO that this test holds open
#  - has its /proc/PID files owned by root although it runs as an ordinary user (the kernel's
#    mark of a non-dumpable process), and a core size limit of 0 in /proc/PID/limits;
#  - leaves no core file in its working directory when killed by SIGSEGV or SIGABRT with
#    `ulimit -c unlimited`, where the same signal to `sleep` leaves one.
# A control process (sleep, run the same way) shows each observable tells the difference here;
# a part whose control does not show it (core_pattern pipes to a handler, no unprivileged uid)
# is skipped with a message.
. "$(dirname "$0")/lib.sh"
pub=$T/pub
mkdir "$pub"
chmod 711 "$T"
chmod 755 "$pub"
{ file_chain c RSA-OAEP-256 a; } >"$pub/policy.yaml"
chmod 644 "$pub/policy.yaml"
mkfifo -m 666 "$pub/fifo"
exec 3<>"$pub/fifo" # a writer that never writes: the reader blocks, and never sees EOF
pids=""
trap 'for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT

# run_blocked DIR CMD...: starts CMD in DIR, its stdin the FIFO; $pid is the process once it
# sleeps (blocked) under CMD's own program, not the shell or a wrapper before exec.
run_blocked() {
    dir=$1
    shift
    (cd "$dir" && exec "$@" <"$pub/fifo" >/dev/null 2>&1) &
    pid=$!
    pids="$pids $pid"
    i=0
    while :; do
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
        case $cmd in
        "$KP_BIN "* | sleep*) [ "$state" = S ] && break ;;
        esac
        i=$((i + 1))
        [ "$i" -lt 200 ] || fail "process $pid ($*) did not block: '$cmd' $state"
        sleep 0.05
    done
}
kp_blocked() {
    run_blocked "$1" ${2:-} "$KP_BIN" --policy "$pub/policy.yaml" unwrap --in - --out "$pub/dek"
}

# --- /proc/PID owned by root: needs an unprivileged uid -----------------------------------------
as=""
if [ "$(id -u)" -eq 0 ]; then
    if command -v setpriv >/dev/null 2>&1; then
        as="setpriv --reuid=65534 --regid=65534 --clear-groups"
    fi
fi
if [ "$(id -u)" -ne 0 ] || [ -n "$as" ]; then
    # shellcheck disable=SC2086
    run_blocked "$pub" $as sleep 60
    ctl=$(stat -c %u "/proc/$pid/environ")
    kill "$pid"
    [ "$ctl" -ne 0 ] || fail "control: sleep's /proc/PID/environ is owned by root"
    kp_blocked "$pub" "$as"
    owner=$(stat -c %u "/proc/$pid/environ")
    [ "$owner" -eq 0 ] ||
        fail "keyplane is dumpable: /proc/$pid/environ owned by uid $owner, not root"
    grep -Eq '^Max core file size +0 +0 +bytes' "/proc/$pid/limits" ||
        fail "keyplane's core limit: $(grep 'core file' "/proc/$pid/limits")"
    kill "$pid"
    echo "ok: keyplane (uid $ctl) is non-dumpable: /proc/PID owned by root, core limit 0"
else
    echo "SKIP: running as root without setpriv: no unprivileged uid to run keyplane as"
fi

# --- No core file on a crash ------------------------------------------------------------------
pattern=$(cat /proc/sys/kernel/core_pattern)
case $pattern in
"|"*)
    echo "SKIP: core_pattern pipes to a handler ($pattern): no core file to look for"
    exit 0
    ;;
esac
cores() { find "$1" -maxdepth 1 -name 'core*' | wc -l; }
ulimit -c unlimited 2>/dev/null || { echo "SKIP: ulimit -c unlimited refused"; exit 0; }
for sig in SEGV ABRT; do
    mkdir -p "$T/ctl-$sig" "$T/kp-$sig"
    run_blocked "$T/ctl-$sig" sleep 60
    kill -s "$sig" "$pid"
    wait "$pid" 2>/dev/null || true
    if [ "$(cores "$T/ctl-$sig")" -eq 0 ]; then
        echo "SKIP: a SIG$sig'd sleep leaves no core in its directory (core_pattern '$pattern')"
        continue
    fi
    kp_blocked "$T/kp-$sig"
    kill -s "$sig" "$pid"
    wait "$pid" 2>/dev/null || true
    [ "$(cores "$T/kp-$sig")" -eq 0 ] ||
        fail "keyplane killed by SIG$sig left a core file: $(ls "$T/kp-$sig")"
    echo "ok: SIG$sig: sleep dumped core, keyplane did not"
done
echo "ok: harden"
