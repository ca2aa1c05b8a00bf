/*
 * What every chain operation starts from: the chain a name means, the keystores holding its
 * protector in failover order, and the fingerprint that names a protector version.
 */
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "chain/chain.h"

kp_status kp_fingerprint_spki(const uint8_t *spki, size_t len, char hex[KPK_FPR_HEX])
{
    return kpk_fpr_spki(spki, len, hex);
}

kp_status kp__chain_get(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                        const kp_chain_policy **out)
{
    *out = kp_policy_chain(policy, chain);
    if (*out == NULL)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND, "no chain '%.64s' in %s", chain,
                             kp_policy_get0_path(policy));
    return KP_OK;
}

/* Keystore instances of a chain in failover order: replicas, then escrow, then the origin,
 * each once. */
size_t kp__chain_keystores(const kp_policy *policy, const kp_chain_policy *c, const char **out,
                           size_t max)
{
    size_t n = 0;
    for (size_t pass = 0; pass < 3; pass++) {
        const char *const *list = pass == 0 ? c->replicas : pass == 1 ? c->escrow : &c->origin;
        size_t count = pass == 0 ? c->nreplicas : pass == 1 ? c->nescrow : 1;
        for (size_t i = 0; i < count && n < max; i++) {
            const kp_pol_instance *pi = kp__policy_instance(policy, list[i]);
            if (pi == NULL || !(pi->described.capabilities & KP_CAP_KEYSTORE))
                continue;
            bool dup = false;
            for (size_t j = 0; j < n; j++)
                dup = dup || strcmp(out[j], list[i]) == 0;
            if (!dup)
                out[n++] = list[i];
        }
    }
    return n;
}
