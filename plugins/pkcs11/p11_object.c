/*
 * Key objects on the token. A key version is found by its label "<prefix><name>/v<version>";
 * PKCS#11 cannot search by label prefix, so listings read the labels of all key objects and
 * keep the ones that parse. Only canonical versions (1, 2, ... without leading zeros) count,
 * so "v01" and "v1" can never both name version 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "p11_internal.h"

bool kp_p11_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len >= KP_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

kp_status kp_p11_check_name(kp_p11_inst *pi, const char *name)
{
    if (name == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "key name is missing");
    if (kp_p11_name_ok(name))
        return KP_OK;
    /* The name itself may be garbage; do not echo it. */
    return kp_p11_err(pi, KP_ERR_INVALID_ARG,
                      "invalid key name: use 1-127 of [A-Za-z0-9._-], not starting with '.'");
}

kp_status kp_p11_label(kp_p11_inst *pi, const char *name, uint32_t version, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s%s/v%u", pi->prefix, name, version);

    if (n < 0 || (size_t)n >= size)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "object label for key %s is too long", name);
    return KP_OK;
}

/* "<prefix><name>/v<N>" -> name, N. */
static bool s_parse_label(const kp_p11_inst *pi, const char *label, char *name, uint32_t *version)
{
    size_t plen = strlen(pi->prefix), nlen;
    const char *rest, *slash, *d;
    uint64_t v = 0;

    if (strncmp(label, pi->prefix, plen) != 0)
        return false;
    rest = label + plen;
    if ((slash = strrchr(rest, '/')) == NULL || slash[1] != 'v' || slash[2] < '1' || slash[2] > '9')
        return false;
    for (d = slash + 2; *d != '\0'; d++) {
        if (*d < '0' || *d > '9')
            return false;
        v = v * 10 + (uint64_t)(*d - '0');
        if (v > UINT32_MAX)
            return false;
    }
    nlen = (size_t)(slash - rest);
    if (nlen == 0 || nlen >= KP_NAME_MAX)
        return false;
    memcpy(name, rest, nlen);
    name[nlen] = '\0';
    if (!kp_p11_name_ok(name))
        return false;
    *version = (uint32_t)v;
    return true;
}

/* All token objects matching tmpl; C_FindObjectsFinal always runs, or the session would stay
 * stuck in a search. */
static kp_status s_find(kp_p11_op *op, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl, CK_OBJECT_HANDLE **objs,
                        size_t *n)
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
    if (st != KP_OK) {
        free(all);
        return st;
    }
    *objs = all;
    *n = cnt;
    return KP_OK;
}

static uint32_t s_bits(const uint8_t *n, size_t len)
{
    uint32_t bits;

    while (len > 0 && n[0] == 0)
        n++, len--;
    if (len == 0)
        return 0;
    bits = (uint32_t)(len - 1) * 8;
    for (unsigned c = n[0]; c != 0; c >>= 1)
        bits++;
    return bits;
}

static bool s_avail(const CK_ATTRIBUTE *a)
{
    return a->ulValueLen != CK_UNAVAILABLE_INFORMATION;
}

static int64_t s_date(kp_p11_op *op, CK_OBJECT_HANDLE obj)
{
    CK_DATE date;
    CK_ATTRIBUTE a = {CKA_START_DATE, &date, sizeof(date)};

    if (op->f->C_GetAttributeValue(op->s, obj, &a, 1) != CKR_OK || a.ulValueLen != sizeof(date))
        return 0;
    return kp_p11_date_time(&date);
}

/* CKA_START_DATE of a key, read on its own: SoftHSM 2.6.1 stores it unencrypted in private
 * objects, then fails to decrypt it on reading (CKR_GENERAL_ERROR) and stops filling the
 * rest of the template. The public key of an RSA pair (not private) carries the same date. */
static int64_t s_created(kp_p11_op *op, CK_OBJECT_HANDLE obj, const char *rsa_label)
{
    CK_OBJECT_HANDLE pub;
    int64_t t = s_date(op, obj);

    if (t == 0 && rsa_label != NULL &&
        kp_p11_find_one(op, CKO_PUBLIC_KEY, rsa_label, &pub) == KP_OK)
        t = s_date(op, pub);
    return t;
}

/* Reads what a listing shows of a private or secret key object: 1 when it is one of ours, 0
 * when not (label, class or key type do not fit), -1 when the token failed (op->rv). */
static int s_read(kp_p11_op *op, CK_OBJECT_HANDLE obj, CK_OBJECT_CLASS cls, const char *want,
                  kp_p11_key *key)
{
    char label[KP_P11_OBJLABEL_MAX + 1];
    uint8_t mod[1024];
    CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
    CK_BBOOL extr = CK_FALSE;
    CK_ULONG vlen = 0, cap4 = cls == CKO_SECRET_KEY ? sizeof(vlen) : sizeof(mod);
    CK_ATTRIBUTE a[] = {
        {CKA_LABEL, label, KP_P11_OBJLABEL_MAX},
        {CKA_ID, key->id, sizeof(key->id)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_EXTRACTABLE, &extr, sizeof(extr)},
        {cls == CKO_SECRET_KEY ? CKA_VALUE_LEN : CKA_MODULUS,
         cls == CKO_SECRET_KEY ? (void *)&vlen : (void *)mod, cap4},
    };
    CK_RV rv;

    memset(key, 0, sizeof(*key));
    rv = op->f->C_GetAttributeValue(op->s, obj, a, sizeof(a) / sizeof(a[0]));
    /* These three still fill every attribute they can. */
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
        rv != CKR_BUFFER_TOO_SMALL) {
        op->rv = rv;
        return -1;
    }
    /* A module that reports more than it was given room for is not trusted with our buffers. */
    if (!s_avail(&a[0]) || !s_avail(&a[2]) || a[0].ulValueLen > KP_P11_OBJLABEL_MAX ||
        (s_avail(&a[1]) && a[1].ulValueLen > sizeof(key->id)) ||
        (s_avail(&a[4]) && a[4].ulValueLen > cap4))
        return 0;
    label[a[0].ulValueLen] = '\0';
    if (strlen(label) != a[0].ulValueLen || !s_parse_label(op->pi, label, key->name, &key->version))
        return 0;
    if (want != NULL && strcmp(key->name, want) != 0)
        return 0;
    if (cls == CKO_PRIVATE_KEY && kt == CKK_RSA)
        key->type = KP_KEY_RSA;
    else if (cls == CKO_SECRET_KEY && kt == CKK_AES)
        key->type = KP_KEY_AES;
    else
        return 0;
    key->obj = obj;
    key->idlen = s_avail(&a[1]) ? a[1].ulValueLen : 0;
    key->extractable = s_avail(&a[3]) && extr == CK_TRUE;
    if (s_avail(&a[4]))
        key->bits = key->type == KP_KEY_AES ? (uint32_t)vlen * 8 : s_bits(mod, a[4].ulValueLen);
    key->created = s_created(op, obj, key->type == KP_KEY_RSA ? label : NULL);
    return 1;
}

static int s_cmp(const void *a, const void *b)
{
    const kp_p11_key *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0)
        return c;
    return x->version < y->version ? -1 : x->version > y->version;
}

/* Two objects claiming one version are someone else's doing; the first one wins in listings,
 * and operations on that version refuse (kp_p11_key_find). */
static size_t s_dedup(kp_p11_inst *pi, kp_p11_key *keys, size_t n)
{
    size_t out = 0;

    for (size_t i = 0; i < n; i++) {
        if (out > 0 && s_cmp(&keys[out - 1], &keys[i]) == 0) {
            pi->up->log(pi->h, KP_LOG_WARN, "token holds several key objects for one version");
            continue;
        }
        keys[out++] = keys[i];
    }
    return out;
}

kp_status kp_p11_scan(kp_p11_op *op, const char *name, kp_p11_key **keys, size_t *n)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_SECRET_KEY};
    kp_p11_key *out = NULL;
    size_t cnt = 0, cap = 0;
    kp_status st = KP_OK;

    *keys = NULL;
    *n = 0;
    for (size_t c = 0; c < 2 && st == KP_OK; c++) {
        CK_OBJECT_CLASS cls = classes[c];
        CK_BBOOL yes = CK_TRUE;
        CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_TOKEN, &yes, sizeof(yes)}};
        CK_OBJECT_HANDLE *objs;
        size_t nobj;

        if ((st = s_find(op, tmpl, 2, &objs, &nobj)) != KP_OK)
            break;
        for (size_t i = 0; i < nobj; i++) {
            if (cnt == cap) {
                size_t ncap = cap == 0 ? 16 : cap * 2;
                kp_p11_key *p = realloc(out, ncap * sizeof(*p));

                if (p == NULL) {
                    st = kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
                    break;
                }
                out = p;
                cap = ncap;
            }
            int r = s_read(op, objs[i], cls, name, &out[cnt]);

            if (r > 0) {
                cnt++;
            } else if (r < 0 && op->rv == CKR_OBJECT_HANDLE_INVALID) {
                op->rv = CKR_OK; /* destroyed since the search: not there */
            } else if (r < 0) {
                st = kp_p11_ck(op->pi, op, op->rv, false, "C_GetAttributeValue", "token '%s'",
                               op->pi->token);
                break;
            }
        }
        free(objs);
    }
    if (st != KP_OK) {
        free(out);
        return st;
    }
    if (cnt > 1)
        qsort(out, cnt, sizeof(*out), s_cmp);
    cnt = s_dedup(op->pi, out, cnt);
    *keys = out;
    *n = cnt;
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
    CK_OBJECT_HANDLE *objs;
    size_t n;
    kp_status st;

    *obj = CK_INVALID_HANDLE;
    if ((st = s_find(op, tmpl, 3, &objs, &n)) != KP_OK)
        return st;
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

kp_status kp_p11_key_find(kp_p11_op *op, const char *name, uint32_t version, kp_p11_key *key)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_SECRET_KEY};
    kp_p11_inst *pi = op->pi;
    char label[KP_P11_OBJLABEL_MAX];
    kp_p11_key *keys;
    size_t n;
    kp_status st;

    if ((st = kp_p11_check_name(pi, name)) != KP_OK)
        return st;
    if (version == 0) {
        if ((st = kp_p11_scan(op, name, &keys, &n)) != KP_OK)
            return st;
        if (n > 0)
            *key = keys[n - 1];
        free(keys);
        if (n == 0)
            return kp_p11_err(pi, KP_ERR_NOT_FOUND, "key %s not found on token '%s'", name,
                              pi->token);
        return KP_OK;
    }
    if (kp_p11_cache_get(pi, name, version, key, NULL))
        return KP_OK;
    if ((st = kp_p11_label(pi, name, version, label, sizeof(label))) != KP_OK)
        return st;
    for (size_t c = 0; c < 2; c++) {
        CK_OBJECT_HANDLE obj;
        int r;

        st = kp_p11_find_one(op, classes[c], label, &obj);
        if (st == KP_ERR_NOT_FOUND)
            continue;
        if (st != KP_OK)
            return st;
        if ((r = s_read(op, obj, classes[c], name, key)) > 0) {
            kp_p11_cache_put(pi, key, CK_INVALID_HANDLE);
            return KP_OK;
        }
        if (r < 0)
            return kp_p11_ck(pi, op, op->rv, false, "C_GetAttributeValue", "key %s v%u", name,
                             version);
    }
    return kp_p11_err(pi, KP_ERR_NOT_FOUND, "key %s v%u not found on token '%s'", name, version,
                      pi->token);
}

kp_status kp_p11_attr(kp_p11_op *op, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type, uint8_t **val,
                      size_t *len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv;

    *val = NULL;
    *len = 0;
    rv = op->f->C_GetAttributeValue(op->s, obj, &a, 1);
    if (rv == CKR_OK && a.ulValueLen != CK_UNAVAILABLE_INFORMATION) {
        if ((a.pValue = malloc(a.ulValueLen > 0 ? a.ulValueLen : 1)) == NULL)
            return kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
        rv = op->f->C_GetAttributeValue(op->s, obj, &a, 1);
    }
    if (rv != CKR_OK) {
        free(a.pValue);
        return kp_p11_ck(op->pi, op, rv, false, "C_GetAttributeValue", "attribute 0x%lx",
                         (unsigned long)type);
    }
    *val = a.pValue;
    *len = a.ulValueLen;
    return KP_OK;
}

kp_status kp_p11_attr_secret(kp_p11_op *op, CK_OBJECT_HANDLE obj, kp_secret **out)
{
    const kp_p11_up *up = op->pi->up;
    CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};
    kp_secret *s;
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
    if ((rv = op->f->C_GetAttributeValue(op->s, obj, &a, 1)) != CKR_OK) {
        up->secret_free(s);
        return kp_p11_ck(op->pi, op, rv, false, "C_GetAttributeValue", "CKA_VALUE");
    }
    if (a.ulValueLen > asked || up->secret_shrink(s, a.ulValueLen) != KP_OK) {
        up->secret_free(s);
        return kp_p11_err(op->pi, KP_ERR_BACKEND, "token returned a CKA_VALUE longer than it said");
    }
    *out = s;
    return KP_OK;
}

kp_status kp_p11_obj_spki(kp_p11_op *op, CK_OBJECT_HANDLE obj, uint8_t **der, size_t *len)
{
    uint8_t *n = NULL, *e = NULL, *out;
    size_t nlen, elen;
    kp_status st;

    *der = NULL;
    if ((st = kp_p11_attr(op, obj, CKA_MODULUS, &n, &nlen)) == KP_OK &&
        (st = kp_p11_attr(op, obj, CKA_PUBLIC_EXPONENT, &e, &elen)) == KP_OK &&
        (st = kp_p11_spki_build(op->pi, n, nlen, e, elen, &out, len)) == KP_OK) {
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

kp_status kp_p11_key_public(kp_p11_op *op, const kp_p11_key *key, CK_OBJECT_HANDLE *obj,
                            uint8_t **der, size_t *len)
{
    kp_p11_inst *pi = op->pi;
    char label[KP_P11_OBJLABEL_MAX];
    uint8_t *spki, md[KP_P11_SHA256_LEN];
    size_t spkilen;
    kp_status st;

    if (der != NULL)
        *der = NULL;
    if (key->type != KP_KEY_RSA)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "key %s v%u is an AES key: no public key",
                          key->name, key->version);
    kp_p11_key cached;
    if (der == NULL && kp_p11_cache_get(pi, key->name, key->version, &cached, obj) &&
        cached.obj == key->obj)
        return KP_OK; /* checked against CKA_ID when it was cached */
    if ((st = kp_p11_label(pi, key->name, key->version, label, sizeof(label))) != KP_OK)
        return st;
    st = kp_p11_find_one(op, CKO_PUBLIC_KEY, label, obj);
    if (st == KP_ERR_NOT_FOUND)
        return kp_p11_err(pi, KP_ERR_NOT_FOUND, "key %s v%u has no public key object on token '%s'",
                          key->name, key->version, pi->token);
    if (st != KP_OK || (st = kp_p11_obj_spki(op, *obj, &spki, &spkilen)) != KP_OK)
        return st;
    /* CKA_ID is the fingerprint: a public key object swapped under our label would otherwise
     * capture every DEK wrapped under it. */
    kp_p11_sha256(spki, spkilen, md);
    if (key->idlen != KP_P11_SHA256_LEN || CRYPTO_memcmp(md, key->id, sizeof(md)) != 0) {
        free(spki);
        return kp_p11_err(pi, KP_ERR_INTEGRITY,
                          "public key object of key %s v%u does not match its CKA_ID", key->name,
                          key->version);
    }
    kp_p11_cache_put(pi, key, *obj);
    if (der != NULL) {
        *der = spki;
        *len = spkilen;
    } else {
        free(spki);
    }
    return KP_OK;
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
    if (rv != CKR_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot destroy object %lu on token '%s': %s",
                 (unsigned long)obj, op->pi->token, kp_p11_rv_name(rv, buf, sizeof(buf)));
        op->pi->up->log(op->pi->h, KP_LOG_WARN, msg);
    }
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
