#!/bin/sh
# cli.aws_datakey: keyplane datakey against the KMS emulator (the aws plugin's service: kms), and
# the aws CLI on the same keys, both ways:
# - generate with a context writes a new 0600 file (whatever the umask) and prints base64 that
#   decrypt opens to the same bytes, the context in any order; --json; --bytes;
# - aws kms decrypt of keyplane's ciphertext with the context gives the same plaintext, and a
#   ciphertext of aws kms generate-data-key decrypts with keyplane (base64 inline, in a file,
#   raw bytes);
# - another context, no context, a flipped byte, another key: exit 7, one line, no file left;
# - reencrypt to a second key and context: opens there (keyplane and aws kms decrypt), not under
#   the old key or context; a wrong source context is exit 7;
# - an existing file is never overwritten (exit 5, checked before KMS is asked);
# - usage: a bad pair, bad base64, --plaintext-out - for generate (2); an unknown instance (5);
#   an instance without data keys (3);
# - the audit events of the three operations, the destination as "to";
# - no request refused for its signature.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
aws_start east us-east-1
K1=$(aws_kms_key east us-east-1)
K2=$(aws_kms_key east us-east-1)
aws_bucket east us-east-1 plain
{
    echo "version: 1"
    echo "providers:"
    cat <<YAML
  kms-east:
    plugin: aws
    service: kms
    region: us-east-1
    endpoint: $AWS_EAST_URL
    ca_bundle: $AWS_CA
    max_attempts: 1
YAML
    aws_s3_instance s3-east east us-east-1 plain "$K1"
    echo "chains: {}"
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
E="--endpoint-url $AWS_EAST_URL --region us-east-1"
DK="$P datakey"

# one_line FILE RC: stderr of a failure is one line, and a usage error's (exit 2) the command's
# "Try 'keyplane ... --help'." after it
one_line() {
    n=$(wc -l <"$1")
    if [ "$2" = 2 ]; then
        [ "$n" -eq 2 ] && sed -n 2p "$1" | grep -q "^Try 'keyplane datakey [a-z]* --help'.$" ||
            { cat "$1" >&2; fail "a usage error of $n lines, want one and the hint"; }
    else
        [ "$n" -eq 1 ] || { cat "$1" >&2; fail "$n lines of error, want one"; }
    fi
}
# refused WHAT RC WORDS ARGS...: keyplane ARGS exits RC with one line holding WORDS, and leaves
# no $T/none
refused() {
    what=$1 want=$2 words=$3
    shift 3
    expect_rc "$want" "$@"
    one_line "$T/err" "$want"
    head -n 1 "$T/err" | grep -q -F -- "$words" || { cat "$T/err" >&2; fail "$what: no '$words'"; }
    [ ! -e "$T/none" ] || fail "$what left a plaintext file"
}

# --- generate, decrypt --------------------------------------------------------------------------
(umask 0277 && "$KP_BIN" $DK generate --instance kms-east --key-id "$K1" --context db=sales \
    --context tenant=a --plaintext-out "$T/pt" >"$T/ct.b64" 2>"$T/err") ||
    { cat "$T/err" >&2; fail "generate"; }
[ "$(stat -c %a "$T/pt")" = 600 ] || fail "the plaintext file is $(stat -c %a "$T/pt"), want 600"
[ "$(stat -c %s "$T/pt")" = 32 ] || fail "the data key is $(stat -c %s "$T/pt") bytes, want 32"
[ "$(wc -l <"$T/ct.b64")" = 1 ] || fail "generate printed more than the ciphertext"
base64 -d "$T/ct.b64" >"$T/ct.bin" || fail "generate's ciphertext is not base64"
expect_rc 0 $DK decrypt --instance kms-east --key-id "$K1" --context tenant=a --context db=sales \
    --ciphertext-file "$T/ct.b64" --plaintext-out "$T/pt2"
cmp -s "$T/pt" "$T/pt2" || fail "decrypt gave other bytes than generate wrote"
[ "$(stat -c %a "$T/pt2")" = 600 ] || fail "decrypt's file is $(stat -c %a "$T/pt2"), want 600"
# the raw bytes, and stdout when it is no terminal
expect_rc 0 $DK decrypt --instance kms-east --key-id "$K1" --context db=sales --context tenant=a \
    --ciphertext-file "$T/ct.bin" --plaintext-out -
cmp -s "$T/pt" "$T/out" || fail "decrypt of the raw ciphertext to stdout gave other bytes"

# the aws CLI opens keyplane's ciphertext
aws_cli $E kms decrypt --ciphertext-blob "fileb://$T/ct.bin" --encryption-context \
    db=sales,tenant=a --query Plaintext --output text | base64 -d >"$T/pt.aws" ||
    fail "aws kms decrypt of keyplane's ciphertext"
cmp -s "$T/pt" "$T/pt.aws" || fail "aws kms decrypt gave other bytes than keyplane wrote"

# keyplane opens the aws CLI's data key: base64 inline, in a file, raw bytes
aws_cli $E kms generate-data-key --key-id "$K1" --key-spec AES_256 \
    --encryption-context purpose=backup >"$T/gdk.json" || fail "aws kms generate-data-key"
$PY - "$T/gdk.json" "$T" <<'PYEOF' || fail "the aws CLI's answer"
import base64, json, sys
g = json.load(open(sys.argv[1]))
open(sys.argv[2] + "/aws.ct.b64", "w").write(g["CiphertextBlob"] + "\n")
open(sys.argv[2] + "/aws.ct.bin", "wb").write(base64.b64decode(g["CiphertextBlob"]))
open(sys.argv[2] + "/aws.pt", "wb").write(base64.b64decode(g["Plaintext"]))
PYEOF
expect_rc 0 $DK decrypt --instance kms-east --key-id "$K1" --context purpose=backup \
    --ciphertext "$(cat "$T/aws.ct.b64")" --plaintext-out "$T/k1"
expect_rc 0 $DK decrypt --instance kms-east --key-id "$K1" --context purpose=backup \
    --ciphertext-file "$T/aws.ct.bin" --plaintext-out "$T/k2"
base64 -w 20 "$T/aws.ct.bin" >"$T/aws.ct.wrapped" # what base64(1) writes by default, shorter
expect_rc 0 $DK decrypt --instance kms-east --key-id "$K1" --context purpose=backup \
    --ciphertext-file "$T/aws.ct.wrapped" --plaintext-out "$T/k3"
for f in k1 k2 k3; do
    cmp -s "$T/aws.pt" "$T/$f" || fail "keyplane decrypt ($f) of the aws CLI's data key differs"
done

# --json and --bytes
expect_rc 0 $DK generate --instance kms-east --key-id "$K1" --context db=hr --bytes 16 \
    --plaintext-out "$T/pt16" --json
$PY - "$T/out" "$K1" <<'PYEOF' || fail "generate --json: $(cat "$T/out")"
import base64, json, sys
j = json.load(open(sys.argv[1]))
assert j["key_id"] == sys.argv[2] and j["bytes"] == 16 and j["context"] == {"db": "hr"}, j
assert j["instance"] == "kms-east" and len(base64.b64decode(j["ciphertext"])) > 16, j
PYEOF
[ "$(stat -c %s "$T/pt16")" = 16 ] || fail "--bytes 16 wrote $(stat -c %s "$T/pt16") bytes"

# --- what must fail -----------------------------------------------------------------------------
B64=$(cat "$T/ct.b64")
refused "another context" 7 "does not decrypt with that key and context" \
    $DK decrypt --instance kms-east --key-id "$K1" --context db=hr --context tenant=a \
    --ciphertext "$B64" --plaintext-out "$T/none"
refused "no context" 7 "does not decrypt with that key and context" \
    $DK decrypt --instance kms-east --key-id "$K1" --ciphertext "$B64" --plaintext-out "$T/none"
$PY - "$T/ct.bin" "$T/flipped.bin" <<'PYEOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x01
open(sys.argv[2], "wb").write(bytes(b))
PYEOF
refused "a flipped byte" 7 "does not decrypt with that key and context" \
    $DK decrypt --instance kms-east --key-id "$K1" --context db=sales --context tenant=a \
    --ciphertext-file "$T/flipped.bin" --plaintext-out "$T/none"
refused "another key" 7 "IncorrectKeyException" \
    $DK decrypt --instance kms-east --key-id "$K2" --context db=sales --context tenant=a \
    --ciphertext "$B64" --plaintext-out "$T/none"

# --- reencrypt ----------------------------------------------------------------------------------
expect_rc 0 $DK reencrypt --instance kms-east --key-id "$K1" --context db=sales \
    --context tenant=a --to-key-id "$K2" --to-context db=sales --to-context stage=dr \
    --ciphertext-file "$T/ct.b64"
cp "$T/out" "$T/re.b64"
[ "$(wc -l <"$T/re.b64")" = 1 ] || fail "reencrypt printed more than the ciphertext"
cmp -s "$T/re.b64" "$T/ct.b64" && fail "reencrypt printed the ciphertext it was given"
expect_rc 0 $DK decrypt --instance kms-east --key-id "$K2" --context stage=dr --context db=sales \
    --ciphertext-file "$T/re.b64" --plaintext-out "$T/pt.re"
cmp -s "$T/pt" "$T/pt.re" || fail "the re-encrypted data key is another key"
base64 -d "$T/re.b64" >"$T/re.bin"
aws_cli $E kms decrypt --key-id "$K2" --ciphertext-blob "fileb://$T/re.bin" \
    --encryption-context db=sales,stage=dr --query Plaintext --output text |
    base64 -d >"$T/pt.re.aws" || fail "aws kms decrypt of the re-encrypted key"
cmp -s "$T/pt" "$T/pt.re.aws" || fail "aws kms decrypt of the re-encrypted key differs"
refused "the re-encrypted key under the old context" 7 "does not decrypt" \
    $DK decrypt --instance kms-east --key-id "$K2" --context db=sales --context tenant=a \
    --ciphertext-file "$T/re.b64" --plaintext-out "$T/none"
refused "the re-encrypted key under the old key" 7 "IncorrectKeyException" \
    $DK decrypt --instance kms-east --key-id "$K1" --context stage=dr --context db=sales \
    --ciphertext-file "$T/re.b64" --plaintext-out "$T/none"
refused "reencrypt with another source context" 7 "does not decrypt with that key and context" \
    $DK reencrypt --instance kms-east --key-id "$K1" --context db=hr --to-key-id "$K2" \
    --ciphertext "$B64"
# the same key, another context, --json
expect_rc 0 $DK reencrypt --instance kms-east --key-id "$K1" --context db=sales \
    --context tenant=a --to-key-id "$K1" --to-context tenant=b --ciphertext "$B64" --json
$PY - "$T/out" "$K1" "$T/re1.b64" <<'PYEOF' || fail "reencrypt --json: $(cat "$T/out")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["source_key_id"] == sys.argv[2] and j["key_id"] == sys.argv[2], j
assert j["context"] == {"tenant": "b"}, j
open(sys.argv[3], "w").write(j["ciphertext"] + "\n")
PYEOF
expect_rc 0 $DK decrypt --instance kms-east --key-id "$K1" --context tenant=b \
    --ciphertext-file "$T/re1.b64" --plaintext-out "$T/pt.re1"
cmp -s "$T/pt" "$T/pt.re1" || fail "re-encrypted under the same key: another data key"

# --- files that exist are never overwritten -----------------------------------------------------
cp "$T/pt" "$T/pt.keep"
refused "generate over an existing file" 5 "exists" \
    $DK generate --instance kms-east --key-id "$K1" --plaintext-out "$T/pt"
refused "decrypt over an existing file" 5 "exists" \
    $DK decrypt --instance kms-east --key-id "$K1" --context db=sales --context tenant=a \
    --ciphertext "$B64" --plaintext-out "$T/pt"
cmp -s "$T/pt" "$T/pt.keep" || fail "an existing plaintext file was changed"
[ ! -s "$T/out" ] || fail "generate over an existing file printed a ciphertext"
ln -s "$T/elsewhere" "$T/link"
refused "a dangling symbolic link" 5 "exists" \
    $DK decrypt --instance kms-east --key-id "$K1" --context db=sales --context tenant=a \
    --ciphertext "$B64" --plaintext-out "$T/link"
[ ! -e "$T/elsewhere" ] || fail "a data key was written through a symbolic link"

# --- usage and instances ------------------------------------------------------------------------
refused "a pair without =" 2 "--context takes KEY=VALUE" \
    $DK generate --instance kms-east --key-id "$K1" --context dbsales --plaintext-out "$T/none"
refused "a key of capitals" 2 "a key is made of [a-z0-9_.-]" \
    $DK generate --instance kms-east --key-id "$K1" --context Db=x --plaintext-out "$T/none"
refused "a key twice" 2 "db given twice" \
    $DK generate --instance kms-east --key-id "$K1" --context db=a --context db=b \
    --plaintext-out "$T/none"
expect_rc 2 $DK decrypt --instance kms-east --key-id "$K1" --ciphertext 'not*base64' \
    --plaintext-out "$T/none"
expect_in "$T/err" "--ciphertext: not base64"
expect_rc 2 $DK generate --instance kms-east --key-id "$K1" --plaintext-out -
expect_in "$T/err" "stdout carries the ciphertext"
expect_rc 2 $DK decrypt --instance kms-east --key-id "$K1" --ciphertext "$B64"
expect_in "$T/err" "--plaintext-out FILE is required"
expect_rc 2 $DK generate --instance kms-east --key-id "$K1" --to-key-id "$K2" \
    --plaintext-out "$T/none"
expect_in "$T/err" "bad option '--to-key-id'"
refused "an unknown instance" 5 "no provider instance 'nowhere'" \
    $DK generate --instance nowhere --key-id "$K1" --plaintext-out "$T/none"
refused "an instance without data keys" 3 "s3-east (plugin aws) makes no data keys" \
    $DK generate --instance s3-east --key-id "$K1" --plaintext-out "$T/none"
for sub in generate decrypt reencrypt; do
    expect_rc 0 datakey "$sub" --help
    expect_in "$T/out" "Usage: keyplane datakey $sub"
done

# --- audit ---------------------------------------------------------------------------------------
expect_rc 0 $P --audit "$T/audit.log" datakey reencrypt --instance kms-east --key-id "$K1" \
    --context db=sales --context tenant=a --to-key-id "$K2" --ciphertext "$B64"
$PY - "$T/audit.log" "$K1" "$K2" <<'PYEOF' || { cat "$T/audit.log" >&2; fail "the audit event"; }
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert len(ev) == 1, ev
e = ev[0]
assert e["op"] == "datakey.reencrypt" and e["outcome"] == "ok", e
assert e["name"] == sys.argv[2] and e["to"] == sys.argv[3], e
assert e["command"].startswith("datakey reencrypt --instance"), e
assert all(sys.argv[2] not in v for k, v in e.items() if k == "command"), e
PYEOF
# no plaintext in the log or the outputs of this run's commands
! grep -q -F "$(base64 -w0 "$T/pt")" "$T/audit.log" || fail "the audit log holds the data key"

aws_no_bad_signatures
echo "ok: datakey generate, decrypt, reencrypt against KMS and the aws CLI"
