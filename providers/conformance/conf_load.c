/*
 * Loading a plugin the way the core does (dlopen, dlvsym of kp_plugin_init under
 * KEYPLANE_PROVIDER_1, init with a core of ABI 1.0), after two probes the core never makes: a
 * core of another major, which the plugin must refuse with KP_ERR_ABI, and a core of a newer
 * minor with a bigger kp_core_info, which it must accept. The probes run before the real init so
 * a plugin with global state is loaded, torn down and loaded again, as by two cores in a row.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

static void s_hs_fault(conf_kit *k, const char *fmt, ...) KP_PRINTF_(2, 3);

static void s_hs_fault(conf_kit *k, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (k->nhs < sizeof(k->hs_faults) / sizeof(k->hs_faults[0]))
        k->hs_faults[k->nhs++] = strdup(msg);
}

/* A kp_core_info with room behind it, as a newer core's would be. */
typedef struct big_core {
    kp_core_info info;
    unsigned char future[32];
} big_core;

static void s_teardown(const kp_dispatch *table, void *ctx)
{
    const kp_dispatch *d = kp_dispatch_find(table, KP_FN_PLUGIN_TEARDOWN);
    if (d != NULL)
        kp_dispatch_plugin_teardown(d)(ctx);
}

static void s_probe(conf_kit *k, uint16_t major, uint16_t minor, bool bigger)
{
    big_core core;
    memset(&core, 0, sizeof(core));
    core.info.struct_size = (uint32_t)(bigger ? sizeof(core) : sizeof(core.info));
    core.info.abi_major = major;
    core.info.abi_minor = minor;
    core.info.upcalls = conf_upcalls;
    core.info.handle = conf_plugin_handle();
    const kp_dispatch *table = NULL;
    void *ctx = NULL;
    conf_err_clear();
    const char *prev = conf_call_enter("kp_plugin_init");
    kp_status st = k->init(&core.info, &table, &ctx);
    conf_call_leave(prev);
    if (major != KP_ABI_MAJOR) {
        if (st == KP_OK)
            s_hs_fault(k, "kp_plugin_init accepted a core of ABI major %u", major);
        else if (st != KP_ERR_ABI)
            s_hs_fault(k, "kp_plugin_init with a core of ABI major %u returned %s, want KP_ERR_ABI",
                       major, conf_status_name(st));
    } else if (st != KP_OK) {
        s_hs_fault(k,
                   "kp_plugin_init refused a core of ABI %u.%u (%s: %s); a plugin must accept "
                   "any core of its major",
                   major, minor, conf_status_name(st), conf_err_text());
    }
    if (st == KP_OK && table != NULL)
        s_teardown(table, ctx);
}

bool conf_load(conf_kit *k)
{
    k->dl = dlopen(k->path, RTLD_NOW | RTLD_LOCAL);
    if (k->dl == NULL) {
        snprintf(k->load_error, sizeof(k->load_error), "cannot load the plugin: %s", dlerror());
        return false;
    }
    void *sym = dlvsym(k->dl, KP_PLUGIN_INIT_SYMBOL, KP_PLUGIN_SYMBOL_VERSION);
    if (sym == NULL) {
        sym = dlsym(k->dl, KP_PLUGIN_INIT_SYMBOL);
        if (sym == NULL) {
            snprintf(k->load_error, sizeof(k->load_error), "no %s symbol", KP_PLUGIN_INIT_SYMBOL);
            return false;
        }
        s_hs_fault(k, "%s not under version node %s", KP_PLUGIN_INIT_SYMBOL,
                   KP_PLUGIN_SYMBOL_VERSION);
    }
    *(void **)&k->init = sym;

    s_probe(k, KP_ABI_MAJOR + 1, 0, false);
    s_probe(k, KP_ABI_MAJOR, KP_ABI_MINOR + 1, true);

    kp_core_info core = {
        .struct_size = sizeof(kp_core_info),
        .abi_major = KP_ABI_MAJOR,
        .abi_minor = KP_ABI_MINOR,
        .upcalls = conf_upcalls,
        .handle = conf_plugin_handle(),
    };
    conf_err_clear();
    const char *prev = conf_call_enter("kp_plugin_init");
    kp_status st = k->init(&core, &k->table, &k->plugin_ctx);
    conf_call_leave(prev);
    if (st != KP_OK) {
        snprintf(k->load_error, sizeof(k->load_error), "kp_plugin_init failed with %s (%s)",
                 conf_status_name(st), conf_err_text());
        return false;
    }
    if (k->table == NULL) {
        snprintf(k->load_error, sizeof(k->load_error),
                 "kp_plugin_init returned KP_OK without a dispatch table");
        return false;
    }
    conf_calls_bind(k->table); /* conf_fn hands out wrappers that name the call */
    kp_plugin_info_fn *info = CONF_FN(k, plugin_info, KP_FN_PLUGIN_INFO);
    k->info = info != NULL ? info(k->plugin_ctx) : NULL;
    if (k->info == NULL) {
        snprintf(k->load_error, sizeof(k->load_error),
                 info == NULL ? "no KP_FN_PLUGIN_INFO (100) in the dispatch table"
                              : "KP_FN_PLUGIN_INFO returned NULL");
        return false;
    }
    if (k->info->struct_size < KP_PLUGIN_INFO_V1_SIZE) {
        snprintf(k->load_error, sizeof(k->load_error),
                 "kp_plugin_info.struct_size %u is smaller than ABI 1.0's %zu",
                 k->info->struct_size, (size_t)KP_PLUGIN_INFO_V1_SIZE);
        return false;
    }
    k->loaded = true;
    return true;
}

void conf_unload(conf_kit *k)
{
    if (k->loaded)
        s_teardown(k->table, k->plugin_ctx);
    k->loaded = false;
    /* No dlclose: valgrind and ASan name the plugin's frames in leak reports only while it
     * stays mapped, and a plugin's atexit handlers stay valid. */
}
