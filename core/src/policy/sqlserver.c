/*
 * A chain's 'sqlserver' list: the SQL Server instances whose TDE databases the chain's
 * certificate protects (all replicas of an availability group), and their databases. `keyplane
 * sqlserver rotate-script` creates the new certificate on every listed instance before any
 * database switches to it; `sqlserver export` re-encrypts the database master key of each
 * database listed with column_keys (docs/sqlserver.md).
 *
 *   sqlserver:
 *     - instance: sql-prod-1            # as sqlcmd -S names it: host, host\NAME, host,port
 *       databases: [Sales, { name: HR, column_keys: true }]
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <keyplane/kit/params.h>

#include "base/util.h"
#include "policy/parser.h"

#define S_INSTANCES_MAX 64
#define S_DATABASES_MAX 256

/* An instance as sqlcmd -S takes it: 1 to 128 of letters, digits and . - _ \ , : (a host, a
 * named instance after '\', a port after ','). Nothing a script would have to quote. */
static bool s_instance_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && strchr(".-_\\,:", v[i]) == NULL)
            return false;
    return true;
}

/* A database name keyplane writes into T-SQL brackets and secret names: 1 to 100 of letters,
 * digits, '_', '-' and '.', not starting with '.'. */
static bool s_database_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 100 || v[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && strchr("_-.", v[i]) == NULL)
            return false;
    return true;
}

/* A column_keys database's master key password is the sqlcmd variable DMK_PASSWORD_<name> with
 * '.' and '-' as '_' (sqlcmd takes variable names without case) and the secret
 * <chain>.dmk.<name> (at most 127 characters): another database of the chain whose name gives
 * the same variable would get this one's password. */
static bool s_dmk_names_ok(kp_pol_parser *P, const kp_pol_chain *c,
                           const kp_sqlserver_instance *cur, yaml_node_t *n, const char *name)
{
    if (strlen(c->name) + strlen(".dmk.") + strlen(name) > 127) {
        kp__pdiag(P, n,
                  "chain '%s': database '%s' has column_keys, and its password's secret name "
                  "%s.dmk.%s would pass 127 characters",
                  c->name, name, c->name, name);
        return false;
    }
    for (size_t i = 0; i <= c->pub.nsqlserver; i++) {
        const kp_sqlserver_instance *in = i < c->pub.nsqlserver ? &c->sql[i] : cur;
        for (size_t j = 0; j < in->ndatabases; j++) {
            const char *o = in->databases[j].name;
            if (o == NULL || !in->databases[j].column_keys || strcasecmp(o, name) == 0 ||
                strlen(o) != strlen(name))
                continue;
            bool same = true;
            for (size_t k = 0; same && name[k] != '\0'; k++) {
                int a = strchr(".-", name[k]) != NULL ? '_' : tolower((unsigned char)name[k]);
                int b = strchr(".-", o[k]) != NULL ? '_' : tolower((unsigned char)o[k]);
                same = a == b;
            }
            if (same) {
                kp__pdiag(P, n,
                          "chain '%s': databases '%s' and '%s' both have column_keys and would "
                          "share one sqlcmd variable for their master key passwords",
                          c->name, o, name);
                return false;
            }
        }
        if (in == cur)
            break;
    }
    return true;
}

static void s_database(kp_pol_parser *P, kp_pol_chain *c, kp_sqlserver_instance *in, yaml_node_t *n)
{
    const char *name = kp__yscalar(n);
    bool column_keys = false;
    if (n->type == YAML_MAPPING_NODE && kp__ymapping_ok(P, n, "a sqlserver database")) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *kn = kp__ynode(P, p->key), *vn = kp__ynode(P, p->value);
            const char *key = kp__yscalar(kn);
            if (key == NULL || strncmp(key, "x-", 2) == 0)
                continue;
            if (strcmp(key, "name") == 0)
                name = kp__yscalar(vn);
            else if (strcmp(key, "column_keys") == 0) {
                if (!kpk_param_bool(kp__yscalar(vn), &column_keys))
                    kp__pdiag(P, vn, "chain '%s': column_keys must be true or false", c->name);
            } else
                kp__pdiag(P, kn,
                          "chain '%s': unknown key '%.64s' in a sqlserver database (expected "
                          "name, column_keys)",
                          c->name, key);
        }
    }
    if (name == NULL || !s_database_ok(name)) {
        kp__pdiag(P, n,
                  "chain '%s': a sqlserver database is a name of 1 to 100 letters, digits, '_', "
                  "'-' and '.', or {name: NAME, column_keys: true}",
                  c->name);
        return;
    }
    /* SQL Server's usual collation takes names without case */
    for (size_t i = 0; i < in->ndatabases; i++)
        if (in->databases[i].name != NULL && strcasecmp(in->databases[i].name, name) == 0) {
            kp__pdiag(P, n, "chain '%s': sqlserver instance '%s' lists database '%s' twice",
                      c->name, in->instance, name);
            return;
        }
    if (column_keys && !s_dmk_names_ok(P, c, in, n, name))
        return;
    kp_sqlserver_db *db = (kp_sqlserver_db *)&in->databases[in->ndatabases];
    if ((db->name = kp__strdup(name)) != NULL) {
        db->column_keys = column_keys;
        in->ndatabases++;
    }
}

static void s_entry(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE || !kp__ymapping_ok(P, map, "a sqlserver entry")) {
        if (map->type != YAML_MAPPING_NODE)
            kp__pdiag(P, map,
                      "chain '%s': each sqlserver entry is a mapping of instance and databases",
                      c->name);
        return;
    }
    kp_sqlserver_instance *in = &c->sql[c->pub.nsqlserver];
    yaml_node_t *dbs = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = kp__ynode(P, p->key), *vn = kp__ynode(P, p->value);
        const char *key = kp__yscalar(kn);
        if (key == NULL || strncmp(key, "x-", 2) == 0)
            continue;
        if (strcmp(key, "instance") == 0) {
            const char *v = kp__yscalar(vn);
            if (v == NULL || !s_instance_ok(v))
                kp__pdiag(P, vn,
                          "chain '%s': sqlserver instance must be a server as sqlcmd -S names "
                          "it: 1 to 128 letters, digits and . - _ \\ , :",
                          c->name);
            else
                in->instance = kp__strdup(v);
        } else if (strcmp(key, "databases") == 0) {
            dbs = vn;
        } else {
            kp__pdiag(P, kn,
                      "chain '%s': unknown key '%.64s' in a sqlserver entry (expected instance, "
                      "databases)",
                      c->name, key);
        }
    }
    if (in->instance == NULL) {
        kp__pdiag(P, map, "chain '%s': a sqlserver entry needs 'instance'", c->name);
        return;
    }
    for (size_t i = 0; i < c->pub.nsqlserver; i++)
        if (strcasecmp(c->sql[i].instance, in->instance) == 0) {
            kp__pdiag(P, map, "chain '%s': sqlserver lists instance '%s' twice", c->name,
                      in->instance);
            free((char *)in->instance);
            in->instance = NULL;
            return;
        }
    size_t n = dbs != NULL && dbs->type == YAML_SEQUENCE_NODE
                   ? (size_t)(dbs->data.sequence.items.top - dbs->data.sequence.items.start)
                   : 0;
    if (dbs != NULL && (dbs->type != YAML_SEQUENCE_NODE || n > S_DATABASES_MAX))
        kp__pdiag(P, dbs, "chain '%s': sqlserver databases must be a list of at most %d", c->name,
                  S_DATABASES_MAX);
    else if (n > 0 && (in->databases = calloc(n, sizeof(*in->databases))) != NULL)
        for (yaml_node_item_t *it = dbs->data.sequence.items.start;
             it < dbs->data.sequence.items.top; it++)
            s_database(P, c, in, kp__ynode(P, *it));
    c->pub.nsqlserver++;
}

void kp__policy_parse_sqlserver(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *seq)
{
    size_t n = seq->type == YAML_SEQUENCE_NODE
                   ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start)
                   : 0;
    if (seq->type != YAML_SEQUENCE_NODE || n == 0 || n > S_INSTANCES_MAX) {
        kp__pdiag(P, seq, "chain '%s': 'sqlserver' must be a list of 1 to %d instances", c->name,
                  S_INSTANCES_MAX);
        return;
    }
    if (c->pub.certificate == NULL)
        kp__pdiag(P, seq,
                  "chain '%s': 'sqlserver' lists SQL Server instances, but the chain has no "
                  "'certificate': a TDE protector of SQL Server is a certificate",
                  c->name);
    if ((c->sql = calloc(n, sizeof(*c->sql))) == NULL)
        return;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++)
        s_entry(P, c, kp__ynode(P, *it));
    c->pub.sqlserver = c->sql;
}

void kp__policy_free_sqlserver(kp_pol_chain *c)
{
    for (size_t i = 0; c->sql != NULL && i < c->pub.nsqlserver; i++) {
        free((char *)c->sql[i].instance);
        for (size_t j = 0; j < c->sql[i].ndatabases; j++)
            free((char *)c->sql[i].databases[j].name);
        free((void *)c->sql[i].databases);
    }
    free(c->sql);
}
