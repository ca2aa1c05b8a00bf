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
#include "instance/dek_cache.h"
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
    free(ctx->icache);
    kp__dek_cache_free(ctx->dek_cache);
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

/* The cached instance of policy called name, or NULL; ctx->lock held. */
static kp_instance *s_find(const kp_ctx *ctx, uint64_t policy, const char *name)
{
    for (size_t i = 0; i < ctx->nicache; i++)
        if (ctx->icache[i].policy == policy && strcmp(ctx->icache[i].name, name) == 0)
            return ctx->icache[i].inst;
    return NULL;
}

/* Keeps inst (policy's name) in the cache; false (nothing kept) when out of memory. ctx->lock
 * held. */
static bool s_keep(kp_ctx *ctx, uint64_t policy, const char *name, kp_instance *inst)
{
    if (ctx->nicache == ctx->capicache) {
        size_t cap = ctx->capicache > 0 ? 2 * ctx->capicache : 16;
        struct kp_icache *grown = realloc(ctx->icache, cap * sizeof(*grown));
        if (grown == NULL)
            return false;
        ctx->icache = grown;
        ctx->capicache = cap;
    }
    char *copy = kp__strdup(name);
    if (copy == NULL)
        return false;
    ctx->icache[ctx->nicache].policy = policy;
    ctx->icache[ctx->nicache].name = copy;
    ctx->icache[ctx->nicache].inst = inst;
    ctx->nicache++;
    return true;
}

kp_status kp__instance_borrow(kp_ctx *ctx, const kp_policy *policy, const char *name,
                              kp_instance **out)
{
    uint64_t id = kp__policy_id(policy);
    pthread_mutex_lock(&ctx->lock);
    *out = s_find(ctx, id, name);
    pthread_mutex_unlock(&ctx->lock);
    if (*out != NULL)
        return KP_OK;
    /* Opened outside the lock (a login or a KDF may take a while, and other instances should
     * not wait for it); of two threads that opened the same one meanwhile, the first kept wins
     * and the other closes its own. */
    kp_instance *inst = NULL;
    KP_GUARD(kp_instance_open(ctx, policy, name, &inst));
    pthread_mutex_lock(&ctx->lock);
    kp_instance *theirs = s_find(ctx, id, name);
    if (theirs == NULL)
        (void)s_keep(ctx, id, name, inst); /* if not (out of memory), return closes it */
    pthread_mutex_unlock(&ctx->lock);
    if (theirs != NULL) {
        kp_instance_close(inst);
        inst = theirs;
    }
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
