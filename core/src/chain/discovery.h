/*
 * Discovery: what every store of a chain holds right now, the one source of truth of plan,
 * apply, verify, status and rotate (state lives in the providers). Not installed.
 */
#ifndef KP_CHAIN_DISCOVERY_H
#define KP_CHAIN_DISCOVERY_H

#include <stdbool.h>

#include <keyplane/kit/codec.h>

#include "chain/chain.h"

/* One version as a store holds it. */
typedef struct kp__held {
    uint32_t version;
    char fpr[KPK_FPR_HEX];
    uint32_t bits, flags;
    int64_t created;
} kp__held;

/* One store of a chain, as discovered. */
typedef struct kp__target {
    const char *name;
    bool secret;       /* a secret store receiving password-protected PKCS#8, not a keystore */
    kp_instance *inst; /* open when reachable */
    bool reachable;
    kp_status status;
    char detail[256];
    kp__held *held;
    size_t nheld, cap;
    uint64_t state_serial; /* serial of its chain-state document; 0 when it has none */
    bool keeps_state;      /* its plugin keeps chain-state documents */
} kp__target;

typedef struct kp__discovery {
    const kp_chain_policy *chain;
    kp__target t[KP_MAX_TARGETS];
    size_t n;
    size_t origin; /* index of the origin in t */
} kp__discovery;

/* discover.c: opens and lists every keystore of chain (failover order: replicas, escrow,
 * origin), then its secret replicas. */
kp_status kp__discover(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *chain,
                       kp__discovery *d);
void kp__discovery_clear(kp__discovery *d);

/* target.c: what one store holds. */
/* Records how t answered when opened and listed (st, with "nothing of this chain" already
 * taken as an empty list): reachable, or the status and detail of why not. Returns
 * KP_ERR_NOMEM for discovery to stop; any other failure is the store's, and KP_OK. */
kp_status kp__target_answered(kp_ctx *ctx, kp__target *t, kp_status st);
/* A new zeroed entry for version in t's list, or NULL when out of memory. */
kp__held *kp__held_add(kp__target *t, uint32_t version);
const kp__held *kp__held_find(const kp__target *t, uint32_t version);
/* Every version any reachable keystore holds, ascending, with the reference fingerprint: the
 * origin's when it holds the version, else the first holder's. Returns the count. */
size_t kp__versions(const kp__discovery *d, uint32_t *versions, const char **fprs, size_t max);

#endif
