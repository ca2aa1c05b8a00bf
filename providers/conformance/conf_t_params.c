/*
 * params: the plugin's parameter descriptors are well formed; INSTANCE_OPEN refuses params
 * without a required one, with one line of error text; and it survives what the core itself
 * never passes (a relative PATH, an integer out of its bounds): the core makes paths absolute
 * and checks bounds before a plugin sees them (docs/abi.md, Parameters), so a plugin may rely on
 * that, but it must not crash or leak when called otherwise. Unknown params are not tried: the
 * core refuses them too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_tests.h"

static bool s_name_ok(const char *n)
{
    if (n == NULL || n[0] == '\0')
        return false;
    for (; *n != '\0'; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_'))
            return false;
    return true;
}

static size_t s_check_descs(conf_run *r, const kp_param_desc *d)
{
    size_t n = 0;
    for (; d[n].name != NULL; n++) {
        const kp_param_desc *p = &d[n];
        if (n >= 256) {
            conf_fail(r, "PLUGIN_PARAMS: more than 256 descriptors (no NULL name at the end?)");
            return n;
        }
        const char *name = p->name;
        if (!s_name_ok(p->name))
            conf_fail(r, "param \"%.40s\": the name is not [a-z0-9_]+", name);
        if (p->type < KP_PARAM_STRING || p->type > KP_PARAM_PATH)
            conf_fail(r, "param %s: unknown type %u", name, p->type);
        if (p->flags & ~KP_PARAM_REQUIRED)
            conf_fail(r, "param %s: unknown flags 0x%x", name, p->flags);
        if (p->help == NULL || p->help[0] == '\0' || !conf_one_line(p->help))
            conf_fail(r, "param %s: help is not one line of text", name);
        if (p->type == KP_PARAM_INT && p->min > p->max)
            conf_fail(r, "param %s: min %lld > max %lld", name, (long long)p->min,
                      (long long)p->max);
        for (size_t j = 0; j < n; j++)
            if (strcmp(d[j].name, p->name) == 0)
                conf_fail(r, "param %s is described twice", name);
    }
    return n;
}

/* Opens with params that must be refused; what names the variation. */
static void s_refused(conf_run *r, const kp_param *params, const char *what)
{
    void *inst = NULL;
    kp_core_handle *h = NULL;
    kp_status st = conf_open(r, params, &inst, &h);
    if (st == KP_OK) {
        conf_fail(r, "INSTANCE_OPEN accepted %s", what);
        conf_close(r, inst, h);
    } else if (!conf_err_was_set() || conf_err_text()[0] == '\0')
        conf_fail(r, "INSTANCE_OPEN refused %s (%s) without error text", what,
                  conf_status_name(st));
}

/* Opens with params the core never passes: either answer is fine, a crash or a leak is not
 * (both are caught by the runner), and a refusal must say why. */
static void s_survives(conf_run *r, const kp_param *params, const char *what)
{
    void *inst = NULL;
    kp_core_handle *h = NULL;
    kp_status st = conf_open(r, params, &inst, &h);
    if (st == KP_OK)
        conf_close(r, inst, h);
    else if (!conf_err_was_set() || conf_err_text()[0] == '\0')
        conf_fail(r, "INSTANCE_OPEN refused %s (%s) without error text", what,
                  conf_status_name(st));
}

/* The kit's params with one replaced (value != NULL), removed (value == NULL) or added. */
static kp_param *s_variant(const conf_kit *k, const char *name, const kp_param *value)
{
    kp_param *v = calloc(k->params.n + 2, sizeof(*v));
    size_t n = 0;
    bool done = false;
    for (size_t i = 0; v != NULL && i < k->params.n; i++) {
        if (strcmp(k->params.list[i].name, name) == 0) {
            done = true;
            if (value != NULL)
                v[n++] = *value;
        } else {
            v[n++] = k->params.list[i];
        }
    }
    if (v != NULL && !done && value != NULL)
        v[n] = *value;
    return v;
}

static void s_int_bounds(conf_run *r, const kp_param_desc *d)
{
    char what[160];
    int64_t bad[2];
    size_t nbad = 0;
    if (d->min > INT64_MIN)
        bad[nbad++] = d->min - 1;
    if (d->max < INT64_MAX)
        bad[nbad++] = d->max + 1;
    for (size_t i = 0; i < nbad; i++) {
        char str[32];
        snprintf(str, sizeof(str), "%lld", (long long)bad[i]);
        kp_param p = {.name = d->name, .type = KP_PARAM_INT, .str = str, .num = bad[i]};
        kp_param *v = s_variant(r->kit, d->name, &p);
        snprintf(what, sizeof(what), "%s = %s, outside %lld..%lld", d->name, str, (long long)d->min,
                 (long long)d->max);
        if (v != NULL)
            s_survives(r, v, what);
        free(v);
    }
}

void conf_t_params(conf_run *r)
{
    conf_kit *k = r->kit;
    kp_plugin_params_fn *fn = CONF_FN(k, plugin_params, KP_FN_PLUGIN_PARAMS);
    const kp_param_desc *descs = fn != NULL ? fn(k->plugin_ctx) : NULL;
    if (descs == NULL) {
        conf_fail(r, fn == NULL ? "no KP_FN_PLUGIN_PARAMS" : "PLUGIN_PARAMS returned NULL");
        return;
    }
    size_t n = s_check_descs(r, descs);
    char what[160];
    for (size_t i = 0; i < n; i++) {
        const kp_param_desc *d = &descs[i];
        if ((d->flags & KP_PARAM_REQUIRED) && kp_param_find(k->params.list, d->name) != NULL) {
            kp_param *v = s_variant(k, d->name, NULL);
            snprintf(what, sizeof(what), "params without the required '%s'", d->name);
            if (v != NULL)
                s_refused(r, v, what);
            free(v);
        }
        if (d->type == KP_PARAM_PATH) {
            kp_param p = {.name = d->name, .type = KP_PARAM_PATH, .str = "relative/path"};
            kp_param *v = s_variant(k, d->name, &p);
            snprintf(what, sizeof(what), "%s = relative/path (not absolute)", d->name);
            if (v != NULL)
                s_survives(r, v, what);
            free(v);
        }
        if (d->type == KP_PARAM_INT && d->min <= d->max)
            s_int_bounds(r, d);
    }
}
