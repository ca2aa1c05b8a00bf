/*
 * What one store of a chain holds, as discovery lists it, and the versions of the whole chain
 * that follow from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "base/util.h"
#include "chain/discovery.h"

kp__held *kp__held_add(kp__target *t, uint32_t version)
{
    kp__held *held = kp__grow(t->held, &t->cap, t->nheld, sizeof(*held), 8);
    if (held == NULL)
        return NULL;
    t->held = held;
    kp__held *h = &t->held[t->nheld++];
    memset(h, 0, sizeof(*h));
    h->version = version;
    return h;
}

kp_status kp__target_answered(kp_ctx *ctx, kp__target *t, kp_status st)
{
    t->reachable = st == KP_OK;
    t->status = st;
    if (st != KP_OK) {
        /* The instance's own words; findings and cells name the instance already. */
        snprintf(t->detail, sizeof(t->detail), "%s",
                 kpk_after_name(kp_ctx_last_error(ctx), t->name));
        t->nheld = 0;
    }
    return st == KP_ERR_NOMEM ? st : KP_OK;
}

const kp__held *kp__held_find(const kp__target *t, uint32_t version)
{
    for (size_t i = 0; i < t->nheld; i++)
        if (t->held[i].version == version)
            return &t->held[i];
    return NULL;
}

size_t kp__version_holders(const kp__discovery *d, uint32_t v, const char *fpr)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++) {
        const kp__held *h = d->t[i].reachable ? kp__held_find(&d->t[i], v) : NULL;
        n += h != NULL && strcmp(h->fpr, fpr) == 0;
    }
    return n;
}

bool kp__origin_silent(const kp__discovery *d)
{
    const kp__target *o = &d->t[d->origin];
    return !o->reachable || o->nheld == 0;
}

bool kp__version_confirmed(const kp__discovery *d, uint32_t v, const char *fpr)
{
    const kp__target *o = &d->t[d->origin];
    const kp__held *h = o->reachable ? kp__held_find(o, v) : NULL;
    if (h != NULL)
        return strcmp(h->fpr, fpr) == 0;
    const kp__target *w = d->vouch < d->n && kp__origin_silent(d) ? &d->t[d->vouch] : NULL;
    h = w != NULL && w->reachable ? kp__held_find(w, v) : NULL;
    if (h != NULL)
        return strcmp(h->fpr, fpr) == 0;
    return kp__version_holders(d, v, fpr) * 2 > d->n;
}

/* The reference fingerprint of v: the confirmed one, else the one most reachable stores hold
 * (the first such in failover order). */
static const char *s_reference(const kp__discovery *d, uint32_t v)
{
    const char *best = NULL;
    size_t most = 0;
    for (size_t i = 0; i < d->n; i++) {
        const kp__held *h = d->t[i].reachable ? kp__held_find(&d->t[i], v) : NULL;
        if (h == NULL)
            continue;
        if (kp__version_confirmed(d, v, h->fpr))
            return h->fpr;
        size_t n = kp__version_holders(d, v, h->fpr);
        if (n > most) {
            most = n;
            best = h->fpr;
        }
    }
    return best;
}

size_t kp__versions(const kp__discovery *d, uint32_t *versions, const char **fprs, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++) {
        for (size_t k = 0; d->t[i].reachable && k < d->t[i].nheld; k++) {
            uint32_t v = d->t[i].held[k].version;
            bool seen = false;
            for (size_t j = 0; j < n && !seen; j++)
                seen = versions[j] == v;
            if (seen || n == max)
                continue;
            /* insertion keeps the list ascending */
            size_t at = n;
            while (at > 0 && versions[at - 1] > v) {
                versions[at] = versions[at - 1];
                fprs[at] = fprs[at - 1];
                at--;
            }
            versions[at] = v;
            fprs[at] = s_reference(d, v);
            n++;
        }
    }
    return n;
}
