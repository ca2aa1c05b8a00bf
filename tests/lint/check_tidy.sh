#!/bin/sh
# lint.clang_tidy: runs clang-tidy with the repository's .clang-tidy over every C file of core/,
# plugins/ and providers/ as the build compiles it (BUILD_DIR/compile_commands.json), in
# parallel. Prints each finding; exit status 1 when there is one (WarningsAsErrors: '*').
# Usage: check_tidy.sh CLANG_TIDY SOURCE_DIR BUILD_DIR
set -eu
tidy=$1 src=$2 build=$3
list=$(mktemp)
out=$(mktemp)
trap 'rm -f "$list" "$out"' EXIT
/usr/bin/python3 "$src/tests/lint/compile_db.py" files "$src" "$build/compile_commands.json" >"$list"
jobs=$(nproc 2>/dev/null || echo 2)
echo "lint.clang_tidy: $(wc -l <"$list") files, $jobs jobs"
rc=0
xargs -P "$jobs" -n 4 "$tidy" -p "$build" --quiet <"$list" >"$out" 2>&1 || rc=1
# clang-tidy prints "N warnings generated" for suppressed system-header warnings: not findings.
grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^$' "$out" || true
if [ $rc -ne 0 ]; then
    echo "lint.clang_tidy: findings above (.clang-tidy says which checks run and why)"
    exit 1
fi
echo "lint.clang_tidy: clean"
