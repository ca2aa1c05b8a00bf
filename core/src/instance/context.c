/*
 * The library context's lifetime, and the instances it keeps open. kp_ctx_free closes those
 * instances and unloads the plugins, so the context is made and freed here, at the top of the
 * layers it owns (base keeps its error text and log, plugin its directories and plugins).
 */
#include <stdlib.h>
#include <string.h>

#include "base/context.h"
#include "base/log.h"
#include "base/util.h"
#include "instance/instance.h"
#include "plugin/plugin.h"
#include "policy/policy.h"

const char *kp_version(void)
{
    return KEYPLANE_VERSION;
}

kp_status kp_ctx_new(kp_ctx **out)
{
    KP_ENSURE(out != NULL, KP_ERR_INVALID_ARG);
    kp_ctx *ctx = calloc(1, sizeof(*ctx));
    KP_ENSURE(ctx != NULL, KP_ERR_NOMEM);
    /* Detail text is per context and per thread, so workers sharing a context (apply's
     * replication pool) never read each other's errors. */
    if (pthread_key_create(&ctx->errkey, free) != 0) {
        free(ctx);
        return KP_ERR_NOMEM;
    }
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->log_level = KP_LOG_WARN;
    ctx->log = stderr;
    *out = ctx;
    return KP_OK;
}

void kp_ctx_free(kp_ctx *ctx)
{
    if (ctx == NULL)
        return;
    for (size_t i = 0; i < ctx->nicache; i++) {
        kp_instance_close(ctx->icache[i].inst);
        free(ctx->icache[i].name);
    }
    /* Unload in reverse order of loading. A plugin with an instance still open is left loaded:
     * tearing it down under the instance would turn the caller's leak into a crash. */
    while (ctx->nplugins > 0) {
        kp_plugin *p = ctx->plugins[--ctx->nplugins];
        if (p->open_instances > 0)
            kp__log(ctx, KP_LOG_ERROR,
                    "plugin %s still has %u open instance(s) at kp_ctx_free; "
                    "not unloading it",
                    p->name, p->open_instances);
        else
            kp__plugin_unload(p);
    }
    for (size_t i = 0; i < ctx->ndirs; i++)
        free(ctx->dirs[i]);
    free(pthread_getspecific(ctx->errkey)); /* other threads' buffers went with them */
    pthread_key_delete(ctx->errkey);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

/* The cached instance of policy called name, or NULL. */
static kp_instance *s_cached(kp_ctx *ctx, uint64_t policy, const char *name)
{
    kp_instance *inst = NULL;
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->nicache && inst == NULL; i++)
        if (ctx->icache[i].policy == policy && strcmp(ctx->icache[i].name, name) == 0)
            inst = ctx->icache[i].inst;
    pthread_mutex_unlock(&ctx->lock);
    return inst;
}

kp_status kp__instance_borrow(kp_ctx *ctx, const kp_policy *policy, const char *name,
                              kp_instance **out)
{
    uint64_t id = kp__policy_id(policy);
    *out = s_cached(ctx, id, name);
    if (*out != NULL)
        return KP_OK;
    kp_instance *inst = NULL;
    KP_GUARD(kp_instance_open(ctx, policy, name, &inst));
    char *copy = kp__strdup(name);
    pthread_mutex_lock(&ctx->lock);
    if (copy != NULL && ctx->nicache < KP_ICACHE) {
        ctx->icache[ctx->nicache].policy = id;
        ctx->icache[ctx->nicache].name = copy;
        ctx->icache[ctx->nicache].inst = inst;
        ctx->nicache++;
        copy = NULL;
    }
    pthread_mutex_unlock(&ctx->lock);
    free(copy); /* not cached: kp__instance_return closes it */
    *out = inst;
    return KP_OK;
}

void kp__instance_return(kp_ctx *ctx, kp_instance *inst)
{
    if (inst == NULL)
        return;
    pthread_mutex_lock(&ctx->lock);
    bool cached = false;
    for (size_t i = 0; i < ctx->nicache && !cached; i++)
        cached = ctx->icache[i].inst == inst;
    pthread_mutex_unlock(&ctx->lock);
    if (!cached)
        kp_instance_close(inst);
}
