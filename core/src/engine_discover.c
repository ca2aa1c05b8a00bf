/*
 * Discovery: what every keystore of a chain holds right now. State lives in the providers, so
 * this is the engine's only source of truth.
 */
#include <stdlib.h>
#include <string.h>

#include "chain_state.h"

static kp_status s_add(void *arg, const kp_key_info *info)
{
    kp__target *t = arg;
    if (t->nheld == t->cap) {
        size_t cap = t->cap == 0 ? 8 : t->cap * 2;
        kp__held *h = realloc(t->held, cap * sizeof(*h));
        if (h == NULL)
            return KP_ERR_NOMEM;
        t->held = h;
        t->cap = cap;
    }
    kp__held *h = &t->held[t->nheld++];
    h->version = info->version;
    memcpy(h->fpr, info->fingerprint, KPK_FPR_HEX);
    h->bits = info->bits;
    h->flags = info->flags;
    h->created = info->created;
    return KP_OK;
}

kp_status kp__discover(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *chain,
                       kp__discovery *d)
{
    memset(d, 0, sizeof(*d));
    d->chain = chain;
    const char *names[KP_MAX_TARGETS];
    d->n = kp__chain_keystores(policy, chain, names, KP_MAX_TARGETS);
    for (size_t i = 0; i < d->n; i++) {
        kp__target *t = &d->t[i];
        t->name = names[i];
        if (strcmp(names[i], chain->origin) == 0)
            d->origin = i;
        kp_status st = kp_instance_open(ctx, policy, t->name, &t->inst);
        if (st == KP_OK) {
            st = kp_key_list(t->inst, chain->name, s_add, t);
            if (st == KP_ERR_NOT_FOUND)
                st = KP_OK; /* holds nothing of this chain yet */
        }
        if (st == KP_ERR_NOMEM)
            return st;
        t->reachable = st == KP_OK;
        t->status = st;
        if (st != KP_OK) {
            snprintf(t->detail, sizeof(t->detail), "%s", kp_ctx_last_error(ctx));
            t->nheld = 0;
        } else {
            t->state_serial = kp__state_serial(t->inst, chain->name, &t->keeps_state);
        }
    }
    kp__clear_error(ctx);
    return kp__secret_discover(ctx, policy, d);
}

void kp__discovery_clear(kp__discovery *d)
{
    for (size_t i = 0; i < d->n; i++) {
        kp_instance_close(d->t[i].inst);
        free(d->t[i].held);
    }
    memset(d, 0, sizeof(*d));
}

const kp__held *kp__held_find(const kp__target *t, uint32_t version)
{
    for (size_t i = 0; i < t->nheld; i++)
        if (t->held[i].version == version)
            return &t->held[i];
    return NULL;
}

size_t kp__versions(const kp__discovery *d, uint32_t *versions, const char **fprs, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->t[i].secret)
            continue; /* versions come from keystores; secret copies follow them */
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
            const kp__held *o = kp__held_find(&d->t[d->origin], v);
            fprs[at] = o != NULL && d->t[d->origin].reachable ? o->fpr : d->t[i].held[k].fpr;
            n++;
        }
    }
    return n;
}
