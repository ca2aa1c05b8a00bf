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
n=0
# rows LIST SINCE KIND: every "NAME NUM" line of LIST has its table row in the doc,
# | NUM | `NAME` |, with a column "since" between them where SINCE is "( *[0-9.]+ *\|)?".
rows() {
    while read -r name num; do
        n=$((n + 1))
        if ! grep -E -q "^\| *$num *\|$2 *\`$name\`" "$doc"; then
            echo "FAIL: $3 $name ($num) has no row '| $num | \`$name\`' in docs/abi.md"
            fail=1
        fi
    done <<EOT
$1
EOT
}
ids=$(sed -n 's/^#define \(KP_\(FN\|UP\)_[A-Z_]*\) \([0-9][0-9]*\).*/\1 \3/p' "$hdr")
[ -n "$ids" ] || { echo "FAIL: no ids found in $hdr"; exit 1; }
rows "$ids" "( *[0-9.]+ *\|)?" id
codes=$(sed -n 's/^ *\(KP_[A-Z_]*\) = \([0-9][0-9]*\),.*/\1 \2/p' "$status" | grep -v COUNT_)
rows "$codes" "" status
# and the other way: every KP_FN_/KP_UP_ the doc's tables name exists in the header
for name in $(grep -E -o '^\| *[0-9]+ *\|( *[0-9.]+ *\|)? *`KP_(FN|UP)_[A-Z_]+`' "$doc" |
    grep -E -o 'KP_(FN|UP)_[A-Z_]+'); do
    grep -q "^#define $name " "$hdr" || { echo "FAIL: docs/abi.md names $name, the header does not"; fail=1; }
done
[ "$fail" -eq 0 ] && echo "ok: $n ids and codes of the headers are in docs/abi.md"
exit "$fail"
