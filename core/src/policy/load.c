/*
 * Policy loading: YAML (libyaml's document API, which keeps line and column of every node)
 * into the validated model of policy.h: the file, its shape, the top level and the 'providers'
 * section (chains.c parses 'chains'). docs/policy.md documents the schema enforced here.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/util.h"
#include "policy/parser.h"

#define KP_POLICY_MAX_BYTES (4 * 1024 * 1024)

static void s_parse_instance(kp_pol_parser *P, yaml_node_t *kn, yaml_node_t *vn)
{
    const char *name = kp__ynamed(P, kn, vn, "instance");
    if (name == NULL)
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
        kp__policy_parse_chains(P, chains);
}

static kp_status s_read_file(kp_ctx *ctx, const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return kp__set_error(ctx, errno == ENOENT ? KP_ERR_NOT_FOUND : KP_ERR_IO,
                             "cannot open policy %s: %s", path, strerror(errno));
    unsigned char *b = malloc(KP_POLICY_MAX_BYTES + 1);
    kp_status st = b != NULL ? KP_OK : KP_ERR_NOMEM;
    size_t n = st == KP_OK ? fread(b, 1, KP_POLICY_MAX_BYTES + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (st == KP_OK && (err || n > KP_POLICY_MAX_BYTES))
        st = kp__set_error(ctx, KP_ERR_IO, "cannot read policy %s: %s", path,
                           err ? "read error" : "larger than 4 MiB");
    if (st == KP_OK) {
        *buf = b;
        *len = n;
    } else {
        free(b);
    }
    return st;
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

/* The policy being built and its diagnostics, for the file at path. */
static kp_status s_begin(kp_pol_parser *P, const char *path)
{
    P->diags = kp__diag_list_new(path);
    P->pol = calloc(1, sizeof(*P->pol));
    if (P->pol != NULL) {
        static uint64_t s_next_id;
        P->pol->id = __atomic_add_fetch(&s_next_id, 1, __ATOMIC_RELAXED);
        P->pol->path = kp__strdup(path);
        P->pol->dir = s_dir_of(path);
    }
    return P->diags != NULL && P->pol != NULL && P->pol->path != NULL && P->pol->dir != NULL
               ? KP_OK
               : KP_ERR_NOMEM;
}

/* Parses the document in buf into P, every problem a diagnostic. */
static void s_parse(kp_pol_parser *P, const unsigned char *buf, size_t len)
{
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, buf, len);
    if (!s_shape_ok(P, buf, len)) {
        /* reported by s_shape_ok */
    } else if (!yaml_parser_load(&parser, &P->doc)) {
        kp__diag_add(P->diags, (unsigned)parser.problem_mark.line + 1,
                     (unsigned)parser.problem_mark.column + 1, "YAML syntax error: %s%s%s",
                     parser.problem != NULL ? parser.problem : "malformed document",
                     parser.context != NULL ? " " : "",
                     parser.context != NULL ? parser.context : "");
    } else {
        s_parse_root(P);
        yaml_document_delete(&P->doc);
        /* A second document would be silently ignored by a reader that stops at the first. */
        yaml_document_t extra;
        if (yaml_parser_load(&parser, &extra)) {
            yaml_node_t *root = yaml_document_get_root_node(&extra);
            if (root != NULL)
                kp__diag_add(P->diags, KP_NODE_LINE(root), KP_NODE_COL(root),
                             "a policy is one YAML document; remove the second one");
            yaml_document_delete(&extra);
        } else {
            kp__diag_add(P->diags, (unsigned)parser.problem_mark.line + 1,
                         (unsigned)parser.problem_mark.column + 1, "YAML syntax error: %s",
                         parser.problem != NULL ? parser.problem : "malformed document");
        }
    }
    yaml_parser_delete(&parser);
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
    kp_status st = s_begin(&P, path);
    if (st == KP_OK)
        s_parse(&P, buf, len);
    if (st == KP_OK && kp_diag_count(P.diags) > 0) {
        const kp_diag *d = kp_diag_get0(P.diags, 0);
        size_t more = kp_diag_count(P.diags) - 1;
        st = kp__set_error(ctx, KP_ERR_CONFIG, "%s:%u:%u: %s%s", d->file, d->line, d->column,
                           d->message, more > 0 ? " (and more)" : "");
    }
    if (st == KP_OK) {
        *out = P.pol;
        P.pol = NULL;
    }
    if (st != KP_ERR_NOMEM && diags != NULL) {
        *diags = P.diags;
        P.diags = NULL;
    }
    kp_diag_list_free(P.diags);
    kp_policy_free(P.pol);
    free(buf);
    return st;
}
