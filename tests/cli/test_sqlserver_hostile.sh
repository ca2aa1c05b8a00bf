#!/bin/sh
# cli.sqlserver_hostile: a certificate chain never gets a second certificate for one key, and
# what an operator or a store gets wrong is refused with nothing changed:
# - another certificate of the same key, imported once the origin lost its copy: refused;
# - stores that keep different certificates and an origin with none (a tie): a conflict,
#   nothing copied, verify fails; removing the wrong one lets apply repair;
# - a certificate keyplane would make while a store that may keep one does not answer: none made;
# - 'rotate --stage' on a chain whose certificates are imported: refused, nothing recorded;
# - a 1024-bit certificate: one line naming the file;
# - export into a directory that holds an earlier export: refused; a missing one is made;
# - secret put under a name keyplane writes for a chain's copies: refused.
. "$KP_SRC/tests/cli/lib.sh"
REAL=$KP_SRC/tests/fixtures/sqlserver-real
P="--policy $T/policy.yaml"
{
    sqlserver_policy_head
    cat <<YAML
  gen:
    protector: {type: rsa, bits: 2048, origin: west, exportable: true}
    replicas: [east]
    certificate: {subject: "CN=made"}
YAML
} >"$T/policy.yaml"
init_stores "$T/policy.yaml"
printf '%s' 'Pa$$w0rd' >"$T/real.pass"
expect_rc 0 $P sqlserver import --chain dbm --cer "$REAL/dbm_certificate.cer" \
    --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/real.pass"
# another certificate of the same key (what SQL Server's key would sign again)
openssl rsa -inform PVK -in "$REAL/dbm_certificate.pvk" -passin "file:$T/real.pass" \
    -provider legacy -provider default -out "$T/real.key" 2>/dev/null
openssl req -new -x509 -key "$T/real.key" -subj "/CN=dbm" -days 30 -outform DER \
    -out "$T/same.cer" 2>/dev/null
rm "$T/west/keys/dbm/1/certificate.der"
expect_rc 5 $P sqlserver import --chain dbm --cer "$T/same.cer" \
    --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/real.pass"
expect_in "$T/err" "this is another certificate of the same key"
[ ! -e "$T/west/keys/dbm/1/certificate.der" ] || fail "the refused certificate reached west"
# the same certificate again puts it back
expect_rc 0 $P sqlserver import --chain dbm --cer "$REAL/dbm_certificate.cer" \
    --pvk "$REAL/dbm_certificate.pvk" --password "file:$T/real.pass"
cmp "$T/west/keys/dbm/1/certificate.der" "$REAL/dbm_certificate.cer" || fail "west differs"

# a tie: west none, east another, bucket the real one
rm "$T/west/keys/dbm/1/certificate.der"
cp "$T/same.cer" "$T/east/keys/dbm/1/certificate.der"
expect_rc 1 $P plan dbm
expect_in "$T/out" "stores keep different certificates for dbm v1"
if grep -q "+ cert" "$T/out"; then cat "$T/out" >&2; fail "a tie planned a certificate copy"; fi
expect_rc 1 $P apply dbm
[ ! -e "$T/west/keys/dbm/1/certificate.der" ] || fail "apply wrote a certificate on a tie"
expect_rc 1 $P verify dbm
expect_in "$T/err" "stores keep different certificates for v1"
rm "$T/east/keys/dbm/1/certificate.der"
expect_rc 0 $P apply dbm
expect_rc 0 $P verify dbm
cmp "$T/east/keys/dbm/1/certificate.der" "$REAL/dbm_certificate.cer" || fail "east not repaired"

# no certificate is made while a store that may keep one does not answer
expect_rc 0 $P apply gen
cp "$T/west/keys/gen/1/certificate.der" "$T/gen.cer"
rm "$T/west/keys/gen/1/certificate.der"
mv "$T/east" "$T/east.away"
expect_rc 1 $P apply gen
expect_in "$T/err" "east did not answer: it may keep the one SQL Server uses"
[ ! -e "$T/west/keys/gen/1/certificate.der" ] || fail "a certificate was made without east"
mv "$T/east.away" "$T/east"
expect_rc 0 $P apply gen
cmp "$T/west/keys/gen/1/certificate.der" "$T/gen.cer" || fail "apply made another certificate"

# rotate --stage of an imported chain: refused before anything is recorded
cp "$T/west/keys/dbm/state.json" "$T/state.before" 2>/dev/null || : >"$T/state.before"
expect_rc 4 $P rotate dbm --stage
expect_in "$T/err" "stage the next one with 'keyplane sqlserver import --chain dbm'"
cmp -s "$T/state.before" "$T/west/keys/dbm/state.json" 2>/dev/null ||
    [ ! -e "$T/west/keys/dbm/state.json" ] || fail "the refused stage changed the state document"

# a 1024-bit certificate
openssl req -x509 -newkey rsa:1024 -nodes -keyout "$T/small.pem" -subj "/CN=old" -days 30 \
    -outform DER -out "$T/small.cer" 2>/dev/null
openssl rsa -in "$T/small.pem" -outform PVK -pvk-none -out "$T/small.pvk" -provider legacy \
    -provider default 2>/dev/null
expect_rc 7 $P sqlserver import --chain dbm --cer "$T/small.cer" --pvk "$T/small.pvk"
expect_in "$T/err" "$T/small.cer: the certificate's key is RSA-1024"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "more than one line for a 1024-bit certificate"

# export: a missing directory is made; one that holds an export is refused
expect_rc 0 $P sqlserver export --chain dbm --out "$T/dr1"
[ -f "$T/dr1/restore.sql" ] || fail "no restore.sql in the directory export made"
expect_rc 5 $P sqlserver export --chain dbm --out "$T/dr1"
expect_in "$T/err" "exists: export each version into a directory of its own"
expect_rc 0 $P secret list --instance pw --name dbm.pvk-password
[ "$(grep -c dbm.pvk-password "$T/out")" -eq 1 ] || fail "a refused export kept a password"

# secret put under a name keyplane writes itself
printf 'x' >"$T/x"
expect_rc 2 $P secret put --chain dbm --name dbm.pvk --value "file:$T/x"
expect_in "$T/err" "dbm.pvk is where keyplane keeps chain dbm's copies"
echo "OK"
