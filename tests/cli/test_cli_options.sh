#!/bin/sh
# Options as a DBA types them (docs/cli.md, "Global options"): the global -q, -v and --json after
# the command too, and every boolean option taking a value spelt as in a policy (true, yes, on /
# false, no, off, any case) or none.
. "$(dirname "$0")/lib.sh"
file_chain one RSA-OAEP-256 a b >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 -q $P apply

# Global options after the command: -q (also -qv, -vq), -v, --json.
expect_rc 0 $P verify -q
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "verify -q printed: $(cat "$T/out" "$T/err")"
expect_rc 0 $P apply -vq
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "apply -vq printed: $(cat "$T/out" "$T/err")"
expect_rc 0 $P check a -v
expect_in "$T/out" "  ok    directory"
expect_rc 0 $P key list -q --instance a
expect_in "$T/out" "a                one                      v1"
for cmd in "plugins" "policy validate" "check" "init" "plan" "apply" "verify" "status" \
    "key list"; do
    # shellcheck disable=SC2086
    expect_rc 0 $P $cmd --json
    "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" ||
        fail "keyplane $cmd --json: stdout is not one JSON document: $(cat "$T/out")"
done
expect_rc 0 $P status one --json -q
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["chains"][0]["chain"] == "one", d' "$T/out"

# --json=BOOL before and after the command; a value that is no boolean is a usage error (in JSON,
# as --json was asked).
expect_rc 0 $P key list --json=no
expect_in "$T/out" "INSTANCE         NAME"
expect_rc 0 --json=TRUE $P key list
"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))["keys"]' "$T/out"
expect_rc 0 --json $P key list --json=off # the last one wins
expect_in "$T/out" "INSTANCE         NAME"
expect_rc 2 $P status --json=maybe
expect_in "$T/err" "keyplane: --json=maybe: the value must be true or false (or yes/no, on/off)"
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["message"] == "--json=maybe: the value must be true or false (or yes/no, on/off)", e' "$T/out"
# Command flags.
expect_rc 0 $P key generate --instance a --name off --exportable=No --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["exportable"] is False, d' "$T/out"
expect_rc 0 $P key generate --instance a --name on --exportable=yes --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["exportable"] is True, d' "$T/out"
expect_rc 0 $P key generate --instance a --name bare --exportable --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["exportable"] is True, d' "$T/out"
expect_rc 2 $P key generate --instance a --name two --exportable=2
expect_in "$T/err" "keyplane key generate: --exportable=2: the value must be true or false (or yes/no, on/off)"
expect_rc 0 $P plan --detailed-exitcode=false
expect_rc 0 $P plan --detailed-exitcode=on
expect_rc 1 $P plan --detailed-exitcode=sometimes
expect_rc 0 $P plugins --params=off
if grep -q "^    path " "$T/out"; then fail "plugins --params=off listed parameters"; fi
expect_rc 0 $P plugins --params=on
expect_in "$T/out" "    path "
mv "$T/b" "$T/b.away"
expect_rc 6 $P restore one --to a --force=no
expect_in "$T/err" "keyplane: error: restore: b is unreachable"
expect_rc 0 $P restore one --to a --force=yes
expect_in "$T/err" "keyplane: warning: restore: b is unreachable"

# -q for every command (docs/cli.md, "Quiet mode"), before or after it: a run that went well
# prints nothing but its data. (cli.quiet covers the same with an HSM.)
mv "$T/b.away" "$T/b"
expect_silent() {
    expect_rc 0 "$@"
    [ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "keyplane $*: printed: $(cat "$T/out" "$T/err")"
}
export KP_EXPORT_PASS=correct-horse-battery
openssl rand 32 >"$T/dek"
expect_silent -q $P init
expect_silent $P init -q
expect_silent $P plan -q
expect_silent $P policy validate -q
expect_silent $P apply -q
expect_silent $P check -q
expect_silent $P verify -q
expect_silent $P status -q
expect_silent $P restore one --to b -q
expect_silent $P key replicate --chain one -q
expect_silent $P key generate --instance a --name quiet --exportable -q
expect_silent $P key export --instance a --name quiet --passphrase env:KP_EXPORT_PASS \
    --out "$T/quiet.p8" -q
expect_silent $P key import --instance b --name quiet --key "file:$T/quiet.p8" \
    --passphrase env:KP_EXPORT_PASS -q
expect_silent $P key public --instance a --name quiet --out "$T/quiet.pem" -q
expect_silent $P wrap --chain one --dek "file:$T/dek" --out "$T/env" -q
expect_silent $P unwrap --in "$T/env" --out "$T/back" -q
cmp "$T/dek" "$T/back" || fail "unwrapped another DEK"
expect_silent $P rotate one --stage -q
expect_silent $P rotate one --activate -q
expect_silent $P rewrap "$T/env" -q
echo "ok: options after the command and booleans"
