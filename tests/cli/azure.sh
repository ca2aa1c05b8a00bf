# Key Vault emulator fixture for the CLI tests (sourced after lib.sh): emulated vaults in
# $T/vaults, stopped on exit, and the policy block of an instance reaching one.
#   akv_start NAME [vaultctl start options...]  starts vault NAME (and sets KV_CA, KV_<NAME>_URL,
#                                               KV_<NAME>_PORT)
#   akv_instance NAME URL [LINE...]             prints instance NAME of vault URL: client
#                                               $AKV_CLIENT (default kp-client) with the secret in
#                                               env:$AKV_SECRET_ENV (default AZ_SECRET), the
#                                               emulator's authority and CA; each LINE
#                                               ("hsm: true") is added as a param
# VCTL runs vaultctl.py, SDK the official Azure SDK (akv_sdk.py); AZ_SECRET is the default
# client's secret.
VCTL="$PY $KP_SRC/tests/emulators/azure_keyvault/vaultctl.py"
SDK="$PY $KP_SRC/tests/cli/akv_sdk.py"
V=$T/vaults
AKV_TENANT=00000000-0000-0000-0000-000000000001
AZ_SECRET=kp-secret
export AZ_SECRET
trap '$VCTL stop-all --dir "$V" --kill >/dev/null 2>&1 || true; rm -rf "$T"' EXIT

akv_start() {
    name=$1
    shift
    $VCTL start --dir "$V" --name "$name" "$@" >/dev/null || fail "cannot start $name"
    eval "$($VCTL env --dir "$V")"
    [ -f "$KV_CA" ] || fail "vaultctl env"
}

akv_instance() {
    cat <<YAML
  $1:
    plugin: azure-keyvault
    vault_url: $2
    tenant: $AKV_TENANT
    client_id: ${AKV_CLIENT:-kp-client}
    client_secret: env:${AKV_SECRET_ENV:-AZ_SECRET}
    authority: $2
    ca_bundle: $KV_CA
YAML
    shift 2
    for line in "$@"; do
        echo "    $line"
    done
}
