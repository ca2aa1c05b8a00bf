/*
 * Keystore operations on an instance: every call is audited, every answer is held to the ABI
 * (lengths within the buffer offered, well-formed fingerprints, no empty keys), and an import
 * carries the fingerprint the key must have so the store checks it before anyone can see it.
 */
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "instance/call.h"

kp_status kp_key_create(kp_instance *inst, const kp_key_spec *spec, kp_key_info *info)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(spec != NULL && spec->name != NULL && info != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_CREATE, "key creation", &d));
    kp_key_spec sp;
    KP_GUARD(kp__spec_copy(inst, spec, &sp));
    sp.fingerprint = NULL;
    kp__key_info_init(info);
    kp_status st = kp__inst_made(inst, "KS_CREATE", &sp, info,
                                 kp_dispatch_ks_create(d)(inst->inst, &sp, info));
    return kp__inst_audit(inst, "key.create", sp.name, st == KP_OK ? info->version : sp.version, 0,
                          st);
}

kp_status kp_key_import(kp_instance *inst, const kp_key_spec *spec, const kp_secret *pkcs8_der,
                        kp_key_info *info)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(spec != NULL && spec->name != NULL && pkcs8_der != NULL && info != NULL,
              KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_IMPORT, "key import", &d));
    kp_key_spec sp;
    KP_GUARD(kp__spec_copy(inst, spec, &sp));
    KP_ENSURE(sp.fingerprint == NULL || kpk_fpr_valid(sp.fingerprint), KP_ERR_INVALID_ARG);
    kp__key_info_init(info);
    kp_status st = kp__inst_made(inst, "KS_IMPORT", &sp, info,
                                 kp_dispatch_ks_import(d)(inst->inst, &sp, pkcs8_der, info));
    return kp__inst_audit(inst, "key.import", sp.name, st == KP_OK ? info->version : sp.version, 0,
                          st);
}

typedef struct s_pub_args {
    const kp_dispatch *d;
    const char *name;
    uint32_t version;
} s_pub_args;

static kp_status s_pub_fill(kp_instance *inst, const void *args, uint8_t *buf, size_t *len)
{
    const s_pub_args *a = args;
    return kp_dispatch_ks_get_public(a->d)(inst->inst, a->name, a->version, buf, len);
}

kp_status kp_key_get_public(kp_instance *inst, const char *name, uint32_t version, uint8_t **spki,
                            size_t *len)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && spki != NULL && len != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_GET_PUBLIC, "public key export", &d));
    *spki = NULL;
    s_pub_args a = {d, name, version};
    /* 1 KiB holds the SPKI of RSA-4096 and smaller. */
    kp_status st = kp__inst_fill(inst, "KS_GET_PUBLIC", s_pub_fill, &a, 1024, spki, len);
    if (st == KP_OK && *len == 0) {
        kp_free(*spki);
        *spki = NULL;
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: plugin returned an empty public key",
                           inst->name);
    }
    return kp__inst_audit(inst, "key.public", name, version, 0, st);
}

typedef struct s_list_args {
    kp_instance *inst;
    const char *want; /* the name listed, or NULL for every key */
    kp_key_visit_fn visit;
    void *arg;
    char last_name[KP_NAME_MAX];
    uint32_t last_version;
    kp_status broken;  /* the plugin's listing broke the ABI */
    kp_status stopped; /* the caller's visitor asked to stop with this */
} s_list_args;

static kp_status s_list_visit(void *arg, const kp_key_info *info)
{
    s_list_args *a = arg;
    kp_key_info full = {.struct_size = 0}; /* filled by kp__inst_key_info */
    kp_status st = info != NULL ? kp__inst_key_info(a->inst, "KS_LIST", info, &full)
                                : kp__set_error(a->inst->ctx, KP_ERR_PLUGIN,
                                                "%s: plugin listed a NULL key info", a->inst->name);
    if (a->broken != KP_OK || a->stopped != KP_OK)
        return a->broken != KP_OK ? a->broken : a->stopped; /* a plugin that listed on */
    if (st == KP_OK && a->want != NULL && strcmp(full.name, a->want) != 0)
        st = kp__set_error(a->inst->ctx, KP_ERR_PLUGIN, "%s: plugin %s listed %s when asked for %s",
                           a->inst->name, a->inst->plugin->name, full.name, a->want);
    if (st == KP_OK && strcmp(full.name, a->last_name) == 0 && full.version <= a->last_version)
        st = kp__set_error(a->inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s listed %s v%u after v%u (versions must ascend)",
                           a->inst->name, a->inst->plugin->name, full.name, full.version,
                           a->last_version);
    if (st != KP_OK)
        return a->broken = st;
    memcpy(a->last_name, full.name, sizeof(a->last_name));
    a->last_version = full.version;
    return a->stopped = a->visit(a->arg, &full);
}

kp_status kp_key_list(kp_instance *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(visit != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_LIST, "key listing", &d));
    s_list_args a = {.inst = inst, .want = name, .visit = visit, .arg = arg};
    kp_status st = kp_dispatch_ks_list(d)(inst->inst, name, s_list_visit, &a);
    if (a.broken != KP_OK)
        st = a.broken;
    else if (a.stopped != KP_OK)
        st = a.stopped; /* what the visitor said, even if the plugin swallowed it */
    return st;
}

kp_status kp_key_info_get(kp_instance *inst, const char *name, uint32_t version, kp_key_info *info)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && info != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_GET, "key lookup", &d));
    kp_key_info got;
    kp__key_info_init(&got);
    kp_status st = kp_dispatch_ks_get(d)(inst->inst, name, version, &got);
    if (st == KP_OK)
        st = kp__inst_key_info(inst, "KS_GET", &got, info);
    if (st == KP_OK &&
        (strcmp(info->name, name) != 0 || (version != 0 && info->version != version)))
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s answered a lookup of %s v%u with %s v%u", inst->name,
                           inst->plugin->name, name, version, info->name, info->version);
    if (st == KP_ERR_NOT_FOUND) {
        /* keep what the plugin said beyond "not found" (where it looked; a soft-deleted key) */
        char why[KP_ERRBUF];
        snprintf(why, sizeof(why), "%s", kpk_after_name(kp_ctx_last_error(inst->ctx), inst->name));
        return kp__set_error(inst->ctx, st, "%s: no key %s%s%.0u%s%s%s", inst->name, name,
                             version != 0 ? " v" : "", version, why[0] != '\0' ? " (" : "", why,
                             why[0] != '\0' ? ")" : "");
    }
    return st;
}

typedef struct s_wrap_args {
    const kp_dispatch *d;
    const char *name;
    uint32_t version, alg;
    const kp_secret *dek;
} s_wrap_args;

static kp_status s_wrap_fill(kp_instance *inst, const void *args, uint8_t *buf, size_t *len)
{
    const s_wrap_args *a = args;
    return kp_dispatch_ks_wrap(a->d)(inst->inst, a->name, a->version, a->alg, a->dek, buf, len);
}

kp_status kp_key_wrap(kp_instance *inst, const char *name, uint32_t version, uint32_t alg,
                      const kp_secret *dek, uint8_t **out, size_t *outlen)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && dek != NULL && out != NULL && outlen != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_WRAP, "wrap", &d));
    *out = NULL;
    s_wrap_args a = {d, name, version, alg, dek};
    /* 1 KiB fits RSA-8192 and any AES wrap of a DEK. */
    kp_status st = kp__inst_fill(inst, "KS_WRAP", s_wrap_fill, &a, 1024, out, outlen);
    if (st == KP_OK && *outlen == 0) {
        kp_free(*out);
        *out = NULL;
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: plugin returned an empty wrap",
                           inst->name);
    }
    return kp__inst_audit(inst, "key.wrap", name, version, alg, st);
}

kp_status kp_key_unwrap(kp_instance *inst, const char *name, uint32_t version, uint32_t alg,
                        const uint8_t *in, size_t inlen, kp_secret **dek)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && in != NULL && dek != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_UNWRAP, "unwrap", &d));
    *dek = NULL;
    kp_status st = kp_dispatch_ks_unwrap(d)(inst->inst, name, version, alg, in, inlen, dek);
    if (st == KP_OK && (*dek == NULL || kp_secret_len(*dek) == 0))
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: unwrap succeeded with no key", inst->name,
                           inst->plugin->name);
    /* A wrap never shrinks what it wraps: RSA-OAEP and AES key wrap make more bytes than they
     * take. A longer "key" is made up. */
    if (st == KP_OK && kp_secret_len(*dek) >= inlen)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: unwrap of %zu bytes gave a key of %zu",
                           inst->name, inst->plugin->name, inlen, kp_secret_len(*dek));
    if (st != KP_OK) {
        kp_secret_free(*dek);
        *dek = NULL;
    }
    return kp__inst_audit(inst, "key.unwrap", name, version, alg, st);
}

kp_status kp_key_export(kp_instance *inst, const char *name, uint32_t version,
                        kp_secret **pkcs8_der)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && pkcs8_der != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_EXPORT, "key export", &d));
    *pkcs8_der = NULL;
    kp_status st = kp_dispatch_ks_export(d)(inst->inst, name, version, pkcs8_der);
    if (st == KP_OK && (*pkcs8_der == NULL || kp_secret_len(*pkcs8_der) == 0))
        st =
            kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: plugin exported an empty key", inst->name);
    if (st != KP_OK) {
        kp_secret_free(*pkcs8_der);
        *pkcs8_der = NULL;
    }
    return kp__inst_audit(inst, "key.export", name, version, 0, st);
}

kp_status kp_key_backup(kp_instance *inst, const char *name, kp_secret **blob)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && blob != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_BACKUP, "provider backup", &d));
    *blob = NULL;
    kp_status st = kp_dispatch_ks_backup(d)(inst->inst, name, blob);
    if (st == KP_OK && *blob == NULL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: the plugin returned no backup",
                           inst->name);
    if (st != KP_OK) {
        kp_secret_free(*blob);
        *blob = NULL;
    }
    return kp__inst_audit(inst, "key.backup", name, 0, 0, st);
}

kp_status kp_key_restore_backup(kp_instance *inst, const kp_secret *blob, char name[KP_NAME_MAX])
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(blob != NULL && name != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_RESTORE, "provider restore", &d));
    memset(name, 0, KP_NAME_MAX);
    kp_status st = kp_dispatch_ks_restore(d)(inst->inst, blob, name);
    if (st == KP_OK && memchr(name, '\0', KP_NAME_MAX) == NULL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: the plugin returned an unterminated name",
                           inst->name);
    return kp__inst_audit(inst, "key.restore", st == KP_OK ? name : "?", 0, 0, st);
}
