#!/bin/sh
# cli.aws_multipart: a secret past 16 MiB goes to S3 in parts: it reads back whole, the object
# is a multipart one (its ETag ends in -3 for 20 MiB in 8 MiB parts) under the instance's KMS
# key with its metadata, and a second put makes version 2 (the complete is conditional, never
# an overwrite). A refused part aborts the upload: the put fails with AccessDenied and leaves
# no object.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
: "${KP_AWS_PUT_BIG:?the aws_put_big driver}"
aws_start east us-east-1
KE=$(aws_kms_key east us-east-1)
aws_bucket east us-east-1 big
{
    echo "version: 1"
    echo "providers:"
    aws_s3_instance s3 east us-east-1 big "$KE"
    echo "chains: {}"
} >"$T/policy.yaml"
PLUGINS=$KP_BUILD_DIR/lib/keyplane/plugins
E="--endpoint-url $AWS_EAST_URL --region us-east-1"
"$KP_AWS_PUT_BIG" "$PLUGINS" "$T/policy.yaml" s3 big $((20 * 1024 * 1024)) >"$T/out" ||
    fail "the 20 MiB put"
grep -q "^version 1$" "$T/out" || fail "not version 1: $(cat "$T/out")"
aws_cli $E s3api head-object --bucket big --key keyplane/big/v1 >"$T/head.json"
$PY - "$T/head.json" "$KE" <<'PYEOF' || fail "the object is not a multipart one under the key"
import json, sys
h = json.load(open(sys.argv[1]))
assert h["ETag"].endswith('-3"'), h["ETag"]
assert h["ContentLength"] == 20 * 1024 * 1024, h
assert h["ServerSideEncryption"] == "aws:kms" and h["SSEKMSKeyId"] == sys.argv[2], h
assert h["Metadata"]["note"] == "multipart", h
PYEOF
"$KP_AWS_PUT_BIG" "$PLUGINS" "$T/policy.yaml" s3 big $((17 * 1024 * 1024)) >"$T/out" ||
    fail "the second put"
grep -q "^version 2$" "$T/out" || fail "not version 2: $(cat "$T/out")"
# a refused part: the upload is aborted, nothing is left
$ACTL faults --dir "$AWSD" --name east '{"forbidden_ops": ["s3:UploadPart"]}' >/dev/null
if "$KP_AWS_PUT_BIG" "$PLUGINS" "$T/policy.yaml" s3 other $((17 * 1024 * 1024)) >"$T/out" \
    2>"$T/err"; then
    fail "a put whose parts are refused succeeded"
fi
grep -q "AccessDenied" "$T/err" || { cat "$T/err" >&2; fail "no AccessDenied"; }
$ACTL faults --dir "$AWSD" --name east '{}' >/dev/null
n=$(aws_cli $E s3api list-objects-v2 --bucket big --prefix keyplane/other \
    --query 'length(Contents || `[]`)' --output text)
[ "$n" = 0 ] || fail "a refused upload left $n object(s)"
n=$(aws_cli $E s3api list-multipart-uploads --bucket big \
    --query 'length(Uploads || `[]`)' --output text)
[ "$n" = 0 ] || fail "a refused upload was not aborted ($n left)"
aws_no_bad_signatures
echo "ok: multipart put, read, conditional, aborted"
