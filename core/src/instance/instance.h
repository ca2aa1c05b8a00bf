/*
 * The instance layer, for the layers above it (the public kp_instance_* and kp_key_* calls are
 * in keyplane.h): instances the context keeps open, and a keystore's chain-state document.
 * Not installed.
 */
#ifndef KP_INSTANCE_INSTANCE_H
#define KP_INSTANCE_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keyplane/keyplane.h>

/* context.c: a borrowed instance for chain operations; give it back with kp__instance_return. */
kp_status kp__instance_borrow(kp_ctx *ctx, const kp_policy *policy, const char *name,
                              kp_instance **out);
void kp__instance_return(kp_ctx *ctx, kp_instance *inst);

/* store.c: the chain-state document of a keystore (KS_STATE_GET/PUT), with the buffer
 * defences. kept: the instance keeps documents. */
bool kp__inst_state_kept(const kp_instance *inst);
kp_status kp__inst_state_get(kp_instance *inst, const char *name, uint8_t *doc, size_t *len);
kp_status kp__inst_state_put(kp_instance *inst, const char *name, const uint8_t *doc, size_t len,
                             const uint8_t *expect, size_t expect_len);

#endif
