/*
 * OpenSSL's error queue read in one place (keyplane/kit/ossl.h), so every store words an
 * OpenSSL failure alike and none leaves the queue dirty for the next caller on its thread; and
 * the plugins' one way to report such a failure, with the reason appended.
 */
#include <stdarg.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <keyplane/kit/ossl.h>

/* Empties the calling thread's queue: the reason of its last error into buf, and which of
 * OpenSSL's allocators failed on the way, if one did: 2 the secure heap, 1 the heap, 0 none. */
static int s_drain(char *buf, size_t cap)
{
    unsigned long e, last = 0;
    int oom = 0;

    while ((e = ERR_get_error()) != 0) {
        last = e;
        if (ERR_GET_LIB(e) == ERR_LIB_CRYPTO && ERR_GET_REASON(e) == CRYPTO_R_SECURE_MALLOC_FAILURE)
            oom = 2;
        else if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE && oom == 0)
            oom = 1;
    }
    const char *reason = last != 0 ? ERR_reason_error_string(last) : NULL;
    if (cap > 0)
        snprintf(buf, cap, "%s", reason != NULL ? reason : "");
    return oom;
}

const char *kpk_ossl_reason(char *buf, size_t cap)
{
    (void)s_drain(buf, cap);
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
    int oom = s_drain(reason, sizeof(reason));
    if (oom == 2)
        return kp_errorf(up, h, KP_ERR_NOMEM, "%s: OpenSSL's secure heap is full", msg);
    if (oom == 1)
        return kp_errorf(up, h, KP_ERR_NOMEM, "%s: out of memory%s", msg,
                         CRYPTO_secure_malloc_initialized() ? " (or OpenSSL's secure heap is full)"
                                                            : "");
    if (reason[0] == '\0')
        return up->set_error(h, status, msg);
    return kp_errorf(up, h, status, "%s: %s", msg, reason);
}
