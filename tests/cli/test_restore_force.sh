#!/bin/sh
# restore while another keystore of the chain is unreachable: refused (exit 6, naming it and
# --force), since that keystore may hold a version the others lack; with --force the lost
# keystore is rebuilt from the keystores that answered and proved, the unreachable one named in
# a warning. The lost keystore is the origin and b alone (1 of 3) holds the key: without --from
# b that is one store's word, so nothing is copied and the warning says to name the store
# trusted; with --from b it is restored. With none of the chain's versions in a keystore that
# answered, --force still restores nothing (exit 1, the gap named). restore's count of versions to
# copy leaves out the chain-state document, which it names on its own (its progress line says
# "lifecycle", not "v0").
. "$(dirname "$0")/lib.sh"
file_chain tde RSA-OAEP-256 a b c >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
# c unreachable: its path is a file, not a directory.
: >"$T/notadir"
sed "s|path: $T/c,|path: $T/notadir,|" "$T/policy.yaml" >"$T/broken.yaml"
B="--policy $T/broken.yaml"

expect_rc 0 $P apply
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"
expect_rc 0 $P restore --help
expect_in "$T/out" "--force"

# a is lost while c is unreachable.
rm -rf "$T/a"
expect_rc 6 $B restore tde --to a
expect_in "$T/err" "keyplane: error: restore: c is unreachable"
expect_in "$T/err" "not restoring a without --force"
[ ! -d "$T/a/keys/tde" ] || fail "a refused restore wrote keys"

expect_rc 1 $B restore tde --to a --force
expect_in "$T/err" "which neither the origin a nor more than half of the chain's 3 stores hold"
expect_in "$T/err" "(name the store you trust with --from)"
[ ! -d "$T/a/keys/tde" ] || fail "a restore on one store's word wrote keys"
expect_rc 0 $B restore tde --to a --from b --force
expect_in "$T/err" "keyplane: warning: restore: c is unreachable"
expect_in "$T/err" "restoring a from the keystores that answered (--force)"
expect_in "$T/out" "restoring tde into a: 1 version to copy"
expect_in "$T/out" "restored: a holds every version of tde, each proved usable"
expect_rc 0 $P verify
expect_rc 0 $P unwrap --in "$T/env" --replica a --out "$T/back"
cmp "$T/dek" "$T/back" || fail "the restored a unwrapped another DEK"

# --force --json: the same result as one document; -q keeps the warning (a finding).
rm -rf "$T/a"
expect_rc 0 $B restore tde --to a --from b --force --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["verified"] and len(d["results"]) == 1 and d["results"][0]["source"] == "b", d
' "$T/out"
rm -rf "$T/a"
expect_rc 0 -q $B restore tde --to a --from b --force
[ ! -s "$T/out" ] || fail "-q restore printed on stdout: $(cat "$T/out")"
expect_in "$T/err" "keyplane: warning: restore: c is unreachable"

# Only the unreachable c holds the chain: --force has nothing to restore from.
rm -rf "$T/a" "$T/b"
expect_rc 1 $B restore tde --to a --force
expect_in "$T/out" "NOT restored: a does not hold every version of tde usable"
expect_in "$T/err" "keyplane: gap: tde: no protector version in any keystore that answered"
[ ! -d "$T/a/keys/tde" ] || fail "a restore from nothing made a key"

# A rotated chain: the count of versions to copy leaves out the chain-state document, which is
# named on its own.
{
    file_providers ra rb
    cat <<YAML
chains:
  rot:
    protector: {type: rsa, bits: 2048, origin: ra, exportable: true}
    replicas: [ra, rb]
    algorithm: RSA-OAEP-256
    rotation: {every: 365d}
YAML
} >"$T/rot.yaml"
R="--policy $T/rot.yaml"
init_stores "$T/rot.yaml"
expect_rc 0 $R apply
expect_rc 0 $R rotate rot --stage
expect_rc 0 $R rotate rot --activate
rm -rf "$T/rb"
expect_rc 0 $R restore rot --to rb --from ra
expect_in "$T/out" "restoring rot into rb: 2 versions to copy, and the chain-state document"
expect_in "$T/err" "ok   state rot lifecycle -> rb: done"
expect_in "$T/out" "restored: rb holds every version of rot, each proved usable"
echo "ok: restore --force"
