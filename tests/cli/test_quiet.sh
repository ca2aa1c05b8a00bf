#!/bin/sh
# -q/--quiet (docs/cli.md): on a fresh quickstart-like world (an HSM escrow and two file
# regions) the commands that change or check keystores print nothing and exit 0; the data a
# command exists to produce (an envelope on stdout, --json, key public, key list) is still
# printed; errors, failed steps, findings and gaps are still printed, on stderr.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
hsm_and_regions 778899
hsm_tde_chain
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"

# expect_silent RC ARGS...: keyplane ARGS exits RC with nothing on stdout or stderr.
expect_silent() {
    want=$1
    shift
    expect_rc "$want" "$@"
    [ ! -s "$T/out" ] || fail "keyplane $*: printed on stdout: $(cat "$T/out")"
    [ ! -s "$T/err" ] || fail "keyplane $*: printed on stderr: $(cat "$T/err")"
}
# expect_no_stdout RC ARGS...: keyplane ARGS exits RC with nothing on stdout.
expect_no_stdout() {
    want=$1
    shift
    expect_rc "$want" "$@"
    [ ! -s "$T/out" ] || fail "keyplane $*: printed on stdout: $(cat "$T/out")"
}

expect_silent 0 -q $P policy validate
expect_silent 0 -q $P apply
expect_silent 0 -q $P apply # nothing to do
expect_silent 0 $P apply --quiet # after the command too
expect_silent 0 -q $P check
expect_silent 0 -q $P verify
expect_silent 0 -q $P status
expect_silent 0 --quiet $P key replicate --chain tde
# Without -q the same commands do speak.
expect_rc 0 $P apply
expect_in "$T/out" "nothing to do"
expect_rc 0 $P verify
expect_in "$T/out" "chain tde: ok"

# Data stays: an envelope to stdout, a DEK to stdout, a public key, a key list, --json.
openssl rand 32 >"$T/dek"
expect_rc 0 -q $P wrap --chain tde --dek "file:$T/dek"
[ ! -s "$T/err" ] || fail "-q wrap printed on stderr: $(cat "$T/err")"
expect_in "$T/out" '"chain":"tde"'
cp "$T/out" "$T/env"
expect_silent 0 -q $P wrap --chain tde --dek "file:$T/dek" --out "$T/env2"
expect_silent 0 -q $P unwrap --in "$T/env" --out "$T/back"
cmp "$T/dek" "$T/back" || fail "unwrapped another DEK"
expect_rc 0 -q $P unwrap --in "$T/env2"
cmp "$T/dek" "$T/out" || fail "-q unwrap to stdout did not print the DEK"
expect_rc 0 -q $P key public --instance west --name tde
expect_in "$T/out" "-----BEGIN PUBLIC KEY-----"
expect_rc 0 -q $P key list --instance west
expect_in "$T/out" "west"
expect_rc 0 -q $P verify --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"], d' "$T/out"
expect_rc 0 -q $P apply --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["actions"] == [], d' "$T/out"

# Rotation, retire-free: stage, activate and rewrap say nothing when all goes well.
expect_silent 0 -q $P rotate tde --stage
expect_silent 0 -q $P rotate tde --activate
expect_silent 0 -q $P rewrap "$T/env" "$T/env2"
expect_silent 0 -q $P unwrap --in "$T/env" --out "$T/back2"
cmp "$T/dek" "$T/back2" || fail "the rewrapped envelope unwraps to another DEK"

# Problems stay: gaps, findings, failed steps, errors.
rm -rf "$T/east/keys/tde"
expect_no_stdout 1 -q $P verify
expect_in "$T/err" "keyplane: gap: tde v1 in east: MISSING"
expect_no_stdout 1 -q $P status
expect_in "$T/err" "keyplane: gap: tde v2 in east: MISSING"
: >"$T/notadir"
sed 's|path: east,|path: notadir,|' "$T/policy.yaml" >"$T/broken.yaml"
expect_no_stdout 1 -q --policy "$T/broken.yaml" apply
expect_in "$T/err" "! tde: east:"
expect_rc 1 -q --policy "$T/broken.yaml" check # the failed items are its report
expect_in "$T/out" "east (file)"
expect_in "$T/out" "FAIL  open"
if grep -q -e "^  ok" -e "^west" -e "^hsm" "$T/out"; then fail "-q check printed what passed"; fi
expect_no_stdout 6 -q --policy "$T/broken.yaml" restore tde --to west
expect_in "$T/err" "keyplane: error: restore: east is unreachable"
expect_no_stdout 8 -q $P apply --journal "$T/no/such/dir/journal"
expect_in "$T/err" "keyplane: error: apply: cannot open journal"
expect_silent 0 -q $P apply # east is repaired
tamper_envelope "$T/env" "$T/bad" 10 0x01
expect_no_stdout 7 -q $P unwrap --in "$T/bad" --out "$T/x"
expect_in "$T/err" "keyplane: error: unwrap"
expect_no_stdout 2 -q $P frobnicate
expect_in "$T/err" "unknown command 'frobnicate'"
echo "ok: quiet"
