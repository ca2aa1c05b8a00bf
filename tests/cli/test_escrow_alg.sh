#!/bin/sh
# Issue 11, finding 6: verify says ok only for a copy that unwraps with the chain's own algorithm.
# A chain on RSA-OAEP-256 with a SoftHSM 2.6.1 escrow (RSA-OAEP with SHA-1 only): check and plan
# name the escrow incapable, verify and status show it RESTORE-ONLY, a gap (exit 1, text and
# JSON), and indeed unwrap there fails. With `restore_only: [hsm]` the policy says so: check,
# plan, verify and status are ok and show it restore-only, failover passes it over, and restore
# from it still rebuilds a lost region. A chain on RSA-OAEP with the same escrow proves ok.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
hsm_and_regions 731902
cat >>"$T/policy.yaml" <<YAML
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: west, exportable: true}
    replicas: [west, east]
    escrow: [hsm]
    algorithm: RSA-OAEP-256
  sha1:
    protector: {type: rsa, bits: 2048, origin: west, exportable: true}
    replicas: [west, east]
    escrow: [hsm]
    algorithm: RSA-OAEP
YAML
# The same, the escrow kept as a restore source only for tde.
sed 's/^    algorithm: RSA-OAEP-256$/&\n    restore_only: [hsm]/' "$T/policy.yaml" >"$T/ro.yaml"
grep -q 'restore_only: \[hsm\]' "$T/ro.yaml" || fail "ro.yaml lacks restore_only"
P="--policy $T/policy.yaml"
R="--policy $T/ro.yaml"
expect_rc 0 $P init

# Without restore_only: check and plan say the escrow cannot serve tde, before anything exists.
expect_rc 0 $P policy validate
expect_rc 1 $P check hsm
expect_in "$T/out" "FAIL  chain tde"
expect_in "$T/out" "hsm cannot unwrap with RSA-OAEP-256, the algorithm of chain tde"
expect_rc 1 $P plan --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
f = [(x["finding"], x["chain"], x["instance"]) for x in d["findings"]]
assert f == [("incapable", "tde", "hsm")], d
' "$T/out"
expect_rc 1 $P apply # the copies are made (a restore source), the finding stays
expect_in "$T/err" "! tde: hsm: hsm cannot unwrap with RSA-OAEP-256"

# verify proves with the chain's algorithm only: the escrow is a restore source, a gap.
expect_rc 1 $P verify
expect_in "$T/out" "chain tde: GAPS"
expect_in "$T/out" "chain sha1: ok"
grep -E '^  v1 .* ok +ok +RESTORE-ONLY' "$T/out" >/dev/null || { cat "$T/out" >&2; fail "no RESTORE-ONLY hsm cell"; }
expect_in "$T/err" "keyplane: gap: tde v1 in hsm: RESTORE-ONLY: restore source only: cannot unwrap with RSA-OAEP-256"
expect_in "$T/err" "a gap unless the chain lists it in restore_only"
if grep -q "gap: sha1" "$T/err"; then fail "the RSA-OAEP chain has a gap"; fi
expect_rc 1 $P verify --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ch = {c["chain"]: c for c in d["chains"]}
assert not d["ok"] and not ch["tde"]["ok"] and ch["sha1"]["ok"], d
c = ch["tde"]["versions"][0]["replicas"]
assert c["hsm"]["state"] == "restore-only" and c["hsm"]["ok"] is False, c
assert "restore source only" in c["hsm"]["detail"], c
assert c["west"]["state"] == "ok" and "(RSA-OAEP-256)" in c["west"]["detail"], c
s = ch["sha1"]["versions"][0]["replicas"]
assert s["hsm"]["state"] == "ok" and s["hsm"]["ok"] and "(RSA-OAEP)" in s["hsm"]["detail"], s
' "$T/out"
expect_rc 1 $P status
expect_in "$T/err" "keyplane: gap: tde v1 in hsm: RESTORE-ONLY: present; restore source only"
expect_rc 1 $P status --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ch = {c["chain"]: c for c in d["chains"]}
assert ch["tde"]["versions"][0]["replicas"]["hsm"]["state"] == "restore-only", d
assert not ch["tde"]["ok"] and ch["sha1"]["ok"], d
' "$T/out"

# What verify no longer hides: the escrow cannot unwrap a tde envelope; a sha1 one it can.
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env"
expect_rc 3 $P unwrap --in "$T/env" --replica hsm --out "$T/back"
expect_in "$T/err" "does not offer RSA-OAEP with SHA-256"
expect_rc 0 $P wrap --chain sha1 --dek "file:$T/dek" --out "$T/env1"
expect_rc 0 $P unwrap --in "$T/env1" --replica hsm --out "$T/back1"
cmp "$T/dek" "$T/back1" || fail "the escrow unwrapped another DEK"

# restore_only must name a replica or escrow of the chain, never the origin.
sed 's/restore_only: \[hsm\]/restore_only: [west]/' "$T/ro.yaml" >"$T/origin.yaml"
expect_rc 3 --policy "$T/origin.yaml" policy validate
expect_in "$T/err" "restore_only names 'west', the chain's origin"

# With restore_only: [hsm] the policy says what the escrow is for: no finding, verify ok.
expect_rc 0 $R policy validate
expect_rc 0 $R check hsm
expect_rc 0 $R plan --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["findings"] == [] and d["actions"] == [], d
' "$T/out"
expect_rc 0 $R verify
expect_in "$T/out" "chain tde: ok"
grep -E '^  v1 .* ok +ok +restore-only' "$T/out" >/dev/null || { cat "$T/out" >&2; fail "no restore-only hsm cell"; }
expect_rc 0 $R verify --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ch = {c["chain"]: c for c in d["chains"]}
assert d["ok"] and ch["tde"]["ok"], d
c = ch["tde"]["versions"][0]["replicas"]["hsm"]
assert c["state"] == "restore-only" and c["ok"] is True and "as the policy keeps it" in c["detail"], c
assert ch["sha1"]["versions"][0]["replicas"]["hsm"]["state"] == "ok", d
' "$T/out"
expect_rc 0 $R status
grep -E '^  v1 .* ok +ok +restore-only' "$T/out" >/dev/null || { cat "$T/out" >&2; fail "status: no restore-only hsm cell"; }

# Failover passes the restore-only escrow over: with both regions away, the failure names only
# them (the escrow is not tried); the sha1 chain still fails over to it.
mv "$T/west" "$T/west.away"
mv "$T/east" "$T/east.away"
expect_rc 6 $R unwrap --in "$T/env" --out "$T/back"
expect_in "$T/err" "no replica of chain 'tde' could unwrap (west: "
if grep -q "hsm:" "$T/err"; then cat "$T/err" >&2; fail "failover tried the restore-only escrow"; fi
expect_rc 0 $R unwrap --in "$T/env1" --out "$T/back2"
cmp "$T/dek" "$T/back2" || fail "sha1: the escrow unwrapped another DEK"
mv "$T/west.away" "$T/west"

# The east region is lost for good: restore from the restore-only escrow rebuilds it.
rm -rf "$T/east.away"
expect_rc 0 $R init east
expect_rc 0 $R restore tde --to east --from hsm --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["verified"] and len(d["results"]) == 1, d
assert d["results"][0]["source"] == "hsm" and d["results"][0]["status"] == "KP_OK", d
' "$T/out"
expect_rc 0 $R unwrap --in "$T/env" --replica east --out "$T/back3"
cmp "$T/dek" "$T/back3" || fail "the restored east unwrapped another DEK"
expect_rc 0 $R restore sha1 --to east --from hsm
expect_rc 0 $R verify
expect_in "$T/out" "chain tde: ok"
expect_in "$T/out" "chain sha1: ok"
# Rotation goes through with the escrow restore-only: a restore-only copy is no gap for staging.
expect_rc 0 $R rotate tde --stage
expect_rc 0 $R rotate tde --activate
expect_rc 0 $R wrap --chain tde --dek "file:$T/dek" --out "$T/env2" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 2, d' "$T/out"
expect_rc 0 $R verify
echo "ok: escrow algorithm"
