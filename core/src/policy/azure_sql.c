/*
 * A chain's 'azure_sql' list: the Azure SQL logical servers whose TDE protector the chain's
 * protector is, each with the resource group and subscription that name it for the Azure CLI
 * and PowerShell, and the chain's azure-keyvault keystore it reads the protector from. The names
 * follow Azure's own rules, so that a script made from them is refused here rather than by
 * Azure halfway through; a server has one TDE protector, so it is listed once in a policy.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "policy/parser.h"

/* The most servers one chain lists, as for its other lists. */
#define S_SERVERS_MAX 64

static const char *const s_keys[] = {"server", "resource_group", "subscription", "vault"};
#define S_NKEYS (sizeof(s_keys) / sizeof(s_keys[0]))

/* A logical server name: 1 to 63 lower-case letters, digits and hyphens, neither first nor
 * last a hyphen (it is the first label of NAME.database.windows.net). */
static bool s_server_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 63 || v[0] == '-' || v[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)v[i]) || isdigit((unsigned char)v[i]) || v[i] == '-'))
            return false;
    return true;
}

/* A resource group name: 1 to 90 letters, digits, '_', '-', '.', '(' and ')', not ending in
 * '.' (Azure also takes non-ASCII letters; a policy keeps to ASCII). */
static bool s_group_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 90 || v[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && strchr("_-.()", v[i]) == NULL)
            return false;
    return true;
}

/* A subscription id: a GUID, 8-4-4-4-12 hexadecimal digits. */
static bool s_guid_ok(const char *v)
{
    if (strlen(v) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? v[i] != '-' : !isxdigit((unsigned char)v[i]))
            return false;
    }
    return true;
}

/* v as a diagnostic quotes it: at most 96 bytes, a control character as '?', so that a quoted
 * "\n" cannot make one diagnostic look like two. */
static const char *s_shown(const char *v, char out[100])
{
    size_t n = 0;
    for (; n < 96 && v[n] != '\0'; n++)
        out[n] = iscntrl((unsigned char)v[n]) ? '?' : v[n];
    out[n] = '\0';
    return out;
}

/* Whether name is one of the chain's keystores: its origin, a replica or an escrow. */
static bool s_holds(const kp_pol_chain *c, const char *name)
{
    return (c->origin != NULL && strcmp(c->origin, name) == 0) || kp__chain_copy_holder(c, name);
}

/* The vault of an entry: an azure-keyvault instance holding the chain's protector. */
static bool s_vault_ok(kp_pol_parser *P, const kp_pol_chain *c, yaml_node_t *n, const char *v)
{
    const kp_pol_instance *in =
        kp__chain_ref(P, c->name, n, "azure_sql vault", KP_CAP_KEYSTORE, "keystore");
    if (in == NULL)
        return false;
    if (strcmp(in->plugin_name, "azure-keyvault") != 0) {
        kp__pdiag(P, n,
                  "chain '%s': azure_sql vault '%s' is a %s instance: Azure SQL reads its TDE "
                  "protector from an azure-keyvault instance (a Key Vault or Managed HSM)",
                  c->name, v, in->plugin_name);
        return false;
    }
    if (!s_holds(c, v)) {
        kp__pdiag(P, n,
                  "chain '%s': azure_sql vault '%s' does not hold the chain's protector: list it "
                  "in the chain's replicas",
                  c->name, v);
        return false;
    }
    return true;
}

/* The value of key k of an entry, checked by its rule; NULL (reported) when it breaks it. */
static const char *s_value(kp_pol_parser *P, const kp_pol_chain *c, const char *k, yaml_node_t *vn)
{
    const char *v = kp__yscalar(vn);
    char shown[100];
    if (v == NULL) {
        kp__pdiag(P, vn, "chain '%s': azure_sql '%s' must be a single value", c->name, k);
        return NULL;
    }
    if (strcmp(k, "server") == 0 && !s_server_ok(v))
        kp__pdiag(P, vn,
                  "chain '%s': azure_sql server '%.64s' is no Azure SQL server name: 1 to 63 "
                  "lower-case letters, digits and hyphens, not starting or ending with a hyphen",
                  c->name, s_shown(v, shown));
    else if (strcmp(k, "resource_group") == 0 && !s_group_ok(v))
        kp__pdiag(P, vn,
                  "chain '%s': azure_sql resource_group '%.96s' is no resource group name: 1 to "
                  "90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'",
                  c->name, s_shown(v, shown));
    else if (strcmp(k, "subscription") == 0 && !s_guid_ok(v))
        kp__pdiag(P, vn,
                  "chain '%s': azure_sql subscription '%.64s' is no subscription id: a GUID "
                  "such as 00000000-0000-0000-0000-000000000000",
                  c->name, s_shown(v, shown));
    else if (strcmp(k, "vault") != 0 || s_vault_ok(P, c, vn, v))
        return v;
    return NULL;
}

/* One entry (a mapping): its four values checked, then stored as c's next server. */
static void s_entry(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE) {
        kp__pdiag(P, map,
                  "chain '%s': each azure_sql entry must be a mapping of server, "
                  "resource_group, subscription and vault",
                  c->name);
        return;
    }
    if (!kp__ymapping_ok(P, map, "an azure_sql entry"))
        return;
    const char *v[S_NKEYS] = {NULL};
    yaml_node_t *at[S_NKEYS] = {NULL};
    bool bad = false;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = kp__ynode(P, p->key), *vn = kp__ynode(P, p->value);
        const char *k = kp__yscalar(kn);
        if (k == NULL || strncmp(k, "x-", 2) == 0)
            continue;
        size_t i = 0;
        while (i < S_NKEYS && strcmp(k, s_keys[i]) != 0)
            i++;
        if (i == S_NKEYS) {
            char hint[96];
            kp__pdiag(P, kn,
                      "chain '%s': unknown key '%.64s' in azure_sql (expected server, "
                      "resource_group, subscription, vault)%s",
                      c->name, k, kp__diag_hint(P->diags, hint, sizeof(hint), k, s_keys, S_NKEYS));
            bad = true;
            continue;
        }
        at[i] = vn;
        v[i] = s_value(P, c, k, vn);
        bad = bad || v[i] == NULL;
    }
    for (size_t i = 0; i < S_NKEYS; i++) {
        if (at[i] == NULL) {
            kp__pdiag(P, map, "chain '%s': azure_sql entry lacks required key '%s'", c->name,
                      s_keys[i]);
            bad = true;
        }
    }
    if (bad)
        return;
    kp__azure_sql *e = &c->azure_sql[c->pub.nazure_sql];
    e->server = kp__strdup(v[0]);
    e->resource_group = kp__strdup(v[1]);
    e->subscription = kp__strdup(v[2]);
    e->vault = kp__strdup(v[3]);
    e->line = KP_NODE_LINE(at[0]);
    e->column = KP_NODE_COL(at[0]);
    kp_azure_sql_server *pub = &c->azure_view[c->pub.nazure_sql];
    *pub = (kp_azure_sql_server){e->server, e->resource_group, e->subscription, e->vault};
    c->pub.nazure_sql++;
    if (!e->server || !e->resource_group || !e->subscription || !e->vault)
        kp__pdiag(P, map, "out of memory reading chain '%s'", c->name);
}

void kp__policy_parse_azure_sql(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *seq)
{
    if (seq->type != YAML_SEQUENCE_NODE) {
        kp__pdiag(P, seq,
                  "chain '%s': 'azure_sql' must be a list of servers (server, resource_group, "
                  "subscription, vault)",
                  c->name);
        return;
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n > S_SERVERS_MAX) {
        kp__pdiag(P, seq, "chain '%s': 'azure_sql' lists %zu servers; a chain lists at most %d",
                  c->name, n, S_SERVERS_MAX);
        return;
    }
    c->azure_sql = calloc(n + 1, sizeof(*c->azure_sql));
    c->azure_view = calloc(n + 1, sizeof(*c->azure_view));
    if (c->azure_sql == NULL || c->azure_view == NULL) {
        kp__pdiag(P, seq, "out of memory reading chain '%s'", c->name);
        return;
    }
    c->pub.azure_sql = c->azure_view;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++)
        s_entry(P, c, kp__ynode(P, *it));
}

/* One server entry of the policy, for the search for servers listed twice. */
typedef struct s_ref {
    const kp__azure_sql *e;
    const char *chain;
    size_t order; /* chains, then entries, in the policy's order */
} s_ref;

static int s_ref_cmp(const void *a, const void *b)
{
    const s_ref *x = a, *y = b;
    int c = strcmp(x->e->server, y->e->server);
    return c != 0 ? c : (x->order > y->order) - (x->order < y->order);
}

void kp__policy_check_azure_sql(kp_pol_parser *P)
{
    size_t n = 0;
    for (size_t i = 0; i < P->pol->nchains; i++)
        n += P->pol->chains[i].azure_sql != NULL ? P->pol->chains[i].pub.nazure_sql : 0;
    if (n < 2)
        return;
    /* sorted by name (then place) rather than compared pairwise: a policy may list many */
    s_ref *refs = calloc(n, sizeof(*refs));
    if (refs == NULL) {
        kp__diag_add(P->diags, 0, 0, "out of memory checking the azure_sql servers");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < P->pol->nchains; i++) {
        const kp_pol_chain *c = &P->pol->chains[i];
        for (size_t j = 0; c->azure_sql != NULL && j < c->pub.nazure_sql; j++)
            if (c->azure_sql[j].server != NULL) {
                refs[k] = (s_ref){&c->azure_sql[j], c->name, k};
                k++;
            }
    }
    qsort(refs, k, sizeof(*refs), s_ref_cmp);
    size_t first = 0;
    for (size_t i = 1; i < k; i++) {
        if (strcmp(refs[i].e->server, refs[first].e->server) != 0) {
            first = i;
            continue;
        }
        const s_ref *r = &refs[i], *f = &refs[first];
        if (strcmp(r->chain, f->chain) == 0)
            kp__diag_add(P->diags, r->e->line, r->e->column,
                         "chain '%s': azure_sql lists server '%s' twice (first at line %u)",
                         r->chain, r->e->server, f->e->line);
        else
            kp__diag_add(P->diags, r->e->line, r->e->column,
                         "chain '%s': azure_sql server '%s' is listed by chain '%s' too (line %u): "
                         "a server has one TDE protector",
                         r->chain, r->e->server, f->chain, f->e->line);
    }
    free(refs);
}
