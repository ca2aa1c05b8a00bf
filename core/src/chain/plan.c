/*
 * Planning: the difference between what the policy wants (every kept version of the protector
 * in every keystore of the chain) and what discovery found.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "chain/plan.h"
#include "chain/secret_replica.h"
#include "chain/state.h"

static kp_status s_push_action(kp_plan *p, const kp_action *a)
{
    kp_action *actions = kp__grow(p->actions, &p->cap, p->n, sizeof(*actions), 16);
    KP_ENSURE(actions != NULL, KP_ERR_NOMEM);
    p->actions = actions;
    p->actions[p->n++] = *a;
    return KP_OK;
}

static kp_status s_push_finding(kp_plan *p, uint32_t kind, const char *chain, const char *inst,
                                uint32_t version, kp_status st, const char *detail)
{
    kp_finding *findings = kp__grow(p->findings, &p->capfind, p->nfind, sizeof(*findings), 8);
    KP_ENSURE(findings != NULL, KP_ERR_NOMEM);
    p->findings = findings;
    kp_finding *f = &p->findings[p->nfind++];
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    snprintf(f->chain, sizeof(f->chain), "%s", chain);
    snprintf(f->instance, sizeof(f->instance), "%s", inst);
    f->version = version;
    f->status = st;
    snprintf(f->detail, sizeof(f->detail), "%s", detail);
    return KP_OK;
}

static kp_action s_action(uint32_t kind, const char *chain, const char *source, const char *target,
                          uint32_t version, const char *fpr)
{
    kp_action a;
    memset(&a, 0, sizeof(a));
    a.kind = kind;
    snprintf(a.chain, sizeof(a.chain), "%s", chain);
    snprintf(a.source, sizeof(a.source), "%s", source);
    snprintf(a.target, sizeof(a.target), "%s", target);
    a.version = version;
    snprintf(a.fingerprint, sizeof(a.fingerprint), "%s", fpr);
    return a;
}

/* A reachable holder of version v with fingerprint fpr: the origin first, then the other
 * keystores, then the secret replicas (a copy opened with its password from the chain's
 * secret store). */
static const char *s_source(const kp__discovery *d, uint32_t v, const char *fpr)
{
    const kp__target *o = &d->t[d->origin];
    const kp__held *h = o->reachable ? kp__held_find(o, v) : NULL;
    if (h != NULL && strcmp(h->fpr, fpr) == 0)
        return o->name;
    for (int secret = 0; secret < 2; secret++) {
        for (size_t i = 0; i < d->n; i++) {
            h = d->t[i].reachable && d->t[i].secret == secret ? kp__held_find(&d->t[i], v) : NULL;
            if (h != NULL && strcmp(h->fpr, fpr) == 0)
                return d->t[i].name;
        }
    }
    return NULL;
}

/* The lifecycle document follows the keys: keystores whose document is not the authority's
 * (older, none like a restored region, unreadable, or claiming another active version) get
 * the authority's; documents no keystore can vouch for are a finding. */
static kp_status s_plan_state(kp_ctx *ctx, const kp__discovery *d, kp_plan *p)
{
    const kp_chain_policy *c = d->chain;
    kp__state_report *r = malloc(sizeof(*r));
    kp__chain_state *s = malloc(sizeof(*s));
    bool found = false;
    kp_status st = r != NULL && s != NULL ? KP_OK : KP_ERR_NOMEM;
    kp_status dst = st == KP_OK ? kp__state_decide(ctx, d, s, &found, r) : st;
    if (st == KP_OK && dst != KP_OK && dst != KP_ERR_NOMEM)
        st = s_push_finding(p, KP_FINDING_STATE, c->name, d->t[d->origin].name, 0, dst,
                            kp_ctx_last_error(ctx));
    else if (st == KP_OK && dst != KP_OK)
        st = dst;
    if (st == KP_OK && dst == KP_OK && r->problem[0] != '\0')
        st = s_push_finding(p, KP_FINDING_STATE, c->name, d->t[r->source].name, 0, KP_ERR_INTEGRITY,
                            r->problem);
    for (size_t i = 0; st == KP_OK && dst == KP_OK && found && i < d->n; i++) {
        const kp__target *t = &d->t[i];
        if (r->repair[i] && t->reachable && !t->secret && t->keeps_state) {
            kp_action a = s_action(KP_ACTION_STATE, c->name, d->t[r->source].name, t->name, 0, "");
            st = s_push_action(p, &a);
        }
    }
    free(r);
    free(s);
    kp__clear_error(ctx);
    return st;
}

/* Copies of every confirmed version to the stores that lack it; a version no store can vouch
 * for, and a store holding another key under a number, are findings. */
static kp_status s_plan_versions(kp_ctx *ctx, const kp__discovery *d, kp_plan *p)
{
    const kp_chain_policy *c = d->chain;
    uint32_t versions[KP_STATE_VERSIONS];
    const char *fprs[KP_STATE_VERSIONS];
    size_t nv = kp__versions(d, versions, fprs, KP_STATE_VERSIONS);
    /* An abandoned version is no longer wanted anywhere (kp_chain_abandon): not copied. A
     * document that cannot be told is s_plan_state's finding; then every version is copied. */
    kp__chain_state *s = malloc(sizeof(*s));
    bool found = false;
    kp_status st = s != NULL ? KP_OK : KP_ERR_NOMEM;
    if (st == KP_OK)
        found = kp__state_load(ctx, d, s, &found) == KP_OK && found;
    kp__clear_error(ctx);
    for (size_t k = 0; st == KP_OK && k < nv; k++) {
        const kp__vstate *x = found ? kp__state_find(s, versions[k]) : NULL;
        if (x != NULL && x->state == KP_VSTATE_ABANDONED)
            continue;
        bool confirmed = kp__version_confirmed(d, versions[k], fprs[k]);
        for (size_t i = 0; st == KP_OK && i < d->n; i++) {
            const kp__target *t = &d->t[i];
            if (!t->reachable)
                continue;
            const kp__held *h = kp__held_find(t, versions[k]);
            char why[256];
            if (h != NULL && strcmp(h->fpr, fprs[k]) != 0) {
                snprintf(why, sizeof(why),
                         "holds another key as %s v%u (fingerprint %.16s..., expected %.16s...)",
                         c->name, versions[k], h->fpr, fprs[k]);
                st = s_push_finding(p, KP_FINDING_CONFLICT, c->name, t->name, versions[k],
                                    KP_ERR_INTEGRITY, why);
            } else if (h != NULL && !confirmed) {
                snprintf(why, sizeof(why),
                         "holds %s v%u (%.16s...), which neither the origin %s nor more than "
                         "half of the chain's %zu stores hold: not copied, never used to wrap",
                         c->name, versions[k], h->fpr, c->origin, d->n);
                st = s_push_finding(p, KP_FINDING_UNCONFIRMED, c->name, t->name, versions[k],
                                    KP_ERR_INTEGRITY, why);
            } else if (h == NULL && confirmed) {
                const char *src = s_source(d, versions[k], fprs[k]);
                kp_action a = s_action(t->secret ? KP_ACTION_SECRET : KP_ACTION_COPY, c->name,
                                       src != NULL ? src : "", t->name, versions[k], fprs[k]);
                st = s_push_action(p, &a);
            }
        }
    }
    free(s);
    return st;
}

/* Certificate chains: every store that keeps certificates gets each version's certificate with
 * the key (after the copies); a store keeping another certificate for a version is a conflict
 * (never replaced); a version no store keeps a certificate of is made in the origin when
 * keyplane makes the chain's certificates. planned: actions already pushed for this chain start
 * at index from (copies this run makes count as held). */
static kp_status s_plan_certs(const kp__discovery *d, kp_plan *p, size_t from)
{
    const kp_chain_policy *c = d->chain;
    uint32_t versions[KP_STATE_VERSIONS];
    const char *fprs[KP_STATE_VERSIONS];
    size_t nv = kp__versions(d, versions, fprs, KP_STATE_VERSIONS);
    kp_status st = KP_OK;
    /* a version the plan creates now: its certificate is made with it, in the origin */
    for (size_t j = from; st == KP_OK && j < p->n; j++) {
        const kp_action *a = &p->actions[j];
        if (a->kind != KP_ACTION_CREATE)
            continue;
        kp_action made = *a;
        for (size_t i = 0; st == KP_OK && i < d->n; i++) {
            if (i == d->origin || !d->t[i].keeps_certs)
                continue;
            kp_action x =
                s_action(KP_ACTION_CERT, c->name, made.target, d->t[i].name, made.version, "");
            st = s_push_action(p, &x);
        }
    }
    for (size_t k = 0; st == KP_OK && k < nv; k++) {
        if (!kp__version_confirmed(d, versions[k], fprs[k]))
            continue;
        size_t holder = d->n;
        bool split = false;
        const char *silent = NULL;
        const kp_cert_info *ref = kp__version_cert(d, versions[k], fprs[k], &holder, &split);
        if (split) {
            char why[256];
            snprintf(why, sizeof(why),
                     "stores keep different certificates for %s v%u and the origin keeps none: "
                     "nothing is copied until the wrong one is removed",
                     c->name, versions[k]);
            st = s_push_finding(p, KP_FINDING_CONFLICT, c->name, c->origin, versions[k],
                                KP_ERR_INTEGRITY, why);
            continue;
        }
        const kp__target *o = &d->t[d->origin];
        const kp__held *oh = o->reachable ? kp__held_find(o, versions[k]) : NULL;
        if (ref == NULL) {
            kp_action a = s_action(KP_ACTION_CERT, c->name, "", c->origin, versions[k], fprs[k]);
            char why[256];
            snprintf(why, sizeof(why),
                     "no store keeps a certificate of %s v%u: import it with `keyplane sqlserver "
                     "import --chain %s`",
                     c->name, versions[k], c->name);
            bool make = c->certificate->subject != NULL && oh != NULL &&
                        strcmp(oh->fpr, fprs[k]) == 0 && kp__certs_all_answered(d, &silent);
            if (silent != NULL)
                snprintf(why, sizeof(why),
                         "no store that answered keeps a certificate of %s v%u, and %s did not "
                         "answer: it may keep the one SQL Server uses, so none is made",
                         c->name, versions[k], silent);
            st = make ? s_push_action(p, &a)
                      : s_push_finding(p, KP_FINDING_WAITING, c->name, c->origin, versions[k],
                                       KP_ERR_NOT_FOUND, why);
            if (!make)
                continue;
            holder = d->origin; /* made there in this run, then copied from there */
        }
        for (size_t i = 0; st == KP_OK && i < d->n; i++) {
            const kp__target *t = &d->t[i];
            if (!t->keeps_certs || i == holder)
                continue;
            const kp__held *h = kp__held_find(t, versions[k]);
            bool copied = false; /* this plan copies the version there */
            for (size_t j = from; j < p->n && h == NULL; j++)
                copied = copied || ((p->actions[j].kind == KP_ACTION_COPY ||
                                     p->actions[j].kind == KP_ACTION_SECRET) &&
                                    p->actions[j].version == versions[k] &&
                                    strcmp(p->actions[j].target, t->name) == 0);
            char why[256];
            if (h != NULL && strcmp(h->fpr, fprs[k]) != 0)
                continue; /* another key: s_plan_versions' conflict */
            if (ref != NULL && h != NULL && h->cert != NULL &&
                strcmp(h->cert->thumbprint, ref->thumbprint) != 0) {
                snprintf(why, sizeof(why),
                         "keeps another certificate for %s v%u (thumbprint %s; the version's is "
                         "%s): left alone",
                         c->name, versions[k], h->cert->thumbprint, ref->thumbprint);
                st = s_push_finding(p, KP_FINDING_CONFLICT, c->name, t->name, versions[k],
                                    KP_ERR_INTEGRITY, why);
            } else if (h != NULL && h->cert == NULL && h->cert_st != KP_ERR_NOT_FOUND) {
                snprintf(why, sizeof(why), "cannot read the certificate of %s v%u: %.160s", c->name,
                         versions[k], h->cert_why);
                st = s_push_finding(p, KP_FINDING_CONFLICT, c->name, t->name, versions[k],
                                    h->cert_st, why);
            } else if ((h != NULL && h->cert == NULL) || copied) {
                kp_action a = s_action(KP_ACTION_CERT, c->name, d->t[holder].name, t->name,
                                       versions[k], fprs[k]);
                st = s_push_action(p, &a);
            }
        }
    }
    return st;
}

static kp_status s_plan_chain(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                              const char *vouch, kp_plan *p)
{
    kp__discovery d;
    kp_status st = kp__discover_certs(ctx, policy, c, &d);
    kp__discovery_vouch(&d, vouch);
    for (size_t i = 0; st == KP_OK && i < d.n; i++) {
        char why[256];
        if (!d.t[i].reachable)
            st = s_push_finding(p, KP_FINDING_UNREACHABLE, c->name, d.t[i].name, 0, d.t[i].status,
                                d.t[i].detail);
        else if (kp_instance_fits_chain(d.t[i].inst, c, why, sizeof(why)) != KP_OK)
            st = s_push_finding(p, KP_FINDING_INCAPABLE, c->name, d.t[i].name, 0,
                                KP_ERR_UNSUPPORTED, why);
    }
    uint32_t v1;
    const char *f1;
    size_t nv = st == KP_OK ? kp__versions(&d, &v1, &f1, 1) : 0;
    bool all_reachable = true;
    for (size_t i = 0; i < d.n; i++)
        all_reachable = all_reachable && d.t[i].reachable;
    /* A new protector only when every store answered (secret replicas too) and none holds any
     * version: an unreachable one may hold the real v1, and a second v1 would split the chain.
     * A store that was initialised and is now missing answers "unreachable", not "empty". */
    size_t from = p->n;
    /* A chain whose certificates are imported is born of `keyplane sqlserver import`. */
    bool imported = c->certificate != NULL && c->certificate->subject == NULL;
    if (st == KP_OK && nv == 0 && all_reachable && imported) {
        char why[256];
        snprintf(why, sizeof(why),
                 "no version yet: its certificates are imported (`keyplane sqlserver import "
                 "--chain %s`)",
                 c->name);
        st = s_push_finding(p, KP_FINDING_WAITING, c->name, c->origin, 0, KP_ERR_NOT_FOUND, why);
    } else if (st == KP_OK && nv == 0 && all_reachable) {
        /* Nothing anywhere: the protector is born in the origin, then copied everywhere. */
        kp_action a = s_action(KP_ACTION_CREATE, c->name, "", c->origin, 1, "");
        st = s_push_action(p, &a);
        for (size_t i = 0; st == KP_OK && i < d.n; i++) {
            if (i == d.origin || !d.t[i].reachable)
                continue;
            a = s_action(d.t[i].secret ? KP_ACTION_SECRET : KP_ACTION_COPY, c->name, c->origin,
                         d.t[i].name, 1, "");
            st = s_push_action(p, &a);
        }
    }
    if (st == KP_OK)
        st = s_plan_versions(ctx, &d, p);
    if (st == KP_OK && c->certificate != NULL)
        st = s_plan_certs(&d, p, from);
    if (st == KP_OK)
        st = s_plan_state(ctx, &d, p);
    kp__discovery_clear(&d);
    return st;
}

/* Discovery talks to every keystore of every chain: with remote services that is latency, not
 * work, so chains are planned by a pool of workers and the fragments joined in policy order. */

typedef struct s_planner {
    kp_ctx *ctx;
    const kp_policy *policy;
    const char *only;
    const char *vouch;
    kp_plan *parts; /* one per chain */
    kp_status *status;
    size_t next, n;
    pthread_mutex_t lock;
} s_planner;

static void *s_plan_worker(void *arg)
{
    s_planner *pl = arg;
    for (;;) {
        pthread_mutex_lock(&pl->lock);
        size_t i = pl->next++;
        pthread_mutex_unlock(&pl->lock);
        if (i >= pl->n)
            return NULL;
        const kp_chain_policy *c = kp_policy_chain_at(pl->policy, i);
        if (pl->only == NULL || strcmp(c->name, pl->only) == 0)
            pl->status[i] = s_plan_chain(pl->ctx, pl->policy, c, pl->vouch, &pl->parts[i]);
    }
}

kp_status kp_plan_make(kp_ctx *ctx, const kp_policy *policy, const char *chain, kp_plan **out)
{
    return kp_plan_make_with(ctx, policy, chain, NULL, out);
}

kp_status kp_plan_make_with(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                            const kp_plan_opts *opts, kp_plan **out)
{
    KP_ENSURE(ctx != NULL && policy != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    if (chain != NULL && kp_policy_chain(policy, chain) == NULL)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND, "no chain '%.64s' in %s", chain,
                             kp_policy_get0_path(policy));
    s_planner pl = {.ctx = ctx,
                    .policy = policy,
                    .only = chain,
                    .vouch = opts != NULL && KP_HAS_MEMBER(opts, kp_plan_opts, vouch) ? opts->vouch
                                                                                      : NULL,
                    .n = kp_policy_chain_count(policy),
                    .lock = PTHREAD_MUTEX_INITIALIZER};
    kp_plan *p = calloc(1, sizeof(*p));
    pl.parts = calloc(pl.n + 1, sizeof(*pl.parts));
    pl.status = calloc(pl.n + 1, sizeof(*pl.status));
    kp_status st = p != NULL && pl.parts != NULL && pl.status != NULL ? KP_OK : KP_ERR_NOMEM;
    size_t want =
        kp__workers(opts != NULL && KP_HAS_MEMBER(opts, kp_plan_opts, workers) ? opts->workers : 0);
    /* One worker: this thread does the work, as for a single chain. */
    size_t nthreads = chain != NULL || pl.n < 2 || want < 2 ? 0 : pl.n < want ? pl.n : want;
    pthread_t threads[KP__WORKERS_MAX];
    size_t started = 0;
    for (size_t i = 0; st == KP_OK && i < nthreads; i++)
        if (pthread_create(&threads[started], NULL, s_plan_worker, &pl) == 0)
            started++;
    if (st == KP_OK)
        s_plan_worker(&pl); /* this thread works too (and alone when none started) */
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (size_t i = 0; st == KP_OK && i < pl.n; i++) {
        st = pl.status[i];
        for (size_t k = 0; st == KP_OK && k < pl.parts[i].n; k++)
            st = s_push_action(p, &pl.parts[i].actions[k]);
        for (size_t k = 0; st == KP_OK && k < pl.parts[i].nfind; k++) {
            const kp_finding *f = &pl.parts[i].findings[k];
            st =
                s_push_finding(p, f->kind, f->chain, f->instance, f->version, f->status, f->detail);
        }
    }
    for (size_t i = 0; pl.parts != NULL && i < pl.n; i++) {
        free(pl.parts[i].actions);
        free(pl.parts[i].findings);
    }
    free(pl.parts);
    free(pl.status);
    pthread_mutex_destroy(&pl.lock);
    if (st != KP_OK) {
        kp_plan_free(p);
        return st;
    }
    *out = p;
    return KP_OK;
}

/* Whether instance from holds chain v with fingerprint fpr. */
static bool s_holds(kp_ctx *ctx, const kp_policy *policy, const char *from, const kp_action *a)
{
    kp_instance *inst = NULL;
    kp_key_info info;
    kp_status st = kp__instance_borrow(ctx, policy, from, &inst);
    const kp_chain_policy *c = kp_policy_chain(policy, a->chain);
    bool held = false;
    if (st == KP_OK && c != NULL && kp__secret_replica_of(policy, c, from))
        held = kp__secret_holds(inst, a->chain, a->version, a->fingerprint);
    else if (st == KP_OK)
        held = kp_key_info_get(inst, a->chain, a->version, &info) == KP_OK &&
               (a->fingerprint[0] == '\0' || strcmp(info.fingerprint, a->fingerprint) == 0);
    kp__instance_return(ctx, inst);
    return held;
}

kp_status kp_plan_restrict(kp_ctx *ctx, const kp_policy *policy, kp_plan *plan, const char *target,
                           const char *from)
{
    KP_ENSURE(ctx != NULL && policy != NULL && plan != NULL && target != NULL, KP_ERR_INVALID_ARG);
    /* The target must be one of the plan's chains' keystores or secret replicas. */
    bool known = false;
    for (size_t ci = 0; ci < kp_policy_chain_count(policy) && !known; ci++) {
        const kp_chain_policy *c = kp_policy_chain_at(policy, ci);
        known = strcmp(c->origin, target) == 0;
        for (size_t i = 0; i < c->nreplicas && !known; i++)
            known = strcmp(c->replicas[i], target) == 0;
        for (size_t i = 0; i < c->nescrow && !known; i++)
            known = strcmp(c->escrow[i], target) == 0;
        for (size_t i = 0; i < c->nsecret_replicas && !known; i++)
            known = strcmp(c->secret_replicas[i], target) == 0;
    }
    if (!known)
        return kp__set_error(ctx, KP_ERR_INVALID_ARG,
                             "'%.64s' holds no copy of the chain's protector by policy", target);
    size_t keep = 0, nfrom = 0;
    for (size_t i = 0; i < plan->n; i++) {
        kp_action a = plan->actions[i];
        if (strcmp(a.target, target) != 0)
            continue;
        if (a.kind == KP_ACTION_CREATE) /* a restore never invents a new protector */
            return kp__set_error(ctx, KP_ERR_NOT_FOUND,
                                 "no keystore holds any version of %s: there is nothing to "
                                 "restore from (a new protector would open no old envelope)",
                                 a.chain);
        if (from != NULL && (a.kind == KP_ACTION_COPY || a.kind == KP_ACTION_SECRET) &&
            s_holds(ctx, policy, from, &a)) {
            snprintf(a.source, sizeof(a.source), "%s", from);
            nfrom++;
        }
        plan->actions[keep++] = a;
    }
    plan->n = keep;
    size_t fkeep = 0;
    /* Its own findings, and what keeps versions or the state document from being restored. */
    for (size_t i = 0; i < plan->nfind; i++)
        if (strcmp(plan->findings[i].instance, target) == 0 ||
            plan->findings[i].kind == KP_FINDING_UNCONFIRMED ||
            plan->findings[i].kind == KP_FINDING_STATE)
            plan->findings[fkeep++] = plan->findings[i];
    plan->nfind = fkeep;
    kp__clear_error(ctx);
    if (from != NULL && keep > 0 && nfrom == 0)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND,
                             "%s holds none of the versions %s lacks (with the same key)", from,
                             target);
    return KP_OK;
}

void kp_plan_free(kp_plan *plan)
{
    if (plan == NULL)
        return;
    free(plan->actions);
    free(plan->findings);
    free(plan);
}

size_t kp_plan_action_count(const kp_plan *plan)
{
    return plan != NULL ? plan->n : 0;
}

const kp_action *kp_plan_action(const kp_plan *plan, size_t i)
{
    return plan != NULL && i < plan->n ? &plan->actions[i] : NULL;
}

size_t kp_plan_finding_count(const kp_plan *plan)
{
    return plan != NULL ? plan->nfind : 0;
}

const kp_finding *kp_plan_finding(const kp_plan *plan, size_t i)
{
    return plan != NULL && i < plan->nfind ? &plan->findings[i] : NULL;
}
