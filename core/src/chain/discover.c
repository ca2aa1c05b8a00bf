/*
 * Discovery: what every keystore of a chain holds right now (and, through secret_replica.c,
 * its secret replicas). State lives in the providers, so this is the chain layer's only source
 * of truth.
 */
#include <stdlib.h>
#include <string.h>

#include "chain/secret_replica.h"
#include "chain/state.h"

static kp_status s_add(void *arg, const kp_key_info *info)
{
    kp__held *h = kp__held_add(arg, info->version);
    if (h == NULL)
        return KP_ERR_NOMEM;
    memcpy(h->fpr, info->fingerprint, KPK_FPR_HEX);
    h->bits = info->bits;
    h->flags = info->flags;
    h->created = info->created;
    memcpy(h->backend_id, info->backend_id, sizeof(h->backend_id));
    h->backend_id[sizeof(h->backend_id) - 1] = '\0';
    memcpy(h->gap, info->gap, sizeof(h->gap));
    h->gap[sizeof(h->gap) - 1] = '\0';
    return KP_OK;
}

kp_status kp__discover(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *chain,
                       kp__discovery *d)
{
    memset(d, 0, sizeof(*d));
    d->chain = chain;
    d->ctx = ctx;
    d->vouch = KP_MAX_TARGETS;
    const char *names[KP_MAX_TARGETS];
    d->n = kp__chain_keystores(policy, chain, names, KP_MAX_TARGETS);
    for (size_t i = 0; i < d->n; i++) {
        kp__target *t = &d->t[i];
        t->name = names[i];
        if (strcmp(names[i], chain->origin) == 0)
            d->origin = i;
        kp_status st = kp__instance_borrow(ctx, policy, t->name, &t->inst);
        if (st == KP_OK) {
            st = kp_key_list(t->inst, chain->name, s_add, t);
            if (st == KP_ERR_NOT_FOUND)
                st = KP_OK; /* holds nothing of this chain yet */
        }
        KP_GUARD(kp__target_answered(ctx, t, st));
        t->keeps_state = t->reachable && kp__inst_state_kept(t->inst);
    }
    kp__clear_error(ctx);
    return kp__secret_discover(ctx, policy, d);
}

kp_status kp__discover_certs(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *chain,
                             kp__discovery *d)
{
    KP_GUARD(kp__discover(ctx, policy, chain, d));
    return kp__certs_discover(ctx, d);
}

void kp__discovery_vouch(kp__discovery *d, const char *name)
{
    d->vouch = d->n;
    for (size_t i = 0; name != NULL && i < d->n; i++)
        if (strcmp(d->t[i].name, name) == 0)
            d->vouch = i;
}

void kp__discovery_clear(kp__discovery *d)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->t[i].inst != NULL)
            kp__instance_return(d->ctx, d->t[i].inst);
        for (size_t k = 0; k < d->t[i].nheld; k++)
            free(d->t[i].held[k].cert);
        free(d->t[i].held);
    }
    memset(d, 0, sizeof(*d));
}
