/*
 * Two-phase rotation: stage vN+1 everywhere and prove it, then activate it; retire only what
 * the retention window no longer needs; abandon a version that never wrapped. The lifecycle
 * lives in the chain-state document that every keystore keeps (state.c). Nothing here deletes
 * or disables a key version.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <keyplane/kit/clock.h>
#include <keyplane/kit/codec.h>

#include "chain/state.h"
#include "instance/dek_cache.h"

/* A chain that never rotated has no document: the version wrap uses is its active one and the
 * confirmed versions before it are previous. Newer ones (made outside the lifecycle, or not in
 * every keystore) stay unrecorded: no stage makes one of them active without a proof. */
static void s_bootstrap(const kp__discovery *d, kp__chain_state *s)
{
    uint32_t versions[KP_STATE_VERSIONS];
    const char *fprs[KP_STATE_VERSIONS];
    size_t n = kp__versions(d, versions, fprs, KP_STATE_VERSIONS);
    uint32_t active = kp__unrotated_version(d, s, false);
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n && versions[i] <= active; i++) {
        kp__vstate *x =
            kp__version_confirmed(d, versions[i], fprs[i]) ? kp__state_add(s, versions[i]) : NULL;
        if (x != NULL)
            x->state = versions[i] == active ? KP_VSTATE_ACTIVE : KP_VSTATE_PREVIOUS;
    }
}

/* One look at a chain for a lifecycle step: its policy, what discovery found (closed with
 * kp__discovery_clear once the step is done), and the newest state document, or one
 * bootstrapped from what the keystores hold. */
typedef struct s_view {
    const kp_chain_policy *c;
    kp__discovery d;
    kp__chain_state s;
    bool recorded; /* s is a document the keystores keep, not a bootstrapped one */
} s_view;

static kp_status s_look(kp_ctx *ctx, const kp_policy *policy, const char *chain, s_view *v)
{
    memset(&v->d, 0, sizeof(v->d)); /* callers clear it on every path */
    KP_GUARD(kp__chain_get(ctx, policy, chain, &v->c));
    kp_status st = kp__discover_certs(ctx, policy, v->c, &v->d);
    bool found = false;
    if (st == KP_OK)
        st = kp__state_load(ctx, &v->d, &v->s, &found);
    if (st == KP_OK && !found)
        s_bootstrap(&v->d, &v->s);
    v->recorded = found;
    return st;
}

/* A first look at chain into a new view; free it with s_view_free, whatever this returns. */
static kp_status s_view_new(kp_ctx *ctx, const kp_policy *policy, const char *chain, s_view **out)
{
    *out = calloc(1, sizeof(**out));
    KP_ENSURE(*out != NULL, KP_ERR_NOMEM);
    return s_look(ctx, policy, chain, *out);
}

/* KP_ERR_UNAVAILABLE unless the origin answers: its document is the authority, so a lifecycle
 * change written without it would be undone by the next apply. */
static kp_status s_origin_answers(kp_ctx *ctx, const s_view *v)
{
    const kp__target *o = &v->d.t[v->d.origin];
    if (o->reachable)
        return KP_OK;
    return kp__set_error(ctx, KP_ERR_UNAVAILABLE,
                         "origin %s is unreachable (%s): the chain's lifecycle changes where its "
                         "origin answers",
                         o->name, o->detail);
}

static void s_view_free(s_view *v)
{
    if (v == NULL)
        return;
    kp__discovery_clear(&v->d);
    free(v);
}

/* The staged version, 0 when none. */
static uint32_t s_staged(const kp__chain_state *s)
{
    uint32_t staged = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].state == KP_VSTATE_STAGED)
            staged = s->v[i].version;
    return staged;
}

/* Whether version is proved usable in every keystore of the chain; why names the first gap. */
static kp_status s_proved(kp_ctx *ctx, const kp_policy *policy, const char *chain, uint32_t version,
                          bool *ok, bool *held, char *why, size_t whylen)
{
    kp_matrix *m = NULL;
    KP_GUARD(kp_chain_matrix(ctx, policy, chain, 1, &m));
    *ok = false;
    *held = false;
    snprintf(why, whylen, "v%u is held by no keystore", version);
    for (size_t r = 0; r < kp_matrix_version_count(m); r++) {
        if (kp_matrix_version(m, r) != version)
            continue;
        *ok = true;
        *held = true;
        for (size_t i = 0; i < kp_matrix_instance_count(m) && *ok; i++) {
            const kp_cell *cell = kp_matrix_cell(m, r, i);
            if (!kp_matrix_cell_ok(m, r, i)) {
                *ok = false;
                snprintf(why, whylen, "v%u is not usable in %s: %.160s", version,
                         kp_matrix_instance(m, i), cell->detail);
            }
        }
    }
    kp_matrix_free(m);
    return KP_OK;
}

/* Creates vN+1 in the origin (N: the highest version recorded or held anywhere) and records
 * it staged, before replication, so that an interrupted stage continues with this version. */
static kp_status s_stage_new(kp_ctx *ctx, const char *chain, s_view *v, uint32_t *staged)
{
    uint32_t highest = 0;
    for (size_t i = 0; i < v->s.n; i++)
        if (v->s.v[i].version > highest)
            highest = v->s.v[i].version;
    /* The next number after every version any keystore holds, not only the recorded ones (an
     * abandoned number is recorded, and never used again). */
    uint32_t vers[KP_STATE_VERSIONS];
    const char *fprs[KP_STATE_VERSIONS];
    size_t n = kp__versions(&v->d, vers, fprs, KP_STATE_VERSIONS);
    if (n > 0 && vers[n - 1] > highest)
        highest = vers[n - 1];
    if (highest == 0)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND,
                             "chain '%s' has no protector yet: run 'keyplane apply' first", chain);
    if (highest == UINT32_MAX)
        return kp__set_error(ctx, KP_ERR_INVALID_ARG, "chain '%s': no version numbers left", chain);
    kp__target *o = &v->d.t[v->d.origin];
    if (!o->reachable)
        return kp__set_error(ctx, KP_ERR_UNAVAILABLE, "origin %s is unreachable: %s", o->name,
                             o->detail);
    /* Recorded staged before the key exists: a run killed in between leaves a staged number no
     * store holds (s_stage_key makes it on the next run), never a key no document names, which
     * apply would spread and wrap could pick. */
    *staged = highest + 1;
    kp__vstate *x = kp__state_add(&v->s, *staged);
    KP_ENSURE(x != NULL, KP_ERR_NOMEM);
    x->state = KP_VSTATE_STAGED;
    return kp__state_store(ctx, &v->d, &v->s);
}

/* A key an operator hands over for the next version (`keyplane sqlserver import`): its PKCS#8
 * and its certificate. NULL where the chain makes its own. */
typedef struct s_given {
    const kp_secret *pkcs8;
    const uint8_t *cert;
    size_t certlen;
    char fpr[KPK_FPR_HEX];         /* the certificate's key, which the PKCS#8 must be */
    char thumb[KP_THUMBPRINT_HEX]; /* the certificate's */
} s_given;

/* The fingerprint a reachable store of v holds version version with ("" none). */
static const char *s_held_fpr(const s_view *v, uint32_t version)
{
    for (size_t i = 0; i < v->d.n; i++) {
        const kp__held *h = v->d.t[i].reachable ? kp__held_find(&v->d.t[i], version) : NULL;
        if (h != NULL)
            return h->fpr;
    }
    return "";
}

/* Whether certificate g may be version's: the stores keep none (and all of them answered, for
 * one that did not may keep the one SQL Server uses), or they keep this one. KP_ERR_EXISTS
 * naming the other certificate, KP_ERR_UNAVAILABLE naming the silent store. */
static kp_status s_cert_fits(kp_ctx *ctx, const s_view *v, uint32_t version, const s_given *g)
{
    bool split = false;
    const char *silent = NULL;
    const kp_cert_info *ref = kp__version_cert(&v->d, version, g->fpr, NULL, &split);
    if (split)
        return kp__set_error(ctx, KP_ERR_EXISTS,
                             "stores keep different certificates for %s v%u: remove the wrong "
                             "one first",
                             v->c->name, version);
    if (ref != NULL && strcmp(ref->thumbprint, g->thumb) != 0)
        return kp__set_error(ctx, KP_ERR_EXISTS,
                             "the key is %s v%u, whose certificate is %s (%s); this is another "
                             "certificate of the same key, and a key is one protector with one "
                             "certificate",
                             v->c->name, version, ref->thumbprint, ref->subject);
    if (ref == NULL && !kp__certs_all_answered(&v->d, &silent))
        return kp__set_error(ctx, KP_ERR_UNAVAILABLE,
                             "%s did not answer: it may keep the certificate of %s v%u, so none is "
                             "given to it without it",
                             silent, v->c->name, version);
    return KP_OK;
}

/* Puts version spec->version into origin: the given key with its certificate, a made key with a
 * made certificate (a chain whose certificates keyplane makes), or a key the origin makes. */
static kp_status s_make_version(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *origin,
                                kp_key_spec *spec, const s_given *g, kp_key_info *info)
{
    if (g == NULL)
        return c->certificate != NULL ? kp__cert_create(ctx, c, origin, spec, info)
                                      : kp_key_create(origin, spec, info);
    spec->fingerprint = g->fpr;
    spec->bits = 0; /* the import's */
    KP_GUARD(kp_key_import(origin, spec, g->pkcs8, info));
    return kp_key_cert_put(origin, c->name, info->version, g->cert, g->certlen);
}

/* Makes the staged version in the origin unless a reachable store holds it already (then
 * replication brings it to the origin). Its number is past every version any store holds and
 * every number the document records, so no store can hold another key under it. */
static kp_status s_stage_key(kp_ctx *ctx, s_view *v, uint32_t staged, const s_given *g)
{
    const char *held = s_held_fpr(v, staged);
    if (held[0] != '\0' && g == NULL)
        return KP_OK;
    if (held[0] != '\0' || g != NULL) {
        /* an import: the staged number must be free, or this very key (a rerun) */
        if (held[0] != '\0' && strcmp(held, g->fpr) != 0)
            return kp__set_error(ctx, KP_ERR_EXISTS,
                                 "%s v%u is staged with another key (another import made it "
                                 "first)",
                                 v->c->name, staged);
        KP_GUARD(s_cert_fits(ctx, v, staged, g));
    }
    if (!v->d.t[v->d.origin].reachable)
        return kp__set_error(ctx, KP_ERR_UNAVAILABLE, "origin %s is unreachable: %s",
                             v->d.t[v->d.origin].name, v->d.t[v->d.origin].detail);
    kp_key_info info;
    kp_key_spec spec;
    kp__chain_spec(v->c, staged, &spec);
    kp_status st = KP_OK;
    if (held[0] == '\0')
        st = s_make_version(ctx, v->c, v->d.t[v->d.origin].inst, &spec, g, &info);
    if (st == KP_ERR_EXISTS || held[0] != '\0') {
        /* another run made it first, or a rerun: only this import's key is success */
        kp_key_info have;
        st = kp_key_info_get(v->d.t[v->d.origin].inst, v->c->name, staged, &have);
        if (st == KP_OK && g != NULL && strcmp(have.fingerprint, g->fpr) != 0)
            st = kp__set_error(ctx, KP_ERR_EXISTS,
                               "%s v%u is staged with another key (another import made it "
                               "first)",
                               v->c->name, staged);
        if (st == KP_OK && g != NULL)
            st = kp_key_cert_put(v->d.t[v->d.origin].inst, v->c->name, staged, g->cert, g->certlen);
    }
    return st;
}

/* Copies every version (the staged one too) everywhere the chain keeps its protector. */
static kp_status s_replicate_all(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                 const kp_apply_opts *opts)
{
    kp_plan *plan = NULL;
    size_t failed = 0;
    kp_status st = kp_plan_make(ctx, policy, chain, &plan);
    if (st == KP_OK && kp_plan_action_count(plan) > 0)
        st = kp_plan_apply(ctx, policy, plan, opts, &failed);
    kp_plan_free(plan);
    return st;
}

/* Records in the chain's state document when staged was proved everywhere. */
static kp_status s_record_verified(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                   s_view *v, uint32_t staged)
{
    kp_status st = s_look(ctx, policy, chain, v);
    kp__vstate *x = st == KP_OK ? kp__state_find(&v->s, staged) : NULL;
    if (x != NULL) {
        x->verified = (int64_t)time(NULL);
        st = kp__state_store(ctx, &v->d, &v->s);
    }
    kp__discovery_clear(&v->d);
    return st;
}

/* kp_chain_stage, with the key and certificate g when an operator hands them over. */
static kp_status s_stage(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                         const kp_apply_opts *opts, const s_given *g, uint32_t *version,
                         int *verified)
{
    *version = 0;
    *verified = 0;
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    /* Refused before anything is recorded: a staged number no key could ever fill would block
     * the chain's next import. */
    if (g == NULL && c->certificate != NULL && c->certificate->subject == NULL)
        return kp__set_error(ctx, KP_ERR_DENIED,
                             "chain '%s' takes its versions from its certificates: stage the "
                             "next one with 'keyplane sqlserver import --chain %s'",
                             chain, chain);
    s_view *v = NULL;
    kp_status st = s_view_new(ctx, policy, chain, &v);
    uint32_t staged = st == KP_OK ? s_staged(&v->s) : 0;
    /* A staged version with another key is not this import's: it is activated or abandoned
     * first. A staged number no store holds a key of (an import killed in between) or one
     * holding this very key (a rerun) is this import's to finish. */
    const char *taken = st == KP_OK && staged != 0 ? s_held_fpr(v, staged) : "";
    if (st == KP_OK && g != NULL && taken[0] != '\0' && strcmp(taken, g->fpr) != 0)
        st = kp__set_error(ctx, KP_ERR_EXISTS,
                           "chain '%s' has v%u staged already: activate or abandon it first "
                           "('keyplane rotate %s --activate' or 'keyplane rotate %s --abandon "
                           "%u')",
                           chain, staged, chain, chain, staged);
    if (st == KP_OK && staged == 0)
        st = s_stage_new(ctx, chain, v, &staged);
    if (st == KP_OK)
        st = s_stage_key(ctx, v, staged, g);
    kp__discovery_clear(&v->d);
    if (st == KP_OK)
        st = s_replicate_all(ctx, policy, chain, opts);
    bool ok = false, held = false;
    char why[256] = "";
    if (st == KP_OK)
        st = s_proved(ctx, policy, chain, staged, &ok, &held, why, sizeof(why));
    if (st == KP_OK && ok)
        st = s_record_verified(ctx, policy, chain, v, staged);
    else if (st == KP_OK)
        kp__set_error(ctx, KP_OK, "%s", why);
    s_view_free(v);
    *version = staged;
    *verified = ok;
    return st;
}

kp_status kp_chain_stage(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                         const kp_apply_opts *opts, uint32_t *version, int *verified)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && version != NULL && verified != NULL,
              KP_ERR_INVALID_ARG);
    return s_stage(ctx, policy, chain, opts, NULL, version, verified);
}

/* Where the key of g is already a version of the chain: *version receives it (0: nowhere), and
 * the certificate is kept with the origin's copy when it has none (an import interrupted
 * between the key and its certificate, or a rerun). */
static kp_status s_imported(kp_ctx *ctx, s_view *v, const s_given *g, uint32_t *version)
{
    *version = 0;
    for (size_t i = 0; i < v->d.n && *version == 0; i++)
        for (size_t k = 0; k < v->d.t[i].nheld && *version == 0; k++)
            if (strcmp(v->d.t[i].held[k].fpr, g->fpr) == 0)
                *version = v->d.t[i].held[k].version;
    if (*version == 0)
        return KP_OK;
    const kp__vstate *x = kp__state_find(&v->s, *version);
    if (x != NULL && (x->state == KP_VSTATE_ABANDONED || x->state == KP_VSTATE_RETIRED))
        return kp__set_error(ctx, KP_ERR_DENIED,
                             "the key is %s v%u, which is %s: it is not made a version again",
                             v->c->name, *version, kp_version_state_name(x->state));
    KP_GUARD(s_cert_fits(ctx, v, *version, g));
    const kp__target *o = &v->d.t[v->d.origin];
    const kp__held *h = o->reachable ? kp__held_find(o, *version) : NULL;
    if (h == NULL || strcmp(h->fpr, g->fpr) != 0)
        return kp__set_error(ctx, KP_ERR_EXISTS,
                             "the key is %s v%u already, which the origin %s does not hold: "
                             "restore the origin first",
                             v->c->name, *version, o->name);
    kp_status st = kp_key_cert_put(o->inst, v->c->name, *version, g->cert, g->certlen);
    if (st == KP_ERR_EXISTS)
        kp__set_error(ctx, st,
                      "the key is %s v%u already, with another certificate: a key is one "
                      "protector, with one certificate",
                      v->c->name, *version);
    return st;
}

kp_status kp_chain_import(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                          const kp_secret *pkcs8, const uint8_t *cert, size_t certlen,
                          const kp_apply_opts *opts, uint32_t *version, int *staged, int *verified)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && pkcs8 != NULL && cert != NULL &&
                  version != NULL && staged != NULL && verified != NULL,
              KP_ERR_INVALID_ARG);
    *version = 0;
    *staged = 0;
    *verified = 0;
    s_given g = {pkcs8, cert, certlen, "", ""};
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    if (c->certificate == NULL)
        return kp__set_error(ctx, KP_ERR_CONFIG,
                             "chain '%s' has no 'certificate' block: its protector is no "
                             "certificate",
                             chain);
    kp_cert_info ci;
    char why[160];
    if (kp_cert_read(cert, certlen, &ci, why, sizeof(why)) != KP_OK)
        return kp__set_error(ctx, KP_ERR_INVALID_ARG, "the certificate: %s", why);
    memcpy(g.fpr, ci.fingerprint, sizeof(g.fpr));
    memcpy(g.thumb, ci.thumbprint, sizeof(g.thumb));
    s_view *v = NULL;
    kp_status st = s_view_new(ctx, policy, chain, &v);
    uint32_t vers[KP_STATE_VERSIONS];
    const char *fprs[KP_STATE_VERSIONS];
    size_t n = st == KP_OK ? kp__versions(&v->d, vers, fprs, KP_STATE_VERSIONS) : 0;
    uint32_t staged_now = st == KP_OK ? s_staged(&v->s) : 0;
    if (st == KP_OK)
        st = s_imported(ctx, v, &g, version);
    /* the staged version already: a rerun, which finishes the stage (its proof) */
    bool rerun = st == KP_OK && *version != 0 && *version == staged_now;
    for (size_t i = 0; st == KP_OK && *version == 0 && n == 0 && i < v->d.n; i++)
        if (!v->d.t[i].reachable)
            st = kp__set_error(ctx, KP_ERR_UNAVAILABLE,
                               "%s is unreachable (%s): it may hold a version of %s, so none is "
                               "imported as the first without it",
                               v->d.t[i].name, v->d.t[i].detail, chain);
    bool first = st == KP_OK && *version == 0 && n == 0;
    if (first) { /* the chain's first version: no lifecycle to stage it in */
        kp_key_spec spec;
        kp_key_info info;
        kp__chain_spec(c, 1, &spec);
        st = s_make_version(ctx, c, v->d.t[v->d.origin].inst, &spec, &g, &info);
        *version = 1;
    }
    s_view_free(v);
    if (st == KP_OK && (first || (*version != 0 && !rerun)))
        return s_replicate_all(ctx, policy, chain, opts);
    if (st != KP_OK)
        return st;
    *staged = 1;
    return s_stage(ctx, policy, chain, opts, &g, version, verified);
}

kp_status kp_chain_activate(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                            uint32_t *version)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && version != NULL,
              KP_ERR_INVALID_ARG);
    *version = 0;
    s_view *v = NULL;
    kp_status st = s_view_new(ctx, policy, chain, &v);
    uint32_t staged = st == KP_OK ? s_staged(&v->s) : 0;
    /* Nothing to activate is the chain's state, not a refusal: KP_ERR_NOT_FOUND. A staged
     * number no keystore holds a key of (a stage killed before its key was made) is nothing
     * too, and 'rotate --stage' the remedy either way. */
    if (st == KP_OK && staged == 0)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND,
                           "chain '%s' has no staged version: run 'keyplane rotate %s --stage'",
                           chain, chain);
    bool ok = false, held = false;
    char why[256] = "";
    if (st == KP_OK)
        st = s_proved(ctx, policy, chain, staged, &ok, &held, why, sizeof(why));
    if (st == KP_OK && !held)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND,
                           "chain '%s' has no staged version with a key (%s): run 'keyplane "
                           "rotate %s --stage'",
                           chain, why, chain);
    else if (st == KP_OK && !ok)
        st = kp__set_error(ctx, KP_ERR_DENIED,
                           "not activating %s v%u: %s (a version must work on every replica "
                           "before it wraps anything)",
                           chain, staged, why);
    if (st == KP_OK) {
        int64_t now = (int64_t)time(NULL);
        for (size_t i = 0; i < v->s.n; i++) {
            if (v->s.v[i].state == KP_VSTATE_ACTIVE) {
                v->s.v[i].state = KP_VSTATE_PREVIOUS;
                v->s.v[i].active_until = now;
            }
        }
        kp__vstate *x = kp__state_find(&v->s, staged);
        x->state = KP_VSTATE_ACTIVE;
        x->active_from = now;
        x->active_until = 0;
        st = kp__state_store(ctx, &v->d, &v->s);
    }
    s_view_free(v);
    if (st == KP_OK)
        *version = staged;
    return st;
}

kp_status kp_chain_retire(kp_ctx *ctx, const kp_policy *policy, const char *chain, uint32_t version)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && version > 0, KP_ERR_INVALID_ARG);
    s_view *v = NULL;
    kp_status st = s_view_new(ctx, policy, chain, &v);
    if (st == KP_OK)
        st = s_origin_answers(ctx, v);
    kp__vstate *x = st == KP_OK ? kp__state_find(&v->s, version) : NULL;
    int64_t now = (int64_t)time(NULL);
    if (st != KP_OK) {
        /* reported below */
    } else if (x == NULL) {
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND, "chain '%s' has no v%u", chain, version);
    } else if (x->state == KP_VSTATE_ACTIVE || x->state == KP_VSTATE_STAGED ||
               x->state == KP_VSTATE_ABANDONED) {
        st = kp__set_error(ctx, KP_ERR_DENIED, "%s v%u is %s: only a previous version retires",
                           chain, version, kp_version_state_name(x->state));
    } else if (x->state == KP_VSTATE_PREVIOUS &&
               (x->active_until == 0 || now < x->active_until + v->c->retention)) {
        /* A backup taken while it was active may still be restored: it stays usable. */
        if (x->active_until == 0)
            st = kp__set_error(ctx, KP_ERR_DENIED,
                               "refusing to retire %s v%u: when it stopped being active is not "
                               "recorded, so the retention window may still need it",
                               chain, version);
        else {
            char window[32], left[32];
            kpk_span_text(v->c->retention, window, sizeof(window));
            kpk_span_text(x->active_until + v->c->retention - now, left, sizeof(left));
            st = kp__set_error(ctx, KP_ERR_DENIED,
                               "refusing to retire %s v%u: the retention window (%s) still "
                               "needs it for %s more",
                               chain, version, window, left);
        }
    } else if (x->state != KP_VSTATE_RETIRED) {
        x->state = KP_VSTATE_RETIRED;
        st = kp__state_store(ctx, &v->d, &v->s);
    }
    if (st == KP_OK)
        kp__dek_cache_forget(ctx, chain, version); /* a cached DEK must not outlive its version */
    s_view_free(v);
    return st;
}

/* Whether version may be abandoned: it never was active, and no envelope can have used it.
 * *noop when it already is. */
static kp_status s_abandonable(kp_ctx *ctx, const s_view *v, uint32_t version, bool *noop)
{
    const char *chain = v->c->name;
    const kp__vstate *x = kp__state_find((kp__chain_state *)&v->s, version);
    bool held = false;
    const char *away = NULL;
    for (size_t i = 0; i < v->d.n; i++) {
        held = held || (v->d.t[i].reachable && kp__held_find(&v->d.t[i], version) != NULL);
        if (!v->d.t[i].reachable && !v->d.t[i].secret && away == NULL)
            away = v->d.t[i].name;
    }
    uint32_t active = kp__state_active(&v->s);
    uint32_t floor = active != 0 ? active : kp__unrotated_version(&v->d, &v->s, v->recorded);
    *noop = x != NULL && x->state == KP_VSTATE_ABANDONED;
    if (*noop)
        return KP_OK;
    if (x == NULL && !held)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND,
                             "chain '%s' has no v%u in any keystore that answered", chain, version);
    if (!v->recorded && away != NULL)
        return kp__set_error(ctx, KP_ERR_DENIED,
                             "not abandoning %s v%u: %s is unreachable, and until the chain has "
                             "rotated which version wrap uses depends on it",
                             chain, version, away);
    if (floor == 0 && x == NULL)
        return kp__set_error(ctx, KP_ERR_DENIED,
                             "not abandoning %s v%u: no version is active or in every keystore, "
                             "so which one wrap used cannot be told",
                             chain, version);
    /* Never rotated: the bootstrapped document records the version wrap picks and those
     * before it, each of which may have wrapped. */
    if (!v->recorded && version <= floor)
        return kp__set_error(ctx, KP_ERR_DENIED,
                             "not abandoning %s v%u: wrap picks v%u (the chain never rotated: "
                             "the newest version every keystore holds)%s, so envelopes may use "
                             "it",
                             chain, version, floor,
                             version < floor ? ", and may have picked this one before" : "");
    if (x != NULL && (x->state != KP_VSTATE_STAGED || x->active_from != 0))
        return kp__set_error(ctx, KP_ERR_DENIED,
                             "not abandoning %s v%u: it is %s%s; only a version that never "
                             "wrapped (staged, or made outside the lifecycle) can be abandoned",
                             chain, version, kp_version_state_name(x->state),
                             x->state == KP_VSTATE_STAGED ? " but was active once" : "");
    if (x == NULL && version <= floor)
        return kp__set_error(ctx, KP_ERR_DENIED,
                             "not abandoning %s v%u: the chain's document does not record it and "
                             "it is older than v%u, which wrap uses: it may have wrapped before "
                             "the chain first rotated",
                             chain, version, floor);
    return KP_OK;
}

kp_status kp_chain_abandon(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                           uint32_t version)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && version > 0, KP_ERR_INVALID_ARG);
    s_view *v = NULL;
    bool noop = false;
    kp_status st = s_view_new(ctx, policy, chain, &v);
    if (st == KP_OK)
        st = s_origin_answers(ctx, v);
    if (st == KP_OK)
        st = s_abandonable(ctx, v, version, &noop);
    kp__vstate *x = st == KP_OK && !noop ? kp__state_add(&v->s, version) : NULL;
    if (st == KP_OK && !noop && x == NULL)
        st = kp__set_error(ctx, KP_ERR_NOMEM, "chain '%s' records too many versions", chain);
    if (x != NULL) {
        /* A chain that never rotated gets its document now: the version wrap uses becomes
         * its active one, so that this choice no longer depends on who holds what. */
        x->state = KP_VSTATE_ABANDONED;
        st = kp__state_store(ctx, &v->d, &v->s);
    }
    if (st == KP_OK)
        kp__dek_cache_forget(ctx, chain, version);
    s_view_free(v);
    return st;
}
