#!/bin/sh
# cli.aws_faults: the aws plugin against regions that fail 30% of requests (throttling, 5xx,
# dropped connections): apply is rerun until it converges, and the result is right: verify
# proves every copy and nothing was written twice. A 4xx that is not throttling (AccessDenied)
# is not retried: one request each for S3 and Secrets Manager; a throttled Secrets Manager
# answer (400 ThrottlingException) is.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
aws_two_regions
P="--policy $T/policy.yaml"
{
    file_providers origin
    aws_s3_instance s3-east east us-east-1 tde-east "$KE"
    echo "    max_attempts: 2"
    aws_s3_instance s3-west west us-west-2 tde-west "$KW"
    echo "    max_attempts: 2"
    aws_sm_instance passwords east us-east-1 "$KE" west us-west-2 "$KW"
    echo "    max_attempts: 2"
    cat <<YAML
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: origin, exportable: true}
    replicas: [origin]
    secret_replicas: [s3-east, s3-west]
    secrets: passwords
    certificate: {subject: "CN=faults test", valid: 30d}
YAML
} >"$T/policy.yaml"
init_stores "$T/policy.yaml"
stat_of() { # NAME EXPR: a value of region NAME's stats (a Python expression over s)
    $ACTL stats --dir "$AWSD" --name "$1" | $PY -c "import json, sys; s = json.load(sys.stdin); print($2)"
}

# ---- 4xx other than throttling: not retried --------------------------------------------------
printf 'x' >"$T/v"
$ACTL faults --dir "$AWSD" --name east '{"forbidden_ops": ["s3:PutObject", "secretsmanager:CreateSecret"]}' >/dev/null
before=$(stat_of east 's["requests_by_service"].get("s3", 0)')
expect_rc 4 $P secret put --instance s3-east --name probe --value "file:$T/v"
expect_in "$T/err" "AccessDenied"
after=$(stat_of east 's["requests_by_service"].get("s3", 0)')
[ $((after - before)) -eq 2 ] || fail "S3: $((after - before)) requests for a refused put (list, put: 2)"
before=$(stat_of east 's["requests_by_service"].get("secretsmanager", 0)')
expect_rc 4 $P secret put --instance passwords --name probe --value "file:$T/v"
expect_in "$T/err" "AccessDeniedException"
after=$(stat_of east 's["requests_by_service"].get("secretsmanager", 0)')
[ $((after - before)) -eq 2 ] || fail "SM: $((after - before)) requests for a refused put (list, create: 2)"
# ---- a throttled Secrets Manager answer is retried ------------------------------------------
$ACTL faults --dir "$AWSD" --name east '{"sequence": ["ok", "429"]}' >/dev/null
before=$(stat_of east 's["requests_by_service"].get("secretsmanager", 0)')
expect_rc 0 $P secret put --instance passwords --name probe --value "file:$T/v"
after=$(stat_of east 's["requests_by_service"].get("secretsmanager", 0)')
[ $((after - before)) -eq 3 ] || fail "SM: $((after - before)) requests for a throttled put (list, 400, create: 3)"

# ---- 30% faults: apply converges to the right state ----------------------------------------
for r in east west; do
    $ACTL faults --dir "$AWSD" --name $r \
        '{"rate_429": 0.1, "rate_503": 0.1, "rate_drop": 0.1, "seed": 7}' >/dev/null
done
runs=0
ok=no
while [ $runs -lt 12 ]; do
    runs=$((runs + 1))
    kp $P apply
    [ "$rc" -lt 128 ] || fail "apply crashed"
    if [ "$rc" -eq 0 ]; then ok=yes; break; fi
done
[ $ok = yes ] || fail "apply did not converge in 12 runs under 30% faults"
# with faults on, verify may fail to read a copy (and says so), but it does not crash
kp $P verify tde
[ "$rc" -lt 128 ] || fail "verify crashed under faults"
for r in east west; do $ACTL faults --dir "$AWSD" --name $r '{}' >/dev/null; done
expect_rc 0 $P verify tde
for r in "east us-east-1 tde-east" "west us-west-2 tde-west"; do
    set -- $r
    aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" s3api list-objects-v2 --bucket "$3" \
        --prefix keyplane/tde --query 'Contents[].Key' --output text | tr '\t' '\n' | sort >"$T/keys"
    printf 'keyplane/tde.cer/v1\nkeyplane/tde.key/v1\nkeyplane/tde.pvk/v1\n' >"$T/want"
    diff "$T/want" "$T/keys" || fail "$3 holds other objects than v1's three"
done
n=$(aws_cli --endpoint-url "$AWS_EAST_URL" --region us-east-1 secretsmanager list-secrets \
    --query 'length(SecretList[?starts_with(Name, `keyplane/tde.password/`)])' --output text)
[ "$n" = 2 ] || fail "$n password secrets, want 2"
aws_no_bad_signatures
echo "ok: converged after $runs runs under 30% faults"
