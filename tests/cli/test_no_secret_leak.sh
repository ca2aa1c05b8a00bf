#!/bin/sh
# Runs a full scenario (success and failure paths, debug logging, audit on) and searches
# everything keyplane printed or logged for the test secrets: the store passphrase, the DEK,
# the private key and its PKCS#8 passphrase, the file stores' store keys, in raw, hex and base64
# forms.
. "$(dirname "$0")/lib.sh"
two_regions 2048
P="--policy $T/policy.yaml --audit $T/audit.jsonl -v -v"
LOG=$T/all-output
: >"$LOG"
# run CMD...: runs keyplane, appends its stdout and stderr to $LOG; exit codes are checked
# where they matter.
run() {
    # shellcheck disable=SC2086
    kp $P "$@"
    cat "$T/out" "$T/err" >>"$LOG"
}

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/key.pem" 2>/dev/null
KP_P8PASS=$(openssl rand -hex 20)
export KP_P8PASS
openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$T/key.pem" -out "$T/key.p8" -passout env:KP_P8PASS
openssl rand 32 >"$T/dek"

run check # the stores are not initialised yet: a failed item, and nothing of the secrets
[ "$rc" -eq 1 ] || fail "check before init: $rc"
run init
[ "$rc" -eq 0 ] || fail "init: $rc"
run check
[ "$rc" -eq 0 ] || fail "check: $rc"
run key import --instance region-a --name imported --key "file:$T/key.p8" --passphrase env:KP_P8PASS
[ "$rc" -eq 0 ] || fail "import: $rc"
run key import --instance region-a --name imported --key "file:$T/key.p8" --passphrase env:KP_TEST_PASS
[ "$rc" -ne 0 ] || fail "import with the wrong passphrase succeeded"
run key import --instance region-b --name imported --key "file:$T/key.pem" --json
run key create --chain tde --json
[ "$rc" -eq 0 ] || fail "create: $rc"
run key list --json
run key public --instance region-a --name tde
run wrap --chain tde --dek "file:$T/dek" --out "$T/env" --json
[ "$rc" -eq 0 ] || fail "wrap: $rc"
run unwrap --in "$T/env" --out "$T/dek.out" --json
[ "$rc" -eq 0 ] || fail "unwrap: $rc"
cmp "$T/dek" "$T/dek.out" || fail "round trip"
# Failure paths: tampered envelope, wrong store passphrase, missing secret, inline secret.
tamper_envelope "$T/env" "$T/env.bad" 7 0x01
run unwrap --in "$T/env.bad" --out "$T/x"
[ "$rc" -ne 0 ] || fail "tampered envelope unwrapped"
KP_GOOD=$KP_TEST_PASS
KP_TEST_PASS=$(openssl rand -hex 24)
run unwrap --in "$T/env" --out "$T/x"
[ "$rc" -eq 4 ] || fail "wrong store passphrase: exit $rc, want 4"
run check
[ "$rc" -eq 1 ] || fail "check with wrong passphrase: exit $rc, want 1"
KP_WRONG=$KP_TEST_PASS
unset KP_TEST_PASS
run wrap --chain tde --dek "file:$T/dek" --out "$T/x"
[ "$rc" -ne 0 ] || fail "wrap without passphrase env"
export KP_TEST_PASS="$KP_GOOD"
sed "s|env:KP_TEST_PASS|$KP_GOOD|" "$T/policy.yaml" >"$T/inline.yaml"
run policy validate "$T/inline.yaml"
[ "$rc" -eq 3 ] || fail "inline secret accepted"
run --policy "$T/inline.yaml" wrap --chain tde --dek "file:$T/dek" --out "$T/x"

[ -s "$T/audit.jsonl" ] || fail "no audit events"
grep -q '"op":"key.unwrap"' "$T/audit.jsonl" || fail "unwrap not audited"
grep -q '"outcome":"error"' "$T/audit.jsonl" || fail "failures not audited"
cat "$T/audit.jsonl" >>"$LOG"
# Self-test of the search (ctest runs this script once more with KP_TEST_INJECT_LEAK set and
# expects it to fail): a leak planted in the output must be found.
if [ -n "${KP_TEST_INJECT_LEAK:-}" ]; then
    od -An -tx1 "$T/dek" | tr -d ' \n' >>"$LOG"
fi
[ "$(wc -c <"$LOG")" -gt 1000 ] || fail "scenario printed suspiciously little"

# The store keys (format 2), opened from the headers as docs/file-plugin.md says: they must show
# nowhere either, in the output or (but sealed) in the store files.
for s in a b; do
    sed -n 's/.*"store_key": "\([^"]*\)".*/\1/p' "$T/$s/keyplane-store.json" |
        openssl base64 -d -A >"$T/sk.$s.enc"
    openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter 10000 -in "$T/sk.$s.enc" \
        -pass env:KP_TEST_PASS -out "$T/sk.$s" || fail "cannot open the store key of $s"
done

# Search. Store files are searched too (they must hold only encrypted forms).
find "$T/a" "$T/b" -type f -exec cat {} + >"$T/stores"
"$PY" - "$LOG" "$T/stores" "$T/dek" "$T/key.pem" "$T/sk.a" "$T/sk.b" <<PY
import base64, re, subprocess, sys
log = open(sys.argv[1], "rb").read()
stores = open(sys.argv[2], "rb").read()
dek = open(sys.argv[3], "rb").read()
pem = open(sys.argv[4]).read()
der = subprocess.run(["openssl", "pkey", "-in", sys.argv[4], "-outform", "DER"],
                     capture_output=True, check=True).stdout
secrets = {
    "store passphrase": b"$KP_GOOD",
    "wrong store passphrase": b"$KP_WRONG",
    "pkcs8 passphrase": b"$KP_P8PASS",
}
def forms(name, raw):
    yield name + " (raw)", raw
    yield name + " (hex)", raw.hex().encode()
    yield name + " (HEX)", raw.hex().upper().encode()
    yield name + " (base64)", base64.b64encode(raw).rstrip(b"=")
for name, raw in list(secrets.items()):
    for f in forms(name, raw):
        pass
checks = []
for name, raw in secrets.items():
    checks += list(forms(name, raw))
checks += list(forms("DEK", dek))
for f in sys.argv[5:7]:
    text = open(f, "rb").read()
    assert len(text) == 64, f
    checks += list(forms("store key", text))
    checks += list(forms("store key bytes", bytes.fromhex(text.decode())))
# The private key: each base64 line of its PEM, and 32-byte windows of its DER.
body = [l for l in pem.splitlines() if l and not l.startswith("-----")]
checks += [("private key PEM line %d" % i, l.encode()) for i, l in enumerate(body)]
checks += [("private key DER window %d" % i, der[i:i + 32].hex().encode())
           for i in range(0, len(der) - 32, 64)]
bad = 0
for name, needle in checks:
    if needle in log:
        print("LEAK in output: %s" % name)
        bad += 1
    if (name.startswith(("store passphrase", "pkcs8", "DEK", "private key PEM", "store key"))
            and needle in stores and ("hex" not in name or name.startswith("store key"))):
        print("LEAK in store files: %s" % name)
        bad += 1
print("searched %d bytes of output and %d bytes of store files for %d secret forms"
      % (len(log), len(stores), len(checks)))
sys.exit(1 if bad else 0)
PY
echo "ok: no secret in any output"
