/*
 * The `azure-keyvault` plugin's entry point: what it is (PLUGIN_INFO), its dispatch table,
 * kp_plugin_init, and the life of an instance (open reads the params through akv_params.c and
 * contacts nothing; close frees what the instance holds). This file is the top of the plugin:
 * it refers to the functions of the others, and none of them calls into it.
 */
#include <stdlib.h>

#include "akv_internal.h"

static kp_plugin_info_fn s_info;
static kp_plugin_teardown_fn s_teardown;
static kp_plugin_params_fn s_params;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;

static const kp_plugin_info s_plugin_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    .abi_minor = 0, /* the lowest minor this plugin needs: ABI 1.0 */
    .name = "azure-keyvault",
    .version = "0.1.0",
    .description = "keys in Azure Key Vault or Managed HSM (BYOK import, wrapKey/unwrapKey)",
    .capabilities = KP_CAP_KEYSTORE,
};

static const kp_dispatch s_dispatch[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_params},
    {KP_FN_PLUGIN_DESCRIBE, (kp_fn)kp_akv_plugin_describe},
    {KP_FN_PLUGIN_CHECK_KEY, (kp_fn)kp_akv_plugin_check_key},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)kp_akv_instance_check},
    {KP_FN_INSTANCE_INFO, (kp_fn)kp_akv_instance_info},
    {KP_FN_KS_CREATE, (kp_fn)kp_akv_ks_create},
    {KP_FN_KS_IMPORT, (kp_fn)kp_akv_ks_import},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)kp_akv_ks_get_public},
    {KP_FN_KS_LIST, (kp_fn)kp_akv_ks_list},
    {KP_FN_KS_GET, (kp_fn)kp_akv_ks_get},
    {KP_FN_KS_WRAP, (kp_fn)kp_akv_ks_wrap},
    {KP_FN_KS_UNWRAP, (kp_fn)kp_akv_ks_unwrap},
    {KP_FN_KS_IMPORT_OFFER, (kp_fn)kp_akv_ks_import_offer},
    {KP_FN_KS_IMPORT_WRAPPED, (kp_fn)kp_akv_ks_import_wrapped},
    {KP_FN_KS_BACKUP, (kp_fn)kp_akv_ks_backup},
    {KP_FN_KS_RESTORE, (kp_fn)kp_akv_ks_restore},
    {0, NULL},
};

static const kp_plugin_info *s_info(void *plugin_ctx)
{
    (void)plugin_ctx;
    return &s_plugin_info;
}

static void s_teardown(void *plugin_ctx)
{
    free(plugin_ctx);
}

static const kp_param_desc *s_params(void *plugin_ctx)
{
    (void)plugin_ctx;
    return kp_akv_param_list;
}

static void s_close(void *inst)
{
    kp_akv_inst *a = inst;
    if (a == NULL)
        return;
    kpk_http_free(a->http);
    kp_akv_keys_free(a);
    a->up->secret_free(a->token);
    a->up->secret_free(a->client_secret);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    kp_akv_plugin *pl = plugin_ctx;
    KP_ENSURE(pl != NULL && inst != NULL, KP_ERR_INVALID_ARG);
    *inst = NULL;
    kp_akv_sink to = {.up = &pl->up, .h = h};
    kp_akv_inst *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return kp_akv_err(&to, KP_ERR_NOMEM, "out of memory");
    a->up = to.up;
    a->h = h;
    bool lock = pthread_mutex_init(&a->lock, NULL) == 0;
    kp_status st = lock ? KP_OK : kp_akv_err(&to, KP_ERR_INTERNAL, "cannot create mutex");
    if (st == KP_OK)
        st = kp_akv_params_take(a, params);
    if (st == KP_OK)
        *inst = a;
    else if (lock)
        s_close(a); /* frees what kp_akv_params_take copied */
    else
        free(a);
    return st;
}

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx);

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx)
{
    kp_upcalls up;
    KP_GUARD(kp_plugin_accept(core, out, plugin_ctx, &up,
                              "azure-keyvault plugin: the core lacks an upcall"));
    kp_akv_plugin *pl = calloc(1, sizeof(*pl));
    KP_ENSURE(pl != NULL, KP_ERR_NOMEM);
    pl->up = up;
    pl->h = core->handle;
    *out = s_dispatch;
    *plugin_ctx = pl;
    return KP_OK;
}
