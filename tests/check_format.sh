#!/bin/sh
# Fails when any C source or header differs from what clang-format (.clang-format) makes of it:
# in a git checkout the files git tracks or would add (untracked, not ignored) that exist in the
# working tree, elsewhere every one under core, providers, plugins and tests.
set -eu
cf=${1:-clang-format}
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' | sort -u |
        while IFS= read -r f; do [ -f "$f" ] && echo "$f"; done)
else
    files=$(find core providers plugins tests -name '*.[ch]')
fi
[ -n "$files" ] || { echo "no sources found" >&2; exit 1; }
# shellcheck disable=SC2086
"$cf" --dry-run --Werror $files
echo "clang-format: $(echo "$files" | wc -w) files formatted"
