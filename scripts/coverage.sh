#!/bin/sh
# Line coverage of core/ and plugins/ by the test suite (docs/testing.md): builds keyplane with
# gcc's --coverage in BUILD_DIR (default build/coverage), runs ctest there (all tests but the slow
# model tests and the lint and memcheck ones, which add no coverage), and prints the line coverage
# of each directory of core/ and plugins/ and of both in total, from gcovr's JSON summary.
# A full HTML report goes to BUILD_DIR/coverage.html.
# Usage: scripts/coverage.sh [BUILD_DIR]   (needs gcovr: scripts/setup-debian.sh installs it)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build/coverage}
jobs=$(nproc 2>/dev/null || echo 2)
gen=""
command -v ninja >/dev/null 2>&1 && gen="-G Ninja"
command -v gcovr >/dev/null 2>&1 || { echo "coverage.sh: gcovr is not installed" >&2; exit 1; }

# shellcheck disable=SC2086
CC=gcc CFLAGS="--coverage -O0" LDFLAGS=--coverage cmake -S . -B "$build" $gen \
    -DCMAKE_BUILD_TYPE=Debug >"$build.configure.log" || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$jobs"
find "$build" -name '*.gcda' -delete
# A failing test still leaves its coverage: report it, then fail at the end.
rc=0
(cd "$build" && ctest -j "$jobs" -E '^(model\.|lint\.|valgrind\.)' --output-on-failure) || rc=1
gcovr -r . --object-directory "$build" -j "$jobs" --filter 'core/' --filter 'plugins/' \
    --json-summary "$build/coverage.json" --html-details "$build/coverage.html" >/dev/null
/usr/bin/python3 - "$build/coverage.json" <<'PY'
import collections, json, sys
files = json.load(open(sys.argv[1]))["files"]
dirs = collections.defaultdict(lambda: [0, 0])
for f in files:
    parts = f["filename"].split("/")
    key = "/".join(parts[:3] if parts[0] == "core" and parts[1] == "src" else parts[:2])
    for k in (key, parts[0] + "/", "core/ + plugins/"):
        dirs[k][0] += f["line_covered"]
        dirs[k][1] += f["line_total"]
print("%-28s %8s %8s %7s" % ("directory", "covered", "lines", "cover"))
for k in sorted(dirs, key=lambda k: (k == "core/ + plugins/", not k.endswith("/"), k)):
    c, t = dirs[k]
    print("%-28s %8d %8d %6.1f%%" % (k, c, t, 100.0 * c / t if t else 0.0))
PY
echo "coverage.sh: HTML report in $build/coverage.html"
exit $rc
