#!/bin/sh
# Runs keyplane-conformance and judges its result for ctest.
# Usage: run_kit.sh [--expect TEST] [--expect-text TEXT] [--exit N] [--fresh PARAMS.yaml]
#                   KIT PLUGIN.so [KIT ARGS...]
# Without --expect (or with an empty one) the kit must pass (exit 0). With --expect TEST the
# plugin is a broken mock: the kit must exit 1 and print "FAIL TEST: ...", so a fault is not only
# caught but caught by the test meant to catch it. --expect-text: the output must also hold TEXT
# (the message an author reads). --exit N: the kit must exit N (a usage or params-file error).
# --fresh copies PARAMS.yaml into a new temporary directory and passes that copy, so relative
# paths in it (a store directory) are fresh for every run; the directory is removed afterwards.
set -u
expect=""
text=""
want_rc=""
fresh=""
while [ $# -gt 0 ]; do
    case $1 in
    --expect) expect=$2; shift 2 ;;
    --expect-text) text=$2; shift 2 ;;
    --exit) want_rc=$2; shift 2 ;;
    --fresh) fresh=$2; shift 2 ;;
    *) break ;;
    esac
done
kit=$1
shift
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-conf.XXXXXX")
trap 'rm -rf "$T"' EXIT
out=$T/out
if [ -n "$fresh" ]; then
    cp "$fresh" "$T/params.yaml"
    set -- "$@" --params "$T/params.yaml"
fi
start=$(date +%s%N)
"$kit" "$@" >"$out" 2>&1
rc=$?
end=$(date +%s%N)
cat "$out"
echo "# kit run time: $(((end - start) / 1000000)) ms, exit $rc"
if [ -n "$text" ] && ! grep -qF -- "$text" "$out"; then
    echo "run_kit.sh: the kit's output lacks: $text" >&2
    exit 1
fi
if [ -n "$want_rc" ]; then
    [ "$rc" -eq "$want_rc" ] && exit 0
    echo "run_kit.sh: want exit $want_rc from the kit, got $rc" >&2
    exit 1
fi
if [ -z "$expect" ]; then
    [ "$rc" -eq 0 ] && exit 0
    echo "run_kit.sh: the kit failed on a plugin that must pass (exit $rc)" >&2
    exit 1
fi
if [ "$rc" -ne 1 ]; then
    echo "run_kit.sh: want exit 1 from a broken plugin, got $rc" >&2
    exit 1
fi
if ! grep -q "^FAIL $expect: " "$out"; then
    echo "run_kit.sh: the kit failed, but not in test '$expect'" >&2
    exit 1
fi
exit 0
