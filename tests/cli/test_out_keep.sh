#!/bin/sh
# Files keyplane replaces keep their owner and mode: wrap --out, unwrap --out and rewrap over an
# existing file give the new file the old one's owner, group and mode (a new file is the user's,
# 0600), or refuse, before writing anything, when keyplane cannot give it that owner; and rewrap
# names each file it changed, one line each (none with -q). The other-owner cases need root (only
# root can give a file away, and a refusal is shown by running keyplane as another user): as an
# ordinary user they are skipped, saying so; the mode cases always run.
. "$(dirname "$0")/lib.sh"
two_regions_applied
openssl rand 32 >"$T/dek"

# meta_is FILE UID:GID MODE
meta_is() {
    got=$(stat -c '%u:%g %a' "$1")
    [ "$got" = "$2 $3" ] || fail "$1 is $got, want $2 $3"
}
me="$(id -u):$(id -g)"

# A new file: the user's, 0600.
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/new.env"
meta_is "$T/new.env" "$me" 600
expect_rc 0 $P unwrap --in "$T/new.env" --out "$T/new.dek"
meta_is "$T/new.dek" "$me" 600

# Existing files keep their mode.
echo old >"$T/kept.env"
chmod 0640 "$T/kept.env"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/kept.env"
meta_is "$T/kept.env" "$me" 640
echo old >"$T/kept.dek"
chmod 0400 "$T/kept.dek"
expect_rc 0 $P unwrap --in "$T/kept.env" --out "$T/kept.dek"
meta_is "$T/kept.dek" "$me" 400
cmp -s "$T/dek" "$T/kept.dek" || fail "unwrap --out over a file wrote another DEK"
# ... but a DEK is never written into a file others may read: refused, the old file untouched
echo old >"$T/open.dek"
chmod 0644 "$T/open.dek"
expect_rc 4 $P unwrap --in "$T/kept.env" --out "$T/open.dek"
expect_in "$T/err" "keyplane: error: refusing to write a secret into $T/open.dek: others may read it (mode 0644); nothing was written"
[ "$(cat "$T/open.dek")" = old ] || fail "unwrap --out wrote a DEK into a file others may read"
meta_is "$T/open.dek" "$me" 644
[ -z "$(find "$T" -maxdepth 1 -name 'open.dek.tmp-*')" ] || fail "a temporary copy of the DEK was left behind"

# rewrap: each file changed named on its own line, its mode kept; -q says nothing.
expect_rc 0 $P rotate tde --stage
expect_rc 0 $P rotate tde --activate
cp "$T/kept.env" "$T/r1.env"
cp "$T/kept.env" "$T/r2.env"
chmod 0644 "$T/r1.env"
chmod 0640 "$T/r2.env"
expect_rc 0 $P rewrap "$T/r1.env" "$T/r2.env"
expect_in "$T/out" "rewrapped $T/r1.env: tde v1 -> v2"
expect_in "$T/out" "rewrapped $T/r2.env: tde v1 -> v2"
expect_in "$T/out" "2 rewrapped, 0 already on the active version, 0 failed"
[ "$(wc -l <"$T/out")" -eq 3 ] || { cat "$T/out" >&2; fail "rewrap printed other lines"; }
meta_is "$T/r1.env" "$me" 644
meta_is "$T/r2.env" "$me" 640
expect_rc 0 $P rewrap "$T/r1.env"
[ "$(cat "$T/out")" = "0 rewrapped, 1 already on the active version, 0 failed" ] || fail "rewrap of an unchanged file: $(cat "$T/out")"
cp "$T/kept.env" "$T/r3.env"
expect_rc 0 -q $P rewrap "$T/r3.env"
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "rewrap -q printed something"

if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: files owned by another user (needs root to chown; running as uid $(id -u))"
    echo "ok: out_keep"
    exit 0
fi
# Root replaces another user's file: it stays theirs, with its mode.
echo old >"$T/theirs.env"
chown 65534:65534 "$T/theirs.env"
chmod 0604 "$T/theirs.env"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/theirs.env"
meta_is "$T/theirs.env" 65534:65534 604
cp "$T/kept.env" "$T/theirs2.env"
chown 65534:65534 "$T/theirs2.env"
chmod 0640 "$T/theirs2.env"
expect_rc 0 $P rewrap "$T/theirs2.env"
meta_is "$T/theirs2.env" 65534:65534 640
# Another user cannot give root's file back to root: refused, nothing written. keyplane runs as
# uid 65534 on stores and a directory that user owns, and the file in it stays root's.
chmod 0711 "$T"
chown -R 65534:65534 "$T/a" "$T/b" "$T/policy.yaml" "$T/dek"
mkdir "$T/drop"
chown 65534:65534 "$T/drop"
cp "$T/new.env" "$T/drop/root.env"
chmod 0644 "$T/drop/root.env"
before=$(cksum <"$T/drop/root.env")
set +e
setpriv --reuid=65534 --regid=65534 --clear-groups "$KP_BIN" $P wrap --chain tde --dek "file:$T/dek" \
    --out "$T/drop/root.env" >"$T/out" 2>"$T/err"
rc=$?
set -e
[ "$rc" -eq 4 ] || { cat "$T/err" >&2; fail "replacing root's file as uid 65534: exit $rc, want 4"; }
expect_in "$T/err" "keyplane: error: refusing to replace $T/drop/root.env: it belongs to uid 0, gid 0, and keyplane (uid 65534) cannot give the new file the same owner (Operation not permitted); nothing was written"
meta_is "$T/drop/root.env" 0:0 644
[ "$(cksum <"$T/drop/root.env")" = "$before" ] || fail "the refused file was changed"
[ -z "$(ls "$T/drop" | grep -v '^root.env$')" ] || fail "a temporary file was left: $(ls "$T/drop")"
echo "ok: out_keep"
