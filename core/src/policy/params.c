/*
 * An instance's parameters, checked against what its plugin declares (KP_FN_PLUGIN_PARAMS):
 * unknown keys are errors unless they start with "x-" (a misspelt option must never pass
 * silently, and a near miss is named), required ones must be there, each value must have the
 * declared type. A boolean is kept as "true" or "false", whichever spelling the policy used.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <keyplane/kit/params.h>

#include "base/util.h"
#include "plugin/plugin.h"
#include "policy/parser.h"

/* Removes "." and "dir/.." segments in place; p is absolute. Lexical only (like Go's
 * filepath.Clean): a symlinked ".." is the user's to resolve. */
static void s_clean(char *p)
{
    char *out = p;
    const char *in = p;
    while (*in != '\0') {
        while (*in == '/')
            in++;
        const char *seg = in;
        while (*in != '\0' && *in != '/')
            in++;
        size_t n = (size_t)(in - seg);
        if (n == 0 || (n == 1 && seg[0] == '.'))
            continue;
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (out > p && *--out != '/')
                ;
            continue;
        }
        *out++ = '/';
        memmove(out, seg, n);
        out += n;
    }
    if (out == p)
        *out++ = '/';
    *out = '\0';
}

/* PATH values become absolute, relative to the policy's directory, so a policy means the same
 * whatever the current directory of the process reading it. */
static char *s_abs_path(const kp_policy *pol, const char *v)
{
    size_t n = strlen(pol->dir) + strlen(v) + 2;
    char *p = malloc(n);
    if (p == NULL)
        return NULL;
    if (v[0] == '/')
        snprintf(p, n, "%s", v);
    else
        snprintf(p, n, "%s/%s", pol->dir, v);
    s_clean(p);
    return p;
}

static bool s_check_value(kp_pol_parser *P, const kp_pol_instance *inst, const kp_param_desc *d,
                          yaml_node_t *vn, const char *v)
{
    bool yes = false;
    switch ((kp_param_type)d->type) {
    case KP_PARAM_STRING:
        return true;
    case KP_PARAM_PATH:
        if (v[0] == '\0') {
            kp__pdiag(P, vn, "instance '%s': parameter '%s' must be a non-empty path", inst->name,
                      d->name);
            return false;
        }
        return true;
    case KP_PARAM_INT: {
        errno = 0;
        char *end = NULL;
        long long n = strtoll(v, &end, 10);
        if (!(isdigit((unsigned char)v[0]) || (v[0] == '-' && isdigit((unsigned char)v[1]))) ||
            errno != 0 || *end != '\0') {
            kp__pdiag(P, vn, "instance '%s': parameter '%s' must be an integer, not '%.40s'",
                      inst->name, d->name, v);
            return false;
        }
        if (n < d->min || n > d->max) {
            kp__pdiag(P, vn, "instance '%s': parameter '%s' must be within %lld..%lld", inst->name,
                      d->name, (long long)d->min, (long long)d->max);
            return false;
        }
        return true;
    }
    case KP_PARAM_BOOL:
        if (!kpk_param_bool(v, &yes)) {
            kp__pdiag(P, vn,
                      "instance '%s': parameter '%s' must be true or false (or yes/no, on/off)",
                      inst->name, d->name);
            return false;
        }
        return true;
    case KP_PARAM_SECRET:
        /* Never echo the value: a user may have pasted the secret itself. */
        if (!kp_secret_source_valid(v) || strncmp(v, "fd:", 3) == 0 || strcmp(v, "stdin") == 0 ||
            strcmp(v, "-") == 0) {
            kp__pdiag(P, vn,
                      "instance '%s': parameter '%s' takes a reference to a secret (env:NAME or "
                      "file:PATH), not the secret itself",
                      inst->name, d->name);
            return false;
        }
        return true;
    }
    kp__pdiag(P, vn, "instance '%s': plugin declares parameter '%s' with unknown type %u",
              inst->name, d->name, d->type);
    return false;
}

void kp__policy_parse_params(kp_pol_parser *P, kp_pol_instance *inst, yaml_node_t *map)
{
    const kp_param_desc *descs = kp_plugin_get0_params(inst->plugin);
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    inst->params = calloc(n + 1, sizeof(*inst->params));
    if (inst->params == NULL) {
        kp__pdiag(P, map, "out of memory");
        return;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = kp__ynode(P, p->key);
        yaml_node_t *vn = kp__ynode(P, p->value);
        const char *key = kp__yscalar(kn);
        if (key == NULL || strcmp(key, "plugin") == 0 || strncmp(key, "x-", 2) == 0)
            continue;
        const kp_param_desc *d = kpk_param_desc(descs, key);
        if (d == NULL) {
            char acc[1024], hint[96];
            const char *names[KP__YMAP_MAX];
            size_t nnames = 0;
            for (const kp_param_desc *e = descs;
                 e != NULL && e->name != NULL && nnames < KP__YMAP_MAX; e++)
                names[nnames++] = e->name;
            kpk_param_names(descs, acc, sizeof(acc));
            kp__pdiag(P, kn,
                      "instance '%s': unknown parameter '%.64s' for plugin '%s' "
                      "(accepted: %s)%s",
                      inst->name, key, inst->plugin_name, acc,
                      kp__diag_hint(P->diags, hint, sizeof(hint), key, names, nnames));
            continue;
        }
        const char *v = kp__yscalar(vn);
        if (v != NULL && vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            (v[0] == '\0' || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0)) {
            kp__pdiag(P, vn, "instance '%s': parameter '%s' has no value", inst->name, key);
            continue;
        }
        if (v == NULL && vn->type == YAML_SCALAR_NODE) {
            kp__pdiag(P, vn, "instance '%s': parameter '%s' contains a NUL character", inst->name,
                      key);
            continue;
        }
        if (v == NULL) {
            kp__pdiag(P, vn, "instance '%s': parameter '%s' must be a single value, not a %s",
                      inst->name, key, vn->type == YAML_MAPPING_NODE ? "mapping" : "list");
            continue;
        }
        if (!s_check_value(P, inst, d, vn, v))
            continue;
        kp_pol_param *pp = &inst->params[inst->nparams++];
        pp->name = kp__strdup(d->name);
        bool yes = false;
        if (d->type == KP_PARAM_PATH) {
            pp->value = s_abs_path(P->pol, v);
        } else if (d->type == KP_PARAM_BOOL) {
            /* one spelling for the plugin, whichever the policy used */
            pp->value = kp__strdup(kpk_param_bool(v, &yes) && yes ? "true" : "false");
        } else if (d->type == KP_PARAM_SECRET && strncmp(v, "file:", 5) == 0) {
            /* Like PATH params: a relative secret file is relative to the policy. */
            char *abs = s_abs_path(P->pol, v + 5);
            size_t len = abs != NULL ? strlen(abs) + 6 : 0;
            pp->value = abs != NULL ? malloc(len) : NULL;
            if (pp->value != NULL)
                snprintf(pp->value, len, "file:%s", abs);
            free(abs);
        } else {
            pp->value = kp__strdup(v);
        }
        pp->type = d->type;
        pp->line = KP_NODE_LINE(vn);
        pp->column = KP_NODE_COL(vn);
        if (pp->name == NULL || pp->value == NULL)
            kp__pdiag(P, vn, "out of memory");
    }
    for (const kp_param_desc *d = descs; d != NULL && d->name != NULL; d++) {
        if (!(d->flags & KP_PARAM_REQUIRED))
            continue;
        if (kp__ymap_get(P, map, d->name, NULL) == NULL)
            kp__pdiag(P, map, "instance '%s': missing required parameter '%s' (%s)", inst->name,
                      d->name, d->help != NULL ? d->help : "see the plugin's documentation");
    }
}
