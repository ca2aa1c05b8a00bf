#!/bin/sh
# cli.aws_kms_hostile: the KMS keystore (docs/aws-plugin.md, "The KMS keystore") against an
# operator, a store and concurrent runs that work against it, in one emulated region:
# - an alias re-pointed (UpdateAlias) to the attacker's own RSA key between the core's lookup of
#   the version and the wrap (the emulator's kms_alias_flip): the wrap is refused, never made
#   under the attacker's key with the chain's fingerprint on the envelope (an envelope only the
#   attacker opens); re-pointed for good: verify shows the mismatch and wrap refuses;
# - a disabled key and a key pending deletion: verify names the state and the aws command that
#   mends it (not "does not exist");
# - a symmetric key under keyplane's prefix does not hide the other keys of `key list`;
# - a prefix not ending in '/' is refused (two prefixes would claim one alias), and so are
#   kms_endpoint and kms_key on a kms instance;
# - an import cut short after the claim is invisible and the next apply completes it;
# - names with '.' and '_' map to distinct aliases and back;
# - check names every key keyplane made that no alias claims, and never invites the deletion of
#   one that holds key material;
# - no request was refused for its signature.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/aws.sh"

aws_start east us-east-1
E() { aws_cli --endpoint-url "$AWS_EAST_URL" --region us-east-1 "$@"; }
{
    file_providers soft
    aws_kms_instance kms east us-east-1
    aws_kms_instance kmsfast east us-east-1 "deadline_ms: 1500" "max_attempts: 1"
    cat <<EOF
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: soft, exportable: true}
    replicas: [kms]
    algorithm: RSA-OAEP
  late:
    protector: {type: rsa, bits: 2048, origin: soft, exportable: true}
    replicas: [kms]
    algorithm: RSA-OAEP
EOF
} >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply
expect_rc 0 $P verify
head -c 32 /dev/urandom >"$T/dek"
ALIAS=alias/keyplane/tde/v1
LEGIT=$(E kms describe-key --key-id $ALIAS --query KeyMetadata.Arn --output text) || fail "describe"
ATTACKER=$(E kms create-key --key-spec RSA_2048 --key-usage ENCRYPT_DECRYPT \
    --query KeyMetadata.Arn --output text) || fail "create-key"
flip() { # N: after the Nth GetPublicKey of the alias, it names the attacker's key
    $ACTL control --dir "$AWSD" --name east POST config \
        "{\"kms_alias_flip\": {\"alias\": \"$ALIAS\", \"target\": \"$ATTACKER\", \"after\": $1}}" \
        >/dev/null || fail "kms_alias_flip"
}
repoint() { E kms update-alias --alias-name $ALIAS --target-key-id "$1" || fail "update-alias"; }

# ---- the alias re-pointed between the core's lookups and the wrap ---------------------------
# A wrap looks the version up (its fingerprint checked against the chain's), reads its public
# key (checked again), then wraps: the 2nd GetPublicKey is the last the core checks. Flipped
# after it, the old code wrapped under the attacker's key an envelope that said the chain's.
for n in 1 2; do
    flip $n
    rm -f "$T/env.flip"
    kp $P wrap --chain tde --dek "file:$T/dek" --replica kms --out "$T/env.flip"
    if [ "$rc" -eq 0 ]; then
        kp $P unwrap --in "$T/env.flip" --replica soft --out "$T/dek.flip"
        [ "$rc" -eq 0 ] ||
            fail "a wrap under the re-pointed alias (flip after $n) made an envelope the chain's key cannot open"
        fail "a wrap under the alias re-pointed after lookup $n succeeded"
    fi
    [ "$rc" -eq 7 ] || { cat "$T/err" >&2; fail "flip after $n: exit $rc, want 7 (integrity)"; }
    [ ! -e "$T/env.flip" ] || fail "a refused wrap left an envelope"
    repoint "$LEGIT"
done
expect_in "$T/err" "$ALIAS names key $ATTACKER now, key $LEGIT when this instance first looked it up"
$ACTL control --dir "$AWSD" --name east POST config '{"kms_alias_flip": null}' >/dev/null
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --replica kms --out "$T/env"
expect_rc 0 $P unwrap --in "$T/env" --replica soft --out "$T/dek.back"
cmp "$T/dek" "$T/dek.back" || fail "the origin unwrapped another DEK"
# re-pointed for good: verify shows another key, wrap refuses, unwrap fails over
repoint "$ATTACKER"
expect_rc 1 $P verify tde
expect_in "$T/err" "tde v1 in kms: MISMATCH"
expect_rc 7 $P wrap --chain tde --dek "file:$T/dek" --replica kms --out "$T/x"
expect_rc 0 $P unwrap --in "$T/env" --out "$T/dek.fo"
cmp "$T/dek" "$T/dek.fo" || fail "failover unwrapped another DEK"
repoint "$LEGIT"
expect_rc 0 $P verify tde

# ---- disabled, pending deletion: the state and the fix, not "does not exist" ----------------
E kms disable-key --key-id "$LEGIT" || fail "disable-key"
expect_rc 1 $P verify tde
expect_in "$T/err" "key tde v1 is disabled: aws kms enable-key --key-id $LEGIT"
expect_rc 0 $P key list --instance kms --name tde
grep -E "^kms +tde +v1 .* disabled +$LEGIT$" "$T/out" >/dev/null ||
    { cat "$T/out" >&2; fail "key list does not show the disabled key as disabled"; }
E kms enable-key --key-id "$LEGIT" || fail "enable-key"
E kms schedule-key-deletion --key-id "$LEGIT" --pending-window-in-days 7 >/dev/null ||
    fail "schedule-key-deletion"
expect_rc 1 $P verify tde
expect_in "$T/err" "key tde v1 is pending deletion: aws kms cancel-key-deletion --key-id $LEGIT"
if grep -q "does not exist" "$T/err"; then fail "a key pending deletion shown as absent"; fi
kp $P unwrap --in "$T/env" --replica kms --out "$T/x"
[ "$rc" -ne 0 ] || fail "unwrap with a key pending deletion"
expect_in "$T/err" "pending deletion"
E kms cancel-key-deletion --key-id "$LEGIT" >/dev/null || fail "cancel-key-deletion"
E kms enable-key --key-id "$LEGIT" || fail "enable-key"
expect_rc 0 $P verify tde

# ---- a symmetric key under keyplane's prefix hides nothing else ------------------------------
SYM=$(E kms create-key --query KeyMetadata.Arn --output text) || fail "create-key"
E kms create-alias --alias-name alias/keyplane/foreign/v1 --target-key-id "$SYM" ||
    fail "create-alias"
expect_rc 0 $P key list --instance kms --json
"$PY" -c '
import json, sys
k = json.load(open(sys.argv[1]))["keys"]
assert [(x["name"], x["version"]) for x in k] == [("late", 1), ("tde", 1)], k
' "$T/out"
kp $P key list --instance kms --name foreign
[ "$rc" -ne 0 ] || fail "a symmetric key listed as a keyplane key"
expect_in "$T/err" "SYMMETRIC_DEFAULT key, not RSA"
E kms delete-alias --alias-name alias/keyplane/foreign/v1 || fail "delete-alias"

# ---- a prefix must end with '/' --------------------------------------------------------------
sed 's|^    region: us-east-1$|    region: us-east-1\n    prefix: kp|' "$T/policy.yaml" >"$T/bad.yaml"
grep -q "prefix: kp" "$T/bad.yaml" || fail "sed"
expect_rc 3 --policy "$T/bad.yaml" policy validate "$T/bad.yaml"
expect_in "$T/err" "kms: prefix must end with '/'"
# a kms instance is reached at its endpoint: kms_endpoint and kms_key are refused there, not
# ignored (the first would send check to AWS itself)
sed 's|^    region: us-east-1$|    region: us-east-1\n    kms_endpoint: https://127.0.0.1:1|' \
    "$T/policy.yaml" >"$T/bad.yaml"
expect_rc 3 --policy "$T/bad.yaml" policy validate "$T/bad.yaml"
expect_in "$T/err" "kms_endpoint is an s3 param: a kms instance's URL is endpoint"
sed 's|^    region: us-east-1$|    region: us-east-1\n    kms_key: alias/x|' "$T/policy.yaml" >"$T/bad.yaml"
expect_rc 3 --policy "$T/bad.yaml" policy validate "$T/bad.yaml"
expect_in "$T/err" "kms_key is an s3 and secretsmanager param"

# KMS makes no key whose material could be escrowed: a generate says how keys get there
expect_rc 3 $P key generate --instance kms --name fresh --bits 2048
expect_in "$T/err" "does not support key creation: keys come to it by import"

# ---- an import cut short after its claim: invisible, completed by the next apply ------------
$ACTL faults --dir "$AWSD" --name east '{"forbidden_ops": ["kms:ImportKeyMaterial"]}' >/dev/null
kp $P key create --chain late
[ "$rc" -ne 0 ] || fail "key create succeeded with ImportKeyMaterial refused"
$ACTL faults --dir "$AWSD" --name east '{}' >/dev/null
claim=$(E kms describe-key --key-id alias/keyplane/late/v2 \
    --query '[KeyMetadata.Arn, KeyMetadata.KeyState]' --output text) || fail "describe late/v2"
case $claim in *PendingImport) ;; *) fail "late v2 is not a pending claim: $claim" ;; esac
expect_rc 0 $P key list --instance kms --name late --json
"$PY" -c '
import json, sys
k = json.load(open(sys.argv[1]))["keys"]
assert [x["version"] for x in k] == [1], k
' "$T/out"
expect_rc 1 $P verify late
expect_in "$T/err" "late v2 in kms: MISSING"
expect_rc 0 $P apply
expect_rc 0 $P verify late
now=$(E kms describe-key --key-id alias/keyplane/late/v2 \
    --query '[KeyMetadata.Arn, KeyMetadata.KeyState]' --output text) || fail "describe late/v2"
[ "$now" = "${claim%PendingImport}Enabled" ] ||
    fail "the rerun did not complete the claimed key: $claim -> $now"

# ---- names with '.' and '_': one alias each, and back -----------------------------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/k.pem" 2>/dev/null
for n in a.b a_-b a__b a_b; do
    expect_rc 0 $P key import --instance kms --name "$n" --key "file:$T/k.pem" --version 1
done
E kms list-aliases --query 'Aliases[].AliasName' --output text | tr '\t' '\n' |
    grep '^alias/keyplane/a' | sort >"$T/aliases"
printf '%s\n' alias/keyplane/a_-b/v1 alias/keyplane/a__-b/v1 alias/keyplane/a____b/v1 \
    alias/keyplane/a__b/v1 | sort | cmp - "$T/aliases" || { cat "$T/aliases" >&2; fail "aliases"; }
expect_rc 0 $P key list --instance kms --json
"$PY" -c '
import json, sys
names = sorted(x["name"] for x in json.load(open(sys.argv[1]))["keys"] if x["name"][0] == "a")
assert names == ["a.b", "a_-b", "a__b", "a_b"], names
' "$T/out"

# ---- check's scan of abandoned keys: cut short, partial, keys holding material --------------
/usr/bin/python3 - "$AWS_EAST_URL" "$AWS_CA" <<'EOF' || fail "orphans"
import sys, boto3
kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name="us-east-1", verify=sys.argv[2])
for i in range(55):
    kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT", Origin="EXTERNAL",
                   Tags=[{"TagKey": "keyplane-alias", "TagValue": "alias/keyplane/gone/v%d" % i}])
EOF
# a version's alias removed: its key holds the key material, and check says so
E kms delete-alias --alias-name alias/keyplane/a__b/v1 || fail "delete-alias"
expect_rc 0 $P check kms
# every key of the region is looked at (each with its own deadline): the 55 claims without
# their alias, and the version's key whose alias was removed, which holds material and is not
# to be deleted
expect_in "$T/out" "of the 64 keys of us-east-1, 56 made for a version that no alias claims"
[ "$(grep -c "(PendingImport) was made for alias/keyplane/gone/v" "$T/out")" = 55 ] ||
    fail "check did not name the 55 claims without an alias"
expect_in "$T/out" "(Enabled) holds key material and was made for alias/keyplane/a__b/v1"
expect_in "$T/out" "create-alias --alias-name alias/keyplane/a__b/v1"
if grep "alias/keyplane/a__b/v1" "$T/out" | grep -q "schedule-key-deletion"; then
    fail "check invited the deletion of a key holding material"
fi
aws_no_bad_signatures
