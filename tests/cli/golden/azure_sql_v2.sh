#!/bin/sh
# keyplane azure-sql script tde: makes version 2 of chain tde (the version
# 'keyplane wrap' uses) the TDE protector of the chain's Azure SQL servers, with
# the key id (kid) read from each server's own vault when this was made. Every vault
# holds the same key, so each server registers its own vault's copy. Servers are
# taken in the policy's order: list a geo-replication link's secondary servers
# before its primary, so that a secondary has a key before its primary uses it.
set -eu

# Before the first run, once per server: the server's managed identity needs get,
# wrapKey and unwrapKey on its vault; with the vault's access policies
# (az looks the vault up in its current subscription; add --subscription
# where the vault lives in another):
#   az keyvault set-policy --name 127 --object-id "$(az sql server show --subscription 0a0a0a0a-0000-4000-8000-00000000000a --resource-group 'rg-prod(eu)' --name sql-tde-east --query identity.principalId --output tsv)" --key-permissions get wrapKey unwrapKey
#   az keyvault set-policy --name 127 --object-id "$(az sql server show --subscription 0b0b0b0b-0000-4000-8000-00000000000b --resource-group rg_prod.west --name sql-tde-west --query identity.principalId --output tsv)" --key-permissions get wrapKey unwrapKey
#   az keyvault set-policy --name 127 --object-id "$(az sql server show --subscription 0a0a0a0a-0000-4000-8000-00000000000a --resource-group 'rg-prod(eu)' --name sql-tde-east-2 --query identity.principalId --output tsv)" --key-permissions get wrapKey unwrapKey
# (a vault using Azure RBAC instead: the role Key Vault Crypto Service Encryption User)

# 1. Register version 2 of the key with each server.
az sql server key create --subscription 0a0a0a0a-0000-4000-8000-00000000000a --resource-group 'rg-prod(eu)' --server sql-tde-east --kid <KID vault1 v2>
az sql server key create --subscription 0b0b0b0b-0000-4000-8000-00000000000b --resource-group rg_prod.west --server sql-tde-west --kid <KID vault2 v2>
az sql server key create --subscription 0a0a0a0a-0000-4000-8000-00000000000a --resource-group 'rg-prod(eu)' --server sql-tde-east-2 --kid <KID vault1 v2>

# 2. Make version 2 each server's TDE protector (online: only the database
#    encryption keys are wrapped again).
az sql server tde-key set --subscription 0a0a0a0a-0000-4000-8000-00000000000a --resource-group 'rg-prod(eu)' --server sql-tde-east --server-key-type AzureKeyVault --kid <KID vault1 v2>
az sql server tde-key set --subscription 0b0b0b0b-0000-4000-8000-00000000000b --resource-group rg_prod.west --server sql-tde-west --server-key-type AzureKeyVault --kid <KID vault2 v2>
az sql server tde-key set --subscription 0a0a0a0a-0000-4000-8000-00000000000a --resource-group 'rg-prod(eu)' --server sql-tde-east-2 --server-key-type AzureKeyVault --kid <KID vault1 v2>

# 3. Check: each server's protector is of type AzureKeyVault, its uri the kid of
#    version 2 above.
az sql server tde-key show --subscription 0a0a0a0a-0000-4000-8000-00000000000a --resource-group 'rg-prod(eu)' --server sql-tde-east
az sql server tde-key show --subscription 0b0b0b0b-0000-4000-8000-00000000000b --resource-group rg_prod.west --server sql-tde-west
az sql server tde-key show --subscription 0a0a0a0a-0000-4000-8000-00000000000a --resource-group 'rg-prod(eu)' --server sql-tde-east-2

# Older versions stay in the vaults: a backup (and its log) made before a rotation
# is restored with the version it was made under. Keep them enabled in the vaults
# and registered with the servers while the backup retention may need them
# ('keyplane retire' marks a version past it and deletes nothing):
#   vault1 v1: <KID vault1 v1>
#   vault2 v1: <KID vault2 v1>
