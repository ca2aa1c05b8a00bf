/*
 * Provider instances: opening one hands its plugin the validated params (secrets resolved);
 * every operation goes through here so that the core audits it, whatever the plugin does.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
            p->num = strcmp(pp->value, "true") == 0 || strcmp(pp->value, "yes") == 0 ||
                     strcmp(pp->value, "on") == 0;
        else if (pp->type == KP_PARAM_SECRET) {
            kp_secret *s = NULL;
            char err[KP_ERRBUF];
            kp_status st =
                kp_secret_read_source(pp->value, KP_SECRET_PARAM_MAX, 1, &s, err, sizeof(err));
            if (st != KP_OK) {
                s_free_params(params, i);
                return kp__set_error(ctx, st == KP_ERR_NOT_FOUND ? KP_ERR_AUTH : st,
                                     "instance '%s': parameter '%s': %s", pi->name, pp->name, err);
            }
            p->secret = s;
        }
    }
    *out = params;
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
    if (inst == NULL)
        return KP_ERR_NOMEM;
    inst->ctx = ctx;
    inst->plugin = pi->plugin;
    inst->name = kp__strdup(name);
    inst->handle.ctx = ctx;
    inst->handle.who = inst->name;
    if (inst->name == NULL) {
        free(inst);
        return KP_ERR_NOMEM;
    }
    kp_param *params = NULL;
    kp_status st = s_build_params(ctx, pi, &params);
    if (st == KP_OK) {
        kp__clear_error(ctx);
        st = kp_dispatch_instance_open(kp__plugin_fn(pi->plugin, KP_FN_INSTANCE_OPEN))(
            pi->plugin->plugin_ctx, &inst->handle, params, &inst->inst);
        s_free_params(params, pi->nparams);
        if (st != KP_OK && kp_ctx_last_error(ctx)[0] == '\0')
            kp__set_error(ctx, st, "%s: cannot open instance: %s", name, kp_strerror(st));
    }
    if (st != KP_OK) {
        free(inst->name);
        free(inst);
        return st;
    }
    __atomic_fetch_add(&pi->plugin->open_instances, 1, __ATOMIC_RELAXED);
    *out = inst;
    return KP_OK;
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
    return inst != NULL ? inst->plugin->info->capabilities : 0;
}

kp_status kp_instance_check(kp_instance *inst, kp_check_report_fn report, void *arg)
{
    KP_ENSURE(inst != NULL && report != NULL, KP_ERR_INVALID_ARG);
    kp__clear_error(inst->ctx);
    kp_status st = kp_dispatch_instance_check(kp__plugin_fn(inst->plugin, KP_FN_INSTANCE_CHECK))(
        inst->inst, report, arg);
    kp_audit_event ev = {.op = "check",
                         .instance = inst->name,
                         .plugin = inst->plugin->name,
                         .status = st,
                         .detail = kp_ctx_last_error(inst->ctx)};
    kp__audit(inst->ctx, &ev);
    return st;
}

/* ---- keystore --------------------------------------------------------------------------- */

/* The function id of an operation, or KP_ERR_UNSUPPORTED with a reason naming the instance. */
static kp_status s_fn(kp_instance *inst, uint32_t cap, uint32_t id, const char *op,
                      const kp_dispatch **d)
{
    KP_ENSURE(inst != NULL, KP_ERR_INVALID_ARG);
    kp__clear_error(inst->ctx);
    if ((inst->plugin->info->capabilities & cap) == 0 ||
        (*d = kp__plugin_fn(inst->plugin, id)) == NULL)
        return kp__set_error(inst->ctx, KP_ERR_UNSUPPORTED, "%s: plugin %s does not support %s",
                             inst->name, inst->plugin->name, op);
    return KP_OK;
}

static kp_status s_audit(kp_instance *inst, const char *op, const char *name, uint32_t version,
                         uint32_t alg, kp_status st)
{
    if (st == KP_OK)
        kp__clear_error(inst->ctx); /* a plugin may have said "buffer too small" on the way */
    else if (kp_ctx_last_error(inst->ctx)[0] == '\0')
        kp__set_error(inst->ctx, st, "%s: %s failed: %s", inst->name, op, kp_strerror(st));
    kp_audit_event ev = {.op = op,
                         .instance = inst->name,
                         .plugin = inst->plugin->name,
                         .name = name,
                         .version = version,
                         .alg = alg != 0 ? kp_wrap_alg_name(alg) : NULL,
                         .status = st,
                         .detail = st != KP_OK ? kp_ctx_last_error(inst->ctx) : NULL};
    kp__audit(inst->ctx, &ev);
    return st;
}

kp_status kp_key_create(kp_instance *inst, const kp_key_spec *spec, kp_key_info *info)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(spec != NULL && info != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_CREATE, "key creation", &d));
    memset(info, 0, sizeof(*info));
    kp_status st = kp_dispatch_ks_create(d)(inst->inst, spec, info);
    return s_audit(inst, "key.create", spec->name, st == KP_OK ? info->version : spec->version, 0,
                   st);
}

kp_status kp_key_import(kp_instance *inst, const kp_key_spec *spec, const kp_secret *pkcs8_der,
                        kp_key_info *info)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(spec != NULL && pkcs8_der != NULL && info != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_IMPORT, "key import", &d));
    memset(info, 0, sizeof(*info));
    kp_status st = kp_dispatch_ks_import(d)(inst->inst, spec, pkcs8_der, info);
    return s_audit(inst, "key.import", spec->name, st == KP_OK ? info->version : spec->version, 0,
                   st);
}

kp_status kp_key_get_public(kp_instance *inst, const char *name, uint32_t version, uint8_t **spki,
                            size_t *len)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && spki != NULL && len != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_GET_PUBLIC, "public key export", &d));
    *spki = NULL;
    size_t need = 0;
    kp_status st = kp_dispatch_ks_get_public(d)(inst->inst, name, version, NULL, &need);
    if (st == KP_ERR_BUFFER_TOO_SMALL || (st == KP_OK && need > 0)) {
        uint8_t *buf = malloc(need);
        if (buf == NULL)
            return KP_ERR_NOMEM;
        st = kp_dispatch_ks_get_public(d)(inst->inst, name, version, buf, &need);
        if (st == KP_OK) {
            *spki = buf;
            *len = need;
        } else {
            free(buf);
        }
    } else if (st == KP_OK) {
        st = kp__set_error(inst->ctx, KP_ERR_INTERNAL, "%s: plugin returned an empty public key",
                           inst->name);
    }
    return s_audit(inst, "key.public", name, version, 0, st);
}

kp_status kp_key_list(kp_instance *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(visit != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_LIST, "key listing", &d));
    return kp_dispatch_ks_list(d)(inst->inst, name, visit, arg);
}

struct s_find {
    uint32_t version;
    kp_key_info *info;
    bool found;
};

static kp_status s_find_visit(void *arg, const kp_key_info *info)
{
    struct s_find *f = arg;
    if (f->version == 0 || info->version == f->version) {
        if (!f->found || info->version > f->info->version)
            *f->info = *info;
        f->found = true;
    }
    return KP_OK;
}

kp_status kp_key_info_get(kp_instance *inst, const char *name, uint32_t version, kp_key_info *info)
{
    KP_ENSURE(name != NULL && info != NULL, KP_ERR_INVALID_ARG);
    struct s_find f = {version, info, false};
    kp_status st = kp_key_list(inst, name, s_find_visit, &f);
    if (st == KP_OK && !f.found)
        st = KP_ERR_NOT_FOUND;
    if (st == KP_ERR_NOT_FOUND) {
        /* keep what the plugin said beyond "not found" (where it looked; a soft-deleted key) */
        char why[KP_ERRBUF];
        snprintf(why, sizeof(why), "%s", kp_ctx_last_error(inst->ctx));
        return kp__set_error(inst->ctx, st, "%s: no key %s%s%.0u%s%s%s", inst->name, name,
                             version != 0 ? " v" : "", version, why[0] != '\0' ? " (" : "", why,
                             why[0] != '\0' ? ")" : "");
    }
    return st;
}

/* One call of a plugin function that fills a caller buffer (the GET_PUBLIC convention). */
typedef kp_status (*s_fill_fn)(const kp_dispatch *d, void *inst, const void *args, uint8_t *buf,
                               size_t *len);

/* Calls fill with a first buffer of first bytes and once more with the size the plugin asks
 * for; *out receives the malloc'd result. */
static kp_status s_fill(const kp_dispatch *d, void *inst, s_fill_fn fill, const void *args,
                        size_t first, uint8_t **out, size_t *outlen)
{
    uint8_t *buf = malloc(first);
    if (buf == NULL)
        return KP_ERR_NOMEM;
    size_t len = first;
    kp_status st = fill(d, inst, args, buf, &len);
    if (st == KP_ERR_BUFFER_TOO_SMALL && len > first) {
        uint8_t *bigger = realloc(buf, len);
        if (bigger == NULL) {
            free(buf);
            return KP_ERR_NOMEM;
        }
        buf = bigger;
        st = fill(d, inst, args, buf, &len);
    }
    if (st == KP_OK) {
        *out = buf;
        *outlen = len;
    } else {
        free(buf);
    }
    return st;
}

typedef struct s_wrap_args {
    const char *name;
    uint32_t version, alg;
    const kp_secret *dek;
} s_wrap_args;

static kp_status s_wrap_fill(const kp_dispatch *d, void *inst, const void *args, uint8_t *buf,
                             size_t *len)
{
    const s_wrap_args *a = args;
    return kp_dispatch_ks_wrap(d)(inst, a->name, a->version, a->alg, a->dek, buf, len);
}

kp_status kp_key_wrap(kp_instance *inst, const char *name, uint32_t version, uint32_t alg,
                      const kp_secret *dek, uint8_t **out, size_t *outlen)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && dek != NULL && out != NULL && outlen != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_WRAP, "wrap", &d));
    *out = NULL;
    /* 1 KiB fits RSA-8192 and any AES wrap of a DEK. */
    s_wrap_args a = {name, version, alg, dek};
    kp_status st = s_fill(d, inst->inst, s_wrap_fill, &a, 1024, out, outlen);
    return s_audit(inst, "key.wrap", name, version, alg, st);
}

kp_status kp_key_unwrap(kp_instance *inst, const char *name, uint32_t version, uint32_t alg,
                        const uint8_t *in, size_t inlen, kp_secret **dek)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && in != NULL && dek != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_UNWRAP, "unwrap", &d));
    *dek = NULL;
    kp_status st = kp_dispatch_ks_unwrap(d)(inst->inst, name, version, alg, in, inlen, dek);
    if (st == KP_OK && *dek == NULL)
        st = kp__set_error(inst->ctx, KP_ERR_INTERNAL, "%s: plugin returned no key", inst->name);
    if (st != KP_OK) {
        kp_secret_free(*dek);
        *dek = NULL;
    }
    return s_audit(inst, "key.unwrap", name, version, alg, st);
}

kp_status kp_key_export(kp_instance *inst, const char *name, uint32_t version,
                        kp_secret **pkcs8_der)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && pkcs8_der != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_EXPORT, "key export", &d));
    *pkcs8_der = NULL;
    kp_status st = kp_dispatch_ks_export(d)(inst->inst, name, version, pkcs8_der);
    if (st != KP_OK) {
        kp_secret_free(*pkcs8_der);
        *pkcs8_der = NULL;
    }
    return s_audit(inst, "key.export", name, version, 0, st);
}

typedef struct s_byok_args {
    const char *name;
    uint32_t version;
    const uint8_t *kek;
    size_t keklen;
} s_byok_args;

static kp_status s_byok_fill(const kp_dispatch *d, void *inst, const void *args, uint8_t *buf,
                             size_t *len)
{
    const s_byok_args *a = args;
    return kp_dispatch_ks_export_byok(d)(inst, a->name, a->version, a->kek, a->keklen, buf, len);
}

kp_status kp_key_export_byok(kp_instance *inst, const char *name, uint32_t version,
                             const uint8_t *kek_spki, size_t kek_len, uint8_t **blob,
                             size_t *bloblen)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && kek_spki != NULL && kek_len > 0 && blob != NULL && bloblen != NULL,
              KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_EXPORT_BYOK, "BYOK export", &d));
    *blob = NULL;
    /* An RSA-4096 KEK wraps the AES key into 512 bytes; PKCS#8 of RSA-4096 is under 2.5 KiB. */
    s_byok_args a = {name, version, kek_spki, kek_len};
    kp_status st = s_fill(d, inst->inst, s_byok_fill, &a, 8192, blob, bloblen);
    return s_audit(inst, "key.export_byok", name, version, 0, st);
}

static kp_status s_kek_fill(const kp_dispatch *d, void *inst, const void *args, uint8_t *buf,
                            size_t *len)
{
    const struct {
        const char *name;
        char *kek_id;
    } *a = args;
    return kp_dispatch_ks_byok_kek(d)(inst, a->name, buf, len, a->kek_id);
}

kp_status kp_key_byok_kek(kp_instance *inst, const char *name, uint8_t **kek_spki, size_t *len,
                          char kek_id[KP_BACKEND_ID_MAX])
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && kek_spki != NULL && len != NULL && kek_id != NULL,
              KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_BYOK_KEK, "BYOK import", &d));
    *kek_spki = NULL;
    kek_id[0] = '\0';
    struct {
        const char *name;
        char *kek_id;
    } a = {name, kek_id};
    kp_status st = s_fill(d, inst->inst, s_kek_fill, &a, 1024, kek_spki, len);
    if (st == KP_OK && memchr(kek_id, '\0', KP_BACKEND_ID_MAX) == NULL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: the plugin returned an unterminated KEK id", inst->name);
    return s_audit(inst, "key.byok_kek", name, 0, 0, st);
}

kp_status kp_key_import_byok(kp_instance *inst, const kp_key_spec *spec, const char *kek_id,
                             const uint8_t *blob, size_t bloblen, const char *fingerprint,
                             kp_key_info *info)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(spec != NULL && kek_id != NULL && blob != NULL && fingerprint != NULL && info != NULL,
              KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_IMPORT_BYOK, "BYOK import", &d));
    memset(info, 0, sizeof(*info));
    kp_status st =
        kp_dispatch_ks_import_byok(d)(inst->inst, spec, kek_id, blob, bloblen, fingerprint, info);
    return s_audit(inst, "key.import_byok", spec->name, st == KP_OK ? info->version : spec->version,
                   0, st);
}

bool kp_key_can_byok(const kp_instance *src, const kp_instance *dst)
{
    return src != NULL && dst != NULL && kp__plugin_fn(src->plugin, KP_FN_KS_EXPORT_BYOK) != NULL &&
           kp__plugin_fn(dst->plugin, KP_FN_KS_BYOK_KEK) != NULL &&
           kp__plugin_fn(dst->plugin, KP_FN_KS_IMPORT_BYOK) != NULL;
}

kp_status kp_key_backup(kp_instance *inst, const char *name, kp_secret **blob)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && blob != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_BACKUP, "provider backup", &d));
    *blob = NULL;
    kp_status st = kp_dispatch_ks_backup(d)(inst->inst, name, blob);
    if (st == KP_OK && *blob == NULL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: the plugin returned no backup",
                           inst->name);
    if (st != KP_OK) {
        kp_secret_free(*blob);
        *blob = NULL;
    }
    return s_audit(inst, "key.backup", name, 0, 0, st);
}

kp_status kp_key_restore_backup(kp_instance *inst, const kp_secret *blob, char name[KP_NAME_MAX])
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(blob != NULL && name != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_RESTORE, "provider restore", &d));
    name[0] = '\0';
    kp_status st = kp_dispatch_ks_restore(d)(inst->inst, blob, name);
    if (st == KP_OK && memchr(name, '\0', KP_NAME_MAX) == NULL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: the plugin returned an unterminated name",
                           inst->name);
    return s_audit(inst, "key.restore", st == KP_OK ? name : "?", 0, 0, st);
}

/* ---- secret store ----------------------------------------------------------------------- */

kp_status kp_store_put(kp_instance *inst, const char *name, const kp_secret *value,
                       const kp_meta *meta, size_t nmeta, uint32_t *version)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && value != NULL && version != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_SECRETSTORE, KP_FN_SS_PUT, "secret storage", &d));
    *version = 0;
    kp_status st = kp_dispatch_ss_put(d)(inst->inst, name, value, meta, nmeta, version);
    return s_audit(inst, "secret.put", name, *version, 0, st);
}

kp_status kp_store_get(kp_instance *inst, const char *name, uint32_t version, kp_secret **value,
                       kp_secret_visit_fn visit, void *arg)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && value != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_SECRETSTORE, KP_FN_SS_GET, "secret retrieval", &d));
    *value = NULL;
    kp_status st = kp_dispatch_ss_get(d)(inst->inst, name, version, value, visit, arg);
    if (st != KP_OK) {
        kp_secret_free(*value);
        *value = NULL;
    }
    return s_audit(inst, "secret.get", name, version, 0, st);
}

kp_status kp_store_list(kp_instance *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(visit != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_CAP_SECRETSTORE, KP_FN_SS_LIST, "secret listing", &d));
    return kp_dispatch_ss_list(d)(inst->inst, name, visit, arg);
}
