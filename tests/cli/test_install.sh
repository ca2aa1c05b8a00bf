#!/bin/sh
# `cmake --install` lays out libkeyplane and the plugin SDK: headers (the kit's too), the library,
# the kit archives, the three plugins, pkg-config files, the CMake package, the export map and
# keyplane-conformance, the keyplane(1) man page and the bash completion, and nothing else; the man
# page renders without a warning (groff, or man --warnings), the completion completes commands. The layout is relocatable: the prefix is moved after
# installing and every check runs on the moved copy. The installed keyplane runs without
# LD_LIBRARY_PATH; programs build against the library and the kit with pkg-config and with
# find_package(keyplane); providers/template, copied as a plugin author would, builds out of tree
# with only pkg-config (its Makefile) and again with only the CMake package (its CMakeLists.txt),
# loads in the installed keyplane, and passes the installed keyplane-conformance.
. "$(dirname "$0")/lib.sh"
: "${KP_BUILD_DIR:?}"
unset LD_LIBRARY_PATH # nothing below may lean on it
unset CMAKE_PREFIX_PATH PKG_CONFIG_PATH

stage=$T/stage
prefix=$T/prefix
cmake --install "$KP_BUILD_DIR" --prefix "$stage" >"$T/install.log" 2>&1 ||
    { cat "$T/install.log"; fail "install"; }
mv "$stage" "$prefix" # relocated: nothing may remember $stage
libdir=$(cd "$prefix" && ls -d lib* | head -1)
plugindir=$prefix/$libdir/keyplane/plugins
conformance=
same() { [ -e "$1" ] && [ "$(readlink -f "$1")" = "$(readlink -f "$2")" ]; }
[ -x "$KP_BUILD_DIR/bin/keyplane-conformance" ] && conformance=$prefix/bin/keyplane-conformance

# --- Every file that must be there, and nothing else ------------------------------------------
need() {
    [ -e "$prefix/$1" ] || fail "not installed: $1"
}
for h in "$KP_SRC"/core/include/keyplane/*.h "$KP_SRC"/providers/include/keyplane/*.h; do
    need "include/keyplane/$(basename "$h")"
    cmp -s "$h" "$prefix/include/keyplane/$(basename "$h")" || fail "installed $(basename "$h") differs"
done
for h in "$KP_SRC"/providers/kit/include/keyplane/kit/*.h; do
    need "include/keyplane/kit/$(basename "$h")"
    cmp -s "$h" "$prefix/include/keyplane/kit/$(basename "$h")" || fail "installed kit/$(basename "$h") differs"
done
for f in bin/keyplane "$libdir/libkeyplane.so" "$libdir/libkeyplane.so.0" \
    "$libdir/libkeyplane-kit-codec.a" "$libdir/libkeyplane-kit-http.a" \
    "$libdir/keyplane/plugins/file.so" "$libdir/keyplane/plugins/pkcs11.so" \
    "$libdir/keyplane/plugins/azure-keyvault.so" "$libdir/keyplane/plugins/aws.so" \
    "$libdir/pkgconfig/keyplane.pc" "$libdir/pkgconfig/keyplane-provider.pc" \
    "$libdir/pkgconfig/keyplane-kit-codec.pc" "$libdir/pkgconfig/keyplane-kit-http.pc" \
    "$libdir/cmake/keyplane/keyplane-config.cmake" \
    "$libdir/cmake/keyplane/keyplane-config-version.cmake" \
    "$libdir/cmake/keyplane/keyplane-targets.cmake" \
    "$libdir/cmake/keyplane/keyplane-plugin.cmake" share/keyplane/plugin.map \
    share/man/man1/keyplane.1 share/bash-completion/completions/keyplane; do
    need "$f"
done
[ -z "$conformance" ] || need bin/keyplane-conformance
cmp -s "$KP_SRC/providers/plugin.map" "$prefix/share/keyplane/plugin.map" || fail "plugin.map differs"
(cd "$prefix" && find . ! -type d | sed 's|^\./||' | sort) >"$T/installed"
while read -r f; do
    case $f in
    bin/keyplane | bin/keyplane-conformance | include/keyplane/*.h) ;; # kit/*.h too
    "$libdir"/libkeyplane.so | "$libdir"/libkeyplane.so.* | "$libdir"/libkeyplane-kit-*.a) ;;
    "$libdir"/keyplane/plugins/file.so | "$libdir"/keyplane/plugins/pkcs11.so) ;;
    "$libdir"/keyplane/plugins/azure-keyvault.so | "$libdir"/keyplane/plugins/aws.so) ;;
    "$libdir"/pkgconfig/keyplane*.pc | "$libdir"/cmake/keyplane/*.cmake | share/keyplane/plugin.map) ;;
    share/man/man1/keyplane.1 | share/bash-completion/completions/keyplane) ;;
    *) fail "installed but not part of the install: $f (a test plugin or build artefact?)" ;;
    esac
done <"$T/installed"

# --- The man page renders cleanly; the completion completes ------------------------------------
cmp -s "$KP_SRC/docs/man/keyplane.1" "$prefix/share/man/man1/keyplane.1" || fail "keyplane.1 differs"
if command -v groff >/dev/null 2>&1; then
    groff -man -z -ww "$prefix/share/man/man1/keyplane.1" >"$T/groff.err" 2>&1 || true
    [ ! -s "$T/groff.err" ] || { cat "$T/groff.err"; fail "groff warns about keyplane.1"; }
fi
if command -v man >/dev/null 2>&1; then
    MANWIDTH=80 man --warnings -l "$prefix/share/man/man1/keyplane.1" >"$T/man.out" 2>"$T/man.err" ||
        { cat "$T/man.err"; fail "man -l keyplane.1"; }
    [ ! -s "$T/man.err" ] || { cat "$T/man.err"; fail "man warns about keyplane.1"; }
    grep -Eq '^ *keyplane +restore +CHAIN +--to +INSTANCE' "$T/man.out" || fail "keyplane.1: no restore synopsis"
fi
[ "$(bash -c '. "$1"; COMP_WORDS=(keyplane res); COMP_CWORD=1; _keyplane; echo "${COMPREPLY[*]}"' \
    sh "$prefix/share/bash-completion/completions/keyplane")" = "restore" ] ||
    fail "the installed completion does not complete 'keyplane res'"

# --- The installed keyplane runs from anywhere, without LD_LIBRARY_PATH -----------------------
readelf -d "$prefix/bin/keyplane" | grep -E 'R(UN)?PATH' >"$T/rpath" || fail "keyplane has no RUNPATH"
grep -qF "\$ORIGIN/" "$T/rpath" || fail "keyplane's RUNPATH is not relative: $(cat "$T/rpath")"
grep -q "$KP_BUILD_DIR" "$T/rpath" && fail "keyplane's RUNPATH names the build tree"
so=$(ldd "$prefix/bin/keyplane" | awk '$1 == "libkeyplane.so.0" {print $3}')
same "$so" "$prefix/$libdir/libkeyplane.so.0" ||
    fail "the installed keyplane finds libkeyplane at '$so', not in $prefix/$libdir"
# shellcheck disable=SC2034 # lib.sh's kp runs it
KP_BIN=$prefix/bin/keyplane
expect_rc 0 --version
expect_in "$T/out" "provider ABI 1.6"
expect_rc 0 plugins --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
names = sorted(p["name"] for p in d["plugins"])
assert names == ["aws", "azure-keyvault", "file", "pkcs11"], d
assert d["refused"] == [], d["refused"]
assert all(p["path"].startswith(sys.argv[2] + "/") for p in d["plugins"]), d
' "$T/out" "$plugindir"

# --- The library and the kit through pkg-config -----------------------------------------------
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
same "$(pkg-config --variable=exportmap keyplane-provider)" "$prefix/share/keyplane/plugin.map" ||
    fail "keyplane-provider.pc: exportmap is not the installed map"
same "$(pkg-config --variable=plugindir keyplane-provider)" "$plugindir" ||
    fail "keyplane-provider.pc: plugindir is not the installed plugin directory"
libs=$(pkg-config --libs keyplane-kit-http)
for l in -lkeyplane-kit-http -lkeyplane-kit-codec -lcurl -lcrypto; do
    case " $libs " in *" $l "*) ;; *) fail "pkg-config --libs keyplane-kit-http lacks $l: $libs" ;; esac
done
cat >"$T/app.c" <<'C'
#include <keyplane/keyplane.h>
#include <stdio.h>
int main(void)
{
    kp_ctx *ctx = NULL;
    if (kp_ctx_new(&ctx) != KP_OK)
        return 1;
    printf("%s %s\n", kp_version(), kp_strerror(KP_ERR_NOT_FOUND));
    kp_ctx_free(ctx);
    return 0;
}
C
# shellcheck disable=SC2046
cc -Wall -Werror -o "$T/app" "$T/app.c" $(pkg-config --cflags --libs keyplane) \
    -Wl,-rpath,"$prefix/$libdir" || fail "pkg-config build"
"$T/app" | grep -q "not found" || fail "app did not run"
cat >"$T/kit.c" <<'C'
#include <keyplane/kit/codec.h>
#include <keyplane/kit/http.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    char hex[2 * 3 + 1], b64[8];
    kpk_http *h = NULL;
    char err[256];
    kpk_hex_encode((const uint8_t *)"\x01\xab\xff", 3, hex);
    kpk_b64url_encode((const uint8_t *)"kp", 2, b64);
    if (kpk_http_new(NULL, &h, err, sizeof(err)) != KP_OK)
        return 1;
    kpk_http_free(h);
    printf("%s %s %d\n", hex, b64, kpk_fpr_valid(hex));
    return strcmp(hex, "01abff") != 0 || strcmp(b64, "a3A") != 0;
}
C
# shellcheck disable=SC2046
cc -Wall -Werror -o "$T/kit" "$T/kit.c" $(pkg-config --cflags --libs keyplane-kit-http) ||
    fail "pkg-config build of a kit program"
[ "$("$T/kit")" = "01abff a3A 0" ] || fail "kit program: $("$T/kit")"

# --- The library and the kit through the CMake package ----------------------------------------
mkdir -p "$T/cm"
cat >"$T/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(keyplane 0.1 REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE keyplane::keyplane)
add_executable(kit ../kit.c)
target_link_libraries(kit PRIVATE keyplane::kit-http)
foreach(v KEYPLANE_PLUGIN_DIR KEYPLANE_PLUGIN_MAP)
  message(STATUS "${v}=${${v}}")
endforeach()
CM
env -u PKG_CONFIG_PATH cmake -S "$T/cm" -B "$T/cm/build" -DCMAKE_PREFIX_PATH="$prefix" \
    >"$T/cm.log" 2>&1 && cmake --build "$T/cm/build" >>"$T/cm.log" 2>&1 ||
    { cat "$T/cm.log"; fail "find_package build"; }
[ "$("$T/cm/build/kit")" = "01abff a3A 0" ] || fail "CMake-built kit program"
map=$(sed -n 's/^-- KEYPLANE_PLUGIN_MAP=//p' "$T/cm.log")
same "$map" "$prefix/share/keyplane/plugin.map" || fail "KEYPLANE_PLUGIN_MAP=$map"
dir=$(sed -n 's/^-- KEYPLANE_PLUGIN_DIR=//p' "$T/cm.log")
same "$dir" "$plugindir" || fail "KEYPLANE_PLUGIN_DIR=$dir"

# --- The template, as an author builds it -----------------------------------------------------
printf 'params:\n  label: install-test\n' >"$T/template.yaml"

# $1: the built template.so; $2: where keyplane should list it from.
template_works() {
    sh "$KP_SRC/tests/check_symbols.sh" --lib "$prefix/$libdir/libkeyplane.so" --plugin "$1" \
        >"$T/sym.out" 2>&1 || { cat "$T/sym.out"; fail "$1 exports more than kp_plugin_init"; }
    expect_rc 0 plugins --json
    "$PY" -c '
import json, os, sys
d = json.load(open(sys.argv[1]))
t = [p for p in d["plugins"] if p["name"] == "template"]
assert len(t) == 1, d
t = t[0]
assert os.path.samefile(t["path"], sys.argv[2]), t["path"]
assert t["capabilities"] == ["keystore", "secretstore"], t
assert t["abi"] == "1.0", t
assert sorted(p["name"] for p in t["params"]) == ["label", "max_versions", "secret_store"], t
' "$T/out" "$2"
    if [ -n "$conformance" ]; then
        "$conformance" "$1" --params "$T/template.yaml" >"$T/conf.out" 2>&1 ||
            { cat "$T/conf.out"; fail "the template built with $3 fails keyplane-conformance"; }
        grep -Eq '^[1-9][0-9]* passed, 0 failed' "$T/conf.out" ||
            { cat "$T/conf.out"; fail "keyplane-conformance: no passing summary"; }
        echo "template built with $3: keyplane-conformance: $(tail -1 "$T/conf.out")"
    else
        echo "note: keyplane-conformance is not built; the template's conformance run is skipped"
    fi
}

# With pkg-config only: the Makefile, into the copy's own directory, found through
# KEYPLANE_PLUGIN_PATH.
cp -r "$KP_SRC/providers/template" "$T/tpl-make"
if ! env -u PKG_CONFIG_PATH pkg-config --exists keyplane-provider; then
    # Without the SDK on pkg-config's path the Makefile stops with one line saying what to set.
    (cd "$T/tpl-make" && env -u PKG_CONFIG_PATH make) >"$T/make.log" 2>&1 &&
        fail "template: make without the SDK on PKG_CONFIG_PATH succeeded"
    expect_in "$T/make.log" "set PKG_CONFIG_PATH to <keyplane prefix>/lib/pkgconfig"
fi
(cd "$T/tpl-make" && make clean >/dev/null && make) >"$T/make.log" 2>&1 ||
    { cat "$T/make.log"; fail "template: build with pkg-config (make)"; }
export KEYPLANE_PLUGIN_PATH="$T/tpl-make"
template_works "$T/tpl-make/template.so" "$T/tpl-make/template.so" pkg-config
unset KEYPLANE_PLUGIN_PATH
# With the CMake package only (no pkg-config path to keyplane): installed into the plugin dir.
cp -r "$KP_SRC/providers/template" "$T/tpl-cmake"
rm -f "$T/tpl-cmake"/*.o "$T/tpl-cmake"/*.so
env -u PKG_CONFIG_PATH cmake -S "$T/tpl-cmake" -B "$T/tpl-cmake/build" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_INSTALL_PREFIX="$prefix" >"$T/tpl.log" 2>&1 &&
    cmake --build "$T/tpl-cmake/build" >>"$T/tpl.log" 2>&1 &&
    cmake --install "$T/tpl-cmake/build" >>"$T/tpl.log" 2>&1 ||
    { cat "$T/tpl.log"; fail "template: build with the CMake package"; }
[ -e "$plugindir/template.so" ] || fail "template not installed into the plugin directory"
template_works "$plugindir/template.so" "$plugindir/template.so" CMake
echo "ok: install"
