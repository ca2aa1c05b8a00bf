#!/bin/sh
# Exit codes and machine output (docs/cli.md, "Exit status" and "Errors with --json"): with
# --json, before or after the command, a failing run prints exactly one JSON document on stdout,
# the error object {"error": {status, category, message, exit_code}}, for usage errors too; a
# plugin or backend refusing an operation exits 3, not 2 (usage); rotate --activate with nothing
# staged exits 5, not 4 (auth); plan --detailed-exitcode exits 0, 2 or 1 as terraform's does.
. "$(dirname "$0")/lib.sh"
two_regions
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"

# expect_error RC STATUS CATEGORY MESSAGE ARGS...: keyplane ARGS exits RC, and stdout is one
# line, the JSON error object with exactly these fields (MESSAGE whole; a MESSAGE ending in '*'
# is a prefix).
expect_error() {
    want=$1 status=$2 category=$3 message=$4
    shift 4
    expect_rc "$want" "$@"
    [ "$(wc -l <"$T/out")" -eq 1 ] || fail "keyplane $*: stdout is not one line: $(cat "$T/out")"
    "$PY" - "$T/out" "$status" "$category" "$message" "$want" <<'PY' || fail "keyplane $*: $(cat "$T/out")"
import json, sys
doc = json.load(open(sys.argv[1]))
status, category, message, code = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
assert list(doc) == ["error"], doc
e = doc["error"]
assert list(e) == ["status", "category", "message", "exit_code"], e
assert e["status"] == status and e["category"] == category and e["exit_code"] == code, e
if message.endswith("*"):
    assert e["message"].startswith(message[:-1]), (e["message"], message)
else:
    assert e["message"] == message, (e["message"], message)
PY
}

# The table: exit code, status, category, message, command line.
expect_error 2 KP_ERR_INVALID_ARG usage "unknown command 'nosuch'" --json nosuch
expect_error 2 KP_ERR_INVALID_ARG usage "unknown command 'nosuch'" nosuch --json
expect_error 2 KP_ERR_INVALID_ARG usage "no command given (see 'keyplane --help')" --json
expect_error 2 KP_ERR_INVALID_ARG usage "bad option '--bogus': no such option" --json --bogus check
expect_error 2 KP_ERR_INVALID_ARG usage "bad option '--bogus': no such option" --json --bogus=Hunter2Secret check
expect_rc 2 --bogus check
expect_in "$T/err" "keyplane: bad option '--bogus'"
expect_in "$T/err" "Try 'keyplane --help'."
# getopt's own line is not printed: one line says why, one where to look
[ "$(wc -l <"$T/err")" -eq 2 ] || fail "a bad global option printed $(wc -l <"$T/err") lines, not a short usage error"
expect_in "$T/err" "keyplane: bad option '--bogus': no such option"
expect_error 2 KP_ERR_INVALID_ARG usage "check: bad option '--bogus': no such option" $P check --bogus --json
expect_error 2 KP_ERR_INVALID_ARG usage "apply: bad option '--workers': it needs a value" $P apply --json --workers
# an audit file that cannot be opened: the reason, in the keyplane form, and exit 8
expect_error 8 KP_ERR_IO backend "cannot open the audit file $T/none/a.log: No such file or directory" \
    --audit "$T/none/a.log" plugins --json
expect_rc 8 --audit "$T/none/a.log" plugins
expect_in "$T/err" "keyplane: error: cannot open the audit file $T/none/a.log: No such file or directory"
# an option is named without the value given with it: a value may be a secret
expect_error 2 KP_ERR_INVALID_ARG usage "wrap: bad option '--passphrase': no such option" $P wrap --json --passphrase=Hunter2Secret
expect_error 2 KP_ERR_INVALID_ARG usage "wrap: bad option '--help': it takes no value" $P wrap --json --help=Hunter2Secret
expect_error 2 KP_ERR_INVALID_ARG usage "wrap: bad option '-Z' (no such option, or its value is missing)" $P wrap --json -ZHunter2Secret
expect_error 2 KP_ERR_INVALID_ARG usage "wrap: --chain is required" $P wrap --json
expect_error 2 KP_ERR_INVALID_ARG usage "key: missing subcommand (create, replicate, generate, import, list, public)" \
    $P key --json
expect_error 2 KP_ERR_INVALID_ARG usage "rotate: needs CHAIN and one of --stage, --activate or --abandon N" \
    $P rotate --json tde
expect_error 2 KP_ERR_INVALID_ARG usage "restore: 'nosuch' holds no copy of tde by policy" \
    $P restore tde --to nosuch --json
expect_error 5 KP_ERR_NOT_FOUND not-found \
    "cannot load policy: cannot open policy $T/none.yaml: No such file or directory" \
    --policy "$T/none.yaml" status --json
expect_error 5 KP_ERR_NOT_FOUND not-found "no provider instance 'region-z' in $T/policy.yaml" \
    $P check region-z --json
expect_error 5 KP_ERR_NOT_FOUND not-found "no chain 'nope' in $T/policy.yaml" $P verify nope --json
printf 'version: 1\nproviders: {}\nchains: {}\nbogus: 1\n' >"$T/invalid.yaml"
expect_error 3 KP_ERR_CONFIG config "$T/invalid.yaml:4:1: *" --policy "$T/invalid.yaml" plan --json
echo 'not json' >"$T/bad.env"
expect_error 7 KP_ERR_INTEGRITY integrity "$T/bad.env: malformed envelope: not JSON" \
    $P unwrap --in "$T/bad.env" --out "$T/x" --json
head -c 70000 /dev/zero | tr '\0' 'x' >"$T/huge.env"
expect_error 7 KP_ERR_INTEGRITY integrity "cannot read $T/huge.env: file too large" \
    $P unwrap --in "$T/huge.env" --out "$T/x" --json

# A backend refusing what it does not offer: 3 (plugin), not 2 (usage).
expect_error 3 KP_ERR_UNSUPPORTED config \
    "key generate: region-a: the file keystore holds RSA keys only" \
    $P key generate --instance region-a --name kek --type aes --json
expect_rc 3 $P key generate --instance region-a --name kek --type aes
expect_in "$T/err" "keyplane: error: key generate: region-a: the file keystore holds RSA keys only"
[ ! -s "$T/out" ] || fail "an error without --json printed on stdout: $(cat "$T/out")"

# plan --detailed-exitcode: 2 with changes, 0 without, 1 for findings and every error.
expect_rc 2 $P plan --detailed-exitcode
expect_in "$T/out" "  + create  tde v1 in region-a"
expect_rc 2 $P plan --json --detailed-exitcode
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["actions"]) == 2, d' "$T/out"
expect_rc 1 $P plan --bogus --detailed-exitcode
expect_in "$T/err" "keyplane plan: bad option '--bogus'"
expect_error 1 KP_ERR_NOT_FOUND not-found "no chain 'nope' in $T/policy.yaml" \
    $P plan --detailed-exitcode nope --json
expect_rc 1 --policy "$T/invalid.yaml" plan --detailed-exitcode
expect_rc 2 $P verify --detailed-exitcode
expect_in "$T/err" "keyplane verify: --detailed-exitcode is for plan"

# rotate --activate with nothing staged: the chain's state, not a permission: 5.
expect_error 5 KP_ERR_NOT_FOUND not-found \
    "rotate --activate: chain 'tde' has no staged version: run 'keyplane rotate tde --stage'" \
    $P rotate tde --activate --json
expect_rc 0 -q $P apply
expect_rc 0 $P plan --detailed-exitcode
expect_in "$T/out" "nothing to do: every keystore holds every version"
expect_rc 5 $P rotate tde --activate
expect_in "$T/err" \
    "keyplane: error: rotate --activate: chain 'tde' has no staged version: run 'keyplane rotate tde --stage'"

# A command whose document reports the failure prints that document, not an error object.
rm -rf "$T/b/keys/tde"
expect_rc 1 $P verify --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert set(d) == {"ok", "chains"} and not d["ok"], d' "$T/out"
expect_rc 2 $P plan --detailed-exitcode # the missing copy is a change
expect_in "$T/out" "  + copy    tde v1 region-a -> region-b"
mv "$T/b" "$T/b.away" # unreachable: a finding
expect_rc 1 $P plan --detailed-exitcode --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert list(d) == ["actions", "findings"] and d["findings"][0]["finding"] == "unreachable", d' "$T/out"
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "plan --json printed more than one document"
# Success prints no error object.
mv "$T/b.away" "$T/b"
expect_rc 0 $P key list --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert list(d) == ["keys"], d' "$T/out"
echo "ok: json errors and exit codes"
