#!/bin/sh
# conformance.pkcs11: the kit against the pkcs11 plugin on a fresh SoftHSM2 token of its own.
# Usage: run_pkcs11.sh KIT PKCS11.so [KIT ARGS...]
# SOFTHSM2_CONF points at a token directory under a temporary directory, removed afterwards.
set -eu
kit=$1
plugin=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
    /usr/lib64/pkcs11/libsofthsm2.so; do
    [ -e "$m" ] && module=$m && break
done
[ -n "$module" ] || { echo "run_pkcs11.sh: libsofthsm2.so not found (install softhsm2)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-conf-p11.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir "$T/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$T" \
    >"$T/softhsm2.conf"
SOFTHSM2_CONF=$T/softhsm2.conf
KP_CONF_PIN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export SOFTHSM2_CONF KP_CONF_PIN
softhsm2-util --init-token --free --label conformance --so-pin "so-$KP_CONF_PIN" \
    --pin "$KP_CONF_PIN" >/dev/null
cat >"$T/params.yaml" <<YAML
params:
  module: $module
  token: conformance
  pin: env:KP_CONF_PIN
YAML
sh "$here/run_kit.sh" "$kit" "$plugin" --params "$T/params.yaml" "$@"
