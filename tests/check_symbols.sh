#!/bin/sh
# The symbol promises of the ABI, checked on the built objects (test abi.exported-symbols):
#  - libkeyplane exports the kp_* API only: no internal kp__* and none of the provider kit's
#    symbols. It links keyplane-kit-codec statically; re-exporting the kit would make the kit part
#    of libkeyplane's ABI and let plugins bind to the core's copy instead of their own.
#  - every plugin exports exactly kp_plugin_init, under the ELF version node KEYPLANE_PROVIDER_1
#    (the loader resolves it with dlvsym; anything else exported can interpose on the core's or
#    another plugin's symbols).
#
# usage: check_symbols.sh --lib LIBKEYPLANE [--kit ARCHIVE]... [--plugin SO]...
#                         [--scan DIR]... [--except NAME]...
#   --kit     a kit archive whose global symbols libkeyplane must not export
#   --plugin  a plugin that must be there and pass
#   --scan    every ELF *.so below DIR is a plugin that must pass, but those named by --except
#             (file name without .so: mock plugins that break the rule on purpose)
set -eu
VERSION_NODE=KEYPLANE_PROVIDER_1

lib='' kits='' plugins='' scans='' excepts=''
while [ $# -gt 0 ]; do
    case $1 in
    --lib) lib=$2 ;;
    --kit) kits="$kits $2" ;;
    --plugin)
        if [ -z "$2" ]; then
            echo "SKIP: a plugin to check was not built"
            exit 0
        fi
        plugins="$plugins $2"
        ;;
    --scan) scans="$scans $2" ;;
    --except) excepts="$excepts $2" ;;
    *)
        echo "usage: check_symbols.sh --lib LIB [--kit A]... [--plugin SO]... [--scan DIR]..." >&2
        exit 2
        ;;
    esac
    shift 2
done
[ -n "$lib" ] || { echo "check_symbols.sh: --lib is required" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-symbols-XXXXXX")
trap 'rm -rf "$T"' EXIT
failed=0

# Defined dynamic symbols of an ELF object, one "name@@version" (or "name") per line. The
# version definitions themselves (ABS symbols named after their node) are left out.
exports() {
    readelf -W --dyn-syms "$1" |
        awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && $5 != "LOCAL" && !($7 == "ABS" && $8 !~ /@/) {print $8}'
}

# libkeyplane --------------------------------------------------------------------------------
[ -f "$lib" ] || { echo "FAIL: $lib does not exist" >&2; exit 1; }
exports "$lib" | sed 's/@.*//' | sort -u >"$T/lib"
[ -s "$T/lib" ] || { echo "FAIL: $(basename "$lib") exports nothing" >&2; exit 1; }
bad=$(grep -v '^kp_' "$T/lib" || true)
if [ -n "$bad" ]; then
    echo "FAIL: $(basename "$lib") exports symbols outside kp_*: $(echo "$bad" | tr '\n' ' ')" >&2
    failed=1
fi
internal=$(grep '^kp__' "$T/lib" || true)
if [ -n "$internal" ]; then
    echo "FAIL: $(basename "$lib") exports internal kp__ symbols: $(echo "$internal" | tr '\n' ' ')" >&2
    failed=1
fi
for a in $kits; do
    nm -g --defined-only "$a" | awk 'NF == 3 && $2 ~ /[TDBRVW]/ {print $3}' | sort -u >"$T/kit"
    # An empty list would make the comparison pass without checking anything.
    [ -s "$T/kit" ] || { echo "FAIL: no global symbols in $a" >&2; failed=1; continue; }
    both=$(comm -12 "$T/lib" "$T/kit")
    if [ -n "$both" ]; then
        echo "FAIL: $(basename "$lib") re-exports the kit ($(basename "$a")): $(echo "$both" | tr '\n' ' ')" >&2
        failed=1
    fi
done

# plugins --------------------------------------------------------------------------------------
is_elf() {
    [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]
}

nplugins=0
check_plugin() {
    nplugins=$((nplugins + 1))
    got=$(exports "$1" | tr '\n' ' ' | sed 's/ $//')
    if [ "$got" != "kp_plugin_init@@$VERSION_NODE" ]; then
        case $got in
        "") why="exports nothing (no kp_plugin_init)" ;;
        kp_plugin_init) why="exports kp_plugin_init not under the version node $VERSION_NODE" ;;
        *) why="exports '$got', not only kp_plugin_init@@$VERSION_NODE" ;;
        esac
        echo "FAIL: plugin $1 $why" >&2
        failed=1
    fi
}

for p in $plugins; do
    [ -f "$p" ] || { echo "FAIL: plugin $p was not built" >&2; failed=1; continue; }
    check_plugin "$p"
done
for d in $scans; do
    [ -d "$d" ] || { echo "FAIL: $d does not exist" >&2; failed=1; continue; }
    find "$d" -name '*.so' -type f | sort >"$T/found"
    while read -r p; do
        name=$(basename "$p" .so)
        case " $excepts " in *" $name "*) continue ;; esac
        case " $plugins " in *" $p "*) continue ;; esac
        is_elf "$p" || continue # the loader tests' not-elf.so
        check_plugin "$p"
    done <"$T/found"
done
[ "$failed" -eq 0 ] || exit 1
echo "exported symbols: $(wc -l <"$T/lib") kp_* in $(basename "$lib"), none of the kit;" \
    "$nplugins plugins export only kp_plugin_init@@$VERSION_NODE"
