#!/bin/sh
# Disaster recovery: every keystore of one region is wiped; `keyplane restore` rebuilds it from
# the HSM escrow (a new store for one made with `keyplane init`, the other made by restore
# itself); verify passes; envelopes wrapped before the wipe unwrap in the restored region.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
hsm_policy hsm-escrow 445566
cat >>"$T/policy.yaml" <<YAML
  west-vault: {plugin: file, path: west/vault, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
  west-backup: {plugin: file, path: west/backup, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
  east-vault: {plugin: file, path: east/vault, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: west-vault, exportable: true}
    replicas: [west-vault, west-backup, east-vault]
    escrow: [hsm-escrow]
    algorithm: RSA-OAEP
YAML
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply
expect_rc 0 $P key generate --instance west-vault --name tde --exportable # v2, then everywhere
expect_rc 0 $P apply
expect_rc 0 $P verify
for i in 1 2 3 4 5; do
    openssl rand 32 >"$T/dek$i"
    expect_rc 0 $P wrap --chain tde --dek "file:$T/dek$i" --out "$T/env$i"
done
# The west region is gone: both of its stores, origin included.
rm -rf "$T/west"
expect_rc 1 $P verify
expect_in "$T/err" "tde v1 in west-vault: UNREACHABLE"
expect_in "$T/err" "tde v2 in west-backup: UNREACHABLE"
# Restore each from the escrow HSM, and prove it: west-backup made anew by hand first (else its
# absence stops the restore: it may be a disk that is not mounted), west-vault by the restore.
expect_rc 0 $P init west-backup
expect_in "$T/out" "west-backup: initialised"
expect_rc 0 $P restore tde --to west-vault --from hsm-escrow --json
[ -f "$T/west/vault/keyplane-store.json" ] || fail "restore did not initialise west-vault"
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["verified"] and len(d["results"]) == 2, d
assert all(r["source"] == "hsm-escrow" and r["status"] == "KP_OK" for r in d["results"]), d
' "$T/out"
expect_rc 0 $P restore tde --to west-backup --from hsm-escrow
expect_in "$T/out" "restored: west-backup holds every version of tde, each proved usable"
expect_rc 0 $P verify
for i in 1 2 3 4 5; do
    for r in west-vault west-backup; do
        expect_rc 0 $P unwrap --in "$T/env$i" --replica "$r" --out "$T/back"
        cmp "$T/dek$i" "$T/back" || fail "$r unwrapped another DEK from envelope $i"
        rm -f "$T/back"
    done
done
# Restoring from an instance that lacks the key is refused, not half-done.
expect_rc 0 $P restore tde --to west-backup
expect_in "$T/out" "0 versions to copy"
rm -rf "$T/east" "$T/west/backup"
expect_rc 0 $P init west-backup # an empty store, not a missing one
expect_rc 5 $P restore tde --to east-vault --from west-backup
expect_in "$T/err" "west-backup holds none of the versions east-vault lacks"
[ ! -d "$T/east/vault/keys" ] || fail "a refused restore wrote keys"
echo "ok: disaster recovery"
