/* The chain-state document: which protector version is staged, active, previous or retired,
 * and when each was active. Kept in every keystore of the chain (KS_STATE_GET/PUT); which copy
 * counts is kp__state_decide's rule. Not installed. */
#ifndef KP_CHAIN_STATE_H
#define KP_CHAIN_STATE_H

#include "chain/discovery.h"

/* The versions of one chain the engine handles: in documents, plans and matrices. */
#define KP_STATE_VERSIONS 512

typedef struct kp__vstate {
    uint32_t version;
    uint32_t state;       /* kp_version_state */
    int64_t active_from;  /* 0 when never active */
    int64_t active_until; /* 0 while active or never active */
    int64_t verified;     /* when staging last proved it everywhere */
    /* certificate chains: the thumbprint of the version's certificate when the document was
     * written ("" not recorded): a record of which certificate the version is, beside the
     * stores that keep it */
    char cert[KP_THUMBPRINT_HEX];
} kp__vstate;

typedef struct kp__chain_state {
    uint64_t serial;
    int64_t updated;
    kp__vstate v[KP_STATE_VERSIONS];
    size_t n;
} kp__chain_state;

/* How the keystores of a chain answered about its state document (kp__state_decide). */
typedef struct kp__state_report {
    bool undecided;              /* documents exist, but none is the authority */
    size_t source;               /* index in d of the authoritative document; d->n when none */
    bool repair[KP_MAX_TARGETS]; /* reachable keystores whose document should become it */
    char problem[768];           /* unreadable or disagreeing documents; "" when none */
} kp__state_report;

/* Parses one keystore's document of chain into s: false when it is no chain-state document of
 * that chain (wrong format or chain, a field out of range, more than KP_STATE_VERSIONS
 * versions). The parser tests/fuzz/fuzz_state.c feeds. */
bool kp__state_parse(const uint8_t *doc, size_t len, const char *chain, kp__chain_state *s);
/* The document of s for chain: compact JSON, malloc'ed; NULL when out of memory. */
char *kp__state_encode(const char *chain, const kp__chain_state *s);
/* The chain's state as its keystores can vouch for it: the origin's document when it has a
 * readable one, else that of the store the caller vouches for (d->vouch), else the newest of those
 * more than half of the chain's state-keeping keystores agree on (same active version). *found
 * false when no keystore keeps any (never rotated). KP_ERR_INTEGRITY, the reason set, when
 * documents exist but none is the authority (or every one is unreadable); r->problem also names
 * unreadable documents and any that claim another active version with a serial at least the
 * authority's (forged, or a split). */
kp_status kp__state_decide(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s, bool *found,
                           kp__state_report *r);
/* kp__state_decide without the report. */
kp_status kp__state_load(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s, bool *found);
/* Bumps the serial and writes the document to every reachable keystore of d that keeps one. */
kp_status kp__state_store(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s);
kp__vstate *kp__state_find(kp__chain_state *s, uint32_t version);
kp__vstate *kp__state_add(kp__chain_state *s, uint32_t version);
/* The active version, 0 when none. */
uint32_t kp__state_active(const kp__chain_state *s);
/* Copies src's document to dst unless dst's already agrees (same serial and active version);
 * *noop when it did. */
kp_status kp__state_copy(kp_ctx *ctx, const char *chain, kp_instance *src, kp_instance *dst,
                         bool *noop);

/* wrap.c: the version wrap uses while the chain has no active version (never rotated): the newest
 * confirmed version that every reachable keystore holding any version of the chain holds with
 * the reference fingerprint, leaving out versions s (when found) records as neither active nor
 * previous (staged, retired, abandoned). 0 when there is none. */
uint32_t kp__unrotated_version(const kp__discovery *d, const kp__chain_state *s, bool found);

#endif
