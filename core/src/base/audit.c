/*
 * Audit events: one JSON object per line on the stream kp_ctx_set_audit names, written by the
 * core around every key operation so that a plugin can neither skip nor forge them. Fields
 * never carry key material. Each event says who and where (user, uid, host, pid), what was
 * asked (the program's command and policy) and carries the run id that groups the events of
 * one run.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "base/audit.h"
#include "base/context.h"
#include "base/error.h"

/* A fresh run id and the user and host names as they are now. */
static kp_status s_new_run(kp_ctx *ctx)
{
    unsigned char id[16];
    if (RAND_bytes(id, sizeof(id)) != 1) {
        ctx->who.run[0] = '\0';
        return kp__set_error(ctx, KP_ERR_INTERNAL, "no random bytes for the audit run id");
    }
    for (size_t i = 0; i < sizeof(id); i++)
        snprintf(ctx->who.run + 2 * i, 3, "%02x", id[i]);
    struct passwd pw, *found = NULL;
    char buf[4096];
    ctx->who.user[0] = '\0';
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found) == 0 && found != NULL)
        snprintf(ctx->who.user, sizeof(ctx->who.user), "%s", pw.pw_name);
    if (gethostname(ctx->who.host, sizeof(ctx->who.host)) != 0)
        ctx->who.host[0] = '\0';
    ctx->who.host[sizeof(ctx->who.host) - 1] = '\0';
    return KP_OK;
}

void kp_ctx_set_audit(kp_ctx *ctx, FILE *stream)
{
    if (ctx == NULL)
        return;
    ctx->audit = stream;
    if (stream != NULL && ctx->who.run[0] == '\0')
        (void)s_new_run(ctx); /* without one the events have no "run" */
}

kp_status kp_ctx_set_audit_context(kp_ctx *ctx, const char *command, const char *policy)
{
    KP_ENSURE(ctx != NULL, KP_ERR_INVALID_ARG);
    snprintf(ctx->who.command, sizeof(ctx->who.command), "%s", command != NULL ? command : "");
    snprintf(ctx->who.policy, sizeof(ctx->who.policy), "%s", policy != NULL ? policy : "");
    return s_new_run(ctx);
}

static void s_set_str(json_t *obj, const char *key, const char *value)
{
    if (value != NULL && value[0] != '\0')
        json_object_set_new(obj, key, json_string(value));
}

void kp__audit(kp_ctx *ctx, const kp_audit_event *ev)
{
    if (ctx == NULL || ctx->audit == NULL || ev == NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char secs[32], when[48];
    strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof(when), "%s.%03dZ", secs, (int)(ts.tv_nsec / 1000000));

    json_t *obj = json_object();
    if (obj == NULL)
        return;
    json_object_set_new(obj, "time", json_string(when));
    s_set_str(obj, "op", ev->op);
    s_set_str(obj, "instance", ev->instance);
    s_set_str(obj, "plugin", ev->plugin);
    s_set_str(obj, "name", ev->name);
    s_set_str(obj, "to", ev->to);
    if (ev->version != 0)
        json_object_set_new(obj, "version", json_integer(ev->version));
    s_set_str(obj, "alg", ev->alg);
    json_object_set_new(obj, "outcome", json_string(ev->status == KP_OK ? "ok" : "error"));
    if (ev->status != KP_OK)
        json_object_set_new(obj, "status", json_string(kp_status_name(ev->status)));
    s_set_str(obj, "detail", ev->detail);
    s_set_str(obj, "run", ctx->who.run);
    s_set_str(obj, "user", ctx->who.user);
    json_object_set_new(obj, "uid", json_integer((json_int_t)geteuid()));
    s_set_str(obj, "host", ctx->who.host);
    json_object_set_new(obj, "pid", json_integer((json_int_t)getpid()));
    s_set_str(obj, "command", ctx->who.command);
    s_set_str(obj, "policy", ctx->who.policy);
    char *line = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(obj);
    if (line == NULL)
        return;
    flockfile(ctx->audit);
    fputs(line, ctx->audit);
    fputc('\n', ctx->audit);
    fflush(ctx->audit);
    funlockfile(ctx->audit);
    free(line);
}
