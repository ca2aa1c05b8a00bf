#!/bin/sh
# `cmake --install` lays out headers, libkeyplane, the plugins, keyplane.pc,
# keyplane-provider.pc and the CMake package; a program builds against the installed library
# with pkg-config and with find_package(keyplane); providers/template builds out of tree
# against the installed SDK, and the installed keyplane loads it.
. "$(dirname "$0")/lib.sh"
: "${KP_BUILD_DIR:?}"
prefix=$T/prefix
cmake --install "$KP_BUILD_DIR" --prefix "$prefix" >"$T/install.log" || { cat "$T/install.log"; fail "install"; }
libdir=$(cd "$prefix" && ls -d lib* | head -1)
for f in include/keyplane/keyplane.h include/keyplane/provider.h include/keyplane/status.h \
    bin/keyplane "$libdir/keyplane/plugins/file.so" "$libdir/pkgconfig/keyplane.pc" \
    "$libdir/keyplane/plugins/azure-keyvault.so" "$libdir/pkgconfig/keyplane-provider.pc" "$libdir/cmake/keyplane/keyplane-config.cmake" \
    "$libdir/cmake/keyplane/keyplane-targets.cmake"; do
    [ -e "$prefix/$f" ] || fail "not installed: $f"
done
ls "$prefix/$libdir"/libkeyplane.so* >/dev/null 2>&1 || fail "libkeyplane not installed"
ls "$prefix/$libdir/keyplane/plugins" | grep -qv -E '^(file|pkcs11|azure-keyvault)[.]so$' && fail "test plugins were installed"

export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
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

mkdir -p "$T/cm"
cat >"$T/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(keyplane 0.1 REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE keyplane::keyplane)
CM
cmake -S "$T/cm" -B "$T/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >"$T/cm.log" 2>&1 \
    && cmake --build "$T/cm/build" >>"$T/cm.log" 2>&1 || { cat "$T/cm.log"; fail "find_package build"; }

# The template plugin: out of tree, against the installed SDK, installed into its plugin dir.
cmake -S "$KP_SRC/providers/template" -B "$T/tpl" -DCMAKE_INSTALL_PREFIX="$prefix" \
    >"$T/tpl.log" 2>&1 && cmake --build "$T/tpl" >>"$T/tpl.log" 2>&1 \
    || { cat "$T/tpl.log"; fail "template plugin build"; }
cmake --install "$T/tpl" >>"$T/tpl.log" 2>&1 || { cat "$T/tpl.log"; fail "template install"; }
[ -e "$prefix/$libdir/keyplane/plugins/template.so" ] || fail "template not in plugindir"
KP_BIN=$prefix/bin/keyplane
LD_LIBRARY_PATH="$prefix/$libdir" expect_rc 0 plugins --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
names = sorted(p["name"] for p in d["plugins"])
assert names == ["azure-keyvault", "file", "pkcs11", "template"], d
t = [p for p in d["plugins"] if p["name"] == "template"][0]
assert t["capabilities"] == ["secretstore"], t
' "$T/out"
echo "ok: install"
