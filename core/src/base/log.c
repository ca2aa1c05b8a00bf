/*
 * The context's log: where it goes and how verbose it is (kp_ctx_set_log), and kp__log, which
 * writes one "keyplane: LEVEL: text" line, never more, whatever the text holds.
 */
#include <stdarg.h>
#include <stdio.h>

#include "base/context.h"
#include "base/log.h"

void kp_ctx_set_log(kp_ctx *ctx, kp_log_level level, FILE *stream)
{
    if (ctx == NULL)
        return;
    ctx->log_level = level;
    ctx->log = stream;
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
