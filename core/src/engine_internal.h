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
    char fpr[KPK_FPR_HEX];
    uint32_t bits, flags;
    int64_t created;
} kp__held;

/* One keystore of a chain, as discovered. */
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

/* Opens and lists every keystore of chain (failover order: replicas, escrow, origin). */
kp_status kp__discover(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *chain,
                       kp__discovery *d);
void kp__discovery_clear(kp__discovery *d);

/* engine_secret.c: replicas that only store secrets. */
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
const kp__held *kp__held_find(const kp__target *t, uint32_t version);
/* Every version any reachable keystore holds, ascending, with the reference fingerprint: the
 * origin's when it holds the version, else the first holder's. Returns the count. */
size_t kp__versions(const kp__discovery *d, uint32_t *versions, const char **fprs, size_t max);

#endif
