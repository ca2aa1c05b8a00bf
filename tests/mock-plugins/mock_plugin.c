/* One source, several single-fault plugins: the handshake, description and instance lifecycle,
 * with the faults that concern loading (see mock_common.h and CMakeLists.txt). */
#include <stdlib.h>
#include <string.h>

#include "mock_common.h"

#ifndef MOCK_ABI_MAJOR
#define MOCK_ABI_MAJOR KP_ABI_MAJOR
#endif

#ifdef MOCK_FAULT_NEWER_MINOR
#define MOCK_ABI_MINOR (KP_ABI_MINOR + 1)
#else
#define MOCK_ABI_MINOR 0 /* needs nothing newer than ABI 1.0 */
#endif

static kp_plugin_info_fn s_plugin_info;
static kp_plugin_teardown_fn s_teardown;
static kp_plugin_params_fn s_plugin_params;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;
static kp_instance_check_fn s_check;
#ifndef MOCK_FAULT_MISSING_INST_INFO
static kp_instance_info_fn s_instance_info;
#endif

static const kp_plugin_info s_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = MOCK_ABI_MAJOR,
    .abi_minor = MOCK_ABI_MINOR,
    .name = MOCK_NAME,
    .version = "0.0.1",
    .description = "single-fault mock plugin",
    .capabilities = KP_CAP_KEYSTORE,
};

static const kp_param_desc s_params[] = {{NULL, 0, 0, 0, 0, NULL}};

static const kp_dispatch s_table[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_plugin_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_plugin_params},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)s_check},
#ifndef MOCK_FAULT_MISSING_INST_INFO
    {KP_FN_INSTANCE_INFO, (kp_fn)s_instance_info},
#endif
    {KP_FN_KS_CREATE, (kp_fn)kp_mock_create},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)kp_mock_get_public},
    {KP_FN_KS_LIST, (kp_fn)kp_mock_list},
#ifndef MOCK_FAULT_MISSING_WRAP
    {KP_FN_KS_WRAP, (kp_fn)kp_mock_wrap},
#endif
    {KP_FN_KS_UNWRAP, (kp_fn)kp_mock_unwrap},
    {KP_FN_KS_GET, (kp_fn)kp_mock_get},
#ifdef MOCK_FAULT_HALF_PAIR
    {KP_FN_KS_STATE_GET, (kp_fn)kp_mock_get_public}, /* the fault: STATE_GET without STATE_PUT */
#endif
    {9999, (kp_fn)s_close}, /* an id from the future: must be ignored */
    {0, NULL},
};

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

static void s_teardown(void *plugin_ctx)
{
    mock_plugin *pl = plugin_ctx;

    if (pl == NULL)
        return;
    kp_mock_keys_free(pl);
    pthread_mutex_destroy(&pl->lock);
    free(pl);
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    mock_plugin *pl = plugin_ctx;
    mock_inst *mi;
    mock_key *k;
    kp_status st = KP_OK;

    (void)params;
    if (pl == NULL || inst == NULL)
        return KP_ERR_INVALID_ARG;
    *inst = NULL;
    /* The first instance brings key "mock" v1, so every fault can be reached without a create. */
    pthread_mutex_lock(&pl->lock);
    if (pl->n == 0)
        st = kp_mock_add_key(pl, h, "mock", 1, &k);
    pthread_mutex_unlock(&pl->lock);
    if (st != KP_OK)
        return st;
    if ((mi = calloc(1, sizeof(*mi))) == NULL)
        return pl->up.set_error(h, KP_ERR_NOMEM, "mock: out of memory");
    mi->pl = pl;
    mi->h = h;
    *inst = mi;
    return KP_OK;
}

static void s_close(void *inst)
{
    free(inst); /* keys belong to the plugin context */
}

static kp_status s_check(void *inst, kp_check_report_fn report, void *arg)
{
    (void)inst;
    if (report != NULL)
        report(arg, "mock", KP_OK, "nothing to check");
    return KP_OK;
}

#ifndef MOCK_FAULT_MISSING_INST_INFO
static kp_status s_instance_info(void *inst, kp_instance_info *info)
{
    (void)inst;
    if (info == NULL || !KP_HAS_MEMBER(info, kp_instance_info, key_bits))
        return KP_ERR_INVALID_ARG;
    info->capabilities = KP_CAP_KEYSTORE;
#ifdef MOCK_FAULT_WIDE_CAPS
    info->capabilities |= KP_CAP_SECRETSTORE; /* the fault: more than the plugin declares */
#endif
    info->wrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256);
    info->unwrap_algs = info->wrap_algs;
    info->key_bits = KP_RSA_2048;
    return KP_OK;
}
#endif

#ifndef MOCK_FAULT_NO_INIT
KP_PLUGIN_EXPORT kp_plugin_init_fn kp_plugin_init;

kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out, void **plugin_ctx)
{
    kp_upcalls up;
    kp_status st = kp_plugin_accept(core, out, plugin_ctx, &up, MOCK_NAME ": lacks an upcall");

    if (st != KP_OK)
        return st;
#ifdef MOCK_FAULT_INIT_FAILS
    (void)s_table;
    return up.set_error(core->handle, KP_ERR_BACKEND, "mock backend is unavailable by design");
#else
    mock_plugin *pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        return KP_ERR_NOMEM;
    if (pthread_mutex_init(&pl->lock, NULL) != 0) {
        free(pl);
        return KP_ERR_INTERNAL;
    }
    pl->up = up;
    pl->h = core->handle;
    *out = s_table;
    *plugin_ctx = pl;
    return KP_OK;
#endif
}
#else
/* Exports something, but not the init symbol. */
KP_PLUGIN_EXPORT int kp_mock_not_init(void);
int kp_mock_not_init(void)
{
    return (int)sizeof(s_table);
}
#endif
