/*
 * Policy loading: YAML (libyaml's document API, which keeps line and column of every node)
 * into the validated model of policy.h. docs/policy.md documents the schema enforced here.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_internal.h"

#define KP_POLICY_MAX_BYTES (4 * 1024 * 1024)

/* ---- freeing ---------------------------------------------------------------------------- */

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

void kp_policy_free(kp_policy *pol)
{
    if (pol == NULL)
        return;
    for (size_t i = 0; i < pol->ninstances; i++) {
        kp_pol_instance *in = &pol->instances[i];
        for (size_t j = 0; j < in->nparams; j++) {
            free(in->params[j].name);
            free(in->params[j].value);
        }
        free(in->params);
        free(in->name);
        free(in->plugin_name);
    }
    free(pol->instances);
    for (size_t i = 0; i < pol->nchains; i++) {
        kp_pol_chain *c = &pol->chains[i];
        free(c->name);
        free(c->origin);
        s_strv_free(c->replicas, c->pub.nreplicas);
        s_strv_free(c->escrow, c->pub.nescrow);
        s_strv_free(c->secret_replicas, c->pub.nsecret_replicas);
        free(c->secrets);
    }
    free(pol->chains);
    free(pol->path);
    free(pol->dir);
    free(pol);
}

/* ---- providers -------------------------------------------------------------------------- */

const kp_pol_instance *kp__policy_instance(const kp_policy *pol, const char *name)
{
    for (size_t i = 0; pol != NULL && name != NULL && i < pol->ninstances; i++)
        if (strcmp(pol->instances[i].name, name) == 0)
            return &pol->instances[i];
    return NULL;
}

static void s_parse_instance(kp_pol_parser *P, yaml_node_t *kn, yaml_node_t *vn)
{
    const char *name = kp__yscalar(kn);
    if (!kp__name_valid(name, 63, false)) {
        kp__pdiag(P, kn,
                  "invalid instance name '%.64s': use [a-z0-9_-], starting with a letter "
                  "or digit, at most 63",
                  name);
        return;
    }
    char what[96];
    snprintf(what, sizeof(what), "instance '%s'", name);
    if (!kp__ymapping_ok(P, vn, what))
        return;
    kp_pol_instance *inst = &P->pol->instances[P->pol->ninstances];
    yaml_node_t *pk = NULL;
    const char *plugin = kp__yscalar(kp__ymap_get(P, vn, "plugin", &pk));
    if (plugin == NULL) {
        kp__pdiag(P, pk != NULL ? kp__ymap_get(P, vn, "plugin", NULL) : vn, "instance '%s': %s",
                  name,
                  pk != NULL ? "'plugin' must be a plugin name" : "missing required key 'plugin'");
        return;
    }
    kp_plugin *plug = NULL;
    kp_status lst = kp_plugin_load(P->ctx, plugin, &plug);
    if (lst != KP_OK) {
        kp__pdiag(P, kp__ymap_get(P, vn, "plugin", NULL), "instance '%s': %s '%.64s': %s", name,
                  lst == KP_ERR_NOT_FOUND ? "unknown plugin" : "cannot use plugin", plugin,
                  kp_ctx_last_error(P->ctx));
        return;
    }
    inst->name = kp__strdup(name);
    inst->plugin_name = kp__strdup(plugin);
    inst->plugin = plug;
    inst->line = KP_NODE_LINE(kn);
    inst->column = KP_NODE_COL(kn);
    P->pol->ninstances++;
    if (inst->name == NULL || inst->plugin_name == NULL) {
        kp__pdiag(P, kn, "out of memory");
        return;
    }
    kp__policy_parse_params(P, inst, vn);
    kp__policy_describe(P, inst, kn);
}

static void s_parse_providers(kp_pol_parser *P, yaml_node_t *map)
{
    if (!kp__ymapping_ok(P, map, "'providers'"))
        return;
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n == 0) {
        kp__pdiag(P, map, "'providers' must name at least one provider instance");
        return;
    }
    P->pol->instances = calloc(n, sizeof(*P->pol->instances));
    if (P->pol->instances == NULL)
        return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        s_parse_instance(P, kp__ynode(P, p->key), kp__ynode(P, p->value));
}

/* ---- chains ----------------------------------------------------------------------------- */

/* Resolves an instance reference and checks it offers one of caps. */
static bool s_ref(kp_pol_parser *P, const char *chain, yaml_node_t *n, const char *role,
                  uint32_t caps, const char *capname)
{
    const char *v = kp__yscalar(n);
    if (v == NULL) {
        kp__pdiag(P, n, "chain '%s': %s must be an instance name", chain, role);
        return false;
    }
    const kp_pol_instance *in = kp__policy_instance(P->pol, v);
    if (in == NULL) {
        kp__pdiag(P, n, "chain '%s': %s '%.64s' is not a provider instance of this policy", chain,
                  role, v);
        return false;
    }
    if ((in->described.capabilities & caps) == 0) {
        kp__pdiag(P, n, "chain '%s': %s '%s' (plugin %s) is not a %s", chain, role, v,
                  in->plugin_name, capname);
        return false;
    }
    return true;
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

static bool s_duration(kp_pol_parser *P, const char *chain, yaml_node_t *n, const char *key,
                       int64_t *out)
{
    const char *v = kp__yscalar(n);
    if (v == NULL || kp__parse_duration(v, out) != KP_OK) {
        kp__pdiag(P, n, "chain '%s': '%s' must be a duration like 35d, 12h, 52w or 1y", chain, key);
        return false;
    }
    return true;
}

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
                c->pub.bits = (uint32_t)atoi(v);
        } else if (strcmp(k, "exportable") == 0) {
            if (v != NULL && strcmp(v, "true") == 0)
                c->pub.exportable = 1;
            else if (v == NULL || strcmp(v, "false") != 0)
                kp__pdiag(P, vn, "chain '%s': protector exportable must be true or false", chain);
        } else if (strcmp(k, "origin") == 0) {
            have_origin = true;
            if (s_ref(P, chain, vn, "origin", KP_CAP_KEYSTORE, "keystore")) {
                c->origin = kp__strdup(v);
                c->pub.origin = c->origin;
            }
        } else {
            kp__pdiag(P, kn,
                      "chain '%s': unknown key '%.64s' in protector (expected type, bits, "
                      "origin, exportable)",
                      chain, k);
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
            have_every = s_duration(P, c->name, vn, "every", &c->pub.rotation_every);
        else if (strcmp(k, "warn_before") == 0)
            (void)s_duration(P, c->name, vn, "warn_before", &c->pub.rotation_warn);
        else
            kp__pdiag(P, kn,
                      "chain '%s': unknown key '%.64s' in rotation (expected every, "
                      "warn_before)",
                      c->name, k);
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
    const char *name = kp__yscalar(kn);
    if (!kp__name_valid(name, 63, false)) {
        kp__pdiag(P, kn,
                  "invalid chain name '%.64s': use [a-z0-9_-], starting with a letter or "
                  "digit, at most 63",
                  name);
        return;
    }
    char what[96];
    snprintf(what, sizeof(what), "chain '%s'", name);
    if (!kp__ymapping_ok(P, vn, what))
        return;
    kp_pol_chain *c = &P->pol->chains[P->pol->nchains++];
    c->name = kp__strdup(name);
    c->pub.name = c->name;
    c->pub.wrap_alg = KP_WRAP_RSA_OAEP_SHA256;
    if (c->name == NULL)
        return;
    bool have_protector = false, have_replicas = false;
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
            c->secret_replicas =
                s_parse_refs(P, name, v, "secret_replicas", &c->pub.nsecret_replicas, false);
            c->pub.secret_replicas = (const char *const *)c->secret_replicas;
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
            (void)s_duration(P, name, v, "retention", &c->pub.retention);
        } else {
            kp__pdiag(P, k,
                      "chain '%s': unknown key '%.64s' (expected protector, replicas, "
                      "escrow, secret_replicas, secrets, algorithm, rotation, retention)",
                      name, key);
        }
    }
    if (!have_protector)
        kp__pdiag(P, vn, "chain '%s': missing required key 'protector'", name);
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
    kp__policy_check_holders(P, c, kn);
}

static void s_parse_chains(kp_pol_parser *P, yaml_node_t *map)
{
    if (!kp__ymapping_ok(P, map, "'chains'"))
        return;
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    P->pol->chains = calloc(n + 1, sizeof(*P->pol->chains));
    if (P->pol->chains == NULL)
        return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        s_parse_chain(P, kp__ynode(P, p->key), kp__ynode(P, p->value));
}

/* ---- top level -------------------------------------------------------------------------- */

static void s_parse_root(kp_pol_parser *P)
{
    yaml_node_t *root = yaml_document_get_root_node(&P->doc);
    if (root == NULL) {
        kp__diag_add(P->diags, 1, 1,
                     "the policy is empty: it needs at least version and "
                     "providers");
        return;
    }
    if (!kp__ymapping_ok(P, root, "the policy"))
        return;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = kp__ynode(P, p->key);
        const char *key = kp__yscalar(k);
        if (key != NULL && strcmp(key, "version") != 0 && strcmp(key, "providers") != 0 &&
            strcmp(key, "chains") != 0 && strncmp(key, "x-", 2) != 0)
            kp__pdiag(P, k, "unknown key '%.64s' (expected version, providers, chains)", key);
    }
    yaml_node_t *v = kp__ymap_get(P, root, "version", NULL);
    const char *vs = kp__yscalar(v);
    if (v == NULL)
        kp__pdiag(P, root, "missing required key 'version' (use 'version: 1')");
    else if (vs == NULL || strcmp(vs, "1") != 0)
        kp__pdiag(P, v, "unsupported policy version '%.16s': this keyplane reads version 1",
                  vs != NULL ? vs : "?");
    /* Providers first: chains refer to them, wherever they stand in the file. */
    yaml_node_t *prov = kp__ymap_get(P, root, "providers", NULL);
    if (prov == NULL)
        kp__pdiag(P, root, "missing required key 'providers'");
    else
        s_parse_providers(P, prov);
    yaml_node_t *chains = kp__ymap_get(P, root, "chains", NULL);
    if (chains != NULL)
        s_parse_chains(P, chains);
}

static kp_status s_read_file(kp_ctx *ctx, const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return kp__set_error(ctx, errno == ENOENT ? KP_ERR_NOT_FOUND : KP_ERR_IO,
                             "cannot open policy %s: %s", path, strerror(errno));
    unsigned char *b = malloc(KP_POLICY_MAX_BYTES + 1);
    if (b == NULL) {
        fclose(f);
        return KP_ERR_NOMEM;
    }
    size_t n = fread(b, 1, KP_POLICY_MAX_BYTES + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > KP_POLICY_MAX_BYTES) {
        free(b);
        return kp__set_error(ctx, KP_ERR_IO, "cannot read policy %s: %s", path,
                             err ? "read error" : "larger than 4 MiB");
    }
    *buf = b;
    *len = n;
    return KP_OK;
}

/* The policy's directory, base of its relative paths; the working directory for a policy that
 * is no file (a pipe: /dev/stdin, <(...)). */
static char *s_dir_of(const char *path)
{
    char *abs = realpath(path, NULL);
    struct stat sb;
    if (abs == NULL || stat(abs, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        free(abs);
        return getcwd(NULL, 0);
    }
    char *slash = strrchr(abs, '/');
    if (slash == abs)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    return abs;
}

#define KP_POLICY_MAX_DEPTH 32
#define KP_POLICY_MAX_NODES 100000

/* Walks the event stream once before building the document: libyaml's document loader is slow
 * on deeply nested or enormous input, and no real policy is either. A syntax error is left to
 * the loader, which reports it with its position. */
static bool s_shape_ok(kp_pol_parser *P, const unsigned char *buf, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, buf, len);
    int depth = 0;
    size_t nodes = 0;
    bool ok = true, done = false;
    while (ok && !done && yaml_parser_parse(&parser, &ev)) {
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
            depth++;
        else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
            depth--;
        if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
            ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
            nodes++;
        if (depth > KP_POLICY_MAX_DEPTH || nodes > KP_POLICY_MAX_NODES) {
            kp__diag_add(P->diags, (unsigned)ev.start_mark.line + 1,
                         (unsigned)ev.start_mark.column + 1,
                         depth > KP_POLICY_MAX_DEPTH ? "nested deeper than %d levels"
                                                     : "more than %d YAML nodes",
                         depth > KP_POLICY_MAX_DEPTH ? KP_POLICY_MAX_DEPTH : KP_POLICY_MAX_NODES);
            ok = false;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return ok;
}

kp_status kp_policy_load(kp_ctx *ctx, const char *path, kp_policy **out, kp_diag_list **diags)
{
    KP_ENSURE(ctx != NULL && path != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    if (diags != NULL)
        *diags = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    KP_GUARD(s_read_file(ctx, path, &buf, &len));

    kp_pol_parser P = {.ctx = ctx};
    P.diags = kp__diag_list_new(path);
    P.pol = calloc(1, sizeof(*P.pol));
    if (P.pol != NULL) {
        static uint64_t s_next_id;
        P.pol->id = __atomic_add_fetch(&s_next_id, 1, __ATOMIC_RELAXED);
        P.pol->path = kp__strdup(path);
        P.pol->dir = s_dir_of(path);
    }
    if (P.diags == NULL || P.pol == NULL || P.pol->path == NULL || P.pol->dir == NULL) {
        free(buf);
        kp_diag_list_free(P.diags);
        kp_policy_free(P.pol);
        return KP_ERR_NOMEM;
    }

    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, buf, len);
    if (!s_shape_ok(&P, buf, len)) {
        /* reported by s_shape_ok */
    } else if (!yaml_parser_load(&parser, &P.doc)) {
        kp__diag_add(P.diags, (unsigned)parser.problem_mark.line + 1,
                     (unsigned)parser.problem_mark.column + 1, "YAML syntax error: %s%s%s",
                     parser.problem != NULL ? parser.problem : "malformed document",
                     parser.context != NULL ? " " : "",
                     parser.context != NULL ? parser.context : "");
    } else {
        s_parse_root(&P);
        yaml_document_delete(&P.doc);
        /* A second document would be silently ignored by a reader that stops at the first. */
        yaml_document_t extra;
        if (yaml_parser_load(&parser, &extra)) {
            yaml_node_t *root = yaml_document_get_root_node(&extra);
            if (root != NULL)
                kp__diag_add(P.diags, KP_NODE_LINE(root), KP_NODE_COL(root),
                             "a policy is one YAML document; remove the second one");
            yaml_document_delete(&extra);
        } else {
            kp__diag_add(P.diags, (unsigned)parser.problem_mark.line + 1,
                         (unsigned)parser.problem_mark.column + 1, "YAML syntax error: %s",
                         parser.problem != NULL ? parser.problem : "malformed document");
        }
    }
    yaml_parser_delete(&parser);
    free(buf);

    kp_status st = KP_OK;
    if (kp_diag_count(P.diags) > 0) {
        const kp_diag *d = kp_diag_get0(P.diags, 0);
        size_t more = kp_diag_count(P.diags) - 1;
        st = kp__set_error(ctx, KP_ERR_CONFIG, "%s:%u:%u: %s%s", d->file, d->line, d->column,
                           d->message, more > 0 ? " (and more)" : "");
        kp_policy_free(P.pol);
    } else {
        *out = P.pol;
    }
    if (diags != NULL)
        *diags = P.diags;
    else
        kp_diag_list_free(P.diags);
    return st;
}

/* ---- accessors -------------------------------------------------------------------------- */

uint64_t kp__policy_id(const kp_policy *pol)
{
    return pol != NULL ? pol->id : 0;
}

const char *kp_policy_get0_path(const kp_policy *pol)
{
    return pol != NULL ? pol->path : NULL;
}

size_t kp_policy_instance_count(const kp_policy *pol)
{
    return pol != NULL ? pol->ninstances : 0;
}

const char *kp_policy_instance_name(const kp_policy *pol, size_t i)
{
    return pol != NULL && i < pol->ninstances ? pol->instances[i].name : NULL;
}

const char *kp_policy_instance_plugin(const kp_policy *pol, const char *instance)
{
    const kp_pol_instance *in = kp__policy_instance(pol, instance);
    return in != NULL ? in->plugin_name : NULL;
}

uint32_t kp_policy_instance_capabilities(const kp_policy *pol, const char *instance)
{
    const kp_pol_instance *in =
        pol != NULL && instance != NULL ? kp__policy_instance(pol, instance) : NULL;
    return in != NULL ? in->described.capabilities : 0;
}

size_t kp_policy_chain_count(const kp_policy *pol)
{
    return pol != NULL ? pol->nchains : 0;
}

const kp_chain_policy *kp_policy_chain_at(const kp_policy *pol, size_t i)
{
    return pol != NULL && i < pol->nchains ? &pol->chains[i].pub : NULL;
}

const kp_chain_policy *kp_policy_chain(const kp_policy *pol, const char *name)
{
    for (size_t i = 0; pol != NULL && name != NULL && i < pol->nchains; i++)
        if (strcmp(pol->chains[i].name, name) == 0)
            return &pol->chains[i].pub;
    return NULL;
}
