/*
 * keyplane azure-sql script: what the command reads (cmd_azure_sql.c) and the script text made
 * from it (azure_sql_text.c).
 */
#ifndef KP_CLI_AZURE_SQL_H
#define KP_CLI_AZURE_SQL_H

#include <stdbool.h>
#include <stdio.h>

#include "cli.h"

/* The versions of the chain's key one vault lists. */
typedef struct kp_cli_azure_listing {
    kp_key_info *v; /* ascending by version once read */
    size_t n, cap;
} kp_cli_azure_listing;

/* One vault the chain's servers read from. */
typedef struct kp_cli_azure_vault {
    const char *name;   /* the azure-keyvault instance (borrowed from the policy) */
    const char *server; /* the first server reading from it, named in errors */
    const char *kid;    /* the kid of the script's version (in listing) */
    kp_cli_azure_listing listing;
} kp_cli_azure_vault;

typedef struct kp_cli_azure_script {
    const kp_chain_policy *chain;
    uint32_t version; /* the version wrap uses */
    char fpr[KPK_FPR_HEX];
    bool powershell;
    kp_cli_azure_vault vaults[64]; /* a chain lists at most 64 servers */
    size_t nvaults;
} kp_cli_azure_script;

/* The vault called name among S's, or NULL. */
const kp_cli_azure_vault *kp_cli_azure_vault_of(const kp_cli_azure_script *S, const char *name);
/* Whether kid looks like a Key Vault key id with its version, https://HOST/keys/NAME/VERSION,
 * in the characters such a URL has: what is printed into a script must be no more than that. */
bool kp_cli_azure_kid_ok(const char *kid);
/* Prints S's script (the Azure CLI for sh, or Az PowerShell) to out. */
void kp_cli_azure_print(const kp_cli_azure_script *S, FILE *out);

#endif
