/*
 * The OpenSSL library context that holds RC4, for PVK files (format/pvk.c). Not installed.
 */
#ifndef KP_FORMAT_OSSL_LEGACY_H
#define KP_FORMAT_OSSL_LEGACY_H

#include <openssl/types.h>

/* keyplane's own library context with OpenSSL's "legacy" and "default" providers loaded, made
 * on the first call (any thread) and kept for the life of the process. NULL when the legacy
 * provider cannot be loaded (OpenSSL built without it, or its module missing); every later call
 * answers the same. The process's default context is never touched: code outside keyplane that
 * fetches RC4 from it still finds none. */
OSSL_LIB_CTX *kp__ossl_legacy_ctx(void);

#endif
