/*
 * Wrapping a DEK with a chain's protector and unwrapping it with failover across replicas.
 */
#include <stdlib.h>
#include <string.h>

#include "chain/state.h"

/* The chain's keystores to try: replica alone (checked to belong to the chain) or all. */
static kp_status s_candidates(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                              const char *replica, const char **out, size_t *n)
{
    *n = kp__chain_keystores(policy, c, out, KP_MAX_TARGETS);
    if (replica == NULL)
        return KP_OK;
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(out[i], replica) == 0) {
            out[0] = out[i];
            *n = 1;
            return KP_OK;
        }
    }
    return kp__set_error(ctx, KP_ERR_INVALID_ARG,
                         "'%.64s' is not a keystore replica, escrow or origin of chain '%s'",
                         replica, c->name);
}

typedef struct s_vset {
    struct {
        uint32_t v;
        char fpr[KPK_FPR_HEX];
    } items[512];
    size_t n;
} s_vset;

static kp_status s_vset_add(void *arg, const kp_key_info *info)
{
    s_vset *s = arg;
    if (s->n < sizeof(s->items) / sizeof(s->items[0])) {
        s->items[s->n].v = info->version;
        memcpy(s->items[s->n].fpr, info->fingerprint, KPK_FPR_HEX);
        s->n++;
    }
    return KP_OK;
}

/* True when s holds version v with fingerprint fpr: the same number with another key is not
 * the same version. */
static bool s_vset_has(const s_vset *s, uint32_t v, const char *fpr)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i].v == v && strcmp(s->items[i].fpr, fpr) == 0)
            return true;
    return false;
}

/* The newest version every reachable candidate holds; which candidates hold it. */
static kp_status s_common_version(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                  const char **cands, size_t n, uint32_t *version, bool *holds)
{
    s_vset *sets = calloc(n, sizeof(*sets));
    bool *reachable = calloc(n, sizeof(*reachable));
    bool *empty = calloc(n, sizeof(*empty));
    if (sets == NULL || reachable == NULL || empty == NULL) {
        free(sets);
        free(reachable);
        free(empty);
        return KP_ERR_NOMEM;
    }
    size_t nreach = 0;
    for (size_t i = 0; i < n; i++) {
        kp_instance *inst = NULL;
        kp_status st = kp__instance_borrow(ctx, policy, cands[i], &inst);
        if (st == KP_OK)
            st = kp_key_list(inst, chain, s_vset_add, &sets[i]);
        kp__instance_return(ctx, inst);
        if (st == KP_OK && sets[i].n > 0) {
            reachable[i] = true;
            nreach++;
        } else if (st == KP_OK || st == KP_ERR_NOT_FOUND) {
            /* Holding nothing of the chain (never provisioned, or lost and not yet restored)
             * puts no old envelope at risk: it must not make wrap unavailable in a disaster.
             * Said below, once it is clear that some other keystore does hold versions. */
            empty[i] = true;
        } else {
            kp__log(ctx, KP_LOG_WARN,
                    "wrap: %s is unreachable (%s); choosing the version without it", cands[i],
                    kp_ctx_last_error(ctx));
        }
    }
    for (size_t i = 0; i < n && nreach > 0; i++)
        if (empty[i])
            kp__log(ctx, KP_LOG_WARN,
                    "wrap: %s holds no version of %s (run 'keyplane key replicate' once it is "
                    "back); choosing the version without it",
                    cands[i], chain);
    free(empty);
    *version = 0;
    const char *fpr = "";
    for (size_t i = 0; i < n && nreach > 0; i++) {
        if (!reachable[i])
            continue;
        for (size_t k = 0; k < sets[i].n; k++) {
            uint32_t v = sets[i].items[k].v;
            bool everywhere = v > *version;
            for (size_t j = 0; everywhere && j < n; j++)
                everywhere = !reachable[j] || s_vset_has(&sets[j], v, sets[i].items[k].fpr);
            if (everywhere) {
                *version = v;
                fpr = sets[i].items[k].fpr;
            }
        }
        break; /* any reachable set holds every common version */
    }
    for (size_t i = 0; i < n; i++)
        holds[i] = reachable[i] && s_vset_has(&sets[i], *version, fpr);
    free(sets);
    free(reachable);
    if (nreach == 0)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND,
                             "no reachable keystore of chain '%s' holds a protector version "
                             "(create one with 'keyplane key create')",
                             chain);
    if (*version == 0)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND,
                             "chain '%s' has no protector version present in every replica "
                             "(create one with 'keyplane key create', or repair with "
                             "'keyplane key replicate')",
                             chain);
    return KP_OK;
}

/* The version the chain-state document names active, and which candidates hold it (with the
 * fingerprint the origin's copy, or the first, has); 0 when the chain never rotated. */
static kp_status s_active_version(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                  const char **cands, size_t n, uint32_t *version, bool *holds)
{
    kp_instance *insts[KP_MAX_TARGETS] = {0};
    kp__chain_state *s = malloc(sizeof(*s));
    bool found = false;
    kp_status st = s != NULL ? KP_OK : KP_ERR_NOMEM;
    for (size_t i = 0; st == KP_OK && i < n; i++)
        if (kp__instance_borrow(ctx, policy, cands[i], &insts[i]) != KP_OK)
            insts[i] = NULL;
    if (st == KP_OK)
        st = kp__state_load_from(ctx, chain, insts, n, s, &found);
    *version = st == KP_OK && found ? kp__state_active(s) : 0;
    /* The reference is the origin's copy when it answers, else the first holder's: a replica
     * with another key under the number must never wrap. */
    char fpr[KPK_FPR_HEX] = "";
    const kp_chain_policy *c = kp_policy_chain(policy, chain);
    kp_key_info info;
    for (size_t pass = 0; pass < 2 && fpr[0] == '\0' && *version != 0; pass++)
        for (size_t i = 0; i < n && fpr[0] == '\0'; i++)
            if (insts[i] != NULL && (pass == 1 || strcmp(cands[i], c->origin) == 0) &&
                kp_key_info_get(insts[i], chain, *version, &info) == KP_OK)
                memcpy(fpr, info.fingerprint, KPK_FPR_HEX);
    for (size_t i = 0; i < n; i++) {
        holds[i] = *version != 0 && fpr[0] != '\0' && insts[i] != NULL &&
                   kp_key_info_get(insts[i], chain, *version, &info) == KP_OK &&
                   strcmp(fpr, info.fingerprint) == 0;
        kp__instance_return(ctx, insts[i]);
    }
    free(s);
    kp__clear_error(ctx);
    if (st == KP_OK && *version != 0 && fpr[0] == '\0')
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND,
                           "the active version v%u of chain '%s' is in no reachable keystore",
                           *version, chain);
    return st;
}

/* Wraps in one instance after checking its public key is the version's. */
static kp_status s_wrap_in(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                           const char *name, uint32_t version, const kp_secret *dek,
                           kp_envelope **out)
{
    kp_instance *inst = NULL;
    kp_key_info info;
    uint8_t *spki = NULL, *wrapped = NULL;
    size_t spki_len = 0, wlen = 0;
    char fpr[KPK_FPR_HEX];
    kp_status st = kp__instance_borrow(ctx, policy, name, &inst);
    /* a store that said it cannot wrap with the chain's algorithm is passed over at once */
    if (st == KP_OK && !(kp_instance_get0_info(inst)->wrap_algs & KP_ALG_BIT(c->wrap_alg)))
        st = kp__set_error(ctx, KP_ERR_UNSUPPORTED, "%s does not wrap with %s", name,
                           kp_wrap_alg_name(c->wrap_alg));
    if (st == KP_OK)
        st = kp_key_info_get(inst, c->name, version, &info);
    if (st == KP_OK)
        st = kp_key_get_public(inst, c->name, version, &spki, &spki_len);
    if (st == KP_OK)
        st = kp_fingerprint_spki(spki, spki_len, fpr);
    if (st == KP_OK && strcmp(fpr, info.fingerprint) != 0)
        st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                           "%s: the public key of %s v%u does not match its fingerprint", name,
                           c->name, version);
    if (st == KP_OK)
        st = kp_key_wrap(inst, c->name, version, c->wrap_alg, dek, &wrapped, &wlen);
    kp__instance_return(ctx, inst);
    free(spki);
    if (st == KP_OK) {
        kp_envelope_wrap w = {info.fingerprint, version, c->wrap_alg, wrapped, wlen};
        st = kp_envelope_new(c->name, out);
        if (st == KP_OK)
            st = kp_envelope_add(*out, &w);
        if (st != KP_OK) {
            kp_envelope_free(*out);
            *out = NULL;
        }
    }
    free(wrapped);
    return st;
}

kp_status kp_chain_wrap(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                        const char *replica, const kp_secret *dek, kp_envelope **out, char *used)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && dek != NULL && out != NULL,
              KP_ERR_INVALID_ARG);
    *out = NULL;
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    const char *all[KP_MAX_TARGETS], *pick[KP_MAX_TARGETS];
    size_t n = 0, npick = 0;
    KP_GUARD(s_candidates(ctx, policy, c, NULL, all, &n));
    if (replica != NULL)
        KP_GUARD(s_candidates(ctx, policy, c, replica, pick, &npick));
    bool holds[KP_MAX_TARGETS];
    uint32_t version = 0;
    KP_GUARD(s_active_version(ctx, policy, chain, all, n, &version, holds));
    if (version == 0) /* never rotated: the newest version every keystore holds */
        KP_GUARD(s_common_version(ctx, policy, chain, all, n, &version, holds));
    if (replica == NULL)
        for (size_t i = 0; i < n; i++)
            if (holds[i])
                pick[npick++] = all[i];
    for (size_t i = 0; replica != NULL && i < n; i++)
        if (strcmp(all[i], replica) == 0 && !holds[i])
            return kp__set_error(ctx, KP_ERR_INTEGRITY,
                                 "%s does not hold %s v%u with the chain's key (missing, or "
                                 "another key under that number): not wrapping there",
                                 replica, chain, version);
    kp_status st = KP_ERR_NOT_FOUND;
    for (size_t i = 0; i < npick; i++) {
        st = s_wrap_in(ctx, policy, c, pick[i], version, dek, out);
        if (st == KP_OK) {
            if (used != NULL)
                snprintf(used, KP_NAME_MAX, "%s", pick[i]);
            return KP_OK;
        }
        if (i + 1 < npick)
            kp__log(ctx, KP_LOG_WARN, "wrap with %s failed (%s); trying %s", pick[i],
                    kp_ctx_last_error(ctx), pick[i + 1]);
    }
    return st;
}

/* How telling a failure is: a key that does not match beats one that is missing. */
static int s_rank(kp_status st)
{
    switch (kp_status_category(st)) {
    case KP_CAT_INTEGRITY:
        return 4;
    case KP_CAT_AUTH:
        return 3;
    case KP_CAT_TRANSIENT:
    case KP_CAT_BACKEND:
        return 2;
    default:
        return 1;
    }
}

/* Tries every wrap of env in one instance. */
/* Unwraps env in inst with the first of its wraps that inst can open; *wrap is that wrap's
 * index. */
static kp_status s_unwrap_in(kp_ctx *ctx, kp_instance *inst, const kp_envelope *env,
                             kp_secret **dek, size_t *wrap)
{
    kp_status worst = KP_ERR_NOT_FOUND;
    char why[KP_ERRBUF] = "";
    const char *chain = kp_envelope_chain(env);
    for (size_t i = 0; i < kp_envelope_count(env); i++) {
        const kp_envelope_wrap *w = kp_envelope_get0(env, i);
        kp_key_info info;
        kp_status st = kp_key_info_get(inst, chain, w->version, &info);
        if (st == KP_OK && strcmp(info.fingerprint, w->fingerprint) != 0)
            st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                               "%s: %s v%u has fingerprint %.16s..., the envelope wants %.16s...",
                               kp_instance_name(inst), chain, w->version, info.fingerprint,
                               w->fingerprint);
        if (st == KP_OK)
            st = kp_key_unwrap(inst, chain, w->version, w->alg, w->wrapped, w->wrapped_len, dek);
        if (st == KP_OK) {
            *wrap = i;
            return KP_OK;
        }
        if (i == 0 || s_rank(st) > s_rank(worst)) {
            worst = st;
            snprintf(why, sizeof(why), "%s", kp_ctx_last_error(ctx));
        }
    }
    return kp__set_error(ctx, worst, "%s", why);
}

kp_status kp_chain_unwrap(kp_ctx *ctx, const kp_policy *policy, const kp_envelope *env,
                          const char *replica, kp_secret **dek, char *used)
{
    return kp_chain_unwrap_used(ctx, policy, env, replica, dek, used, NULL);
}

kp_status kp_chain_unwrap_used(kp_ctx *ctx, const kp_policy *policy, const kp_envelope *env,
                               const char *replica, kp_secret **dek, char *used, size_t *wrap)
{
    KP_ENSURE(ctx != NULL && policy != NULL && env != NULL && dek != NULL, KP_ERR_INVALID_ARG);
    *dek = NULL;
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, kp_envelope_chain(env), &c));
    for (size_t i = 0; i < kp_envelope_count(env); i++) {
        uint32_t alg = kp_envelope_get0(env, i)->alg;
        if (alg != KP_WRAP_RSA_OAEP_SHA1 && alg != KP_WRAP_RSA_OAEP_SHA256)
            return kp__set_error(ctx, KP_ERR_DENIED,
                                 "envelope uses %s: chain '%s' unwraps RSA-OAEP and "
                                 "RSA-OAEP-256 only",
                                 kp_wrap_alg_name(alg), c->name);
    }
    const char *cands[KP_MAX_TARGETS];
    size_t n = 0;
    KP_GUARD(s_candidates(ctx, policy, c, replica, cands, &n));
    char failures[KP_ERRBUF] = "";
    kp_status worst = KP_ERR_NOT_FOUND;
    char worst_why[KP_ERRBUF] = "";
    for (size_t i = 0; i < n; i++) {
        kp_instance *inst = NULL;
        kp_status st = kp__instance_borrow(ctx, policy, cands[i], &inst);
        size_t which = 0;
        if (st == KP_OK)
            st = s_unwrap_in(ctx, inst, env, dek, &which);
        kp__instance_return(ctx, inst);
        if (st == KP_OK) {
            if (used != NULL)
                snprintf(used, KP_NAME_MAX, "%s", cands[i]);
            if (wrap != NULL)
                *wrap = which;
            kp__clear_error(ctx);
            return KP_OK;
        }
        if (i == 0 || s_rank(st) > s_rank(worst)) {
            worst = st;
            snprintf(worst_why, sizeof(worst_why), "%s", kp_ctx_last_error(ctx));
        }
        if (i + 1 < n)
            kp__log(ctx, KP_LOG_WARN, "unwrap with %s failed (%s); failing over to %s", cands[i],
                    kp_ctx_last_error(ctx), cands[i + 1]);
        size_t len = strlen(failures);
        snprintf(failures + len, sizeof(failures) - len, "%s%s: %s", len > 0 ? "; " : "", cands[i],
                 kp_strerror(st));
    }
    if (n == 0)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND, "chain '%s' has no keystore", c->name);
    if (n == 1)
        return kp__set_error(ctx, worst, "%s", worst_why); /* the instance's own words */
    return kp__set_error(ctx, worst, "no replica of chain '%s' could unwrap (%s)", c->name,
                         failures);
}
