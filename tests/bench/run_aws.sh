#!/bin/sh
# Runs tests/bench/aws: sh tests/bench/run_aws.sh BUILD_DIR [OPS] [ROUNDS]. Starts one emulated
# AWS region (tests/emulators/aws/awsctl.py, in a temp dir, always stopped), makes a KMS key and
# a bucket there with Debian's aws CLI, writes a policy with three `aws` instances (service s3,
# service secretsmanager with no replicas, service kms) and prints the latency of one secret
# read and of one DEK unwrap (KMS Decrypt) through keyplane against raw libcurl. Defaults: 300
# operations per side per kind per round, 5 rounds. KP_KEEP=1 keeps the temp dir (the region's
# log).
set -eu
build=$(cd "${1:?usage: run_aws.sh BUILD_DIR [OPS] [ROUNDS]}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
py=${KP_PYTHON:-/usr/bin/python3}
region=us-east-1
bucket=kp-bench
# shellcheck source=tests/bench/aws_region.sh
. "$here/aws_region.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-aws-XXXXXX")
cleanup() {
    aws_region_stop
    if [ -n "${KP_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "run_aws.sh: $*" >&2; exit 1; }

aws_region_start

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
