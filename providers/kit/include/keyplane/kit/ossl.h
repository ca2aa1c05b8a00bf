/*
 * keyplane provider kit: the one reader of OpenSSL's error queue. A store that reports an
 * OpenSSL failure adds the library's reason to its own line of text, and leaves the calling
 * thread's queue empty so a stale error never shows up in someone else's message. Part of
 * keyplane-kit-codec (OpenSSL only).
 */
#ifndef KEYPLANE_KIT_OSSL_H
#define KEYPLANE_KIT_OSSL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Room for any reason kpk_ossl_reason writes, with its NUL. */
#define KPK_OSSL_REASON_MAX 128

/** The reason of the last error queued on the calling thread ("wrong final block length"),
 *  copied into buf (cap bytes, truncated to fit), and the thread's queue cleared. buf is ""
 *  when the queue held no error or OpenSSL has no text for it. Returns buf. Never key material:
 *  OpenSSL's reasons are fixed strings. */
const char *kpk_ossl_reason(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_KIT_OSSL_H */
