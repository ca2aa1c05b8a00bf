/*
 * Policy loading: YAML (libyaml's document API, which keeps line and column of every node)
 * into the validated model of policy.h: the file or a buffer holding it, its shape (the bounds
 * that keep hostile YAML cheap: depth, nodes with aliases counted where used, anchors, no
 * tags), syntax errors told by position only, the top level and the 'providers' section
 * (chains.c parses 'chains'). docs/policy.md documents the schema enforced here.
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

static void s_plugin_seen(void *arg, const char *path, const kp_plugin *plugin, kp_status st,
                          const char *reason)
{
    (void)path;
    (void)reason;
    kp_pol_parser *P = arg;
    if (st != KP_OK || plugin == NULL || P->nplugins >= 256)
        return;
    char **v = realloc(P->plugins, (P->nplugins + 1) * sizeof(*v));
    if (v == NULL)
        return;
    P->plugins = v;
    char *name = kp__strdup(kp_plugin_get0_info(plugin)->name);
    if (name != NULL)
        P->plugins[P->nplugins++] = name;
}

static int s_strptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "; did you mean 'file'? available: azure-keyvault, file, pkcs11" for the unknown plugin
 * name, into buf: the plugins that load from the plugin directories, listed once per parse. */
static const char *s_plugin_hint(kp_pol_parser *P, const char *name, char *buf, size_t len)
{
    if (!P->plugins_listed) {
        P->plugins_listed = true;
        /* a scan that fails part way lists what it found so far */
        kp_status scanned = kp_plugin_scan(P->ctx, s_plugin_seen, P);
        (void)scanned;
        if (P->nplugins > 1)
            qsort(P->plugins, P->nplugins, sizeof(*P->plugins), s_strptr_cmp);
    }
    kp__diag_hint(P->diags, buf, len, name, (const char *const *)P->plugins, P->nplugins);
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 0 ? " " : "; ",
                          P->nplugins > 0 ? "available:" : "no plugin is available");
    for (size_t i = 0; i < P->nplugins && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i > 0 ? ", " : " ", P->plugins[i]);
    return buf;
}

static void s_parse_instance(kp_pol_parser *P, yaml_node_t *kn, yaml_node_t *vn)
{
    const char *name = kp__ynamed(P, kn, vn, "instance");
    if (name == NULL) {
        kp__policy_set_unusable(P, kp__yscalar(kn));
        return;
    }
    kp_pol_instance *inst = &P->pol->instances[P->pol->ninstances];
    yaml_node_t *pk = NULL;
    const char *plugin = kp__yscalar(kp__ymap_get(P, vn, "plugin", &pk));
    if (plugin == NULL) {
        kp__pdiag(P, pk != NULL ? kp__ymap_get(P, vn, "plugin", NULL) : vn, "instance '%s': %s",
                  name,
                  pk != NULL ? "'plugin' must be a plugin name" : "missing required key 'plugin'");
        kp__policy_set_unusable(P, name);
        return;
    }
    kp_plugin *plug = NULL;
    kp_status lst = kp_plugin_load(P->ctx, plugin, &plug);
    if (lst != KP_OK) {
        yaml_node_t *at = kp__ymap_get(P, vn, "plugin", NULL);
        char reason[256], hint[320];
        snprintf(reason, sizeof(reason), "%s", kp_ctx_last_error(P->ctx));
        if (lst == KP_ERR_NOT_FOUND)
            kp__pdiag(P, at, "instance '%s': unknown plugin '%.64s'%s (%s)", name, plugin,
                      s_plugin_hint(P, plugin, hint, sizeof(hint)), reason);
        else
            kp__pdiag(P, at, "instance '%s': cannot use plugin '%.64s': %s", name, plugin, reason);
        kp__policy_set_unusable(P, name);
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
    if (!kp__ymapping_ok(P, map, "'providers'")) {
        /* Not read: the names it declares are no instances, but neither are they errors of
         * every chain that refers to them. */
        if (map->type == YAML_MAPPING_NODE)
            for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
                 p < map->data.mapping.pairs.top; p++)
                kp__policy_set_unusable(P, kp__yscalar(kp__ynode(P, p->key)));
        else
            P->providers_unread = true;
        return;
    }
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n == 0) {
        kp__pdiag(P, map, "'providers' must name at least one provider instance");
        P->providers_unread = true;
        return;
    }
    P->pol->instances = calloc(n, sizeof(*P->pol->instances));
    if (P->pol->instances == NULL)
        return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        s_parse_instance(P, kp__ynode(P, p->key), kp__ynode(P, p->value));
    kp__policy_index(P->pol);
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
        static const char *const top[] = {"version", "providers", "chains"};
        char hint[96];
        if (key != NULL && strcmp(key, "version") != 0 && strcmp(key, "providers") != 0 &&
            strcmp(key, "chains") != 0 && strncmp(key, "x-", 2) != 0)
            kp__pdiag(P, k, "unknown key '%.64s' (expected version, providers, chains)%s", key,
                      kp__diag_hint(P->diags, hint, sizeof(hint), key, top, 3));
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
    P->providers_unread = prov == NULL;
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
#define KP_POLICY_MAX_NODES 1000000
#define KP_POLICY_MAX_ANCHORS 256
#define S_Q(x) S_Q2(x)
#define S_Q2(x) #x
#define S_TOO_MANY_NODES "more than " S_Q(KP_POLICY_MAX_NODES) " YAML nodes"

/* An anchor of the document as the event pass meets it: how many nodes an alias of it
 * repeats, and whether its collection is still being read (an alias inside it would make the
 * document infinite). */
typedef struct {
    char *name;
    size_t size;
    bool open;
} s_anchor;

typedef struct {
    s_anchor *v;
    size_t n;
} s_anchors;

/* The last anchor called name (a name may be reused: an alias means the latest), or NULL. */
static s_anchor *s_anchor_find(s_anchors *a, const char *name)
{
    for (size_t i = a->n; name != NULL && i > 0; i--)
        if (strcmp(a->v[i - 1].name, name) == 0)
            return &a->v[i - 1];
    return NULL;
}

/* Walks the event stream once before building the document: libyaml's document loader is slow
 * on deeply nested or enormous input, and no real policy is either. Nodes are counted where
 * they are used: an alias counts as every node of what it repeats, so that a small file whose
 * aliases repeat a large list many times is refused here, once, before anything walks it.
 * Explicit tags are refused too: the policy has no use for them, and ignoring one (!!binary)
 * would read a value as something other than what its author wrote. A syntax error is left to
 * the loader, which reports it with its position. */
static bool s_shape_ok(kp_pol_parser *P, const unsigned char *buf, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, buf, len);
    struct {
        size_t first; /* nodes before this collection */
        s_anchor *anchor;
    } open[KP_POLICY_MAX_DEPTH];
    s_anchors anchors = {.v = calloc(KP_POLICY_MAX_ANCHORS, sizeof(s_anchor))};
    int depth = 0;
    size_t nodes = 0;
    const char *why = anchors.v != NULL ? NULL : "out of memory";
    bool done = false;
    while (why == NULL && !done && yaml_parser_parse(&parser, &ev)) {
        const char *anchor = NULL, *tag = NULL;
        bool aliased = false;
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            anchor = (const char *)ev.data.scalar.anchor;
            tag = (const char *)ev.data.scalar.tag;
            nodes++;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            anchor =
                (const char *)(ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
                                                                    : ev.data.mapping_start.anchor);
            tag = (const char *)(ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.tag
                                                                      : ev.data.mapping_start.tag);
            if (depth == KP_POLICY_MAX_DEPTH) {
                why = "nested deeper than " S_Q(KP_POLICY_MAX_DEPTH) " levels";
                break;
            }
            open[depth].first = nodes++;
            open[depth].anchor = NULL;
            depth++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            if (depth >= 0 && open[depth].anchor != NULL) {
                open[depth].anchor->size = nodes - open[depth].first;
                open[depth].anchor->open = false;
            }
            break;
        case YAML_ALIAS_EVENT: {
            s_anchor *a = s_anchor_find(&anchors, (const char *)ev.data.alias.anchor);
            if (a != NULL && a->open)
                why = "an alias refers to a collection that contains it";
            nodes += a != NULL ? a->size : 1; /* an undefined one is the loader's to report */
            aliased = a != NULL && a->size > 1;
            break;
        }
        default:
            break;
        }
        if (why == NULL && tag != NULL)
            why = "explicit YAML tags (such as !!binary or !foo) are not allowed in a policy: "
                  "write the value without one";
        if (why == NULL && anchor != NULL && anchors.n == KP_POLICY_MAX_ANCHORS)
            why = "more than " S_Q(KP_POLICY_MAX_ANCHORS) " YAML anchors";
        if (why == NULL && anchor != NULL) {
            s_anchor *a = &anchors.v[anchors.n];
            a->name = kp__strdup(anchor);
            a->size = 1;
            a->open = ev.type != YAML_SCALAR_EVENT;
            if (a->open)
                open[depth - 1].anchor = a;
            why = a->name != NULL ? NULL : "out of memory";
            anchors.n += why == NULL;
        }
        if (why == NULL && nodes > KP_POLICY_MAX_NODES)
            why = aliased ? S_TOO_MANY_NODES " once aliases are expanded (an alias counts as every "
                                             "node it repeats)"
                          : S_TOO_MANY_NODES;
        if (why != NULL)
            kp__diag_add(P->diags, (unsigned)ev.start_mark.line + 1,
                         (unsigned)ev.start_mark.column + 1, "%s", why);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    for (size_t i = 0; i < anchors.n; i++)
        free(anchors.v[i].name);
    free(anchors.v);
    yaml_parser_delete(&parser);
    return why == NULL;
}

/* Reports the loader's syntax error at its position: libyaml's own words (fixed strings, never
 * the input), or, where the line is indented with a tab, that YAML forbids it. */
static void s_syntax_error(kp_pol_parser *P, const yaml_parser_t *parser, const unsigned char *buf,
                           size_t len)
{
    unsigned line = (unsigned)parser->problem_mark.line + 1;
    unsigned column = (unsigned)parser->problem_mark.column + 1;
    size_t at = 0; /* where that line starts in buf */
    if (parser->error == YAML_READER_ERROR) {
        /* an encoding error has a byte offset, not a mark */
        line = 1;
        for (size_t i = 0; i < parser->problem_offset && i < len; i++)
            if (buf[i] == '\n') {
                line++;
                at = i + 1;
            }
        column = (unsigned)(parser->problem_offset - at) + 1;
    } else {
        for (unsigned l = 1; l < line && at < len; at++)
            l += buf[at] == '\n';
    }
    for (size_t i = at; parser->error != YAML_READER_ERROR && i < len; i++) {
        if (buf[i] == '\t') {
            kp__diag_add(P->diags, line, (unsigned)(i - at) + 1,
                         "tabs are not allowed for indentation in YAML: indent with spaces");
            return;
        }
        if (buf[i] != ' ')
            break;
    }
    kp__diag_add(P->diags, line, column, "YAML syntax error: %s%s%s",
                 parser->problem != NULL ? parser->problem : "malformed document",
                 parser->context != NULL ? " " : "",
                 parser->context != NULL ? parser->context : "");
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
        s_syntax_error(P, &parser, buf, len);
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
            s_syntax_error(P, &parser, buf, len);
        }
    }
    yaml_parser_delete(&parser);
    kp__diag_finish(P->diags);
}

kp_status kp__policy_load_buffer(kp_ctx *ctx, const char *path, const void *buf, size_t len,
                                 kp_policy **out, kp_diag_list **diags)
{
    KP_ENSURE(ctx != NULL && path != NULL && (buf != NULL || len == 0) && out != NULL,
              KP_ERR_INVALID_ARG);
    *out = NULL;
    if (diags != NULL)
        *diags = NULL;
    if (len > KP_POLICY_MAX_BYTES)
        return kp__set_error(ctx, KP_ERR_IO, "cannot read policy %s: larger than 4 MiB", path);
    kp_pol_parser P = {.ctx = ctx};
    kp_status st = s_begin(&P, path);
    if (st == KP_OK)
        s_parse(&P, len > 0 ? buf : (const void *)"", len);
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
    for (size_t i = 0; i < P.nplugins; i++)
        free(P.plugins[i]);
    free(P.plugins);
    free(P.unusable);
    kp_diag_list_free(P.diags);
    kp_policy_free(P.pol);
    return st;
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
    kp_status st = kp__policy_load_buffer(ctx, path, buf, len, out, diags);
    free(buf);
    return st;
}
