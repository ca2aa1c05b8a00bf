#!/bin/sh
# docs/abi.md and the ABI headers agree: every function id, upcall id and status code defined in
# providers/include/keyplane/{provider,status}.h has its row in docs/abi.md with the same number,
# and abi.md names no id the header does not define. Usage: check_abi_doc.sh SOURCE_DIR
set -u
src=${1:?usage: check_abi_doc.sh SOURCE_DIR}
hdr=$src/providers/include/keyplane/provider.h
status=$src/providers/include/keyplane/status.h
doc=$src/docs/abi.md
fail=0
ids=$(sed -n 's/^#define \(KP_\(FN\|UP\)_[A-Z_]*\) \([0-9][0-9]*\).*/\1 \3/p' "$hdr")
[ -n "$ids" ] || { echo "FAIL: no ids found in $hdr"; exit 1; }
n=0
while read -r name num; do
    n=$((n + 1))
    # a table row: | <num> | `NAME` |   or   | <num> | <since> | `NAME` |
    if ! grep -E -q "^\| *$num *\|( *[0-9.]+ *\|)? *\`$name\`" "$doc"; then
        echo "FAIL: $name ($num) has no row '| $num | \`$name\`' in docs/abi.md"
        fail=1
    fi
done <<EOT
$ids
EOT
codes=$(sed -n 's/^ *\(KP_[A-Z_]*\) = \([0-9][0-9]*\),.*/\1 \2/p' "$status" | grep -v COUNT_)
while read -r name num; do
    n=$((n + 1))
    if ! grep -E -q "^\| *$num *\| *\`$name\`" "$doc"; then
        echo "FAIL: status $name ($num) has no row in docs/abi.md's status table"
        fail=1
    fi
done <<EOT
$codes
EOT
# and the other way: every KP_FN_/KP_UP_ the doc's tables name exists in the header
for name in $(grep -E -o '^\| *[0-9]+ *\|( *[0-9.]+ *\|)? *`KP_(FN|UP)_[A-Z_]+`' "$doc" |
    grep -E -o 'KP_(FN|UP)_[A-Z_]+'); do
    grep -q "^#define $name " "$hdr" || { echo "FAIL: docs/abi.md names $name, the header does not"; fail=1; }
done
[ "$fail" -eq 0 ] && echo "ok: $n ids and codes of the headers are in docs/abi.md"
exit "$fail"
