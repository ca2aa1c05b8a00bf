#!/bin/sh
# Permissions: `keyplane check` fails a file store that others could change (its directory or a
# file group/other-writable, a secret file group/other-readable, a symbolic link planted in it, or
# something owned by another user who is not root), naming the path, its mode or owner; and the
# plugin loader refuses a plugin, or a plugin directory, writable by group/others or owned by
# another non-root user, with one line naming the path and why. The owned-by-another-user cases
# need root (only root can give a file away): as an ordinary user they are skipped, saying so;
# the mode cases always run.
. "$(dirname "$0")/lib.sh"
two_regions
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply
me=$(id -u)
expect_rc 0 $P check region-b
expect_in "$T/out" "  ok    permissions    $T/b and its files: owned by root or uid $me, writable by their owner only, secret files readable by their owner only"

# check_fail LINE: check region-b exits 1 and its permissions item says LINE.
check_fail() {
    expect_rc 1 $P check region-b
    expect_in "$T/out" "  FAIL  permissions    $1"
}
chmod 0777 "$T/b"
check_fail "$T/b is writable by others (mode 0777)"
chmod 0700 "$T/b"
chmod 0770 "$T/b/keys/tde"
check_fail "$T/b/keys/tde is writable by its group (mode 0770)"
chmod 0700 "$T/b/keys/tde"
chmod 0644 "$T/b/keys/tde/1/private.p8"
check_fail "$T/b/keys/tde/1/private.p8 is readable by others (mode 0644)"
chmod 0640 "$T/b/keys/tde/1/private.p8" "$T/b/keyplane-store.json"
check_fail "$T/b/keyplane-store.json is readable by its group (mode 0640)"
expect_in "$T/out" "$T/b/keys/tde/1/private.p8 is readable by its group (mode 0640)"
chmod 0600 "$T/b/keys/tde/1/private.p8" "$T/b/keyplane-store.json"
ln -s /etc/passwd "$T/b/keys/tde/planted"
check_fail "$T/b/keys/tde/planted is a symbolic link"
rm "$T/b/keys/tde/planted"
# --json: the item, failed, with its status.
chmod 0666 "$T/b/keys/tde/1/meta.json"
expect_rc 1 $P check --json region-b
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
it = [i for i in d["instances"][0]["items"] if i["item"] == "permissions"][0]
want = {"item": "permissions", "ok": False, "status": "KP_ERR_PERMISSION",
        "detail": sys.argv[2] + "/b/keys/tde/1/meta.json is writable by others (mode 0666)"}
assert it == want, it
assert d["ok"] is False, d
' "$T/out" "$T"
chmod 0600 "$T/b/keys/tde/1/meta.json"
# More than three problems: three are described, the rest counted.
chmod 0777 "$T/b" "$T/b/keys" "$T/b/keys/tde" "$T/b/keys/tde/1" "$T/b/keys/tde/1/meta.json"
check_fail "$T/b is writable by others (mode 0777); $T/b/"
expect_in "$T/out" "; and 2 more"
chmod 0700 "$T/b" "$T/b/keys" "$T/b/keys/tde" "$T/b/keys/tde/1"
chmod 0600 "$T/b/keys/tde/1/meta.json"
expect_rc 0 $P check region-b

if [ "$me" -eq 0 ]; then
    chown 65534 "$T/b/keys/tde"
    check_fail "$T/b/keys/tde is owned by uid 65534, neither root nor the user running keyplane (uid 0)"
    chown 0 "$T/b/keys/tde"
    chown -R 65534 "$T/b"
    check_fail "$T/b is owned by uid 65534, neither root nor the user running keyplane (uid 0)"
    chown -R 0 "$T/b"
    expect_rc 0 $P check region-b
else
    echo "skipped: store owned by another user (needs root to chown; running as uid $me)"
fi

# The loader: a copy of the file plugin in a directory of our own loads; the directory or the
# file writable by others, or owned by another user, is refused, and so is every use of it.
PD="$T/plugins"
mkdir "$PD"
cp "$(dirname "$KP_BIN")/../lib/keyplane/plugins/file.so" "$PD/file.so"
chmod 0755 "$PD" "$PD/file.so"
expect_rc 0 --plugin-dir "$PD" $P check region-b
# refused LINE: a command that loads the policy and plugins --json refuse $PD/file.so with LINE.
refused() {
    expect_rc 3 --plugin-dir "$PD" $P check region-b
    expect_in "$T/err" "$T/policy.yaml:4:22: error: instance 'region-b': cannot use plugin 'file': plugin $PD/file.so refused: $1"
    expect_rc 1 --plugin-dir "$PD" plugins --json
    "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
want = [{"path": sys.argv[2] + "/file.so", "status": "KP_ERR_PERMISSION",
         "reason": "plugin " + sys.argv[2] + "/file.so refused: " + sys.argv[3]}]
assert d["refused"] == want, d["refused"]
' "$T/out" "$PD" "$1"
}
chmod 0777 "$PD"
refused "its directory $PD is writable by others (mode 0777): only its owner may change code keyplane loads"
chmod 0775 "$PD"
refused "its directory $PD is writable by its group (mode 0775): only its owner may change code keyplane loads"
chmod 0755 "$PD"
chmod 0666 "$PD/file.so"
refused "the file is writable by others (mode 0666): only its owner may change code keyplane loads"
chmod 0755 "$PD/file.so"
if [ "$me" -eq 0 ]; then
    chown 65534 "$PD/file.so"
    refused "the file is owned by uid 65534, neither root nor the user running keyplane (uid 0)"
    chown 0 "$PD/file.so"
    chown 65534 "$PD"
    refused "its directory $PD is owned by uid 65534, neither root nor the user running keyplane (uid 0)"
    chown 0 "$PD"
else
    echo "skipped: plugin owned by another user (needs root to chown; running as uid $me)"
fi
expect_rc 0 --plugin-dir "$PD" $P check region-b
echo "ok: store_perms"
