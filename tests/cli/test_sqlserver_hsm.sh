#!/bin/sh
# cli.sqlserver_hsm: a SQL Server certificate chain born in a SoftHSM2 token. The imported
# certificate is kept on the token as a CKO_CERTIFICATE with the key's CKA_ID, read back by
# pkcs11-tool as the same DER, copied to the file regions, and exported from the token again
# (export takes the key from the HSM, which the policy lets it export). A chain whose
# certificates keyplane makes in the token is verified the same way.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/softhsm.sh"
REAL=$KP_SRC/tests/fixtures/sqlserver-real
hsm_and_regions 2468
cat >>"$T/policy.yaml" <<'YAML'
  pw: {plugin: file, path: pw, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
chains:
  dbm:
    protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}
    replicas: [west, east]
    escrow: [hsm]
    algorithm: RSA-OAEP
    secrets: pw
    certificate: {}
  gen:
    protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}
    replicas: [west]
    algorithm: RSA-OAEP
    certificate: {subject: "CN=made in the token"}
YAML
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
printf '%s' 'Pa$$w0rd' >"$T/real.pass"
expect_rc 0 $P sqlserver import --chain dbm --cer "$REAL/dbm_certificate.cer" \
    --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/real.pass"
expect_rc 0 $P --json key list --instance hsm --name dbm
id=$("$PY" -c 'import json,sys; (k,) = json.load(open(sys.argv[1]))["keys"]; print(k["fingerprint"])' "$T/out")
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label escrow --login --pin 2468 \
    --read-object --type cert --id "$id" -o "$T/token.cer" >/dev/null 2>&1 ||
    fail "pkcs11-tool cannot read the certificate with id $id"
cmp "$T/token.cer" "$REAL/dbm_certificate.cer" || fail "the token keeps another DER"
cmp "$T/west/keys/dbm/1/certificate.der" "$REAL/dbm_certificate.cer" || fail "west differs"
expect_rc 0 $P verify dbm
expect_in "$T/out" "dbm: ok"
mkdir "$T/dr"
expect_rc 0 $P sqlserver export --chain dbm --out "$T/dr"
cmp "$T/dr/dbm_v1.cer" "$REAL/dbm_certificate.cer" || fail "the exported .cer differs"
expect_rc 0 $P secret get --instance pw --name dbm.pvk-password --out "$T/pvk.pass"
openssl rsa -inform PVK -in "$T/dr/dbm_v1.pvk" -passin "file:$T/pvk.pass" -provider legacy \
    -provider default -pubout -out "$T/pvk.pub" 2>/dev/null || fail "openssl cannot open the .pvk"
openssl x509 -inform DER -in "$REAL/dbm_certificate.cer" -pubkey -noout >"$T/cer.pub"
cmp "$T/pvk.pub" "$T/cer.pub" || fail "the .pvk from the token holds another key"

expect_rc 0 $P apply gen
expect_rc 0 $P verify gen
expect_in "$T/out" "CN=made in the token"
expect_rc 0 $P --json key list --instance hsm --name gen
id=$("$PY" -c 'import json,sys; (k,) = json.load(open(sys.argv[1]))["keys"]; print(k["fingerprint"])' "$T/out")
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label escrow --login --pin 2468 \
    --read-object --type cert --id "$id" -o "$T/gen.cer" >/dev/null 2>&1 ||
    fail "pkcs11-tool cannot read the made certificate"
cmp "$T/gen.cer" "$T/west/keys/gen/1/certificate.der" || fail "the token and west differ"
echo "OK"
