#!/bin/sh
# Two `keyplane apply` runs started together against a SoftHSM origin (issue 11, finding 2),
# through two paths of one policy: a symlink (the lock is taken on the canonical path, so the
# runs are serialised) and a copy at another path (no common lock: only the pkcs11 plugin's
# convergence keeps the token at one key per version). After every round the token holds
# exactly one key pair labelled kp:tde/v1 (listed with pkcs11-tool, outside keyplane), every
# store's v1 has one fingerprint, and wrap and unwrap work through every store.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/softhsm.sh"
command -v pkcs11-tool >/dev/null || fail "pkcs11-tool not found (install opensc)"
ROUNDS=${KP_RACE_ROUNDS:-7}

# v1_labels: how many objects of each class the token holds labelled kp:tde/v1, as
# "private public" (pkcs11-tool prints each object's class line, then its label line).
v1_labels() {
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label escrow --login --pin "$HSM_PIN" \
        --list-objects 2>/dev/null | awk '
        /^[A-Za-z]+ Key Object/ { cls = $1 }
        /^[^ ]/ && !/Key Object/ { cls = "" }
        /^ *label: *kp:tde\/v1$/ { n[cls]++ }
        END { printf "%d %d\n", n["Private"], n["Public"] }'
}

one_round() { # one_round KIND ROUND: KIND link or copy names the second run's policy path
    rm -rf "$T/tokens" "$T/west" "$T/east" "$KEYPLANE_STATE_DIR" "$T/link.yaml" "$T/copy.yaml"
    mkdir -p "$T/tokens"
    hsm_and_regions 246135
    hsm_tde_chain
    init_stores "$T/policy.yaml"
    if [ "$1" = link ]; then
        ln -s policy.yaml "$T/link.yaml"
        second=$T/link.yaml
    else
        cp "$T/policy.yaml" "$T/copy.yaml"
        second=$T/copy.yaml
    fi
    "$KP_BIN" --policy "$T/policy.yaml" apply >"$T/a1" 2>&1 &
    p1=$!
    "$KP_BIN" --policy "$second" apply >"$T/a2" 2>&1 &
    p2=$!
    rc1=0 rc2=0
    wait $p1 || rc1=$?
    wait $p2 || rc2=$?
    if [ "$1" = link ]; then # serialised: both runs succeed
        [ $rc1 -eq 0 ] || { cat "$T/a1"; fail "$1 round $2: first apply exit $rc1"; }
        [ $rc2 -eq 0 ] || { cat "$T/a2"; fail "$1 round $2: second apply exit $rc2"; }
        grep -q 'waiting for another keyplane run' "$T/a1" "$T/a2" ||
            grep -q 'nothing to do' "$T/a1" "$T/a2" ||
            { cat "$T/a1" "$T/a2"; fail "$1 round $2: the runs were not serialised"; }
    fi
    [ $rc1 -lt 128 ] && [ $rc2 -lt 128 ] || fail "$1 round $2: an apply died ($rc1, $rc2)"
    labels=$(v1_labels)
    [ "$labels" = "1 1" ] || {
        cat "$T/a1" "$T/a2"
        fail "$1 round $2: token holds $labels private/public objects labelled kp:tde/v1, want 1 1"
    }
    # Whatever a run left undone (a copy that lost to the other run), a third run completes.
    "$KP_BIN" --policy "$T/policy.yaml" apply >"$T/a3" 2>&1 || {
        cat "$T/a1" "$T/a2" "$T/a3"
        fail "$1 round $2: a third apply did not converge"
    }
    expect_rc 0 --policy "$T/policy.yaml" key list --name tde --json
    fprs=$("$PY" -c '
import json, sys
keys = [k for k in json.load(open(sys.argv[1]))["keys"] if k["version"] == 1]
print(len({k["instance"] for k in keys}), len({k["fingerprint"] for k in keys}))' "$T/out")
    [ "$fprs" = "3 1" ] || {
        cat "$T/out"
        fail "$1 round $2: v1 in (stores, fingerprints) = ($fprs), want (3 1)"
    }
    expect_rc 0 --policy "$T/policy.yaml" verify
    openssl rand 32 >"$T/dek"
    expect_rc 0 --policy "$T/policy.yaml" wrap --chain tde --dek "file:$T/dek" --out "$T/env"
    for r in hsm west east; do
        expect_rc 0 --policy "$T/policy.yaml" unwrap --replica $r --in "$T/env" --out "$T/back"
        cmp -s "$T/dek" "$T/back" || fail "$1 round $2: $r unwrapped another DEK"
    done
    [ "$(v1_labels)" = "1 1" ] || fail "$1 round $2: kp:tde/v1 objects changed after the checks"
}

i=1
while [ $i -le "$ROUNDS" ]; do
    one_round link $i
    one_round copy $i
    i=$((i + 1))
done
echo "ok: $ROUNDS rounds each of two concurrent applies through a symlink and a copy: one key per version"
