/*
 * Shared by the chain layer's files: a chain's stores as the policy names them, and the one
 * path that copies a key version between keystores. Not installed.
 */
#ifndef KP_CHAIN_CHAIN_H
#define KP_CHAIN_CHAIN_H

#include <stddef.h>

#include "base/error.h"
#include "base/log.h"
#include "instance/instance.h"
#include "policy/policy.h"

#define KP_MAX_TARGETS KP__CHAIN_STORES_MAX

/* chain.c: the chain called name, or KP_ERR_NOT_FOUND with the reason set. */
kp_status kp__chain_get(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                        const kp_chain_policy **out);
/* chain.c: keystore instances of a chain in failover order: replicas, escrow, then the origin,
 * each once. */
size_t kp__chain_keystores(const kp_policy *policy, const kp_chain_policy *c, const char **out,
                           size_t max);

/* key_copy.c: copies the version want describes (name, version, type, bits, flags,
 * fingerprint: src's info) from src to dst (wrapped when both share a transfer method, else
 * PKCS#8); the fingerprint travels with the import and the copy is checked again. have
 * receives the copy's info. */
kp_status kp__key_copy(kp_ctx *ctx, kp_instance *src, kp_instance *dst, const kp_key_info *want,
                       kp_key_info *have);

#endif
