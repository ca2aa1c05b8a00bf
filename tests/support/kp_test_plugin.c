/* A plugin called directly, without libkeyplane's loader (kp_test.h): a minimal core's upcalls
 * and the plugin's entry point. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "kp_test.h"

static char s_err[KP_ERROR_MAX + 1];

static void s_up_log(kp_core_handle *h, kp_log_level level, const char *msg)
{
    (void)h, (void)level, (void)msg;
}

static kp_status s_up_set_error(kp_core_handle *h, kp_status status, const char *msg)
{
    (void)h;
    snprintf(s_err, sizeof s_err, "%s", msg);
    return status;
}

static const char *s_up_get_error(kp_core_handle *h)
{
    (void)h;
    return s_err;
}

static void s_up_audit(kp_core_handle *h, const char *event, const char *detail)
{
    (void)h, (void)event, (void)detail;
}

const kp_dispatch kp_test_upcalls[KP_TEST_UPCALLS + 1] = {
    {KP_UP_LOG, (kp_fn)s_up_log},
    {KP_UP_SET_ERROR, (kp_fn)s_up_set_error},
    {KP_UP_AUDIT, (kp_fn)s_up_audit},
    {KP_UP_SECRET_NEW, (kp_fn)kp_secret_new},
    {KP_UP_SECRET_FREE, (kp_fn)kp_secret_free},
    {KP_UP_SECRET_DATA, (kp_fn)kp_secret_data},
    {KP_UP_SECRET_CDATA, (kp_fn)kp_secret_cdata},
    {KP_UP_SECRET_LEN, (kp_fn)kp_secret_len},
    {KP_UP_SECRET_SHRINK, (kp_fn)kp_secret_shrink},
    {KP_UP_GET_ERROR, (kp_fn)s_up_get_error},
    {0, NULL},
};

const char *kp_test_upcall_error(void)
{
    return s_err;
}

void kp_test_upcall_error_clear(void)
{
    s_err[0] = '\0';
}

kp_plugin_init_fn *kp_test_plugin_init(const char *path, void **so)
{
    *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (*so == NULL)
        kp_test_fail("dlopen %s: %s", path, dlerror());
    void *sym = dlvsym(*so, KP_PLUGIN_INIT_SYMBOL, KP_PLUGIN_SYMBOL_VERSION);
    if (sym == NULL)
        kp_test_fail("%s: no %s@%s", path, KP_PLUGIN_INIT_SYMBOL, KP_PLUGIN_SYMBOL_VERSION);
    kp_plugin_init_fn *init;
    memcpy(&init, &sym, sizeof(init));
    return init;
}
