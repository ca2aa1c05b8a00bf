/*
 * A library context of keyplane's own for the ciphers of OpenSSL's legacy provider (RC4, which
 * PVK files are encrypted with). Loading the legacy provider into the default context would
 * hand RC4 and its kin to every other user of OpenSSL in the process, which may be a database
 * engine with its own rules about ciphers; a context of our own keeps them to the PVK code.
 *
 * The context lives until the process ends. It is not freed at unload: nothing in libkeyplane
 * runs at unload, and a destructor would run after OpenSSL's own atexit cleanup, freeing
 * provider objects whose library state is already gone. It stays reachable from s_ctx, so a
 * leak checker does not count it.
 */
#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include "format/ossl_legacy.h"

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static OSSL_LIB_CTX *s_ctx;

static void s_make(void)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    if (ctx == NULL)
        return;
    /* default too: the PVK code also needs SHA-1 for its key derivation and the RSA key
     * management, which the legacy provider does not carry. */
    OSSL_PROVIDER *legacy = OSSL_PROVIDER_load(ctx, "legacy");
    OSSL_PROVIDER *deflt = legacy != NULL ? OSSL_PROVIDER_load(ctx, "default") : NULL;
    if (deflt == NULL) {
        if (legacy != NULL)
            OSSL_PROVIDER_unload(legacy);
        OSSL_LIB_CTX_free(ctx);
        /* the caller says what is missing in its own words; a stale entry in this thread's
         * queue would only confuse the next reader. */
        ERR_clear_error();
        return;
    }
    /* The two provider handles stay loaded for as long as the context lives. */
    s_ctx = ctx;
}

OSSL_LIB_CTX *kp__ossl_legacy_ctx(void)
{
    if (pthread_once(&s_once, s_make) != 0)
        return NULL;
    return s_ctx;
}
