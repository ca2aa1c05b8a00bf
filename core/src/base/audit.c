/*
 * Audit events: one JSON object per line on the stream kp_ctx_set_audit names, written by the
 * core around every key operation so that a plugin can neither skip nor forge them. Fields
 * never carry key material.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/audit.h"
#include "base/context.h"

void kp_ctx_set_audit(kp_ctx *ctx, FILE *stream)
{
    if (ctx != NULL)
        ctx->audit = stream;
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
    if (ev->version != 0)
        json_object_set_new(obj, "version", json_integer(ev->version));
    s_set_str(obj, "alg", ev->alg);
    json_object_set_new(obj, "outcome", json_string(ev->status == KP_OK ? "ok" : "error"));
    if (ev->status != KP_OK)
        json_object_set_new(obj, "status", json_string(kp_status_name(ev->status)));
    s_set_str(obj, "detail", ev->detail);
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
