/*
 * The `aws` plugin's entry point: what it is (PLUGIN_INFO), its dispatch table, kp_plugin_init,
 * and the life of an instance. One plugin, one kind of instance per `service` param: the
 * secret-store functions go to the S3 or the Secrets Manager store by the instance's kind, the
 * keystore and data-key functions to KMS (ABI 1.0's per-instance capabilities: the core calls
 * an instance only for what its kind declares). Opening reads the params and contacts nothing. This
 * file is the top of the plugin: none of the others calls into it.
 */
#include <stdlib.h>
#include <string.h>

#include "aws_internal.h"

static kp_plugin_info_fn s_info;
static kp_plugin_teardown_fn s_teardown;
static kp_plugin_params_fn s_params;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;
static kp_ss_put_fn s_put;
static kp_ss_get_fn s_get;
static kp_ss_list_fn s_list;

static const kp_plugin_info s_plugin_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    .abi_minor = 0, /* the lowest minor this plugin needs: ABI 1.0 */
    .name = "aws",
    .version = "0.1.0",
    .description = "secrets in Amazon S3 (SSE-KMS) and AWS Secrets Manager (replicated); "
                   "imported RSA keys and data keys in AWS KMS",
    .capabilities = KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE | KP_CAP_DATAKEY,
};

static const kp_dispatch s_dispatch[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_params},
    {KP_FN_PLUGIN_DESCRIBE, (kp_fn)kp_aws_plugin_describe},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)kp_aws_instance_check},
    {KP_FN_INSTANCE_INFO, (kp_fn)kp_aws_instance_info},
    {KP_FN_SS_PUT, (kp_fn)s_put},
    {KP_FN_SS_GET, (kp_fn)s_get},
    {KP_FN_SS_LIST, (kp_fn)s_list},
    {KP_FN_KS_IMPORT, (kp_fn)kp_aws_kms_ks_import},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)kp_aws_kms_ks_get_public},
    {KP_FN_KS_LIST, (kp_fn)kp_aws_kms_ks_list},
    {KP_FN_KS_WRAP, (kp_fn)kp_aws_kms_ks_wrap},
    {KP_FN_KS_UNWRAP, (kp_fn)kp_aws_kms_ks_unwrap},
    {KP_FN_KS_IMPORT_OFFER, (kp_fn)kp_aws_kms_ks_import_offer},
    {KP_FN_KS_IMPORT_WRAPPED, (kp_fn)kp_aws_kms_ks_import_wrapped},
    {KP_FN_KS_GET, (kp_fn)kp_aws_kms_ks_get},
    {KP_FN_DK_GENERATE, (kp_fn)kp_aws_dk_generate},
    {KP_FN_DK_DECRYPT, (kp_fn)kp_aws_dk_decrypt},
    {KP_FN_DK_REENCRYPT, (kp_fn)kp_aws_dk_reencrypt},
    {KP_FN_OB_CREATE, (kp_fn)kp_aws_ob_create},
    {KP_FN_OB_WRITE, (kp_fn)kp_aws_ob_write},
    {KP_FN_OB_CLOSE, (kp_fn)kp_aws_ob_close},
    {KP_FN_OB_STAT, (kp_fn)kp_aws_ob_stat},
    {KP_FN_OB_READ, (kp_fn)kp_aws_ob_read},
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
    return kp_aws_param_list;
}

static kp_status s_put(void *inst, const char *name, const kp_secret *value, const kp_meta *meta,
                       size_t nmeta, uint32_t *version)
{
    const kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL, KP_ERR_INVALID_ARG);
    return a->service == KP_AWS_S3 ? kp_aws_s3_ss_put(inst, name, value, meta, nmeta, version)
                                   : kp_aws_sm_ss_put(inst, name, value, meta, nmeta, version);
}

static kp_status s_get(void *inst, const char *name, uint32_t version, kp_secret **value,
                       kp_secret_visit_fn visit, void *arg)
{
    const kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL, KP_ERR_INVALID_ARG);
    return a->service == KP_AWS_S3 ? kp_aws_s3_ss_get(inst, name, version, value, visit, arg)
                                   : kp_aws_sm_ss_get(inst, name, version, value, visit, arg);
}

static kp_status s_list(void *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    const kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL, KP_ERR_INVALID_ARG);
    return a->service == KP_AWS_S3 ? kp_aws_s3_ss_list(inst, name, visit, arg)
                                   : kp_aws_sm_ss_list(inst, name, visit, arg);
}

static void s_close(void *inst)
{
    kp_aws_inst *a = inst;
    if (a == NULL)
        return;
    kpk_http_free(a->http);
    kp_aws_creds_clear(a->up, &a->creds);
    a->up->secret_free(a->secret_param);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    kp_aws_plugin *pl = plugin_ctx;
    KP_ENSURE(pl != NULL && inst != NULL, KP_ERR_INVALID_ARG);
    *inst = NULL;
    kp_aws_sink to = {.up = &pl->up, .h = h};
    kp_aws_inst *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return kp_aws_err(&to, KP_ERR_NOMEM, "out of memory");
    a->up = to.up;
    a->h = h;
    bool lock = pthread_mutex_init(&a->lock, NULL) == 0;
    kp_status st = lock ? KP_OK : kp_aws_err(&to, KP_ERR_INTERNAL, "cannot create mutex");
    if (st == KP_OK)
        st = kp_aws_params_take(a, params);
    if (st == KP_OK) {
        a->objects = a->objects && pl->core_minor >= 6;
        *inst = a;
    } else if (lock)
        s_close(a);
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
    KP_GUARD(kp_plugin_accept(core, out, plugin_ctx, &up, "aws plugin: the core lacks an upcall"));
    kp_aws_plugin *pl = calloc(1, sizeof(*pl));
    KP_ENSURE(pl != NULL, KP_ERR_NOMEM);
    pl->up = up;
    pl->h = core->handle;
    pl->core_minor = core->abi_minor;
    *out = s_dispatch;
    *plugin_ctx = pl;
    return KP_OK;
}
