/*
 * Helpers of the azure-keyvault drivers (azure.faults, azure.malformed, azure.abi), which run
 * libkeyplane against one emulated vault "vault1" that run_with_vault.sh started: a policy with
 * two instances of it, the emulator's control client (tests/support/kp_test_vault.h), and the
 * OpenSSL pieces that make what a client would send without the vault. Every helper fails the
 * program on an error (kp_test_fail): these are drivers with a verdict, not cmocka tests.
 */
#ifndef KP_TEST_AZURE_VAULT_H
#define KP_TEST_AZURE_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include <keyplane/keyplane.h>

#include "kp_test_vault.h"

/**
 * Connects to the vault named by KV_VAULT1_URL and loads, in a new context (a kp_test_fx), a
 * policy with two azure-keyvault instances of it: "vault1" (max_attempts 4) and "vault1-a3"
 * (max_attempts 3), both with client secret env:AZ_SECRET (set here).
 */
void kp_test_akv_init(void);
/** Closes the control client, the policy and the context; removes the temporary directory. */
void kp_test_akv_done(void);

kp_ctx *kp_test_akv_ctx(void);
/** The emulator's control client for vault1. */
kp_test_vault *kp_test_akv_vault(void);
/** A fresh instance (empty caches) of the policy's instance name. */
kp_instance *kp_test_akv_open(const char *name);

/** n random bytes as a new secret. */
kp_secret *kp_test_akv_random_dek(size_t n);

/** RSA-OAEP-SHA256 of dek under the SubjectPublicKeyInfo spki, locally (OpenSSL): ciphertext
 *  made without the vault. *out is malloc'd. */
void kp_test_akv_local_wrap(const uint8_t *spki, size_t spki_len, const kp_secret *dek,
                            uint8_t **out, size_t *outlen);

/** A fresh RSA key of bits (OpenSSL; caller frees with EVP_PKEY_free). */
EVP_PKEY *kp_test_akv_rsa(unsigned bits);
/** The SubjectPublicKeyInfo DER of key (*spki malloc'd) and its fingerprint. */
void kp_test_akv_spki(EVP_PKEY *key, uint8_t **spki, size_t *len, char fpr[KPK_FPR_HEX]);
/** The PKCS#8 PrivateKeyInfo DER of key as a new secret. */
kp_secret *kp_test_akv_pkcs8(EVP_PKEY *key);
/** key wrapped for a KP_KEYX_RSA_AES_KWP_SHA1 import under the RSA public key spki, made
 *  locally: RSA-OAEP-SHA-1 of a fresh AES-256 key, then RFC 5649 of the PKCS#8 under it.
 *  *blob is malloc'd. */
void kp_test_akv_keyx_blob(const uint8_t *spki, size_t spki_len, EVP_PKEY *key, uint8_t **blob,
                           size_t *len);

#endif
