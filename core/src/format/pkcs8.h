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

/* The PKCS#8 PrivateKeyInfo DER of the private key pkey (an EVP_PKEY *) in a new secret: the
 * core's one conversion. KP_ERR_CRYPTO with err when OpenSSL cannot encode it. */
kp_status kp__pkey_pkcs8(const void *pkey, kp_secret **out, char *err, size_t errlen);
/* The private key (an EVP_PKEY *, the caller frees it) of PKCS#8 DER, NULL when it is none. */
void *kp__pkcs8_pkey(const kp_secret *pkcs8);
/* A new RSA private key of bits, as PKCS#8 DER in *out (the key a certificate chain's version
 * is born with). Sets the context's error on failure. */
kp_status kp__rsa_generate(kp_ctx *ctx, uint32_t bits, kp_secret **out);

#endif
