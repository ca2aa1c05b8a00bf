/*
 * Secret-store, data-key and chain-state operations on an instance, audited and held to the
 * ABI like the keystore ones (keys.c).
 */
#include <stdlib.h>
#include <string.h>

#include "instance/call.h"
#include "instance/instance.h"

kp_status kp_store_put(kp_instance *inst, const char *name, const kp_secret *value,
                       const kp_meta *meta, size_t nmeta, uint32_t *version)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && value != NULL && version != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_SECRETSTORE, KP_FN_SS_PUT, "secret storage", &d));
    *version = 0;
    kp_status st;
    for (size_t i = 0; i < nmeta; i++)
        if (meta != NULL && meta[i].key != NULL &&
            strncmp(meta[i].key, KP_META_STORE, strlen(KP_META_STORE)) == 0)
            return kp__set_error(inst->ctx, KP_ERR_INVALID_ARG,
                                 "%s: metadata %s: keys starting with '" KP_META_STORE
                                 "' are the store's own",
                                 inst->name, meta[i].key);
    if (inst->info.secret_max != 0 && kp_secret_len(value) > inst->info.secret_max)
        st = kp__set_error(inst->ctx, KP_ERR_INVALID_ARG,
                           "%s: secret %s is %zu bytes, the store takes at most %llu", inst->name,
                           name, kp_secret_len(value), (unsigned long long)inst->info.secret_max);
    else
        st = kp_dispatch_ss_put(d)(inst->inst, name, value, meta, nmeta, version);
    if (st == KP_OK && *version == 0)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: plugin stored version 0 of %s",
                           inst->name, name);
    return kp__inst_audit(inst, "secret.put", name, *version, 0, st);
}

/* The caller's secret visitor behind a check of what the plugin hands it: a well-formed info
 * and metadata (no NULL where text is promised), versions ascending per name, and the caller's
 * stop honoured even when the plugin would go on. */
typedef struct s_ss_args {
    kp_instance *inst;
    const char *want;
    kp_secret_visit_fn visit;
    void *arg;
    char last_name[KP_NAME_MAX];
    uint32_t last_version;
    kp_status broken, stopped;
} s_ss_args;

#define S_META_MAX 64

static kp_status s_ss_visit(void *arg, const kp_secret_info *info, const kp_meta *meta,
                            size_t nmeta)
{
    s_ss_args *a = arg;
    if (a->broken != KP_OK || a->stopped != KP_OK)
        return a->broken != KP_OK ? a->broken : a->stopped;
    bool ok = info != NULL && memchr(info->name, '\0', sizeof(info->name)) != NULL &&
              info->version != 0 && nmeta <= S_META_MAX && (nmeta == 0 || meta != NULL);
    for (size_t i = 0; ok && i < nmeta; i++)
        ok = meta[i].key != NULL && meta[i].value != NULL;
    const char *why = ok ? NULL : "a malformed secret info or metadata";
    if (ok && a->want != NULL && strcmp(info->name, a->want) != 0)
        why = "another secret than the one asked for";
    if (why == NULL && strcmp(info->name, a->last_name) == 0 && info->version <= a->last_version)
        why = "versions out of order";
    if (why != NULL)
        return a->broken = kp__set_error(a->inst->ctx, KP_ERR_PLUGIN,
                                         "%s: plugin %s broke the ABI: it listed %s", a->inst->name,
                                         a->inst->plugin->name, why);
    memcpy(a->last_name, info->name, sizeof(a->last_name));
    a->last_version = info->version;
    return a->stopped = a->visit(a->arg, info, meta, nmeta);
}

static kp_status s_ss_done(s_ss_args *a, kp_status st)
{
    return a->broken != KP_OK ? a->broken : a->stopped != KP_OK ? a->stopped : st;
}

kp_status kp_store_get(kp_instance *inst, const char *name, uint32_t version, kp_secret **value,
                       kp_secret_visit_fn visit, void *arg)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && value != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_SECRETSTORE, KP_FN_SS_GET, "secret retrieval", &d));
    *value = NULL;
    s_ss_args a = {.inst = inst, .want = name, .visit = visit, .arg = arg};
    kp_status st = s_ss_done(&a, kp_dispatch_ss_get(d)(inst->inst, name, version, value,
                                                       visit != NULL ? s_ss_visit : NULL, &a));
    if (st == KP_OK && *value == NULL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: plugin returned no value for %s",
                           inst->name, name);
    if (st != KP_OK) {
        kp_secret_free(*value);
        *value = NULL;
    }
    return kp__inst_audit(inst, "secret.get", name, version, 0, st);
}

kp_status kp_store_list(kp_instance *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(visit != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_SECRETSTORE, KP_FN_SS_LIST, "secret listing", &d));
    s_ss_args a = {.inst = inst, .want = name, .visit = visit, .arg = arg};
    return s_ss_done(&a, kp_dispatch_ss_list(d)(inst->inst, name, s_ss_visit, &a));
}

/* ---- data keys --------------------------------------------------------------------------- */

typedef struct s_dk_args {
    const kp_dispatch *d;
    const char *key_id;
    size_t nbytes;
    const kp_meta *context;
    size_t ncontext;
    kp_secret **plain;
} s_dk_args;

static kp_status s_dk_fill(kp_instance *inst, const void *args, uint8_t *buf, size_t *len)
{
    const s_dk_args *a = args;
    /* a second round (bigger buffer) must not leak the first round's key */
    kp_secret_free(*a->plain);
    *a->plain = NULL;
    return kp_dispatch_dk_generate(a->d)(inst->inst, a->key_id, a->nbytes, a->context, a->ncontext,
                                         a->plain, buf, len);
}

kp_status kp_datakey_generate(kp_instance *inst, const char *key_id, size_t nbytes,
                              const kp_meta *context, size_t ncontext, kp_secret **plain,
                              uint8_t **ct, size_t *ctlen)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(key_id != NULL && nbytes > 0 && nbytes <= 1024 && plain != NULL && ct != NULL &&
                  ctlen != NULL && (ncontext == 0 || context != NULL),
              KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_DATAKEY, KP_FN_DK_GENERATE, "data keys", &d));
    *plain = NULL;
    *ct = NULL;
    s_dk_args a = {d, key_id, nbytes, context, ncontext, plain};
    kp_status st = kp__inst_fill(inst, "DK_GENERATE", s_dk_fill, &a, 1024, ct, ctlen);
    if (st == KP_OK && (*plain == NULL || kp_secret_len(*plain) != nbytes || *ctlen == 0))
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: DK_GENERATE gave a key of the wrong "
                           "size or no ciphertext",
                           inst->name, inst->plugin->name);
    if (st != KP_OK) {
        kp_secret_free(*plain);
        *plain = NULL;
        kp_free(*ct);
        *ct = NULL;
    }
    return kp__inst_audit(inst, "datakey.generate", key_id, 0, 0, st);
}

kp_status kp_datakey_decrypt(kp_instance *inst, const char *key_id, const uint8_t *ct, size_t ctlen,
                             const kp_meta *context, size_t ncontext, kp_secret **plain)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(key_id != NULL && ct != NULL && ctlen > 0 && plain != NULL &&
                  (ncontext == 0 || context != NULL),
              KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_DATAKEY, KP_FN_DK_DECRYPT, "data keys", &d));
    *plain = NULL;
    kp_status st =
        kp_dispatch_dk_decrypt(d)(inst->inst, key_id, ct, ctlen, context, ncontext, plain);
    if (st == KP_OK && (*plain == NULL || kp_secret_len(*plain) == 0))
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: DK_DECRYPT succeeded with no key",
                           inst->name, inst->plugin->name);
    if (st != KP_OK) {
        kp_secret_free(*plain);
        *plain = NULL;
    }
    return kp__inst_audit(inst, "datakey.decrypt", key_id, 0, 0, st);
}

typedef struct s_dk_re_args {
    const kp_dispatch *d;
    const char *src_key_id, *dst_key_id;
    const uint8_t *ct;
    size_t ctlen;
    const kp_meta *src_context, *dst_context;
    size_t nsrc, ndst;
} s_dk_re_args;

static kp_status s_dk_re_fill(kp_instance *inst, const void *args, uint8_t *buf, size_t *len)
{
    const s_dk_re_args *a = args;
    return kp_dispatch_dk_reencrypt(a->d)(inst->inst, a->src_key_id, a->ct, a->ctlen,
                                          a->src_context, a->nsrc, a->dst_key_id, a->dst_context,
                                          a->ndst, buf, len);
}

kp_status kp_datakey_reencrypt(kp_instance *inst, const char *src_key_id, const uint8_t *ct,
                               size_t ctlen, const kp_meta *src_context, size_t nsrc,
                               const char *dst_key_id, const kp_meta *dst_context, size_t ndst,
                               uint8_t **out, size_t *outlen)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(src_key_id != NULL && dst_key_id != NULL && ct != NULL && ctlen > 0 && out != NULL &&
                  outlen != NULL && (nsrc == 0 || src_context != NULL) &&
                  (ndst == 0 || dst_context != NULL),
              KP_ERR_INVALID_ARG);
    /* a store without data keys says so; one with data keys but an ABI 1.0-1.4 plugin says what
     * it lacks */
    KP_GUARD(kp__inst_fn(inst, KP_CAP_DATAKEY, KP_FN_DK_DECRYPT, "data keys", &d));
    KP_GUARD(kp__inst_fn(inst, KP_CAP_DATAKEY, KP_FN_DK_REENCRYPT,
                         "re-encrypting data keys (DK_REENCRYPT, ABI 1.5)", &d));
    *out = NULL;
    s_dk_re_args a = {d, src_key_id, dst_key_id, ct, ctlen, src_context, dst_context, nsrc, ndst};
    kp_status st = kp__inst_fill(inst, "DK_REENCRYPT", s_dk_re_fill, &a, 1024, out, outlen);
    if (st == KP_OK && *outlen == 0)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: DK_REENCRYPT gave no ciphertext",
                           inst->name, inst->plugin->name);
    if (st != KP_OK) {
        kp_free(*out);
        *out = NULL;
    }
    return kp__inst_audit_to(inst, "datakey.reencrypt", src_key_id, dst_key_id, st);
}

/* ---- chain-state documents ----------------------------------------------------------------- */

bool kp__inst_state_kept(const kp_instance *inst)
{
    return inst != NULL && (inst->info.capabilities & KP_CAP_KEYSTORE) &&
           kp__plugin_fn(inst->plugin, KP_FN_KS_STATE_PUT) != NULL;
}

kp_status kp__inst_state_get(kp_instance *inst, const char *name, uint8_t *doc, size_t *len)
{
    const kp_dispatch *d = NULL;
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_STATE_GET, "chain-state documents", &d));
    size_t cap = *len;
    kp_status st = kp_dispatch_ks_state_get(d)(inst->inst, name, doc, len);
    return kp__inst_len_check(inst, "KS_STATE_GET", st, cap, *len);
}

kp_status kp__inst_state_put(kp_instance *inst, const char *name, const uint8_t *doc, size_t len,
                             const uint8_t *expect, size_t expect_len)
{
    const kp_dispatch *d = NULL;
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_STATE_PUT, "chain-state documents", &d));
    KP_ENSURE(len <= KP_STATE_MAX && expect_len <= KP_STATE_MAX, KP_ERR_INVALID_ARG);
    return kp_dispatch_ks_state_put(d)(inst->inst, name, doc, len, expect, expect_len);
}
