/*
 * The chain-state document of a key (KS_STATE_GET / KS_STATE_PUT) as a token data object,
 * CKA_LABEL "<prefix><name>/state", CKA_APPLICATION "keyplane". A replacement is created under
 * a temporary label, the old object destroyed, and the new one renamed, so a reader never sees
 * two documents; a crash in between leaves none here, and the chain's other keystores still
 * hold it (the newest copy wins when the core reads the state).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

#define S_APP "keyplane"

typedef struct s_state {
    const char *name;
    const uint8_t *in;
    size_t inlen;
    uint8_t *out; /* malloc'ed by get */
    size_t outlen;
} s_state;

static kp_status s_label(kp_p11_inst *pi, const char *name, const char *suffix, char *buf,
                         size_t size)
{
    int n = snprintf(buf, size, "%s%s/%s", pi->prefix, name, suffix);
    if (n < 0 || (size_t)n >= size)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "key name %s is too long", name);
    return KP_OK;
}

static kp_status s_get_op(kp_p11_op *op, void *arg)
{
    s_state *s = arg;
    char label[KP_P11_OBJLABEL_MAX];
    CK_OBJECT_HANDLE obj;
    kp_status st;

    free(s->out);
    s->out = NULL;
    if ((st = s_label(op->pi, s->name, "state", label, sizeof(label))) != KP_OK)
        return st;
    st = kp_p11_find_one(op, CKO_DATA, label, &obj);
    if (st == KP_ERR_NOT_FOUND)
        return kp_p11_err(op->pi, KP_ERR_NOT_FOUND, "no state document for %s on token '%s'",
                          s->name, op->pi->token);
    if (st != KP_OK)
        return st;
    return kp_p11_attr(op, obj, CKA_VALUE, &s->out, &s->outlen);
}

static kp_status s_put_op(kp_p11_op *op, void *arg)
{
    s_state *s = arg;
    kp_p11_inst *pi = op->pi;
    char label[KP_P11_OBJLABEL_MAX], temp[KP_P11_OBJLABEL_MAX + 32];
    uint8_t rnd[8];
    char hex[17];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_OBJECT_HANDLE old = CK_INVALID_HANDLE, fresh = CK_INVALID_HANDLE;
    kp_status st;
    CK_RV rv;

    if ((st = s_label(pi, s->name, "state", label, sizeof(label))) != KP_OK ||
        (st = kp_p11_random(pi, rnd, sizeof(rnd))) != KP_OK)
        return st;
    kp_p11_hex(rnd, sizeof(rnd), hex, sizeof(hex));
    snprintf(temp, sizeof(temp), "%s.new-%s", label, hex);
    st = kp_p11_find_one(op, CKO_DATA, label, &old);
    if (st != KP_OK && st != KP_ERR_NOT_FOUND)
        return st;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},       {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},     {CKA_MODIFIABLE, &yes, sizeof(yes)},
        {CKA_LABEL, temp, strlen(temp)},      {CKA_APPLICATION, (void *)S_APP, strlen(S_APP)},
        {CKA_VALUE, (void *)s->in, s->inlen},
    };
    rv = op->f->C_CreateObject(op->s, t, sizeof(t) / sizeof(t[0]), &fresh);
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, false, "C_CreateObject", "state document of %s", s->name);
    if (old != CK_INVALID_HANDLE && (rv = op->f->C_DestroyObject(op->s, old)) != CKR_OK) {
        kp_p11_destroy(op, fresh);
        return kp_p11_ck(pi, op, rv, false, "C_DestroyObject", "old state document of %s", s->name);
    }
    CK_ATTRIBUTE rename = {CKA_LABEL, label, strlen(label)};
    if ((rv = op->f->C_SetAttributeValue(op->s, fresh, &rename, 1)) != CKR_OK)
        return kp_p11_ck(pi, op, rv, false, "C_SetAttributeValue", "state document of %s", s->name);
    return KP_OK;
}

kp_status kp_p11_ks_state_get(void *inst, const char *name, uint8_t *doc, size_t *len)
{
    kp_p11_inst *pi = inst;
    s_state s = {name, NULL, 0, NULL, 0};
    kp_status st;

    if (len == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "state_get: len is NULL");
    if ((st = kp_p11_check_name(pi, name)) != KP_OK || (st = kp_p11_run(pi, s_get_op, &s)) != KP_OK)
        return st;
    if (doc == NULL || *len < s.outlen)
        st = kp_p11_err(pi, KP_ERR_BUFFER_TOO_SMALL, "state document needs %zu bytes", s.outlen);
    else
        memcpy(doc, s.out, s.outlen);
    *len = s.outlen;
    free(s.out);
    return st;
}

kp_status kp_p11_ks_state_put(void *inst, const char *name, const uint8_t *doc, size_t len)
{
    kp_p11_inst *pi = inst;
    s_state s = {name, doc, len, NULL, 0};
    kp_status st;

    if (doc == NULL || len == 0 || len > KP_STATE_MAX)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "state document of %zu bytes", len);
    if ((st = kp_p11_check_name(pi, name)) != KP_OK)
        return st;
    return kp_p11_run(pi, s_put_op, &s);
}
