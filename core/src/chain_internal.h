/* Shared between the chain operation files. Not installed. */
#ifndef KP_CHAIN_INTERNAL_H
#define KP_CHAIN_INTERNAL_H

#include "internal.h"

#define KP_MAX_TARGETS 64

/* The chain called name, or KP_ERR_NOT_FOUND with the reason set. */
/* The spec of a new protector version of chain c: its name, type, size and exportability. */
void kp__chain_spec(const kp_chain_policy *c, uint32_t version, kp_key_spec *out);

kp_status kp__chain_get(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                        const kp_chain_policy **out);
/* Keystore instances of a chain in failover order: replicas, escrow, then the origin. */
size_t kp__chain_keystores(const kp_policy *policy, const kp_chain_policy *c, const char **out,
                           size_t max);

#endif
