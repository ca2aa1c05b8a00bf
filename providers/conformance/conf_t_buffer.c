/*
 * buffer-convention: every output buffer of the ABI, offered with no room, one byte too little,
 * exactly enough and plenty. Too little: KP_ERR_BUFFER_TOO_SMALL, the size needed, and not one
 * byte written (guard bytes tell). Enough: KP_OK and *len within the capacity; a KP_OK whose *len
 * exceeds the capacity is a plugin lying about a length, which once made the core copy past its
 * buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_crypto.h"
#include "conf_tests.h"

typedef struct op {
    const char *name;
    conf_run *r;
    const char *key;
    uint32_t alg;
    const kp_secret *dek;
    const uint8_t *spki; /* the wrapping key, for EXPORT_WRAPPED */
    size_t spki_len;
    kp_status (*call)(const struct op *o, uint8_t *buf, size_t *len);
} op;

static kp_status s_get_public(const op *o, uint8_t *buf, size_t *len)
{
    return CONF_FN(o->r->kit, ks_get_public, KP_FN_KS_GET_PUBLIC)(o->r->inst, o->key, 0, buf, len);
}

static kp_status s_wrap(const op *o, uint8_t *buf, size_t *len)
{
    return CONF_FN(o->r->kit, ks_wrap, KP_FN_KS_WRAP)(o->r->inst, o->key, 0, o->alg, o->dek, buf,
                                                      len);
}

static kp_status s_export_wrapped(const op *o, uint8_t *buf, size_t *len)
{
    return CONF_FN(o->r->kit, ks_export_wrapped, KP_FN_KS_EXPORT_WRAPPED)(
        o->r->inst, o->key, 0, o->alg, o->spki, o->spki_len, buf, len);
}

static kp_status s_state_get(const op *o, uint8_t *buf, size_t *len)
{
    return CONF_FN(o->r->kit, ks_state_get, KP_FN_KS_STATE_GET)(o->r->inst, o->key, buf, len);
}

/* One call with capacity cap (NULL buffer when cap is 0). Returns the status, *out_len. */
static kp_status s_call(const op *o, size_t cap, size_t *out_len, bool *clean)
{
    conf_buf b = {NULL, 0};
    if (cap > 0 && !conf_buf_new(&b, cap))
        return KP_ERR_NOMEM;
    size_t len = cap;
    conf_err_clear();
    kp_status st = o->call(o, b.p, &len);
    *out_len = len;
    *clean = cap == 0 || conf_buf_untouched(&b, st == KP_OK ? cap : 0);
    conf_buf_free(&b);
    if (st == KP_OK && len > cap)
        conf_fail(o->r, "%s lies about a length: KP_OK with *len = %zu, capacity %zu", o->name, len,
                  cap);
    return st;
}

static void s_op(const op *o)
{
    conf_run *r = o->r;
    size_t need = 0, len = 0;
    bool clean = true;
    kp_status st = s_call(o, 0, &need, &clean);
    if (st == KP_OK) {
        if (need == 0)
            conf_fail(r, "%s with capacity 0 returned KP_OK and no bytes", o->name);
        return;
    }
    if (st != KP_ERR_BUFFER_TOO_SMALL || need == 0) {
        conf_fail(r,
                  "%s with capacity 0 and a NULL buffer: %s (*len %zu), want "
                  "KP_ERR_BUFFER_TOO_SMALL and the size needed: %s",
                  o->name, conf_status_name(st), need, conf_reason());
        return;
    }
    if (need > 1) {
        st = s_call(o, need - 1, &len, &clean);
        if (st != KP_ERR_BUFFER_TOO_SMALL && st != KP_OK)
            conf_fail(r, "%s with capacity %zu (one less than it asked for): %s", o->name, need - 1,
                      conf_status_name(st));
        else if (st == KP_ERR_BUFFER_TOO_SMALL && !clean)
            conf_fail(r, "%s wrote into a buffer it said was too small", o->name);
        else if (st == KP_ERR_BUFFER_TOO_SMALL && len < need)
            conf_fail(r, "%s asked for %zu bytes, then for %zu with %zu offered", o->name, need,
                      len, need - 1);
    }
    size_t caps[2] = {need, need + 4096};
    for (size_t i = 0; i < 2; i++) {
        st = s_call(o, caps[i], &len, &clean);
        if (st != KP_OK)
            conf_fail(r, "%s with capacity %zu (it asked for %zu): %s: %s", o->name, caps[i], need,
                      conf_status_name(st), conf_reason());
        else if (!clean)
            conf_fail(r, "%s wrote past the capacity %zu", o->name, caps[i]);
    }
}

/* IMPORT_OFFER with buffers of ns and nt bytes; *clean when nothing was written at or past
 * (too_small ? 0 : the capacity). */
static kp_status s_offer_call(conf_run *r, const kp_key_spec *spec, size_t ns, size_t nt,
                              kp_import_offer *o, bool *clean)
{
    kp_ks_import_offer_fn *fn = CONF_FN(r->kit, ks_import_offer, KP_FN_KS_IMPORT_OFFER);
    conf_buf bs = {NULL, 0}, bt = {NULL, 0};
    bool made = (ns == 0 || conf_buf_new(&bs, ns)) && (nt == 0 || conf_buf_new(&bt, nt));
    kp_status st = made ? KP_OK : KP_ERR_NOMEM;
    memset(o, 0, sizeof(*o));
    if (made) {
        o->struct_size = sizeof(*o);
        o->wrapping_spki = bs.p;
        o->wrapping_spki_len = ns;
        o->token = bt.p;
        o->token_len = nt;
        conf_err_clear();
        st = fn(r->inst, spec, o);
        *clean = (ns == 0 || conf_buf_untouched(&bs, st == KP_OK ? ns : 0)) &&
                 (nt == 0 || conf_buf_untouched(&bt, st == KP_OK ? nt : 0));
    }
    conf_buf_free(&bs);
    conf_buf_free(&bt);
    bool ok = st == KP_OK;
    if (ok && (o->wrapping_spki_len > ns || o->token_len > nt))
        conf_fail(r, "KS_IMPORT_OFFER lies about a length: KP_OK with %zu/%zu bytes in %zu/%zu",
                  o->wrapping_spki_len, o->token_len, ns, nt);
    return st;
}

/* IMPORT_OFFER: two buffers that are too small together or not at all. */
static void s_offer(conf_run *r)
{
    char name[CONF_NAME_LEN];
    conf_name(r->kit, "bufoffer", name);
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = name,
                        .type = KP_KEY_RSA,
                        .bits = conf_key_bits(r->kit),
                        .version = 1};
    kp_import_offer o;
    bool clean = true;
    kp_status st = s_offer_call(r, &spec, 0, 0, &o, &clean);
    size_t ns = o.wrapping_spki_len, nt = o.token_len;
    if (st != KP_ERR_BUFFER_TOO_SMALL || ns == 0) {
        conf_fail(r,
                  "KS_IMPORT_OFFER with no buffers: %s (spki %zu, token %zu), want "
                  "KP_ERR_BUFFER_TOO_SMALL and both sizes",
                  conf_status_name(st), ns, nt);
        return;
    }
    /* one of the two one byte short: the token when there is one */
    st = s_offer_call(r, &spec, nt > 0 ? ns : ns - 1, nt > 0 ? nt - 1 : 0, &o, &clean);
    if (st != KP_ERR_BUFFER_TOO_SMALL)
        conf_fail(r, "KS_IMPORT_OFFER with a buffer one byte short: %s", conf_status_name(st));
    else if (!clean)
        conf_fail(r, "KS_IMPORT_OFFER wrote into buffers it said were too small");
    else if (o.wrapping_spki_len < ns || o.token_len < nt)
        conf_fail(r, "KS_IMPORT_OFFER did not set both sizes when one buffer was short");
    st = s_offer_call(r, &spec, ns, nt, &o, &clean);
    if (st != KP_OK)
        conf_fail(r, "KS_IMPORT_OFFER with the sizes it asked for: %s: %s", conf_status_name(st),
                  conf_reason());
    else if (!clean)
        conf_fail(r, "KS_IMPORT_OFFER wrote past the capacity");
}

static uint32_t s_first(uint32_t bits, uint32_t lo, uint32_t hi)
{
    for (uint32_t a = lo; a <= hi; a++)
        if (bits & (1u << a))
            return a;
    return 0;
}

void conf_t_buffer(conf_run *r)
{
    conf_kit *k = r->kit;
    const kp_instance_info *ii = &k->iinfo;
    uint32_t m = s_first(ii->export_keyx, KP_KEYX_RSA_AES_KWP_SHA1, KP_KEYX_RSA_AES_KWP_SHA256);
    bool exp =
        m != 0 && !(ii->flags & KP_INST_NO_EXPORT) && conf_fn(k, KP_FN_KS_EXPORT_WRAPPED) != NULL;
    conf_key key;
    if (!conf_key_make(r, "buf", exp ? KP_KEY_EXPORTABLE : 0, false, &key))
        return;
    uint8_t d[32];
    conf_random(d, sizeof(d));
    kp_secret *dek = conf_secret_new(d, sizeof(d));
    op o = {.r = r, .key = key.name, .dek = dek};

    o.name = "KS_GET_PUBLIC";
    o.call = s_get_public;
    s_op(&o);

    o.name = "KS_WRAP";
    o.call = s_wrap;
    o.alg = s_first(ii->wrap_algs, KP_WRAP_RSA_OAEP_SHA1, KP_WRAP_RSA_PKCS1); /* an RSA key */
    if (o.alg != 0)
        s_op(&o);

    EVP_PKEY *w = exp ? conf_rsa_new(2048) : NULL;
    if (w != NULL && (o.spki = conf_spki_der(w, &o.spki_len)) != NULL) {
        o.name = "KS_EXPORT_WRAPPED";
        o.call = s_export_wrapped;
        o.alg = m;
        s_op(&o);
        free((void *)o.spki);
    }
    EVP_PKEY_free(w);

    kp_ks_state_put_fn *put = CONF_FN(k, ks_state_put, KP_FN_KS_STATE_PUT);
    if (put != NULL && conf_fn(k, KP_FN_KS_STATE_GET) != NULL) {
        static const char doc[] = "{\"kit\":\"buffer-convention\",\"pad\":\"0123456789\"}";
        conf_err_clear();
        kp_status st = put(r->inst, key.name, (const uint8_t *)doc, sizeof(doc) - 1, NULL, 0);
        if (st != KP_OK) {
            conf_fail(r, "KS_STATE_PUT failed: %s: %s", conf_status_name(st), conf_reason());
        } else {
            o.name = "KS_STATE_GET";
            o.call = s_state_get;
            s_op(&o);
        }
    }
    if (ii->import_keyx != 0 && conf_fn(k, KP_FN_KS_IMPORT_OFFER) != NULL)
        s_offer(r);
    conf_secret_free(dek);
    conf_key_free(&key);
}
