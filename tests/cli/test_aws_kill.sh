#!/bin/sh
# cli.aws_kill: `keyplane apply` killed with SIGKILL twenty times while it copies certificate
# chains into two S3 buckets and their passwords into replicated Secrets Manager (two emulated
# regions; each round adds a chain): a rerun then converges, verify proves every copy, and no
# object or secret was written twice: each bucket holds exactly the .key, .pvk and .cer of v1 of
# every chain, and Secrets Manager one password per chain and bucket, also in us-west-2.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
aws_two_regions
P="--policy $T/policy.yaml"
# chain_block N: chain cN, a certificate chain copied into both buckets, its passwords replicated
chain_block() {
    cat <<YAML
  c$1:
    protector: {type: rsa, bits: 2048, origin: origin, exportable: true}
    replicas: [origin]
    secret_replicas: [s3-east, s3-west]
    secrets: passwords
    certificate: {subject: "CN=kill test $1", valid: 30d}
YAML
}
{
    file_providers origin
    aws_s3_instance s3-east east us-east-1 tde-east "$KE"
    aws_s3_instance s3-west west us-west-2 tde-west "$KW"
    aws_sm_instance passwords east us-east-1 "$KE" west us-west-2 "$KW"
} >"$T/head.yaml"
{ cat "$T/head.yaml"; echo "chains: {}"; } >"$T/init.yaml"
init_stores "$T/init.yaml"
# Every round adds a chain and kills the apply that copies it (and what earlier rounds left) at
# a seeded point; the regions answer each request 20 ms late, so a copy takes long enough to be
# cut anywhere.
for r in east west; do $ACTL faults --dir "$AWSD" --name $r '{"latency_ms": 20}' >/dev/null; done
{ cat "$T/head.yaml"; echo "chains:"; } >"$T/policy.yaml"
i=1
killed=0
while [ $i -le 20 ]; do
    chain_block $i >>"$T/policy.yaml"
    delay=$(awk -v s=$i 'BEGIN { srand(1000 + s); printf "%.2f", 0.15 + rand() * 1.2 }')
    "$KP_BIN" $P apply >"$T/apply.$i.out" 2>&1 &
    pid=$!
    sleep "$delay"
    if kill -9 $pid 2>/dev/null; then
        killed=$((killed + 1))
    fi
    wait $pid 2>/dev/null || true
    i=$((i + 1))
done
[ $killed -ge 15 ] || fail "only $killed of 20 runs were still running when killed"
for r in east west; do $ACTL faults --dir "$AWSD" --name $r '{}' >/dev/null; done
# the rerun converges
expect_rc 0 $P apply
expect_rc 0 $P verify
expect_rc 0 $P apply
expect_in "$T/out" "nothing to do"
# no duplicate objects: exactly v1 of each file of each chain in each bucket
: >"$T/want"
i=1
while [ $i -le 20 ]; do
    printf 'keyplane/c%s.cer/v1\nkeyplane/c%s.key/v1\nkeyplane/c%s.pvk/v1\n' $i $i $i >>"$T/want"
    i=$((i + 1))
done
sort "$T/want" -o "$T/want"
for r in "east us-east-1 tde-east" "west us-west-2 tde-west"; do
    set -- $r
    aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" s3api list-objects-v2 --bucket "$3" \
        --query 'Contents[].Key' --output text | tr '\t' '\n' | sort >"$T/keys"
    diff "$T/want" "$T/keys" || fail "$3 holds other objects than each chain's three of v1"
done
# no duplicate passwords: two per chain (one per bucket), in us-east-1 and in its replica region
for r in "east us-east-1" "west us-west-2"; do
    set -- $r
    n=$(aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" secretsmanager list-secrets \
        --query 'length(SecretList)' --output text)
    [ "$n" = 40 ] || fail "$2 holds $n secrets, want 40 (two passwords per chain)"
done
aws_no_bad_signatures
echo "ok: $killed of 20 runs killed, converged without duplicates"
