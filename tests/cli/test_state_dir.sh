#!/bin/sh
# Journals and locks live in the state directory, named <16 hex digits of SHA-256 of the policy's
# canonical path>-<base name>.journal/.lock, never beside the policy or a device:
#  - `--policy /dev/stdin apply` (the policy piped in) creates nothing in /dev;
#  - --state-dir, then KEYPLANE_STATE_DIR, then $XDG_STATE_HOME/keyplane, then
#    $HOME/.local/state/keyplane, made 0700 when missing;
#  - one policy file reached through a symbolic link finds the same journal and lock;
#  - a state directory others may write to is refused (exit 4) and nothing is applied; every
#    command that takes the lock (rotate, init) stops there too, never running unlocked;
#  - --journal FILE still names the journal.
. "$(dirname "$0")/lib.sh"
export KEYPLANE_STATE_DIR="$T/state" # journals and locks stay in the scratch directory
{ file_chain c RSA-OAEP-256 a b; } >"$T/policy.yaml"
init_stores "$T/policy.yaml"
canon=$(realpath "$T/policy.yaml")
key() { printf '%s' "$1" | sha256sum | cut -c1-16; }
k=$(key "$canon")
nothing_beside() {
    for f in "$T/policy.yaml.journal" "$T/policy.yaml.lock"; do
        [ ! -e "$f" ] || fail "$f was created beside the policy"
    done
}

# --- --state-dir, made 0700 -------------------------------------------------------------------
expect_rc 0 --policy "$T/policy.yaml" --state-dir "$T/st/deep" apply
[ -s "$T/st/deep/$k-policy.yaml.journal" ] || fail "no journal in --state-dir: $(ls -a "$T/st/deep")"
[ -e "$T/st/deep/$k-policy.yaml.lock" ] || fail "no lock in --state-dir"
[ "$(stat -c %a "$T/st/deep")" = 700 ] || fail "state directory mode $(stat -c %a "$T/st/deep")"
[ "$(stat -c %a "$T/st")" = 700 ] || fail "state directory parent mode $(stat -c %a "$T/st")"
nothing_beside
# after the command too, and through a symbolic link to the policy: the same files
ln -s "$T/policy.yaml" "$T/link.yaml"
lines=$(wc -l <"$T/st/deep/$k-policy.yaml.journal")
rm -rf "$T/b/keys/c" # a lost replica: the next apply has a copy to make, and journals it
flock "$T/st/deep/$k-policy.yaml.lock" sleep 1 &
sleep 0.3
expect_rc 0 --policy "$T/link.yaml" apply --state-dir "$T/st/deep"
wait
expect_in "$T/err" "keyplane: waiting for another keyplane run on this policy ($T/st/deep/$k-policy.yaml.lock)"
[ "$(wc -l <"$T/st/deep/$k-policy.yaml.journal")" -gt "$lines" ] ||
    fail "the run through the link did not write the policy's journal"
[ "$(find "$T/st/deep" -type f | wc -l)" -eq 2 ] || fail "other files: $(ls "$T/st/deep")"

# --- KEYPLANE_STATE_DIR, XDG_STATE_HOME, HOME, in that order (apply has nothing left to do and
# writes no journal; its lock shows where it looked) ---------------------------------------------
env KEYPLANE_STATE_DIR="$T/env" XDG_STATE_HOME="$T/xdg" HOME="$T/home" "$KP_BIN" --policy "$T/policy.yaml" \
    apply >"$T/out" 2>&1 || { cat "$T/out"; fail "apply with KEYPLANE_STATE_DIR"; }
[ -e "$T/env/$k-policy.yaml.lock" ] || fail "KEYPLANE_STATE_DIR not used"
[ ! -e "$T/xdg" ] && [ ! -e "$T/home/.local" ] || fail "XDG_STATE_HOME or HOME used over KEYPLANE_STATE_DIR"
env -u KEYPLANE_STATE_DIR XDG_STATE_HOME=$T/xdg HOME=$T/home "$KP_BIN" --policy "$T/policy.yaml" apply \
    >"$T/out" 2>&1 || { cat "$T/out"; fail "apply with XDG_STATE_HOME"; }
[ -e "$T/xdg/keyplane/$k-policy.yaml.lock" ] || fail "XDG_STATE_HOME/keyplane not used"
env -u KEYPLANE_STATE_DIR -u XDG_STATE_HOME HOME=$T/home "$KP_BIN" --policy "$T/policy.yaml" apply \
    >"$T/out" 2>&1 || { cat "$T/out"; fail "apply with HOME"; }
[ -e "$T/home/.local/state/keyplane/$k-policy.yaml.lock" ] || fail "HOME/.local/state/keyplane not used"
nothing_beside

# --- A policy piped through /dev/stdin: nothing in /dev ---------------------------------------
ls -a /dev >"$T/dev.before"
set +e
"$KP_BIN" --policy /dev/stdin --state-dir "$T/pipe" apply <"$T/policy.yaml" >"$T/out" 2>&1
rm -rf "$T/b/keys/c"
cat "$T/policy.yaml" | "$KP_BIN" --policy /dev/stdin --state-dir "$T/pipe" apply >>"$T/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || { cat "$T/out"; fail "apply of a piped policy exited $rc"; }
ls -a /dev >"$T/dev.after"
cmp -s "$T/dev.before" "$T/dev.after" || fail "files appeared in /dev: $(comm -13 "$T/dev.before" "$T/dev.after")"
# the pipe is keyed by the name given; the redirected file by its own canonical path
[ -s "$T/pipe/$(key /dev/stdin)-stdin.journal" ] || fail "no journal for /dev/stdin: $(ls "$T/pipe")"
[ -e "$T/pipe/$k-policy.yaml.lock" ] || fail "a policy redirected from a file is not keyed by its path"

# --- Refused: a state directory others may write to -------------------------------------------
mkdir -m 777 "$T/open"
expect_rc 4 --policy "$T/policy.yaml" --state-dir "$T/open" apply
expect_in "$T/err" "keyplane: error: state directory $T/open: writable by others (mode 0777): only its owner may write there"
[ -z "$(ls "$T/open")" ] || fail "files written into a world-writable state directory: $(ls "$T/open")"
# a group-writable one is no better, and no command falls back to running unlocked
mkdir -m 770 "$T/group"
find "$T/a" "$T/b" -type f | sort >"$T/files.before"
expect_rc 4 --policy "$T/policy.yaml" --state-dir "$T/group" rotate c --stage
expect_in "$T/err" "keyplane: error: state directory $T/group: writable by its group (mode 0770): only its owner may write there"
expect_rc 4 --policy "$T/policy.yaml" --state-dir "$T/group" init
find "$T/a" "$T/b" -type f | sort >"$T/files.after"
cmp -s "$T/files.before" "$T/files.after" || fail "a command ran without its lock: $(comm -13 "$T/files.before" "$T/files.after")"
[ -z "$(ls "$T/group")" ] || fail "files written into a group-writable state directory"

# --- --journal FILE still wins ----------------------------------------------------------------
rm -rf "$T/b/keys/c"
expect_rc 0 --policy "$T/policy.yaml" --state-dir "$T/j" apply --journal "$T/my.journal"
[ -s "$T/my.journal" ] || fail "--journal FILE not written"
[ ! -e "$T/j/$k-policy.yaml.journal" ] || fail "the state directory's journal written despite --journal"
echo "ok: state_dir"
