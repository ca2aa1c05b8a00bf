#!/bin/sh
# cli.backup: keyplane backup against emulated AWS (KMS and S3), a Key Vault and two SoftHSM
# tokens (docs/backup.md):
# - encrypt --to s3:// writes the metadata RDS reads (x-amz-key) and the SDKs read
#   (x-amz-key-v2, x-amz-wrap-alg kms), the IV, {"kms_cmk_id": KEY} and AES/CBC/PKCS5Padding,
#   the plaintext's length, the chain's envelope with --chain, and the integrity record beside
#   it; prints the rds_restore_database call (quotes doubled, an alias as a placeholder);
#   --json; sizes 0, 1, 16 and some MiB round-trip;
# - decrypt through KMS, and --via-chain with KMS unreachable (S3 still there): through the
#   Key Vault, through the HSM escrow, failing over to the escrow when the vault is down; a
#   local backup with AWS stopped altogether;
# - corruption, each one line, exit 7, no output file and nothing left beside it: a flipped
#   byte (the GMAC), a cut object (padding or length), a flipped data key, another context,
#   another key, an object that is no envelope, a record of another encryption;
# - an existing target is refused (5) before KMS is asked, --force replaces it; usage errors (2);
#   an instance without data keys (3); no request refused for its signature.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
. "$(dirname "$0")/azure.sh"
. "$(dirname "$0")/aws.sh"
trap '$VCTL stop-all --dir "$V" --kill >/dev/null 2>&1 || true
      $ACTL stop-all --dir "$AWSD" --kill >/dev/null 2>&1 || true; rm -rf "$T"' EXIT

akv_start vault1
aws_start east us-east-1
softhsm_token origin 4321
softhsm_token escrow 1234
printf 4321 >"$T/origin.pin"
printf 1234 >"$T/escrow.pin"
K=$(aws_kms_key east us-east-1)
K2=$(aws_kms_key east us-east-1)
aws_bucket east us-east-1 backups
{
    cat <<EOF
version: 1
providers:
  hsm: {plugin: pkcs11, module: $SOFTHSM_MODULE, token: origin, pin: "file:$T/origin.pin"}
  escrow: {plugin: pkcs11, module: $SOFTHSM_MODULE, token: escrow, pin: "file:$T/escrow.pin"}
EOF
    akv_instance vault1 "$KV_VAULT1_URL" "verify_challenge_resource: false" "hsm: true"
    aws_kms_instance kms-east east us-east-1 "s3_endpoint: $AWS_EAST_URL"
    # KMS out of reach (nothing listens on port 1), S3 still there
    aws_kms_instance kms-dead east us-east-1 "s3_endpoint: $AWS_EAST_URL" "max_attempts: 1" \
        "deadline_ms: 2000" | sed "s|^    endpoint: .*|    endpoint: https://127.0.0.1:1|"
    aws_s3_instance s3-east east us-east-1 backups "$K"
    cat <<EOF
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}
    replicas: [vault1]
    escrow: [escrow]
    algorithm: RSA-OAEP
EOF
} >"$T/policy.yaml"
grep -q "^    endpoint: https://127.0.0.1:1$" "$T/policy.yaml" || fail "no unreachable KMS instance"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply
E="--endpoint-url $AWS_EAST_URL --region us-east-1"

. "$(dirname "$0")/backup.sh"

head -c 3145729 /dev/urandom >"$T/db.bak"

# ---- encrypt to S3: the metadata RDS and the SDKs read ---------------------------------------
expect_rc 0 $P backup encrypt "$T/db.bak" --kms-key "$K" --instance kms-east \
    --to s3://backups/prod/db.bak --chain tde
expect_in "$T/out" "exec msdb.dbo.rds_restore_database"
expect_in "$T/out" "@restore_db_name='db'"
expect_in "$T/out" "@s3_arn_to_restore_from='arn:aws:s3:::backups/prod/db.bak'"
expect_in "$T/out" "@kms_master_key_arn='$K'"
# a quote in a name is doubled in the T-SQL; an alias, or an alias ARN, is a placeholder
aws_cli $E kms create-alias --alias-name alias/backups --target-key-id "$K" || fail "alias"
cp "$T/db.bak" "$T/o'brien.bak"
expect_rc 0 $P backup encrypt "$T/o'brien.bak" --kms-key alias/backups --instance kms-east \
    --to "s3://backups/q/o'brien.bak"
expect_in "$T/out" "@restore_db_name='o''brien'"
expect_in "$T/out" "@s3_arn_to_restore_from='arn:aws:s3:::backups/q/o''brien.bak'"
expect_in "$T/out" "@kms_master_key_arn='<the ARN of alias/backups>'"
expect_in "$T/out" "aws kms describe-key --key-id alias/backups"
expect_rc 0 $P backup encrypt "$T/db.bak" --kms-key "${K%%:key/*}:alias/backups" \
    --instance kms-east --to s3://backups/q/alias-arn.bak
expect_in "$T/out" "@kms_master_key_arn='<the ARN of ${K%%:key/*}:alias/backups>'"
s3py '
h = s3.head_object(Bucket="backups", Key="prod/db.bak")
m = h["Metadata"]
assert m["x-amz-key"] == m["x-amz-key-v2"], m
assert len(base64.b64decode(m["x-amz-key-v2"])) > 32, m
assert len(base64.b64decode(m["x-amz-iv"])) == 16, m
assert json.loads(m["x-amz-matdesc"]) == {"kms_cmk_id": args[0]}, m
assert m["x-amz-wrap-alg"] == "kms" and m["x-amz-cek-alg"] == "AES/CBC/PKCS5Padding", m
assert m["x-amz-unencrypted-content-length"] == "3145729", m
assert h["ContentLength"] == 3145729 - 3145729 % 16 + 16, h["ContentLength"]
env = json.loads(m["keyplane-envelope"])
assert env["chain"] == "tde" and env["wraps"][0]["alg"] == "RSA-OAEP", env
rec = json.loads(s3.get_object(Bucket="backups", Key="prod/db.bak.keyplane.json")["Body"].read())
assert rec["format"] == "s3-cse", rec
assert {k: v for k, v in rec["metadata"].items() if k != "keyplane-mac"} == m, rec
assert len(base64.b64decode(rec["metadata"]["keyplane-mac"])) == 16, rec
' "$K" || fail "the object's metadata is not what RDS and the SDKs read"

# --chain with --replica: the escrow wraps (as while the origin is down); the vault opens it
expect_rc 0 $P backup encrypt "$T/db.bak" --kms-key "$K" --instance kms-east \
    --to s3://backups/replica.bak --chain tde --replica escrow
expect_rc 0 $P backup decrypt s3://backups/replica.bak --out "$T/replica.back" \
    --instance kms-dead --via-chain --replica vault1
cmp "$T/db.bak" "$T/replica.back" || fail "encrypt --replica escrow, decrypt through the vault"

# ---- decrypt through KMS; sizes ----------------------------------------------------------------
expect_rc 0 $P backup decrypt s3://backups/prod/db.bak --out "$T/back.bak" --instance kms-east \
    --json
cmp "$T/db.bak" "$T/back.bak" || fail "decrypt gave other bytes"
"$PY" - "$T/out" <<'EOF' || fail "decrypt --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["operation"] == "decrypt" and d["via"] == "kms" and d["integrity"] == "gmac", d
assert d["bytes_out"] == 3145729 and d["cek_alg"] == "AES/CBC/PKCS5Padding", d
# seconds, to the millisecond, printed as such (not 0.0050000000000000001)
sec = open(sys.argv[1]).read().split('"seconds":')[1].split(",")[0]
assert d["seconds"] >= 0 and len(sec.split(".")[-1]) <= 3, sec
EOF
for n in 0 1 16; do
    head -c $n /dev/urandom >"$T/s$n"
    expect_rc 0 $P backup encrypt "$T/s$n" --kms-key "$K" --instance kms-east \
        --to "s3://backups/s$n" --json
    "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["bytes_out"] == int(sys.argv[2]) // 16 * 16 + 16, d' \
        "$T/out" $n || fail "encrypt --json of $n bytes"
    expect_rc 0 $P backup decrypt "s3://backups/s$n" --out "$T/s$n.back" --instance kms-east
    cmp "$T/s$n" "$T/s$n.back" || fail "$n bytes do not round-trip"
done

# ---- --via-chain: KMS out of reach -------------------------------------------------------------
refused 6 "--via-chain opens it without KMS" $P backup decrypt s3://backups/prod/db.bak \
    --out "$T/o/x" --instance kms-dead
! grep -q "kms-dead: kms-dead:" "$T/err" || fail "the instance named twice: $(cat "$T/err")"
expect_rc 0 $P backup decrypt s3://backups/prod/db.bak --out "$T/v.bak" --instance kms-dead \
    --via-chain --replica vault1 --json
cmp "$T/db.bak" "$T/v.bak" || fail "--via-chain through the vault"
expect_in "$T/out" '"via":"chain"'
expect_in "$T/out" '"opened_by":"vault1"'
rm "$T/v.bak"
expect_rc 0 $P backup decrypt s3://backups/prod/db.bak --out "$T/v.bak" --instance kms-dead \
    --via-chain --replica escrow
cmp "$T/db.bak" "$T/v.bak" || fail "--via-chain through the escrow"
expect_in "$T/err" "through escrow"
rm "$T/v.bak"
refused 5 "no keyplane-envelope" $P backup decrypt s3://backups/s1 --out "$T/o/x" \
    --instance kms-dead --via-chain
refused 7 "of chain tde, not other" $P backup decrypt s3://backups/prod/db.bak --out "$T/o/x" \
    --instance kms-dead --via-chain --chain other

# ---- corruption ------------------------------------------------------------------------------
# copy SRC DST [flip OFFSET] [cut N] [meta NAME=VALUE]... [norecord]: DST is SRC changed so
s3py '
src, dst = args[0], args[1]
o = s3.get_object(Bucket="backups", Key=src)
body, meta = bytearray(o["Body"].read()), o["Metadata"]
rest, record = args[2:], True
while rest:
    what = rest.pop(0)
    if what == "flip":
        body[int(rest.pop(0))] ^= 0x80
    elif what == "cut":
        body = body[: len(body) - int(rest.pop(0))]
    elif what == "meta":
        k, v = rest.pop(0).split("=", 1)
        meta[k] = v
    elif what == "norecord":
        record = False
s3.put_object(Bucket="backups", Key=dst, Body=bytes(body), Metadata=meta)
if record:
    r = s3.get_object(Bucket="backups", Key=src + ".keyplane.json")["Body"].read()
    s3.put_object(Bucket="backups", Key=dst + ".keyplane.json", Body=r)
' prod/db.bak flipped flip 1000000 || fail "cannot make the flipped copy"
D="$P backup decrypt --instance kms-east"
refused 7 "GMAC" $D s3://backups/flipped --out "$T/o/x"
# cut by 16 (whole blocks: padding or length), by 5 (no whole block), without the record
for cut in 16 5; do
    s3py '
o = s3.get_object(Bucket="backups", Key="prod/db.bak")
s3.put_object(Bucket="backups", Key="cut", Body=o["Body"].read()[: -int(args[0])],
              Metadata=o["Metadata"])
' $cut || fail "cannot cut"
    expect_rc 7 $D s3://backups/cut --out "$T/o/x"
    one_line 7
done
# the last padding byte flipped (through the block before it): refused even without a record
s3py '
o = s3.get_object(Bucket="backups", Key="prod/db.bak")
b = bytearray(o["Body"].read())
b[len(b) - 17] ^= 0x80
s3.put_object(Bucket="backups", Key="badpad", Body=bytes(b), Metadata=o["Metadata"])
' || fail "cannot make badpad"
refused 7 "padding" $D s3://backups/badpad --out "$T/o/x"
# a flipped data key, another context, another key: KMS refuses
s3py '
o = s3.get_object(Bucket="backups", Key="prod/db.bak")
m, body = o["Metadata"], o["Body"].read()
k = bytearray(base64.b64decode(m["x-amz-key-v2"]))
k[len(k) // 2] ^= 1
bad = dict(m)
bad["x-amz-key-v2"] = bad["x-amz-key"] = base64.b64encode(bytes(k)).decode()
s3.put_object(Bucket="backups", Key="badkey", Body=body, Metadata=bad)
ctx = dict(m)
ctx["x-amz-matdesc"] = json.dumps({"kms_cmk_id": args[0]})
s3.put_object(Bucket="backups", Key="badctx", Body=body, Metadata=ctx)
s3.put_object(Bucket="backups", Key="plain", Body=body)
' "$K2" || fail "cannot make the KMS cases"
refused 7 "does not decrypt" $D s3://backups/badkey --out "$T/o/x"
refused 7 "does not decrypt" $D s3://backups/badctx --out "$T/o/x"
refused 7 "does not decrypt" $D s3://backups/prod/db.bak --kms-key "$K2" --out "$T/o/x"
refused 7 "no x-amz-iv" $D s3://backups/plain --out "$T/o/x"
# a record of another backup beside this one
s3py '
r = s3.get_object(Bucket="backups", Key="s1.keyplane.json")["Body"].read()
o = s3.get_object(Bucket="backups", Key="prod/db.bak")
s3.put_object(Bucket="backups", Key="mixed", Body=o["Body"].read(), Metadata=o["Metadata"])
s3.put_object(Bucket="backups", Key="mixed.keyplane.json", Body=r)
' || fail "cannot make mixed"
refused 7 "another encryption" $D s3://backups/mixed --out "$T/o/x"
# a copy that lost the object's metadata: the record's envelope stands in, the GMAC still checks
s3py '
o = s3.get_object(Bucket="backups", Key="prod/db.bak")
s3.put_object(Bucket="backups", Key="bare", Body=o["Body"].read())
r = s3.get_object(Bucket="backups", Key="prod/db.bak.keyplane.json")["Body"].read()
s3.put_object(Bucket="backups", Key="bare.keyplane.json", Body=r)
' || fail "cannot make bare"
expect_rc 0 $D s3://backups/bare --out "$T/bare.bak" --json
cmp "$T/db.bak" "$T/bare.bak" || fail "a stripped copy through its record"
expect_in "$T/out" '"integrity":"gmac"'
expect_in "$T/err" "no envelope metadata"
expect_rc 0 $D s3://backups/bare --out "$T/bare.bak" --force --require-integrity
# its record removed: checked by length and padding only, and said; --require-integrity refuses
# it before KMS is asked
s3py '
o = s3.get_object(Bucket="backups", Key="prod/db.bak")
s3.put_object(Bucket="backups", Key="norecord", Body=o["Body"].read(), Metadata=o["Metadata"])
' || fail "cannot make norecord"
expect_rc 0 $D s3://backups/norecord --out "$T/norecord.bak" --json
cmp "$T/db.bak" "$T/norecord.bak" || fail "a backup without its record"
expect_in "$T/out" '"integrity":"padding-only"'
expect_rc 0 $D s3://backups/norecord --out "$T/norecord.bak" --force
expect_in "$T/err" "checked by its length and padding only"
refused 7 "no keyplane integrity record (GMAC)" $P backup decrypt --instance kms-dead \
    s3://backups/norecord --out "$T/o/x" --require-integrity
refused 5 "no such object" $D s3://backups/none --out "$T/o/x"
# a mistyped bucket is said as such (a HEAD's 404 does not), before KMS is asked for a key
refused 3 "bucket nobucket does not exist" $D s3://nobucket/x --out "$T/o/x"
refused 3 "bucket nobucket does not exist" $P backup encrypt "$T/db.bak" --kms-key "$K" \
    --instance kms-dead --to s3://nobucket/x

# ---- existing targets, usage, capabilities -------------------------------------------------
refused 5 "exists" $P backup encrypt "$T/db.bak" --kms-key "$K" --instance kms-dead \
    --to s3://backups/prod/db.bak
echo keep >"$T/o/x"
expect_rc 5 $D s3://backups/s1 --out "$T/o/x"
[ "$(cat "$T/o/x")" = keep ] || fail "an existing --out was touched"
expect_rc 0 $D s3://backups/s1 --out "$T/o/x" --force
cmp "$T/s1" "$T/o/x" || fail "--force did not replace"
# a directory as --out is named as such, --force or not, before anything is read
expect_rc 2 $D s3://backups/s1 --out "$T/o" --force
expect_in "$T/err" "is a directory: --out names the file"
U="$P backup"
refused 2 "--out FILE is required" $U decrypt s3://backups/s1 --instance kms-east
refused 2 "one)" $U encrypt "$T/db.bak" --kms-key "$K" --instance kms-east
refused 2 "one)" $U encrypt "$T/db.bak" --kms-key "$K" --instance kms-east --out "$T/o/a" \
    --to s3://backups/a
refused 2 "s3://BUCKET/KEY" $U encrypt "$T/db.bak" --kms-key "$K" --instance kms-east \
    --to backups/a
refused 2 "--via-chain" $U decrypt s3://backups/s1 --out "$T/o/x" --instance kms-east \
    --chain tde
refused 2 "--replica goes with --chain" $U encrypt "$T/db.bak" --kms-key "$K" --instance kms-east \
    --to s3://backups/r --replica escrow
refused 2 "exclude" $U decrypt s3://backups/s1 --out "$T/o/x" --via-chain --kms-key "$K" \
    --instance kms-east
refused 2 "bad option" $U decrypt s3://backups/s1 --out "$T/o/x" --db x --instance kms-east
refused 3 "makes no data keys" $U encrypt "$T/db.bak" --kms-key "$K" --instance s3-east \
    --to s3://backups/a
refused 5 "no provider instance" $U encrypt "$T/db.bak" --kms-key "$K" --instance nope \
    --to s3://backups/a
refused 2 "not a regular file" $U encrypt "$T" --kms-key "$K" --instance kms-east \
    --to s3://backups/a
refused 2 "--db goes with --to" $U encrypt "$T/db.bak" --kms-key "$K" --instance kms-east \
    --out "$T/o/a" --db x
refused 2 "FILE cannot be '-'" $U encrypt - --kms-key "$K" --instance kms-east --out "$T/o/a"
# a mistyped local backup is said as such, not as its missing .json; a missing .json says how
# to make one
refused 5 "cannot open $T/nosuch.enc: No such file" $U decrypt "$T/nosuch.enc" --out "$T/o/x" \
    --instance kms-east
cp "$T/db.bak" "$T/nojson.enc"
refused 5 "nojson.enc.json: no such file: a local backup opens with its metadata" $U decrypt \
    "$T/nojson.enc" --out "$T/o/x" --instance kms-east

aws_no_bad_signatures

# ---- a local backup, opened through the chain with AWS gone ----------------------------------
mkdir "$T/l"
expect_rc 0 $P backup encrypt "$T/db.bak" --kms-key "$K" --instance kms-east --out "$T/l/db.enc" \
    --chain tde --json
expect_in "$T/out" '"metadata_file"'
"$PY" - "$T/l/db.enc.json" <<'EOF' || fail "the sidecar"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "s3-cse", d
m = d["metadata"]
assert m["x-amz-wrap-alg"] == "kms" and "keyplane-envelope" in m and "keyplane-mac" in m, m
EOF
refused 5 "exists" $P backup encrypt "$T/db.bak" --kms-key "$K" --instance kms-east \
    --out "$T/l/db.enc"
$ACTL stop --dir "$AWSD" --name east >/dev/null
expect_rc 0 $P backup decrypt "$T/l/db.enc" --out "$T/l/back" --via-chain
cmp "$T/db.bak" "$T/l/back" || fail "a local backup through the chain"
$VCTL stop --dir "$V" --name vault1 >/dev/null
rm "$T/l/back"
expect_rc 0 $P backup decrypt "$T/l/db.enc" --out "$T/l/back" --via-chain
cmp "$T/db.bak" "$T/l/back" || fail "failover to the escrow"
expect_in "$T/err" "through escrow"
cp "$T/l/db.enc" "$T/l/flip.enc"
cp "$T/l/db.enc.json" "$T/l/flip.enc.json"
"$PY" -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[5] ^= 1; open(p, "wb").write(b)' \
    "$T/l/flip.enc"
refused 7 "GMAC" $P -q backup decrypt "$T/l/flip.enc" --out "$T/o/x" --via-chain
echo "cli.backup: ok"
