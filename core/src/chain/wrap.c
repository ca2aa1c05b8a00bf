/*
 * Wrapping a DEK with a chain's protector and unwrapping it with failover across replicas, and
 * the version a wrap uses, for those who must name it elsewhere (an Azure SQL server's key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "chain/state.h"
#include "instance/dek_cache.h"

/* The chain's keystores to try: replica alone (checked to belong to the chain), or all but
 * those the policy keeps restore-only (a restore source is tried only when named). */
static kp_status s_candidates(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                              const char *replica, const char **out, size_t *n)
{
    *n = kp__chain_keystores(policy, c, out, KP_MAX_TARGETS);
    if (replica == NULL) {
        size_t kept = 0;
        for (size_t i = 0; i < *n; i++)
            if (!kp__chain_restore_only(c, out[i]))
                out[kept++] = out[i];
        *n = kept;
        return KP_OK;
    }
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

uint32_t kp__unrotated_version(const kp__discovery *d, const kp__chain_state *s, bool found)
{
    uint32_t vs[KP_STATE_VERSIONS];
    const char *fs[KP_STATE_VERSIONS];
    size_t nv = kp__versions(d, vs, fs, KP_STATE_VERSIONS);
    for (size_t k = nv; k-- > 0;) {
        const kp__vstate *x = found ? kp__state_find((kp__chain_state *)s, vs[k]) : NULL;
        if (!kp__version_confirmed(d, vs[k], fs[k]) ||
            (x != NULL && x->state != KP_VSTATE_ACTIVE && x->state != KP_VSTATE_PREVIOUS))
            continue;
        bool everywhere = true;
        for (size_t i = 0; everywhere && i < d->n; i++) {
            const kp__target *t = &d->t[i];
            if (!t->reachable || t->secret || t->nheld == 0)
                continue; /* holds nothing of the chain: wrap leaves it out */
            /* Another key under the number (a conflict, plan's finding) counts as missing:
             * an envelope of this version could not open there, even after apply. */
            const kp__held *h = kp__held_find(t, vs[k]);
            everywhere = h != NULL && strcmp(h->fpr, fs[k]) == 0;
        }
        if (everywhere)
            return vs[k];
    }
    return 0;
}

/* Why no version of a never-rotated chain can wrap: the newest confirmed one is missing from a
 * keystore (apply copies it), or a keystore holds another key under it (a conflict apply
 * cannot mend: an envelope of it would never open there). */
static kp_status s_none_everywhere(kp_ctx *ctx, const kp__discovery *d, const uint32_t *vs,
                                   const char **fs, size_t nv)
{
    for (size_t k = nv; k-- > 0;) {
        if (!kp__version_confirmed(d, vs[k], fs[k]))
            continue;
        for (size_t i = 0; i < d->n; i++) {
            const kp__held *h = d->t[i].reachable ? kp__held_find(&d->t[i], vs[k]) : NULL;
            if (h != NULL && strcmp(h->fpr, fs[k]) != 0)
                return kp__set_error(ctx, KP_ERR_INTEGRITY,
                                     "chain '%s' has no version every reachable keystore holds "
                                     "with the same key: %s holds another key as v%u "
                                     "(%.16s..., the chain's is %.16s...); 'keyplane plan' "
                                     "names it",
                                     d->chain->name, d->t[i].name, vs[k], h->fpr, fs[k]);
        }
        break;
    }
    return kp__set_error(ctx, KP_ERR_NOT_FOUND,
                         "chain '%s' has no confirmed protector version present in every "
                         "reachable keystore (repair with 'keyplane apply')",
                         d->chain->name);
}

/* The version wrap uses, with the fingerprint the chain vouches for: the active version of the
 * state document the chain's keystores vouch for (state.c), else (never rotated) the newest
 * confirmed version every reachable keystore holding any version holds. Refuses while state
 * documents are unreadable or disagree: one store's document must not choose the key. */
static kp_status s_wrap_version(kp_ctx *ctx, const kp__discovery *d, uint32_t *version,
                                const char **fpr)
{
    const char *chain = d->chain->name;
    kp__state_report *r = malloc(sizeof(*r));
    kp__chain_state *s = malloc(sizeof(*s));
    uint32_t *vs = malloc(KP_STATE_VERSIONS * sizeof(*vs));
    const char **fs = malloc(KP_STATE_VERSIONS * sizeof(*fs));
    bool found = false;
    kp_status st = r && s && vs && fs ? KP_OK : KP_ERR_NOMEM;
    if (st == KP_OK)
        st = kp__state_decide(ctx, d, s, &found, r);
    /* The store the caller named vouches where the origin cannot: others are only warned of. */
    if (st == KP_OK && r->problem[0] != '\0' && d->vouch < d->n && r->source == d->vouch &&
        d->vouch != d->origin)
        kp__log(ctx, KP_LOG_WARN, "wrap: %s (going by %s, named by the caller)", r->problem,
                d->t[d->vouch].name);
    else if (st == KP_OK && r->problem[0] != '\0')
        st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                           "not wrapping with chain '%s': %s (run 'keyplane plan %s'; 'keyplane "
                           "apply' gives every keystore the authoritative document)",
                           chain, r->problem, chain);
    size_t nv = st == KP_OK ? kp__versions(d, vs, fs, KP_STATE_VERSIONS) : 0;
    /* Without a state document the newest version everywhere is taken for a chain that never
     * rotated; with more than one version and no reachable store that keeps documents (a policy
     * of Key Vaults alone), a staged or abandoned version would be taken for the active one. */
    bool keeper = false;
    for (size_t i = 0; i < d->n; i++)
        keeper |= !d->t[i].secret && d->t[i].keeps_state;
    if (st == KP_OK && !found && nv > 1 && !keeper)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND,
                           "chain '%s' has %zu versions and no reachable keystore of it in this "
                           "policy keeps chain-state documents (Key Vault does not), so which one "
                           "is active cannot be known: add one that does (its origin file store "
                           "or HSM) to the policy",
                           chain, nv);
    uint32_t active = st == KP_OK && found ? kp__state_active(s) : 0;
    uint32_t want = active != 0 ? active : st == KP_OK ? kp__unrotated_version(d, s, found) : 0;
    *version = 0;
    *fpr = NULL;
    for (size_t k = 0; want != 0 && k < nv; k++) {
        if (vs[k] == want && kp__version_confirmed(d, vs[k], fs[k])) {
            *version = vs[k];
            *fpr = fs[k];
        }
    }
    if (st == KP_OK && *version == 0 && active != 0)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND,
                           "the active version v%u of chain '%s' is in no reachable keystore that "
                           "can vouch for it (the origin, or more than half of the chain's "
                           "stores)",
                           active, chain);
    else if (st == KP_OK && *version == 0 && nv == 0)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND,
                           "no reachable keystore of chain '%s' holds a protector version "
                           "(create one with 'keyplane apply')",
                           chain);
    else if (st == KP_OK && *version == 0)
        st = s_none_everywhere(ctx, d, vs, fs, nv);
    free(r);
    free(s);
    free(vs);
    free(fs);
    return st;
}

/* Wraps in one instance after checking that it names the chain's key (fpr) as the version and
 * that its public key is that key: between discovery and this lookup the store may have answered
 * otherwise (a walk of Key Vault versions that met another claimant of the number). */
static kp_status s_wrap_in(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                           const char *name, uint32_t version, const char *want,
                           const kp_secret *dek, kp_envelope **out)
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
    if (st == KP_OK && strcmp(info.fingerprint, want) != 0)
        st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                           "%s: %s v%u is another key (%.16s...) than the chain's (%.16s...)", name,
                           c->name, version, info.fingerprint, want);
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
    const char *pick[KP_MAX_TARGETS];
    size_t npick = 0;
    KP_GUARD(s_candidates(ctx, policy, c, replica, pick, &npick));
    kp__discovery *d = malloc(sizeof(*d));
    KP_ENSURE(d != NULL, KP_ERR_NOMEM);
    uint32_t version = 0;
    const char *fpr = NULL;
    kp_status st = kp__discover(ctx, policy, c, d);
    kp__discovery_vouch(d, replica); /* named by the caller: its word counts where the origin's
                                        cannot be had */
    if (st == KP_OK)
        st = s_wrap_version(ctx, d, &version, &fpr);
    if (st != KP_OK && st != KP_ERR_NOMEM && replica == NULL && !d->t[d->origin].reachable) {
        char why[KP_ERRBUF];
        snprintf(why, sizeof(why), "%s", kp_ctx_last_error(ctx));
        kp__set_error(ctx, st,
                      "%s; the origin %s is unreachable: name the keystore you trust with "
                      "--replica",
                      why, d->t[d->origin].name);
    }
    /* Only keystores holding the version with the chain's key wrap; one holding another key
     * under the number is named (plan reports it as a conflict). */
    const char *holders[KP_MAX_TARGETS];
    size_t nh = 0;
    for (size_t k = 0; st == KP_OK && k < npick; k++) {
        for (size_t i = 0; i < d->n; i++) {
            const kp__target *t = &d->t[i];
            if (t->secret || strcmp(t->name, pick[k]) != 0)
                continue;
            const kp__held *h = t->reachable ? kp__held_find(t, version) : NULL;
            if (h != NULL && fpr != NULL && strcmp(h->fpr, fpr) == 0)
                holders[nh++] = pick[k];
            else if (replica != NULL)
                st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                                   "%s does not hold %s v%u with the chain's key (missing, "
                                   "unreachable, or another key under that number): not "
                                   "wrapping there",
                                   replica, chain, version);
            else if (h != NULL)
                kp__log(ctx, KP_LOG_WARN,
                        "wrap: %s holds another key as %s v%u (%.16s..., the chain's is "
                        "%.16s...): not wrapping there",
                        t->name, chain, version, h->fpr, fpr);
        }
    }
    char want[KPK_FPR_HEX] = "";
    if (fpr != NULL) /* it points into d */
        snprintf(want, sizeof(want), "%s", fpr);
    kp__discovery_clear(d);
    free(d);
    if (st == KP_OK && nh == 0)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND,
                           "no reachable keystore of chain '%s' that can wrap holds v%u", chain,
                           version);
    if (st != KP_OK)
        return st;
    for (size_t i = 0; i < nh; i++) {
        st = s_wrap_in(ctx, policy, c, holders[i], version, want, dek, out);
        if (st == KP_OK) {
            if (used != NULL)
                snprintf(used, KP_NAME_MAX, "%s", holders[i]);
            return KP_OK;
        }
        if (i + 1 < nh)
            kp__log(ctx, KP_LOG_WARN, "wrap with %s failed (%s); trying %s", holders[i],
                    kp_ctx_last_error(ctx), holders[i + 1]);
    }
    return st;
}

kp_status kp_chain_wrap_version(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                uint32_t *version, char *fingerprint)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && version != NULL,
              KP_ERR_INVALID_ARG);
    *version = 0;
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    kp__discovery *d = malloc(sizeof(*d));
    KP_ENSURE(d != NULL, KP_ERR_NOMEM);
    const char *fpr = NULL;
    kp_status st = kp__discover(ctx, policy, c, d);
    if (st == KP_OK)
        st = s_wrap_version(ctx, d, version, &fpr);
    if (st == KP_OK && fingerprint != NULL)
        snprintf(fingerprint, KPK_FPR_HEX, "%s", fpr);
    kp__discovery_clear(d);
    free(d);
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
    /* The DEK cache answers only when no replica is asked for: a caller naming one wants that
     * store to do the work (verify, a failover drill). */
    kp__dek_hit hit = {.wrap = 0};
    if (replica == NULL && (*dek = kp__dek_cache_get(ctx, env, &hit)) != NULL) {
        if (used != NULL)
            snprintf(used, KP_NAME_MAX, "%s", hit.used);
        if (wrap != NULL)
            *wrap = hit.wrap;
        kp__clear_error(ctx);
        return KP_OK;
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
            if (replica == NULL) {
                snprintf(hit.used, sizeof(hit.used), "%s", cands[i]);
                hit.wrap = which;
                kp__dek_cache_put(ctx, env, *dek, &hit);
            }
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
            kp__log(ctx, KP_LOG_WARN, "unwrap with %s failed: %s; failing over to %s", cands[i],
                    kpk_after_name(kp_ctx_last_error(ctx), cands[i]), cands[i + 1]);
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
