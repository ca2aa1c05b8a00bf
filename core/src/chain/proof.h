/*
 * Proving that a store holds a version's key: a random challenge, encrypted in software with
 * the version's public key (what any holder of that key can do), must come back through the
 * store's copy. Verify proves keystores (their unwrap) and secret replicas (their PKCS#8 copy)
 * this way. Not installed.
 */
#ifndef KP_CHAIN_PROOF_H
#define KP_CHAIN_PROOF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keyplane/keyplane.h>

typedef struct kp__challenge {
    uint8_t plain[32];
    uint8_t ct[1024]; /* RSA-8192 and smaller */
    size_t ctlen;
} kp__challenge;

/* A fresh challenge encrypted under spki with RSA-OAEP of alg (KP_WRAP_RSA_OAEP_SHA1 or
 * KP_WRAP_RSA_OAEP_SHA256, MGF1 with the same hash); KP_ERR_CRYPTO when that fails, with ctx's
 * error text saying why (OpenSSL's reason included; its error queue is left empty). */
kp_status kp__challenge_make(kp_ctx *ctx, kp__challenge *c, const uint8_t *spki, size_t spkilen,
                             uint32_t alg);
/* Whether back, len is the challenge's plain text. */
bool kp__challenge_met(const kp__challenge *c, const uint8_t *back, size_t len);

#endif
