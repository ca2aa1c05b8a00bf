/*
 * OpenSSL's error queue read in one place (keyplane/kit/ossl.h), so every store words an
 * OpenSSL failure alike and none leaves the queue dirty for the next caller on its thread; and
 * the plugins' one way to report such a failure, with the reason appended.
 */
#include <stdarg.h>
#include <stdio.h>

#include <openssl/err.h>

#include <keyplane/kit/ossl.h>

const char *kpk_ossl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (cap > 0)
        snprintf(buf, cap, "%s", reason != NULL ? reason : "");
    ERR_clear_error();
    return buf;
}

kp_status kpk_ossl_errorf(const kp_upcalls *up, kp_core_handle *h, kp_status status,
                          const char *fmt, ...)
{
    char msg[KP_ERROR_MAX + 1], reason[KPK_OSSL_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (kpk_ossl_reason(reason, sizeof(reason))[0] == '\0')
        return up->set_error(h, status, msg);
    return kp_errorf(up, h, status, "%s: %s", msg, reason);
}
