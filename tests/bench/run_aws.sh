#!/bin/sh
# Runs tests/bench/aws: sh tests/bench/run_aws.sh BUILD_DIR [OPS] [ROUNDS]. Starts one emulated
# AWS region (tests/emulators/aws/awsctl.py, in a temp dir, always stopped), makes a KMS key and
# a bucket there with Debian's aws CLI, writes a policy with three `aws` instances (service s3,
# service secretsmanager with no replicas, service kms) and prints the latency of one secret
# read and of one DEK unwrap (KMS Decrypt) through keyplane against raw libcurl. Defaults: 300
# operations per side per kind per round, 5 rounds. KP_KEEP=1 keeps the temp dir (the region's
# log).
#
# The credentials are the emulator's test key, in the environment; ~/.aws is never read
# (AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE are empty files of the temp dir) and instance
# metadata is off.
set -eu
build=$(cd "${1:?usage: run_aws.sh BUILD_DIR [OPS] [ROUNDS]}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
py=${KP_PYTHON:-/usr/bin/python3}
awsctl="$here/../emulators/aws/awsctl.py"
region=us-east-1
bucket=kp-bench
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-aws-XXXXXX")
cleanup() {
    "$py" "$awsctl" stop-all --dir "$T/aws" --kill >/dev/null 2>&1 || true
    if [ -n "${KP_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "run_aws.sh: $*" >&2; exit 1; }

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

"$py" "$awsctl" start --dir "$T/aws" --name east --region "$region" >/dev/null ||
    fail "cannot start the region"
eval "$("$py" "$awsctl" env --dir "$T/aws")"
if [ -z "${AWS_EAST_URL:-}" ] || [ ! -f "${AWS_CA:-}" ]; then fail "awsctl env"; fi
cli() { /usr/bin/aws --ca-bundle "$AWS_CA" --endpoint-url "$AWS_EAST_URL" --region "$region" "$@"; }
key=$(cli kms create-key --query KeyMetadata.Arn --output text) || fail "kms create-key"
cli s3api create-bucket --bucket "$bucket" >/dev/null || fail "s3api create-bucket"

cat >"$T/policy.yaml" <<EOF2
version: 1
providers:
  s3-bench:
    plugin: aws
    service: s3
    region: $region
    bucket: $bucket
    kms_key: $key
    endpoint: $AWS_EAST_URL
    kms_endpoint: $AWS_EAST_URL
    ca_bundle: $AWS_CA
  sm-bench:
    plugin: aws
    service: secretsmanager
    region: $region
    kms_key: $key
    endpoint: $AWS_EAST_URL
    ca_bundle: $AWS_CA
  kms-bench:
    plugin: aws
    service: kms
    region: $region
    endpoint: $AWS_EAST_URL
    ca_bundle: $AWS_CA
EOF2

rc=0
"$build/bin/bench_aws" "$build/lib/keyplane/plugins" "$T/policy.yaml" s3-bench sm-bench kms-bench \
    "$AWS_CA" "$AWS_EAST_URL" "$region" "$bucket" "${2:-300}" "${3:-5}" >"$T/out" || rc=$?
cat "$T/out"
if [ "$rc" -ne 0 ]; then
    tail -n 20 "$T/aws/east.log" >&2 2>/dev/null || true
    fail "bench_aws failed ($rc)"
fi
for kind in 's3 GetObject' 'secretsmanager get' 'kms Decrypt'; do
    grep -q "^aws $kind .*: raw p50 .* | keyplane p50 .* | p50 overhead" "$T/out" ||
        fail "no summary line for $kind"
done
# a loopback round trip of 35 ms or more is the delayed-ACK stall, not the client
awk '/^aws .*: raw p50/ {
    for (i = 1; i < NF; i++) if ($i == "p50") { if ($(i + 1) + 0 >= 35) stall = 1; break }
}
END { if (stall) print "note: raw p50 >= 35 ms on loopback: the emulator stalls on delayed " \
                       "ACKs (Nagle), so the overhead figures say little" }' "$T/out"
