#!/bin/sh
# Runs tests/bench/cli for unwrap: sh tests/bench/run_unwrap_cli.sh BUILD_DIR [ROUNDS].
# One chain in a file store (the default 100,000 PBKDF2 iterations): `keyplane unwrap` of an
# envelope, as a whole process, against plain OpenSSL doing the same work from the same files
# the documented way (docs/file-plugin.md, "Recovery with plain openssl"): `openssl enc -d
# -pbkdf2` opens the store key from the header with the passphrase, `openssl pkeyutl -decrypt`
# opens private.p8 with it and decrypts the wrapped DEK (issue 13, target 4: at most 1.2x).
set -eu
build=$(cd "${1:?usage: run_unwrap_cli.sh BUILD_DIR [ROUNDS]}" && pwd)
rounds=${2:-11}
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-bench-XXXXXX")
[ -n "${KP_KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
fail() { echo "run_unwrap_cli.sh: $*" >&2; exit 1; }
KP=$build/bin/keyplane
PY=/usr/bin/python3
KP_BENCH_PASS=bench-unwrap-cli-passphrase
KEYPLANE_STATE_DIR=$T/state
export KP_BENCH_PASS KEYPLANE_STATE_DIR
cat >"$T/p.yaml" <<YAML
version: 1
providers:
  s: {plugin: file, path: $T/s, passphrase: env:KP_BENCH_PASS}
chains:
  c:
    protector: {type: rsa, bits: 2048, origin: s}
    replicas: [s]
    algorithm: RSA-OAEP-256
YAML
"$KP" --policy "$T/p.yaml" init s >/dev/null
"$KP" --policy "$T/p.yaml" -q apply || fail "apply"
openssl rand 32 >"$T/dek"
"$KP" --policy "$T/p.yaml" wrap --chain c --dek "file:$T/dek" --out "$T/env" || fail "wrap"
# The envelope's wrapped bytes and version, and the header's sealed store key, as files.
"$PY" - "$T" <<'PY' || fail "cannot read the envelope or the header"
import base64, json, sys
t = sys.argv[1]
env = json.load(open(f"{t}/env"))
w = env["wraps"][0]
open(f"{t}/wrapped", "wb").write(base64.b64decode(w["w"]))
open(f"{t}/version", "w").write(str(w["v"]))
h = json.load(open(f"{t}/s/keyplane-store.json"))
open(f"{t}/sk.enc", "wb").write(base64.b64decode(h["store_key"]))
open(f"{t}/iter", "w").write(str(h["iterations"]))
PY
v=$(cat "$T/version")
iter=$(cat "$T/iter")
raw="openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter $iter -pass env:KP_BENCH_PASS \
-in '$T/sk.enc' | openssl pkeyutl -decrypt -inkey '$T/s/keys/c/$v/private.p8' -passin stdin \
-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 \
-in '$T/wrapped' -out '$T/dek.raw'"
sh -c "$raw" || fail "the openssl side does not decrypt"
cmp -s "$T/dek" "$T/dek.raw" || fail "the openssl side gave another DEK"
"$KP" --policy "$T/p.yaml" unwrap --in "$T/env" --out "$T/dek.kp" || fail "keyplane unwrap"
cmp -s "$T/dek" "$T/dek.kp" || fail "keyplane unwrap gave another DEK"
exec "$build/bin/bench_cli" "$rounds" "openssl enc + pkeyutl" "$raw" "keyplane unwrap" \
    "'$KP' --policy '$T/p.yaml' unwrap --in '$T/env' --out '$T/dek.kp'" "at most 1.2x"
