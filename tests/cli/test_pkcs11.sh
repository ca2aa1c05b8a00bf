#!/bin/sh
# The pkcs11 plugin on a SoftHSM2 token made from scratch, through the keyplane command:
# check, generate, import, public key, wrap/unwrap with interop both ways (pkcs11-tool, openssl),
# replication out of the HSM, wrapped (BYOK) export refused because SoftHSM's RFC 5649 pads
# private keys (check says so too), a chain whose algorithm the token lacks found by check
# before any key exists, and clear one-line errors that leave no orphan object for a wrong PIN,
# a missing token, a missing mechanism and a non-extractable key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
hsm_policy hsm 246810
cat >>"$T/policy.yaml" <<YAML
  region-a: {plugin: file, path: $T/a, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: hsm, exportable: true}
    replicas: [region-a]
    escrow: [hsm]
    algorithm: RSA-OAEP
  solo:
    protector: {type: rsa, bits: 2048, origin: hsm}
    replicas: [hsm]
    algorithm: RSA-OAEP
YAML
# The same with a chain SoftHSM cannot serve: it does RSA-OAEP with SHA-1 only.
cp "$T/policy.yaml" "$T/sha256.yaml"
cat >>"$T/sha256.yaml" <<YAML
  sha256:
    protector: {type: rsa, bits: 2048, origin: hsm}
    replicas: [hsm]
    algorithm: RSA-OAEP-256
YAML
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P policy validate
expect_rc 0 $P check hsm --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
items = {i["item"]: i["ok"] for i in d["instances"][0]["items"]}
assert items == {"module": True, "token": True, "login": True, "mechanisms": True,
                 "chain tde": True, "chain solo": True}, d
# the probe at open found that the token pads private keys inside its RFC 5649 wrap
mech = [i for i in d["instances"][0]["items"] if i["item"] == "mechanisms"][0]["detail"]
assert "(SoftHSM v2) does not wrap keys as RFC 5649 says" in mech, mech
' "$T/out"
# The instance found out at open, on session objects, what the token does; check says which
# chain it cannot serve, before any key exists.
expect_rc 1 --policy "$T/sha256.yaml" check hsm --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
items = {i["item"]: i for i in d["instances"][0]["items"]}
assert not items["chain sha256"]["ok"] and "RSA-OAEP-256" in items["chain sha256"]["detail"], d
assert items["chain solo"]["ok"] and items["login"]["ok"], d
' "$T/out"
[ "$(p11_objects escrow $HSM_PIN)" -eq 0 ] || fail "new token not empty"

# A protector generated in the HSM, not extractable (the default).
expect_rc 0 $P key generate --instance hsm --name solo --bits 2048 --json
fpr=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["exportable"]; print(d["fingerprint"])' "$T/out")
[ "$(p11_objects escrow $HSM_PIN)" -eq 2 ] || fail "generate made other than 2 objects"

# Wrap through keyplane, decrypt with pkcs11-tool on the same token (OAEP SHA-1).
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain solo --dek "file:$T/dek" --out "$T/env"
"$PY" -c '
import base64, json, sys
e = json.load(open(sys.argv[1]))
open(sys.argv[2], "wb").write(base64.b64decode(e["wraps"][0]["w"]))
' "$T/env" "$T/wrapped"
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label escrow --login --pin "$HSM_PIN" \
    --decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA-1 --mgf MGF1-SHA1 --id "$fpr" \
    -i "$T/wrapped" -o "$T/dek.p11tool" 2>/dev/null || fail "pkcs11-tool could not decrypt"
cmp "$T/dek" "$T/dek.p11tool" || fail "pkcs11-tool decrypted another DEK"
expect_rc 0 $P unwrap --in "$T/env" --out "$T/dek.back"
cmp "$T/dek" "$T/dek.back" || fail "keyplane round trip"

# openssl encrypts under the exported public key; the HSM unwraps through keyplane.
expect_rc 0 $P key public --instance hsm --name solo --out "$T/solo.pub"
openssl rand 24 >"$T/dek2"
openssl pkeyutl -encrypt -pubin -inkey "$T/solo.pub" -pkeyopt rsa_padding_mode:oaep \
    -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1 -in "$T/dek2" -out "$T/wrapped2"
"$PY" -c '
import base64, json, sys
env = {"kp": 1, "chain": "solo", "wraps": [{"fpr": sys.argv[1], "v": 1, "alg": "RSA-OAEP",
       "w": base64.b64encode(open(sys.argv[2], "rb").read()).decode()}]}
open(sys.argv[3], "w").write(json.dumps(env))
' "$fpr" "$T/wrapped2" "$T/env2"
expect_rc 0 $P unwrap --in "$T/env2" --out "$T/dek2.back"
cmp "$T/dek2" "$T/dek2.back" || fail "openssl -> HSM"

# Import a protector made elsewhere (no plaintext private key handed to C_CreateObject).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/imp.pem" 2>/dev/null
expect_rc 0 $P key import --instance hsm --name imported --key "file:$T/imp.pem" --json
ifpr=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["fingerprint"])' "$T/out")
[ "$ifpr" = "$(openssl pkey -in "$T/imp.pem" -pubout -outform DER | sha256sum | cut -c1-64)" ] \
    || fail "imported key has another fingerprint"

# Failures: each one clear line, no orphan object.
expect_rc 0 $P key generate --instance hsm --name sha256 --bits 2048
before=$(p11_objects escrow $HSM_PIN)
"$PY" "$KP_SRC/tests/cli/bad_rsa_key.py" "$T/bad.pem" # dQ off: OpenSSL parses it
expect_rc 2 $P key import --instance hsm --name badkey --key "file:$T/bad.pem"
expect_in "$T/err" "import of badkey: inconsistent RSA key"
[ "$(p11_objects escrow $HSM_PIN)" = "$before" ] || fail "an inconsistent key left objects behind"
expect_rc 3 --policy "$T/sha256.yaml" wrap --chain sha256 --dek "file:$T/dek" --out "$T/x"
expect_in "$T/err" "hsm does not wrap with RSA-OAEP-256"
HSM_PIN=000000 expect_rc 4 $P key public --instance hsm --name solo
expect_in "$T/err" "C_Login: CKR_PIN_INCORRECT (wrong PIN for token 'escrow')"
HSM_PIN=000000 expect_rc 1 $P key list --instance hsm
expect_in "$T/err" "CKR_PIN_INCORRECT"
HSM_PIN=000000 expect_rc 1 $P check hsm
expect_in "$T/out" "CKR_PIN_INCORRECT"
HSM_PIN=246810
export HSM_PIN
sed 's/token: escrow/token: nosuch/' "$T/policy.yaml" >"$T/nosuch.yaml"
expect_rc 1 --policy "$T/nosuch.yaml" check hsm
expect_in "$T/out" "token 'nosuch' not found"
kp --policy "$T/nosuch.yaml" key list --instance hsm
[ "$rc" -ne 0 ] || fail "key list on a missing token succeeded"
expect_in "$T/err" "token 'nosuch' not found"
[ "$(p11_objects escrow $HSM_PIN)" -eq "$before" ] || fail "a failure left an object behind"
[ ! -e "$T/x" ] || fail "a failed command wrote its output"

# A protector born in the HSM, replicated out of it to a file region (it is exportable).
expect_rc 0 $P key create --chain tde --json
tfpr=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["fingerprint"])' "$T/out")
expect_rc 0 $P key list --name tde --json
"$PY" -c '
import json, sys
k = json.load(open(sys.argv[1]))["keys"]
assert sorted(x["instance"] for x in k) == ["hsm", "region-a"], k
assert {x["fingerprint"] for x in k} == {sys.argv[2]}, k
' "$T/out" "$tfpr"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env3" --replica region-a
expect_rc 0 $P unwrap --in "$T/env3" --replica hsm --out "$T/dek3"
cmp "$T/dek" "$T/dek3" || fail "region-a -> HSM"

# BYOK transfer blob for a key-exchange key: refused. SoftHSM 2.6.1 zero-pads the PKCS#8 inside
# its RFC 5649 wrap, so a strict importer would refuse the blob; the instance offers no wrapped
# export, and keys leave the token only as PKCS#8 (below).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/kek.pem" 2>/dev/null
openssl pkey -in "$T/kek.pem" -pubout -out "$T/kek.pub"
before=$(p11_objects escrow $HSM_PIN)
expect_rc 3 $P key export-byok --instance hsm --name tde --kek "$T/kek.pub" \
    --kek-kid https://vault.vault.azure.net/keys/kek/00000000000000000000000000000000 --out "$T/blob"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "export-byok refusal is not one line"
# The plugin's reason once the core passes it on; until then the core's own refusal.
expect_in "$T/err" "token 'escrow' (SoftHSM v2) does not wrap keys as RFC 5649 says"
[ "$(p11_objects escrow $HSM_PIN)" -eq "$before" ] || fail "BYOK export left an object behind"
[ ! -e "$T/blob" ] || fail "a refused BYOK export wrote its output"
expect_rc 0 $P key public --instance hsm --name tde --out "$T/tde.pub"

# Escrow copy as password-protected PKCS#8, readable by plain openssl; refused when not allowed.
KP_EXPORT_PASS=$(openssl rand -hex 16)
export KP_EXPORT_PASS
before=$(p11_objects escrow $HSM_PIN)
expect_rc 0 $P key export --instance hsm --name tde --passphrase env:KP_EXPORT_PASS --out "$T/tde.p8"
head -1 "$T/tde.p8" | grep -q 'BEGIN ENCRYPTED PRIVATE KEY' || fail "export is not encrypted PKCS#8"
openssl pkey -in "$T/tde.p8" -passin env:KP_EXPORT_PASS -pubout -out "$T/tde.pub.fromp8" \
    || fail "openssl cannot open the export"
cmp "$T/tde.pub" "$T/tde.pub.fromp8" || fail "exported another key"
expect_rc 4 $P key export --instance hsm --name solo --passphrase env:KP_EXPORT_PASS --out "$T/x"
expect_in "$T/err" "not exportable (CKA_EXTRACTABLE is false)"
KP_SHORT=short
export KP_SHORT
expect_rc 2 $P key export --instance hsm --name tde --passphrase env:KP_SHORT --out "$T/x"
[ "$(p11_objects escrow $HSM_PIN)" -eq "$before" ] || fail "export left an object behind"
[ ! -e "$T/x" ] || fail "a refused export wrote its output"

# The module named the p11-kit way finds the same token.
sed "s|module: $SOFTHSM_MODULE|module: softhsm2|" "$T/policy.yaml" >"$T/byname.yaml"
expect_rc 0 --policy "$T/byname.yaml" check hsm
expect_in "$T/out" "softhsm2"
expect_rc 0 --policy "$T/byname.yaml" key list --instance hsm --name tde
expect_in "$T/out" "$(echo "$tfpr" | cut -c1-16)"
# A label prefix that a key name could continue is refused (it would let instances see each
# other's keys), when the policy is read (PLUGIN_DESCRIBE); one ending in a separator is fine.
sed "s|pin: env:HSM_PIN}|pin: env:HSM_PIN, label_prefix: t1}|" "$T/policy.yaml" >"$T/prefix.yaml"
expect_rc 3 --policy "$T/prefix.yaml" policy validate
expect_in "$T/err" "label_prefix must be"
expect_rc 3 --policy "$T/prefix.yaml" check hsm
expect_in "$T/err" "label_prefix must be"
sed "s|pin: env:HSM_PIN}|pin: env:HSM_PIN, label_prefix: 'team1:'}|" "$T/policy.yaml" >"$T/prefix2.yaml"
expect_rc 0 --policy "$T/prefix2.yaml" key list --instance hsm --json
"$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["keys"] == []' "$T/out"
echo "ok: pkcs11"
