/* Shared between the engine files (discovery, plan, apply, matrix). Not installed. */
#ifndef KP_ENGINE_INTERNAL_H
#define KP_ENGINE_INTERNAL_H

#include "chain_internal.h"

struct kp_plan {
    kp_action *actions;
    size_t n, cap;
    kp_finding *findings;
    size_t nfind, capfind;
};

/* One version as a keystore holds it. */
typedef struct kp__held {
    uint32_t version;
    char fpr[KP_FPR_HEX];
    uint32_t bits, flags;
    int64_t created;
} kp__held;

/* One keystore of a chain, as discovered. */
typedef struct kp__target {
    const char *name;
    kp_instance *inst; /* open when reachable */
    bool reachable;
    kp_status status;
    char detail[256];
    kp__held *held;
    size_t nheld, cap;
} kp__target;

typedef struct kp__discovery {
    const kp_chain_policy *chain;
    kp__target t[KP_MAX_TARGETS];
    size_t n;
    size_t origin; /* index of the origin in t */
} kp__discovery;

/* Opens and lists every keystore of chain (failover order: replicas, escrow, origin). */
kp_status kp__discover(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *chain,
                       kp__discovery *d);
void kp__discovery_clear(kp__discovery *d);
const kp__held *kp__held_find(const kp__target *t, uint32_t version);
/* Every version any reachable keystore holds, ascending, with the reference fingerprint: the
 * origin's when it holds the version, else the first holder's. Returns the count. */
size_t kp__versions(const kp__discovery *d, uint32_t *versions, const char **fprs, size_t max);

#endif
