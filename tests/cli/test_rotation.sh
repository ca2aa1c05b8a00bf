#!/bin/sh
# Rotation: stage v2 (replicated and proved everywhere), activate it, rewrap 1,000 envelopes;
# envelopes from before the rotation still unwrap with v1 in every region; retiring v1 is
# refused inside the retention window.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
hsm_and_regions 778899
hsm_tde_chain
cat >>"$T/policy.yaml" <<YAML
    rotation: {every: 365d, warn_before: 30d}
    retention: 35d
YAML
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply
expect_rc 5 $P rotate tde --activate # nothing staged yet: the state, no permission
expect_in "$T/err" "has no staged version"

# Envelopes of the v1 era: a few through keyplane, 1,000 made by anyone holding the public key.
for i in 1 2 3; do
    openssl rand 32 >"$T/old$i.dek"
    expect_rc 0 $P wrap --chain tde --dek "file:$T/old$i.dek" --out "$T/old$i.env"
done
expect_rc 0 $P key list --instance west --name tde --json
fpr1=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][0]["fingerprint"])' "$T/out")
expect_rc 0 $P key public --instance west --name tde --out "$T/v1.pub"
mkdir "$T/envs"
"$PY" - "$T/v1.pub" "$fpr1" "$T/envs" <<'PY'
import base64, json, os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
pub = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
deks = {}
for i in range(1000):
    dek = os.urandom(32)
    w = pub.encrypt(dek, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(),
                                      label=None))
    env = {"kp": 1, "chain": "tde", "wraps": [{"fpr": sys.argv[2], "v": 1, "alg": "RSA-OAEP",
           "w": base64.b64encode(w).decode()}]}
    name = os.path.join(sys.argv[3], "e%04d.env" % i)
    open(name, "w").write(json.dumps(env) + "\n")
    deks[name] = dek.hex()
json.dump(deks, open(os.path.join(sys.argv[3], "..", "deks.json"), "w"))
PY

# Stage: v2 everywhere and proved, but wrap still uses v1 until activation.
expect_rc 0 $P rotate tde --stage --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"]==2 and d["verified"], d' "$T/out"
expect_rc 0 $P status tde --json
"$PY" -c '
import json, sys
v = {r["version"]: r for r in json.load(open(sys.argv[1]))["chains"][0]["versions"]}
assert v[1]["state"] == "active" and v[2]["state"] == "staged", v
assert all(c["state"] == "ok" for c in v[2]["replicas"].values()), v
' "$T/out"
openssl rand 32 >"$T/mid.dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/mid.dek" --out "$T/mid.env" --json
"$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["version"] == 1' "$T/out"
expect_rc 0 $P rotate tde --stage # again: continues with the staged v2, makes no v3
expect_rc 0 $P key list --name tde --json
"$PY" -c 'import json,sys; assert max(k["version"] for k in json.load(open(sys.argv[1]))["keys"]) == 2' "$T/out"

# Activate: now wrap uses v2.
expect_rc 0 $P rotate tde --activate
expect_rc 0 $P wrap --chain tde --dek "file:$T/mid.dek" --out "$T/new.env" --json
"$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["version"] == 2' "$T/out"

# Rewrap the 1,000 envelopes in one run, then check them all.
expect_rc 0 $P rewrap --json "$T"/envs/*.env
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d=={"rewrapped":1000,"unchanged":0,"failed":0}, d' "$T/out"
"$PY" - "$T/deks.json" <<'PY'
import json, sys
deks = json.load(open(sys.argv[1]))
for name in deks:
    e = json.load(open(name))
    assert e["wraps"][0]["v"] == 2, (name, e)
print("1000 envelopes on v2")
PY
for f in e0000 e0421 e0999; do
    expect_rc 0 $P unwrap --in "$T/envs/$f.env" --replica east --out "$T/$f.dek"
    want=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/deks.json" "$T/envs/$f.env")
    [ "$(od -An -tx1 "$T/$f.dek" | tr -d ' \n')" = "$want" ] || fail "$f rewrapped to another DEK"
done
expect_rc 0 $P rewrap --json "$T"/envs/e000*.env
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["rewrapped"]==0 and d["unchanged"]==10, d' "$T/out"

# Envelopes from before the rotation still unwrap with v1, in every region.
for i in 1 2 3; do
    for r in west east hsm; do
        expect_rc 0 $P unwrap --in "$T/old$i.env" --replica "$r" --out "$T/back"
        cmp "$T/old$i.dek" "$T/back" || fail "old envelope $i in $r"
        rm -f "$T/back"
    done
done

# v1 stays: retiring it is refused inside the 35-day retention window; the active one never.
expect_rc 4 $P retire tde --version 1
# in days, not seconds (the window began at most a few seconds ago: 34 or 35 days are left)
grep -E -x -q "keyplane: error: retire: refusing to retire tde v1: the retention window \(35 days\) still needs it for 3[45] days more" "$T/err" ||
    { cat "$T/err" >&2; fail "the retention refusal does not count in days"; }
expect_rc 4 $P retire tde --version 2
expect_in "$T/err" "is active"
expect_rc 0 $P verify

# A keystore that lost the lifecycle document (a rebuilt region) gets the newest back.
rm -f "$T/east/keys/tde/state.json"
expect_rc 0 $P plan
expect_in "$T/out" "state   tde lifecycle"
expect_rc 0 $P apply
[ -s "$T/east/keys/tde/state.json" ] || fail "apply did not bring the state document back"
cmp "$T/east/keys/tde/state.json" "$T/west/keys/tde/state.json" || fail "east has another state"
expect_rc 0 $P apply
expect_in "$T/out" "nothing to do"
echo "ok: rotation"
