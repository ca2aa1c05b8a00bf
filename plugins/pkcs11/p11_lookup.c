/*
 * Which token objects are key versions, and which one a reader uses. A version N of key NAME is
 * a private (RSA) or secret (AES) key object that carries NAME's tag (kp_p11_tag) and is labelled
 * "<prefix>NAME/vN" (published) or "<prefix>NAME/vN~<time>~<random>" (pending: a writer made it
 * and has not yet won the version, p11_version.c). PKCS#11 searches only by exact attribute
 * values, never by a label prefix, so the tag is what finds every object of one key without
 * reading the other objects on the token; only a listing of every key reads all key objects.
 * Only canonical versions (1, 2, ... without leading zeros) count, so "v01" and "v1" can never
 * both name version 1.
 *
 * Several objects may claim one version while writers race (or after a crash). Every reader
 * and writer orders them the same way (kp_p11_vobj_order) and readers use the first one only:
 * when it is pending the version is being created (KP_ERR_UNAVAILABLE), never another object.
 * A pending object older than KP_P11_STALE_S seconds is a dead writer's and counts for nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "p11_internal.h"

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

/* The public key object of an RSA key version labelled label (its published label), found in
 * the instance's listing of the token when it has one, else by a search. */
static kp_status s_find_pub(kp_p11_op *op, const kp_p11_key *key, const char *label,
                            CK_OBJECT_HANDLE *obj)
{
    kp_p11_snap *s = kp_p11_snap_get(op, false, NULL);
    bool found = s != NULL && kp_p11_snap_pub(s, key->name, key->version, key->id, key->idlen, obj);

    if (s != NULL)
        kp_p11_snap_put(op->pi, s);
    return found ? KP_OK : kp_p11_find_pub(op, label, key->id, key->idlen, obj);
}

/* CKA_START_DATE of a key, read on its own: SoftHSM 2.6.1 stores it unencrypted in private
 * objects, then fails to decrypt it on reading (CKR_GENERAL_ERROR) and stops filling the
 * rest of the template. The public key of an RSA pair (not private) carries the same date. */
static int64_t s_created(kp_p11_op *op, const kp_p11_key *key, const char *rsa_label)
{
    CK_OBJECT_HANDLE pub;
    int64_t t = s_date(op, key->obj);

    if (t == 0 && rsa_label != NULL && s_find_pub(op, key, rsa_label, &pub) == KP_OK)
        t = s_date(op, pub);
    return t;
}

kp_status kp_p11_key_public(kp_p11_op *op, const kp_p11_key *key, CK_OBJECT_HANDLE *obj,
                            uint8_t **der, size_t *len)
{
    kp_p11_inst *pi = op->pi;
    char label[KP_P11_OBJLABEL_MAX], fpr[KPK_FPR_HEX];
    uint8_t *spki, md[KP_P11_SHA256_LEN];
    size_t spkilen;
    kp_status st = KP_OK;

    if (der != NULL)
        *der = NULL;
    if (key->type != KP_KEY_RSA)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "key %s v%u is an AES key: no public key",
                          key->name, key->version);
    kp_p11_key cached;
    if (der == NULL && kp_p11_cache_get(pi, key->name, key->version, &cached, obj) &&
        cached.obj == key->obj)
        return KP_OK; /* checked against CKA_ID when it was cached */
    KP_GUARD(kp_p11_label(pi, key->name, key->version, label, sizeof(label)));
    /* By label and ID: while writers race, the label may be on several pairs for a moment. */
    st = s_find_pub(op, key, label, obj);
    if (st == KP_ERR_NOT_FOUND)
        st = kp_p11_err(pi, KP_ERR_NOT_FOUND, "key %s v%u has no public key object on token '%s'",
                        key->name, key->version, pi->token);
    KP_GUARD(st);
    KP_GUARD(kp_p11_obj_spki(op, *obj, &spki, &spkilen));
    /* CKA_ID is the fingerprint: a public key object swapped under our label would otherwise
     * capture every DEK wrapped under it. */
    st = kp_p11_spki_id(pi, spki, spkilen, fpr, md);
    if (st == KP_OK &&
        (key->idlen != KP_P11_SHA256_LEN || CRYPTO_memcmp(md, key->id, sizeof(md)) != 0))
        st = kp_p11_err(pi, KP_ERR_INTEGRITY,
                        "public key object of key %s v%u does not match its CKA_ID", key->name,
                        key->version);
    if (st == KP_OK) {
        kp_p11_cache_put(pi, key, *obj);
        if (der != NULL) {
            *der = spki;
            *len = spkilen;
            spki = NULL;
        }
    }
    free(spki);
    return st;
}

/* Reads what a listing shows of the published object of a version (a resolved winner): 1 when
 * it is a version of a key of ours (of want, when not NULL), 0 when not (label, tag, class or
 * key type do not fit), -1 when the token failed (op->rv). */
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
    kp_p11_label_info at;
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
    if (strlen(label) != a[0].ulValueLen || !kp_p11_label_parse(op->pi, label, &at) || at.pending)
        return 0;
    if (want != NULL && strcmp(at.name, want) != 0)
        return 0;
    memcpy(key->name, at.name, sizeof(key->name));
    key->version = at.version;
    if (cls == CKO_PRIVATE_KEY && kt == CKK_RSA)
        key->type = KP_KEY_RSA;
    else if (secret && kt == CKK_AES)
        key->type = KP_KEY_AES;
    else
        return 0;
    /* An ID too long for ours: not ours (kp_p11_vjudge). */
    if (!s_avail(&a[1]) && kp_p11_id_too_long(op, obj))
        return 0;
    key->obj = obj;
    key->idlen = s_avail(&a[1]) ? a[1].ulValueLen : 0;
    if (!kp_p11_tagged(op->pi, key->name, cls, key->id, key->idlen, &a[5]))
        return 0;
    key->extractable = s_avail(&a[3]) && extr == CK_TRUE;
    if (s_avail(&a[4]))
        key->bits =
            key->type == KP_KEY_AES ? (uint32_t)vlen * 8 : kp_p11_bits(mod, a[4].ulValueLen);
    key->created = s_created(op, key, key->type == KP_KEY_RSA ? label : NULL);
    return 1;
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

/* Reads the label, ID and tag of a key object: 1 when it is an object (published or pending) of
 * a version of ours (of name and version, when not NULL and 0), 0 when not, -1 when the token
 * failed (op->rv). */
static int s_vread(kp_p11_op *op, CK_OBJECT_HANDLE obj, CK_OBJECT_CLASS cls, const char *name,
                   uint32_t version, kp_p11_vobj *o)
{
    uint8_t subj[KP_P11_TAG_MAX];
    CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
    bool secret = cls == CKO_SECRET_KEY;
    CK_ATTRIBUTE a[] = {
        {CKA_LABEL, o->label, KP_P11_OBJLABEL_MAX},
        {CKA_ID, o->id, sizeof(o->id)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_SUBJECT, subj, sizeof(subj)}, /* private keys only */
    };
    CK_RV rv;

    memset(o, 0, sizeof(*o));
    rv = op->f->C_GetAttributeValue(op->s, obj, a, secret ? 3 : 4);
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
        rv != CKR_BUFFER_TOO_SMALL) {
        op->rv = rv;
        return -1;
    }
    return kp_p11_vjudge(op, cls, obj, a, name, version, o);
}

kp_status kp_p11_vobjs(kp_p11_op *op, const char *name, uint32_t version, kp_p11_vobj **objs,
                       size_t *n)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_SECRET_KEY};
    kp_p11_vobj *out = NULL;
    size_t cnt = 0, cap = 0;
    kp_status st = KP_OK;

    *objs = NULL;
    *n = 0;
    for (size_t c = 0; c < 2 && st == KP_OK; c++) {
        CK_OBJECT_HANDLE *found;
        size_t nfound;

        if ((st = s_search(op, classes[c], name, &found, &nfound)) != KP_OK)
            break;
        for (size_t i = 0; i < nfound; i++) {
            if (cnt == cap) {
                size_t ncap = cap == 0 ? 8 : cap * 2;
                kp_p11_vobj *p = realloc(out, ncap * sizeof(*p));

                if (p == NULL) {
                    st = kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
                    break;
                }
                out = p;
                cap = ncap;
            }
            int r = s_vread(op, found[i], classes[c], name, version, &out[cnt]);

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
        free(found);
    }
    if (st == KP_OK) {
        *objs = out;
        *n = cnt;
        out = NULL;
    }
    free(out);
    return st;
}

/* The key objects of name and version as kp_p11_vobjs finds them, from the instance's listing
 * of the token when it has one or wants one now (take). exact: a numbered version the listing
 * does not show as readers resolve it (absent, or being created) is searched for on the token:
 * it may be younger than the listing. */
static kp_status s_vobjs_read(kp_p11_op *op, const char *name, uint32_t version, bool take,
                              bool exact, kp_p11_vobj **objs, size_t *n)
{
    kp_p11_snap *s = kp_p11_snap_get(op, take, name);

    if (s != NULL) {
        kp_status st = kp_p11_snap_vobjs(op->pi, s, name, version, objs, n);
        size_t win;

        kp_p11_snap_put(op->pi, s);
        if (st != KP_OK || !exact ||
            (*n > 0 && kp_p11_vobj_resolve(*objs, *n, (int64_t)time(NULL), &win) == KP_OK))
            return st;
        free(*objs);
    }
    return kp_p11_vobjs(op, name, version, objs, n);
}

/* Which objects come first: an RSA key still without its CKA_ID (its writer is between
 * generating and naming it: its place is unknown, so it blocks), then a published AES key
 * (AES keys carry no order of their own once published), then by CKA_ID (RSA: the
 * fingerprint) or by the random part of the pending label (AES). */
static int s_rank(const kp_p11_vobj *o)
{
    if (o->cls == CKO_PRIVATE_KEY)
        return o->idlen == 0 ? 0 : 2;
    return o->at.pending ? 2 : 1;
}

int kp_p11_vobj_order(const kp_p11_vobj *a, const kp_p11_vobj *b)
{
    int ra = s_rank(a), rb = s_rank(b), c;
    const uint8_t *ka, *kb;
    size_t la, lb;

    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (ra == 2) {
        ka = a->cls == CKO_PRIVATE_KEY ? a->id : a->at.rnd;
        la = a->cls == CKO_PRIVATE_KEY ? a->idlen : KP_P11_PENDING_RND;
        kb = b->cls == CKO_PRIVATE_KEY ? b->id : b->at.rnd;
        lb = b->cls == CKO_PRIVATE_KEY ? b->idlen : KP_P11_PENDING_RND;
        if (la != lb)
            return la < lb ? -1 : 1;
        if ((c = memcmp(ka, kb, la)) != 0)
            return c < 0 ? -1 : 1;
    }
    /* The same key twice (one key imported by two writers): published first, then by label. */
    if (a->at.pending != b->at.pending)
        return a->at.pending ? 1 : -1;
    c = strcmp(a->label, b->label);
    return c < 0 ? -1 : c > 0;
}

bool kp_p11_vobj_stale(const kp_p11_vobj *o, int64_t now)
{
    return o->at.pending && now - o->at.since > KP_P11_STALE_S;
}

kp_status kp_p11_vobj_resolve(const kp_p11_vobj *objs, size_t n, int64_t now, size_t *win)
{
    size_t best = n;

    for (size_t i = 0; i < n; i++) {
        if (kp_p11_vobj_stale(&objs[i], now))
            continue;
        if (best == n || kp_p11_vobj_order(&objs[i], &objs[best]) < 0)
            best = i;
    }
    if (best == n)
        return KP_ERR_NOT_FOUND;
    if (objs[best].at.pending)
        return KP_ERR_UNAVAILABLE;
    /* Two published AES keys of one version have no order: neither is used. */
    for (size_t i = 0; i < n; i++)
        if (i != best && !objs[i].at.pending && s_rank(&objs[i]) == 1 && s_rank(&objs[best]) == 1)
            return KP_ERR_INTEGRITY;
    *win = best;
    return KP_OK;
}

static int s_by_version(const void *a, const void *b)
{
    const kp_p11_vobj *x = a, *y = b;
    int c = strcmp(x->at.name, y->at.name);

    if (c != 0)
        return c;
    return x->at.version < y->at.version ? -1 : x->at.version > y->at.version;
}

/* The reader's answer for one version (objs: all of it), with the detail set on failure. */
static kp_status s_resolve(kp_p11_op *op, const kp_p11_vobj *objs, size_t n, const char *name,
                           uint32_t version, size_t *win)
{
    kp_p11_inst *pi = op->pi;
    kp_status st = kp_p11_vobj_resolve(objs, n, (int64_t)time(NULL), win);

    if (st == KP_ERR_NOT_FOUND)
        return kp_p11_err(pi, st, "key %s v%u not found on token '%s'", name, version, pi->token);
    if (st == KP_ERR_UNAVAILABLE)
        return kp_p11_err(pi, st,
                          "key %s v%u is being created on token '%s' (a writer's object is "
                          "pending); retry",
                          name, version, pi->token);
    if (st == KP_ERR_INTEGRITY)
        return kp_p11_err(pi, st, "token '%s' holds several key objects for %s v%u", pi->token,
                          name, version);
    return st;
}

/* Reads the winner of one version into key (from what a listing of the token read of it, when
 * it read everything). */
static kp_status s_winner(kp_p11_op *op, const kp_p11_vobj *o, kp_p11_key *key)
{
    if (o->full) {
        memset(key, 0, sizeof(*key));
        memcpy(key->name, o->at.name, sizeof(key->name));
        key->version = o->at.version;
        key->type = o->cls == CKO_SECRET_KEY ? KP_KEY_AES : KP_KEY_RSA;
        key->obj = o->obj;
        memcpy(key->id, o->id, o->idlen);
        key->idlen = o->idlen;
        key->bits = o->bits;
        key->extractable = o->extractable;
        key->created = o->created;
        return KP_OK;
    }
    int r = s_read(op, o->obj, o->cls, o->at.name, key);

    if (r < 0)
        return kp_p11_ck(op->pi, op, op->rv, false, "C_GetAttributeValue", "key %s v%u", o->at.name,
                         o->at.version);
    if (r == 0) /* changed under us since it was listed */
        return kp_p11_err(op->pi, KP_ERR_UNAVAILABLE,
                          "key %s v%u changed on token '%s' while it was read; retry", o->at.name,
                          o->at.version, op->pi->token);
    return KP_OK;
}

kp_status kp_p11_scan(kp_p11_op *op, const char *name, kp_p11_key **keys, size_t *n)
{
    kp_p11_vobj *objs = NULL;
    kp_p11_key *out = NULL;
    size_t nobj = 0, cnt = 0;
    int64_t now = (int64_t)time(NULL);
    kp_status st = s_vobjs_read(op, name, 0, true, false, &objs, &nobj);

    *keys = NULL;
    *n = 0;
    if (st == KP_OK && nobj > 0) {
        qsort(objs, nobj, sizeof(*objs), s_by_version);
        if ((out = calloc(nobj, sizeof(*out))) == NULL)
            st = kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
    }
    /* One entry per version: its winner. A version being created, or held twice where no
     * order applies, is left out of the listing (it is not there yet for anyone). */
    for (size_t i = 0, j; st == KP_OK && i < nobj; i = j) {
        size_t win;
        kp_status r;

        for (j = i + 1; j < nobj && s_by_version(&objs[i], &objs[j]) == 0; j++)
            ;
        r = kp_p11_vobj_resolve(objs + i, j - i, now, &win);
        if (r == KP_ERR_INTEGRITY)
            op->pi->up->log(op->pi->h, KP_LOG_WARN,
                            "token holds several key objects for one version");
        if (r != KP_OK)
            continue;
        st = s_winner(op, &objs[i + win], &out[cnt]);
        if (st == KP_OK) {
            cnt++;
        } else if (op->rv == CKR_OBJECT_HANDLE_INVALID || st == KP_ERR_UNAVAILABLE) {
            op->rv = CKR_OK; /* gone or renamed since the search: not there */
            st = KP_OK;
        }
    }
    free(objs);
    if (st == KP_OK) {
        *keys = out;
        *n = cnt;
        out = NULL;
    }
    free(out);
    return st;
}

/* The newest version of name: the highest version holding a published object, as a reader
 * resolves it. Versions that are only pending do not exist yet. */
static kp_status s_latest(kp_p11_op *op, const char *name, kp_p11_key *key)
{
    kp_p11_vobj *objs = NULL;
    size_t nobj = 0, top = 0;
    uint32_t version = 0;
    kp_status st = kp_p11_vobjs(op, name, 0, &objs, &nobj);

    for (size_t i = 0; st == KP_OK && i < nobj; i++)
        if (!objs[i].at.pending && objs[i].at.version > version)
            version = objs[i].at.version;
    if (st == KP_OK && version == 0)
        st = kp_p11_err(op->pi, KP_ERR_NOT_FOUND, "key %s not found on token '%s'", name,
                        op->pi->token);
    /* Its objects first, then resolved as one version. */
    for (size_t i = 0; st == KP_OK && i < nobj; i++)
        if (objs[i].at.version == version) {
            kp_p11_vobj t = objs[top];
            objs[top++] = objs[i];
            objs[i] = t;
        }
    if (st == KP_OK) {
        size_t win;
        st = s_resolve(op, objs, top, name, version, &win);
        if (st == KP_OK)
            st = s_winner(op, &objs[win], key);
    }
    free(objs);
    return st;
}

kp_status kp_p11_key_find(kp_p11_op *op, const char *name, uint32_t version, kp_p11_key *key)
{
    kp_p11_inst *pi = op->pi;
    kp_p11_vobj *objs = NULL;
    size_t nobj = 0, win = 0;
    kp_status st;

    KP_GUARD(kp_p11_check_name(pi, name));
    if (version == 0) {
        KP_GUARD(s_latest(op, name, key));
        kp_p11_cache_put(pi, key, CK_INVALID_HANDLE);
        return KP_OK;
    }
    if (kp_p11_cache_get(pi, name, version, key, NULL))
        return KP_OK;
    st = s_vobjs_read(op, name, version, false, true, &objs, &nobj);
    if (st == KP_OK)
        st = s_resolve(op, objs, nobj, name, version, &win);
    if (st == KP_OK)
        st = s_winner(op, &objs[win], key);
    free(objs);
    if (st == KP_OK)
        kp_p11_cache_put(pi, key, CK_INVALID_HANDLE);
    return st;
}
