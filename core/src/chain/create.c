/*
 * Creating a chain's protector version everywhere the policy wants it (origin first, then
 * every other keystore), and replicating what the origin holds to the keystores that lack it.
 * Once a chain has a lifecycle (a rotation period, or a document from an earlier rotation) its
 * next version is staged by rotate.c instead, and an abandoned version is not replicated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/state.h"

/* The chain's state document as its keystores vouch for it: *found false when none (never
 * rotated); *told false when documents exist but none can be told (rotate and wrap say why). */
static kp_status s_state(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                         kp__chain_state *s, bool *found, bool *told)
{
    kp__discovery d;
    kp_status st = kp__discover(ctx, policy, c, &d);
    kp_status load = st == KP_OK ? kp__state_load(ctx, &d, s, found) : st;
    *told = load == KP_OK;
    *found = *told && *found;
    kp__discovery_clear(&d);
    kp__clear_error(ctx);
    return st == KP_OK && load == KP_ERR_NOMEM ? load : st;
}

/* KP_ERR_DENIED, naming rotate --stage, when chain has a lifecycle its next version must go
 * through: a rotation period, or a document (it has rotated). Its first version is made here. */
static kp_status s_outside_lifecycle(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c)
{
    kp__chain_state *s = malloc(sizeof(*s));
    bool found = false, told = true;
    kp_status st = s != NULL ? KP_OK : KP_ERR_NOMEM;
    if (st == KP_OK && c->rotation_every == 0)
        st = s_state(ctx, policy, c, s, &found, &told);
    free(s);
    if (st == KP_OK && (c->rotation_every > 0 || found || !told))
        st = kp__set_error(ctx, KP_ERR_DENIED,
                           "chain '%s' %s: its next version is staged with 'keyplane rotate %s "
                           "--stage' (then --activate), not made by key create outside it",
                           c->name, c->rotation_every > 0 ? "has a rotation period" : "has rotated",
                           c->name);
    return st;
}

/* The highest version any store of chain c holds, secret replicas included. Refused while a
 * store is unreachable (it may hold a higher one, and a second key under a number splits the
 * chain) or holds a version the origin lacks (the origin is restored first). */
static kp_status s_highest_version(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                                   uint32_t *highest)
{
    *highest = 0;
    kp__discovery *d = calloc(1, sizeof(*d));
    uint32_t *vs = malloc(KP_STATE_VERSIONS * sizeof(*vs));
    const char **fs = malloc(KP_STATE_VERSIONS * sizeof(*fs));
    kp_status st =
        d != NULL && vs != NULL && fs != NULL ? kp__discover(ctx, policy, c, d) : KP_ERR_NOMEM;
    for (size_t i = 0; st == KP_OK && i < d->n; i++)
        if (!d->t[i].reachable)
            st = kp__set_error(ctx, KP_ERR_UNAVAILABLE,
                               "%s is unreachable (%s): it may hold a version of %s, so none is "
                               "created without it",
                               d->t[i].name, d->t[i].detail, c->name);
    size_t nv = st == KP_OK ? kp__versions(d, vs, fs, KP_STATE_VERSIONS) : 0;
    const kp__target *o = st == KP_OK ? &d->t[d->origin] : NULL;
    for (size_t k = 0; st == KP_OK && k < nv; k++) {
        if (kp__held_find(o, vs[k]) != NULL)
            continue;
        for (size_t i = 0; st == KP_OK && i < d->n; i++)
            if (kp__held_find(&d->t[i], vs[k]) != NULL)
                st = kp__set_error(ctx, KP_ERR_EXISTS,
                                   "%s holds %s v%u, which the origin %s lacks: restore the origin "
                                   "first ('keyplane restore %s --to %s --from %s')",
                                   d->t[i].name, c->name, vs[k], o->name, c->name, o->name,
                                   d->t[i].name);
    }
    if (st == KP_OK && nv > 0)
        *highest = vs[nv - 1];
    if (d != NULL)
        kp__discovery_clear(d);
    free(d);
    free(vs);
    free(fs);
    if (st == KP_OK)
        kp__clear_error(ctx);
    return st;
}

static kp_status s_replicate(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                             const char *target, kp_instance *origin, const kp_key_info *src)
{
    kp_instance *inst = NULL;
    KP_GUARD(kp__instance_borrow(ctx, policy, target, &inst));
    kp_key_info info;
    kp_status st = kp__key_copy(ctx, origin, inst, src, &info);
    /* a certificate chain's copy carries the certificate where the store keeps one */
    if ((st == KP_OK || st == KP_ERR_EXISTS) && c->certificate != NULL &&
        kp_instance_keeps_certs(inst) && kp_instance_keeps_certs(origin)) {
        kp_status cst =
            kp__cert_copy(ctx, c, origin, false, inst, false, src->version, src->fingerprint);
        st = st == KP_OK ? cst : st;
    }
    kp__instance_return(ctx, inst);
    return st;
}

kp_status kp_chain_create_protector(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                    kp_check_report_fn report, void *arg, kp_key_info *info)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && info != NULL, KP_ERR_INVALID_ARG);
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    const char *targets[KP_MAX_TARGETS];
    size_t n = kp__chain_keystores(policy, c, targets, KP_MAX_TARGETS);
    const char *all[KP_MAX_TARGETS + 1];
    all[0] = c->origin;
    size_t nall = 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(targets[i], c->origin) != 0)
            all[nall++] = targets[i];

    uint32_t highest = 0;
    KP_GUARD(s_highest_version(ctx, policy, c, &highest));
    if (highest > 0)
        KP_GUARD(s_outside_lifecycle(ctx, policy, c));
    if (highest == UINT32_MAX)
        return kp__set_error(ctx, KP_ERR_INVALID_ARG, "chain '%s': no version numbers left", chain);

    kp_instance *origin = NULL;
    KP_GUARD(kp__instance_borrow(ctx, policy, c->origin, &origin));
    kp_key_spec spec;
    kp__chain_spec(c, highest + 1, &spec);
    kp_status st = c->certificate != NULL ? kp__cert_create(ctx, c, origin, &spec, info)
                                          : kp_key_create(origin, &spec, info);
    if (report != NULL)
        report(arg, c->origin, st, st == KP_OK ? "created" : kp_ctx_last_error(ctx));
    /* Every replica is attempted even after one fails, so one bad region does not leave the
     * others without the new version; the first failure is returned. */
    kp_status first = st;
    for (size_t i = 1; st == KP_OK && i < nall; i++) {
        kp_status rst = s_replicate(ctx, policy, c, all[i], origin, info);
        if (report != NULL)
            report(arg, all[i], rst, rst == KP_OK ? "replicated" : kp_ctx_last_error(ctx));
        if (rst != KP_OK && first == KP_OK)
            first = rst;
    }
    kp__instance_return(ctx, origin);
    return first;
}

/* Versions of the origin, for replicate. */
typedef struct s_versions {
    kp_key_info items[256];
    size_t n;
} s_versions;

static kp_status s_collect(void *arg, const kp_key_info *info)
{
    s_versions *v = arg;
    if (v->n == sizeof(v->items) / sizeof(v->items[0]))
        return KP_ERR_UNSUPPORTED;
    v->items[v->n++] = *info;
    return KP_OK;
}

/* Leaves out of have the versions the chain's document records abandoned. */
static kp_status s_drop_abandoned(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                                  s_versions *have)
{
    kp__chain_state *s = malloc(sizeof(*s));
    bool found = false, told = false;
    kp_status st = s != NULL ? s_state(ctx, policy, c, s, &found, &told) : KP_ERR_NOMEM;
    size_t keep = 0;
    for (size_t i = 0; i < have->n; i++) {
        const kp__vstate *x = found ? kp__state_find(s, have->items[i].version) : NULL;
        if (x == NULL || x->state != KP_VSTATE_ABANDONED)
            have->items[keep++] = have->items[i];
    }
    have->n = keep;
    free(s);
    return st;
}

/* Brings one target up to the origin's versions; reports each version it copies or finds
 * different. */
static kp_status s_catch_up(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                            kp_instance *origin, const s_versions *have, const char *target,
                            kp_check_report_fn report, void *arg)
{
    kp_instance *inst = NULL;
    kp_status st = kp__instance_borrow(ctx, policy, target, &inst);
    kp_status first = st;
    for (size_t i = 0; st == KP_OK && i < have->n; i++) {
        const kp_key_info *src = &have->items[i];
        kp_key_info info;
        char what[KP_ERRBUF + 32];
        kp_status vst = kp_key_info_get(inst, c->name, src->version, &info);
        if (vst == KP_OK && strcmp(info.fingerprint, src->fingerprint) == 0)
            continue; /* already there */
        if (vst == KP_OK) {
            vst = kp__set_error(ctx, KP_ERR_INTEGRITY,
                                "%s holds a different key as %s v%u (fingerprint %.16s..., "
                                "origin has %.16s...)",
                                target, c->name, src->version, info.fingerprint, src->fingerprint);
        } else if (vst == KP_ERR_NOT_FOUND) {
            vst = kp__key_copy(ctx, origin, inst, src, &info);
        }
        snprintf(what, sizeof(what), "v%u: %s", src->version,
                 vst == KP_OK ? "replicated" : kp_ctx_last_error(ctx));
        if (report != NULL)
            report(arg, target, vst, what);
        if (vst != KP_OK && first == KP_OK)
            first = vst;
    }
    if (st != KP_OK && report != NULL)
        report(arg, target, st, kp_ctx_last_error(ctx));
    kp__instance_return(ctx, inst);
    return first;
}

kp_status kp_chain_replicate(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                             kp_check_report_fn report, void *arg)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL, KP_ERR_INVALID_ARG);
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    s_versions *have = calloc(1, sizeof(*have));
    if (have == NULL)
        return KP_ERR_NOMEM;
    kp_instance *origin = NULL;
    kp_status st = kp__instance_borrow(ctx, policy, c->origin, &origin);
    if (st == KP_OK)
        st = kp_key_list(origin, chain, s_collect, have);
    if (st == KP_ERR_UNSUPPORTED)
        st = kp__set_error(ctx, st, "chain '%s' has more than 256 versions", chain);
    if (st == KP_OK)
        st = s_drop_abandoned(ctx, policy, c, have);
    const char *targets[KP_MAX_TARGETS];
    size_t n = kp__chain_keystores(policy, c, targets, KP_MAX_TARGETS);
    /* Every target is attempted even after one fails; the first failure is returned. */
    kp_status first = st;
    for (size_t i = 0; st == KP_OK && i < n; i++) {
        if (strcmp(targets[i], c->origin) == 0)
            continue;
        kp_status tst = s_catch_up(ctx, policy, c, origin, have, targets[i], report, arg);
        if (tst != KP_OK && first == KP_OK)
            first = tst;
    }
    kp__instance_return(ctx, origin);
    free(have);
    return first;
}
