/*
 * Secret replicas: secret stores that keep each protector version as password-protected
 * PKCS#8, with the password in the chain's secret store. Not installed.
 */
#ifndef KP_CHAIN_SECRET_REPLICA_H
#define KP_CHAIN_SECRET_REPLICA_H

#include "chain/discovery.h"

/* Appends the chain's secret replicas to d (after its keystores) and lists what they hold. */
kp_status kp__secret_discover(kp_ctx *ctx, const kp_policy *policy, kp__discovery *d);
/* Exports version from src, encrypts it under a fresh password kept in the chain's secret
 * store, and puts it into dst. */
kp_status kp__secret_copy(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *src, kp_instance *dst,
                          kp_instance *secrets, uint32_t version, const char *fpr);
/* Proves dst's copy of version: decrypts it with its password and unwraps a challenge made
 * with spki. */
kp_status kp__secret_prove(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *dst,
                           kp_instance *secrets, uint32_t version, const uint8_t *spki,
                           size_t spkilen, char *detail, size_t detlen);

#endif
