#!/bin/sh
# Bad input and failure paths of the command: each gives a clear one-line error and the
# documented exit code, and leaves nothing behind.
. "$(dirname "$0")/lib.sh"
two_regions
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
openssl rand 32 >"$T/dek"

expect_rc 2 nosuchcommand
expect_in "$T/err" "unknown command 'nosuchcommand'"
expect_rc 2
expect_rc 0 --help
expect_in "$T/out" "Exit status"
for cmd in plugins check wrap unwrap "policy validate" "key create" "key generate" "key import" \
    "key list" "key public"; do
    # shellcheck disable=SC2086
    expect_rc 0 $cmd --help
    expect_in "$T/out" "Usage: keyplane"
done
# Policy problems.
expect_rc 5 --policy "$T/none.yaml" check
expect_in "$T/err" "cannot open policy $T/none.yaml"
expect_rc 5 $P check region-z
expect_in "$T/err" "no provider instance 'region-z'"
# wrap: arguments.
expect_rc 2 $P wrap
expect_in "$T/err" "--chain is required"
expect_rc 2 $P wrap --chain tde 0123456789abcdef
expect_in "$T/err" "never taken from the command line"
expect_rc 2 $P wrap --chain tde --dek hunter2
expect_rc 5 $P wrap --chain nope --dek "file:$T/dek"
expect_in "$T/err" "no chain 'nope'"
expect_rc 5 $P wrap --chain tde --dek "file:$T/missing"
expect_rc 5 $P wrap --chain tde --dek "file:$T/dek" # no protector yet
expect_in "$T/err" "holds a protector version"
: >"$T/empty"
expect_rc 2 $P wrap --chain tde --dek "file:$T/empty"
expect_in "$T/err" "is empty"
head -c 600 /dev/zero >"$T/big"
expect_rc 2 $P wrap --chain tde --dek "file:$T/big"
expect_rc 0 $P key create --chain tde
expect_rc 2 $P wrap --chain tde --dek "file:$T/dek" --json
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"
# unwrap: malformed envelopes.
echo 'not json' >"$T/bad1"
expect_rc 7 $P unwrap --in "$T/bad1" --out "$T/x"
expect_in "$T/err" "malformed envelope: not JSON"
sed 's/"kp":1/"kp":9/' "$T/env" >"$T/bad2"
expect_rc 7 $P unwrap --in "$T/bad2" --out "$T/x"
expect_in "$T/err" "unsupported format version"
sed 's/"chain":"tde"/"chain":"other"/' "$T/env" >"$T/bad3"
expect_rc 5 $P unwrap --in "$T/bad3" --out "$T/x"
expect_in "$T/err" "no chain 'other'"
# A wrapped byte flipped: every replica fails to unwrap; integrity exit code.
tamper_envelope "$T/env" "$T/bad4" 5 0x40
expect_rc 7 $P unwrap --in "$T/bad4" --out "$T/x"
expect_in "$T/err" "no replica of chain 'tde' could unwrap"
[ ! -e "$T/x" ] || fail "failed unwraps left $T/x"
expect_rc 2 $P unwrap --in "$T/env" --json
expect_in "$T/err" "--json needs --out"
expect_rc 5 $P unwrap --in "$T/nope" --out "$T/x"
# key: arguments and refusals.
expect_rc 2 $P key
expect_rc 2 $P key frobnicate
expect_rc 2 $P key generate --instance region-a
expect_rc 2 $P key generate --instance region-a --name k --bits 1024
expect_rc 2 $P key import --instance region-a --name k
echo "garbage" >"$T/garbage"
expect_rc 2 $P key import --instance region-a --name k --key "file:$T/garbage"
expect_in "$T/err" "not a private key"
expect_rc 0 $P key generate --instance region-a --name k
expect_rc 5 $P key generate --instance region-a --name k --version 1
expect_in "$T/err" "exists"
expect_rc 5 $P key public --instance region-a --name nokey
expect_rc 2 $P key generate --instance region-a --name "../../etc"
expect_rc 2 $P key generate --instance region-a --name k --version -1
expect_rc 2 $P key generate --instance region-a --name k --version 4294967297
expect_rc 2 $P key generate --instance region-a --name k --version " 3"
expect_rc 0 $P key --json list
"$PY" -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["keys"]) >= 2' "$T/out"
# --out into a pipe writes into it (and leaves it a pipe); a symlink is refused.
mkfifo "$T/fifo"
cat "$T/fifo" >"$T/from-fifo" &
reader=$!
expect_rc 0 $P unwrap --in "$T/env" --out "$T/fifo"
wait $reader
cmp "$T/dek" "$T/from-fifo" || fail "DEK through a FIFO"
[ -p "$T/fifo" ] || fail "the FIFO was replaced"
ln -s "$T/target" "$T/link"
expect_rc 2 $P unwrap --in "$T/env" --out "$T/link"
expect_in "$T/err" "is a symbolic link"
[ ! -e "$T/target" ] || fail "wrote through a symlink"
# policy validate --json always prints a document, also for odd bytes and missing files.
printf 'version: 1\nproviders:\n  caf\303\251-%s: {plugin: file}\n' \
    aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa >"$T/utf8.yaml"
expect_rc 3 policy validate --json "$T/utf8.yaml"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["valid"] and d["errors"], d' "$T/out"
expect_rc 5 policy validate --json "$T/missing.yaml"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "cannot open policy" in d["errors"][0]["message"], d' "$T/out"
# A policy read from a pipe resolves relative paths against the working directory.
expect_rc 0 policy validate /dev/stdin <"$T/policy.yaml"
# The output file of a wrap is 0600 and nothing temporary is left next to it.
[ "$(stat -c %a "$T/env")" = 600 ] || fail "envelope file mode $(stat -c %a "$T/env")"
ls "$T" | grep -q 'tmp-' && fail "temporary files left in $T"
echo "ok: error paths"
