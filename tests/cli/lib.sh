# Shared setup of the CLI tests (sourced). Needs KP_BIN (the built keyplane) and KP_SRC.
set -eu
: "${KP_BIN:?KP_BIN must name the keyplane binary}"
: "${KP_SRC:?KP_SRC must name the source tree}"
PY=${KP_PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
umask 077
# keyplane's journals and locks (the state directory) stay in the scratch directory, never in
# the user's ~/.local/state
KEYPLANE_STATE_DIR=$T/state
export KEYPLANE_STATE_DIR
# KP_TEST_PRELOAD: a shim every command of the test runs under (cli.store_links.openat2_*),
# which marks $T/preload.mark when it changed a call; preload_used checks that it did.
if [ -n "${KP_TEST_PRELOAD:-}" ]; then
    LD_PRELOAD=$KP_TEST_PRELOAD
    KP_TEST_OPENAT2_MARK=$T/preload.mark
    export LD_PRELOAD KP_TEST_OPENAT2_MARK
fi

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Runs keyplane, saving stdout/stderr to $T/out and $T/err and the exit code in $rc.
kp() {
    set +e
    "$KP_BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    if [ "$rc" -ge 128 ]; then
        cat "$T/err" >&2
        fail "keyplane $* died with signal $((rc - 128))"
    fi
}

expect_rc() {
    want=$1
    shift
    kp "$@"
    if [ "$rc" -ne "$want" ]; then
        echo "--- stdout" >&2; cat "$T/out" >&2; echo "--- stderr" >&2; cat "$T/err" >&2
        fail "keyplane $*: exit $rc, want $want"
    fi
}

# tamper_envelope IN OUT BYTE MASK: OUT is envelope IN with byte BYTE of its first wrap XORed
# with MASK (a ciphertext no replica can unwrap).
tamper_envelope() {
    "$PY" -c '
import base64, json, sys
e = json.load(open(sys.argv[1]))
w = bytearray(base64.b64decode(e["wraps"][0]["w"]))
w[int(sys.argv[3])] ^= int(sys.argv[4], 0)
e["wraps"][0]["w"] = base64.b64encode(bytes(w)).decode()
open(sys.argv[2], "w").write(json.dumps(e))
' "$@"
}

expect_in() {
    file=$1
    shift
    grep -F -q -- "$*" "$file" || { cat "$file" >&2; fail "'$*' not in $file"; }
}

# init_stores POLICY: 'keyplane init' of POLICY's stores that are made rather than found (the
# file stores), as an operator runs it once before the first apply: nothing else creates one, and
# a store that is not initialised is unreachable.
init_stores() {
    expect_rc 0 --policy "$1" init
}

# file_providers NAME...: the head of a policy (its version and providers) with one file store
# per NAME in $T/NAME, its passphrase from KP_TEST_PASS (a fresh random one when unset) and a
# cheap KDF; the caller appends its chains. Call it in the current shell (`{ ...; } >FILE`, not
# `$(...)`), so that KP_TEST_PASS stays set for the commands that follow.
file_providers() {
    : "${KP_TEST_PASS:=$(openssl rand -hex 24)}"
    export KP_TEST_PASS
    echo "version: 1"
    echo "providers:"
    for n in "$@"; do
        echo "  $n: {plugin: file, path: $T/$n, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}"
    done
}

# file_chain CHAIN ALGORITHM NAME...: a policy with one file store per NAME (file_providers) and
# chain CHAIN (RSA-2048, exportable) born in the first NAME and replicated to all of them; more
# keys of that chain may follow on the next lines (4 spaces in). Same shell rule as above.
file_chain() {
    chain=$1
    alg=$2
    shift 2
    file_providers "$@"
    echo "chains:"
    echo "  $chain:"
    echo "    protector: {type: rsa, bits: 2048, origin: $1, exportable: true}"
    echo "    replicas: [$(echo "$@" | sed 's/ /, /g')]"
    echo "    algorithm: $alg"
}

# sqlserver_policy_head: the head of the SQL Server tests' policy (cli.sqlserver*): file stores
# west, east, bucket and pw (file_providers) and chain dbm, whose certificates are imported, born
# in west, replicated to east, with a copy in the secret replica bucket and its passwords in pw.
# More keys of dbm may follow (4 spaces in), then more chains (2 spaces in). Same shell rule as
# file_providers.
sqlserver_policy_head() {
    file_providers west east bucket pw
    cat <<YAML
chains:
  dbm:
    protector: {type: rsa, bits: 2048, origin: west, exportable: true}
    replicas: [east]
    secret_replicas: [bucket]
    secrets: pw
    certificate: {}
YAML
}

# A two-region file policy in $T/policy.yaml; passphrase from KP_TEST_PASS.
two_regions() {
    KP_TEST_PASS=$(openssl rand -hex 24)
    export KP_TEST_PASS
    cat >"$T/policy.yaml" <<YAML
version: 1
providers:
  region-a: {plugin: file, path: $T/a, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
  region-b: {plugin: file, path: $T/b, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
chains:
  tde:
    protector: {type: rsa, bits: ${1:-2048}, origin: region-a, exportable: true}
    replicas: [region-a, region-b]
    algorithm: ${2:-RSA-OAEP-256}
YAML
}

# two_regions with a yearly rotation, its stores made and chain tde applied (v1 in both regions);
# P holds the --policy option for the commands that follow.
two_regions_applied() {
    two_regions
    P="--policy $T/policy.yaml"
    echo "    rotation: {every: 365d}" >>"$T/policy.yaml"
    init_stores "$T/policy.yaml"
    expect_rc 0 $P apply
}

# preload_used: under KP_TEST_PRELOAD, fails unless the shim changed at least one call.
preload_used() {
    [ -z "${KP_TEST_PRELOAD:-}" ] || [ -s "$T/preload.mark" ] ||
        fail "the shim $KP_TEST_PRELOAD changed no call: the path it stands in for did not run"
}
