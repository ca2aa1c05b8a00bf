/*
 * template: the plugin itself: the handshake, what the plugin and its instances declare, the
 * params, and the instance lifecycle. The keystore and secret store functions are in the other
 * template_*.c files (template.h lists them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

#define LABEL_MAX 64
#define MAXV_MIN 1
#define MAXV_MAX 1000000

/* Declared with the ABI's typedefs, so the compiler checks each function's type before it goes
 * into the dispatch table through a cast. */
static kp_plugin_info_fn s_plugin_info;
static kp_plugin_params_fn s_plugin_params;
static kp_plugin_teardown_fn s_plugin_teardown;
static kp_plugin_describe_fn s_plugin_describe;
static kp_plugin_check_key_fn s_plugin_check_key;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;
static kp_instance_check_fn s_check;
static kp_instance_info_fn s_instance_info;

/* --- What the plugin declares ------------------------------------------------------------- */

static const kp_plugin_info s_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    /* The lowest minor this plugin needs, not KP_ABI_MINOR: everything used here is ABI 1.0,
     * so any 1.x core loads it. Raise it only when you use an id marked "since 1.N". */
    .abi_minor = 0,
    .name = TPL_NAME,
    .version = "1.0.0",
    .description = "example keystore: software RSA keys and secrets in memory",
    /* Every capability any instance may have; each instance says which it has (s_fill_info). */
    .capabilities = KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE,
};

/* The core checks names, types and bounds against this list before open is called, and refuses
 * a policy with an unknown or missing parameter, so open only checks meaning. */
static const kp_param_desc s_params[] = {
    {.name = "label", .type = KP_PARAM_STRING, .help = "free text shown by check (64 bytes)"},
    {.name = "max_versions",
     .type = KP_PARAM_INT,
     .min = MAXV_MIN,
     .max = MAXV_MAX,
     .help = "most versions one key or secret may have (default: no limit)"},
    {.name = "secret_store",
     .type = KP_PARAM_BOOL,
     .help = "also be a secret store (default true); false: a keystore only"},
    {.name = NULL},
};

/* One place decides what an instance is, from its params alone, so PLUGIN_DESCRIBE (before
 * open, at `policy validate`) and INSTANCE_INFO (after open) can never disagree. */
static void s_fill_info(bool secret_store, kp_instance_info *info)
{
    /* The core owns info and set its struct_size; write only what that size holds, so a core
     * built with an older, shorter kp_instance_info is not overrun. */
    kp_instance_info full = {
        .struct_size = sizeof(full),
        .capabilities = KP_CAP_KEYSTORE | (secret_store ? KP_CAP_SECRETSTORE : 0),
        .wrap_algs = TPL_WRAP_ALGS,
        .unwrap_algs = TPL_WRAP_ALGS,
        .key_bits = TPL_KEY_BITS,
        .export_keyx = TPL_KEYX,
        .import_keyx = TPL_KEYX,
        /* Compare-and-swap of the state document is exact, but only this process sees this
         * store. Set KP_INST_STATE_CAS only when the backend itself does conditional writes
         * (an ETag with If-Match, a version check in a transaction). */
        .flags = 0,
        .secret_max = secret_store ? TPL_SECRET_MAX : 0,
    };
    uint32_t keep = info->struct_size;
    memcpy(info, &full, keep < sizeof(full) ? keep : sizeof(full));
    info->struct_size = keep;
}

static bool s_param_secret_store(const kp_param *params)
{
    const kp_param *p = kp_param_find(params, "secret_store");
    return p == NULL || p->num != 0;
}

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

static void s_plugin_teardown(void *plugin_ctx)
{
    free(plugin_ctx);
}

static kp_status s_plugin_describe(void *plugin_ctx, const kp_param *params, kp_instance_info *info)
{
    (void)plugin_ctx;
    s_fill_info(s_param_secret_store(params), info);
    return KP_OK;
}

/* The store's domain rules, asked before anything is created (`policy validate`, `plan`), so a
 * chain this store cannot hold fails there and not halfway through an apply. Keep it in step
 * with what KS_CREATE and KS_IMPORT accept. */
static kp_status s_plugin_check_key(void *plugin_ctx, const kp_param *params, const kp_key_spec *in)
{
    tpl_plugin *p = plugin_ctx;
    kp_key_spec spec;
    char why[256];
    kp_status st = KP_OK;
    (void)params; /* every instance of the template has the same rules */
    KP_ENSURE(kp_key_spec_read(in, &spec),
              kp_errorf(&p->up, p->h, KP_ERR_INVALID_ARG, TPL_NAME ": no key spec"));
    if ((st = tpl_spec_rules(&spec, why, sizeof(why))) != KP_OK)
        return kp_errorf(&p->up, p->h, st, TPL_NAME ": %s", why);
    return KP_OK;
}

/* --- Instances ------------------------------------------------------------------------------ */

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    tpl_plugin *p = plugin_ctx;
    const kp_param *label = kp_param_find(params, "label");
    const kp_param *maxv = kp_param_find(params, "max_versions");
    kp_status st = KP_OK;
    tpl_inst *t;

    /* The core checked the type and bounds; the meaning is ours to check, with one line that
     * names the parameter. */
    KP_ENSURE(
        label == NULL || strlen(label->str) <= LABEL_MAX,
        kp_errorf(&p->up, h, KP_ERR_CONFIG, TPL_NAME ": label is longer than %d bytes", LABEL_MAX));
    /* The core enforces the bounds too; a plugin does not rely on its caller for its invariants
     * (the conformance kit calls open with values out of range). */
    KP_ENSURE(maxv == NULL || (maxv->num >= MAXV_MIN && maxv->num <= MAXV_MAX),
              kp_errorf(&p->up, h, KP_ERR_CONFIG, TPL_NAME ": max_versions must be %d..%d",
                        MAXV_MIN, MAXV_MAX));
    KP_ENSURE((t = calloc(1, sizeof(*t))) != NULL,
              kp_errorf(&p->up, h, KP_ERR_NOMEM, TPL_NAME ": out of memory"));
    t->up = &p->up;
    t->h = h;
    t->max_versions = maxv != NULL ? (uint32_t)maxv->num : 0;
    t->secret_store = s_param_secret_store(params);
    /* Copy every string kept: params are borrowed for this call only. */
    if ((t->label = strdup(label != NULL ? label->str : "")) == NULL)
        st = tpl_err(t, KP_ERR_NOMEM, "out of memory");
    else if (pthread_mutex_init(&t->lock, NULL) != 0)
        st = tpl_err(t, KP_ERR_INTERNAL, "cannot create a mutex");
    if (st == KP_OK) {
        *inst = t;
    } else {
        free(t->label);
        free(t);
    }
    return st;
}

/* The core calls close once, after every other call on the instance has returned. */
static void s_close(void *inst)
{
    tpl_inst *t = inst;
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->keys.n; i++)
        tpl_key_free(t->keys.v[i]);
    for (size_t i = 0; i < t->secrets.n; i++)
        tpl_secret_free(t->up, t->secrets.v[i]);
    for (size_t i = 0; i < t->states.n; i++)
        tpl_state_free(t->states.v[i]);
    free(t->keys.v);
    free(t->secrets.v);
    free(t->states.v);
    EVP_PKEY_free(t->kek); /* OpenSSL clears private key memory when it frees it */
    pthread_mutex_destroy(&t->lock);
    free(t->label);
    free(t);
}

/* A real plugin contacts its backend here (open must not): reachability, credentials and each
 * permission it needs, one report per item, so `keyplane check` says which one failed. */
static kp_status s_check(void *inst, kp_check_report_fn report, void *arg)
{
    tpl_inst *t = inst;
    char detail[160];
    pthread_mutex_lock(&t->lock);
    snprintf(detail, sizeof(detail), "in memory%s%s: %zu key versions, %zu secret versions",
             t->label[0] != '\0' ? ", " : "", t->label, t->keys.n, t->secrets.n);
    pthread_mutex_unlock(&t->lock);
    report(arg, "store", KP_OK, detail);
    return KP_OK;
}

static kp_status s_instance_info(void *inst, kp_instance_info *info)
{
    tpl_inst *t = inst;
    s_fill_info(t->secret_store, info);
    return KP_OK;
}

/* --- The handshake ------------------------------------------------------------------------ */

/* Each id next to its function; the table ends with {0, NULL}. Ids the core does not know are
 * ignored by it, so a table may list functions of a newer minor than the core offers. */
static const kp_dispatch s_table[] = {
    {.id = KP_FN_PLUGIN_INFO, .fn = (kp_fn)s_plugin_info},
    {.id = KP_FN_PLUGIN_TEARDOWN, .fn = (kp_fn)s_plugin_teardown},
    {.id = KP_FN_PLUGIN_PARAMS, .fn = (kp_fn)s_plugin_params},
    {.id = KP_FN_PLUGIN_DESCRIBE, .fn = (kp_fn)s_plugin_describe},
    {.id = KP_FN_PLUGIN_CHECK_KEY, .fn = (kp_fn)s_plugin_check_key},
    {.id = KP_FN_INSTANCE_OPEN, .fn = (kp_fn)s_open},
    {.id = KP_FN_INSTANCE_CLOSE, .fn = (kp_fn)s_close},
    {.id = KP_FN_INSTANCE_CHECK, .fn = (kp_fn)s_check},
    {.id = KP_FN_INSTANCE_INFO, .fn = (kp_fn)s_instance_info},
    /* No KP_FN_INSTANCE_INIT (ABI 1.1): an instance's store is memory that exists from open.
     * A plugin whose stores are made (a directory, a database) offers it, creates its store
     * there and nowhere else, answers KP_ERR_UNAVAILABLE on a store that is not initialised,
     * and sets abi_minor to 1 (docs/plugin-guide.md). */
    {.id = KP_FN_KS_CREATE, .fn = (kp_fn)tpl_ks_create},
    {.id = KP_FN_KS_IMPORT, .fn = (kp_fn)tpl_ks_import},
    {.id = KP_FN_KS_GET, .fn = (kp_fn)tpl_ks_get},
    {.id = KP_FN_KS_GET_PUBLIC, .fn = (kp_fn)tpl_ks_get_public},
    {.id = KP_FN_KS_LIST, .fn = (kp_fn)tpl_ks_list},
    {.id = KP_FN_KS_WRAP, .fn = (kp_fn)tpl_ks_wrap},
    {.id = KP_FN_KS_UNWRAP, .fn = (kp_fn)tpl_ks_unwrap},
    {.id = KP_FN_KS_EXPORT_WRAPPED, .fn = (kp_fn)tpl_ks_export_wrapped},
    {.id = KP_FN_KS_STATE_GET, .fn = (kp_fn)tpl_ks_state_get},
    {.id = KP_FN_KS_STATE_PUT, .fn = (kp_fn)tpl_ks_state_put},
    {.id = KP_FN_KS_IMPORT_OFFER, .fn = (kp_fn)tpl_ks_import_offer},
    {.id = KP_FN_KS_IMPORT_WRAPPED, .fn = (kp_fn)tpl_ks_import_wrapped},
    {.id = KP_FN_SS_PUT, .fn = (kp_fn)tpl_ss_put},
    {.id = KP_FN_SS_GET, .fn = (kp_fn)tpl_ss_get},
    {.id = KP_FN_SS_LIST, .fn = (kp_fn)tpl_ss_list},
    {.id = 0, .fn = NULL},
};

/* The only exported symbol; the SDK's plugin.map puts it under KEYPLANE_PROVIDER_1. */
KP_PLUGIN_EXPORT kp_plugin_init_fn kp_plugin_init;

kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out, void **plugin_ctx)
{
    kp_upcalls up;
    tpl_plugin *p;
    /* Checks the arguments and the ABI major, and fills every upcall of ABI 1.0. */
    KP_GUARD(kp_plugin_accept(core, out, plugin_ctx, &up, TPL_NAME ": core lacks an upcall"));
    KP_ENSURE((p = calloc(1, sizeof(*p))) != NULL,
              kp_errorf(&up, core->handle, KP_ERR_NOMEM, TPL_NAME ": out of memory"));
    p->up = up;
    p->h = core->handle;
    *out = s_table;
    *plugin_ctx = p;
    return KP_OK;
}
