/*
 * Which token objects are key versions, and finding them. A version N of key NAME is a private
 * (RSA) or secret (AES) key object labelled "<prefix>NAME/vN" that carries NAME's tag
 * (kp_p11_tag): PKCS#11 searches only by exact attribute values, never by a label prefix, so
 * the tag is what finds every version of one key without reading the other objects on the
 * token. One version is found by its exact label, the latest by the tag; only a listing of
 * every key reads all key objects. Only canonical versions (1, 2, ... without leading zeros)
 * count, so "v01" and "v1" can never both name version 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "p11_internal.h"

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
    if (!kpk_key_name_valid(name))
        return false;
    *version = (uint32_t)v;
    return true;
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

/* Whether an object read as a version of key->name carries that name's tag. */
static bool s_tagged(kp_p11_op *op, const kp_p11_key *key, const CK_ATTRIBUTE *subject)
{
    uint8_t want[KP_P11_TAG_MAX], aes_id[KP_P11_AES_ID_LEN];
    size_t len = 0;

    if (kp_p11_tag(op->pi, key->name, want, &len, aes_id) != KP_OK)
        return false;
    if (key->type == KP_KEY_AES)
        return key->idlen == KP_P11_AES_ID_LEN && memcmp(key->id, aes_id, sizeof(aes_id)) == 0;
    return s_avail(subject) && subject->ulValueLen == len &&
           memcmp(subject->pValue, want, len) == 0;
}

/* Reads what a listing shows of a private or secret key object: 1 when it is a version of a
 * key of ours (of want, when not NULL), 0 when not (label, tag, class or key type do not fit),
 * -1 when the token failed (op->rv). */
static int s_read(kp_p11_op *op, CK_OBJECT_HANDLE obj, CK_OBJECT_CLASS cls, const char *want,
                  kp_p11_key *key)
{
    char label[KP_P11_OBJLABEL_MAX + 1];
    uint8_t mod[1024], subj[KP_P11_TAG_MAX];
    CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
    CK_BBOOL extr = CK_FALSE;
    bool secret = cls == CKO_SECRET_KEY;
    CK_ULONG vlen = 0, cap4 = secret ? sizeof(vlen) : sizeof(mod);
    CK_ATTRIBUTE a[] = {
        {CKA_LABEL, label, KP_P11_OBJLABEL_MAX},
        {CKA_ID, key->id, sizeof(key->id)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_EXTRACTABLE, &extr, sizeof(extr)},
        {secret ? CKA_VALUE_LEN : CKA_MODULUS, secret ? (void *)&vlen : (void *)mod, cap4},
        {CKA_SUBJECT, subj, sizeof(subj)}, /* private keys only: secret keys have none */
    };
    CK_ULONG na = sizeof(a) / sizeof(a[0]) - (secret ? 1 : 0);
    CK_RV rv;

    memset(key, 0, sizeof(*key));
    rv = op->f->C_GetAttributeValue(op->s, obj, a, na);
    /* These three still fill every attribute they can. */
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
        rv != CKR_BUFFER_TOO_SMALL) {
        op->rv = rv;
        return -1;
    }
    /* A module that reports more than it was given room for is not trusted with our buffers. */
    if (!s_avail(&a[0]) || !s_avail(&a[2]) || a[0].ulValueLen > KP_P11_OBJLABEL_MAX ||
        (s_avail(&a[1]) && a[1].ulValueLen > sizeof(key->id)) ||
        (s_avail(&a[4]) && a[4].ulValueLen > cap4) ||
        (!secret && s_avail(&a[5]) && a[5].ulValueLen > sizeof(subj)))
        return 0;
    label[a[0].ulValueLen] = '\0';
    if (strlen(label) != a[0].ulValueLen || !s_parse_label(op->pi, label, key->name, &key->version))
        return 0;
    if (want != NULL && strcmp(key->name, want) != 0)
        return 0;
    if (cls == CKO_PRIVATE_KEY && kt == CKK_RSA)
        key->type = KP_KEY_RSA;
    else if (secret && kt == CKK_AES)
        key->type = KP_KEY_AES;
    else
        return 0;
    key->obj = obj;
    key->idlen = s_avail(&a[1]) ? a[1].ulValueLen : 0;
    if (!s_tagged(op, key, &a[5]))
        return 0;
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

/* The token key objects of class cls: all of them (name NULL) or those carrying name's tag. */
static kp_status s_search(kp_p11_op *op, CK_OBJECT_CLASS cls, const char *name,
                          CK_OBJECT_HANDLE **objs, size_t *n)
{
    uint8_t subject[KP_P11_TAG_MAX], aes_id[KP_P11_AES_ID_LEN];
    size_t len = 0;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_SUBJECT, subject, 0},
    };

    if (name == NULL)
        return kp_p11_find_all(op, tmpl, 2, objs, n);
    KP_GUARD(kp_p11_tag(op->pi, name, subject, &len, aes_id));
    if (cls == CKO_SECRET_KEY) {
        tmpl[2].type = CKA_ID;
        tmpl[2].pValue = aes_id;
        tmpl[2].ulValueLen = sizeof(aes_id);
    } else {
        tmpl[2].ulValueLen = len;
    }
    return kp_p11_find_all(op, tmpl, 3, objs, n);
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
        CK_OBJECT_HANDLE *objs;
        size_t nobj;

        if ((st = s_search(op, classes[c], name, &objs, &nobj)) != KP_OK)
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
            int r = s_read(op, objs[i], classes[c], name, &out[cnt]);

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
    if (st == KP_OK) {
        if (cnt > 1)
            qsort(out, cnt, sizeof(*out), s_cmp);
        *keys = out;
        *n = s_dedup(op->pi, out, cnt);
        out = NULL;
    }
    free(out);
    return st;
}

/* One object carrying a key's tag, as far as its label tells. */
typedef struct s_cand {
    uint32_t version;
    CK_OBJECT_CLASS cls;
    CK_OBJECT_HANDLE obj;
} s_cand;

static int s_cand_cmp(const void *a, const void *b)
{
    const s_cand *x = a, *y = b;
    return x->version < y->version ? 1 : x->version > y->version ? -1 : 0; /* newest first */
}

/* Adds the objects of cls carrying name's tag whose label is a version of name. Only the label
 * is read here; the full read (s_read) is for the one chosen. */
static kp_status s_candidates(kp_p11_op *op, CK_OBJECT_CLASS cls, const char *name, s_cand **c,
                              size_t *n, size_t *cap)
{
    CK_OBJECT_HANDLE *objs;
    size_t nobj;
    kp_status st = s_search(op, cls, name, &objs, &nobj);

    for (size_t i = 0; st == KP_OK && i < nobj; i++) {
        char label[KP_P11_OBJLABEL_MAX + 1], got[KP_NAME_MAX];
        CK_ATTRIBUTE a = {CKA_LABEL, label, KP_P11_OBJLABEL_MAX};
        uint32_t v;
        CK_RV rv = op->f->C_GetAttributeValue(op->s, objs[i], &a, 1);

        if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_BUFFER_TOO_SMALL)
            continue; /* destroyed since the search; or a label longer than ours */
        if (rv != CKR_OK) {
            st = kp_p11_ck(op->pi, op, rv, false, "C_GetAttributeValue", "token '%s'",
                           op->pi->token);
            break;
        }
        if (a.ulValueLen > KP_P11_OBJLABEL_MAX)
            continue;
        label[a.ulValueLen] = '\0';
        if (strlen(label) != a.ulValueLen || !s_parse_label(op->pi, label, got, &v) ||
            strcmp(got, name) != 0)
            continue;
        if (*n == *cap) {
            size_t ncap = *cap == 0 ? 8 : *cap * 2;
            s_cand *p = realloc(*c, ncap * sizeof(*p));

            if (p == NULL) {
                st = kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
                break;
            }
            *c = p;
            *cap = ncap;
        }
        (*c)[(*n)++] = (s_cand){v, cls, objs[i]};
    }
    free(objs);
    return st;
}

/* The newest version of name: the objects carrying its tag, newest label first, the first that
 * reads as a version of name. Two objects of that version are refused, as by label. */
static kp_status s_latest(kp_p11_op *op, const char *name, kp_p11_key *key)
{
    kp_p11_inst *pi = op->pi;
    s_cand *c = NULL;
    size_t n = 0, cap = 0;
    bool found = false;
    kp_status st = s_candidates(op, CKO_PRIVATE_KEY, name, &c, &n, &cap);

    if (st == KP_OK)
        st = s_candidates(op, CKO_SECRET_KEY, name, &c, &n, &cap);
    if (st == KP_OK && n > 1)
        qsort(c, n, sizeof(*c), s_cand_cmp);
    for (size_t i = 0; st == KP_OK && !found && i < n; i++) {
        int r = s_read(op, c[i].obj, c[i].cls, name, key);

        if (r < 0 && op->rv == CKR_OBJECT_HANDLE_INVALID) {
            op->rv = CKR_OK; /* destroyed since the search: not there */
        } else if (r < 0) {
            st = kp_p11_ck(pi, op, op->rv, false, "C_GetAttributeValue", "key %s", name);
        } else if (r > 0) {
            found = true;
            kp_p11_key other;
            if (i + 1 < n && c[i + 1].version == c[i].version &&
                s_read(op, c[i + 1].obj, c[i + 1].cls, name, &other) > 0)
                st = kp_p11_err(pi, KP_ERR_INTEGRITY,
                                "token '%s' holds several key objects for %s v%u", pi->token, name,
                                c[i].version);
        }
    }
    free(c);
    if (st == KP_OK && !found)
        st = kp_p11_err(pi, KP_ERR_NOT_FOUND, "key %s not found on token '%s'", name, pi->token);
    return st;
}

kp_status kp_p11_key_find(kp_p11_op *op, const char *name, uint32_t version, kp_p11_key *key)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_SECRET_KEY};
    kp_p11_inst *pi = op->pi;
    char label[KP_P11_OBJLABEL_MAX];
    kp_status st;

    KP_GUARD(kp_p11_check_name(pi, name));
    if (version == 0) {
        KP_GUARD(s_latest(op, name, key));
        kp_p11_cache_put(pi, key, CK_INVALID_HANDLE);
        return KP_OK;
    }
    if (kp_p11_cache_get(pi, name, version, key, NULL))
        return KP_OK;
    KP_GUARD(kp_p11_label(pi, name, version, label, sizeof(label)));
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
