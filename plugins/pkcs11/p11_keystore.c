/*
 * KS_GET_PUBLIC, KS_LIST and KS_GET: reading what the token holds. KS_GET and GET_PUBLIC look
 * at one key's objects only (p11_lookup.c), so their cost does not grow with what else the
 * token holds; only a listing of every key reads every key object.
 */
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

typedef struct s_public {
    const char *name;
    uint32_t version;
    uint8_t *der; /* malloc'ed */
    size_t len;
} s_public;

static kp_status s_public_op(kp_p11_op *op, void *arg)
{
    s_public *p = arg;
    CK_OBJECT_HANDLE pub;
    kp_p11_key key;

    KP_GUARD(kp_p11_key_find(op, p->name, p->version, &key));
    return kp_p11_key_public(op, &key, &pub, &p->der, &p->len);
}

kp_status kp_p11_ks_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                               size_t *len)
{
    kp_p11_inst *pi = inst;
    s_public p = {name, version, NULL, 0};

    if (len == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "get_public: len is NULL");
    KP_GUARD(kp_p11_check_name(pi, name));
    KP_GUARD(kp_p11_run(pi, s_public_op, &p));
    return kp_buffer_take(pi->up, pi->h, p.der, p.len, spki, len, "public key");
}

typedef struct s_list {
    const char *name;
    kp_p11_key *keys;
    size_t n;
} s_list;

static kp_status s_list_op(kp_p11_op *op, void *arg)
{
    s_list *l = arg;

    free(l->keys); /* from a first attempt that failed half-way */
    l->keys = NULL;
    return kp_p11_scan(op, l->name, &l->keys, &l->n);
}

kp_status kp_p11_ks_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    kp_p11_inst *pi = inst;
    s_list l = {name, NULL, 0};
    kp_key_info info;
    kp_status st = KP_OK;

    if (visit == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "list: visit is NULL");
    if (name != NULL && (st = kp_p11_check_name(pi, name)) != KP_OK)
        return st;
    /* Visit after the session is back in the pool: the visitor may call us again. */
    KP_GUARD(kp_p11_run(pi, s_list_op, &l));
    if (l.n == 0 && name != NULL)
        st = kp_p11_err(pi, KP_ERR_NOT_FOUND, "key %s not found on token '%s'", name, pi->token);
    for (size_t i = 0; i < l.n && st == KP_OK; i++) {
        kp_p11_key_info(pi, &l.keys[i], &info);
        st = visit(arg, &info);
    }
    free(l.keys);
    return st;
}

typedef struct s_get {
    const char *name;
    uint32_t version;
    kp_p11_key key;
} s_get;

/* Whether key->obj is still the object of that version: a version found in the cache (no
 * token call) may have been destroyed or replaced by another tool since. One attribute read. */
static bool s_still_there(kp_p11_op *op, const kp_p11_key *key)
{
    char want[KP_P11_OBJLABEL_MAX], got[KP_P11_OBJLABEL_MAX];
    CK_ATTRIBUTE a = {CKA_LABEL, got, sizeof(got)};

    if (kp_p11_label(op->pi, key->name, key->version, want, sizeof(want)) != KP_OK)
        return false;
    if (op->f->C_GetAttributeValue(op->s, key->obj, &a, 1) != CKR_OK)
        return false;
    return a.ulValueLen == strlen(want) && memcmp(got, want, a.ulValueLen) == 0;
}

static kp_status s_get_op(kp_p11_op *op, void *arg)
{
    s_get *g = arg;
    kp_status st = kp_p11_key_find(op, g->name, g->version, &g->key);

    /* Version 0 is always looked up on the token; a numbered one may come from the cache. */
    if (st != KP_OK || g->version == 0 || s_still_there(op, &g->key))
        return st;
    kp_p11_cache_flush(op->pi);
    return kp_p11_key_find(op, g->name, g->version, &g->key);
}

kp_status kp_p11_ks_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    kp_p11_inst *pi = inst;
    s_get g = {.name = name, .version = version};
    kp_key_info full;

    if (info == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "get: info is NULL");
    KP_GUARD(kp_p11_check_name(pi, name));
    KP_GUARD(kp_p11_run(pi, s_get_op, &g));
    kp_p11_key_info(pi, &g.key, &full);
    kp_key_info_put(info, &full);
    return KP_OK;
}
