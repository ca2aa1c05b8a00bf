#!/bin/sh
# One replica cannot take a chain over (issue 11, finding 1). Someone who can write only to
# region b's directory (b's passphrase at most) adds a v3 of their own and a state document with
# a huge serial naming it active. wrap and rewrap refuse, naming b; plan reports the forged
# version as unconfirmed and the document as a state finding and copies neither; apply gives b
# the origin's document back, after which wrap uses the real active version again. With the
# origin gone, b's word against c's decides nothing (wrap refuses) until the operator names the
# store to trust (wrap --replica c).
. "$(dirname "$0")/lib.sh"
file_chain tde RSA-OAEP a b c >"$T/policy.yaml"
P="--policy $T/policy.yaml"
expect_rc 0 $P init
expect_rc 0 $P apply
expect_rc 0 $P rotate tde --stage
expect_rc 0 $P rotate tde --activate
openssl rand 32 >"$T/dek"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env1" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 2, d' "$T/out"

# The attacker: a policy naming b alone makes a v3 of their own there; then b's state document
# is rewritten to make it active.
file_providers b >"$T/evil.yaml"
(cd "$T" && "$KP_BIN" --policy "$T/evil.yaml" key generate --instance b --name tde --exportable \
    >/dev/null 2>&1) || fail "could not plant v3 in b"
[ -f "$T/b/keys/tde/3/public.der" ] && [ ! -d "$T/a/keys/tde/3" ] || fail "v3 not in b alone"
forge() { # forge DIR: the state document names v3 active with serial 1000
    "$PY" - "$1/keys/tde/state.json" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
for v in d["versions"]:
    if v["state"] == "active":
        v["state"] = "previous"
d["versions"].append({"version": 3, "state": "active", "active_from": 1, "active_until": 0,
                      "verified": 1})
d["serial"] = 1000
open(p, "w").write(json.dumps(d))
PY
}
forge "$T/b"

expect_rc 7 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env2"
expect_in "$T/err" "not wrapping with chain 'tde': b's state document names v3 active (serial 1000)"
[ ! -e "$T/env2" ] || fail "a refused wrap wrote an envelope"
cp "$T/env1" "$T/env1.orig"
expect_rc 1 $P rewrap "$T/env1"
expect_in "$T/err" "b's state document names v3 active"
cmp "$T/env1" "$T/env1.orig" || fail "a refused rewrap changed the envelope"

expect_rc 1 $P plan
expect_in "$T/out" "! unconfirmed tde: b: holds tde v3"
expect_in "$T/out" "! state       tde: a: b's state document names v3 active (serial 1000)"
if grep -q "copy .*tde v3" "$T/out"; then fail "plan copies the forged v3: $(cat "$T/out")"; fi

expect_rc 1 $P apply
[ ! -d "$T/a/keys/tde/3" ] && [ ! -d "$T/c/keys/tde/3" ] || fail "apply spread the forged v3"
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["serial"] < 1000 and [v["version"] for v in d["versions"] if v["state"] == "active"] == [2], d
' "$T/b/keys/tde/state.json"
expect_rc 0 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env3" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 2, d' "$T/out"
expect_rc 1 $P verify
expect_in "$T/err" "is held by 1 of the chain's 3 stores and not by the origin: unconfirmed, never copied or used to wrap"

# The origin is gone; b forges again; b against c decides nothing.
mv "$T/a" "$T/a.away"
forge "$T/b"
expect_rc 7 $P wrap --chain tde --dek "file:$T/dek" --out "$T/env4"
expect_in "$T/err" "cannot tell which version of chain 'tde' is active"
expect_in "$T/err" "b names v3 active (serial 1000)"
expect_rc 0 $P wrap --chain tde --replica c --dek "file:$T/dek" --out "$T/env4" --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] == 2, d' "$T/out"
mv "$T/a.away" "$T/a"
for e in env1 env3 env4; do
    expect_rc 0 $P unwrap --in "$T/$e" --replica a --out "$T/back.$e"
    cmp "$T/dek" "$T/back.$e" || fail "$e unwrapped another DEK"
done
echo "ok: one replica cannot take the chain over"
