/*
 * Token objects in general: searches, attribute reads, the public half of an RSA key version,
 * the session keys of imports, exports and probes, labels being set, cleanup. Which objects are
 * key versions is decided in p11_lookup.c; how they are named, in p11_label.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>

#include "p11_internal.h"

/* C_FindObjectsFinal always runs, or the session would stay stuck in a search. */
kp_status kp_p11_find_all(kp_p11_op *op, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
                          CK_OBJECT_HANDLE **objs, size_t *n)
{
    kp_p11_inst *pi = op->pi;
    CK_OBJECT_HANDLE *all = NULL, batch[64];
    size_t cnt = 0, cap = 0;
    kp_status st = KP_OK;
    CK_ULONG got;
    CK_RV rv;

    *objs = NULL;
    *n = 0;
    if ((rv = op->f->C_FindObjectsInit(op->s, tmpl, ntmpl)) != CKR_OK)
        return kp_p11_ck(pi, op, rv, false, "C_FindObjectsInit", "token '%s'", pi->token);
    for (;;) {
        if ((rv = op->f->C_FindObjects(op->s, batch, 64, &got)) != CKR_OK) {
            st = kp_p11_ck(pi, op, rv, false, "C_FindObjects", "token '%s'", pi->token);
            break;
        }
        if (got == 0)
            break;
        if (cnt + got > cap) {
            size_t ncap = cap == 0 ? 64 : cap * 2;
            CK_OBJECT_HANDLE *p;

            while (ncap < cnt + got)
                ncap *= 2;
            if ((p = realloc(all, ncap * sizeof(*p))) == NULL) {
                st = kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
                break;
            }
            all = p;
            cap = ncap;
        }
        memcpy(all + cnt, batch, got * sizeof(*batch));
        cnt += got;
    }
    rv = op->f->C_FindObjectsFinal(op->s);
    if (st == KP_OK && rv != CKR_OK)
        st = kp_p11_ck(pi, op, rv, false, "C_FindObjectsFinal", "token '%s'", pi->token);
    if (st == KP_OK) {
        *objs = all;
        *n = cnt;
        all = NULL;
    }
    free(all);
    return st;
}

/* The one object matching tmpl: KP_ERR_NOT_FOUND without text when none, KP_ERR_INTEGRITY
 * naming label when several. */
static kp_status s_find_one(kp_p11_op *op, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl, const char *label,
                            CK_OBJECT_HANDLE *obj)
{
    CK_OBJECT_HANDLE *objs;
    size_t n;

    *obj = CK_INVALID_HANDLE;
    KP_GUARD(kp_p11_find_all(op, tmpl, ntmpl, &objs, &n));
    if (n == 1)
        *obj = objs[0];
    free(objs);
    if (n == 0)
        return KP_ERR_NOT_FOUND;
    if (n > 1)
        return kp_p11_err(op->pi, KP_ERR_INTEGRITY, "token '%s' holds %zu objects labelled '%s'",
                          op->pi->token, n, label);
    return KP_OK;
}

kp_status kp_p11_find_one(kp_p11_op *op, CK_OBJECT_CLASS cls, const char *label,
                          CK_OBJECT_HANDLE *obj)
{
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };

    return s_find_one(op, tmpl, 3, label, obj);
}

kp_status kp_p11_find_pub(kp_p11_op *op, const char *label, const uint8_t *id, size_t idlen,
                          CK_OBJECT_HANDLE *obj)
{
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, idlen},
    };

    return s_find_one(op, tmpl, 4, label, obj);
}

kp_status kp_p11_attr(kp_p11_op *op, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type, uint8_t **val,
                      size_t *len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};
    kp_status st = KP_OK;
    CK_RV rv;

    *val = NULL;
    *len = 0;
    rv = op->f->C_GetAttributeValue(op->s, obj, &a, 1);
    if (rv == CKR_OK && a.ulValueLen != CK_UNAVAILABLE_INFORMATION) {
        if ((a.pValue = malloc(a.ulValueLen > 0 ? a.ulValueLen : 1)) == NULL)
            return kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
        rv = op->f->C_GetAttributeValue(op->s, obj, &a, 1);
    }
    if (rv != CKR_OK)
        st = kp_p11_ck(op->pi, op, rv, false, "C_GetAttributeValue", "attribute 0x%lx",
                       (unsigned long)type);
    if (st == KP_OK) {
        *val = a.pValue;
        *len = a.ulValueLen;
        a.pValue = NULL;
    }
    free(a.pValue);
    return st;
}

kp_status kp_p11_attr_secret(kp_p11_op *op, CK_OBJECT_HANDLE obj, kp_secret **out)
{
    const kp_p11_up *up = op->pi->up;
    CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};
    kp_secret *s;
    kp_status st = KP_OK;
    CK_RV rv;

    *out = NULL;
    rv = op->f->C_GetAttributeValue(op->s, obj, &a, 1);
    if (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        rv = CKR_ATTRIBUTE_SENSITIVE;
    if (rv != CKR_OK)
        return kp_p11_ck(op->pi, op, rv, false, "C_GetAttributeValue", "CKA_VALUE");
    if ((s = up->secret_new(a.ulValueLen)) == NULL)
        return kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
    a.pValue = up->secret_data(s);
    CK_ULONG asked = a.ulValueLen;
    if ((rv = op->f->C_GetAttributeValue(op->s, obj, &a, 1)) != CKR_OK)
        st = kp_p11_ck(op->pi, op, rv, false, "C_GetAttributeValue", "CKA_VALUE");
    if (st == KP_OK) {
        st = a.ulValueLen <= asked ? up->secret_shrink(s, a.ulValueLen) : KP_ERR_BACKEND;
        if (st != KP_OK)
            st = kp_p11_err(op->pi, KP_ERR_BACKEND,
                            "token returned a CKA_VALUE longer than it said");
    }
    if (st == KP_OK) {
        *out = s;
        s = NULL;
    }
    up->secret_free(s);
    return st;
}

kp_status kp_p11_obj_spki(kp_p11_op *op, CK_OBJECT_HANDLE obj, uint8_t **der, size_t *len)
{
    uint8_t *n = NULL, *e = NULL, *out;
    size_t nlen, elen;
    kp_status st = KP_OK;

    *der = NULL;
    st = kp_p11_attr(op, obj, CKA_MODULUS, &n, &nlen);
    if (st == KP_OK)
        st = kp_p11_attr(op, obj, CKA_PUBLIC_EXPONENT, &e, &elen);
    if (st == KP_OK)
        st = kp_p11_spki_build(op->pi, n, nlen, e, elen, &out, len);
    if (st == KP_OK) {
        /* Hand out malloc'ed memory so callers need not know it came from OpenSSL. */
        if ((*der = malloc(*len)) != NULL)
            memcpy(*der, out, *len);
        else
            st = kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
        OPENSSL_free(out);
    }
    free(n);
    free(e);
    return st;
}

void kp_p11_destroy(kp_p11_op *op, CK_OBJECT_HANDLE obj)
{
    char buf[40];
    CK_RV rv;

    if (obj == CK_INVALID_HANDLE)
        return;
    rv = op->f->C_DestroyObject(op->s, obj);
    if (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED) {
        /* Token objects outlive the session that made them: clean up on a fresh one, or a
         * session lost half-way through a create would leave an orphan behind. */
        CK_SESSION_HANDLE s;
        rv = op->f->C_OpenSession(op->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
        if (rv == CKR_OK) {
            rv = op->f->C_DestroyObject(s, obj);
            op->f->C_CloseSession(s);
        }
    }
    if (rv != CKR_OK)
        kp_logf(op->pi->up, op->pi->h, KP_LOG_WARN, "cannot destroy object %lu on token '%s': %s",
                (unsigned long)obj, op->pi->token, kp_p11_rv_name(rv, buf, sizeof(buf)));
}

kp_status kp_p11_session_secret(kp_p11_op *op, CK_KEY_TYPE kt, const kp_secret *value,
                                bool transport, const char *what, CK_OBJECT_HANDLE *obj)
{
    const kp_p11_up *up = op->pi->up;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    /* A transport key may only unwrap and never leave; a DEK copy must be wrappable out. */
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, transport ? &yes : &no, sizeof(CK_BBOOL)},
        {CKA_EXTRACTABLE, transport ? &no : &yes, sizeof(CK_BBOOL)},
        {CKA_VALUE, (void *)up->secret_cdata(value), up->secret_len(value)},
        {CKA_UNWRAP, &yes, sizeof(yes)},
    };
    CK_ULONG n = sizeof(t) / sizeof(t[0]) - (transport ? 0 : 1);
    CK_RV rv = op->f->C_CreateObject(op->s, t, n, obj);

    if (rv != CKR_OK)
        return kp_p11_ck(op->pi, op, rv, false, "C_CreateObject", "%s", what);
    return KP_OK;
}

CK_RV kp_p11_session_aes(kp_p11_op *op, bool readable, bool private_obj, CK_OBJECT_HANDLE *obj)
{
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG len = KP_P11_WRAP_KEY_LEN;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, private_obj ? &yes : &no, sizeof(CK_BBOOL)},
        {CKA_SENSITIVE, readable ? &no : &yes, sizeof(CK_BBOOL)},
        {CKA_EXTRACTABLE, &yes, sizeof(yes)},
        {CKA_WRAP, &yes, sizeof(yes)},
    };

    return op->f->C_GenerateKey(op->s, &mech, t, sizeof(t) / sizeof(t[0]), obj);
}

kp_status kp_p11_relabel(kp_p11_op *op, CK_OBJECT_HANDLE obj, const uint8_t *id, size_t idlen,
                         const char *label)
{
    CK_ATTRIBUTE a[] = {
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, idlen},
    };
    CK_RV rv = op->f->C_SetAttributeValue(op->s, obj, a, id != NULL ? 2 : 1);

    /* New versions and state documents are made under one label and renamed: a token that
     * refuses renaming cannot hold them safely while other writers may race. */
    if (rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_ACTION_PROHIBITED ||
        rv == CKR_FUNCTION_NOT_SUPPORTED || rv == CKR_TEMPLATE_INCONSISTENT)
        return kp_p11_ck_as(op->pi, op, rv, KP_ERR_UNSUPPORTED, "C_SetAttributeValue",
                            "token '%s' does not let keyplane set CKA_LABEL%s of its objects: "
                            "new versions are made under a pending label and renamed to '%s' "
                            "once they win against other writers",
                            op->pi->token, id != NULL ? " and CKA_ID" : "", label);
    if (rv != CKR_OK)
        return kp_p11_ck(op->pi, op, rv, false, "C_SetAttributeValue", "labelling '%s'", label);
    return KP_OK;
}
