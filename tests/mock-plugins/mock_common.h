/*
 * Single-fault mock plugins (p11-kit's mock-module-ep*.c idea): each file is a plugin that
 * is correct in every way but one, so the loader's refusal of that one fault is tested alone.
 * MOCK_FAULT_* selects the fault at compile time.
 */
#ifndef KP_MOCK_COMMON_H
#define KP_MOCK_COMMON_H

#include <keyplane/provider.h>

#ifndef MOCK_NAME
#error "MOCK_NAME must be defined"
#endif

#ifndef MOCK_ABI_MAJOR
#define MOCK_ABI_MAJOR KP_ABI_MAJOR
#endif

static const kp_plugin_info s_info = {
    sizeof(kp_plugin_info),     MOCK_ABI_MAJOR, KP_ABI_MINOR, MOCK_NAME, "0.0.1",
    "single-fault mock plugin", KP_CAP_KEYSTORE};

static kp_plugin_info_fn s_plugin_info;
static kp_plugin_params_fn s_plugin_params;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;
static kp_instance_check_fn s_check;
static kp_ks_get_public_fn s_get_public;
static kp_ks_list_fn s_list;
static kp_ks_wrap_fn s_wrap;
static kp_ks_unwrap_fn s_unwrap;

static const kp_plugin_info *s_plugin_info(void *plugin_ctx)
{
    (void)plugin_ctx;
    return &s_info;
}

static const kp_param_desc s_params[] = {{NULL, 0, 0, 0, 0, NULL}};

static const kp_param_desc *s_plugin_params(void *plugin_ctx)
{
    (void)plugin_ctx;
    return s_params;
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    (void)plugin_ctx, (void)h, (void)params;
    *inst = NULL;
    return KP_OK;
}

static void s_close(void *inst)
{
    (void)inst;
}

static kp_status s_check(void *inst, kp_check_report_fn report, void *arg)
{
    (void)inst;
    report(arg, "mock", KP_OK, "nothing to check");
    return KP_OK;
}

static kp_status s_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                              size_t *len)
{
    (void)inst, (void)name, (void)version, (void)spki, (void)len;
    return KP_ERR_NOT_FOUND;
}

static kp_status s_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    (void)inst, (void)name, (void)visit, (void)arg;
    return KP_OK;
}

#if defined(__GNUC__)
__attribute__((unused))
#endif
static kp_status
s_wrap(void *inst, const char *name, uint32_t version, uint32_t alg, const kp_secret *dek,
       uint8_t *out, size_t *outlen)
{
    (void)inst, (void)name, (void)version, (void)alg, (void)dek, (void)out, (void)outlen;
    return KP_ERR_NOT_FOUND;
}

static kp_status s_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                          const uint8_t *in, size_t inlen, kp_secret **dek)
{
    (void)inst, (void)name, (void)version, (void)alg, (void)in, (void)inlen, (void)dek;
    return KP_ERR_NOT_FOUND;
}

static const kp_dispatch s_table[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_plugin_info},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_plugin_params},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)s_check},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)s_get_public},
    {KP_FN_KS_LIST, (kp_fn)s_list},
#ifndef MOCK_FAULT_MISSING_WRAP
    {KP_FN_KS_WRAP, (kp_fn)s_wrap},
#endif
    {KP_FN_KS_UNWRAP, (kp_fn)s_unwrap},
    {9999, (kp_fn)s_close}, /* an id from the future: must be ignored */
    {0, NULL},
};

#endif
