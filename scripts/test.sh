#!/bin/sh
# Builds keyplane twice (release-with-debug-info, and ASan+UBSan) and runs the whole test suite
# in both with ctest: the release build's suite also holds the lint and memcheck stages
# (lint.clang_tidy, lint.cppcheck, valgrind.unit) and both replay the fuzz corpora
# (fuzz.*.replay). Then, with Clang, a short libFuzzer run of every fuzz target
# (tests/fuzz/soak.sh; KEYPLANE_FUZZ_SECONDS per target, default 30, 0 leaves it out).
# Usage: scripts/test.sh [BUILD_ROOT]   (default: ./build)   docs/testing.md says what each adds.
# Exit status is non-zero when anything fails.
set -eu
cd "$(dirname "$0")/.."
root=${1:-build}
jobs=$(nproc 2>/dev/null || echo 2)
gen=""
command -v ninja >/dev/null 2>&1 && gen="-G Ninja"

run_suite() {
    name=$1
    shift
    dir=$root/$name
    echo "== keyplane: configure and build ($name)"
    # shellcheck disable=SC2086
    cmake -S . -B "$dir" $gen -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$root/$name.configure.log" \
        || { cat "$root/$name.configure.log"; exit 1; }
    cmake --build "$dir" -j "$jobs"
    echo "== keyplane: test ($name)"
    (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

mkdir -p "$root"
# Sanitizers: abort on the first report, and report leaks. intercept_tls_get_addr=0: the
# __tls_get_addr interceptor of GCC 12's runtime (and clang 14's) takes a dynamic TLS block
# that malloc happened to place 16 bytes past a page boundary for a glibc 2.19 header, and
# LeakSanitizer's tracer then dies reading it at exit ("Tracer caught signal 11", about one
# run in a few hundred); fixed upstream in LLVM 17 (google/sanitizers#1409). The blocks are
# still scanned as heap reachable from each thread's static TLS.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}
case $ASAN_OPTIONS in
*intercept_tls_get_addr=*) ;;
*) ASAN_OPTIONS=$ASAN_OPTIONS:intercept_tls_get_addr=0 ;;
esac
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_suite asan -DKEYPLANE_SANITIZE=ON
run_suite release
fuzz_secs=${KEYPLANE_FUZZ_SECONDS:-30}
if [ "$fuzz_secs" -gt 0 ] && command -v clang >/dev/null 2>&1; then
    echo "== keyplane: libFuzzer, $fuzz_secs s per target"
    sh tests/fuzz/soak.sh -t "$fuzz_secs" -b "$root/fuzz"
fi
