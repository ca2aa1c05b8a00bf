/*
 * Which ABI call a thread is in. The tests call the plugin through conf_fn(), which hands out a
 * wrapper per function id: the wrapper notes the call's name in a thread-local before calling the
 * plugin and restores the previous one after, so a fault an upcall sees (a secret allocated and
 * never freed, above all) can say during which call it happened ("allocated during KS_UNWRAP").
 * Each wrapper is declared with the ABI's typedef, so the compiler checks it against the header.
 */
#include <stddef.h>

#include "conf.h"

static _Thread_local const char *s_call;
static const kp_dispatch *s_table; /* the plugin's table, set once before any test runs */

const char *conf_call_enter(const char *name)
{
    const char *prev = s_call;
    s_call = name;
    return prev;
}

void conf_call_leave(const char *prev)
{
    s_call = prev;
}

const char *conf_call_now(void)
{
    return s_call;
}

/* One wrapper: name is the function's KP_ABI_FUNC name, fid the tail of its KP_FN_ id (which is
 * also the name reported), params and args its parameter list and the same names as arguments
 * (lists with their own parentheses, so they take no more). */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define CONF_WRAP(name, fid, params, args)                                                         \
    static kp_##name##_fn s_##name;                                                                \
    static kp_status s_##name params                                                               \
    {                                                                                              \
        const char *prev = conf_call_enter(#fid);                                                  \
        kp_status st = kp_dispatch_##name(kp_dispatch_find(s_table, KP_FN_##fid)) args;            \
        conf_call_leave(prev);                                                                     \
        return st;                                                                                 \
    }
/* NOLINTEND(bugprone-macro-parentheses) */

CONF_WRAP(plugin_describe, PLUGIN_DESCRIBE,
          (void *ctx, const kp_param *params, kp_instance_info *info), (ctx, params, info))
CONF_WRAP(plugin_check_key, PLUGIN_CHECK_KEY,
          (void *ctx, const kp_param *params, const kp_key_spec *spec), (ctx, params, spec))
CONF_WRAP(instance_open, INSTANCE_OPEN,
          (void *ctx, kp_core_handle *h, const kp_param *params, void **inst),
          (ctx, h, params, inst))
CONF_WRAP(instance_check, INSTANCE_CHECK, (void *inst, kp_check_report_fn report, void *arg),
          (inst, report, arg))
CONF_WRAP(instance_info, INSTANCE_INFO, (void *inst, kp_instance_info *info), (inst, info))
CONF_WRAP(instance_init, INSTANCE_INIT, (void *inst), (inst))
CONF_WRAP(ks_create, KS_CREATE, (void *inst, const kp_key_spec *spec, kp_key_info *info),
          (inst, spec, info))
CONF_WRAP(ks_import, KS_IMPORT,
          (void *inst, const kp_key_spec *spec, const kp_secret *der, kp_key_info *info),
          (inst, spec, der, info))
CONF_WRAP(ks_get_public, KS_GET_PUBLIC,
          (void *inst, const char *name, uint32_t version, uint8_t *spki, size_t *len),
          (inst, name, version, spki, len))
CONF_WRAP(ks_list, KS_LIST, (void *inst, const char *name, kp_key_visit_fn visit, void *arg),
          (inst, name, visit, arg))
CONF_WRAP(ks_wrap, KS_WRAP,
          (void *inst, const char *name, uint32_t version, uint32_t alg, const kp_secret *dek,
           uint8_t *out, size_t *outlen),
          (inst, name, version, alg, dek, out, outlen))
CONF_WRAP(ks_unwrap, KS_UNWRAP,
          (void *inst, const char *name, uint32_t version, uint32_t alg, const uint8_t *in,
           size_t inlen, kp_secret **dek),
          (inst, name, version, alg, in, inlen, dek))
CONF_WRAP(ks_export, KS_EXPORT, (void *inst, const char *name, uint32_t version, kp_secret **der),
          (inst, name, version, der))
CONF_WRAP(ks_export_wrapped, KS_EXPORT_WRAPPED,
          (void *inst, const char *name, uint32_t version, uint32_t method, const uint8_t *spki,
           size_t spki_len, uint8_t *out, size_t *outlen),
          (inst, name, version, method, spki, spki_len, out, outlen))
CONF_WRAP(ks_state_get, KS_STATE_GET, (void *inst, const char *name, uint8_t *doc, size_t *len),
          (inst, name, doc, len))
CONF_WRAP(ks_state_put, KS_STATE_PUT,
          (void *inst, const char *name, const uint8_t *doc, size_t len, const uint8_t *expect,
           size_t expect_len),
          (inst, name, doc, len, expect, expect_len))
CONF_WRAP(ks_import_offer, KS_IMPORT_OFFER,
          (void *inst, const kp_key_spec *spec, kp_import_offer *offer), (inst, spec, offer))
CONF_WRAP(ks_import_wrapped, KS_IMPORT_WRAPPED,
          (void *inst, const kp_key_spec *spec, uint32_t method, const uint8_t *token,
           size_t token_len, const uint8_t *blob, size_t bloblen, kp_key_info *info),
          (inst, spec, method, token, token_len, blob, bloblen, info))
CONF_WRAP(ks_get, KS_GET, (void *inst, const char *name, uint32_t version, kp_key_info *info),
          (inst, name, version, info))
CONF_WRAP(ss_put, SS_PUT,
          (void *inst, const char *name, const kp_secret *value, const kp_meta *meta, size_t nmeta,
           uint32_t *version),
          (inst, name, value, meta, nmeta, version))
CONF_WRAP(ss_get, SS_GET,
          (void *inst, const char *name, uint32_t version, kp_secret **value,
           kp_secret_visit_fn visit, void *arg),
          (inst, name, version, value, visit, arg))
CONF_WRAP(ss_list, SS_LIST, (void *inst, const char *name, kp_secret_visit_fn visit, void *arg),
          (inst, name, visit, arg))
CONF_WRAP(dk_generate, DK_GENERATE,
          (void *inst, const char *key_id, size_t nbytes, const kp_meta *context, size_t ncontext,
           kp_secret **plain, uint8_t *ct, size_t *ctlen),
          (inst, key_id, nbytes, context, ncontext, plain, ct, ctlen))
CONF_WRAP(dk_decrypt, DK_DECRYPT,
          (void *inst, const char *key_id, const uint8_t *ct, size_t ctlen, const kp_meta *context,
           size_t ncontext, kp_secret **plain),
          (inst, key_id, ct, ctlen, context, ncontext, plain))
CONF_WRAP(dk_reencrypt, DK_REENCRYPT,
          (void *inst, const char *src_key_id, const uint8_t *ct, size_t ctlen,
           const kp_meta *src_context, size_t nsrc, const char *dst_key_id,
           const kp_meta *dst_context, size_t ndst, uint8_t *out, size_t *outlen),
          (inst, src_key_id, ct, ctlen, src_context, nsrc, dst_key_id, dst_context, ndst, out,
           outlen))

CONF_WRAP(ob_create, OB_CREATE,
          (void *inst, const char *where, const kp_meta *meta, size_t nmeta, kp_object_writer **w),
          (inst, where, meta, nmeta, w))
CONF_WRAP(ob_write, OB_WRITE, (void *inst, kp_object_writer *w, const uint8_t *data, size_t len),
          (inst, w, data, len))
CONF_WRAP(ob_close, OB_CLOSE, (void *inst, kp_object_writer *w, int commit), (inst, w, commit))
CONF_WRAP(ob_stat, OB_STAT,
          (void *inst, const char *where, kp_object_info *info, kp_meta_visit_fn visit, void *arg),
          (inst, where, info, visit, arg))
CONF_WRAP(ob_read, OB_READ,
          (void *inst, const char *where, const char *tag, uint64_t offset, uint8_t *buf,
           size_t *len),
          (inst, where, tag, offset, buf, len))

#define CONF_ENTRY(name, fid)                                                                      \
    {                                                                                              \
        .id = KP_FN_##fid, .fn = (kp_fn)s_##name                                                   \
    }

static const kp_dispatch s_wrappers[] = {
    CONF_ENTRY(plugin_describe, PLUGIN_DESCRIBE),
    CONF_ENTRY(plugin_check_key, PLUGIN_CHECK_KEY),
    CONF_ENTRY(instance_open, INSTANCE_OPEN),
    CONF_ENTRY(instance_check, INSTANCE_CHECK),
    CONF_ENTRY(instance_info, INSTANCE_INFO),
    CONF_ENTRY(instance_init, INSTANCE_INIT),
    CONF_ENTRY(ks_create, KS_CREATE),
    CONF_ENTRY(ks_import, KS_IMPORT),
    CONF_ENTRY(ks_get_public, KS_GET_PUBLIC),
    CONF_ENTRY(ks_list, KS_LIST),
    CONF_ENTRY(ks_wrap, KS_WRAP),
    CONF_ENTRY(ks_unwrap, KS_UNWRAP),
    CONF_ENTRY(ks_export, KS_EXPORT),
    CONF_ENTRY(ks_export_wrapped, KS_EXPORT_WRAPPED),
    CONF_ENTRY(ks_state_get, KS_STATE_GET),
    CONF_ENTRY(ks_state_put, KS_STATE_PUT),
    CONF_ENTRY(ks_import_offer, KS_IMPORT_OFFER),
    CONF_ENTRY(ks_import_wrapped, KS_IMPORT_WRAPPED),
    CONF_ENTRY(ks_get, KS_GET),
    CONF_ENTRY(ss_put, SS_PUT),
    CONF_ENTRY(ss_get, SS_GET),
    CONF_ENTRY(ss_list, SS_LIST),
    CONF_ENTRY(dk_generate, DK_GENERATE),
    CONF_ENTRY(dk_decrypt, DK_DECRYPT),
    CONF_ENTRY(dk_reencrypt, DK_REENCRYPT),
    CONF_ENTRY(ob_create, OB_CREATE),
    CONF_ENTRY(ob_write, OB_WRITE),
    CONF_ENTRY(ob_close, OB_CLOSE),
    CONF_ENTRY(ob_stat, OB_STAT),
    CONF_ENTRY(ob_read, OB_READ),
    {.id = 0, .fn = NULL},
};

void conf_calls_bind(const kp_dispatch *table)
{
    s_table = table;
}

kp_fn conf_fn(const conf_kit *k, uint32_t id)
{
    const kp_dispatch *d = kp_dispatch_find(k->table, id);
    if (d == NULL)
        return NULL;
    const kp_dispatch *w = k->table == s_table ? kp_dispatch_find(s_wrappers, id) : NULL;
    return w != NULL ? w->fn : d->fn;
}
