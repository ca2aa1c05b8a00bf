#!/bin/sh
# cli.sqlserver: SQL Server TDE certificates as protector versions (docs/sqlserver.md).
# - a real SQL Server 2017 export (tests/fixtures/sqlserver-real) imports with its password; the
#   thumbprint keyplane prints is openssl's SHA-1 fingerprint and the fixture's README's; every
#   store keeps the certificate, and verify proves it in each;
# - bad inputs (wrong password, truncated or foreign .pvk, PEM for DER, a key that is not the
#   certificate's, an encrypted .pvk without --password) each give one line and change nothing;
# - export writes the .cer as it came in, a .pvk openssl opens with the password the chain's
#   secrets store keeps, and restore.sql equal to tests/cli/golden/sqlserver_restore.sql, with
#   passwords only under --show-password;
# - a DMK password put with `secret put --chain` comes back from the secret replica;
# - a second certificate imports as the staged version, and rotate-script equals
#   tests/cli/golden/sqlserver_rotate.sql;
# - the inventory: verify names the database that would not restore where a copy lost its
#   certificate, retire refuses the version it uses;
# - a chain whose certificates keyplane makes: apply makes one openssl accepts, status warns
#   ahead of its notAfter, and a rotation makes another.
# Regenerate the golden files with KP_UPDATE_GOLDEN=1.
. "$KP_SRC/tests/cli/lib.sh"
REAL=$KP_SRC/tests/fixtures/sqlserver-real
MADE=$KP_SRC/tests/fixtures/sqlserver-made
GOLDEN=$KP_SRC/tests/cli/golden
P="--policy $T/policy.yaml"
{
    sqlserver_policy_head
    cat <<YAML
    sqlserver:
      - instance: sql-prod-1
        databases: [Sales, {name: HR, column_keys: true}]
      - instance: 'sql-prod-2\AG'
        databases: []
  gen:
    protector: {type: rsa, bits: 2048, origin: west, exportable: true}
    replicas: [east]
    certificate: {subject: "CN=TDE generated,O=keyplane tests", valid: 30d, warn_before: 60d}
    rotation: {every: 365d}
YAML
} >"$T/policy.yaml"
init_stores "$T/policy.yaml"
printf '%s' 'Pa$$w0rd' >"$T/real.pass"
printf '%s' 'keyplane test 2' >"$T/made.pass"
thumb_real=$(openssl x509 -inform DER -in "$REAL/dbm_certificate.cer" -noout -fingerprint -sha1 |
    sed 's/.*=//; s/://g')
[ "$thumb_real" = 9E00202C7055170AE891B333E15DBDC62C568326 ] || fail "openssl says $thumb_real"

# An imported chain waits for its first certificate: no key is made for it.
expect_rc 1 $P plan dbm
expect_in "$T/out" "waiting"
expect_in "$T/out" "keyplane sqlserver import --chain dbm"

# ---- bad inputs: one line each, nothing changed -------------------------------------------
nothing_changed() {
    expect_rc 0 $P key list --instance west --name dbm
    if grep -q "dbm" "$T/out"; then cat "$T/out" >&2; fail "west holds a version of dbm"; fi
    [ ! -e "$T/bucket/secrets/dbm.cer" ] || fail "a certificate reached the secret replica"
}
one_line() { # RC MESSAGE ARGS...: the import fails with RC and exactly one line saying MESSAGE
    want=$1
    msg=$2
    shift 2
    expect_rc "$want" $P sqlserver import --chain dbm "$@"
    expect_in "$T/err" "$msg"
    [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err" >&2; fail "not one line: $*"; }
    nothing_changed
}
printf 'wrong' >"$T/wrong.pass"
one_line 4 "wrong password for $REAL/dbm_certificate.pvk" \
    --cer "$REAL/dbm_certificate.cer" --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/wrong.pass"
head -c 300 "$REAL/dbm_certificate.pvk" >"$T/short.pvk"
one_line 7 "$T/short.pvk: truncated PVK file" \
    --cer "$REAL/dbm_certificate.cer" --pvk "$T/short.pvk" --password "file:$T/real.pass"
head -c 1212 /dev/urandom >"$T/noise.pvk"
one_line 7 "$T/noise.pvk: not a PVK file" \
    --cer "$REAL/dbm_certificate.cer" --pvk "$T/noise.pvk" --password "file:$T/real.pass"
openssl x509 -inform DER -in "$REAL/dbm_certificate.cer" -out "$T/pem.cer"
one_line 7 "$T/pem.cer: PEM, expected DER" \
    --cer "$T/pem.cer" --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/real.pass"
one_line 7 "$MADE/tde2.pvk holds another key than the certificate in $REAL/dbm_certificate.cer" \
    --cer "$REAL/dbm_certificate.cer" --pvk "$MADE/tde2.pvk" --password "file:$T/made.pass"
one_line 7 "password is needed" --cer "$REAL/dbm_certificate.cer" --pvk "$REAL/dbm_certificate.pvk"
expect_rc 2 $P sqlserver import --chain dbm --cer "$REAL/dbm_certificate.cer" \
    --pvk "$REAL/dbm_certificate.pvk" --password 'Pa$$w0rd'
expect_in "$T/err" "never the password itself"
nothing_changed

# ---- the real export ---------------------------------------------------------------------
expect_rc 0 $P --json sqlserver import --chain dbm --cer "$REAL/dbm_certificate.cer" \
    --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/real.pass"
"$PY" - "$T/out" "$thumb_real" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["thumbprint"] == sys.argv[2] and j["version"] == 1 and not j["staged"], j
assert j["subject"] == "CN=dbm", j
EOF
expect_in "$T/err" "expired; SQL Server still restores with an expired TDE certificate"
# again: the same version, nothing new
expect_rc 0 $P sqlserver import --chain dbm --cer "$REAL/dbm_certificate.cer" \
    --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/real.pass"
expect_in "$T/out" "as dbm v1;"
expect_rc 0 $P --json verify dbm
"$PY" - "$T/out" "$thumb_real" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
(c,) = j["chains"]
(v,) = c["versions"]
assert v["certificate"]["thumbprint"] == sys.argv[2], v
assert "expired" in v["certificate"]["warning"], v
for name, cell in v["replicas"].items():
    assert cell["ok"] and ("certificate " + sys.argv[2]) in cell["detail"], (name, cell)
# the secret replica's copy is proved as SQL Server would read it too: its .pvk opens
assert "the .pvk opens" in v["replicas"]["bucket"]["detail"], v["replicas"]["bucket"]
EOF
# ... and the bucket alone restores SQL Server: CHAIN.cer, CHAIN.pvk, and the password
expect_rc 0 $P secret get --instance bucket --name dbm.pvk --out "$T/bucket.pvk"
expect_rc 0 $P secret get --instance bucket --name dbm.cer --out "$T/bucket.cer"
cmp "$T/bucket.cer" "$REAL/dbm_certificate.cer" || fail "the bucket keeps another .cer"
expect_rc 0 $P secret get --instance pw --name dbm.password --out "$T/bucket.pass"
openssl rsa -inform PVK -in "$T/bucket.pvk" -passin "file:$T/bucket.pass" -provider legacy \
    -provider default -pubout -out "$T/bucket.pub" 2>/dev/null ||
    fail "openssl cannot open the bucket's .pvk"
cmp "$T/west/keys/dbm/1/certificate.der" "$REAL/dbm_certificate.cer" ||
    fail "west keeps another certificate"

# ---- export ------------------------------------------------------------------------------
mkdir "$T/out1"
expect_rc 0 $P sqlserver export --chain dbm --out "$T/out1"
cmp "$T/out1/dbm_v1.cer" "$REAL/dbm_certificate.cer" || fail "the exported .cer differs"
expect_rc 0 $P secret get --chain dbm --name dbm.pvk-password --out "$T/pvk.pass"
openssl rsa -inform PVK -in "$T/out1/dbm_v1.pvk" -passin "file:$T/pvk.pass" -provider legacy \
    -provider default -pubout -out "$T/pvk.pub" 2>/dev/null || fail "openssl cannot open the .pvk"
openssl x509 -inform DER -in "$REAL/dbm_certificate.cer" -pubkey -noout >"$T/cer.pub"
cmp "$T/pvk.pub" "$T/cer.pub" || fail "the .pvk holds another key than the certificate"
cmp "$T/bucket.pub" "$T/cer.pub" || fail "the bucket's .pvk holds another key"
if grep -F -q "$(cat "$T/pvk.pass")" "$T/out1/restore.sql"; then
    fail "restore.sql shows the password without --show-password"
fi
if [ -n "${KP_UPDATE_GOLDEN:-}" ]; then cp "$T/out1/restore.sql" "$GOLDEN/sqlserver_restore.sql"; fi
diff -u "$GOLDEN/sqlserver_restore.sql" "$T/out1/restore.sql" || fail "restore.sql differs"

# a DMK password, through a secret replica
printf "%s" "it's the DMK" >"$T/dmk"
expect_rc 0 $P secret put --chain dbm --name dbm.dmk.HR --value "file:$T/dmk"
expect_in "$T/out" "pw: dbm.dmk.HR v1"
expect_in "$T/out" "bucket: dbm.dmk.HR v1"
expect_rc 0 $P secret get --chain dbm --from bucket --name dbm.dmk.HR
[ "$(cat "$T/out")" = "it's the DMK" ] || fail "the secret replica gave back $(cat "$T/out")"
expect_rc 5 $P secret get --chain dbm --from bucket --name dbm.dmk.Nope

mkdir "$T/out2"
expect_rc 0 $P sqlserver export --chain dbm --out "$T/out2" --show-password
expect_rc 0 $P secret get --chain dbm --name dbm.pvk-password --out "$T/pvk2.pass"
pass2=$(cat "$T/pvk2.pass")
[ "$pass2" != "$(cat "$T/pvk.pass")" ] || fail "the second export reused the password"
expect_in "$T/out2/restore.sql" "DECRYPTION BY PASSWORD = '$pass2'"
expect_in "$T/out2/restore.sql" "OPEN MASTER KEY DECRYPTION BY PASSWORD = ''it''''s the DMK'';"

# ---- rotation to a second certificate ------------------------------------------------------
expect_rc 0 $P sqlserver import --chain dbm --cer "$MADE/tde2.cer" --pvk "$MADE/tde2.pvk" \
    --password "file:$T/made.pass"
expect_in "$T/out" "as dbm v2, staged"
expect_rc 0 $P sqlserver rotate-script dbm
if [ -n "${KP_UPDATE_GOLDEN:-}" ]; then cp "$T/out" "$GOLDEN/sqlserver_rotate.sql"; fi
diff -u "$GOLDEN/sqlserver_rotate.sql" "$T/out" || fail "the rotation script differs"
# the chain-state document, written by the stage, records each version's certificate
expect_in "$T/west/keys/dbm/state.json" "\"certificate\":\"$thumb_real\""
expect_in "$T/west/keys/dbm/state.json" "\"certificate\":\"40B3DCA404DBA987168ABA494AD33F6119279599\""
cp "$T/west/keys/dbm/state.json" "$T/state.keep"
sed "s/$thumb_real/0000000000000000000000000000000000000000/" "$T/state.keep" \
    >"$T/west/keys/dbm/state.json"
expect_rc 1 $P verify dbm
expect_in "$T/err" "the chain-state document records certificate 0000000000000000000000000000000000000000 for v1, the stores keep $thumb_real"
cp "$T/state.keep" "$T/west/keys/dbm/state.json"
expect_rc 0 $P verify dbm
# a third certificate while v2 is staged is refused, nothing changed
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/k3.pem" -subj "/CN=third" -days 30 \
    -outform DER -out "$T/c3.cer" 2>/dev/null
openssl rsa -in "$T/k3.pem" -outform PVK -pvk-none -out "$T/k3.pvk" -provider legacy \
    -provider default 2>/dev/null
expect_rc 5 $P sqlserver import --chain dbm --cer "$T/c3.cer" --pvk "$T/k3.pvk"
expect_in "$T/err" "has v2 staged already"

# ---- inventory ---------------------------------------------------------------------------
expect_rc 0 $P sqlserver inventory-query
expect_in "$T/out" "encryptor_thumbprint"
printf 'sql-prod-1,Sales,%s,0\nsql-prod-1,HR,0x%s,1\n' "$thumb_real" "$thumb_real" >"$T/inv.csv"
expect_rc 0 $P sqlserver inventory import "$T/inv.csv"
expect_in "$T/out" "recorded 2 databases"
printf 'sql-prod-1,Sales,nothex,0\n' >"$T/bad.csv"
expect_rc 7 $P sqlserver inventory import "$T/bad.csv"
expect_in "$T/err" "$T/bad.csv:1: 'nothex' is no certificate thumbprint"
expect_rc 0 $P verify dbm
# a database whose certificate no chain carries, on an instance no chain lists: a gap of the
# whole policy's verify
printf 'OTHERHOST,Payroll,%s,0\n' AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA >"$T/other.csv"
expect_rc 0 $P sqlserver inventory import "$T/other.csv"
expect_in "$T/out" "recorded 3 databases"
expect_rc 1 $P verify
expect_in "$T/err" "Payroll on OTHERHOST is encrypted by certificate 0xAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, which no chain"
rm "$T/east/keys/dbm/1/certificate.der"
expect_rc 1 $P verify dbm
expect_in "$T/err" "Sales on sql-prod-1 would not restore in east: dbm v1: holds the key but not its certificate"
expect_in "$T/err" "HR on sql-prod-1 would not restore in east"
expect_rc 0 $P apply dbm
expect_rc 0 $P verify dbm
expect_rc 4 $P retire dbm --version 1
expect_in "$T/err" "HR on sql-prod-1 is still encrypted by dbm v1"

# ---- certificates keyplane makes -----------------------------------------------------------
expect_rc 0 $P apply gen
expect_rc 0 $P --json status gen
"$PY" - "$T/out" "$T/west/keys/gen/1/certificate.der" <<'EOF'
import json, subprocess, sys
j = json.load(open(sys.argv[1]))
(v,) = j["chains"][0]["versions"]
c = v["certificate"]
assert c["subject"] == "CN=TDE generated,O=keyplane tests", c
assert "expires in" in c["warning"], c
out = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", sys.argv[2], "-noout",
                      "-fingerprint", "-sha1"], capture_output=True, text=True, check=True).stdout
assert out.split("=")[1].strip().replace(":", "") == c["thumbprint"], (out, c)
EOF
cmp "$T/west/keys/gen/1/certificate.der" "$T/east/keys/gen/1/certificate.der" ||
    fail "the replica keeps another certificate"
# a create killed between the key and its certificate: one apply makes it and copies it
rm "$T/west/keys/gen/1/certificate.der" "$T/east/keys/gen/1/certificate.der"
expect_rc 1 $P verify gen
expect_rc 0 $P plan gen
expect_in "$T/out" "cert    gen v1 made in west"
expect_in "$T/out" "cert    gen v1 west -> east"
expect_rc 0 $P apply gen
expect_rc 0 $P verify gen
expect_rc 0 $P rotate gen --stage
cmp -s "$T/west/keys/gen/1/certificate.der" "$T/west/keys/gen/2/certificate.der" &&
    fail "the rotation reused the certificate"
expect_rc 0 $P verify gen

# ---- policy checks -----------------------------------------------------------------------
sed 's/protector: {type: rsa, bits: 2048, origin: west, exportable: true}\(.*\)/protector: {type: rsa, bits: 2048, origin: west}/' \
    "$T/policy.yaml" >"$T/bad.yaml"
expect_rc 3 policy validate "$T/bad.yaml"
expect_in "$T/err" "a certificate's private key goes to a .pvk for SQL Server"
echo "OK"
