/*
 * The 'chains' section of a policy: each chain's protector, where its copies live (replicas,
 * escrow, secret replicas and their secret store, which of them are kept for restores only),
 * its algorithm, rotation and retention, and the rules between them (a copy anywhere but the
 * origin needs an exportable protector; a restore-only store is a replica or escrow). The
 * Azure SQL servers a chain protects are read by azure_sql.c.
 */
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/params.h>

#include "base/util.h"
#include "policy/parser.h"

static const char *const s_chain_keys[] = {
    "protector", "replicas", "escrow",    "restore_only", "secret_replicas", "secrets",
    "algorithm", "rotation", "retention", "azure_sql",    "certificate",     "sqlserver",
};
static const char *const s_protector_keys[] = {"type", "bits", "origin", "exportable"};
static const char *const s_rotation_keys[] = {"every", "warn_before"};
#define S_N(a) (sizeof(a) / sizeof((a)[0]))

static bool s_ref(kp_pol_parser *P, const char *chain, yaml_node_t *n, const char *role,
                  uint32_t caps, const char *capname)
{
    return kp__chain_ref(P, chain, n, role, caps, capname) != NULL;
}

static char **s_parse_refs(kp_pol_parser *P, const char *chain, yaml_node_t *seq, const char *role,
                           size_t *count, bool required)
{
    *count = 0;
    if (seq->type != YAML_SEQUENCE_NODE) {
        kp__pdiag(P, seq, "chain '%s': '%s' must be a list of instance names", chain, role);
        return NULL;
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n > KP__CHAIN_STORES_MAX) {
        /* not read further: no chain may name more, and each entry is checked against the
         * others */
        kp__pdiag(P, seq, "chain '%s': '%s' lists %zu instances; a chain holds at most %d stores",
                  chain, role, n, KP__CHAIN_STORES_MAX);
        return NULL;
    }
    if (n == 0 && required) {
        kp__pdiag(P, seq, "chain '%s': '%s' must name at least one instance", chain, role);
        return NULL;
    }
    char **v = calloc(n + 1, sizeof(*v));
    if (v == NULL)
        return NULL;
    uint32_t caps = strcmp(role, "escrow") == 0            ? KP_CAP_KEYSTORE
                    : strcmp(role, "secret_replicas") == 0 ? KP_CAP_SECRETSTORE
                                                           : KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE;
    const char *capname = strcmp(role, "escrow") == 0            ? "keystore"
                          : strcmp(role, "secret_replicas") == 0 ? "secretstore"
                                                                 : "keystore or secretstore";
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *n1 = kp__ynode(P, *it);
        if (!s_ref(P, chain, n1, role, caps, capname))
            continue;
        const char *name = kp__yscalar(n1);
        bool dup = false;
        for (size_t i = 0; i < *count; i++)
            dup = dup || strcmp(v[i], name) == 0;
        if (dup) {
            kp__pdiag(P, n1, "chain '%s': instance '%s' is listed twice in '%s'", chain, name,
                      role);
            continue;
        }
        v[*count] = kp__strdup(name);
        if (v[*count] != NULL)
            (*count)++;
    }
    return v;
}

/* The i-th name of a chain's origin, replicas, escrow and secret replicas taken in that
 * order (NULL where a list entry failed to parse). */
static const char *s_store_at(const kp_pol_chain *c, size_t i)
{
    if (i == 0)
        return c->origin;
    i--;
    if (i < c->pub.nreplicas)
        return c->replicas[i];
    i -= c->pub.nreplicas;
    if (i < c->pub.nescrow)
        return c->escrow[i];
    return c->secret_replicas[i - c->pub.nescrow];
}

/* Distinct stores a chain names, each counted once however many lists name it. */
static size_t s_count_stores(const kp_pol_chain *c)
{
    size_t total = 1 + c->pub.nreplicas + c->pub.nescrow + c->pub.nsecret_replicas, n = 0;
    for (size_t i = 0; i < total; i++) {
        const char *name = s_store_at(c, i);
        bool again = name == NULL;
        for (size_t j = 0; j < i && !again; j++)
            again = s_store_at(c, j) != NULL && strcmp(s_store_at(c, j), name) == 0;
        n += again ? 0 : 1;
    }
    return n;
}

/* Checks each entry of a chain's list seq that names a known instance, once every key of the
 * chain is read, whatever their order. restore_only names a replica or escrow, never the origin
 * (the origin makes every version and must unwrap with the chain's algorithm); secret_replicas
 * names no keystore of the chain (one store would count twice among the holders that confirm a
 * version). */
static void s_check_refs(kp_pol_parser *P, const kp_pol_chain *c, yaml_node_t *seq,
                         bool restore_only)
{
    if (seq->type != YAML_SEQUENCE_NODE)
        return; /* already reported */
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *n = kp__ynode(P, *it);
        const char *name = kp__yscalar(n);
        const kp_pol_instance *in = name != NULL ? kp__policy_instance(P->pol, name) : NULL;
        if (in == NULL)
            continue; /* already reported */
        bool origin = c->origin != NULL && strcmp(name, c->origin) == 0;
        if (restore_only && origin)
            kp__pdiag(P, n,
                      "chain '%s': restore_only names '%s', the chain's origin: the origin "
                      "makes every version and must unwrap with the chain's algorithm",
                      c->name, name);
        else if (restore_only && !kp__chain_copy_holder(c, name))
            kp__pdiag(P, n,
                      "chain '%s': restore_only names '%s', which is not a replica or escrow "
                      "of the chain",
                      c->name, name);
        else if (!restore_only && (in->described.capabilities & KP_CAP_KEYSTORE) &&
                 (origin || kp__chain_copy_holder(c, name)))
            kp__pdiag(P, n,
                      "chain '%s': secret_replicas names '%s', which holds the key itself as a "
                      "keystore of the chain: one store counts once",
                      c->name, name);
    }
}

/* The examples of a chain's own durations (retention, rotation). */
#define S_LIKE "35d, 12h, 52w or 1y, at most 1000y"

static void s_parse_protector(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *map)
{
    const char *chain = c->name;
    if (!kp__ymapping_ok(P, map, "'protector'"))
        return;
    c->pub.key_type = KP_KEY_RSA;
    c->pub.bits = 3072;
    bool have_type = false, have_origin = false;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = kp__ynode(P, p->key), *vn = kp__ynode(P, p->value);
        const char *k = kp__yscalar(kn), *v = kp__yscalar(vn);
        if (k == NULL || strncmp(k, "x-", 2) == 0)
            continue;
        if (strcmp(k, "type") == 0) {
            have_type = true;
            if (v == NULL || strcmp(v, "rsa") != 0)
                kp__pdiag(P, vn, "chain '%s': protector type must be 'rsa'", chain);
        } else if (strcmp(k, "bits") == 0) {
            if (v == NULL ||
                (strcmp(v, "2048") != 0 && strcmp(v, "3072") != 0 && strcmp(v, "4096") != 0))
                kp__pdiag(P, vn, "chain '%s': protector bits must be 2048, 3072 or 4096", chain);
            else
                c->pub.bits = (uint32_t)strtoul(v, NULL, 10); /* one of the three above */
        } else if (strcmp(k, "exportable") == 0) {
            bool yes = false;
            if (kpk_param_bool(v, &yes))
                c->pub.exportable = yes;
            else
                kp__pdiag(P, vn,
                          "chain '%s': protector exportable must be true or false (or yes/no, "
                          "on/off)",
                          chain);
        } else if (strcmp(k, "origin") == 0) {
            have_origin = true;
            if (s_ref(P, chain, vn, "origin", KP_CAP_KEYSTORE, "keystore")) {
                c->origin = kp__strdup(v);
                c->pub.origin = c->origin;
            }
        } else {
            char hint[96];
            kp__pdiag(P, kn,
                      "chain '%s': unknown key '%.64s' in protector (expected type, bits, "
                      "origin, exportable)%s",
                      chain, k,
                      kp__diag_hint(P->diags, hint, sizeof(hint), k, s_protector_keys,
                                    S_N(s_protector_keys)));
        }
    }
    if (!have_type)
        kp__pdiag(P, map, "chain '%s': protector lacks required key 'type'", chain);
    if (!have_origin)
        kp__pdiag(P, map, "chain '%s': protector lacks required key 'origin'", chain);
}

static void s_parse_rotation(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *map)
{
    if (!kp__ymapping_ok(P, map, "'rotation'"))
        return;
    bool have_every = false;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = kp__ynode(P, p->key), *vn = kp__ynode(P, p->value);
        const char *k = kp__yscalar(kn);
        if (k == NULL || strncmp(k, "x-", 2) == 0)
            continue;
        if (strcmp(k, "every") == 0)
            have_every =
                kp__yduration(P, vn, c->name, "'every'", false, S_LIKE, &c->pub.rotation_every);
        else if (strcmp(k, "warn_before") == 0)
            (void)kp__yduration(P, vn, c->name, "'warn_before'", false, S_LIKE,
                                &c->pub.rotation_warn);
        else {
            char hint[96];
            kp__pdiag(P, kn,
                      "chain '%s': unknown key '%.64s' in rotation (expected every, "
                      "warn_before)%s",
                      c->name, k,
                      kp__diag_hint(P->diags, hint, sizeof(hint), k, s_rotation_keys,
                                    S_N(s_rotation_keys)));
        }
    }
    if (!have_every)
        kp__pdiag(P, map, "chain '%s': rotation needs 'every'", c->name);
    else if (c->pub.rotation_every == 0 || c->pub.rotation_warn >= c->pub.rotation_every)
        kp__pdiag(P, map,
                  "chain '%s': rotation 'every' must be positive and longer than "
                  "'warn_before'",
                  c->name);
}

static void s_parse_chain(kp_pol_parser *P, yaml_node_t *kn, yaml_node_t *vn)
{
    const char *name = kp__ynamed(P, kn, vn, "chain");
    if (name == NULL)
        return;
    kp_pol_chain *c = &P->pol->chains[P->pol->nchains++];
    c->name = kp__strdup(name);
    c->pub.name = c->name;
    c->pub.wrap_alg = KP_WRAP_RSA_OAEP_SHA256;
    if (c->name == NULL)
        return;
    bool have_protector = false, have_replicas = false;
    yaml_node_t *restore_only = NULL, *secret_seq = NULL, *azure_sql = NULL, *sqlserver = NULL;
    for (yaml_node_pair_t *p = vn->data.mapping.pairs.start; p < vn->data.mapping.pairs.top; p++) {
        yaml_node_t *k = kp__ynode(P, p->key), *v = kp__ynode(P, p->value);
        const char *key = kp__yscalar(k);
        if (key == NULL || strncmp(key, "x-", 2) == 0)
            continue;
        if (strcmp(key, "protector") == 0) {
            have_protector = true;
            s_parse_protector(P, c, v);
        } else if (strcmp(key, "replicas") == 0) {
            have_replicas = true;
            c->replicas = s_parse_refs(P, name, v, "replicas", &c->pub.nreplicas, true);
            c->pub.replicas = (const char *const *)c->replicas;
        } else if (strcmp(key, "escrow") == 0) {
            c->escrow = s_parse_refs(P, name, v, "escrow", &c->pub.nescrow, false);
            c->pub.escrow = (const char *const *)c->escrow;
        } else if (strcmp(key, "secret_replicas") == 0) {
            secret_seq = v;
            c->secret_replicas =
                s_parse_refs(P, name, v, "secret_replicas", &c->pub.nsecret_replicas, false);
            c->pub.secret_replicas = (const char *const *)c->secret_replicas;
        } else if (strcmp(key, "restore_only") == 0) {
            restore_only = v;
            c->restore_only = s_parse_refs(P, name, v, "restore_only", &c->nrestore_only, false);
        } else if (strcmp(key, "secrets") == 0) {
            if (s_ref(P, name, v, "secrets", KP_CAP_SECRETSTORE, "secretstore")) {
                c->secrets = kp__strdup(kp__yscalar(v));
                c->pub.secrets = c->secrets;
            }
        } else if (strcmp(key, "algorithm") == 0) {
            const char *a = kp__yscalar(v);
            uint32_t alg = a != NULL ? kp_wrap_alg_from_name(a) : 0;
            if (alg != KP_WRAP_RSA_OAEP_SHA1 && alg != KP_WRAP_RSA_OAEP_SHA256)
                kp__pdiag(P, v, "chain '%s': algorithm must be RSA-OAEP or RSA-OAEP-256", name);
            else
                c->pub.wrap_alg = alg;
        } else if (strcmp(key, "rotation") == 0) {
            s_parse_rotation(P, c, v);
        } else if (strcmp(key, "retention") == 0) {
            (void)kp__yduration(P, v, name, "'retention'", false, S_LIKE, &c->pub.retention);
        } else if (strcmp(key, "azure_sql") == 0) {
            azure_sql = v; /* read once the chain's keystores are known */
        } else if (strcmp(key, "certificate") == 0) {
            kp__policy_parse_certificate(P, c, v);
        } else if (strcmp(key, "sqlserver") == 0) {
            sqlserver = v; /* read once the certificate block is */
        } else {
            char hint[96];
            kp__pdiag(
                P, k,
                "chain '%s': unknown key '%.64s' (expected protector, replicas, "
                "escrow, restore_only, secret_replicas, secrets, algorithm, rotation, "
                "retention, azure_sql, certificate, sqlserver)%s",
                name, key,
                kp__diag_hint(P->diags, hint, sizeof(hint), key, s_chain_keys, S_N(s_chain_keys)));
        }
    }
    if (restore_only != NULL)
        s_check_refs(P, c, restore_only, true);
    if (secret_seq != NULL)
        s_check_refs(P, c, secret_seq, false);
    if (azure_sql != NULL)
        kp__policy_parse_azure_sql(P, c, azure_sql);
    if (sqlserver != NULL)
        kp__policy_parse_sqlserver(P, c, sqlserver);
    if (!have_protector)
        kp__pdiag(P, vn, "chain '%s': missing required key 'protector'", name);
    size_t nstores = s_count_stores(c);
    if (nstores > KP__CHAIN_STORES_MAX)
        kp__pdiag(P, vn,
                  "chain '%s' names %zu stores; a chain holds at most %d (origin, replicas, "
                  "escrow and secret replicas)",
                  name, nstores, KP__CHAIN_STORES_MAX);
    /* A copy of the protector anywhere but its origin means the key leaves the origin: that
     * must be said in the policy, never assumed (an HSM key is not extractable by default). */
    const char *copy_to = NULL;
    for (size_t i = 0; c->origin != NULL && i < c->pub.nreplicas + c->pub.nescrow; i++) {
        const char *t = i < c->pub.nreplicas ? c->replicas[i] : c->escrow[i - c->pub.nreplicas];
        const kp_pol_instance *in = kp__policy_instance(P->pol, t);
        if (t != NULL && strcmp(t, c->origin) != 0 && in != NULL &&
            (in->described.capabilities & KP_CAP_KEYSTORE))
            copy_to = t;
    }
    /* Replicas that only store secrets get the key as password-protected PKCS#8: the chain
     * needs a secret store for those passwords, and an exportable protector. */
    const char *secret_to = c->pub.nsecret_replicas > 0 ? c->secret_replicas[0] : NULL;
    for (size_t i = 0; i < c->pub.nreplicas; i++) {
        const kp_pol_instance *in = kp__policy_instance(P->pol, c->replicas[i]);
        if (in != NULL && !(in->described.capabilities & KP_CAP_KEYSTORE))
            secret_to = c->replicas[i];
    }
    if (secret_to != NULL && c->secrets == NULL)
        kp__pdiag(P, kn,
                  "chain '%s': '%s' receives the protector as a password-protected secret, so "
                  "the chain needs 'secrets: INSTANCE' to keep the passwords",
                  name, secret_to);
    if (secret_to != NULL && copy_to == NULL)
        copy_to = secret_to;
    if (copy_to != NULL && !c->pub.exportable)
        kp__pdiag(P, kn,
                  "chain '%s': the protector is copied from '%s' to '%s', so it must be "
                  "declared 'exportable: true' in 'protector'",
                  name, c->origin, copy_to);
    if (!have_replicas)
        kp__pdiag(P, vn, "chain '%s': missing required key 'replicas'", name);
    kp__policy_check_certificate(P, c, kn);
    kp__policy_check_holders(P, c, kn);
}

void kp__policy_parse_chains(kp_pol_parser *P, yaml_node_t *map)
{
    if (!kp__ymapping_ok_max(P, map, "'chains'", KP__YCHAINS_MAX))
        return;
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    P->pol->chains = calloc(n + 1, sizeof(*P->pol->chains));
    if (P->pol->chains == NULL)
        return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        s_parse_chain(P, kp__ynode(P, p->key), kp__ynode(P, p->value));
    kp__policy_check_azure_sql(P);
}
