/*
 * Discovery: what every store of a chain holds right now, the one source of truth of plan,
 * apply, verify, status and rotate (state lives in the providers). Not installed.
 */
#ifndef KP_CHAIN_DISCOVERY_H
#define KP_CHAIN_DISCOVERY_H

#include <stdbool.h>

#include <keyplane/kit/codec.h>
#include <keyplane/sqlserver.h>

#include "chain/chain.h"

/* One version as a store holds it. */
typedef struct kp__held {
    uint32_t version;
    char fpr[KPK_FPR_HEX];
    uint32_t bits, flags;
    int64_t created;
    char backend_id[KP_BACKEND_ID_MAX]; /* the store's own id of the version ("": none) */
    char gap[KP_GAP_MAX]; /* the store's word that the copy would fail its purpose ("": none) */
    /* certificate chains (certs.c, read by kp__discover_certs only): the certificate kept with
     * the version, NULL when none or unreadable; cert_st KP_OK (kept), KP_ERR_NOT_FOUND (none),
     * else why it could not be read (cert_why) */
    kp_cert_info *cert;
    kp_status cert_st;
    char cert_why[160];
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
    bool keeps_state; /* its plugin keeps chain-state documents */
    bool keeps_certs; /* certificate chains: it keeps certificates (KP_INST_CERTS, or a secret
                         replica's <chain>.cer) */
} kp__target;

typedef struct kp__discovery {
    const kp_chain_policy *chain;
    kp__target t[KP_MAX_TARGETS];
    size_t n;
    size_t origin; /* index of the origin in t */
    size_t vouch;  /* a store the caller vouches for (restore --from, wrap --replica); n: none */
    kp_ctx *ctx;   /* the instances are borrowed from its cache (kp__instance_borrow) */
} kp__discovery;

/* discover.c: opens and lists every keystore of chain (failover order: replicas, escrow,
 * origin), then its secret replicas. The instances are borrowed from ctx's cache
 * (kp__instance_borrow), so a command over many chains, and a process wrapping many DEKs, opens
 * each store once (a module load, a login, a KDF), not once per chain or envelope. */
kp_status kp__discover(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *chain,
                       kp__discovery *d);
/* kp__discover, then the certificates of a chain with a 'certificate' block
 * (kp__certs_discover): for those that read them (plan, the matrix, rotate's view, cert export);
 * the others leave every held version's cert NULL and keeps_certs false. */
kp_status kp__discover_certs(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *chain,
                             kp__discovery *d);
void kp__discovery_clear(kp__discovery *d);
/* Makes name (when it is one of d's stores) the store the caller vouches for: where the origin
 * cannot say, its versions and state document count as the origin's would. */
void kp__discovery_vouch(kp__discovery *d, const char *name);

/* target.c: what one store holds. */
/* Records how t answered when opened and listed (st, with "nothing of this chain" already
 * taken as an empty list): reachable, or the status and detail of why not. Returns
 * KP_ERR_NOMEM for discovery to stop; any other failure is the store's, and KP_OK. */
kp_status kp__target_answered(kp_ctx *ctx, kp__target *t, kp_status st);
/* A new zeroed entry for version in t's list, or NULL when out of memory. */
kp__held *kp__held_add(kp__target *t, uint32_t version);
const kp__held *kp__held_find(const kp__target *t, uint32_t version);
/* Every version any reachable store holds (keystores and secret replicas), ascending, with
 * its reference fingerprint: the confirmed one (kp__version_confirmed) when there is one, else
 * the one most holders have. Returns the count. */
size_t kp__versions(const kp__discovery *d, uint32_t *versions, const char **fprs, size_t max);
/* Whether the origin cannot say what the chain is: unreachable, or holding nothing of it (lost,
 * or being rebuilt). Only then does the store the caller vouches for count. */
bool kp__origin_silent(const kp__discovery *d);
/* How many reachable stores of d hold version v with fingerprint fpr. */
size_t kp__version_holders(const kp__discovery *d, uint32_t v, const char *fpr);
/* Whether version v with fingerprint fpr is the chain's: the origin holds it; or, when the origin
 * does not hold v, the store the caller vouches for does (only while the origin is silent), or
 * more than half of the chain's stores (keystores and secret replicas, reachable or not) do. A
 * version only one store vouches for (written there by someone who can write nowhere else) is never
 * copied and never wraps. */
bool kp__version_confirmed(const kp__discovery *d, uint32_t v, const char *fpr);

/* certs.c: certificate chains (a chain with a 'certificate' block); a discovery d below is one
 * made by kp__discover_certs. */
/* Reads the certificate each reachable store that keeps certificates holds with each version it
 * holds (keystores through KS_CERT_GET, secret replicas their <chain>.cer). A no-op for other
 * chains. */
kp_status kp__certs_discover(kp_ctx *ctx, kp__discovery *d);
/* The certificate of version v (fingerprint fpr): the origin's when it keeps one, else the one
 * the most stores keep; NULL when no store keeps one, or when two certificates are kept by
 * equally many stores (then *split, when split is not NULL, is true). *holder (may be NULL)
 * receives the index of a store keeping it (d->n when NULL is returned). */
const kp_cert_info *kp__version_cert(const kp__discovery *d, uint32_t v, const char *fpr,
                                     size_t *holder, bool *split);
/* Whether every store of d answered: a version's certificate is made (or taken from an import)
 * only then, since a store that did not answer may keep the one SQL Server uses. *silent (may be
 * NULL) receives the first that did not. */
bool kp__certs_all_answered(const kp__discovery *d, const char **silent);
/* Creates version spec->version of a chain whose certificates keyplane makes: the RSA key made
 * in keyplane's memory (its certificate is signed with it, and SQL Server needs the key
 * exportable to a .pvk anyway), imported into origin, then a certificate made for it kept there.
 * KP_ERR_DENIED for a chain whose certificates are imported. */
kp_status kp__cert_create(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *origin,
                          const kp_key_spec *spec, kp_key_info *info);
/* Makes the certificate of origin's version (fingerprint fpr when given) and keeps it there:
 * the repair of a create interrupted between the key and its certificate. */
kp_status kp__cert_make(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *origin,
                        uint32_t version, const char *fpr);
/* Copies the certificate of version (fingerprint fpr; "" or NULL: src's key) from src to dst,
 * each a keystore or a secret replica. */
kp_status kp__cert_copy(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *src, bool src_secret,
                        kp_instance *dst, bool dst_secret, uint32_t version, const char *fpr);

#endif
