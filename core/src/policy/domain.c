/*
 * Which keys a store can hold. The rules a chain's protector follows (its spec, and whether a
 * store as it describes itself fits it: one rule for policy validate, check and plan), and what
 * each instance of a policy will be, asked of its plugin from the params alone
 * (PLUGIN_DESCRIBE, PLUGIN_CHECK_KEY): a chain whose protector a store would refuse (RSA-4096
 * in Azure Key Vault for TDE, a name Key Vault cannot spell) is an error of `policy validate`,
 * before anything is created anywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "plugin/plugin.h"
#include "policy/parser.h"

void kp__chain_spec(const kp_chain_policy *c, uint32_t version, kp_key_spec *out)
{
    memset(out, 0, sizeof(*out));
    out->struct_size = sizeof(*out);
    out->name = c->name;
    out->type = c->key_type;
    out->bits = c->bits;
    out->flags = c->exportable ? KP_KEY_EXPORTABLE : 0;
    out->version = version;
}

/* kp__info_fits for the store called name, described in messages as who. */
static kp_status s_fits(const kp_instance_info *info, const kp_chain_policy *chain,
                        const char *name, const char *who, char *why, size_t whylen)
{
    why[0] = '\0';
    if (!(info->capabilities & KP_CAP_KEYSTORE))
        return KP_OK; /* a secret replica holds an encrypted copy, whatever its algorithms */
    uint32_t bit = chain->bits == 2048   ? KP_RSA_2048
                   : chain->bits == 3072 ? KP_RSA_3072
                                         : KP_RSA_4096;
    const char *alg = kp_wrap_alg_name(chain->wrap_alg);
    /* 0 is "not known yet" (PLUGIN_DESCRIBE before open); an opened keystore always says */
    if (info->key_bits != 0 && !(info->key_bits & bit)) {
        snprintf(why, whylen, "%s cannot hold an RSA-%u protector", who, chain->bits);
        return KP_ERR_UNSUPPORTED;
    }
    if (info->unwrap_algs != 0 && !(info->unwrap_algs & KP_ALG_BIT(chain->wrap_alg))) {
        snprintf(why, whylen, "%s cannot unwrap with %s, the algorithm of chain %s", who,
                 alg != NULL ? alg : "the chain's algorithm", chain->name);
        /* a restore source only, as the policy says: holding the key is all it must do */
        if (!kp__chain_restore_only(chain, name))
            return KP_ERR_UNSUPPORTED;
        size_t len = strlen(why);
        snprintf(why + len, whylen - len, "; the chain keeps it restore-only");
    }
    return KP_OK;
}

kp_status kp__info_fits(const kp_instance_info *info, const kp_chain_policy *chain, const char *who,
                        char *why, size_t whylen)
{
    return s_fits(info, chain, who, who, why, whylen);
}

void kp__policy_describe(kp_pol_parser *P, kp_pol_instance *in, yaml_node_t *node)
{
    kp_instance_info *info = &in->described;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    info->capabilities = kp_plugin_get0_info(in->plugin)->capabilities;
    const kp_dispatch *d = kp__plugin_fn(in->plugin, KP_FN_PLUGIN_DESCRIBE);
    kp_param *params = NULL;
    if (d == NULL)
        return; /* the plugin's capabilities stand */
    if (kp__param_view(in, &params) != KP_OK)
        return;
    kp__clear_error(P->ctx);
    kp_status st = kp_dispatch_plugin_describe(d)(in->plugin->plugin_ctx, params, info);
    free(params);
    info->struct_size = sizeof(*info);
    uint32_t all = kp_plugin_get0_info(in->plugin)->capabilities;
    if (st != KP_OK) {
        kp__pdiag(
            P, node, "instance '%s': plugin %s refuses these params: %s", in->name, in->plugin_name,
            kp_ctx_last_error(P->ctx)[0] != '\0' ? kp_ctx_last_error(P->ctx) : kp_strerror(st));
        info->capabilities = all;
    } else if (info->capabilities == 0 || (info->capabilities & ~all) != 0) {
        kp__pdiag(P, node,
                  "instance '%s': plugin %s describes capabilities 0x%x outside its own 0x%x",
                  in->name, in->plugin_name, info->capabilities, all);
        info->capabilities = all;
    }
}

/* One store of a chain that holds the key: can it, by its plugin's rules? */
static void s_check_holder(kp_pol_parser *P, const kp_pol_chain *c, const char *role,
                           const char *name, yaml_node_t *node)
{
    const kp_pol_instance *in = kp__policy_instance(P->pol, name);
    if (in == NULL || !(in->described.capabilities & KP_CAP_KEYSTORE))
        return;
    /* one reason per store: the first rule it breaks */
    char who[KP_NAME_MAX + 96], why[KP_NAME_MAX * 2 + 160];
    snprintf(who, sizeof(who), "%s '%s' (plugin %s)", role, name, in->plugin_name);
    if (s_fits(&in->described, &c->pub, name, who, why, sizeof(why)) != KP_OK) {
        kp__pdiag(P, node, "chain '%s': %s", c->name, why);
        return;
    }
    const kp_dispatch *d = kp__plugin_fn(in->plugin, KP_FN_PLUGIN_CHECK_KEY);
    kp_param *params = NULL;
    if (d == NULL)
        return; /* the plugin has no rule beyond what it described */
    if (kp__param_view(in, &params) != KP_OK)
        return;
    kp_key_spec spec;
    kp__chain_spec(&c->pub, 0, &spec);
    kp__clear_error(P->ctx);
    kp_status st = kp_dispatch_plugin_check_key(d)(in->plugin->plugin_ctx, params, &spec);
    free(params);
    if (st != KP_OK)
        kp__pdiag(P, node, "chain '%s': %s '%s' cannot hold this protector: %s", c->name, role,
                  name,
                  kp_ctx_last_error(P->ctx)[0] != '\0' ? kp_ctx_last_error(P->ctx)
                                                       : "its plugin refuses it without a reason");
}

void kp__policy_check_holders(kp_pol_parser *P, const kp_pol_chain *c, yaml_node_t *node)
{
    /* every store once, in its first role: origin, replica, escrow */
    const char *seen[64] = {NULL};
    size_t nseen = 0;
    size_t n = 1 + c->pub.nreplicas + c->pub.nescrow;
    for (size_t i = 0; i < n; i++) {
        const char *name = i == 0                  ? c->origin
                           : i <= c->pub.nreplicas ? c->replicas[i - 1]
                                                   : c->escrow[i - 1 - c->pub.nreplicas];
        const char *role = i == 0 ? "origin" : i <= c->pub.nreplicas ? "replica" : "escrow";
        bool dup = name == NULL;
        for (size_t j = 0; !dup && j < nseen; j++)
            dup = strcmp(seen[j], name) == 0;
        if (dup)
            continue;
        if (nseen < sizeof(seen) / sizeof(seen[0]))
            seen[nseen++] = name;
        s_check_holder(P, c, role, name, node);
    }
}
