#!/bin/sh
# cli.aws_seed000: seed 000 end to end (docs/aws-plugin.md), against two emulated regions that
# check every request's signature with botocore:
# - the real SQL Server export (tests/fixtures/sqlserver-real) imported as the first version of
#   a chain whose secret replicas are an S3 bucket in us-east-1 and one in us-west-2, each under
#   its own region's KMS key, with the passwords in Secrets Manager in us-east-1 replicated to
#   us-west-2 under that region's key;
# - verify proves every copy; the aws CLI reads back, in each region, objects under that
#   region's key, and in us-west-2 the password, which opens the .pvk it read from S3;
# - with us-east-1 stopped and the origin gone, `keyplane sqlserver export` reads us-west-2
#   alone: the .cer is the original, the .pvk opens with the password named, restore.sql is
#   written;
# - no request was refused for its signature, and a wrong secret key is (the check bites).
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
REAL=$KP_SRC/tests/fixtures/sqlserver-real
aws_two_regions
P="--policy $T/policy.yaml"
{
    file_providers origin
    aws_s3_instance s3-east east us-east-1 tde-east "$KE"
    aws_s3_instance s3-west west us-west-2 tde-west "$KW"
    aws_sm_instance passwords east us-east-1 "$KE" west us-west-2 "$KW"
    cat <<YAML
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: origin, exportable: true}
    replicas: [origin]
    secret_replicas: [s3-east, s3-west]
    secrets: passwords
    certificate: {}
YAML
} >"$T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P check
printf '%s' 'Pa$$w0rd' >"$T/real.pass"
expect_rc 0 $P sqlserver import --chain tde --cer "$REAL/dbm_certificate.cer" \
    --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/real.pass"
expect_rc 0 $P verify tde
# a second apply changes nothing: no object, no secret is added
expect_rc 0 $P apply tde
count_objects() { # NAME REGION BUCKET
    aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" s3api list-objects-v2 --bucket "$3" \
        --query 'length(Contents)' --output text
}
[ "$(count_objects east us-east-1 tde-east)" = 3 ] || fail "tde-east does not hold 3 objects"
[ "$(count_objects west us-west-2 tde-west)" = 3 ] || fail "tde-west does not hold 3 objects"

# ---- each region's objects, as the aws CLI reads them ---------------------------------------
for r in "east us-east-1 tde-east $KE" "west us-west-2 tde-west $KW"; do
    set -- $r
    for o in tde.cer tde.pvk tde.key; do
        aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" s3api head-object --bucket "$3" \
            --key "keyplane/$o/v1" >"$T/head.json"
        $PY - "$T/head.json" "$4" "$o" <<'PYEOF' || fail "head-object of $o in $3"
import json, sys
h = json.load(open(sys.argv[1]))
assert h["ServerSideEncryption"] == "aws:kms", h
assert h["SSEKMSKeyId"] == sys.argv[2], (h["SSEKMSKeyId"], sys.argv[2])
assert h["Metadata"]["kp-version"] == "1" and h["Metadata"]["chain"] == "tde", h
PYEOF
    done
    aws_cli --endpoint-url "$(aws_url "$1")" --region "$2" s3api get-object --bucket "$3" \
        --key keyplane/tde.cer/v1 "$T/$1.cer" >/dev/null
    cmp "$T/$1.cer" "$REAL/dbm_certificate.cer" || fail "the .cer in $3 is not the original"
done
# the password of the west copy, read in us-west-2 from the replica, opens the west .pvk
pwver=$(aws_cli --endpoint-url "$AWS_WEST_URL" --region us-west-2 s3api head-object \
    --bucket tde-west --key keyplane/tde.pvk/v1 --query 'Metadata."password-version"' \
    --output text)
aws_cli --endpoint-url "$AWS_WEST_URL" --region us-west-2 secretsmanager get-secret-value \
    --secret-id "keyplane/tde.password/v$pwver" --query SecretString --output text >"$T/west.pass"
[ -s "$T/west.pass" ] || fail "no password in us-west-2"
aws_cli --endpoint-url "$AWS_WEST_URL" --region us-west-2 s3api get-object --bucket tde-west \
    --key keyplane/tde.pvk/v1 "$T/west.pvk" >/dev/null
openssl rsa -provider legacy -provider default -inform PVK -in "$T/west.pvk" \
    -passin "file:$T/west.pass" -pubout -outform DER -out "$T/west.pub" 2>"$T/ossl.err" ||
    { cat "$T/ossl.err" >&2; fail "the west .pvk does not open with the us-west-2 password"; }
openssl x509 -inform DER -in "$REAL/dbm_certificate.cer" -pubkey -noout |
    openssl pkey -pubin -outform DER -out "$T/cert.pub"
cmp "$T/west.pub" "$T/cert.pub" || fail "the west .pvk holds another key than the certificate"
# the primary says the replica is in sync under the west key
aws_cli --endpoint-url "$AWS_EAST_URL" --region us-east-1 secretsmanager describe-secret \
    --secret-id "keyplane/tde.password/v$pwver" >"$T/desc.json"
$PY - "$T/desc.json" "$KW" <<'PYEOF' || fail "the password is not replicated to us-west-2"
import json, sys
d = json.load(open(sys.argv[1]))
(r,) = d["ReplicationStatus"]
assert r["Region"] == "us-west-2" and r["Status"] == "InSync" and r["KmsKeyId"] == sys.argv[2], r
PYEOF

# ---- the disaster: us-east-1 and the origin are gone ---------------------------------------
$ACTL stop --dir "$AWSD" --name east --kill >/dev/null
mv "$T/origin" "$T/origin.lost"
# verify proves the us-west-2 copy there (against the certificate's public key: no keystore
# answers) and names the version unconfirmed: no store it can trust says which key it is
kp $P verify tde --json
[ "$rc" -eq 1 ] || { cat "$T/out" >&2; fail "verify in the disaster: exit $rc, want 1"; }
$PY - "$T/out" <<'PYEOF' || { cat "$T/out" >&2; fail "the us-west-2 copy is not proved"; }
import json, sys
v = json.load(open(sys.argv[1]))["chains"][0]["versions"][0]["replicas"]
assert v["s3-west"]["ok"] and "opened with its password" in v["s3-west"]["detail"], v
assert not v["s3-east"]["ok"] and not v["origin"]["ok"], v
PYEOF
# without --version, the export says to name the version
expect_rc 5 $P sqlserver export --chain tde --from s3-west --out "$T/dr0"
expect_in "$T/err" "name the version with --version N"
expect_rc 0 $P sqlserver export --chain tde --version 1 --from s3-west --out "$T/dr" --json
cmp "$T/dr/tde_v1.cer" "$REAL/dbm_certificate.cer" || fail "the exported .cer is not the original"
[ -s "$T/dr/restore.sql" ] || fail "no restore.sql"
$PY - "$T/out" >"$T/secretcmd" <<'PYEOF'
import json, sys
x = json.load(open(sys.argv[1]))
print(x["password"]["name"], x["password"]["version"])
PYEOF
read -r pname pversion <"$T/secretcmd"
expect_rc 0 $P secret get --chain tde --name "$pname" --version "$pversion" --out "$T/dr.pass"
openssl rsa -provider legacy -provider default -inform PVK -in "$T/dr/tde_v1.pvk" \
    -passin "file:$T/dr.pass" -pubout -outform DER -out "$T/dr.pub" 2>"$T/ossl.err" ||
    { cat "$T/ossl.err" >&2; fail "the exported .pvk does not open with its password"; }
cmp "$T/dr.pub" "$T/cert.pub" || fail "the exported .pvk holds another key"

# ---- every request keyplane and the CLI sent was signed right; a wrong key is refused -------
aws_no_bad_signatures
AWS_SECRET_ACCESS_KEY=wrong-secret expect_rc 4 $P secret list --instance s3-west
expect_in "$T/err" "SignatureDoesNotMatch"
n=$($ACTL stats --dir "$AWSD" --name west | $PY -c \
    'import json, sys; print(json.load(sys.stdin)["signature_rejected"])')
[ "$n" -ge 1 ] || fail "the wrong secret key was not refused"
echo "ok: seed 000 end to end"
