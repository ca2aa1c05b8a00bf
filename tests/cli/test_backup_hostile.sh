#!/bin/sh
# cli.backup_hostile: keyplane backup against hostile objects and inputs (the adversary pass on
# issue 18), each case one that an earlier build got wrong:
# - --via-chain --chain naming another chain: refused, naming the envelope's chain (the name was
#   read from the freed envelope: ASan's heap-use-after-free);
# - x-amz-unencrypted-content-length past 2^63 - 1 (2^63, 2^64 - 1, 23 digits): refused (exit 7,
#   no output), where it passed as "no length given";
# - a FILE that grows while encrypt reads it (a .bak still being written): refused, exit 6, no
#   object and no multipart upload left (the old build encrypted the first size it saw and said
#   ok: a backup that fails at the restore);
# - SIGTERM (or SIGINT, SIGHUP) while encrypt uploads: the multipart upload is aborted, exit 143
#   (the old build died at once, its parts left billed; docs/backup.md says an interrupted upload
#   is aborted);
# - a record left at KEY.keyplane.json (a deleted backup's): encrypt refuses before KMS is asked
#   (exit 5, no object); the old build uploaded the whole object, then failed on the record and
#   left a backup that decrypt refuses for its "record of another encryption";
# - through s3_fault_proxy.py, a store that answers a ranged GET with other bytes than asked
#   (an honest Content-Range 16 bytes on): refused, exit 8 (the old build decrypted an RDS-style
#   object without a record to other bytes and said ok); a legal short 206 for every range: the
#   record and the object read whole, ok; a commit whose answer is lost after S3 carried it out
#   (CompleteMultipartUpload, and the record's PutObject): ok, the object and its record there
#   (the old build said exit 6, and a run again found the object "exists");
# - CompleteMultipartUpload answered 500 InternalError: repeated (S3 asks for it), ok when the
#   next one is carried out; failing each time, exit 6 and the upload aborted (the old build
#   took the answered 500 for a lost answer: no repeat, and the parts left billed);
# - a FILE or an S3 key with a quote: the printed rds_restore_database call doubles it (the old
#   one let a file named "x';exec xp_cmdshell ...--.bak" add statements to the call an operator
#   pastes);
# - a reader without s3:ListBucket (S3 answers 403 for the missing record of an RDS export):
#   decrypt goes on without the record and says so (the old build failed, exit 4: a DR restore
#   with s3:GetObject alone could not open an export); a record that is there is still used;
# - the IV changed in both the object's metadata and its record (or a local sidecar): refused,
#   exit 7 (the GMAC was of the ciphertext alone, and CBC's first block is the IV XOR a
#   decryption: the old build gave a backup whose first 16 bytes the attacker chose, "gmac");
# - an object (another tool's) whose key is too long for KEY.keyplane.json to be named: opened
#   without a record (the old build failed, exit 2, on the record's name);
# - an object that lost its metadata (a copy that replaced it) beside its record: opened with the
#   record's copy of the envelope, its GMAC verified (a flipped byte: exit 7); the old build
#   refused it, exit 7, "a record of another encryption", though the record was kept for this;
# - an object whose other metadata S3 takes but kp_meta does not (a tab in a value, '+' in a name):
#   those pairs are skipped and the backup opens (the old build: exit 3, "broke the ABI"); one
#   with 40 more pairs that sort before x-amz-*: opens (the old build kept 32 pairs and lost
#   the envelope);
# - decrypt --force: a file at OUT.kp-PID (another run's in flight, from another PID namespace, or
#   anyone's) is left alone (the old build unlinked it to take the name);
# - a FIFO as encrypt's FILE, decrypt's PATH or PATH.json: refused, exit 2 (the old build waited
#   for ever in open());
# - control bytes in a refused metadata value (a sidecar's x-amz-cek-alg with ESC sequences) never
#   reach the terminal: the error line names the field, never its value.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/aws.sh"

aws_start east us-east-1
K=$(aws_kms_key east us-east-1)
aws_bucket east us-east-1 backups
{
    file_providers fa fb
    aws_kms_instance kms-east east us-east-1 "s3_endpoint: $AWS_EAST_URL"
    cat <<EOF
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: fa, exportable: true}
    replicas: [fa, fb]
    algorithm: RSA-OAEP
EOF
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply
E="--endpoint-url $AWS_EAST_URL --region us-east-1"
D="$P backup decrypt --instance kms-east"

# the first line says why; info lines may follow (the hostile cases print notes)
BK_ONE_LINE=0
. "$(dirname "$0")/backup.sh"
# no_uploads: no multipart upload left in the bucket
no_uploads() {
    n=$(aws_cli $E s3api list-multipart-uploads --bucket backups --query 'length(Uploads || `[]`)')
    [ "$n" = 0 ] || fail "$n multipart upload(s) left"
}

head -c 100000 /dev/urandom >"$T/db.bak"
expect_rc 0 $P backup encrypt "$T/db.bak" --kms-key "$K" --instance kms-east \
    --to s3://backups/db.bak --chain tde

# ---- --via-chain --chain of another chain -----------------------------------------------------
refused 7 "its envelope is of chain tde, not other" $D s3://backups/db.bak --out "$T/o/x" \
    --via-chain --chain other

# ---- lengths that no file has -----------------------------------------------------------------
# copy NAME LENGTH: the backup again (its record too) with x-amz-unencrypted-content-length LENGTH
copy() {
    s3py '
o = s3.get_object(Bucket="backups", Key="db.bak")
m = o["Metadata"]
m["x-amz-unencrypted-content-length"] = args[1]
s3.put_object(Bucket="backups", Key=args[0], Body=o["Body"].read(), Metadata=m)
r = s3.get_object(Bucket="backups", Key="db.bak.keyplane.json")["Body"].read()
s3.put_object(Bucket="backups", Key=args[0] + ".keyplane.json", Body=r)
' "$@" || fail "cannot copy to $1"
}
for len in 9223372036854775808 18446744073709551615 99999999999999999999999; do
    copy "len$len" "$len"
    refused 7 "x-amz-unencrypted-content-length is not a number of bytes" $D "s3://backups/len$len" \
        --out "$T/o/x"
done
copy len5 5
refused 7 "metadata says 5" $D s3://backups/len5 --out "$T/o/x"
copy len100000 100000
expect_rc 0 $D s3://backups/len100000 --out "$T/len.back"
cmp "$T/db.bak" "$T/len.back" || fail "the true length"

# ---- a FILE that grows while it is encrypted --------------------------------------------------
# S3 answers slowly, so the reader is still in the file when it grows
head -c 50331648 /dev/zero >"$T/grow.bak"
$ACTL faults --dir "$AWSD" --name east '{"scope": "all", "latency_ms": 600}' >/dev/null
(
    sleep 1.5
    head -c 1000000 /dev/urandom >>"$T/grow.bak"
) &
expect_rc 6 $P backup encrypt "$T/grow.bak" --kms-key "$K" --instance kms-east \
    --to s3://backups/grow
wait
$ACTL faults --dir "$AWSD" --name east '{}' >/dev/null
expect_in "$T/err" "changed while it was read (50331648 bytes at the start, 51331648 now)"
expect_rc 5 $D s3://backups/grow --out "$T/grow.back"
no_uploads

# ---- SIGTERM in the middle of an upload ---------------------------------------------------------
# the multipart upload is aborted (the old build died at once and left its parts billed), the
# command ends by its signal
$ACTL faults --dir "$AWSD" --name east '{"scope": "all", "latency_ms": 600}' >/dev/null
"$KP_BIN" $P backup encrypt "$T/grow.bak" --kms-key "$K" --instance kms-east \
    --to s3://backups/term --json >"$T/out" 2>"$T/err" &
KPID=$!
for _ in $(seq 40); do # until the upload has begun
    n=$(aws_cli $E s3api list-multipart-uploads --bucket backups --query 'length(Uploads || `[]`)')
    [ "$n" = 0 ] || break
    sleep 0.25
done
[ "$n" != 0 ] || fail "SIGTERM: no multipart upload began"
kill -TERM $KPID
set +e
wait $KPID
rc=$?
set -e
$ACTL faults --dir "$AWSD" --name east '{}' >/dev/null
[ "$rc" = 143 ] || { cat "$T/err" >&2; fail "SIGTERM: exit $rc, want 143"; }
# --json: the error document is printed before the command ends by its signal
"$PY" - "$T/out" <<'PY' || fail "SIGTERM: no --json error document: $(cat "$T/out")"
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert "interrupted by signal 15 (SIGTERM): nothing was written" in e["message"], e
PY
expect_rc 5 $D s3://backups/term --out "$T/term.back"
no_uploads

# ---- a record left where the new backup's goes ------------------------------------------------
s3py 's3.put_object(Bucket="backups", Key="stale.bak.keyplane.json", Body=b"{}")' ||
    fail "cannot leave a record"
kms_calls() {
    $ACTL stats --dir "$AWSD" --name east |
        "$PY" -c 'import json, sys; print(json.load(sys.stdin)["requests_by_service"].get("kms", 0))'
}
before=$(kms_calls)
expect_rc 5 $P backup encrypt "$T/db.bak" --kms-key "$K" --instance kms-east \
    --to s3://backups/stale.bak
expect_in "$T/err" "stale.bak.keyplane.json exists"
[ "$(kms_calls)" = "$before" ] || fail "KMS was asked for a key of a backup refused"
s3py '
try:
    s3.head_object(Bucket="backups", Key="stale.bak")
    sys.exit(1)
except s3.exceptions.ClientError:
    pass
' || fail "an object was left beside a stale record"
no_uploads

# ---- a faulty store between keyplane and S3 ------------------------------------------------------
"$PY" "$KP_SRC/tests/cli/s3_fault_proxy.py" "$AWS_EAST_PORT" "$AWSD/pki/server.pem" \
    "$AWSD/pki/server-key.pem" "$T/mode" "$T/proxy.port" 2>"$T/proxy.err" &
PROXY=$!
trap 'kill $PROXY 2>/dev/null; $ACTL stop-all --dir "$AWSD" --kill >/dev/null 2>&1 || true
      rm -rf "$T"' EXIT
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -f "$T/proxy.port" ] && break
    sleep 0.3
done
[ -f "$T/proxy.port" ] || { cat "$T/proxy.err" >&2; fail "no proxy"; }
{
    sed -n '1,/^chains:/p' "$T/policy.yaml" | sed '$d'
    aws_kms_instance kms-px east us-east-1 "s3_endpoint: https://127.0.0.1:$(cat "$T/proxy.port")"
    sed -n '/^chains:/,$p' "$T/policy.yaml"
} >"$T/px.yaml"
X="--policy $T/px.yaml backup"
head -c 20000000 /dev/urandom >"$T/p.bak"
: >"$T/mode"
expect_rc 0 $X encrypt "$T/p.bak" --kms-key "$K" --instance kms-px --to s3://backups/p
# an RDS export: no record
s3py '
o = s3.get_object(Bucket="backups", Key="p")
s3.put_object(Bucket="backups", Key="rds", Body=o["Body"].read(), Metadata=o["Metadata"])
' || fail "cannot copy p"
echo range-shift >"$T/mode"
refused 8 "not the bytes asked for" $X decrypt s3://backups/rds --instance kms-px --out "$T/o/x"
echo range-short >"$T/mode"
expect_rc 0 $X decrypt s3://backups/p --instance kms-px --out "$T/p.back" --json
cmp "$T/p.bak" "$T/p.back" || fail "short ranges"
expect_in "$T/out" '"integrity":"gmac"'
echo complete-drop >"$T/mode"
for f in p.bak db.bak; do # multipart, and one PutObject
    expect_rc 0 $X encrypt "$T/$f" --kms-key "$K" --instance kms-px --to "s3://backups/cd-$f"
    expect_in "$T/err" "the commit got no answer, but the object is there"
done
: >"$T/mode"
for f in p.bak db.bak; do
    rm -f "$T/cd.back"
    expect_rc 0 $D "s3://backups/cd-$f" --out "$T/cd.back" --json
    cmp "$T/$f" "$T/cd.back" || fail "cd-$f"
    expect_in "$T/out" '"integrity":"gmac"'
done
no_uploads
echo complete-500-once >"$T/mode"
expect_rc 0 $X encrypt "$T/p.bak" --kms-key "$K" --instance kms-px --to s3://backups/c500once
: >"$T/mode"
rm -f "$T/cd.back"
expect_rc 0 $D s3://backups/c500once --out "$T/cd.back"
cmp "$T/p.bak" "$T/cd.back" || fail "c500once"
echo complete-500 >"$T/mode"
expect_rc 6 $X encrypt "$T/p.bak" --kms-key "$K" --instance kms-px --to s3://backups/c500
expect_in "$T/err" "InternalError"
: >"$T/mode"
no_uploads
expect_rc 5 $D s3://backups/c500 --out "$T/c500.back"

# ---- a reader without s3:ListBucket -----------------------------------------------------------------
echo no-list >"$T/mode"
rm -f "$T/nl.back"
expect_rc 0 $X decrypt s3://backups/rds --instance kms-px --out "$T/nl.back" --json
cmp "$T/p.bak" "$T/nl.back" || fail "no-list: rds"
expect_in "$T/out" '"integrity":"padding-only"'
expect_in "$T/err" "rds.keyplane.json could not be looked at (access denied"
rm -f "$T/nl.back"
expect_rc 0 $X decrypt s3://backups/p --instance kms-px --out "$T/nl.back" --json
cmp "$T/p.bak" "$T/nl.back" || fail "no-list: p"
expect_in "$T/out" '"integrity":"gmac"'
# encrypt's check that the key is free is denied: exit 4, and the note names the permission
expect_rc 4 $X encrypt "$T/p.bak" --kms-key "$K" --instance kms-px --to s3://backups/nl-new
expect_in "$T/err" "that needs s3:GetObject and s3:ListBucket"
: >"$T/mode"

# ---- the IV changed beside the record -------------------------------------------------------------
s3py '
o = s3.get_object(Bucket="backups", Key="db.bak")
m, body = o["Metadata"], o["Body"].read()
iv = bytearray(base64.b64decode(m["x-amz-iv"]))
iv[0] ^= 1
m["x-amz-iv"] = base64.b64encode(bytes(iv)).decode()
rec = json.loads(s3.get_object(Bucket="backups", Key="db.bak.keyplane.json")["Body"].read())
rec["metadata"]["x-amz-iv"] = m["x-amz-iv"]
s3.put_object(Bucket="backups", Key="ivflip", Body=body, Metadata=m)
s3.put_object(Bucket="backups", Key="ivflip.keyplane.json", Body=json.dumps(rec).encode())
' || fail "cannot make ivflip"
refused 7 "GMAC" $D s3://backups/ivflip --out "$T/o/x"
mkdir "$T/l"
expect_rc 0 $P backup encrypt "$T/db.bak" --kms-key "$K" --instance kms-east --out "$T/l/db.enc"
"$PY" - "$T/l/db.enc.json" <<'PYEOF' || fail "cannot change the sidecar's IV"
import base64, json, sys
d = json.load(open(sys.argv[1]))
iv = bytearray(base64.b64decode(d["metadata"]["x-amz-iv"]))
iv[0] ^= 1
d["metadata"]["x-amz-iv"] = base64.b64encode(bytes(iv)).decode()
json.dump(d, open(sys.argv[1], "w"))
PYEOF
refused 7 "GMAC" $D "$T/l/db.enc" --out "$T/o/x"

# ---- a key too long for a record beside it -------------------------------------------------------
LK=$("$PY" -c 'print("k" * 1020)')
s3py '
o = s3.get_object(Bucket="backups", Key="db.bak")
s3.put_object(Bucket="backups", Key=args[0], Body=o["Body"].read(), Metadata=o["Metadata"])
' "$LK" || fail "cannot copy to a long key"
rm -f "$T/lk.back"
expect_rc 0 $D "s3://backups/$LK" --out "$T/lk.back" --json
cmp "$T/db.bak" "$T/lk.back" || fail "a long key"
expect_in "$T/out" '"integrity":"padding-only"'

# ---- an object without its metadata, its record beside it ------------------------------------------
s3py '
o = s3.get_object(Bucket="backups", Key="db.bak")
b = o["Body"].read()
r = s3.get_object(Bucket="backups", Key="db.bak.keyplane.json")["Body"].read()
s3.put_object(Bucket="backups", Key="bare", Body=b)
s3.put_object(Bucket="backups", Key="bare.keyplane.json", Body=r)
f = bytearray(b)
f[100] ^= 1
s3.put_object(Bucket="backups", Key="bareflip", Body=bytes(f))
s3.put_object(Bucket="backups", Key="bareflip.keyplane.json", Body=r)
' || fail "cannot make bare"
rm -f "$T/bare.back"
expect_rc 0 $D s3://backups/bare --out "$T/bare.back" --json
cmp "$T/db.bak" "$T/bare.back" || fail "bare"
expect_in "$T/out" '"integrity":"gmac"'
expect_in "$T/err" "has no envelope metadata"
refused 7 "has no envelope metadata" $D s3://backups/bareflip --out "$T/o/x"
expect_in "$T/err" "the GMAC of its integrity record does not verify"

# ---- another tool's metadata that kp_meta cannot carry --------------------------------------------
# a tab in a value, a '+' in a name (S3 takes both): skipped, the backup opens (the old build failed,
# exit 3, "plugin aws broke the ABI")
s3py '
o = s3.get_object(Bucket="backups", Key="db.bak")
b = o["Body"].read()
for key, extra in (("tabmeta", {"note": "a\tb"}), ("plusmeta", {"my+tag": "1"}),
                   ("manymeta", {"a%02d" % i: "x" for i in range(40)})):
    s3.put_object(Bucket="backups", Key=key, Body=b, Metadata=dict(extra, **o["Metadata"]))
' || fail "cannot make the odd metadata"
# manymeta: 40 pairs sent (and listed, as S3 lists them by name) before x-amz-*; the old build
# kept the first 32 and lost the envelope ("not an S3 client-side-encrypted object")
for k in tabmeta plusmeta manymeta; do
    rm -f "$T/odd.back"
    expect_rc 0 $D "s3://backups/$k" --out "$T/odd.back"
    cmp "$T/db.bak" "$T/odd.back" || fail "$k"
done

# ---- --force and a file at its old temporary name --------------------------------------------------
echo old >"$T/f.bak"
# exec: keyplane runs with the shell's pid, the one its temporary name used to carry
sh -c 'echo theirs >"$1.kp-$$"; shift; exec "$@"' sh "$T/f.bak" "$KP_BIN" $D s3://backups/db.bak \
    --out "$T/f.bak" --force 2>"$T/err" || { cat "$T/err" >&2; fail "decrypt --force"; }
cmp "$T/db.bak" "$T/f.bak" || fail "--force did not replace"
n=$(ls "$T" | grep -c '^f\.bak\.kp-') || true
[ "$n" = 1 ] || fail "$n files f.bak.kp-*, want theirs alone"
[ "$(cat "$T"/f.bak.kp-*)" = theirs ] || fail "a file at the old temporary name was touched"

# ---- escape sequences in a refused value ----------------------------------------------------------
head -c 32 /dev/urandom >"$T/l/esc.enc"
"$PY" - "$T/l/esc.enc.json" <<'PYEOF' || fail "cannot write esc.enc.json"
import json, sys
m = {"x-amz-key": "AAAA", "x-amz-iv": "A" * 22 + "==", "x-amz-matdesc": '{"kms_cmk_id": "k"}',
     "x-amz-cek-alg": "\x1b[31mRED\x1b]0;t\x07"}
json.dump({"format": "s3-cse", "metadata": m}, open(sys.argv[1], "w"))
PYEOF
refused 7 "x-amz-cek-alg is neither" $D "$T/l/esc.enc" --out "$T/o/x"
if tr -d '\033\007' <"$T/err" | cmp -s - "$T/err"; then :; else
    fail "control bytes reached stderr"
fi

# ---- FIFOs for FILE, PATH and PATH.json ------------------------------------------------------------
# refused (exit 2), not waited on (the old build blocked in open() for a writer that never came)
mkdir "$T/ff"
mkfifo "$T/ff/in.bak"
refused 2 "is not a regular file" $P backup encrypt "$T/ff/in.bak" --kms-key "$K" \
    --instance kms-east --out "$T/o/x"
cp "$T/l/db.enc" "$T/ff/a.enc"
mkfifo "$T/ff/a.enc.json"
refused 2 "a.enc.json is not a regular file" $D "$T/ff/a.enc" --out "$T/o/x"
cp "$T/l/db.enc.json" "$T/ff/b.enc.json"
mkfifo "$T/ff/b.enc"
refused 2 "b.enc is not a regular file" $D "$T/ff/b.enc" --out "$T/o/x"

# ---- a CBC IV of the wrong size is said to want 16 bytes (it said 12, GCM's) ----------------------
cp "$T/l/db.enc" "$T/l/iv.enc"
"$PY" - "$T/l/db.enc.json" "$T/l/iv.enc.json" <<'PYEOF' || fail "cannot write iv.enc.json"
import json, sys
d = json.load(open(sys.argv[1]))
d["metadata"]["x-amz-iv"] = "A" * 80
json.dump(d, open(sys.argv[2], "w"))
PYEOF
refused 7 "x-amz-iv is not the base64 of a 16-byte IV" $D "$T/l/iv.enc" --out "$T/o/x"

# ---- quotes in the printed T-SQL -------------------------------------------------------------------
cp "$T/db.bak" "$T/x';exec xp_cmdshell 'calc'--.bak"
expect_rc 0 $P backup encrypt "$T/x';exec xp_cmdshell 'calc'--.bak" --kms-key "$K" \
    --instance kms-east --to "s3://backups/it's.bak"
expect_in "$T/out" "@restore_db_name='x'';exec xp_cmdshell ''calc''--',"
expect_in "$T/out" "@s3_arn_to_restore_from='arn:aws:s3:::backups/it''s.bak',"

aws_no_bad_signatures
echo "cli.backup_hostile: ok"
