#!/bin/sh
# keyplane azure-sql script against two emulated Key Vaults: a protector born in a file store is
# copied into both by `apply`; the chain lists three Azure SQL servers (two reading from vault1,
# one from vault2). The script, for sh and for PowerShell, before and after a rotation, must
# carry for each server exactly the kid its vault reports for the version wrap uses (checked
# against `key list --json` and the official Azure SDK), and equal the golden files in
# tests/cli/golden/ once the random parts of the kids (and the emulator's port) are replaced by
# placeholders (KP_UPDATE_GOLDEN=1 rewrites them from this run). The sh script is run with a stand-in `az` that records its arguments, so the
# quoting is proved, not only looked at. Also: the kid in `key list`, `status --json` and
# `verify --json`; the errors (unknown chain, a chain without azure_sql, a policy error, a
# vault without the version, a vault that is down) are one line each, with nothing on stdout.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/azure.sh"
GOLDEN=$KP_SRC/tests/cli/golden

akv_start vault1
akv_start vault2

KP_TEST_PASS=$(openssl rand -hex 16)
export KP_TEST_PASS
vault() { # vault NAME URL [key_prefix]
    akv_instance "$1" "$2" "verify_challenge_resource: false" "max_attempts: 1" \
        ${3:+"key_prefix: $3"}
}
# policy [EXTRA_REPLICA [EXTRA_SERVER_LINES]]: the test's policy on stdout
policy() {
    cat <<EOF
version: 1
providers:
  soft: {plugin: file, path: $T/soft, passphrase: env:KP_TEST_PASS, kdf_iterations: 10000}
EOF
    vault vault1 "$KV_VAULT1_URL"
    vault vault2 "$KV_VAULT2_URL"
    vault vault1b "$KV_VAULT1_URL" b-
    cat <<EOF
chains:
  tde:
    protector: {type: rsa, bits: 2048, origin: soft, exportable: true}
    replicas: [vault1, vault2${1:+, $1}]
    algorithm: RSA-OAEP-256
    rotation: {every: 365d}
    azure_sql:
      - server: sql-tde-east
        resource_group: rg-prod(eu)
        subscription: 0a0a0a0a-0000-4000-8000-00000000000a
        vault: vault1
      - {server: sql-tde-west, resource_group: rg_prod.west, subscription: 0b0b0b0b-0000-4000-8000-00000000000b, vault: vault2}
      - server: sql-tde-east-2
        resource_group: rg-prod(eu)
        subscription: 0a0a0a0a-0000-4000-8000-00000000000a
        vault: vault1
        x-note: a second server in the same region reads the same vault
${2:-}
  plain:
    protector: {type: rsa, bits: 2048, origin: soft, exportable: true}
    replicas: [soft]
EOF
}
policy >"$T/policy.yaml"
P="--policy $T/policy.yaml"
init_stores "$T/policy.yaml"
expect_rc 0 $P apply

# placeholders SCRIPT OUT: OUT is SCRIPT with every kid of every version in vault1 and vault2 as
# <KID vaultN vM> and the emulator's URLs as <VAULTN>, after checking that the kids of steps 1
# and 2 are, for each server, the kid its vault reports for version WANT (key list --json and
# the Azure SDK, which reads the vault on its own).
kids() { # the kids every vault reports, as JSON {"vault1": {"1": kid, ...}, ...}
    for v in vault1 vault2; do
        expect_rc 0 $P key list --instance "$v" --name tde --json
        cp "$T/out" "$T/list.$v.json"
        if [ "$v" = vault1 ]; then url=$KV_VAULT1_URL; else url=$KV_VAULT2_URL; fi
        $SDK show "$url" "$KV_CA" tde >"$T/sdk.$v.json" || fail "the Azure SDK cannot read $v"
    done
}
check_script() { # check_script SCRIPT WANT_VERSION GOLDEN
    kids
    "$PY" - "$1" "$2" "$3" "$T" "$KV_VAULT1_URL" "$KV_VAULT2_URL" <<'EOF' || fail "$1 does not match $3"
import json, os, re, sys
script, want, golden, T, url1, url2 = sys.argv[1:]
want = int(want)
vault_of = {"sql-tde-east": "vault1", "sql-tde-west": "vault2", "sql-tde-east-2": "vault1"}
kids = {}
for v in ("vault1", "vault2"):
    listed = {k["version"]: k for k in json.load(open(f"{T}/list.{v}.json"))["keys"]}
    sdk = {int(k["tags"]["kp-version"]): k["kid"] for k in json.load(open(f"{T}/sdk.{v}.json"))
           if "kp-version" in k["tags"]}
    assert sorted(listed) == sorted(sdk), (v, listed.keys(), sdk.keys())
    for n, k in listed.items():
        # key list gives the kid under both names, and it is the one the SDK reads
        assert k["kid"] == k["backend_id"] == sdk[n], (v, n, k, sdk[n])
        kids[(v, n)] = k["kid"]
text = open(script).read()
ps = "-KeyId" in text
seen = 0
for line in text.splitlines():
    if line.startswith("#") or not line.strip():
        continue
    m = re.search(r"(?:--server|-ServerName) '?([a-z0-9-]+)'?", line)
    k = re.search(r"(?:--kid|-KeyId) '?(\S+?)'?$", line)
    if m and k:
        got, exp = k.group(1), kids[(vault_of[m.group(1)], want)]
        assert got == exp, f"{m.group(1)}: kid {got}, want {exp} ({vault_of[m.group(1)]} v{want})"
        seen += 1
assert seen == 6, f"{seen} commands with a kid, want 6 (3 servers x register, set)"
# every kid in the text (commands and comments) is one the vaults report
for k in re.findall(r"https://\S+/keys/[^\s']+", text):
    assert k in kids.values(), f"{k} is no kid of vault1 or vault2"
for (v, n), k in sorted(kids.items(), key=lambda x: -len(x[1])):
    text = text.replace(k, f"<KID {v} v{n}>")
text = text.replace(url1, "<VAULT1>").replace(url2, "<VAULT2>")
if os.environ.get("KP_UPDATE_GOLDEN"):  # regenerate: KP_UPDATE_GOLDEN=1 ctest -R cli.azure_sql
    open(golden, "w").write(text)
expected = open(golden).read()
if text != expected:
    import difflib
    sys.stdout.writelines(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                               golden, script))
    sys.exit(1)
EOF
}

# A stand-in az that records its arguments, one per line, so that running the script proves how
# a shell splits and unquotes them.
mkdir "$T/bin"
cat >"$T/bin/az" <<EOF
#!/bin/sh
for a in "\$@"; do printf '[%s]' "\$a"; done >>"$T/az.log"
echo >>"$T/az.log"
EOF
chmod +x "$T/bin/az"
run_script() { # run_script SCRIPT: runs it under the stand-in az; $T/az.log has the calls
    rm -f "$T/az.log"
    PATH="$T/bin:$PATH" sh "$1" >"$T/run.out" 2>&1 || { cat "$T/run.out"; fail "$1 failed"; }
}

# --- version 1 --------------------------------------------------------------------------
expect_rc 0 $P azure-sql script tde
[ ! -s "$T/err" ] || { cat "$T/err"; fail "azure-sql script wrote to stderr"; }
cp "$T/out" "$T/v1.sh"
sh -n "$T/v1.sh" || fail "the script is no sh script"
check_script "$T/v1.sh" 1 "$GOLDEN/azure_sql_v1.sh"
run_script "$T/v1.sh"
[ "$(wc -l <"$T/az.log")" -eq 9 ] || { cat "$T/az.log"; fail "the script ran $(wc -l <"$T/az.log") az commands, want 9"; }
kid1=$("$PY" -c 'import json,sys; print([k["kid"] for k in json.load(open(sys.argv[1]))["keys"] if k["version"] == 1][0])' "$T/list.vault1.json")
expect_in "$T/az.log" "[sql][server][key][create][--subscription][0a0a0a0a-0000-4000-8000-00000000000a][--resource-group][rg-prod(eu)][--server][sql-tde-east][--kid][$kid1]"
expect_in "$T/az.log" "[sql][server][tde-key][set][--subscription][0b0b0b0b-0000-4000-8000-00000000000b][--resource-group][rg_prod.west][--server][sql-tde-west][--server-key-type][AzureKeyVault][--kid]"
expect_in "$T/az.log" "[sql][server][tde-key][show][--subscription][0a0a0a0a-0000-4000-8000-00000000000a][--resource-group][rg-prod(eu)][--server][sql-tde-east-2]"

expect_rc 0 $P azure-sql script tde --powershell
cp "$T/out" "$T/v1.ps1"
check_script "$T/v1.ps1" 1 "$GOLDEN/azure_sql_v1.ps1"

# --powershell=BOOL as every boolean option; -q leaves the script (it is the command's data)
expect_rc 0 $P azure-sql script -q tde --powershell=No
cmp -s "$T/out" "$T/v1.sh" || fail "--powershell=No did not print the sh script"
expect_rc 2 $P azure-sql script tde --powershell=maybe
expect_in "$T/err" "--powershell=maybe: the value must be true or false"

expect_rc 0 --json $P azure-sql script tde
"$PY" - "$T/out" "$T/list.vault1.json" "$T/list.vault2.json" <<'EOF' || fail "azure-sql script --json"
import json, sys
d = json.load(open(sys.argv[1]))
kid = {v: [k["kid"] for k in json.load(open(p))["keys"] if k["version"] == 1][0]
       for v, p in (("vault1", sys.argv[2]), ("vault2", sys.argv[3]))}
assert d["chain"] == "tde" and d["version"] == 1 and len(d["fingerprint"]) == 64, d
assert [s["server"] for s in d["servers"]] == ["sql-tde-east", "sql-tde-west", "sql-tde-east-2"], d
for s in d["servers"]:
    assert set(s) == {"server", "resource_group", "subscription", "vault", "kid", "version"}, s
    assert s["kid"] == kid[s["vault"]] and s["version"] == 1, s
assert d["servers"][0]["resource_group"] == "rg-prod(eu)", d
EOF

# --- the kid in key list, status and verify ---------------------------------------------
expect_rc 0 $P key list --name tde
expect_in "$T/out" "ID (the store's: Key Vault kid, KMS ARN, ...)"
expect_in "$T/out" "$kid1"
for cmd in status verify; do
    expect_rc 0 $P $cmd tde --json
    "$PY" - "$T/out" "$T/list.vault1.json" "$T/list.vault2.json" <<'EOF' || fail "$cmd --json: kid"
import json, sys
d = json.load(open(sys.argv[1]))
kid = {v: [k["kid"] for k in json.load(open(p))["keys"] if k["version"] == 1][0]
       for v, p in (("vault1", sys.argv[2]), ("vault2", sys.argv[3]))}
cells = d["chains"][0]["versions"][0]["replicas"]
for v in ("vault1", "vault2"):
    assert cells[v]["kid"] == cells[v]["backend_id"] == kid[v], cells[v]
# the file store has its own id (the version's directory), and no kid
assert "kid" not in cells["soft"] and cells["soft"]["backend_id"].startswith("/"), cells["soft"]
EOF
done

# --- a rotation: staged, the servers stay on v1; activated, the script switches them -----
expect_rc 0 $P rotate tde --stage
expect_rc 0 $P azure-sql script tde
cp "$T/out" "$T/staged.sh"
check_script "$T/staged.sh" 1 "$GOLDEN/azure_sql_v1.sh"
expect_rc 0 $P rotate tde --activate
expect_rc 0 $P azure-sql script tde
cp "$T/out" "$T/v2.sh"
sh -n "$T/v2.sh" || fail "the script is no sh script"
check_script "$T/v2.sh" 2 "$GOLDEN/azure_sql_v2.sh"
run_script "$T/v2.sh"
[ "$(wc -l <"$T/az.log")" -eq 9 ] || fail "the v2 script ran $(wc -l <"$T/az.log") az commands"
expect_rc 0 $P azure-sql script tde --powershell
cp "$T/out" "$T/v2.ps1"
check_script "$T/v2.ps1" 2 "$GOLDEN/azure_sql_v2.ps1"

# A resource group may start with '-' (Azure allows it): the Azure CLI gets it as
# --resource-group=VALUE, which it cannot take for an option.
sed 's/resource_group: rg_prod.west/resource_group: -rg_prod.west/' "$T/policy.yaml" >"$T/dash.yaml"
expect_rc 0 --policy "$T/dash.yaml" azure-sql script tde
cp "$T/out" "$T/dash.sh"
run_script "$T/dash.sh"
expect_in "$T/az.log" "[--resource-group=-rg_prod.west][--server][sql-tde-west]"

# --- errors: one line on stderr, nothing on stdout --------------------------------------
one_error() { # one_error RC TEXT ARGS...: exit RC, stdout empty, one stderr line with TEXT
    want=$1 text=$2 # (and a usage error's "Try 'keyplane ... --help'.")
    shift 2
    expect_rc "$want" "$@"
    [ ! -s "$T/out" ] || { cat "$T/out"; fail "keyplane $*: printed on stdout"; }
    [ "$(grep -c -v "^Try 'keyplane" "$T/err")" -eq 1 ] ||
        { cat "$T/err"; fail "keyplane $*: not one error line"; }
    expect_in "$T/err" "$text"
}
one_error 5 "no chain 'nosuch' in $T/policy.yaml" $P azure-sql script nosuch
one_error 5 "chain 'plain' lists no Azure SQL server" $P azure-sql script plain
one_error 2 "missing CHAIN" $P azure-sql script
one_error 2 "unknown subcommand 'run' (expected script)" $P azure-sql run tde
one_error 2 "expects one CHAIN" $P azure-sql script tde plain
expect_rc 0 $P azure-sql script --help
expect_in "$T/out" "az sql server tde-key set"
# --json: the error object on stdout, nothing else
expect_rc 5 $P azure-sql script plain --json
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["error"]["exit_code"] == 5, d' "$T/out"

# A policy error is the validator's line (a server name Azure refuses).
sed 's/server: sql-tde-east$/server: SQL_East/' "$T/policy.yaml" >"$T/bad.yaml"
one_error 3 "azure_sql server 'SQL_East' is no Azure SQL server name" --policy "$T/bad.yaml" azure-sql script tde
# The vault named is not an azure-keyvault instance of the chain.
sed 's/vault: vault2}/vault: soft}/' "$T/policy.yaml" >"$T/bad.yaml"
one_error 3 "azure_sql vault 'soft' is a file instance" --policy "$T/bad.yaml" azure-sql script tde

# A vault of the chain that lacks the version (a replica apply has not filled yet): named.
policy vault1b "      - {server: sql-tde-north, resource_group: rg-n, subscription: 0c0c0c0c-0000-4000-8000-00000000000c, vault: vault1b}" >"$T/more.yaml"
one_error 5 "vault 'vault1b' (server sql-tde-north): does not hold tde v2, the version wrap uses ('keyplane apply' copies it there)" \
    --policy "$T/more.yaml" azure-sql script tde

# A vault without purge protection: Azure SQL would refuse its key, so no script, the fix named.
$VCTL stop --dir "$V" --name vault2 >/dev/null
akv_start vault2 --port-reuse --no-purge-protection
one_error 3 "vault 'vault2' (server sql-tde-west): tde v2: vault '127.0.0.1:$KV_VAULT2_PORT' has no purge protection (recoveryLevel Recoverable+Purgeable); Azure SQL requires it of a TDE protector's vault: az keyvault update --name 127.0.0.1:$KV_VAULT2_PORT --enable-purge-protection true" \
    $P azure-sql script tde

# A vault that is down: named, no half script.
$VCTL stop --dir "$V" --name vault2 --kill >/dev/null
kp $P azure-sql script tde
[ "$rc" -ne 0 ] || fail "a script was printed while vault2 is down"
[ ! -s "$T/out" ] || { cat "$T/out"; fail "a half script was printed while vault2 is down"; }
[ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "vault2 down: not one error line"; }
expect_in "$T/err" "keyplane: error: azure-sql script: vault 'vault2' (server sql-tde-west): "
echo "ok: azure-sql script"
