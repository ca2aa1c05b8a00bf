/*
 * Error text, the lowest layer of the core: the text, name and category of every status (the
 * switches have no default so that -Wall (-Wswitch) flags a code added to status.h without text
 * here, as curl's lib/strerror.c does), and the one line of detail a failing call leaves in its
 * context, per thread. Everything else in the core calls down to this file; it calls nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/context.h"
#include "base/error.h"

const char *kp_strerror(kp_status status)
{
    switch (status) {
    case KP_OK:
        return "success";
    case KP_ERR_INVALID_ARG:
        return "invalid argument";
    case KP_ERR_BUFFER_TOO_SMALL:
        return "buffer too small";
    case KP_ERR_UNSUPPORTED:
        return "operation not supported";
    case KP_ERR_CONFIG:
        return "configuration error";
    case KP_ERR_PLUGIN:
        return "plugin refused";
    case KP_ERR_ABI:
        return "ABI version mismatch";
    case KP_ERR_AUTH:
        return "authentication failed";
    case KP_ERR_PERMISSION:
        return "permission denied";
    case KP_ERR_NOT_FOUND:
        return "not found";
    case KP_ERR_EXISTS:
        return "already exists";
    case KP_ERR_UNAVAILABLE:
        return "service unavailable";
    case KP_ERR_TIMEOUT:
        return "timed out";
    case KP_ERR_THROTTLED:
        return "throttled";
    case KP_ERR_BACKEND:
        return "backend error";
    case KP_ERR_IO:
        return "I/O error";
    case KP_ERR_INTEGRITY:
        return "integrity check failed";
    case KP_ERR_CRYPTO:
        return "cryptographic operation failed";
    case KP_ERR_NOMEM:
        return "out of memory";
    case KP_ERR_INTERNAL:
        return "internal error";
    case KP_ERR_DENIED:
        return "refused by policy";
    case KP_ERR_CONFLICT:
        return "changed since it was read";
    case KP_STATUS_COUNT_:
        break;
    }
    return "unknown status";
}

const char *kp_status_name(kp_status status)
{
    switch (status) {
    case KP_OK:
        return "KP_OK";
    case KP_ERR_INVALID_ARG:
        return "KP_ERR_INVALID_ARG";
    case KP_ERR_BUFFER_TOO_SMALL:
        return "KP_ERR_BUFFER_TOO_SMALL";
    case KP_ERR_UNSUPPORTED:
        return "KP_ERR_UNSUPPORTED";
    case KP_ERR_CONFIG:
        return "KP_ERR_CONFIG";
    case KP_ERR_PLUGIN:
        return "KP_ERR_PLUGIN";
    case KP_ERR_ABI:
        return "KP_ERR_ABI";
    case KP_ERR_AUTH:
        return "KP_ERR_AUTH";
    case KP_ERR_PERMISSION:
        return "KP_ERR_PERMISSION";
    case KP_ERR_NOT_FOUND:
        return "KP_ERR_NOT_FOUND";
    case KP_ERR_EXISTS:
        return "KP_ERR_EXISTS";
    case KP_ERR_UNAVAILABLE:
        return "KP_ERR_UNAVAILABLE";
    case KP_ERR_TIMEOUT:
        return "KP_ERR_TIMEOUT";
    case KP_ERR_THROTTLED:
        return "KP_ERR_THROTTLED";
    case KP_ERR_BACKEND:
        return "KP_ERR_BACKEND";
    case KP_ERR_IO:
        return "KP_ERR_IO";
    case KP_ERR_INTEGRITY:
        return "KP_ERR_INTEGRITY";
    case KP_ERR_CRYPTO:
        return "KP_ERR_CRYPTO";
    case KP_ERR_NOMEM:
        return "KP_ERR_NOMEM";
    case KP_ERR_INTERNAL:
        return "KP_ERR_INTERNAL";
    case KP_ERR_DENIED:
        return "KP_ERR_DENIED";
    case KP_ERR_CONFLICT:
        return "KP_ERR_CONFLICT";
    case KP_STATUS_COUNT_:
        break;
    }
    return "KP_ERR_UNKNOWN";
}

kp_category kp_status_category(kp_status status)
{
    switch (status) {
    case KP_OK:
        return KP_CAT_OK;
    case KP_ERR_INVALID_ARG:
    case KP_ERR_BUFFER_TOO_SMALL:
    case KP_ERR_UNSUPPORTED:
        return KP_CAT_USAGE;
    case KP_ERR_CONFIG:
    case KP_ERR_PLUGIN:
    case KP_ERR_ABI:
        return KP_CAT_CONFIG;
    case KP_ERR_AUTH:
    case KP_ERR_PERMISSION:
    case KP_ERR_DENIED:
        return KP_CAT_AUTH;
    case KP_ERR_NOT_FOUND:
    case KP_ERR_EXISTS:
    case KP_ERR_CONFLICT:
        return KP_CAT_NOT_FOUND;
    case KP_ERR_UNAVAILABLE:
    case KP_ERR_TIMEOUT:
    case KP_ERR_THROTTLED:
        return KP_CAT_TRANSIENT;
    case KP_ERR_BACKEND:
    case KP_ERR_IO:
        return KP_CAT_BACKEND;
    case KP_ERR_INTEGRITY:
    case KP_ERR_CRYPTO:
        return KP_CAT_INTEGRITY;
    case KP_ERR_NOMEM:
    case KP_ERR_INTERNAL:
    case KP_STATUS_COUNT_:
        break;
    }
    return KP_CAT_INTERNAL;
}

const char *kp_category_name(kp_category category)
{
    switch (category) {
    case KP_CAT_OK:
        return "ok";
    case KP_CAT_USAGE:
        return "usage";
    case KP_CAT_CONFIG:
        return "config";
    case KP_CAT_AUTH:
        return "auth";
    case KP_CAT_NOT_FOUND:
        return "not-found";
    case KP_CAT_TRANSIENT:
        return "transient";
    case KP_CAT_BACKEND:
        return "backend";
    case KP_CAT_INTEGRITY:
        return "integrity";
    case KP_CAT_INTERNAL:
        break;
    }
    return "internal";
}

int kp_status_is_transient(kp_status status)
{
    return kp_status_category(status) == KP_CAT_TRANSIENT;
}

/* ---- the context's detail text ------------------------------------------------------------ */

const char *kp_ctx_last_error(const kp_ctx *ctx)
{
    const char *buf = ctx != NULL ? pthread_getspecific(ctx->errkey) : NULL;
    return buf != NULL ? buf : "";
}

void kp__one_line(char *s)
{
    /* Control characters (a newline, an escape sequence) become spaces: detail text ends up in
     * single-line messages, terminals and JSON, and a plugin's text must not forge a line. */
    for (unsigned char *p = (unsigned char *)s; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
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
