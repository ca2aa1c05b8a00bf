/*
 * keyplane provider kit: the one reader of OpenSSL's error queue. A store that reports an
 * OpenSSL failure adds the library's reason to its own line of text, and leaves the calling
 * thread's queue empty so a stale error never shows up in someone else's message. A plugin does
 * both in one call, kpk_ossl_errorf, the kp_errorf of provider.h for OpenSSL failures, so every
 * plugin words them alike. Part of keyplane-kit-codec (OpenSSL only).
 */
#ifndef KEYPLANE_KIT_OSSL_H
#define KEYPLANE_KIT_OSSL_H

#include <stddef.h>

#include <keyplane/provider.h>

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

/** kp_errorf for an OpenSSL failure: sets "<fmt...>: <reason>" through up's SET_ERROR (just
 *  "<fmt...>" when the queue held no reason), clears the thread's queue and returns status.
 *  When an allocation failed on the way (OpenSSL's secure heap full, say: a key that does not
 *  decode for want of memory is not a malformed key), the reason says so and KP_ERR_NOMEM is
 *  returned instead of status. Calls nothing but up->set_error of the core's upcalls. Never pass
 *  secrets. */
KP_PRINTF_(4, 5)
kp_status kpk_ossl_errorf(const kp_upcalls *up, kp_core_handle *h, kp_status status,
                          const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_KIT_OSSL_H */
