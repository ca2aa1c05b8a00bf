#!/bin/sh
# conformance.azure-keyvault: the kit against the azure-keyvault plugin and one Key Vault
# emulator over TLS. Run through tests/integration/run_with_vault.sh --name conf, which starts
# the vault and exports KV_CA and KV_CONF_URL.
# Usage: run_with_vault.sh --name conf sh run_azure.sh KIT AZURE-KEYVAULT.so [KIT ARGS...]
set -eu
kit=$1
plugin=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
: "${KV_CONF_URL:?run through run_with_vault.sh --name conf}"
: "${KV_CA:?run through run_with_vault.sh --name conf}"
T=$(mktemp -d "${TMPDIR:-/tmp}/kp-conf-akv.XXXXXX")
trap 'rm -rf "$T"' EXIT
KP_CONF_AZ_SECRET=kp-secret # the emulator's default client (vaultctl.py DEFAULT_CLIENT)
export KP_CONF_AZ_SECRET
cat >"$T/params.yaml" <<YAML
params:
  vault_url: $KV_CONF_URL
  ca_bundle: $KV_CA
  tenant: 00000000-0000-0000-0000-000000000001
  client_id: kp-client
  client_secret: env:KP_CONF_AZ_SECRET
  authority: $KV_CONF_URL
  verify_challenge_resource: false
  max_attempts: 2
YAML
sh "$here/run_kit.sh" "$kit" "$plugin" --params "$T/params.yaml" "$@"
