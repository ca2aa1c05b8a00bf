/*
 * The library context: plugin directories, log and audit sinks, the last error's detail.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifndef KEYPLANE_PLUGIN_DIR
#error "KEYPLANE_PLUGIN_DIR must be defined by the build"
#endif

const char *kp_version(void)
{
    return KEYPLANE_VERSION;
}

kp_status kp_ctx_new(kp_ctx **out)
{
    KP_ENSURE(out != NULL, KP_ERR_INVALID_ARG);
    kp_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return KP_ERR_NOMEM;
    pthread_mutex_init(&ctx->lock, NULL);
    /* Detail text is per context and per thread, so workers sharing a context (apply's
     * replication pool) never read each other's errors. */
    if (pthread_key_create(&ctx->errkey, free) != 0) {
        pthread_mutex_destroy(&ctx->lock);
        free(ctx);
        return KP_ERR_NOMEM;
    }
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

const char *kp_ctx_last_error(const kp_ctx *ctx)
{
    const char *buf = ctx != NULL ? pthread_getspecific(ctx->errkey) : NULL;
    return buf != NULL ? buf : "";
}

kp_status kp__set_error(kp_ctx *ctx, kp_status status, const char *fmt, ...)
{
    if (ctx == NULL)
        return status;
    char buf[KP_ERRBUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    kp__one_line(buf);
    char *mine = pthread_getspecific(ctx->errkey);
    if (mine == NULL) {
        mine = malloc(KP_ERRBUF);
        if (mine == NULL || pthread_setspecific(ctx->errkey, mine) != 0) {
            free(mine);
            return status;
        }
    }
    memcpy(mine, buf, sizeof(buf));
    return status;
}

void kp__clear_error(kp_ctx *ctx)
{
    if (ctx == NULL)
        return;
    char *mine = pthread_getspecific(ctx->errkey);
    if (mine != NULL)
        mine[0] = '\0';
}

void kp_ctx_set_log(kp_ctx *ctx, kp_log_level level, FILE *stream)
{
    if (ctx == NULL)
        return;
    ctx->log_level = level;
    ctx->log = stream;
}

void kp_ctx_set_audit(kp_ctx *ctx, FILE *stream)
{
    if (ctx != NULL)
        ctx->audit = stream;
}

static const char *s_level_name(kp_log_level level)
{
    switch (level) {
    case KP_LOG_ERROR:
        return "error";
    case KP_LOG_WARN:
        return "warning";
    case KP_LOG_INFO:
        return "info";
    case KP_LOG_DEBUG:
        return "debug";
    }
    return "log";
}

void kp__one_line(char *s)
{
    /* Control characters (a newline, an escape sequence) become spaces: detail text ends up in
     * single-line messages, terminals and JSON, and a plugin's text must not forge a line. */
    for (unsigned char *p = (unsigned char *)s; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

void kp__log(kp_ctx *ctx, kp_log_level level, const char *fmt, ...)
{
    if (ctx == NULL || ctx->log == NULL || level > ctx->log_level)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    kp__one_line(buf); /* a plugin's text cannot forge a second log line */
    flockfile(ctx->log);
    fprintf(ctx->log, "keyplane: %s: %s\n", s_level_name(level), buf);
    funlockfile(ctx->log);
}

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

kp_status kp__instance_borrow(kp_ctx *ctx, const kp_policy *policy, const char *name,
                              kp_instance **out)
{
    uint64_t id = kp__policy_id(policy);
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->nicache; i++) {
        if (ctx->icache[i].policy == id && strcmp(ctx->icache[i].name, name) == 0) {
            *out = ctx->icache[i].inst;
            pthread_mutex_unlock(&ctx->lock);
            return KP_OK;
        }
    }
    pthread_mutex_unlock(&ctx->lock);
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
