#!/bin/sh
# A file store written before format 2 (tests/fixtures/file-store-v1) keeps working: it verifies,
# unwraps an envelope it wrapped then, opens its secret values, rotates (new versions stay in
# format 1, its header is never rewritten), its keys copy into a new store (format 2), and a key
# file opens with openssl and the passphrase as format 1 documents.
. "$(dirname "$0")/lib.sh"
cp -R "$KP_SRC/tests/fixtures/file-store-v1" "$T/fx"
chmod -R go-rwx "$T/fx"
KP_FIXTURE_PASS=keyplane-format-1-fixture
export KP_FIXTURE_PASS
P="--policy $T/fx/policy.yaml"
for s in vault escrow passwords; do
    cp "$T/fx/$s/keyplane-store.json" "$T/header.$s"
    grep -q '"version": 1,' "$T/header.$s" || fail "the fixture's $s is not format 1"
done

expect_rc 0 $P verify --json
"$PY" -c '
import json, sys
c = json.load(open(sys.argv[1]))["chains"][0]
assert c["ok"] is True and len(c["versions"]) == 2, c
for v in c["versions"]:
    for name in ("vault", "escrow", "passwords"):
        assert v["replicas"][name]["state"] == "ok", (v["version"], name, v["replicas"][name])
' "$T/out"
expect_rc 0 $P unwrap --in "$T/fx/dek.envelope" --out "$T/dek"
cmp "$T/dek" "$T/fx/dek.bin" || fail "the format 1 store unwrapped another DEK"
expect_rc 0 $P unwrap --replica escrow --in "$T/fx/dek.envelope" --out "$T/dek.escrow"
cmp "$T/dek.escrow" "$T/fx/dek.bin" || fail "escrow unwrapped another DEK"

# New versions in a format 1 store are format 1 too: private.p8 under the passphrase.
expect_rc 0 $P rotate tde --activate
expect_rc 0 $P rotate tde --stage
expect_in "$T/out" "staged tde v3"
for s in vault escrow; do
    openssl pkey -inform DER -in "$T/fx/$s/keys/tde/3/private.p8" -passin env:KP_FIXTURE_PASS \
        -noout || fail "v3 in $s does not open with the passphrase (format 1)"
done
[ -f "$T/fx/passwords/secrets/tde.password/3/value.enc" ] || fail "no v3 password"
head -c 4 "$T/fx/passwords/secrets/tde.password/3/value.enc" | grep -q KPS1 ||
    fail "a value written in a format 1 store is not KPS1"
for s in vault escrow passwords; do
    cmp "$T/header.$s" "$T/fx/$s/keyplane-store.json" || fail "the header of $s was rewritten"
done
expect_rc 0 $P verify

# A new store beside them is format 2 and takes copies of every version.
sed 's/replicas: \[vault, escrow\]/replicas: [vault, escrow, fresh]/' "$T/fx/policy.yaml" |
    sed 's|^chains:|  fresh: {plugin: file, path: fresh, passphrase: env:KP_FIXTURE_PASS, kdf_iterations: 10000}\nchains:|' \
        >"$T/fx/grown.yaml"
P2="--policy $T/fx/grown.yaml"
expect_rc 0 $P2 init fresh
grep -q '"version": 2,' "$T/fx/fresh/keyplane-store.json" || fail "a new store is not format 2"
expect_rc 0 $P2 apply
expect_rc 0 $P2 verify
expect_in "$T/out" "chain tde: ok"
expect_rc 0 $P2 unwrap --replica fresh --in "$T/fx/dek.envelope" --out "$T/dek.fresh"
cmp "$T/dek.fresh" "$T/fx/dek.bin" || fail "the copy in the format 2 store unwrapped another DEK"

# Another passphrase is refused for both formats alike (exit 4).
KP_FIXTURE_PASS=not-the-passphrase expect_rc 4 $P2 unwrap --replica vault --in "$T/fx/dek.envelope" --out "$T/x"
expect_in "$T/err" "wrong passphrase for file store"
KP_FIXTURE_PASS=not-the-passphrase expect_rc 4 $P2 unwrap --replica fresh --in "$T/fx/dek.envelope" --out "$T/x"
expect_in "$T/err" "wrong passphrase for file store"
echo "ok: format 1 stores keep working"
