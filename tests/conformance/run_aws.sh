#!/bin/sh
# conformance.aws-s3 and conformance.aws-secretsmanager: the kit against the aws plugin and two
# region emulators (tests/emulators/aws) over TLS, which check every request's SigV4 signature
# with botocore. The S3 kind writes to a bucket of us-east-1 under that region's KMS key; the
# Secrets Manager kind replicates every secret to us-west-2 under its key, and reads prove the
# replica there. At the end no request may have been refused for its signature.
# s3-virtual is the S3 kind with virtual-host addressing (https://BUCKET.s3.localhost:PORT, which
# libcurl resolves to loopback and the test certificate names).
# kms is the data-key kind (GenerateDataKey and Decrypt with an encryption context).
# The s3 and kms kinds also run the objects test (ABI 1.6): in the kind's bucket, and in a
# bucket of the region reached through a kms instance's s3_endpoint.
# Usage: run_aws.sh s3|s3-virtual|secretsmanager|kms KIT AWS.so [KIT ARGS...]
set -eu
kind=$1
kit=$2
plugin=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
ctl="/usr/bin/python3 $here/../emulators/aws/awsctl.py"
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-conf-aws.XXXXXX")
trap '$ctl stop-all --dir "$T" >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
$ctl start --dir "$T" --name east --region us-east-1 --link >/dev/null
$ctl start --dir "$T" --name west --region us-west-2 --link >/dev/null
eval "$($ctl env --dir "$T")"
# the test's own credentials, never the user's files
AWS_ACCESS_KEY_ID=AKIDKEYPLANETEST
AWS_SECRET_ACCESS_KEY=kp-aws-secret
AWS_CONFIG_FILE=/dev/null
AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
aws() { /usr/bin/aws --ca-bundle "$AWS_CA" "$@"; }
east_key=$(aws --endpoint-url "$AWS_EAST_URL" --region us-east-1 kms create-key \
    --query KeyMetadata.Arn --output text)
west_key=$(aws --endpoint-url "$AWS_WEST_URL" --region us-west-2 kms create-key \
    --query KeyMetadata.Arn --output text)
if [ "$kind" = s3 ] || [ "$kind" = s3-virtual ]; then
    aws --endpoint-url "$AWS_EAST_URL" --region us-east-1 s3api create-bucket \
        --bucket kp-conf >/dev/null
    endpoint=$AWS_EAST_URL
    addressing=path
    if [ "$kind" = s3-virtual ]; then
        endpoint=https://s3.localhost:$AWS_EAST_PORT
        addressing=virtual
    fi
    cat >"$T/params.yaml" <<YAML
params:
  service: s3
  region: us-east-1
  bucket: kp-conf
  kms_key: $east_key
  endpoint: $endpoint
  addressing: $addressing
  kms_endpoint: $AWS_EAST_URL
  ca_bundle: $AWS_CA
  max_attempts: 2
objects_at: s3://kp-conf/conf-objects/
YAML
elif [ "$kind" = kms ]; then
    aws --endpoint-url "$AWS_EAST_URL" --region us-east-1 s3api create-bucket \
        --bucket kp-conf-backups >/dev/null
    cat >"$T/params.yaml" <<YAML
params:
  service: kms
  region: us-east-1
  endpoint: $AWS_EAST_URL
  s3_endpoint: $AWS_EAST_URL
  ca_bundle: $AWS_CA
  max_attempts: 2
datakey_key: $east_key
objects_at: s3://kp-conf-backups/conf/
YAML
else
    cat >"$T/params.yaml" <<YAML
params:
  service: secretsmanager
  region: us-east-1
  kms_key: $east_key
  replicas: us-west-2=$west_key
  endpoint: $AWS_EAST_URL
  replica_endpoints: us-west-2=$AWS_WEST_URL
  ca_bundle: $AWS_CA
  max_attempts: 2
YAML
fi
rc=0
sh "$here/run_kit.sh" "$kit" "$plugin" --params "$T/params.yaml" "$@" || rc=$?
for r in east west; do
    n=$($ctl stats --dir "$T" --name $r | /usr/bin/python3 -c \
        'import json, sys; print(json.load(sys.stdin)["signature_rejected"])')
    if [ "$n" != 0 ]; then
        echo "run_aws.sh: the $r emulator refused $n request(s) for their signature" >&2
        rc=1
    fi
done
exit $rc
