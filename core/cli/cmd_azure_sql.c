/*
 * keyplane azure-sql script CHAIN [--powershell] [--json]: the Azure CLI (or Az PowerShell)
 * commands that make the version `keyplane wrap` uses the TDE protector of every Azure SQL
 * server the chain lists (azure_sql in the policy), with each server's key id (kid) read from
 * its vault now. Everything is read before anything is printed: a vault that cannot say gives
 * one error line and no script. The text itself is azure_sql_text.c's.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <keyplane/kit/codec.h>

#include "azure_sql.h"

static const char s_usage[] =
    "Usage: keyplane azure-sql script CHAIN [--powershell] [--json]\n"
    "\n"
    "Prints the commands that make CHAIN's current version (the one 'keyplane wrap'\n"
    "uses: the active version once the chain has rotated) the TDE protector of every\n"
    "Azure SQL logical server the chain lists in its azure_sql policy entry. For each\n"
    "server, the key id (kid, with its version) is read from the server's vault now:\n"
    "  1. az sql server key create      registers that version with the server,\n"
    "  2. az sql server tde-key set     makes it the server's TDE protector,\n"
    "  3. az sql server tde-key show    shows the protector, to check.\n"
    "Comments say what Azure still needs by hand (the server identity's get, wrapKey and\n"
    "unwrapKey on its vault; the order of geo-replicated servers) and list the older\n"
    "versions, which stay in the vaults for the backups made with them. Run it again\n"
    "once a rotation is activated, to switch the servers to the new version.\n"
    "Nothing is changed in Azure or in any store: keyplane only reads.\n"
    "\n"
    "  --powershell  Az PowerShell instead (Set-AzContext, Add-AzSqlServerKeyVaultKey,\n"
    "                Set-AzSqlServerTransparentDataEncryptionProtector, and\n"
    "                Get-AzSqlServerTransparentDataEncryptionProtector to check)\n"
    "  --json        {\"chain\", \"version\", \"fingerprint\", \"servers\": [{server,\n"
    "                resource_group, subscription, vault, kid, version}]}\n"
    "\n"
    "Exit status: 0 printed; 2 usage; 3 policy invalid; 5 no such chain, a chain without\n"
    "azure_sql, or a vault without the version (run 'keyplane apply'); 4, 6, 7 or 8 when\n"
    "a vault cannot be read (the error line names it). Nothing is printed on stdout then.\n";

static int s_parse(kp_cli *cli, int argc, char **argv, bool *powershell)
{
    static const struct option opts[] = {{"powershell", optional_argument, NULL, 'P'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'P':
            if (kp_cli_flag("azure-sql script", "powershell", optarg, powershell) != KP_EXIT_OK)
                return KP_EXIT_USAGE;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            fputs(s_usage, stdout);
            return -1;
        default:
            return kp_cli_bad_option("azure-sql script", argv);
        }
    }
    return KP_EXIT_OK;
}

static kp_status s_collect(void *arg, const kp_key_info *info)
{
    kp_cli_azure_listing *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap > 0 ? l->cap * 2 : 8;
        kp_key_info *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return KP_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *info;
    return KP_OK;
}

static int s_by_version(const void *a, const void *b)
{
    const kp_key_info *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Reads vault v: the kid of the script's version, and the versions before it. One error line
 * naming the vault (and a server reading from it) when it cannot say. */
static int s_read_vault(kp_cli *cli, const kp_cli_azure_script *S, kp_cli_azure_vault *v)
{
    const char *chain = S->chain->name;
    char what[KP_NAME_MAX * 3];
    snprintf(what, sizeof(what), "azure-sql script: vault '%s' (server %s)", v->name, v->server);
    kp_instance *inst = NULL;
    kp_status st = kp_instance_open(cli->ctx, cli->policy, v->name, &inst);
    if (st == KP_OK) {
        st = kp_key_list(inst, chain, s_collect, &v->listing);
        if (st == KP_ERR_NOT_FOUND)
            st = KP_OK; /* no version of the chain at all: said below */
    }
    kp_instance_close(inst);
    if (st != KP_OK)
        return kp_cli_error(st, "%s: %s", what,
                            kpk_after_name(kp_ctx_last_error(cli->ctx), v->name));
    if (v->listing.n > 0)
        qsort(v->listing.v, v->listing.n, sizeof(*v->listing.v), s_by_version);
    const kp_key_info *cur = NULL;
    for (size_t i = 0; i < v->listing.n; i++)
        if (v->listing.v[i].version == S->version)
            cur = &v->listing.v[i];
    if (cur == NULL)
        return kp_cli_error(KP_ERR_NOT_FOUND,
                            "%s: does not hold %s v%u, the version wrap uses ('keyplane apply' "
                            "copies it there)",
                            what, chain, S->version);
    if (strcmp(cur->fingerprint, S->fpr) != 0)
        return kp_cli_error(KP_ERR_INTEGRITY,
                            "%s: holds another key as %s v%u (%.16s..., the chain's is "
                            "%.16s...); 'keyplane plan %s' names it",
                            what, chain, S->version, cur->fingerprint, S->fpr, chain);
    if (cur->gap[0] != '\0') /* Azure SQL would refuse the key (no purge protection) */
        return kp_cli_error(KP_ERR_UNSUPPORTED, "%s: %s v%u: %s", what, chain, S->version,
                            cur->gap);
    if (!kp_cli_azure_kid_ok(cur->backend_id))
        return kp_cli_error(KP_ERR_BACKEND, "%s: reports no Key Vault key id for %s v%u", what,
                            chain, S->version);
    v->kid = cur->backend_id;
    return KP_EXIT_OK;
}

static json_t *s_json(const kp_cli_azure_script *S)
{
    json_t *servers = json_array();
    for (size_t i = 0; i < S->chain->nazure_sql; i++) {
        const kp_azure_sql_server *a = &S->chain->azure_sql[i];
        json_array_append_new(servers, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "server",
                                                 a->server, "resource_group", a->resource_group,
                                                 "subscription", a->subscription, "vault", a->vault,
                                                 "kid", kp_cli_azure_vault_of(S, a->vault)->kid,
                                                 "version", (int)S->version));
    }
    return json_pack("{s:s, s:i, s:s, s:o}", "chain", S->chain->name, "version", (int)S->version,
                     "fingerprint", S->fpr, "servers", servers);
}

static int s_script(kp_cli *cli, const char *chain, bool powershell)
{
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_cli_azure_script S = {.powershell = powershell};
    S.chain = kp_policy_chain(cli->policy, chain);
    if (S.chain == NULL)
        return kp_cli_not_in_policy(cli, "chain", chain);
    if (S.chain->nazure_sql == 0)
        return kp_cli_error(KP_ERR_NOT_FOUND,
                            "chain '%s' lists no Azure SQL server: give it an azure_sql list in "
                            "%s",
                            chain, cli->policy_path);
    kp_status st = kp_chain_wrap_version(cli->ctx, cli->policy, chain, &S.version, S.fpr);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "azure-sql script");
    /* each vault once, named in errors with the first server that reads from it */
    for (size_t i = 0; i < S.chain->nazure_sql; i++) {
        const kp_azure_sql_server *a = &S.chain->azure_sql[i];
        if (kp_cli_azure_vault_of(&S, a->vault) != NULL)
            continue;
        S.vaults[S.nvaults++] = (kp_cli_azure_vault){.name = a->vault, .server = a->server};
    }
    for (size_t i = 0; rc == KP_EXIT_OK && i < S.nvaults; i++)
        rc = s_read_vault(cli, &S, &S.vaults[i]);
    if (rc == KP_EXIT_OK && cli->json)
        kp_cli_print_json(s_json(&S));
    else if (rc == KP_EXIT_OK)
        kp_cli_azure_print(&S, stdout);
    for (size_t i = 0; i < S.nvaults; i++)
        free(S.vaults[i].listing.v);
    return rc;
}

int kp_cmd_azure_sql(kp_cli *cli, int argc, char **argv)
{
    static const char *const subs[] = {"script", NULL};
    size_t which = 0;
    int rc = kp_cli_subcommand(cli, "azure-sql", s_usage, subs, &argc, &argv, &which);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    bool powershell = false;
    rc = s_parse(cli, argc, argv, &powershell);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    if (optind >= argc)
        return kp_cli_usage_error("azure-sql script", "missing CHAIN");
    if (optind + 1 < argc)
        return kp_cli_usage_error("azure-sql script", "expects one CHAIN, not '%s' too",
                                  argv[optind + 1]);
    return s_script(cli, argv[optind], powershell);
}
