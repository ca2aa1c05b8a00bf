#!/bin/sh
# A store file that is a symbolic link to someone else's secret (the issue's fixture: region-b's
# meta.json of v1 links to a root-only file holding 'TopSecretPassphrase'), or a store file that
# holds such text itself, or a link in the place of a version's or a key's directory: the link is
# refused with a line that names it, never followed; no error quotes a store file's content (JSON
# errors give line and column only), so the secret reaches neither status --json, stderr nor the
# audit log; and the one broken version leaves the store's other versions usable and listed.
# The file plugin opens every store file beneath the store directory, no component a link;
# cli.store_links.openat2_* run this with openat2 unavailable (ENOSYS, EPERM), so the
# component-by-component walk gives the same refusals.
. "$(dirname "$0")/lib.sh"
two_regions_applied
expect_rc 0 $P rotate tde --stage
expect_rc 0 $P rotate tde --activate
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/v2.env"
grep -q '"v":2' "$T/v2.env" || grep -q '"version":2' "$T/v2.env" || fail "not wrapped with v2: $(cat "$T/v2.env")"

# The secret someone else keeps, and a directory shaped like a version that holds it.
mkdir "$T/root-only" "$T/evil"
echo '{"passphrase": TopSecretPassphrase}' >"$T/root-only/secret.json"
chmod 600 "$T/root-only/secret.json"
cp "$T/root-only/secret.json" "$T/evil/meta.json"
cp "$T/b/keys/tde/1/public.der" "$T/b/keys/tde/1/private.p8" "$T/evil/"

# no_leak WHAT: the secret is in none of the command's outputs, nor in the audit log.
no_leak() {
    for f in "$T/out" "$T/err" "$T/audit"; do
        ! grep -q TopSecretPassphrase "$f" || { cat "$f" >&2; fail "$1: $f quotes the secret"; }
    done
}
# status_b VERSION STATE: status --json shows region-b's copy of VERSION in STATE.
status_b() {
    "$PY" -c '
import json, sys
doc = json.load(open(sys.argv[1]))
v = [v for v in doc["chains"][0]["versions"] if v["version"] == int(sys.argv[2])][0]
got = v["replicas"]["region-b"]["state"]
sys.exit(0 if got == sys.argv[3] else "region-b v%s is %s, want %s" % (sys.argv[2], got, sys.argv[3]))
' "$T/out" "$1" "$2"
}
# one_bad WHAT LINE: status --json, verify and unwrap of v2 in region-b with v1's copy there
# broken as LINE says: the broken file named, v2 still listed and usable, nothing leaked.
one_bad() {
    rm -f "$T/audit"
    expect_rc 1 $P --audit "$T/audit" status --json
    expect_in "$T/err" "keyplane: warning: region-b: file store $T/b: key tde v1 cannot be read, listed without it: $2"
    status_b 2 ok || fail "$1: region-b's v2 is not listed"
    no_leak "$1: status"
    expect_rc 1 $P --audit "$T/audit" verify
    expect_in "$T/err" "keyplane: warning: region-b: file store $T/b: key tde v1 cannot be read, listed without it: $2"
    no_leak "$1: verify"
    expect_rc 0 $P --audit "$T/audit" unwrap --in "$T/v2.env" --out "$T/dek.out" --replica region-b
    cmp -s "$T/dek" "$T/dek.out" || fail "$1: unwrap gave another DEK"
    no_leak "$1: unwrap"
}

# The issue's fixture: meta.json a symbolic link to the secret.
mv "$T/b/keys/tde/1/meta.json" "$T/meta.keep"
ln -s "$T/root-only/secret.json" "$T/b/keys/tde/1/meta.json"
one_bad "meta.json link" "$T/b/keys/tde/1/meta.json is a symbolic link, not a regular file"

# A regular meta.json holding the secret as its (not JSON) text: line and column, no quote.
rm "$T/b/keys/tde/1/meta.json"
cp "$T/root-only/secret.json" "$T/b/keys/tde/1/meta.json"
one_bad "meta.json content" "$T/b/keys/tde/1/meta.json: not valid JSON (line 1, column 34)"

# The version's directory a link to a directory whose meta.json holds the secret.
mv "$T/b/keys/tde/1" "$T/v1.keep"
ln -s "$T/evil" "$T/b/keys/tde/1"
one_bad "version directory link" "$T/b/keys/tde/1 is a symbolic link, not a directory: files of store $T/b are not read through links"
rm "$T/b/keys/tde/1"
mv "$T/v1.keep" "$T/b/keys/tde/1"
rm "$T/b/keys/tde/1/meta.json"
mv "$T/meta.keep" "$T/b/keys/tde/1/meta.json"
expect_rc 0 $P verify

# The key's directory a link: the store cannot answer for the chain (unreachable, named), and
# nothing is read through it.
mkdir "$T/evil-key"
mv "$T/evil" "$T/evil-key/1"
mv "$T/b/keys/tde" "$T/tde.keep"
ln -s "$T/evil-key" "$T/b/keys/tde"
rm -f "$T/audit"
expect_rc 1 $P --audit "$T/audit" verify
expect_in "$T/err" "keyplane: gap: tde v1 in region-b: UNREACHABLE: $T/b/keys/tde is a symbolic link, not a directory: files of store $T/b are not read through links"
no_leak "key directory link"
# Nor is anything written through it: staging a version (a new key directory, the state lock and
# document) stops at the link and leaves its target as it was.
ls -A "$T/evil-key" >"$T/before"
expect_rc 1 $P rotate tde --stage
expect_in "$T/out" "staged tde v3, NOT verified everywhere: v3 is not usable in region-b: $T/b/keys/tde is a symbolic link, not a directory: files of store $T/b are not read through links"
ls -A "$T/evil-key" | cmp -s - "$T/before" || fail "rotate --stage wrote through the link: $(ls -A "$T/evil-key")"
no_leak "key directory link: rotate"

# The header a link: refused before anything is read.
rm "$T/b/keys/tde"
mv "$T/tde.keep" "$T/b/keys/tde"
mv "$T/b/keyplane-store.json" "$T/header.keep"
ln -s "$T/root-only/secret.json" "$T/b/keyplane-store.json"
rm -f "$T/audit"
expect_rc 1 $P --audit "$T/audit" status --json
no_leak "header link"
expect_rc 7 $P --audit "$T/audit" unwrap --in "$T/v2.env" --out "$T/dek.out" --replica region-b
expect_in "$T/err" "keyplane: error: unwrap: region-b: $T/b/keyplane-store.json is a symbolic link, not a regular file"
no_leak "header link: unwrap"
rm "$T/b/keyplane-store.json"
mv "$T/header.keep" "$T/b/keyplane-store.json"
expect_rc 0 $P apply # v3, staged while region-b's key directory was a link
expect_rc 0 $P verify
preload_used
echo "ok: store_links"
