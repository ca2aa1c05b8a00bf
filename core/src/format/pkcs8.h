/*
 * PKCS#8 export inside libkeyplane: kp_pkcs8_encrypt_pem (keyplane.h) with the reason of a
 * failure, for the core's callers that set it as their error text (a secret replica's copy).
 * Not installed.
 */
#ifndef KP_FORMAT_PKCS8_H
#define KP_FORMAT_PKCS8_H

#include <stddef.h>

#include <keyplane/keyplane.h>

/* As kp_pkcs8_encrypt_pem; on failure err (errlen bytes; may be NULL) receives one line of
 * reason, OpenSSL's included (never key material), and OpenSSL's error queue is left empty. */
kp_status kp__pkcs8_encrypt_pem(const kp_secret *pkcs8_der, const kp_secret *passphrase, char **pem,
                                size_t *len, char *err, size_t errlen);

#endif
