/*
 * The context's plugin directories: absolute paths, searched in the order added, each once
 * (--plugin-dir, KEYPLANE_PLUGIN_PATH, the install directory).
 */
#include <stdlib.h>
#include <string.h>

#include "base/context.h"
#include "base/error.h"
#include "base/log.h"
#include "base/util.h"

#ifndef KEYPLANE_PLUGIN_DIR
#error "KEYPLANE_PLUGIN_DIR must be defined by the build"
#endif

kp_status kp_ctx_add_plugin_dir(kp_ctx *ctx, const char *dir)
{
    KP_ENSURE(ctx != NULL && dir != NULL, KP_ERR_INVALID_ARG);
    if (dir[0] != '/')
        return kp__set_error(ctx, KP_ERR_INVALID_ARG,
                             "plugin directory '%s' is not an absolute path", dir);
    for (size_t i = 0; i < ctx->ndirs; i++)
        if (strcmp(ctx->dirs[i], dir) == 0)
            return KP_OK;
    if (ctx->ndirs == KP_MAX_PLUGIN_DIRS)
        return kp__set_error(ctx, KP_ERR_INVALID_ARG, "too many plugin directories (max %d)",
                             KP_MAX_PLUGIN_DIRS);
    char *copy = kp__strdup(dir);
    if (copy == NULL)
        return KP_ERR_NOMEM;
    ctx->dirs[ctx->ndirs++] = copy;
    return KP_OK;
}

kp_status kp_ctx_add_plugin_path(kp_ctx *ctx, const char *list)
{
    KP_ENSURE(ctx != NULL, KP_ERR_INVALID_ARG);
    if (list == NULL)
        return KP_OK;
    char *copy = kp__strdup(list);
    if (copy == NULL)
        return KP_ERR_NOMEM;
    kp_status st = KP_OK;
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); st == KP_OK && d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        if (d[0] != '/')
            kp__log(ctx, KP_LOG_WARN, "ignoring plugin path entry '%s': not an absolute path", d);
        else
            st = kp_ctx_add_plugin_dir(ctx, d);
    }
    free(copy);
    return st;
}

const char *kp_install_plugin_dir(void)
{
    return KEYPLANE_PLUGIN_DIR;
}

kp_status kp_ctx_use_default_plugin_dirs(kp_ctx *ctx)
{
    /* secure_getenv: a setuid caller must not take plugin paths from its user. */
    KP_GUARD(kp_ctx_add_plugin_path(ctx, secure_getenv("KEYPLANE_PLUGIN_PATH")));
    return kp_ctx_add_plugin_dir(ctx, KEYPLANE_PLUGIN_DIR);
}

size_t kp_ctx_plugin_dir_count(const kp_ctx *ctx)
{
    return ctx != NULL ? ctx->ndirs : 0;
}

const char *kp_ctx_plugin_dir(const kp_ctx *ctx, size_t i)
{
    return ctx != NULL && i < ctx->ndirs ? ctx->dirs[i] : NULL;
}
