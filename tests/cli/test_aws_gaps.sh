#!/bin/sh
# cli.aws_gaps: copies that are in the stores but would fail in a disaster are gaps in verify,
# as the aws plugin reports them (store.gap, ABI 1.4), and nothing else:
# - an S3 object put again under another KMS key of its region, or under SSE-S3 (AES256), is a
#   gap naming the key; put back under the instance's key, verify is clean again;
# - a password whose replication to us-west-2 failed (the region was down when it was written)
#   is a gap until the region is back and the replica is in sync;
# - a password changed outside keyplane (PutSecretValue moves AWSCURRENT) is a gap, and the
#   copy still opens with the version keyplane wrote;
# - a replica region holding another value under keyplane's version id is a gap;
# - a .cer put again under another key is a gap;
# - a password planted in the secrets store with the metadata of a copy is never taken for the
#   copy's password (apply writes its own, derived from the key);
# - a secret scheduled for deletion does not block the next put of its name;
# - with us-east-1 down, the passwords are read from us-west-2.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
aws_start east us-east-1 --link
aws_start west us-west-2 --link
KE=$(aws_kms_key east us-east-1)
KE2=$(aws_kms_key east us-east-1)
KW=$(aws_kms_key west us-west-2)
aws_bucket east us-east-1 tde-east
P="--policy $T/policy.yaml"
{
    file_providers origin
    aws_s3_instance s3-east east us-east-1 tde-east "$KE"
    aws_sm_instance passwords east us-east-1 "$KE" west us-west-2 "$KW"
    echo "    deadline_ms: 3000"
    echo "    max_attempts: 1"
    cat <<YAML
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: origin, exportable: true}
    replicas: [origin]
    secret_replicas: [s3-east]
    secrets: passwords
    certificate: {subject: "CN=gaps test", valid: 30d}
YAML
} >"$T/policy.yaml"
init_stores "$T/policy.yaml"
# us-west-2 is down while the password is written: its replication fails
$ACTL stop --dir "$AWSD" --name west >/dev/null
expect_rc 0 $P apply
kp $P verify tde --json
[ "$rc" -ne 0 ] || fail "verify is clean with the replica region down"
expect_in "$T/out" "us-west-2"
# the region comes back: the emulator retries the replication; verify is clean once in sync
aws_start west us-west-2 --link --port-reuse
n=0
while :; do
    kp $P verify tde --json
    [ "$rc" -eq 0 ] && break
    n=$((n + 1))
    [ $n -lt 30 ] || { cat "$T/out" >&2; fail "the replica never came in sync"; }
    sleep 0.5
done

# ---- an object re-put under another key of the region, then under SSE-S3 --------------------
E="--endpoint-url $AWS_EAST_URL --region us-east-1"
aws_cli $E s3api get-object --bucket tde-east --key keyplane/tde.key/v1 "$T/key.obj" >"$T/get.json"
meta=$($PY -c 'import json, sys; print(",".join("%s=%s" % kv for kv in json.load(open(sys.argv[1]))["Metadata"].items()))' "$T/get.json")
aws_cli $E s3api put-object --bucket tde-east --key keyplane/tde.key/v1 --body "$T/key.obj" \
    --server-side-encryption aws:kms --ssekms-key-id "$KE2" --metadata "$meta" >/dev/null
kp $P verify tde --json
[ "$rc" -ne 0 ] || fail "verify is clean with the object under another key"
expect_in "$T/out" "$KE2"
aws_cli $E s3api put-object --bucket tde-east --key keyplane/tde.key/v1 --body "$T/key.obj" \
    --server-side-encryption AES256 --metadata "$meta" >/dev/null
kp $P verify tde --json
[ "$rc" -ne 0 ] || fail "verify is clean with the object under SSE-S3"
expect_in "$T/out" "AES256"
aws_cli $E s3api put-object --bucket tde-east --key keyplane/tde.key/v1 --body "$T/key.obj" \
    --server-side-encryption aws:kms --ssekms-key-id "$KE" --metadata "$meta" >/dev/null
expect_rc 0 $P verify tde

# ---- the .cer re-put under another key of the region ----------------------------------------
aws_cli $E s3api get-object --bucket tde-east --key keyplane/tde.cer/v1 "$T/cer.obj" >"$T/getc.json"
cmeta=$($PY -c 'import json, sys; print(",".join("%s=%s" % kv for kv in json.load(open(sys.argv[1]))["Metadata"].items()))' "$T/getc.json")
aws_cli $E s3api put-object --bucket tde-east --key keyplane/tde.cer/v1 --body "$T/cer.obj" \
    --server-side-encryption aws:kms --ssekms-key-id "$KE2" --metadata "$cmeta" >/dev/null
kp $P verify tde --json
[ "$rc" -ne 0 ] || fail "verify is clean with the .cer under another key"
expect_in "$T/out" ".cer: "
aws_cli $E s3api put-object --bucket tde-east --key keyplane/tde.cer/v1 --body "$T/cer.obj" \
    --server-side-encryption aws:kms --ssekms-key-id "$KE" --metadata "$cmeta" >/dev/null
expect_rc 0 $P verify tde

# ---- the replica region holds another value under keyplane's version id ----------------------
$ACTL stop --dir "$AWSD" --name west >/dev/null
$PY - "$AWSD/west.state/secretsmanager/secrets" <<'PYEOF'
import glob, json, os, sys
for f in glob.glob(os.path.join(sys.argv[1], "*.json")):
    d = json.load(open(f))
    if not d["name"].startswith("keyplane/tde.password/"):
        continue
    for v in d["versions"].values():
        for k in ("string", "binary"):
            if v.get(k) is not None:
                v[k] = "V1JPTkc=" if k == "binary" else "WRONG"
    json.dump(d, open(f, "w"))
PYEOF
aws_start west us-west-2 --link --port-reuse
kp $P verify tde --json
[ "$rc" -ne 0 ] || fail "verify is clean with another value in the replica region"
expect_in "$T/out" "holds another value"
# the primary's value is pushed again when the secret changes; here, put the right one back
$ACTL stop --dir "$AWSD" --name west --kill >/dev/null
rm -rf "$AWSD/west.state/secretsmanager"
aws_start west us-west-2 --link --port-reuse
for s in $(aws_cli $E secretsmanager list-secrets --query 'SecretList[].Name' --output text); do
    aws_cli $E secretsmanager remove-regions-from-replication --secret-id "$s" \
        --remove-replica-regions us-west-2 >/dev/null
    aws_cli $E secretsmanager replicate-secret-to-regions --secret-id "$s" \
        --add-replica-regions "Region=us-west-2,KmsKeyId=$KW" >/dev/null
done
n=0
while :; do
    kp $P verify tde
    [ "$rc" -eq 0 ] && break
    n=$((n + 1))
    [ $n -lt 30 ] || { cat "$T/out" >&2; fail "the replica never came back in sync"; }
    sleep 0.5
done

# ---- a planted password is never taken for a copy's ----------------------------------------
fpr=$(aws_cli $E s3api head-object --bucket tde-east --key keyplane/tde.key/v1 \
    --query 'Metadata.fingerprint' --output text)
# planted with the aws CLI as keyplane writes a version (keyplane's own `secret put` refuses the
# name): the next number, keyplane's Description shape and token, the copy's metadata, value "a"
planted=$(aws_cli $E secretsmanager list-secrets --query 'SecretList[].Name' --output text |
    tr '\t' '\n' | sed -n 's|^keyplane/tde.password/v||p' | sort -n | tail -1)
planted=$((planted + 1))
tok=$(openssl rand -hex 16)
desc=$($PY -c 'import json, sys; print(json.dumps({"keyplane": 1, "size": 1, "token": sys.argv[2], "meta": {"chain": "tde", "kp-version": "1", "fingerprint": sys.argv[1], "replica": "s3-east"}}, sort_keys=True, separators=(",", ":")))' "$fpr" "$tok")
aws_cli $E secretsmanager create-secret --name "keyplane/tde.password/v$planted" \
    --client-request-token "$tok" --description "$desc" --secret-string a --kms-key-id "$KE" \
    --add-replica-regions "Region=us-west-2,KmsKeyId=$KW" >/dev/null
for o in tde.key tde.pvk; do
    aws_cli $E s3api delete-object --bucket tde-east --key "keyplane/$o/v1" >/dev/null
done
expect_rc 0 $P apply tde
for o in tde.key tde.pvk; do
    aws_cli $E s3api head-object --bucket tde-east --key "keyplane/$o/v1" \
        --query 'Metadata."password-version"' --output text >"$T/pv"
    [ "$(cat "$T/pv")" != "$planted" ] || fail "the $o copy took the planted password"
done
expect_rc 0 $P verify tde

# ---- a secret scheduled for deletion does not hold its name against the next put -------------
printf 'one' >"$T/one"
expect_rc 0 $P secret put --instance passwords --name gone --value "file:$T/one"
aws_cli $E secretsmanager remove-regions-from-replication --secret-id keyplane/gone/v1 \
    --remove-replica-regions us-west-2 >/dev/null
aws_cli $E secretsmanager delete-secret --secret-id keyplane/gone/v1 >/dev/null
expect_rc 0 $P secret put --instance passwords --name gone --value "file:$T/one"

# ---- a password changed outside keyplane ----------------------------------------------------
aws_cli $E secretsmanager put-secret-value --secret-id keyplane/tde.password/v1 \
    --secret-string "not the password" >/dev/null
kp $P verify tde --json
[ "$rc" -ne 0 ] || fail "verify is clean with AWSCURRENT moved"
expect_in "$T/out" "keyplane did not write"
expect_rc 0 $P secret get --instance passwords --name tde.password --version 1 --out "$T/pw"
[ "$(cat "$T/pw")" != "not the password" ] || fail "the read took the changed value"

# ---- us-east-1 down: the password is read in us-west-2 -------------------------------------
$ACTL stop --dir "$AWSD" --name east --kill >/dev/null
expect_rc 0 $P secret get --instance passwords --name tde.password --version 1 --out "$T/pw2"
cmp "$T/pw" "$T/pw2" || fail "us-west-2 gave another password"
aws_no_bad_signatures
echo "ok: gaps named, cleared when repaired"
