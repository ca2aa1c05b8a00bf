# AWS emulator fixture for the CLI tests (sourced after lib.sh): emulated regions in $T/aws,
# stopped on exit, each checking every request's SigV4 signature with botocore.
#   aws_start NAME REGION [awsctl start options...]  starts region NAME (--link: the regions
#                                                   replicate to each other) and sets AWS_CA,
#                                                   AWS_<NAME>_URL, AWS_<NAME>_PORT
#   aws_cli ARGS...                                 Debian's aws CLI (/usr/bin/aws) with the
#                                                   test's credentials and CA
#   aws_kms_key NAME REGION                         a new KMS key of region NAME: its ARN
#   aws_bucket NAME REGION BUCKET                   a new bucket of region NAME
#   aws_s3_instance INST NAME REGION BUCKET KEY     prints instance INST: an S3 store
#   aws_sm_instance INST NAME REGION KEY [RNAME RREGION RKEY]
#                                                   prints instance INST: Secrets Manager,
#                                                   replicated to RREGION (emulated by RNAME)
#   aws_kms_instance INST NAME REGION [LINE...]    prints instance INST: the KMS keystore of
#                                                   region NAME, each LINE added as a param
#   aws_two_regions                                 regions east (us-east-1) and west (us-west-2)
#                                                   linked, a KMS key in each ($KE, $KW), the
#                                                   buckets tde-east and tde-west
#   aws_no_bad_signatures                           fails when any region refused a request
#                                                   for its signature
# The credentials are the emulator's default key, in the environment; the user's ~/.aws is
# never read (AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE point at empty files).
ACTL="$PY $KP_SRC/tests/emulators/aws/awsctl.py"
AWSD=$T/aws
AWS_ACCESS_KEY_ID=AKIDKEYPLANETEST
AWS_SECRET_ACCESS_KEY=kp-aws-secret
AWS_CONFIG_FILE=$T/aws-config
AWS_SHARED_CREDENTIALS_FILE=$T/aws-credentials
AWS_EC2_METADATA_DISABLED=true
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
export AWS_EC2_METADATA_DISABLED
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
trap '$ACTL stop-all --dir "$AWSD" --kill >/dev/null 2>&1 || true; rm -rf "$T"' EXIT

aws_start() {
    name=$1
    region=$2
    shift 2
    $ACTL start --dir "$AWSD" --name "$name" --region "$region" "$@" >/dev/null ||
        fail "cannot start region $name"
    eval "$($ACTL env --dir "$AWSD")"
    [ -f "$AWS_CA" ] || fail "awsctl env"
}

aws_url() { # NAME: the URL of region NAME
    eval "echo \"\$AWS_$(echo "$1" | tr 'a-z-' 'A-Z_')_URL\""
}

aws_cli() {
    /usr/bin/aws --ca-bundle "$AWS_CA" "$@"
}

aws_kms_key() {
    aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" kms create-key \
        --query KeyMetadata.Arn --output text
}

aws_bucket() {
    if [ "$2" = us-east-1 ]; then
        aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" s3api create-bucket \
            --bucket "$3" >/dev/null
    else
        aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" s3api create-bucket \
            --bucket "$3" --create-bucket-configuration "LocationConstraint=$2" >/dev/null
    fi
}

aws_s3_instance() {
    cat <<YAML
  $1:
    plugin: aws
    service: s3
    region: $3
    bucket: $4
    kms_key: $5
    endpoint: $(aws_url "$2")
    kms_endpoint: $(aws_url "$2")
    ca_bundle: $AWS_CA
YAML
}

aws_sm_instance() {
    cat <<YAML
  $1:
    plugin: aws
    service: secretsmanager
    region: $3
    kms_key: $4
    endpoint: $(aws_url "$2")
    ca_bundle: $AWS_CA
YAML
    if [ $# -ge 7 ]; then
        echo "    replicas: $6=$7"
        echo "    replica_endpoints: $6=$(aws_url "$5")"
    fi
}

aws_two_regions() {
    aws_start east us-east-1 --link
    aws_start west us-west-2 --link
    KE=$(aws_kms_key east us-east-1)
    KW=$(aws_kms_key west us-west-2)
    aws_bucket east us-east-1 tde-east
    aws_bucket west us-west-2 tde-west
}

aws_no_bad_signatures() {
    for f in "$AWSD"/*.port; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .port)
        $ACTL stats --dir "$AWSD" --name "$n" >"$T/stats.json" 2>/dev/null || continue
        bad=$($PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["signature_rejected"])' \
            "$T/stats.json")
        [ "$bad" = 0 ] || { cat "$T/stats.json" >&2; fail "region $n refused $bad signature(s)"; }
    done
}

# aws_kms_instance INST NAME REGION [LINE...]: prints instance INST: the KMS keystore of region
# NAME (emulated), each LINE ("prefix: x/") added as a param
aws_kms_instance() {
    cat <<YAML
  $1:
    plugin: aws
    service: kms
    region: $3
    endpoint: $(aws_url "$2")
    ca_bundle: $AWS_CA
YAML
    shift 3
    for line in "$@"; do
        echo "    $line"
    done
}
