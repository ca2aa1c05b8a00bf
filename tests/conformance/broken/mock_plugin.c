/*
 * The mock's entry point, params and instance lifecycle (see mock.h for why it exists). Its
 * params exist to be checked: a required label, an optional SECRET it keeps for the instance's
 * life, a PATH that must be absolute and an INT with bounds.
 */
#include <stdlib.h>
#include <string.h>

#include "mock.h"

static kp_plugin_info_fn s_info;
static kp_plugin_teardown_fn s_teardown;
static kp_plugin_params_fn s_params;
static kp_plugin_describe_fn s_describe;
static kp_plugin_check_key_fn s_check_key;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;
static kp_instance_check_fn s_check;
static kp_instance_info_fn s_inst_info;

static const kp_plugin_info s_plugin_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    .abi_minor = 0,
    .name = MOCK_NAME,
    .version = "1.0.0",
    .description = "in-memory software RSA keystore for the conformance kit's own tests",
    .capabilities = KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE,
};

static const kp_param_desc s_param_list[] = {
    {"label", KP_PARAM_STRING, KP_PARAM_REQUIRED, 0, 0, "a label for the store"},
    {"passphrase", KP_PARAM_SECRET, 0, 0, 0, "kept for the instance's life, never used"},
    {"dir", KP_PARAM_PATH, 0, 0, 0, "an absolute directory, never used"},
    {"rsa_bits", KP_PARAM_INT, 0, 2048, 4096, "default RSA size, never used"},
    {NULL, 0, 0, 0, 0, NULL},
};

static const kp_dispatch s_dispatch[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_params},
    {KP_FN_PLUGIN_DESCRIBE, (kp_fn)s_describe},
    {KP_FN_PLUGIN_CHECK_KEY, (kp_fn)s_check_key},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)s_check},
    {KP_FN_INSTANCE_INFO, (kp_fn)s_inst_info},
    {KP_FN_KS_CREATE, (kp_fn)mock_ks_create},
    {KP_FN_KS_IMPORT, (kp_fn)mock_ks_import},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)mock_ks_get_public},
    {KP_FN_KS_LIST, (kp_fn)mock_ks_list},
    {KP_FN_KS_WRAP, (kp_fn)mock_ks_wrap},
    {KP_FN_KS_UNWRAP, (kp_fn)mock_ks_unwrap},
    {KP_FN_KS_EXPORT, (kp_fn)mock_ks_export},
    {KP_FN_KS_EXPORT_WRAPPED, (kp_fn)mock_ks_export_wrapped},
    {KP_FN_KS_STATE_GET, (kp_fn)mock_ks_state_get},
    {KP_FN_KS_STATE_PUT, (kp_fn)mock_ks_state_put},
    {KP_FN_KS_IMPORT_OFFER, (kp_fn)mock_ks_import_offer},
    {KP_FN_KS_IMPORT_WRAPPED, (kp_fn)mock_ks_import_wrapped},
    {KP_FN_KS_GET, (kp_fn)mock_ks_get},
    {KP_FN_SS_PUT, (kp_fn)mock_ss_put},
    {KP_FN_SS_GET, (kp_fn)mock_ss_get},
    {KP_FN_SS_LIST, (kp_fn)mock_ss_list},
    {0, NULL},
};

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx);

kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out, void **plugin_ctx)
{
    kp_upcalls up;
    kp_status st = kp_plugin_accept(core, out, plugin_ctx, &up, MOCK_NAME);
    if (st != KP_OK)
        return st;
    mock_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return up.set_error(core->handle, KP_ERR_NOMEM, "out of memory");
    c->up = up;
    c->h = core->handle;
    pthread_mutex_init(&c->lock, NULL);
    *out = s_dispatch;
    *plugin_ctx = c;
    return KP_OK;
}

static const kp_plugin_info *s_info(void *plugin_ctx)
{
    (void)plugin_ctx;
    return &s_plugin_info;
}

static void s_teardown(void *plugin_ctx)
{
    mock_ctx *c = plugin_ctx;
    mock_keys_free(c);
    mock_secrets_free(c);
    EVP_PKEY_free(c->kek);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static const kp_param_desc *s_params(void *plugin_ctx)
{
    (void)plugin_ctx;
    return s_param_list;
}

static void s_fill(kp_instance_info *info)
{
    info->capabilities = KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE;
    info->wrap_algs = MOCK_WRAP_ALGS;
    info->unwrap_algs = MOCK_UNWRAP_ALGS;
    info->key_bits = MOCK_KEY_BITS;
    info->export_keyx = MOCK_KEYX;
    info->import_keyx = MOCK_KEYX;
    info->secret_max = MOCK_SECRET_MAX;
}

/* The meaning of params the core has typed already. */
static kp_status s_check_params(mock_ctx *c, kp_core_handle *h, const kp_param *params)
{
    const kp_param *label = kp_param_find(params, "label");
    const kp_param *dir = kp_param_find(params, "dir");
    const kp_param *bits = kp_param_find(params, "rsa_bits");
    if (label == NULL || label->str == NULL || label->str[0] == '\0')
        return c->up.set_error(h, KP_ERR_CONFIG, "mock: the label param is required");
    if (dir != NULL && (dir->str == NULL || dir->str[0] != '/'))
        return c->up.set_error(h, KP_ERR_CONFIG, "mock: dir must be an absolute path");
    if (bits != NULL && (bits->num < 2048 || bits->num > 4096))
        return kp_errorf(&c->up, h, KP_ERR_CONFIG, "mock: rsa_bits %lld is outside 2048..4096",
                         (long long)bits->num);
    return KP_OK;
}

static kp_status s_describe(void *plugin_ctx, const kp_param *params, kp_instance_info *info)
{
    kp_status st = s_check_params(plugin_ctx, ((mock_ctx *)plugin_ctx)->h, params);
    if (st == KP_OK)
        s_fill(info);
    return st;
}

static kp_status s_check_key(void *plugin_ctx, const kp_param *params, const kp_key_spec *in)
{
    mock_ctx *c = plugin_ctx;
    kp_key_spec spec;
    (void)params;
    if (!kp_key_spec_read(in, &spec))
        return c->up.set_error(c->h, KP_ERR_INVALID_ARG, "mock: no key spec");
    if (!mock_name_ok(spec.name))
        return c->up.set_error(c->h, KP_ERR_INVALID_ARG, "mock: key names are [A-Za-z0-9._-]");
    if (spec.type != KP_KEY_RSA || (spec.bits != 2048 && spec.bits != 3072 && spec.bits != 4096))
        return c->up.set_error(c->h, KP_ERR_UNSUPPORTED, "mock: keys are RSA 2048, 3072, 4096");
    return KP_OK;
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    mock_ctx *c = plugin_ctx;
    kp_status st = s_check_params(c, h, params);
    if (st != KP_OK)
        return st;
    mock_inst *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return c->up.set_error(h, KP_ERR_NOMEM, "out of memory");
    in->ctx = c;
    in->h = h;
    const kp_param *pass = kp_param_find(params, "passphrase");
    if (pass != NULL && pass->secret != NULL) {
        in->passphrase =
            kp_secret_dup(&c->up, c->up.secret_cdata(pass->secret), c->up.secret_len(pass->secret));
        if (in->passphrase == NULL) {
            free(in);
            return c->up.set_error(h, KP_ERR_NOMEM, "out of memory");
        }
    }
    *inst = in;
    return KP_OK;
}

static void s_close(void *inst)
{
    mock_inst *in = inst;
    if (in == NULL)
        return;
    in->ctx->up.secret_free(in->passphrase);
    free(in);
}

static kp_status s_check(void *inst, kp_check_report_fn report, void *arg)
{
    (void)inst;
#ifdef MOCK_FAULT_UNINIT
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
    volatile unsigned char *junk = malloc(8); /* the fault: never written, then read */
    const char *detail = junk != NULL && junk[3] > 0x7f ? "in-memory store" : "in memory";
    free((void *)junk);
#pragma GCC diagnostic pop
#else
    const char *detail = "in-memory store";
#endif
    report(arg, "memory", KP_OK, detail);
    return KP_OK;
}

static kp_status s_inst_info(void *inst, kp_instance_info *info)
{
    (void)inst;
    s_fill(info);
    return KP_OK;
}
