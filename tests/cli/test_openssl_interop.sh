#!/bin/sh
# A DEK wrapped by `keyplane wrap` decrypts with `openssl pkeyutl -decrypt` (OAEP) given the
# private key; a DEK encrypted by openssl under `keyplane key public` unwraps through keyplane;
# the file store's private key files open with plain openssl: the store key from the header
# with the passphrase, then the key file with the store key.
. "$(dirname "$0")/lib.sh"

for alg in RSA-OAEP-256 RSA-OAEP; do
    rm -rf "$T/a" "$T/b"
    two_regions 3072 "$alg"
    P="--policy $T/policy.yaml"
    init_stores "$T/policy.yaml"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$T/key.pem" 2>/dev/null
    # A key whose CRT exponent dQ is off (OpenSSL parses it): refused, nothing stored.
    "$PY" "$KP_SRC/tests/cli/bad_rsa_key.py" "$T/bad.pem"
    expect_rc 2 $P key import --instance region-a --name tde --key "file:$T/bad.pem"
    expect_in "$T/err" "import of tde: inconsistent RSA key"
    [ ! -d "$T/a/keys/tde" ] || fail "an inconsistent key left $T/a/keys/tde behind"
    # Import into region-a as plain PKCS#8 PEM, into region-b as encrypted PKCS#8.
    expect_rc 0 $P key import --instance region-a --name tde --key "file:$T/key.pem"
    KP_P8PASS=$(openssl rand -hex 12)
    export KP_P8PASS
    openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$T/key.pem" -out "$T/key.p8" -passout env:KP_P8PASS
    expect_rc 2 $P key import --instance region-b --name tde --key "file:$T/key.p8"
    expect_in "$T/err" "give --passphrase"
    expect_rc 0 $P key import --instance region-b --name tde --key "file:$T/key.p8" \
        --passphrase env:KP_P8PASS --json
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"]==1 and d["bits"]==3072, d' "$T/out"

    openssl rand 32 >"$T/dek"
    expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"
    "$PY" -c '
import base64, json, sys
e = json.load(open(sys.argv[1]))
assert e["kp"] == 1 and e["chain"] == "tde", e
w = e["wraps"][0]
assert w["alg"] == sys.argv[3] and w["v"] == 1, e
open(sys.argv[2], "wb").write(base64.b64decode(w["w"]))
' "$T/env" "$T/wrapped" "$alg"
    md=sha256
    [ "$alg" = RSA-OAEP ] && md=sha1
    openssl pkeyutl -decrypt -inkey "$T/key.pem" -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:$md -pkeyopt rsa_mgf1_md:$md -in "$T/wrapped" -out "$T/dek.openssl"
    cmp "$T/dek" "$T/dek.openssl" || fail "$alg: openssl decrypted a different DEK"

    # The other way: openssl encrypts under the exported public key, keyplane unwraps.
    expect_rc 0 $P key public --instance region-b --name tde --out "$T/pub.pem"
    openssl pkey -pubin -in "$T/pub.pem" -noout || fail "key public wrote no PEM public key"
    openssl rand 48 >"$T/dek2"
    openssl pkeyutl -encrypt -pubin -inkey "$T/pub.pem" -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:$md -pkeyopt rsa_mgf1_md:$md -in "$T/dek2" -out "$T/wrapped2"
    expect_rc 0 $P key list --json --instance region-b
    "$PY" -c '
import base64, json, sys
keys = json.load(open(sys.argv[1]))["keys"]
fpr = keys[0]["fingerprint"]
env = {"kp": 1, "chain": "tde", "wraps": [{"fpr": fpr, "v": 1, "alg": sys.argv[3],
       "w": base64.b64encode(open(sys.argv[2], "rb").read()).decode()}]}
open(sys.argv[4], "w").write(json.dumps(env))
' "$T/out" "$T/wrapped2" "$alg" "$T/env2"
    expect_rc 0 $P unwrap --in "$T/env2" --replica region-b --out "$T/dek2.back"
    cmp "$T/dek2" "$T/dek2.back" || fail "$alg: keyplane unwrapped a different DEK"
done

# Disaster recovery without keyplane, as docs/file-plugin.md says: the store key out of the header
# with openssl enc and the passphrase, then the private key with openssl pkey and the store key.
h="$T/a/keyplane-store.json"
iter=$(sed -n 's/.*"iterations": \([0-9]*\).*/\1/p' "$h")
[ "$iter" = 10000 ] || fail "no iterations in the header: $iter"
sed -n 's/.*"store_key": "\([^"]*\)".*/\1/p' "$h" | openssl base64 -d -A >"$T/store-key.enc"
openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter "$iter" -in "$T/store-key.enc" \
    -pass env:KP_TEST_PASS -out "$T/store-key.txt" || fail "openssl enc cannot open the store key"
[ "$(wc -c <"$T/store-key.txt")" -eq 64 ] || fail "the store key is not 64 hex digits"
if openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter "$iter" -in "$T/store-key.enc" \
    -pass pass:not-the-passphrase -out "$T/store-key.wrong" 2>/dev/null &&
    [ "$(wc -c <"$T/store-key.wrong")" -eq 64 ] &&
    grep -qx '[0-9a-f]*' "$T/store-key.wrong"; then
    fail "another passphrase opened the store key"
fi
p8=$(find "$T/a" -name 'private.p8' | head -1)
[ -n "$p8" ] || fail "no private.p8 in the file store"
openssl pkey -inform DER -in "$p8" -passin "file:$T/store-key.txt" -pubout -out "$T/pub.fromstore" \
    || fail "openssl cannot read the stored private key with the store key"
if openssl pkey -inform DER -in "$p8" -passin env:KP_TEST_PASS -noout 2>/dev/null; then
    fail "a format 2 private.p8 opened with the passphrase itself"
fi
openssl pkey -in "$T/key.pem" -pubout -out "$T/pub.orig"
cmp "$T/pub.fromstore" "$T/pub.orig" || fail "stored key is not the imported key"
echo "ok: openssl interop"
