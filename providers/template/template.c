/*
 * template: a minimal keyplane plugin to copy. It offers a secret store that lives in memory
 * for the life of the instance, which is enough to show the whole ABI contract: the handshake,
 * the info and params, instance lifecycle, secrets allocated through the core's upcalls, and
 * errors reported with SET_ERROR. See docs/abi.md.
 */
#include <stdlib.h>
#include <string.h>

#include <keyplane/provider.h>

#define TEMPLATE_MAX 64

/* The core's services, filled at init (kp_upcalls_get checks each against its typedef). */
static kp_upcalls s_up;

typedef struct tpl_item {
    char name[KP_NAME_MAX];
    uint32_t version;
    kp_secret *value;
} tpl_item;

typedef struct tpl_inst {
    kp_core_handle *h;
    size_t n;
    tpl_item items[TEMPLATE_MAX];
} tpl_inst;

static const kp_plugin_info s_info = {sizeof(kp_plugin_info),
                                      KP_ABI_MAJOR,
                                      KP_ABI_MINOR,
                                      "template",
                                      "0.1.0",
                                      "example plugin: an in-memory secret store",
                                      KP_CAP_SECRETSTORE};

static const kp_param_desc s_params[] = {
    {"label", KP_PARAM_STRING, 0, 0, 0, "free text, shown by check"},
    {NULL, 0, 0, 0, 0, NULL},
};

static kp_plugin_info_fn s_plugin_info;
static kp_plugin_params_fn s_plugin_params;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;
static kp_instance_check_fn s_check;
static kp_ss_put_fn s_put;
static kp_ss_get_fn s_get;
static kp_ss_list_fn s_list;

static const kp_plugin_info *s_plugin_info(void *plugin_ctx)
{
    (void)plugin_ctx;
    return &s_info;
}

static const kp_param_desc *s_plugin_params(void *plugin_ctx)
{
    (void)plugin_ctx;
    return s_params;
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    (void)plugin_ctx, (void)params;
    tpl_inst *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return s_up.set_error(h, KP_ERR_NOMEM, "out of memory");
    t->h = h;
    *inst = t;
    return KP_OK;
}

static void s_close(void *inst)
{
    tpl_inst *t = inst;
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        s_up.secret_free(t->items[i].value); /* the core wipes */
    free(t);
}

static kp_status s_check(void *inst, kp_check_report_fn report, void *arg)
{
    (void)inst;
    report(arg, "memory", KP_OK, "in-memory store ready");
    return KP_OK;
}

static kp_status s_put(void *inst, const char *name, const kp_secret *value, const kp_meta *meta,
                       size_t nmeta, uint32_t *version)
{
    (void)meta, (void)nmeta;
    tpl_inst *t = inst;
    if (strlen(name) >= KP_NAME_MAX)
        return s_up.set_error(t->h, KP_ERR_INVALID_ARG, "name too long");
    if (t->n == TEMPLATE_MAX)
        return s_up.set_error(t->h, KP_ERR_BACKEND, "store full");
    uint32_t v = 0;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->items[i].name, name) == 0 && t->items[i].version > v)
            v = t->items[i].version;
    tpl_item *it = &t->items[t->n];
    it->value = s_up.secret_new(s_up.secret_len(value));
    if (it->value == NULL)
        return s_up.set_error(t->h, KP_ERR_NOMEM, "out of memory");
    memcpy(s_up.secret_data(it->value), s_up.secret_cdata(value), s_up.secret_len(value));
    strcpy(it->name, name);
    it->version = v + 1;
    t->n++;
    *version = it->version;
    return KP_OK;
}

static kp_status s_visit(const tpl_item *it, kp_secret_visit_fn visit, void *arg)
{
    kp_secret_info info = {{0}, it->version, 0, s_up.secret_len(it->value)};
    strcpy(info.name, it->name);
    return visit(arg, &info, NULL, 0);
}

static kp_status s_get(void *inst, const char *name, uint32_t version, kp_secret **value,
                       kp_secret_visit_fn visit, void *arg)
{
    tpl_inst *t = inst;
    const tpl_item *best = NULL;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->items[i].name, name) == 0 &&
            (version == 0 ? best == NULL || t->items[i].version > best->version
                          : t->items[i].version == version))
            best = &t->items[i];
    if (best == NULL)
        return s_up.set_error(t->h, KP_ERR_NOT_FOUND, "no such secret");
    *value = s_up.secret_new(s_up.secret_len(best->value));
    if (*value == NULL)
        return s_up.set_error(t->h, KP_ERR_NOMEM, "out of memory");
    memcpy(s_up.secret_data(*value), s_up.secret_cdata(best->value), s_up.secret_len(best->value));
    return visit != NULL ? s_visit(best, visit, arg) : KP_OK;
}

static kp_status s_list(void *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    tpl_inst *t = inst;
    for (size_t i = 0; i < t->n; i++) {
        if (name != NULL && strcmp(t->items[i].name, name) != 0)
            continue;
        kp_status st = s_visit(&t->items[i], visit, arg);
        if (st != KP_OK)
            return st;
    }
    return KP_OK;
}

static const kp_dispatch s_table[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_plugin_info},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_plugin_params},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)s_check},
    {KP_FN_SS_PUT, (kp_fn)s_put},
    {KP_FN_SS_GET, (kp_fn)s_get},
    {KP_FN_SS_LIST, (kp_fn)s_list},
    {0, NULL},
};

KP_PLUGIN_EXPORT kp_plugin_init_fn kp_plugin_init;

kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out, void **plugin_ctx)
{
    kp_status st = kp_plugin_accept(core, out, plugin_ctx, &s_up, "template: core lacks an upcall");
    if (st != KP_OK)
        return st;
    *out = s_table;
    *plugin_ctx = NULL;
    return KP_OK;
}
