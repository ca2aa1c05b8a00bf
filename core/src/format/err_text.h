/* The one-line reasons the format readers and writers (pkcs8.c, pvk.c, x509.c) hand back in
 * their err buffers: never key material, OpenSSL's reason added where it queued one. Not
 * installed. */
#ifndef KP_FORMAT_ERR_TEXT_H
#define KP_FORMAT_ERR_TEXT_H

#include <stddef.h>

#include <keyplane/error.h>
#include <keyplane/provider.h>

/* fmt into err (errlen bytes; err may be NULL); returns st. */
KP_PRINTF_(4, 5)
kp_status kp__fmt_fail(char *err, size_t errlen, kp_status st, const char *fmt, ...);
/* msg and the reason OpenSSL queued, if any, into err; the thread's queue is emptied. Returns
 * st. */
kp_status kp__fmt_ossl_fail(char *err, size_t errlen, kp_status st, const char *msg);

#endif
