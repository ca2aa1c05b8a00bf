#!/bin/sh
# Files planted in a file store by someone who can write only there: a FIFO as a version's
# meta.json must not hang any reader (every command reading it ends, under a timeout, with a clear
# error naming that store, and wrap/unwrap go on through the chain's healthy store), a symbolic link
# instead of a store file is refused, and a symbolic link planted as a key's state.lock must not
# make keyplane create or lock a file elsewhere.
# The plugin opens store files O_NONBLOCK|O_NOFOLLOW and reads only regular files.
. "$(dirname "$0")/lib.sh"
two_regions
P="--policy $T/policy.yaml"
# tkp RC ARGS...: expect_rc under a timeout (exit 124: the command hung).
tkp() {
    want=$1
    shift
    set +e
    timeout 20 "$KP_BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" -ne 124 ] || fail "keyplane $* hung on a FIFO in a store (killed after 20 s)"
    if [ "$rc" -ne "$want" ]; then
        echo "--- stdout" >&2; cat "$T/out" >&2; echo "--- stderr" >&2; cat "$T/err" >&2
        fail "keyplane $*: exit $rc, want $want"
    fi
}

init_stores "$T/policy.yaml"
expect_rc 0 $P apply
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/dek.env"

# A FIFO instead of region-b's meta.json of v1: verify names the store and the file, wrap and
# unwrap go on with region-a, an unwrap pinned to region-b fails with the same reason.
rm "$T/b/keys/tde/1/meta.json"
mkfifo "$T/b/keys/tde/1/meta.json"
tkp 1 $P verify
expect_in "$T/err" "gap: tde v1 in region-b: UNREACHABLE: $T/b/keys/tde/1/meta.json is not a regular file"
tkp 1 $P status
tkp 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/dek.env2"
tkp 0 $P unwrap --in "$T/dek.env" --out "$T/dek.1"
cmp -s "$T/dek" "$T/dek.1" || fail "unwrap gave another DEK"
tkp 7 $P unwrap --in "$T/dek.env" --out "$T/dek.2" --replica region-b
expect_in "$T/err" "region-b: $T/b/keys/tde/1/meta.json is not a regular file"
[ -p "$T/b/keys/tde/1/meta.json" ] || fail "the FIFO was replaced"

# The same FIFO in the origin instead: unwrap fails over to region-b.
rm "$T/b/keys/tde/1/meta.json"
cp "$T/a/keys/tde/1/meta.json" "$T/b/keys/tde/1/meta.json"
rm "$T/a/keys/tde/1/meta.json"
mkfifo "$T/a/keys/tde/1/meta.json"
tkp 1 $P verify
expect_in "$T/err" "gap: tde v1 in region-a: UNREACHABLE: $T/a/keys/tde/1/meta.json is not a regular file"
tkp 0 $P unwrap --in "$T/dek.env2" --out "$T/dek.3"
expect_in "$T/err" "unwrap with region-a failed: $T/a/keys/tde/1/meta.json is not a regular file"
expect_in "$T/err" "unwrapped 32-byte DEK of chain tde in region-b"
cmp -s "$T/dek" "$T/dek.3" || fail "failover unwrap gave another DEK"
# The origin cannot confirm the version: wrap refuses unless the operator names the store.
tkp 5 $P wrap --chain tde --dek "file:$T/dek" --out "$T/dek.env3"
tkp 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/dek.env3" --replica region-b
rm "$T/a/keys/tde/1/meta.json"
cp "$T/b/keys/tde/1/meta.json" "$T/a/keys/tde/1/meta.json"
expect_rc 0 $P verify

# A symbolic link instead of a store file is refused, not followed (even to a good copy).
mv "$T/b/keys/tde/1/meta.json" "$T/meta.json"
ln -s "$T/meta.json" "$T/b/keys/tde/1/meta.json"
tkp 1 $P verify
expect_in "$T/err" "gap: tde v1 in region-b: UNREACHABLE: $T/b/keys/tde/1/meta.json is a symbolic link, not a regular file"
rm "$T/b/keys/tde/1/meta.json"
mv "$T/meta.json" "$T/b/keys/tde/1/meta.json"
expect_rc 0 $P verify

# A symbolic link as region-b's state.lock, pointing out of the store: writing the chain-state
# document (rotate --stage) refuses it and creates nothing at the link's target.
cat >>"$T/policy.yaml" <<YAML
    rotation: {every: 365d}
YAML
ln -s "$T/elsewhere" "$T/b/keys/tde/state.lock"
tkp 7 $P rotate tde --stage
expect_in "$T/err" "lock file $T/b/keys/tde/state.lock is a symbolic link"
[ ! -e "$T/elsewhere" ] || fail "the state lock followed a symbolic link out of the store"
[ -L "$T/b/keys/tde/state.lock" ] || fail "the planted link was replaced"
# A FIFO as the lock is refused too (and does not block).
rm "$T/b/keys/tde/state.lock"
mkfifo "$T/b/keys/tde/state.lock"
tkp 7 $P rotate tde --stage
expect_in "$T/err" "lock file $T/b/keys/tde/state.lock is not a regular file"
# Back to a healthy store: rotate goes through.
rm "$T/b/keys/tde/state.lock"
tkp 0 $P rotate tde --stage
echo "ok: store_hostile"
