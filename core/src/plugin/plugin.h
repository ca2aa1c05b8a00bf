/*
 * The plugin layer, for the layers above it: a loaded plugin (what its handshake gave the core)
 * and how to find one of its functions. Not installed.
 */
#ifndef KP_PLUGIN_PLUGIN_H
#define KP_PLUGIN_PLUGIN_H

#include <keyplane/keyplane.h>

/* Who an upcall speaks for: the plugin itself, or one of its instances. */
struct kp_core_handle {
    kp_ctx *ctx;
    const char *who; /* plugin or instance name, borrowed from its owner */
};

struct kp_plugin {
    kp_core_info core; /* what kp_plugin_init was given: valid until unload, as the ABI says */
    kp_ctx *ctx;
    char *path;
    char *name;
    void *dl;
    const kp_dispatch *table;
    void *plugin_ctx;
    const kp_plugin_info *info;
    const kp_param_desc *params;
    struct kp_core_handle handle;
    unsigned open_instances;
};

/* The plugin's function id, or NULL when it has none. */
const kp_dispatch *kp__plugin_fn(const kp_plugin *plugin, uint32_t id);
/* Runs the plugin's teardown and closes it (the context's end). */
void kp__plugin_unload(kp_plugin *plugin);
/* The services the core offers plugins (KP_UP_*), for the handshake. */
const kp_dispatch *kp__upcalls(void);

#endif
