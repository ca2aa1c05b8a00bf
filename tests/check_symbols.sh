#!/bin/sh
# libkeyplane exports kp_* only, and a plugin exports kp_plugin_init only.
set -eu
lib=$1
plugin=$2
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBRV]/ {print $3}' | grep -v '^kp_' | grep -v '^KEYPLANE_' || true)
if [ -n "$bad" ]; then
    echo "libkeyplane exports symbols outside kp_*:" >&2
    echo "$bad" >&2
    exit 1
fi
internal=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep '^kp__' || true)
if [ -n "$internal" ]; then
    echo "libkeyplane exports internal kp__ symbols:" >&2
    echo "$internal" >&2
    exit 1
fi
exported=$(nm -D --defined-only "$plugin" | awk '$2 ~ /[TDBRV]/ {print $3}')
if [ "$exported" != "kp_plugin_init" ]; then
    echo "plugin exports more than kp_plugin_init: $exported" >&2
    exit 1
fi
echo "exported symbols: $(nm -D --defined-only "$lib" | grep -c ' kp_') kp_* in libkeyplane, kp_plugin_init in $(basename "$plugin")"
