/*
 * The text of `keyplane azure-sql script`: the Azure CLI commands for sh, or the Az PowerShell
 * ones, that register the chain's version with each server and make it the TDE protector, and
 * the comments for what Azure still needs by hand. Every value printed is quoted for the shell
 * it is printed for; a kid is printed only when it has the shape of one (kp_cli_azure_kid_ok).
 */
#include <stdio.h>
#include <string.h>

#include "azure_sql.h"

const kp_cli_azure_vault *kp_cli_azure_vault_of(const kp_cli_azure_script *S, const char *name)
{
    for (size_t i = 0; i < S->nvaults; i++)
        if (strcmp(S->vaults[i].name, name) == 0)
            return &S->vaults[i];
    return NULL;
}

bool kp_cli_azure_kid_ok(const char *kid)
{
    if (kid == NULL || strncmp(kid, "https://", 8) != 0 || strstr(kid, "/keys/") == NULL)
        return false;
    for (const char *p = kid; *p != '\0'; p++)
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:/-", *p) ==
            NULL)
            return false;
    return kid[strlen(kid) - 1] != '/';
}

/* A quoted argument: for sh bare when every character is one a shell takes as it is, else in
 * single quotes (a quote inside as '\''); for PowerShell always in single quotes (a quote
 * inside doubled). Values are at most a kid long, so buf (4 times that) always holds them. */
typedef char s_arg[4 * KP_BACKEND_ID_MAX + 8];

static const char *s_q(const kp_cli_azure_script *S, const char *v, s_arg buf)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "._-:/=@%+,";
    if (!S->powershell && v[0] != '\0' && strspn(v, safe) == strlen(v))
        return v;
    size_t n = 0, cap = sizeof(s_arg) - 2;
    buf[n++] = '\'';
    for (const char *p = v; *p != '\0' && n + 5 < cap; p++) {
        if (*p == '\'' && S->powershell) {
            memcpy(buf + n, "''", 2);
            n += 2;
        } else if (*p == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *p;
        }
    }
    buf[n++] = '\'';
    buf[n] = '\0';
    return buf;
}

/* The Azure CLI's --resource-group value with what goes before it: " VALUE", or "=VALUE" for a
 * name that starts with '-' (Azure allows one), which the CLI would take for an option. */
static const char *s_rg(const kp_cli_azure_script *S, const char *rg, s_arg buf)
{
    s_arg q;
    snprintf(buf, sizeof(s_arg), "%s%s", rg[0] == '-' ? "=" : " ", s_q(S, rg, q));
    return buf;
}

/* The vault's name, the first label of the kid's host, into out; whether the host is a Managed
 * HSM (NAME.managedhsm.azure.net), whose access is its local RBAC, not access policies. */
static bool s_vault_name(const char *kid, char *out, size_t len)
{
    const char *host = kid + strlen("https://");
    size_t hl = strcspn(host, ":/");
    size_t nl = strcspn(host, ".:/");
    snprintf(out, len, "%.*s", (int)nl, host);
    const char *hsm = strstr(host, ".managedhsm.");
    return hsm != NULL && hsm < host + hl;
}

/* One server's "before the first run" lines: its identity's rights on its vault. */
static void s_prereq(const kp_cli_azure_script *S, const kp_azure_sql_server *a, FILE *out)
{
    const char *kid = kp_cli_azure_vault_of(S, a->vault)->kid;
    char name[KP_BACKEND_ID_MAX];
    s_arg q1, q2, q3, q4;
    if (s_vault_name(kid, name, sizeof(name)))
        fprintf(out,
                "#   %s reads from the Managed HSM %s: give its identity the local role Managed "
                "HSM Crypto Service Encryption User\n",
                a->server, name);
    else if (S->powershell)
        fprintf(out,
                "#   Set-AzContext -Subscription %s | Out-Null\n"
                "#   Set-AzKeyVaultAccessPolicy -VaultName %s -ObjectId (Get-AzSqlServer "
                "-ResourceGroupName %s -ServerName %s).Identity.PrincipalId -PermissionsToKeys "
                "get, wrapKey, unwrapKey\n",
                s_q(S, a->subscription, q1), s_q(S, name, q2), s_q(S, a->resource_group, q3),
                s_q(S, a->server, q4));
    else
        fprintf(out,
                "#   az keyvault set-policy --name %s --object-id \"$(az sql server show "
                "--subscription %s --resource-group%s --name %s --query identity.principalId "
                "--output tsv)\" --key-permissions get wrapKey unwrapKey\n",
                s_q(S, name, q1), s_q(S, a->subscription, q2), s_rg(S, a->resource_group, q3),
                s_q(S, a->server, q4));
}

/* PowerShell: Set-AzContext before a command in another subscription than the last one. */
static void s_context(const kp_cli_azure_script *S, const kp_azure_sql_server *a,
                      const char **current, FILE *out)
{
    s_arg q;
    if (!S->powershell || (*current != NULL && strcmp(*current, a->subscription) == 0))
        return;
    fprintf(out, "Set-AzContext -Subscription %s | Out-Null\n", s_q(S, a->subscription, q));
    *current = a->subscription;
}

/* Step 1, 2 or 3 for server a. */
static void s_step(const kp_cli_azure_script *S, int step, const kp_azure_sql_server *a, FILE *out)
{
    s_arg qs, qg, qn, qk;
    const char *sub = s_q(S, a->subscription, qs);
    const char *rg = S->powershell ? s_q(S, a->resource_group, qg) : s_rg(S, a->resource_group, qg);
    const char *srv = s_q(S, a->server, qn);
    const char *kid = s_q(S, kp_cli_azure_vault_of(S, a->vault)->kid, qk);
    if (S->powershell && step == 1)
        fprintf(out, "Add-AzSqlServerKeyVaultKey -ResourceGroupName %s -ServerName %s -KeyId %s\n",
                rg, srv, kid);
    else if (S->powershell && step == 2)
        fprintf(out,
                "Set-AzSqlServerTransparentDataEncryptionProtector -ResourceGroupName %s "
                "-ServerName %s -Type AzureKeyVault -KeyId %s\n",
                rg, srv, kid);
    else if (S->powershell)
        fprintf(out,
                "Get-AzSqlServerTransparentDataEncryptionProtector -ResourceGroupName %s "
                "-ServerName %s\n",
                rg, srv);
    else if (step == 1)
        fprintf(out,
                "az sql server key create --subscription %s --resource-group%s --server %s "
                "--kid %s\n",
                sub, rg, srv, kid);
    else if (step == 2)
        fprintf(out,
                "az sql server tde-key set --subscription %s --resource-group%s --server %s "
                "--server-key-type AzureKeyVault --kid %s\n",
                sub, rg, srv, kid);
    else
        fprintf(out,
                "az sql server tde-key show --subscription %s --resource-group%s --server %s\n",
                sub, rg, srv);
}

/* The versions before the script's in each vault: kept for the backups made with them. */
static void s_older(const kp_cli_azure_script *S, FILE *out)
{
    bool any = false;
    for (size_t i = 0; i < S->nvaults; i++)
        for (size_t k = 0; k < S->vaults[i].listing.n; k++)
            any = any || S->vaults[i].listing.v[k].version < S->version;
    if (!any)
        return;
    fprintf(out,
            "\n"
            "# Older versions stay in the vaults: a backup (and its log) made before a rotation\n"
            "# is restored with the version it was made under. Keep them enabled in the vaults\n"
            "# and registered with the servers while the backup retention may need them\n"
            "# ('keyplane retire' marks a version past it and deletes nothing):\n");
    for (size_t i = 0; i < S->nvaults; i++) {
        const kp_cli_azure_vault *v = &S->vaults[i];
        for (size_t k = 0; k < v->listing.n; k++) {
            const kp_key_info *o = &v->listing.v[k];
            if (o->version < S->version && kp_cli_azure_kid_ok(o->backend_id))
                fprintf(out, "#   %s v%u: %s\n", v->name, o->version, o->backend_id);
        }
    }
}

void kp_cli_azure_print(const kp_cli_azure_script *S, FILE *out)
{
    const kp_chain_policy *c = S->chain;
    fprintf(out,
            "%s"
            "# keyplane azure-sql script %s%s: makes version %u of chain %s (the version\n"
            "# 'keyplane wrap' uses) the TDE protector of the chain's Azure SQL servers, with\n"
            "# the key id (kid) read from each server's own vault when this was made. Every vault\n"
            "# holds the same key, so each server registers its own vault's copy. Servers are\n"
            "# taken in the policy's order: list a geo-replication link's secondary servers\n"
            "# before its primary, so that a secondary has a key before its primary uses it.\n"
            "%s\n"
            "\n"
            "# Before the first run, once per server: the server's managed identity needs get,\n"
            "# wrapKey and unwrapKey on its vault; with the vault's access policies\n"
            "# (%s):\n",
            S->powershell ? "" : "#!/bin/sh\n", c->name, S->powershell ? " --powershell" : "",
            S->version, c->name, S->powershell ? "$ErrorActionPreference = 'Stop'" : "set -eu",
            S->powershell
                ? "the vault is looked up in the server's subscription, selected just\n"
                  "# before; where the vault lives in another, select that one"
                : "az looks the vault up in its current subscription; add --subscription\n"
                  "# where the vault lives in another");
    for (size_t i = 0; i < c->nazure_sql; i++)
        s_prereq(S, &c->azure_sql[i], out);
    fprintf(out, "# (a vault using Azure RBAC instead: the role Key Vault Crypto Service "
                 "Encryption User)\n");
    const char *current = NULL;
    for (int step = 1; step <= 3; step++) {
        if (step == 1)
            fprintf(out, "\n# 1. Register version %u of the key with each server.\n", S->version);
        else if (step == 2)
            fprintf(out,
                    "\n# 2. Make version %u each server's TDE protector (online: only the "
                    "database\n#    encryption keys are wrapped again).\n",
                    S->version);
        else
            fprintf(out,
                    "\n# 3. Check: each server's protector is of type AzureKeyVault, its uri the "
                    "kid of\n#    version %u above.\n",
                    S->version);
        for (size_t i = 0; i < c->nazure_sql; i++) {
            s_context(S, &c->azure_sql[i], &current, out);
            s_step(S, step, &c->azure_sql[i], out);
        }
    }
    s_older(S, out);
}
