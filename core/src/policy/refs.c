/*
 * A chain's references to provider instances (its origin, replicas, escrow, secret store, the
 * vaults its Azure SQL servers read): resolved against the policy's instances and checked to
 * offer what the chain needs, with a did-you-mean hint for a name the policy does not have. Both
 * chains.c and azure_sql.c resolve through it.
 */
#include <string.h>

#include "policy/parser.h"

bool kp__chain_copy_holder(const kp_pol_chain *c, const char *name)
{
    for (size_t i = 0; i < c->pub.nreplicas; i++)
        if (c->replicas[i] != NULL && strcmp(c->replicas[i], name) == 0)
            return true;
    for (size_t i = 0; i < c->pub.nescrow; i++)
        if (c->escrow[i] != NULL && strcmp(c->escrow[i], name) == 0)
            return true;
    return false;
}

const kp_pol_instance *kp__chain_ref(kp_pol_parser *P, const char *chain, yaml_node_t *n,
                                     const char *role, uint32_t caps, const char *capname)
{
    const char *v = kp__yscalar(n);
    if (v == NULL) {
        kp__pdiag(P, n, "chain '%s': %s must be an instance name", chain, role);
        return NULL;
    }
    const kp_pol_instance *in = kp__policy_instance(P->pol, v);
    if (in == NULL && kp__policy_unusable(P, v))
        return NULL;
    if (in == NULL) {
        const char *names[KP__YMAP_MAX];
        size_t nnames = 0;
        for (size_t i = 0; !kp__diag_full(P->diags) && i < P->pol->ninstances; i++)
            names[nnames++] = P->pol->instances[i].name;
        char hint[96];
        kp__pdiag(P, n, "chain '%s': %s '%.64s' is not a provider instance of this policy%s", chain,
                  role, v, kp__diag_hint(P->diags, hint, sizeof(hint), v, names, nnames));
        return NULL;
    }
    if ((in->described.capabilities & caps) == 0) {
        kp__pdiag(P, n, "chain '%s': %s '%s' (plugin %s) is not a %s", chain, role, v,
                  in->plugin_name, capname);
        return NULL;
    }
    return in;
}
