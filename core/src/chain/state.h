/* The chain-state document: which protector version is staged, active, previous or retired,
 * and when each was active. Kept in every keystore of the chain (KS_STATE_GET/PUT); the copy
 * with the highest serial wins. Not installed. */
#ifndef KP_CHAIN_STATE_H
#define KP_CHAIN_STATE_H

#include "chain/discovery.h"

#define KP_STATE_VERSIONS 512

typedef struct kp__vstate {
    uint32_t version;
    uint32_t state;       /* kp_version_state */
    int64_t active_from;  /* 0 when never active */
    int64_t active_until; /* 0 while active or never active */
    int64_t verified;     /* when staging last proved it everywhere */
} kp__vstate;

typedef struct kp__chain_state {
    uint64_t serial;
    int64_t updated;
    kp__vstate v[KP_STATE_VERSIONS];
    size_t n;
} kp__chain_state;

/* Reads the newest document among the reachable keystores of d; *found false when none. */
kp_status kp__state_load(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s, bool *found);
/* Bumps the serial and writes the document to every reachable keystore of d that keeps one. */
kp_status kp__state_store(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s);
kp__vstate *kp__state_find(kp__chain_state *s, uint32_t version);
kp__vstate *kp__state_add(kp__chain_state *s, uint32_t version);
/* The active version, 0 when none. */
uint32_t kp__state_active(const kp__chain_state *s);
/* The serial of inst's document (0 when none); *keeps whether its plugin keeps documents. */
uint64_t kp__state_serial(kp_instance *inst, const char *chain, bool *keeps);
/* Copies src's document to dst unless dst's is as new; *noop when it was. */
kp_status kp__state_copy(kp_ctx *ctx, const char *chain, kp_instance *src, kp_instance *dst,
                         bool *noop);
/* Reads the newest document among the given open instances (wrap's path). */
kp_status kp__state_load_from(kp_ctx *ctx, const char *chain, kp_instance **insts, size_t n,
                              kp__chain_state *s, bool *found);

#endif
