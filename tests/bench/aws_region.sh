# shellcheck shell=sh disable=SC2034,SC2154 # the variables are the caller's, both ways
# Sourced by the AWS benches (run_aws.sh, run_backup.sh): one emulated AWS region in $T/aws
# (tests/emulators/aws/awsctl.py), a KMS key and a bucket made there with Debian's aws CLI.
# The caller sets here (tests/bench), py, region and bucket before it sources this, T (its temp
# dir) and fail() before it calls aws_region_start, and calls aws_region_stop from its cleanup.
#
# The credentials are the emulator's test key, in the environment; ~/.aws is never read
# (AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE are empty files of $T) and instance metadata
# is off.
awsctl="$here/../emulators/aws/awsctl.py"

aws_region_env() {
    AWS_ACCESS_KEY_ID=AKIDKEYPLANETEST
    AWS_SECRET_ACCESS_KEY=kp-aws-secret
    AWS_CONFIG_FILE=$T/aws-config
    AWS_SHARED_CREDENTIALS_FILE=$T/aws-credentials
    AWS_EC2_METADATA_DISABLED=true
    AWS_PAGER=
    : >"$AWS_CONFIG_FILE"
    : >"$AWS_SHARED_CREDENTIALS_FILE"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
    export AWS_EC2_METADATA_DISABLED AWS_PAGER
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE \
        AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_SECRETS_MANAGER AWS_ENDPOINT_URL_KMS
}

# The aws CLI against the region.
cli() { /usr/bin/aws --ca-bundle "$AWS_CA" --endpoint-url "$AWS_EAST_URL" --region "$region" "$@"; }

# Starts the region; sets AWS_EAST_URL, AWS_CA, emu (the emulator's pid) and key (the KMS key's
# ARN), and makes $bucket.
aws_region_start() {
    aws_region_env
    "$py" "$awsctl" start --dir "$T/aws" --name east --region "$region" >/dev/null ||
        fail "cannot start the region"
    eval "$("$py" "$awsctl" env --dir "$T/aws")"
    if [ -z "${AWS_EAST_URL:-}" ] || [ ! -f "${AWS_CA:-}" ]; then fail "awsctl env"; fi
    emu=$(cat "$T/aws/east.pid") || fail "no emulator pid"
    key=$(cli kms create-key --query KeyMetadata.Arn --output text) || fail "kms create-key"
    cli s3api create-bucket --bucket "$bucket" >/dev/null || fail "s3api create-bucket"
}

aws_region_stop() { "$py" "$awsctl" stop-all --dir "$T/aws" --kill >/dev/null 2>&1 || true; }
