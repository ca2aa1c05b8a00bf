#!/bin/sh
# Each single-fault mock plugin is refused by `keyplane plugins` with one line naming its path
# and the fault; nothing crashes, and the good plugins still load.
. "$(dirname "$0")/lib.sh"
: "${KP_MOCK_DIR:?}"
check() {
    name=$1
    reason=$2
    expect_rc 1 plugins --plugin-dir "$KP_MOCK_DIR/$name"
    line=$(grep -F "$KP_MOCK_DIR/$name/$name.so" "$T/err" || true)
    [ -n "$line" ] || { cat "$T/err" >&2; fail "$name: no line names the plugin path"; }
    [ "$(printf '%s\n' "$line" | wc -l)" -eq 1 ] || fail "$name: more than one line"
    printf '%s\n' "$line" | grep -F -q -- "$reason" || fail "$name: '$line' lacks '$reason'"
    expect_in "$T/out" "file" # the real plugin still listed
    # The same through --json.
    expect_rc 1 plugins --json --plugin-dir "$KP_MOCK_DIR/$name"
    "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = [x for x in d["refused"] if x["path"].endswith("/" + sys.argv[2] + ".so")]
assert len(r) == 1 and sys.argv[3] in r[0]["reason"], d
assert any(p["name"] == "file" for p in d["plugins"]), d
' "$T/out" "$name" "$reason"
}
check abi-major "built for ABI 2.0, this keyplane offers ABI 1.6"
check missing-wrap "declares keystore but lacks mandatory function KS_WRAP (id 204)"
check init-fails "kp_plugin_init failed with KP_ERR_BACKEND"
check no-init "no kp_plugin_init symbol"
check not-elf "not a shared object"
expect_rc 0 plugins --plugin-dir "$KP_MOCK_DIR/good"
expect_in "$T/out" "good"
# A policy naming a refused plugin fails validation with the reason.
cat >"$T/p.yaml" <<YAML
version: 1
providers:
  x: {plugin: missing-wrap}
YAML
expect_rc 3 --plugin-dir "$KP_MOCK_DIR/missing-wrap" policy validate "$T/p.yaml"
expect_in "$T/err" "$T/p.yaml:3:15: error: instance 'x': cannot use plugin 'missing-wrap'"
expect_in "$T/err" "lacks mandatory function KS_WRAP"
echo "ok: mock plugins refused"
