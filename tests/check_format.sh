#!/bin/sh
# Fails when any C source or header differs from what clang-format (.clang-format) makes of it.
set -eu
cf=${1:-clang-format}
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find core providers plugins tests -name '*.[ch]')
[ -n "$files" ] || { echo "no sources found" >&2; exit 1; }
# shellcheck disable=SC2086
"$cf" --dry-run --Werror $files
echo "clang-format: $(echo "$files" | wc -w) files formatted"
