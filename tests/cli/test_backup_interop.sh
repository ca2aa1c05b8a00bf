#!/bin/sh
# cli.backup_interop (issue 18): keyplane backup encrypt|decrypt against S3 client-side
# encryption it did not write itself, through the emulated KMS and S3 of one region:
# - keyplane's objects (3 MiB + 5 and 17 MiB + 7 bytes of random data, sizes at its 2 MiB buffers
#   (2 MiB - 16, 2 MiB - 8, 2 MiB), and 0, 1, 15, 16, 17
#   bytes) carry the metadata of the spec (x-amz-key = x-amz-key-v2, a 16-byte IV of its own,
#   matdesc {"kms_cmk_id": ID}, kms, AES/CBC/PKCS5Padding, the plaintext size) and
#   tests/interop/s3cse_ref.py, an independent implementation (the AWS Database Blog's
#   algorithm, boto3 and python3-cryptography), decrypts them to the same bytes;
# - s3cse_ref.py's objects of every size, in the RDS shape (x-amz-key, no x-amz-wrap-alg, the
#   blog's json.dumps matdesc), the SDK shape with CBC and with GCM, and both with the
#   kms+context wrap (also with the SDKs' own context, without kms_cmk_id), decrypt with
#   keyplane to the same bytes;
# - every vector of tests/fixtures/s3-cse/vectors.json with a data key (the AWS SDKs' KMS
#   objects, their key wrapped by the emulator's KMS: s3cse_ref.py put-vector) decrypts with
#   keyplane to the vector's plaintext;
# - an object of s3cse_ref.py with another matdesc, a spoiled GCM tag or one byte less is
#   refused (exit 7, one line, no file);
# - no request refused for its signature.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
aws_start east us-east-1
K=$(aws_kms_key east us-east-1)
aws_bucket east us-east-1 backups
{
    echo "version: 1"
    echo "providers:"
    aws_kms_instance kms east us-east-1 "s3_endpoint: $AWS_EAST_URL"
    echo "chains: {}"
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
E="--endpoint-url $AWS_EAST_URL --region us-east-1"
REF="$PY $KP_SRC/tests/interop/s3cse_ref.py $E --ca-bundle $AWS_CA"
VEC=$KP_SRC/tests/fixtures/s3-cse/vectors.json
mkdir "$T/in" "$T/got"

for n in 0 1 15 16 17; do
    head -c $n /dev/urandom >"$T/in/s$n.bak"
done
head -c $((3 * 1024 * 1024 + 5)) /dev/urandom >"$T/in/mid.bak"
head -c $((17 * 1024 * 1024 + 7)) /dev/urandom >"$T/in/big.bak"
# at keyplane's 2 MiB buffers: a GCM tag across two of them (2 MiB - 8), the CBC padding block
# alone in the last (2 MiB), a ciphertext of exactly one buffer (2 MiB - 16)
head -c $((2 * 1024 * 1024 - 8)) /dev/urandom >"$T/in/e8.bak"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$T/in/e0.bak"
head -c $((2 * 1024 * 1024 - 16)) /dev/urandom >"$T/in/e16.bak"
FILES="s0 s1 s15 s16 s17 mid big e8 e0 e16"

# same WHAT WANT GOT: GOT exists and holds WANT's bytes
same() {
    [ -f "$3" ] || fail "$1: no output file"
    cmp -s "$2" "$3" || fail "$1: other bytes than $(basename "$2")"
}

# --- keyplane writes, the reference reads -------------------------------------------------------
# kp_meta FILE: the metadata of keyplane's object kp/FILE.bak is the spec's; prints its IV
kp_meta() {
    aws_cli $E s3api head-object --bucket backups --key "kp/$1.bak" >"$T/head.json" ||
        fail "head-object of kp/$1.bak"
    size=$(stat -c %s "$T/in/$1.bak")
    $PY - "$T/head.json" "$K" "$size" <<'PYEOF' || { cat "$T/head.json" >&2; fail "kp/$1.bak"; }
import base64, json, sys
h = json.load(open(sys.argv[1]))
m, size = h["Metadata"], int(sys.argv[3])
assert m["x-amz-key"] == m["x-amz-key-v2"], m
assert len(base64.b64decode(m["x-amz-iv"], validate=True)) == 16, m
assert json.loads(m["x-amz-matdesc"]) == {"kms_cmk_id": sys.argv[2]}, m
assert (m["x-amz-wrap-alg"], m["x-amz-cek-alg"]) == ("kms", "AES/CBC/PKCS5Padding"), m
assert m["x-amz-unencrypted-content-length"] == str(size), m
assert "keyplane-envelope" not in m, m           # only with --chain
assert h["ContentLength"] == size // 16 * 16 + 16, h
print(m["x-amz-iv"])
PYEOF
}
: >"$T/ivs"
for f in $FILES; do
    expect_rc 0 $P backup encrypt "$T/in/$f.bak" --kms-key "$K" --instance kms \
        --to "s3://backups/kp/$f.bak"
    kp_meta "$f" >>"$T/ivs"
    $REF decrypt "s3://backups/kp/$f.bak" "$T/got/kp-$f" ||
        fail "s3cse_ref.py cannot decrypt keyplane's kp/$f.bak"
    same "s3cse_ref.py's decryption of kp/$f.bak" "$T/in/$f.bak" "$T/got/kp-$f"
done
[ "$(sort -u "$T/ivs" | wc -l)" = 10 ] || fail "keyplane used an IV twice: $(sort "$T/ivs")"

# --- the reference writes, keyplane reads -------------------------------------------------------
# VARIANT: the name of the object's shape, then s3cse_ref.py encrypt's options
VARIANTS="rds:--shape=rds sdk:--shape=sdk gcm:--shape=sdk-gcm
sdkctx:--shape=sdk:--wrap=kms+context gcmctx:--shape=sdk-gcm:--wrap=kms+context
gcmsdk:--shape=sdk-gcm:--wrap=kms+context:--matdesc={}"
for f in $FILES; do
    for v in $VARIANTS; do
        name=${v%%:*}
        opts=$(echo "${v#*:}" | tr ':' ' ')
        $REF encrypt "$T/in/$f.bak" "s3://backups/ref/$f.$name" --kms-key "$K" $opts \
            >/dev/null || fail "s3cse_ref.py encrypt $f $name"
        expect_rc 0 $P backup decrypt "s3://backups/ref/$f.$name" --out "$T/got/ref-$f.$name" \
            --instance kms
        same "keyplane's decryption of ref/$f.$name" "$T/in/$f.bak" "$T/got/ref-$f.$name"
    done
done

# --- the AWS SDKs' objects ----------------------------------------------------------------------
VECTORS=$($REF list-vectors --vectors "$VEC") || fail "s3cse_ref.py list-vectors"
[ "$(echo "$VECTORS" | wc -w)" = 5 ] || fail "vectors with a data key: $VECTORS, want 5"
for n in $VECTORS; do
    $REF put-vector "$n" "s3://backups/vec/$n" --vectors "$VEC" --kms-key "$K" \
        --expect-out "$T/in/vec-$n" || fail "s3cse_ref.py put-vector $n"
    expect_rc 0 $P backup decrypt "s3://backups/vec/$n" --out "$T/got/vec-$n" --instance kms
    same "keyplane's decryption of vector $n" "$T/in/vec-$n" "$T/got/vec-$n"
done

# --- what must fail -----------------------------------------------------------------------------
# spoil SRC DST HOW: object ref/SRC copied to bad/DST, spoiled: "matdesc" (another context),
# "tag" (the last byte flipped), "short" (one byte less)
spoil() {
    $PY - "$AWS_EAST_URL" "$AWS_CA" "$@" <<'PYEOF' || fail "spoil $*"
import json, sys
import boto3
url, ca, src, dst, how = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=url, verify=ca, region_name="us-east-1")
o = s3.get_object(Bucket="backups", Key="ref/" + src)
body, meta = o["Body"].read(), o["Metadata"]
if how == "matdesc":
    meta["x-amz-matdesc"] = json.dumps(dict(json.loads(meta["x-amz-matdesc"]), kms_cmk_id="other"))
elif how == "tag":
    body = body[:-1] + bytes([body[-1] ^ 1])
else:
    body = body[:-1]
s3.put_object(Bucket="backups", Key="bad/" + dst, Body=body, Metadata=meta)
PYEOF
}
spoil s17.sdk ctx matdesc
spoil s17.gcm tag tag
spoil s17.rds short short
mkdir "$T/bad"
for b in ctx tag short; do
    expect_rc 7 $P backup decrypt "s3://backups/bad/$b" --out "$T/bad/$b" --instance kms
    [ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err" >&2; fail "bad/$b: not one line of error"; }
    [ -z "$(ls -A "$T/bad")" ] || fail "bad/$b left a file: $(ls -A "$T/bad")"
done

aws_no_bad_signatures
echo "ok: keyplane and s3cse_ref.py read each other's objects, and the SDKs' vectors"
