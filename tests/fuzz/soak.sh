#!/bin/sh
# The fuzz soak (tests/fuzz/README.md): builds the libFuzzer targets with Clang, the whole tree
# instrumented (CFLAGS=-fsanitize=fuzzer-no-link, ASan+UBSan), and runs each target for a while on a
# scratch copy of its checked-in corpus, then prints the executions of each. Exit status 1 when a
# target found something: its crash-*/leak-*/timeout-*/oom-* input is left in the work directory.
#
# Usage: tests/fuzz/soak.sh [-t SECONDS] [-b BUILD_DIR] [-w WORK_DIR] [TARGET...]
#   -t  seconds per target (default 300)     -b  build directory (default build/fuzz)
#   -w  scratch directory for corpora and findings (default BUILD_DIR/soak)
#   TARGET  policy envelope state filestore akv pvk cert (default: all)
# Files of the corpus named crash_* are left out of the run's seeds: they are kept crashes the
# replay tests hold, not starting points (an unfixed one would stop the run at once).
set -eu
cd "$(dirname "$0")/../.."
secs=300
build=build/fuzz
work=
while getopts t:b:w: opt; do
    case $opt in
    t) secs=$OPTARG ;;
    b) build=$OPTARG ;;
    w) work=$OPTARG ;;
    *) echo "usage: $0 [-t SECONDS] [-b BUILD_DIR] [-w WORK_DIR] [TARGET...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
targets=${*:-policy envelope state filestore akv pvk cert sigv4 backup}
work=${work:-$build/soak}
src=$(pwd)

if [ ! -f "$build/build.ninja" ]; then
    CC=clang CFLAGS=-fsanitize=fuzzer-no-link cmake -S . -B "$build" -G Ninja \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEYPLANE_SANITIZE=ON >"$build.configure.log" \
        || { cat "$build.configure.log"; exit 1; }
fi
bins=
for t in $targets; do bins="$bins fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$build" --target $bins file-plugin azure-keyvault-plugin

# intercept_tls_get_addr=0: see scripts/test.sh.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
case $ASAN_OPTIONS in
*intercept_tls_get_addr=*) ;;
*) ASAN_OPTIONS=$ASAN_OPTIONS:intercept_tls_get_addr=0 ;;
esac
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$src/tests/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export KP_FUZZ_PLUGIN_DIR=$src/$build/lib/keyplane/plugins
failed=0
summary=
for t in $targets; do
    case $t in
    akv) maxlen=8192 ;;
    envelope) maxlen=70000 ;; # past KP_ENVELOPE_MAX (64 KiB), to reach its refusal
    cert) maxlen=17000 ;;     # past KP_CERT_MAX (16 KiB)
    *) maxlen=65537 ;;        # 64 KiB, the store files' and a bomb's size, and one selector byte
    esac
    dir=$work/$t
    rm -rf "$dir"
    mkdir -p "$dir/corpus"
    for f in "tests/fuzz/corpus/$t"/*; do
        case $(basename "$f") in crash_*) ;; *) cp "$f" "$dir/corpus/" ;; esac
    done
    echo "== fuzz_$t: $secs s"
    # -timeout: a file store header may ask for 10^7 PBKDF2 rounds (seconds under ASan).
    if (cd "$dir" && "$src/$build/bin/fuzz_$t" -max_total_time="$secs" -max_len="$maxlen" \
        -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 corpus >log 2>&1); then
        res=ok
    else
        res="FOUND (see $dir/log and the crash-*/leak-* file there)"
        failed=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    summary="$summary
fuzz_$t: ${runs:-?} executions in $secs s: $res"
done
echo "== fuzz soak:$summary"
exit $failed
