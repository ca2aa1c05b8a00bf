/*
 * OpenSSL's error queue read in one place (keyplane/kit/ossl.h), so every store words an
 * OpenSSL failure alike and none leaves the queue dirty for the next caller on its thread.
 */
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
