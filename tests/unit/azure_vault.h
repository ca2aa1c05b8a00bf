/*
 * Helpers of the azure-keyvault tests that drive libkeyplane against one emulated vault
 * (tests/emulators/azure_keyvault), started by run_with_vault.sh, which exports KV_CA and
 * KV_VAULT1_URL. The emulator's control endpoints (/_emulator/faults, /_emulator/stats) are
 * reached through the provider kit's transport. Every helper ends the program on a failure:
 * these are drivers with a verdict, not unit tests with fixtures.
 */
#ifndef KP_TEST_AZURE_VAULT_H
#define KP_TEST_AZURE_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include <keyplane/keyplane.h>

/** The emulator's counters (GET /_emulator/stats). */
typedef struct akvt_stats {
    long requests, r429, r500, r503, drop, ok, corrupt;
} akvt_stats;

/** Prints "FAIL: ..." and exits 1. */
void akvt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/**
 * Connects to the vault named by KV_VAULT1_URL and writes a policy with two azure-keyvault
 * instances of it: "vault1" (max_attempts 4) and "vault1-a3" (max_attempts 3), both with
 * client secret env:AZ_SECRET (set here). Loads the policy into a new context.
 */
void akvt_init(void);
/** Closes the control connection, the policy and the context; removes the temp files. */
void akvt_done(void);

kp_ctx *akvt_ctx(void);
/** A fresh instance (empty caches) of the policy's instance name. */
kp_instance *akvt_open(const char *name);

/** Replaces the emulator's fault configuration with json (PUT /_emulator/faults). */
void akvt_faults(const char *json);
void akvt_stats_get(akvt_stats *out);

/** n random bytes as a new secret. */
kp_secret *akvt_random_dek(size_t n);

/** RSA-OAEP-SHA256 of dek under the SubjectPublicKeyInfo spki, locally (OpenSSL): ciphertext
 *  made without the vault. *out is malloc'd. */
void akvt_local_wrap(const uint8_t *spki, size_t spki_len, const kp_secret *dek, uint8_t **out,
                     size_t *outlen);

/** Seconds of CLOCK_MONOTONIC. */
double akvt_now(void);

/**
 * A request to the vault's keys API behind keyplane's back, to see or change what keyplane
 * cannot (tags, attributes), with a token from the emulator's managed-identity endpoint. path is
 * "/keys/..." without api-version; body may be NULL. Returns the HTTP status; *out (if not NULL)
 * receives the parsed answer (caller decrefs; NULL when the body is not JSON).
 */
long akvt_rest(const char *method, const char *path, const char *body, json_t **out);

/** A fresh RSA key of bits (OpenSSL; caller frees with EVP_PKEY_free). */
EVP_PKEY *akvt_rsa(unsigned bits);
/** The SubjectPublicKeyInfo DER of key (*spki malloc'd) and its fingerprint. */
void akvt_spki(EVP_PKEY *key, uint8_t **spki, size_t *len, char fpr[KPK_FPR_HEX]);
/** The PKCS#8 PrivateKeyInfo DER of key as a new secret. */
kp_secret *akvt_pkcs8(EVP_PKEY *key);
/** key wrapped for a KP_KEYX_RSA_AES_KWP_SHA1 import under the RSA public key spki, made
 *  locally: RSA-OAEP-SHA-1 of a fresh AES-256 key, then RFC 5649 of the PKCS#8 under it.
 *  *blob is malloc'd. */
void akvt_keyx_blob(const uint8_t *spki, size_t spki_len, EVP_PKEY *key, uint8_t **blob,
                    size_t *len);

#endif
