#!/bin/sh
# `keyplane plugins --json` lists the file plugin with version, ABI and capabilities.
. "$(dirname "$0")/lib.sh"
expect_rc 0 plugins --json
"$PY" - "$T/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
f = [p for p in d["plugins"] if p["name"] == "file"]
assert len(f) == 1, d
f = f[0]
assert f["version"] == "0.1.0", f
assert f["abi"] == "1.1", f  # the file plugin needs INSTANCE_INIT
assert f["capabilities"] == ["keystore", "secretstore"], f
assert f["path"].endswith("/file.so"), f
assert {p["name"] for p in f["params"]} >= {"path", "passphrase"}, f
assert d["refused"] == [], d
PY
expect_rc 0 plugins --params
expect_in "$T/out" "file"
expect_in "$T/out" "passphrase"
expect_rc 0 plugins --help
expect_in "$T/out" "Usage: keyplane plugins"
expect_rc 2 plugins --bogus
expect_rc 0 --version
expect_in "$T/out" "provider ABI 1.6"
# KEYPLANE_PLUGIN_PATH adds absolute directories; a relative entry is ignored with a warning.
KEYPLANE_PLUGIN_PATH="relative/dir:$KP_MOCK_DIR/good" expect_rc 0 plugins --json
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert sorted(p["name"] for p in d["plugins"]) == ["aws", "azure-keyvault", "file", "good", "pkcs11"], d
assert sys.argv[2] + "/good" in d["plugin_dirs"], d
' "$T/out" "$KP_MOCK_DIR"
expect_in "$T/err" "ignoring plugin path entry 'relative/dir': not an absolute path"
[ "$(grep -c 'ignoring plugin path entry' "$T/err")" -eq 1 ] || fail "warning printed more than once"
echo "ok: KEYPLANE_PLUGIN_PATH"
