# keyplane azure-sql script tde --powershell: makes version 1 of chain tde (the version
# 'keyplane wrap' uses) the TDE protector of the chain's Azure SQL servers, with
# the key id (kid) read from each server's own vault when this was made. Every vault
# holds the same key, so each server registers its own vault's copy. Servers are
# taken in the policy's order: list a geo-replication link's secondary servers
# before its primary, so that a secondary has a key before its primary uses it.
$ErrorActionPreference = 'Stop'

# Before the first run, once per server: the server's managed identity needs get,
# wrapKey and unwrapKey on its vault; with the vault's access policies
# (the vault is looked up in the server's subscription, selected just
# before; where the vault lives in another, select that one):
#   Set-AzContext -Subscription '0a0a0a0a-0000-4000-8000-00000000000a' | Out-Null
#   Set-AzKeyVaultAccessPolicy -VaultName '127' -ObjectId (Get-AzSqlServer -ResourceGroupName 'rg-prod(eu)' -ServerName 'sql-tde-east').Identity.PrincipalId -PermissionsToKeys get, wrapKey, unwrapKey
#   Set-AzContext -Subscription '0b0b0b0b-0000-4000-8000-00000000000b' | Out-Null
#   Set-AzKeyVaultAccessPolicy -VaultName '127' -ObjectId (Get-AzSqlServer -ResourceGroupName 'rg_prod.west' -ServerName 'sql-tde-west').Identity.PrincipalId -PermissionsToKeys get, wrapKey, unwrapKey
#   Set-AzContext -Subscription '0a0a0a0a-0000-4000-8000-00000000000a' | Out-Null
#   Set-AzKeyVaultAccessPolicy -VaultName '127' -ObjectId (Get-AzSqlServer -ResourceGroupName 'rg-prod(eu)' -ServerName 'sql-tde-east-2').Identity.PrincipalId -PermissionsToKeys get, wrapKey, unwrapKey
# (a vault using Azure RBAC instead: the role Key Vault Crypto Service Encryption User)

# 1. Register version 1 of the key with each server.
Set-AzContext -Subscription '0a0a0a0a-0000-4000-8000-00000000000a' | Out-Null
Add-AzSqlServerKeyVaultKey -ResourceGroupName 'rg-prod(eu)' -ServerName 'sql-tde-east' -KeyId '<KID vault1 v1>'
Set-AzContext -Subscription '0b0b0b0b-0000-4000-8000-00000000000b' | Out-Null
Add-AzSqlServerKeyVaultKey -ResourceGroupName 'rg_prod.west' -ServerName 'sql-tde-west' -KeyId '<KID vault2 v1>'
Set-AzContext -Subscription '0a0a0a0a-0000-4000-8000-00000000000a' | Out-Null
Add-AzSqlServerKeyVaultKey -ResourceGroupName 'rg-prod(eu)' -ServerName 'sql-tde-east-2' -KeyId '<KID vault1 v1>'

# 2. Make version 1 each server's TDE protector (online: only the database
#    encryption keys are wrapped again).
Set-AzSqlServerTransparentDataEncryptionProtector -ResourceGroupName 'rg-prod(eu)' -ServerName 'sql-tde-east' -Type AzureKeyVault -KeyId '<KID vault1 v1>'
Set-AzContext -Subscription '0b0b0b0b-0000-4000-8000-00000000000b' | Out-Null
Set-AzSqlServerTransparentDataEncryptionProtector -ResourceGroupName 'rg_prod.west' -ServerName 'sql-tde-west' -Type AzureKeyVault -KeyId '<KID vault2 v1>'
Set-AzContext -Subscription '0a0a0a0a-0000-4000-8000-00000000000a' | Out-Null
Set-AzSqlServerTransparentDataEncryptionProtector -ResourceGroupName 'rg-prod(eu)' -ServerName 'sql-tde-east-2' -Type AzureKeyVault -KeyId '<KID vault1 v1>'

# 3. Check: each server's protector is of type AzureKeyVault, its uri the kid of
#    version 1 above.
Get-AzSqlServerTransparentDataEncryptionProtector -ResourceGroupName 'rg-prod(eu)' -ServerName 'sql-tde-east'
Set-AzContext -Subscription '0b0b0b0b-0000-4000-8000-00000000000b' | Out-Null
Get-AzSqlServerTransparentDataEncryptionProtector -ResourceGroupName 'rg_prod.west' -ServerName 'sql-tde-west'
Set-AzContext -Subscription '0a0a0a0a-0000-4000-8000-00000000000a' | Out-Null
Get-AzSqlServerTransparentDataEncryptionProtector -ResourceGroupName 'rg-prod(eu)' -ServerName 'sql-tde-east-2'
