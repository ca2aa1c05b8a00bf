#!/bin/sh
# cli.aws_kms_kill (issue 17): `keyplane apply` killed with SIGKILL while it imports RSA keys into
# two KMS keystores (`service: kms`, two emulated regions) converges without an orphan key that
# claims a version. Twenty rounds each add a chain and kill the apply importing it at a seeded
# point of its imports (at least 15 must die of the kill, at least 5 with the chain's claim made
# and its material not yet imported); CreateAlias refused once leaves a claim without its alias
# on purpose; two applies race on four fresh chains. Then: the reruns converge, verify proves
# every cell, and KMS itself (boto3) holds exactly one alias per chain version, naming an Enabled
# key whose public key is the origin's (`key public`) and whose tags say name, version and
# fingerprint; every other key is tagged for one of those versions and PendingImport (no
# material: a claim cut short, a refused alias, a race's loser), and `keyplane check` lists
# exactly those.
. "$KP_SRC/tests/cli/lib.sh"
. "$KP_SRC/tests/cli/aws.sh"
aws_start east us-east-1
aws_start west us-west-2
# An RSA-4096 wrapping key costs the emulator seconds to make: one per region serves every
# GetParametersForImport, so one import times like the next (each answer's token is its own).
for r in east west; do
    $ACTL control --dir "$AWSD" --name $r POST config '{"kms_wrapping_ring": 1}' >/dev/null ||
        fail "kms_wrapping_ring"
done
P="--policy $T/policy.yaml"
ROUNDS=${KP_KMS_KILL_ROUNDS:-20}

chain_block() { # chain_block NAME: an RSA-2048 chain born in the file store, imported into KMS
    cat <<YAML
  $1:
    protector: {type: rsa, bits: 2048, origin: origin, exportable: true}
    replicas: [origin, kms-east, kms-west]
YAML
}
{
    file_providers origin
    aws_kms_instance kms-east east us-east-1
    aws_kms_instance kms-west west us-west-2
} >"$T/head.yaml"
{ cat "$T/head.yaml"; echo "chains: {}"; } >"$T/init.yaml"
init_stores "$T/init.yaml"
{ cat "$T/head.yaml"; echo "chains:"; } >"$T/policy.yaml"

# kms_audit MODE ARG: what both regions' KMS holds, through boto3 (never keyplane), with the
# regions' faults lifted meanwhile.
#   pending CHAIN  prints the state of the key alias/keyplane/CHAIN/v1 names in us-east-1 and
#                  in us-west-2: PendingImport (an import cut short after its claim), Enabled,
#                  or none
#   final PUBDIR   asserts the end state against the origin's public keys (PUBDIR/NAME.pem)
#                  and prints one line per key left without an alias
cat >"$T/kms_audit.py" <<'PYEOF'
import hashlib, os, sys
import boto3
from cryptography.hazmat.primitives import serialization
sys.path.insert(0, os.path.join(os.environ["KP_SRC"], "tests", "emulators"))
from common.client import ControlClient

mode, ca = sys.argv[1], os.environ["AWS_CA"]
regions = [("us-east-1", "EAST"), ("us-west-2", "WEST")]
TAGS = ("keyplane-name", "keyplane-version", "keyplane-fingerprint")

def pages(call, key, **kw):
    marker = None
    while True:
        out = call(**kw, **({"Marker": marker} if marker else {}))
        yield from out.get(key, [])
        if not out.get("Truncated"):
            return
        marker = out["NextMarker"]

def region_state(region, env):
    kms = boto3.client("kms", region_name=region, endpoint_url=os.environ["AWS_%s_URL" % env],
                       verify=ca)
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in pages(kms.list_aliases, "Aliases")
               if a["AliasName"].startswith("alias/keyplane/")}
    keys = {}
    for k in pages(kms.list_keys, "Keys"):
        meta = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
        tags = {t["TagKey"]: t["TagValue"]
                for t in pages(kms.list_resource_tags, "Tags", KeyId=k["KeyId"])}
        keys[meta["KeyId"]] = (meta, tags)
    return kms, aliases, keys

def fpr_of_der(der):
    return hashlib.sha256(der).hexdigest()

def pending(chain):
    states = []
    for region, env in regions:
        kms = boto3.client("kms", region_name=region,
                           endpoint_url=os.environ["AWS_%s_URL" % env], verify=ca)
        try:
            states.append(kms.describe_key(KeyId="alias/keyplane/%s/v1" % chain)
                          ["KeyMetadata"]["KeyState"])
        except kms.exceptions.NotFoundException:
            states.append("none")
    print(*states)

def final(pubdir):
    want = {}  # (name, version) -> fingerprint of the origin's public key
    for f in sorted(os.listdir(pubdir)):
        pem = open(os.path.join(pubdir, f), "rb").read()
        der = serialization.load_pem_public_key(pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        want[(f[:-len(".pem")], "1")] = fpr_of_der(der)
    bad = []
    for region, env in regions:
        kms, aliases, keys = region_state(region, env)
        # exactly one alias per chain version, and no other alias under the prefix
        got = {}
        for alias, target in aliases.items():
            parts = alias[len("alias/keyplane/"):].rsplit("/v", 1)
            got[(parts[0], parts[1] if len(parts) == 2 else "?")] = (alias, target)
        if set(got) != set(want):
            bad.append("%s: aliases %s, want one per chain version %s"
                       % (region, sorted(aliases), sorted(want)))
        targets = [t for (_, t) in got.values()]
        if len(set(targets)) != len(targets):
            bad.append("%s: two aliases name one key" % region)
        for (name, version), (alias, target) in sorted(got.items()):
            fpr = want.get((name, version))
            meta, tags = keys.get(target, ({}, {}))
            if (meta.get("KeyState"), meta.get("Origin"), meta.get("KeySpec"),
                    meta.get("KeyUsage")) != ("Enabled", "EXTERNAL", "RSA_2048",
                                              "ENCRYPT_DECRYPT"):
                bad.append("%s: %s names key %s: %s %s %s %s" % (
                    region, alias, target, meta.get("KeyState"), meta.get("Origin"),
                    meta.get("KeySpec"), meta.get("KeyUsage")))
                continue
            if meta.get("ExpirationModel") != "KEY_MATERIAL_DOES_NOT_EXPIRE":
                bad.append("%s: %s: material expires (%s)"
                           % (region, alias, meta.get("ExpirationModel")))
            spki = kms.get_public_key(KeyId=target)["PublicKey"]
            if fpr_of_der(spki) != fpr:
                bad.append("%s: %s holds a key of fingerprint %s, the origin's is %s"
                           % (region, alias, fpr_of_der(spki), fpr))
            expect = {"keyplane-name": name, "keyplane-version": version,
                      "keyplane-fingerprint": fpr}
            if {t: tags.get(t) for t in TAGS} != expect or "keyplane-abandoned" in tags:
                bad.append("%s: %s: tags %s, want %s" % (region, alias, tags, expect))
        # Every other key is a claim that got no alias (a kill while CreateKey was answered, a
        # refused CreateAlias, a race's loser): tagged for a version of a chain, with that
        # version's fingerprint, and PendingImport: no material, nothing can use it.
        for kid, (meta, tags) in sorted(keys.items()):
            if kid in targets:
                continue
            v = (tags.get("keyplane-name"), tags.get("keyplane-version"))
            if v not in want or tags.get("keyplane-fingerprint") != want[v] or \
                    tags.get("keyplane-abandoned", "alias/keyplane/%s/v%s" % v) != \
                    "alias/keyplane/%s/v%s" % v:
                bad.append("%s: key %s without an alias has tags %s" % (region, kid, tags))
            if meta["KeyState"] != "PendingImport":
                bad.append("%s: key %s without an alias is %s, not PendingImport"
                           % (region, kid, meta["KeyState"]))
            try:
                kms.get_public_key(KeyId=kid)
                bad.append("%s: key %s without an alias answers GetPublicKey" % (region, kid))
            except kms.exceptions.KMSInvalidStateException:
                pass
            print("unclaimed %s %s %s v%s %s%s" % (
                region, kid, v[0], v[1], meta["KeyState"],
                " abandoned (%s)" % tags["keyplane-abandoned"]
                if "keyplane-abandoned" in tags else ""))
    for b in bad:
        print("FAIL:", b, file=sys.stderr)
    return not bad

ctl = [ControlClient(int(os.environ["AWS_%s_PORT" % env]), ca) for _, env in regions]
saved = [c.ok("GET", "faults").get("config") for c in ctl]
for c in ctl:
    c.set_faults({})
try:
    ok = pending(sys.argv[2]) if mode == "pending" else final(sys.argv[2])
finally:
    for c, cfg in zip(ctl, saved):
        c.set_faults({k: cfg[k] for k in ("latency_ms", "forbidden_ops") if cfg and k in cfg})
sys.exit(0 if ok is None or ok else 1)
PYEOF
kms_audit() { "$PY" "$T/kms_audit.py" "$@"; }

# started CHAIN OUT [CHAIN]: starts `keyplane apply [CHAIN]` in the background (its pid in $pid,
# its output in OUT) and returns once it has made CHAIN v1 in the origin: what follows are the
# imports.
started() {
    : >"$2"
    "$KP_BIN" $P apply ${3:-} >"$2" 2>&1 &
    pid=$!
    n=0
    until grep -q "create $1 v1 -> origin: done" "$2"; do
        kill -0 $pid 2>/dev/null || { cat "$2"; fail "apply ended before it made $1 v1"; }
        n=$((n + 1))
        [ $n -lt 2000 ] || { cat "$2"; fail "apply did not make $1 v1 in 20 s"; }
        sleep 0.01
    done
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The regions answer each request 40 ms late, so each step of an import (eleven KMS calls) takes
# long enough to be cut. Two chains applied whole first: w1 makes the wrapping keys, w2 gives D,
# how long an apply takes to import one chain into both regions once it has made it.
for r in east west; do $ACTL faults --dir "$AWSD" --name $r '{"latency_ms": 40}' >/dev/null; done
chain_block w1 >>"$T/policy.yaml"
expect_rc 0 $P apply
chain_block w2 >>"$T/policy.yaml"
started w2 "$T/apply.w2.out" w2
t0=$(now_ms)
wait $pid || { cat "$T/apply.w2.out"; fail "apply of w2"; }
D=$(($(now_ms) - t0))
echo "the imports of one chain took $D ms"
# Every round adds a chain and kills the apply that imports it at a seeded point between 0.05 D
# and 0.65 D after the chain is made (past that the keys are imported and checked): before its
# claim, during CreateKey or CreateAlias, while the offer is fetched, the key wrapped, imported.
# Most rounds apply their chain alone; every fifth applies the whole policy, so it also picks up
# (and may cut again) what earlier rounds left.
i=1
killed=0
mid=0
while [ $i -le "$ROUNDS" ]; do
    c=c$(printf %02d $i)
    chain_block $c >>"$T/policy.yaml"
    delay=$(awk -v s=$i -v d=$D \
        'BEGIN { srand(1700 + s); printf "%.3f", d * (0.05 + rand() * 0.6) / 1000 }')
    only=$c
    [ $((i % 5)) -ne 0 ] || only=
    started $c "$T/apply.$i.out" $only
    sleep "$delay"
    kill -9 $pid 2>/dev/null || true
    rc=0
    wait $pid 2>/dev/null || rc=$?
    # 137: the run died of the SIGKILL (one that had ended is not counted, even when unreaped)
    if [ $rc -eq 137 ]; then
        killed=$((killed + 1))
        states=$(kms_audit pending $c)
        # mid-import: the chain is claimed (its alias made) and its key still waits for material
        case "$states" in *PendingImport*) mid=$((mid + 1)) ;; esac
        echo "round $i: apply ${only:-(all)} killed ${delay}s into the imports: $c v1 is $states"
    else
        [ $rc -eq 0 ] || { cat "$T/apply.$i.out"; fail "round $i: apply exit $rc"; }
        echo "round $i: apply ${only:-(all)} ended by itself before ${delay}s"
    fi
    i=$((i + 1))
done
[ $killed -ge 15 ] || fail "only $killed of $ROUNDS runs were still running when killed"
[ $mid -ge 5 ] || fail "only $mid of $killed kills cut the import of their round's chain"
for r in east west; do $ACTL faults --dir "$AWSD" --name $r '{}' >/dev/null; done

# the reruns converge (bounded: a rerun finishes what the kills left, the next has nothing to do)
n=1
until "$KP_BIN" $P apply >"$T/rerun.out" 2>&1; do
    [ $n -lt 3 ] || { cat "$T/rerun.out"; fail "apply did not converge in 3 reruns"; }
    n=$((n + 1))
done
echo "converged in $n rerun(s)"
expect_rc 0 $P verify
expect_rc 0 $P apply
expect_in "$T/out" "nothing to do"

# A claim left without its alias on purpose: KMS refuses CreateAlias in us-east-1, as a kill
# while CreateKey is answered leaves it. The key claims no version; the rerun claims the version
# with a key of its own.
chain_block orphan >>"$T/policy.yaml"
$ACTL faults --dir "$AWSD" --name east '{"forbidden_ops": ["kms:CreateAlias"]}' >/dev/null
expect_rc 4 $P apply orphan
cat "$T/out" "$T/err" >"$T/both"
expect_in "$T/both" "is left without an alias (it claims no version)"
$ACTL faults --dir "$AWSD" --name east '{}' >/dev/null
expect_rc 0 $P apply orphan
expect_rc 0 $P verify orphan

# Two applies at once on a fresh chain, through two paths of one policy (no common lock): the
# alias decides which key is the version; the loser's key is tagged abandoned and the loser
# imports into the winner's key, or finds it imported and reports the copy already present. In
# odd rounds both runs also make the chain in the origin (one adopts the other's); in even
# rounds the origin has it already, so both reach KMS at once.
for r in east west; do $ACTL faults --dir "$AWSD" --name $r '{"latency_ms": 40}' >/dev/null; done
for round in 1 2 3 4; do
    if [ $((round % 2)) -eq 0 ]; then
        { cat "$T/policy.yaml"; echo "  race$round: {protector: {type: rsa, bits: 2048," \
            "origin: origin, exportable: true}, replicas: [origin]}"; } >"$T/origin-only.yaml"
        expect_rc 0 --policy "$T/origin-only.yaml" apply race$round
    fi
    chain_block race$round >>"$T/policy.yaml"
    cp "$T/policy.yaml" "$T/copy.yaml"
    "$KP_BIN" $P apply race$round >"$T/r1" 2>&1 &
    p1=$!
    "$KP_BIN" --policy "$T/copy.yaml" apply race$round >"$T/r2" 2>&1 &
    p2=$!
    rc1=0 rc2=0
    wait $p1 || rc1=$?
    wait $p2 || rc2=$?
    [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] ||
        { cat "$T/r1" "$T/r2"; fail "race $round: apply exit $rc1 and $rc2"; }
    ! grep -q "waiting for another keyplane run" "$T/r1" "$T/r2" ||
        fail "race $round: the runs were serialised, not raced"
    echo "race $round: both exit 0;" \
        "$(cat "$T/r1" "$T/r2" | grep -c "copy race$round v1 -> kms-.*already present" || true)" \
        "imports found made by the other run"
    expect_rc 0 $P verify race$round
done
for r in east west; do $ACTL faults --dir "$AWSD" --name $r '{}' >/dev/null; done
expect_rc 0 $P apply
expect_in "$T/out" "nothing to do"
expect_rc 0 $P verify

# The end state, seen through KMS itself
mkdir "$T/pub"
for c in $(sed -n 's/^  \([a-z0-9]*\):$/\1/p' "$T/policy.yaml"); do
    case $c in origin | kms-east | kms-west) continue ;; esac
    expect_rc 0 $P key public --instance origin --name "$c" --out "$T/pub/$c.pem"
done
kms_audit final "$T/pub" >"$T/orphans" || fail "KMS holds other keys than one per chain version"
cat "$T/orphans"
grep -q "^unclaimed us-east-1 [0-9a-f-]* orphan v1 PendingImport$" "$T/orphans" ||
    fail "the claim CreateAlias refused is not among the keys without an alias"
# `keyplane check` names exactly those keys, for a person to remove
expect_rc 0 $P check kms-east kms-west
sed -n 's|^ *ok *unclaimed key *arn:aws:kms:[^:]*:[0-9]*:key/\([0-9a-f-]*\) .*|\1|p' "$T/out" |
    sort >"$T/check.ids"
awk '{ print $3 }' "$T/orphans" | sort >"$T/audit.ids"
diff "$T/audit.ids" "$T/check.ids" >&2 || { cat "$T/out"; fail "check lists other unclaimed keys"; }
aws_no_bad_signatures
echo "ok: $killed of $ROUNDS runs killed ($mid mid-import), converged;" \
    "$(grep -c . "$T/orphans" || true) keys without an alias, each PendingImport" \
    "($(grep -c " race[0-9] v1 .* abandoned" "$T/orphans" || true) race losers)"
