/*
 * The loaded policy: freeing it, and how the other layers read it (the public accessors of
 * policy.h, the resolved view of an instance, found by name through a sorted index, a chain's
 * restore-only stores).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "policy/model.h"

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

void kp_policy_free(kp_policy *pol)
{
    if (pol == NULL)
        return;
    for (size_t i = 0; i < pol->ninstances; i++) {
        kp_pol_instance *in = &pol->instances[i];
        for (size_t j = 0; j < in->nparams; j++) {
            free(in->params[j].name);
            free(in->params[j].value);
        }
        free(in->params);
        free(in->name);
        free(in->plugin_name);
    }
    free(pol->by_name);
    free(pol->instances);
    for (size_t i = 0; i < pol->nchains; i++) {
        kp_pol_chain *c = &pol->chains[i];
        free(c->name);
        free(c->origin);
        s_strv_free(c->replicas, c->pub.nreplicas);
        s_strv_free(c->escrow, c->pub.nescrow);
        s_strv_free(c->secret_replicas, c->pub.nsecret_replicas);
        s_strv_free(c->restore_only, c->nrestore_only);
        free(c->secrets);
        for (size_t j = 0; c->azure_sql != NULL && j < c->pub.nazure_sql; j++) {
            free(c->azure_sql[j].server);
            free(c->azure_sql[j].resource_group);
            free(c->azure_sql[j].subscription);
            free(c->azure_sql[j].vault);
        }
        free(c->azure_sql);
        free(c->azure_view);
        free(c->cert_subject);
        kp__policy_free_sqlserver(c);
    }
    free(pol->chains);
    free(pol->path);
    free(pol->dir);
    free(pol);
}

static int s_by_name(const void *a, const void *b)
{
    return strcmp((*(const kp_pol_instance *const *)a)->name,
                  (*(const kp_pol_instance *const *)b)->name);
}

void kp__policy_index(kp_policy *pol)
{
    free(pol->by_name);
    pol->by_name = pol->ninstances > 0 ? calloc(pol->ninstances, sizeof(*pol->by_name)) : NULL;
    for (size_t i = 0; pol->by_name != NULL && i < pol->ninstances; i++)
        pol->by_name[i] = &pol->instances[i];
    if (pol->by_name != NULL)
        qsort(pol->by_name, pol->ninstances, sizeof(*pol->by_name), s_by_name);
}

const kp_pol_instance *kp__policy_instance(const kp_policy *pol, const char *name)
{
    if (pol == NULL || name == NULL)
        return NULL;
    if (pol->by_name != NULL) {
        kp_pol_instance key = {.name = (char *)name};
        const kp_pol_instance *k = &key;
        const kp_pol_instance **hit =
            bsearch(&k, pol->by_name, pol->ninstances, sizeof(*pol->by_name), s_by_name);
        return hit != NULL ? *hit : NULL;
    }
    for (size_t i = 0; i < pol->ninstances; i++)
        if (strcmp(pol->instances[i].name, name) == 0)
            return &pol->instances[i];
    return NULL;
}

kp_status kp__param_view(const kp_pol_instance *pi, kp_param **out)
{
    kp_param *params = calloc(pi->nparams + 1, sizeof(*params));
    if (params == NULL)
        return KP_ERR_NOMEM;
    for (size_t i = 0; i < pi->nparams; i++) {
        const kp_pol_param *pp = &pi->params[i];
        kp_param *p = &params[i];
        p->name = pp->name;
        p->type = pp->type;
        p->str = pp->value;
        if (pp->type == KP_PARAM_INT)
            p->num = strtoll(pp->value, NULL, 10);
        else if (pp->type == KP_PARAM_BOOL)
            p->num = strcmp(pp->value, "true") == 0; /* params.c keeps "true" or "false" */
    }
    *out = params;
    return KP_OK;
}

uint64_t kp__policy_id(const kp_policy *pol)
{
    return pol != NULL ? pol->id : 0;
}

const char *kp_policy_get0_path(const kp_policy *pol)
{
    return pol != NULL ? pol->path : NULL;
}

size_t kp_policy_instance_count(const kp_policy *pol)
{
    return pol != NULL ? pol->ninstances : 0;
}

const char *kp_policy_instance_name(const kp_policy *pol, size_t i)
{
    return pol != NULL && i < pol->ninstances ? pol->instances[i].name : NULL;
}

const char *kp_policy_instance_plugin(const kp_policy *pol, const char *instance)
{
    const kp_pol_instance *in = kp__policy_instance(pol, instance);
    return in != NULL ? in->plugin_name : NULL;
}

uint32_t kp_policy_instance_capabilities(const kp_policy *pol, const char *instance)
{
    const kp_pol_instance *in =
        pol != NULL && instance != NULL ? kp__policy_instance(pol, instance) : NULL;
    return in != NULL ? in->described.capabilities : 0;
}

size_t kp_policy_chain_count(const kp_policy *pol)
{
    return pol != NULL ? pol->nchains : 0;
}

const kp_chain_policy *kp_policy_chain_at(const kp_policy *pol, size_t i)
{
    return pol != NULL && i < pol->nchains ? &pol->chains[i].pub : NULL;
}

const kp_chain_policy *kp_policy_chain(const kp_policy *pol, const char *name)
{
    for (size_t i = 0; pol != NULL && name != NULL && i < pol->nchains; i++)
        if (strcmp(pol->chains[i].name, name) == 0)
            return &pol->chains[i].pub;
    return NULL;
}

bool kp__chain_restore_only(const kp_chain_policy *c, const char *store)
{
    /* every kp_chain_policy the policy layer hands out is the pub member of a kp_pol_chain */
    const kp_pol_chain *pc =
        c != NULL
            ? (const kp_pol_chain *)(const void *)((const char *)c - offsetof(kp_pol_chain, pub))
            : NULL;
    for (size_t i = 0; pc != NULL && store != NULL && i < pc->nrestore_only; i++)
        if (pc->restore_only[i] != NULL && strcmp(pc->restore_only[i], store) == 0)
            return true;
    return false;
}
