/*
 * Provider instances: opening one hands its plugin the validated params (secrets resolved);
 * every operation goes through here so that the core audits it, whatever the plugin does.
 */
#include <stdlib.h>
#include <string.h>

#include "base/audit.h"
#include "base/util.h"
#include "instance/call.h"
#include "policy/policy.h"

#define KP_SECRET_PARAM_MAX (64 * 1024)

static void s_free_params(kp_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kp_secret_free((kp_secret *)params[i].secret);
    free(params);
}

/* Builds the ABI view of an instance's params; SECRET params are read now, so a missing
 * environment variable is reported by name before the plugin runs. */
static kp_status s_build_params(kp_ctx *ctx, const kp_pol_instance *pi, kp_param **out)
{
    kp_param *params = NULL;
    KP_GUARD(kp__param_view(pi, &params));
    kp_status st = KP_OK;
    for (size_t i = 0; st == KP_OK && i < pi->nparams; i++) {
        const kp_pol_param *pp = &pi->params[i];
        if (pp->type != KP_PARAM_SECRET)
            continue;
        kp_secret *s = NULL;
        char err[KP_ERRBUF];
        st = kp_secret_read_source(pp->value, KP_SECRET_PARAM_MAX, 1, &s, err, sizeof(err));
        if (st != KP_OK)
            st = kp__set_error(ctx, st == KP_ERR_NOT_FOUND ? KP_ERR_AUTH : st,
                               "instance '%s': parameter '%s': %s", pi->name, pp->name, err);
        params[i].secret = s;
    }
    if (st == KP_OK)
        *out = params;
    else
        s_free_params(params, pi->nparams);
    return st;
}

/* Asks the instance what it is (INSTANCE_INFO) and holds it to the plugin's word: an instance
 * may narrow its plugin's capabilities, never widen them. */
static kp_status s_info(kp_instance *inst)
{
    kp_instance_info *info = &inst->info;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    kp__clear_error(inst->ctx);
    kp_status st = kp_dispatch_instance_info(kp__plugin_fn(inst->plugin, KP_FN_INSTANCE_INFO))(
        inst->inst, info);
    info->struct_size = sizeof(*info);
    if (st != KP_OK) {
        if (kp_ctx_last_error(inst->ctx)[0] == '\0')
            kp__set_error(inst->ctx, st, "%s: INSTANCE_INFO failed: %s", inst->name,
                          kp_strerror(st));
        return st;
    }
    uint32_t caps = info->capabilities;
    if (caps == 0 || (caps & ~inst->plugin->info->capabilities) != 0)
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s declares instance capabilities 0x%x outside its "
                             "own 0x%x",
                             inst->name, inst->plugin->name, caps,
                             inst->plugin->info->capabilities);
    const uint32_t algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256) |
                          KP_ALG_BIT(KP_WRAP_RSA_PKCS1) | KP_ALG_BIT(KP_WRAP_AES_KW) |
                          KP_ALG_BIT(KP_WRAP_AES_KWP);
    const uint32_t keyx = KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1) |
                          KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256) |
                          KP_KEYX_BIT(KP_KEYX_RSA_OAEP_SHA1) | KP_KEYX_BIT(KP_KEYX_RSA_OAEP_SHA256);
    if ((info->unwrap_algs & ~algs) ||
        (info->key_bits & ~(KP_RSA_2048 | KP_RSA_3072 | KP_RSA_4096)) ||
        ((info->export_keyx | info->import_keyx) & ~keyx) ||
        (info->flags & ~(KP_INST_STATE_CAS | KP_INST_NO_EXPORT | KP_INST_CERTS | KP_INST_OBJECTS)))
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s declares unknown algorithm, size, method or flag bits",
                             inst->name, inst->plugin->name);
    if ((caps & KP_CAP_KEYSTORE) && info->unwrap_algs == 0)
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s declares a keystore that unwraps with no algorithm",
                             inst->name, inst->plugin->name);
    if ((info->flags & KP_INST_CERTS) &&
        (!(caps & KP_CAP_KEYSTORE) || kp__plugin_fn(inst->plugin, KP_FN_KS_CERT_PUT) == NULL))
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s declares it keeps certificates without a keystore "
                             "with KS_CERT_PUT and KS_CERT_GET",
                             inst->name, inst->plugin->name);
    if ((info->flags & KP_INST_OBJECTS) && (kp__plugin_fn(inst->plugin, KP_FN_OB_CREATE) == NULL ||
                                            kp__plugin_fn(inst->plugin, KP_FN_OB_WRITE) == NULL ||
                                            kp__plugin_fn(inst->plugin, KP_FN_OB_CLOSE) == NULL ||
                                            kp__plugin_fn(inst->plugin, KP_FN_OB_STAT) == NULL ||
                                            kp__plugin_fn(inst->plugin, KP_FN_OB_READ) == NULL))
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s declares objects without all of OB_CREATE, OB_WRITE, "
                             "OB_CLOSE, OB_STAT and OB_READ",
                             inst->name, inst->plugin->name);
    if ((info->wrap_algs & ~info->unwrap_algs) != 0)
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s declares wrap algorithms it cannot unwrap", inst->name,
                             inst->plugin->name);
    return KP_OK;
}

kp_status kp_instance_open(kp_ctx *ctx, const kp_policy *policy, const char *name,
                           kp_instance **out)
{
    KP_ENSURE(ctx != NULL && policy != NULL && name != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    const kp_pol_instance *pi = kp__policy_instance(policy, name);
    if (pi == NULL)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND, "no provider instance '%.64s' in %s", name,
                             kp_policy_get0_path(policy));
    kp_instance *inst = calloc(1, sizeof(*inst));
    KP_ENSURE(inst != NULL, KP_ERR_NOMEM);
    inst->ctx = ctx;
    inst->plugin = pi->plugin;
    inst->name = kp__strdup(name);
    inst->handle.ctx = ctx;
    inst->handle.who = inst->name;
    kp_param *params = NULL;
    kp_status st = inst->name != NULL ? KP_OK : KP_ERR_NOMEM;
    if (st == KP_OK)
        st = s_build_params(ctx, pi, &params);
    if (st == KP_OK) {
        kp__clear_error(ctx);
        st = kp_dispatch_instance_open(kp__plugin_fn(pi->plugin, KP_FN_INSTANCE_OPEN))(
            pi->plugin->plugin_ctx, &inst->handle, params, &inst->inst);
        s_free_params(params, pi->nparams);
        if (st != KP_OK && kp_ctx_last_error(ctx)[0] == '\0')
            kp__set_error(ctx, st, "%s: cannot open instance: %s", name, kp_strerror(st));
        if (st == KP_OK)
            __atomic_fetch_add(&pi->plugin->open_instances, 1, __ATOMIC_RELAXED);
    }
    bool opened = st == KP_OK;
    if (st == KP_OK)
        st = s_info(inst);
    if (st == KP_OK) {
        *out = inst;
    } else if (opened) {
        kp_instance_close(inst);
    } else {
        free(inst->name);
        free(inst);
    }
    return st;
}

void kp_instance_close(kp_instance *inst)
{
    if (inst == NULL)
        return;
    kp_dispatch_instance_close(kp__plugin_fn(inst->plugin, KP_FN_INSTANCE_CLOSE))(inst->inst);
    __atomic_fetch_sub(&inst->plugin->open_instances, 1, __ATOMIC_RELAXED);
    free(inst->name);
    free(inst);
}

const char *kp_instance_name(const kp_instance *inst)
{
    return inst != NULL ? inst->name : NULL;
}

const kp_plugin *kp_instance_plugin(const kp_instance *inst)
{
    return inst != NULL ? inst->plugin : NULL;
}

uint32_t kp_instance_capabilities(const kp_instance *inst)
{
    return inst != NULL ? inst->info.capabilities : 0;
}

const kp_instance_info *kp_instance_get0_info(const kp_instance *inst)
{
    return inst != NULL ? &inst->info : NULL;
}

/* The caller's reporter behind one that keeps each item and detail on one line. */
typedef struct s_report_args {
    kp_check_report_fn report;
    void *arg;
} s_report_args;

static void s_report(void *arg, const char *item, kp_status status, const char *detail)
{
    const s_report_args *a = arg;
    char it[64], de[KP_ERRBUF];
    snprintf(it, sizeof(it), "%s", item != NULL && item[0] != '\0' ? item : "(unnamed item)");
    snprintf(de, sizeof(de), "%s", detail != NULL ? detail : "");
    kp__one_line(it);
    kp__one_line(de);
    a->report(a->arg, it, status, de);
}

kp_status kp_instance_check(kp_instance *inst, kp_check_report_fn report, void *arg)
{
    KP_ENSURE(inst != NULL && report != NULL, KP_ERR_INVALID_ARG);
    kp__clear_error(inst->ctx);
    s_report_args a = {report, arg};
    kp_status st = kp_dispatch_instance_check(kp__plugin_fn(inst->plugin, KP_FN_INSTANCE_CHECK))(
        inst->inst, s_report, &a);
    kp_audit_event ev = {.op = "check",
                         .instance = inst->name,
                         .plugin = inst->plugin->name,
                         .status = st,
                         .detail = kp_ctx_last_error(inst->ctx)};
    kp__audit(inst->ctx, &ev);
    return st;
}

int kp_instance_can_init(const kp_policy *policy, const char *name)
{
    const kp_pol_instance *pi =
        policy != NULL && name != NULL ? kp__policy_instance(policy, name) : NULL;
    return pi != NULL && pi->plugin != NULL &&
           kp__plugin_fn(pi->plugin, KP_FN_INSTANCE_INIT) != NULL;
}

kp_status kp_instance_init(kp_instance *inst)
{
    KP_ENSURE(inst != NULL, KP_ERR_INVALID_ARG);
    kp__clear_error(inst->ctx);
    const kp_dispatch *d = kp__plugin_fn(inst->plugin, KP_FN_INSTANCE_INIT);
    if (d == NULL)
        return kp__set_error(inst->ctx, KP_ERR_UNSUPPORTED,
                             "%s: plugin %s has no store to initialise (its stores exist by "
                             "themselves)",
                             inst->name, inst->plugin->name);
    kp_status st = kp_dispatch_instance_init(d)(inst->inst);
    return kp__inst_audit(inst, "init", NULL, 0, 0, st);
}

kp_status kp_instance_fits_chain(const kp_instance *inst, const kp_chain_policy *chain, char *why,
                                 size_t whylen)
{
    KP_ENSURE(inst != NULL && chain != NULL && why != NULL && whylen > 0, KP_ERR_INVALID_ARG);
    return kp__info_fits(&inst->info, chain, inst->name, why, whylen);
}
