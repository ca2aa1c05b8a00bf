#!/bin/sh
# lint.cppcheck: runs cppcheck over every C file of core/, plugins/ and providers/ as the build
# compiles it (BUILD_DIR/compile_commands.json): warnings, performance and portability, with the
# POSIX, GNU, OpenSSL and libcurl library configurations, jansson's macros (jansson.cfg) and the
# justified suppressions of cppcheck.supp. Exit status 1 on any finding.
# Usage: check_cppcheck.sh CPPCHECK SOURCE_DIR BUILD_DIR
set -eu
cppcheck=$1 src=$2 build=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$src/tests/lint/compile_db.py" db "$src" "$build/compile_commands.json" \
    >"$work/compile_commands.json"
jobs=$(nproc 2>/dev/null || echo 2)
"$cppcheck" --project="$work/compile_commands.json" -j "$jobs" --std=c11 -q \
    --enable=warning,performance,portability --inconclusive --inline-suppr \
    --library=posix --library=gnu --library=openssl --library=libcurl \
    --library="$src/tests/lint/jansson.cfg" \
    --suppressions-list="$src/tests/lint/cppcheck.supp" \
    --cppcheck-build-dir="$work" --error-exitcode=1 \
    --template='{file}:{line}:{column}: {severity} [{id}] {message}'
echo "lint.cppcheck: clean"
