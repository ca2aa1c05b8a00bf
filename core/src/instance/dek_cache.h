/*
 * The DEK cache of a context (kp_ctx_set_dek_cache): unwrapped DEKs kept by envelope for
 * engines that open the same envelopes again and again. Not installed.
 */
#ifndef KP_INSTANCE_DEK_CACHE_H
#define KP_INSTANCE_DEK_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include <keyplane/envelope.h>
#include <keyplane/keyplane.h>

typedef struct kp__dek_cache kp__dek_cache;

/* What a hit gives back besides the DEK: the instance that unwrapped it when it was cached and
 * the index of the envelope's wrap that opened it. */
typedef struct kp__dek_hit {
    char used[KP_NAME_MAX];
    size_t wrap;
} kp__dek_hit;

/* A copy of the DEK cached for env (caller frees), or NULL: none, expired (then dropped), or out
 * of memory. Counts a use; the entry that reaches max_uses is dropped after answering. */
kp_secret *kp__dek_cache_get(kp_ctx *ctx, const kp_envelope *env, kp__dek_hit *hit);
/* Keeps a copy of dek for env, opened by its wrap hit->wrap; the least recently used entry
 * goes when the cache is full. Nothing happens when the cache is off or memory is short. */
void kp__dek_cache_put(kp_ctx *ctx, const kp_envelope *env, const kp_secret *dek,
                       const kp__dek_hit *hit);
/* Drops (wiping) every entry of chain opened with version (every version when 0). */
void kp__dek_cache_forget(kp_ctx *ctx, const char *chain, uint32_t version);
/* Wipes and frees the whole cache (kp_ctx_free). */
void kp__dek_cache_free(kp__dek_cache *c);
/* Test hook: the clock entries age by (ms, monotonic); NULL puts the real one back. */
void kp__dek_cache_set_clock(int64_t (*now_ms)(void));

#endif
