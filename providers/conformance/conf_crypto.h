/*
 * The kit's own cryptography (OpenSSL), used to check plugins independently: keys it imports,
 * wraps it makes from a public key alone, unwraps of what a plugin produced, and the RSA-AES key
 * transfer blobs of KS_IMPORT_OFFER/KS_EXPORT_WRAPPED.
 */
#ifndef KEYPLANE_CONF_CRYPTO_H
#define KEYPLANE_CONF_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/** A new RSA key of bits, NULL on failure. */
EVP_PKEY *conf_rsa_new(uint32_t bits);
/** DER encodings (malloc'd; *len set), NULL on failure. PKCS#8 comes back as the kit's secret. */
uint8_t *conf_spki_der(EVP_PKEY *k, size_t *len);
struct kp_secret *conf_pkcs8_secret(EVP_PKEY *k);
EVP_PKEY *conf_pkey_from_spki(const uint8_t *der, size_t len);
EVP_PKEY *conf_pkey_from_pkcs8(const uint8_t *der, size_t len);
/** RSA modulus bits of k, 0 when k is not RSA. */
uint32_t conf_rsa_bits(EVP_PKEY *k);
/** Lower-case hex SHA-256 of der into out[65]: a fingerprint computed here, not with the
 *  provider kit's kpk_fpr_spki that plugins use, so that a fault there cannot hide itself. */
void conf_sha256_hex(const uint8_t *der, size_t len, char out[65]);
/** The fingerprint of k's SPKI. */
bool conf_pkey_fpr(EVP_PKEY *k, char out[65]);
void conf_random(void *p, size_t n);

/** RSA encryption with kp_wrap_alg alg (OAEP-SHA1, OAEP-SHA256, PKCS#1 v1.5) under k's public
 *  key; out is malloc'd. */
uint8_t *conf_rsa_encrypt(EVP_PKEY *k, uint32_t alg, const uint8_t *in, size_t inlen,
                          size_t *outlen);
/** The inverse with k's private key; false when it does not decrypt. out holds >= modulus. */
bool conf_rsa_decrypt(EVP_PKEY *k, uint32_t alg, const uint8_t *in, size_t inlen, uint8_t *out,
                      size_t *outlen);

/** KP_KEYX_RSA_AES_KWP_SHA1/SHA256: a fresh AES-256 key wraps data (RFC 5649), the AES key is
 *  RSA-OAEP-wrapped under k; blob = RSA part || AES part (malloc'd). */
uint8_t *conf_rsa_aes_wrap(EVP_PKEY *k, uint32_t method, const uint8_t *data, size_t len,
                           size_t *bloblen);
/** The inverse; out is malloc'd (the caller wipes it). */
uint8_t *conf_rsa_aes_unwrap(EVP_PKEY *k, uint32_t method, const uint8_t *blob, size_t bloblen,
                             size_t *outlen);

#endif
