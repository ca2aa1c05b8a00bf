/* One source, several single-fault plugins: see mock_common.h and CMakeLists.txt. */
#include <string.h>

#include "mock_common.h"

#ifndef MOCK_FAULT_NO_INIT
KP_PLUGIN_EXPORT kp_plugin_init_fn kp_plugin_init;

kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out, void **plugin_ctx)
{
    if (core == NULL || core->struct_size < sizeof(kp_core_info) || core->abi_major != KP_ABI_MAJOR)
        return KP_ERR_ABI;
#ifdef MOCK_FAULT_INIT_FAILS
    (void)out, (void)plugin_ctx;
    const kp_dispatch *d = kp_dispatch_find(core->upcalls, KP_UP_SET_ERROR);
    if (d != NULL)
        return kp_dispatch_up_set_error(d)(core->handle, KP_ERR_BACKEND,
                                           "mock backend is unavailable by design");
    return KP_ERR_BACKEND;
#else
    *out = s_table;
    *plugin_ctx = NULL;
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
