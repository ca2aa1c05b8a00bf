#!/bin/sh
# cli.cross_cloud: one protector, the same key material, in every cloud (docs/aws-plugin.md,
# "KMS keystore"). Born in a SoftHSM token and escrowed in another, copied by `keyplane apply`
# into two emulated Key Vaults, two emulated AWS KMS regions and a file store:
# - verify proves every cell with the chain's algorithm; boto3 reads each KMS region's public key
#   and it is the HSM's; the KMS keys are imported (Origin EXTERNAL), never expire and carry
#   keyplane's tags;
# - a DEK wrapped by vault 1 unwraps in KMS us-west-2 and one wrapped by KMS us-west-2 in vault 1;
#   `aws kms decrypt` of the bytes keyplane wrapped gives the DEK; an unwrap in KMS needs
#   kms:GetPublicKey and kms:Decrypt only;
# - with both vaults stopped, unwrap fails over to KMS; with the whole AWS side stopped, to Key
#   Vault;
# - KMS us-west-2 is lost (its state wiped): verify says so, `restore` rebuilds it from the
#   escrow, and old envelopes unwrap there again;
# - a key an interrupted import left is invisible and `check` names it;
# - no request was refused for its signature.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
. "$(dirname "$0")/azure.sh"
. "$(dirname "$0")/aws.sh"
# both fixtures set an EXIT trap: one that stops both
trap '$VCTL stop-all --dir "$V" --kill >/dev/null 2>&1 || true
      $ACTL stop-all --dir "$AWSD" --kill >/dev/null 2>&1 || true; rm -rf "$T"' EXIT

akv_start vault1
akv_start vault2
aws_start east us-east-1
aws_start west us-west-2
softhsm_token origin 4321
softhsm_token escrow 1234
KP_TEST_PASS=$(openssl rand -hex 16)
export KP_TEST_PASS
printf 4321 >"$T/origin.pin"
printf 1234 >"$T/escrow.pin"
policy() { # FILE REPLICA...: the policy, the chain's replicas in the order given
    out=$1
    shift
    {
        cat <<EOF
version: 1
providers:
  hsm: {plugin: pkcs11, module: $SOFTHSM_MODULE, token: origin, pin: "file:$T/origin.pin"}
  escrow: {plugin: pkcs11, module: $SOFTHSM_MODULE, token: escrow, pin: "file:$T/escrow.pin"}
  files: {plugin: file, path: $T/files, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
EOF
        akv_instance vault1 "$KV_VAULT1_URL" "verify_challenge_resource: false" "hsm: true"
        akv_instance vault2 "$KV_VAULT2_URL" "verify_challenge_resource: false" "hsm: true"
        aws_kms_instance kms-east east us-east-1
        aws_kms_instance kms-west west us-west-2 "deadline_ms: 3000" "max_attempts: 2"
        cat <<EOF
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}
    replicas: [$(echo "$@" | sed 's/ /, /g')]
    escrow: [escrow]
    algorithm: RSA-OAEP
EOF
    } >"$out"
}
policy "$T/policy.yaml" vault1 vault2 kms-east kms-west files
# the same chain, AWS first: which store an unwrap asks first is the order of the replicas
policy "$T/aws-first.yaml" kms-east kms-west vault1 vault2 files
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P policy validate "$T/policy.yaml"
expect_rc 0 $P check --json
"$PY" - "$T/out" <<'EOF' || fail "check does not show both KMS regions"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"], d
names = {i["instance"] for i in d["instances"]}
assert {"kms-east", "kms-west", "vault1", "vault2", "hsm", "escrow", "files"} <= names, names
EOF

# ---- apply: the same key everywhere, proved with the chain's algorithm ---------------------
expect_rc 0 $P apply --json
expect_rc 0 $P apply
expect_in "$T/out" "nothing to do"
expect_rc 0 $P verify --json
"$PY" - "$T/out" <<'EOF' || fail "verify does not prove every cell"
import json, sys
d = json.load(open(sys.argv[1]))
[ch] = d["chains"]
[v] = ch["versions"]
cells = v["replicas"]
want = {"vault1", "vault2", "kms-east", "kms-west", "files", "escrow"}
assert want <= set(cells), cells
bad = {n: c for n, c in cells.items() if not c["ok"]}
assert not bad, bad
EOF
expect_rc 0 $P key public --instance hsm --name tde --out "$T/hsm.pem"
openssl pkey -pubin -in "$T/hsm.pem" -outform DER -out "$T/hsm.der"

# ---- boto3 reads each region's key: the HSM's public key, imported, never expiring ----------
for r in "east us-east-1" "west us-west-2"; do
    set -- $r
    /usr/bin/python3 - "$(aws_url "$1")" "$2" "$AWS_CA" "$T/hsm.der" <<'EOF' ||
import sys, hashlib, boto3
url, region, ca, der = sys.argv[1:5]
kms = boto3.client("kms", endpoint_url=url, region_name=region, verify=ca)
want = open(der, "rb").read()
pub = kms.get_public_key(KeyId="alias/keyplane/tde/v1")
assert pub["PublicKey"] == want, "the public key differs from the HSM's"
assert pub["KeySpec"] == "RSA_2048" and pub["KeyUsage"] == "ENCRYPT_DECRYPT", pub
m = kms.describe_key(KeyId="alias/keyplane/tde/v1")["KeyMetadata"]
assert m["Origin"] == "EXTERNAL" and m["KeyState"] == "Enabled", m
assert m["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE", m
tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=m["KeyId"])["Tags"]}
assert tags == {"keyplane-name": "tde", "keyplane-version": "1",
                "keyplane-fingerprint": hashlib.sha256(want).hexdigest(),
                "keyplane-alias": "alias/keyplane/tde/v1"}, tags
# one key per version, nothing else claimed
aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"]
           if a["AliasName"].startswith("alias/keyplane/")]
assert aliases == ["alias/keyplane/tde/v1"], aliases
EOF
        fail "KMS $2 does not hold the HSM's key as keyplane imported it"
done

# ---- a DEK wrapped in one cloud unwraps in the other ------------------------------------------
head -c 32 /dev/urandom >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --replica vault1 --out "$T/env.kv" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="vault1", d' "$T/out"
expect_rc 0 $P unwrap --in "$T/env.kv" --replica kms-west --out "$T/dek.kms"
cmp "$T/dek" "$T/dek.kms" || fail "KMS us-west-2 unwrapped another DEK than vault1 wrapped"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --replica kms-west --out "$T/env.aws" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="kms-west", d' "$T/out"
expect_rc 0 $P unwrap --in "$T/env.aws" --replica vault1 --out "$T/dek.kv"
cmp "$T/dek" "$T/dek.kv" || fail "vault1 unwrapped another DEK than KMS us-west-2 wrapped"
# the AWS CLI decrypts what keyplane wrapped (the envelope's bytes are plain RSA-OAEP)
for e in env.kv env.aws; do
    "$PY" -c 'import json,sys,base64; sys.stdout.buffer.write(base64.b64decode(json.load(open(sys.argv[1]))["wraps"][0]["w"]))' \
        "$T/$e" >"$T/$e.bin"
    aws_cli --endpoint-url "$AWS_WEST_URL" --region us-west-2 kms decrypt \
        --key-id alias/keyplane/tde/v1 --encryption-algorithm RSAES_OAEP_SHA_1 \
        --ciphertext-blob "fileb://$T/$e.bin" --query Plaintext --output text >"$T/$e.b64" ||
        fail "aws kms decrypt of $e"
    base64 -d "$T/$e.b64" >"$T/$e.dek"
    cmp "$T/dek" "$T/$e.dek" || fail "aws kms decrypt of $e gave another DEK"
done
# the wrong algorithm does not decrypt there either (the check can fail)
if aws_cli --endpoint-url "$AWS_WEST_URL" --region us-west-2 kms decrypt \
    --key-id alias/keyplane/tde/v1 --encryption-algorithm RSAES_OAEP_SHA_256 \
    --ciphertext-blob "fileb://$T/env.kv.bin" >/dev/null 2>&1; then
    fail "KMS decrypted RSA-OAEP bytes as RSA-OAEP-256"
fi

# least privilege: with every other KMS operation refused, an unwrap still works there (it
# needs kms:GetPublicKey and kms:Decrypt only), and a refused Decrypt is reported as such
deny() { # OPERATION...: refuse these KMS operations in us-west-2
    ops=$(for o in "$@"; do printf '"kms:%s",' "$o"; done)
    $ACTL faults --dir "$AWSD" --name west "{\"forbidden_ops\": [${ops%,}]}" >/dev/null ||
        fail "faults"
}
deny DescribeKey ListAliases ListKeys ListResourceTags Encrypt GenerateDataKey ReEncrypt \
    CreateKey CreateAlias TagResource GetParametersForImport ImportKeyMaterial
expect_rc 0 $P unwrap --in "$T/env.kv" --replica kms-west --out "$T/dek.least"
cmp "$T/dek" "$T/dek.least" || fail "the least-privilege unwrap gave another DEK"
deny Decrypt
expect_rc 4 $P unwrap --in "$T/env.kv" --replica kms-west --out "$T/x"
expect_in "$T/err" "AccessDenied"
[ ! -e "$T/x" ] || fail "a refused unwrap left an output file"
$ACTL faults --dir "$AWSD" --name west '{}' >/dev/null

# ---- both vaults stopped: unwrap fails over to KMS -----------------------------------------
$VCTL stop --dir "$V" --name vault1 >/dev/null
$VCTL stop --dir "$V" --name vault2 >/dev/null
expect_rc 0 $P unwrap --in "$T/env.kv" --out "$T/dek.fo1" --json
expect_in "$T/err" "unwrap with vault1 failed"
expect_in "$T/err" "failing over to kms-east"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="kms-east", d' "$T/out"
cmp "$T/dek" "$T/dek.fo1" || fail "failover to KMS unwrapped another DEK"
$VCTL start --dir "$V" --name vault1 --port-reuse >/dev/null || fail "cannot restart vault1"
$VCTL start --dir "$V" --name vault2 --port-reuse >/dev/null || fail "cannot restart vault2"

# ---- the whole AWS side stopped: unwrap fails over to Key Vault ----------------------------
$ACTL stop --dir "$AWSD" --name east >/dev/null
$ACTL stop --dir "$AWSD" --name west >/dev/null
expect_rc 0 --policy "$T/aws-first.yaml" unwrap --in "$T/env.aws" --out "$T/dek.fo2" --json
expect_in "$T/err" "unwrap with kms-east failed"
expect_in "$T/err" "failing over to vault1"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["instance"]=="vault1", d' "$T/out"
cmp "$T/dek" "$T/dek.fo2" || fail "failover to Key Vault unwrapped another DEK"
aws_start east us-east-1 --port-reuse
aws_start west us-west-2 --port-reuse

# ---- KMS us-west-2 is lost: restore rebuilds it from the escrow ----------------------------
$ACTL stop --dir "$AWSD" --name west --kill >/dev/null
rm -rf "$AWSD/west.state"
aws_start west us-west-2 --port-reuse
expect_rc 1 $P verify --json
"$PY" - "$T/out" <<'EOF' || fail "verify does not show the lost KMS region"
import json, sys
d = json.load(open(sys.argv[1]))
cells = d["chains"][0]["versions"][0]["replicas"]
assert not cells["kms-west"]["ok"], cells["kms-west"]
assert all(c["ok"] for n, c in cells.items() if n != "kms-west"), cells
EOF
expect_rc 0 $P restore tde --to kms-west --from escrow --json
expect_rc 0 $P verify
expect_rc 0 $P unwrap --in "$T/env.aws" --replica kms-west --out "$T/dek.restored"
cmp "$T/dek" "$T/dek.restored" || fail "the restored KMS region unwrapped another DEK"
/usr/bin/python3 - "$AWS_WEST_URL" "$AWS_CA" "$T/hsm.der" <<'EOF' ||
import sys, boto3
kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name="us-west-2", verify=sys.argv[2])
assert kms.get_public_key(KeyId="alias/keyplane/tde/v1")["PublicKey"] == open(sys.argv[3], "rb").read()
EOF
    fail "the restored region does not hold the HSM's key"
# a key an interrupted import left (made and tagged, its alias never created) claims nothing:
# readers do not see it, and check names it for a person to remove
orphan=$(aws_cli --endpoint-url "$AWS_EAST_URL" --region us-east-1 kms create-key \
    --key-spec RSA_2048 --key-usage ENCRYPT_DECRYPT --origin EXTERNAL \
    --tags TagKey=keyplane-alias,TagValue=alias/keyplane/tde/v2 TagKey=keyplane-name,TagValue=tde \
    --query KeyMetadata.Arn --output text) || fail "create-key"
expect_rc 0 $P key list --instance kms-east --json
"$PY" -c '
import json, sys
k = json.load(open(sys.argv[1]))["keys"]
assert [(x["name"], x["version"]) for x in k] == [("tde", 1)], k
' "$T/out"
expect_rc 0 $P check kms-east
expect_in "$T/out" "1 key keyplane made claims no version: $orphan"
expect_rc 0 $P check kms-west
if grep -q "no version" "$T/out"; then fail "kms-west has no abandoned key"; fi
aws_no_bad_signatures
