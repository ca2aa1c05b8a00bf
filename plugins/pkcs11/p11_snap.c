/*
 * One listing of the token for many reads. A search costs what the token holds, not what it
 * finds: SoftHSM 2.6 checks every object's file for changes on each C_FindObjectsInit, and a
 * network HSM walks its whole object table. A command that reads every chain of a policy
 * (status, verify, plan) would search the token a few times per chain, so its time would grow
 * with chains x objects. Once an instance has been asked to list every key, or to read a
 * second key (listings and state documents; one key's reads stay searches by its tag, which
 * cost less than reading every object on a large shared token), it lists the token instead:
 * one search for every token object and one attribute read per object (two for a public key),
 * which the following reads share, with no further token call for a listing.
 *
 * A listing is what a search at the moment it was taken would have found, and no more: it is
 * dropped by any write through the same module (kp_p11_wrote), by a stale handle, and after
 * KP_P11_SNAP_MS, so an instance never answers from it for long after another process changed
 * the token. Writers (p11_version.c, p11_state.c's put) never use it: they search the token
 * right before they decide. A reader that finds a numbered version absent from the listing
 * searches the token for it too (kp_p11_key_find); handles that went stale since are retried
 * on a fresh lookup (kp_p11_run).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/clock.h>
#include <keyplane/kit/codec.h>

#include "p11_internal.h"

static bool s_avail(const CK_ATTRIBUTE *a)
{
    return a->ulValueLen != CK_UNAVAILABLE_INFORMATION;
}

uint32_t kp_p11_bits(const uint8_t *n, size_t len)
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

bool kp_p11_tagged(kp_p11_inst *pi, const char *name, CK_OBJECT_CLASS cls, const uint8_t *id,
                   size_t idlen, const CK_ATTRIBUTE *subject)
{
    uint8_t want[KP_P11_TAG_MAX], aes_id[KP_P11_AES_ID_LEN];
    size_t len = 0;

    if (kp_p11_tag(pi, name, want, &len, aes_id) != KP_OK)
        return false;
    if (cls == CKO_SECRET_KEY)
        return idlen == KP_P11_AES_ID_LEN && memcmp(id, aes_id, sizeof(aes_id)) == 0;
    return s_avail(subject) && subject->ulValueLen == len &&
           memcmp(subject->pValue, want, len) == 0;
}

bool kp_p11_id_too_long(kp_p11_op *op, CK_OBJECT_HANDLE obj)
{
    CK_ATTRIBUTE q = {CKA_ID, NULL, 0};
    return op->f->C_GetAttributeValue(op->s, obj, &q, 1) == CKR_OK && s_avail(&q);
}

int kp_p11_vjudge(kp_p11_op *op, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE obj, const CK_ATTRIBUTE *a,
                  const char *name, uint32_t version, kp_p11_vobj *o)
{
    kp_p11_inst *pi = op->pi;
    bool secret = cls == CKO_SECRET_KEY;
    CK_KEY_TYPE kt;

    /* A module that reports more than it was given room for is not trusted with our buffers. */
    if (!s_avail(&a[0]) || a[0].ulValueLen > KP_P11_OBJLABEL_MAX || !s_avail(&a[2]) ||
        a[2].ulValueLen != sizeof(kt) || (s_avail(&a[1]) && a[1].ulValueLen > sizeof(o->id)) ||
        (!secret && s_avail(&a[3]) && a[3].ulValueLen > KP_P11_TAG_MAX))
        return 0;
    memcpy(&kt, a[2].pValue, sizeof(kt));
    o->label[a[0].ulValueLen] = '\0';
    if (strlen(o->label) != a[0].ulValueLen || !kp_p11_label_parse(pi, o->label, &o->at))
        return 0;
    if ((name != NULL && strcmp(o->at.name, name) != 0) ||
        (version != 0 && o->at.version != version))
        return 0;
    if ((secret && kt != CKK_AES) || (!secret && kt != CKK_RSA))
        return 0;
    /* An ID longer than ours ever are (the module answered CKR_BUFFER_TOO_SMALL) is not ours:
     * taken for "no ID yet", a planted object once became the key's latest version. */
    if (!s_avail(&a[1]) && kp_p11_id_too_long(op, obj))
        return 0;
    o->cls = cls;
    o->obj = obj;
    o->idlen = s_avail(&a[1]) ? a[1].ulValueLen : 0;
    return kp_p11_tagged(pi, o->at.name, cls, o->id, o->idlen, &a[3]) ? 1 : 0;
}

/* Grows an array of *cap elements of size sz to hold one more. */
static bool s_room(void **arr, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap == 0 ? 64 : *cap * 2;
    void *p = realloc(*arr, ncap * sz);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

/* The key name of a state document's label "<prefix>NAME/state"; false for any other label. */
static bool s_doc_name(const kp_p11_inst *pi, const char *label, char name[KP_NAME_MAX])
{
    size_t plen = strlen(pi->prefix), len = strlen(label), sfx = sizeof("/state") - 1;

    if (len <= plen + sfx || len - plen - sfx >= KP_NAME_MAX ||
        strncmp(label, pi->prefix, plen) != 0 || strcmp(label + len - sfx, "/state") != 0)
        return false;
    memcpy(name, label + plen, len - plen - sfx);
    name[len - plen - sfx] = '\0';
    return kpk_key_name_valid(name);
}

/* What a listing makes of one token object: a key object of a version, a published public key
 * or a state document of ours are added to s; anything else is passed over. */
static kp_status s_add(kp_p11_op *op, kp_p11_snap *s, CK_OBJECT_HANDLE obj, size_t caps[3])
{
    kp_p11_inst *pi = op->pi;
    kp_p11_vobj o;
    uint8_t subj[KP_P11_TAG_MAX], mod[1024];
    CK_KEY_TYPE kt = (CK_KEY_TYPE)-1;
    CK_OBJECT_CLASS cls = (CK_OBJECT_CLASS)-1;
    CK_BBOOL extr = CK_FALSE;
    CK_ULONG vlen = 0;
    /* The first four as kp_p11_vjudge takes them. Not every attribute belongs to every class (a
     * data object has no CKA_KEY_TYPE): a module says so and still fills the others. Never
     * CKA_START_DATE: SoftHSM 2.6.1 fails to read it from a private object (p11_lookup.c). */
    CK_ATTRIBUTE a[] = {
        {CKA_LABEL, o.label, KP_P11_OBJLABEL_MAX},
        {CKA_ID, o.id, sizeof(o.id)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_SUBJECT, subj, sizeof(subj)},
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_EXTRACTABLE, &extr, sizeof(extr)},
        {CKA_MODULUS, mod, sizeof(mod)},
        {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
    };
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    rv = op->f->C_GetAttributeValue(op->s, obj, a, sizeof(a) / sizeof(a[0]));
    if (rv == CKR_OBJECT_HANDLE_INVALID)
        return KP_OK; /* destroyed since the search: not there */
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
        rv != CKR_BUFFER_TOO_SMALL)
        return kp_p11_ck(pi, op, rv, false, "C_GetAttributeValue", "token '%s'", pi->token);
    if (!s_avail(&a[4]) || a[4].ulValueLen != sizeof(cls))
        return KP_OK;
    if (cls == CKO_PRIVATE_KEY || cls == CKO_SECRET_KEY) {
        if (kp_p11_vjudge(op, cls, obj, a, NULL, 0, &o) != 1)
            return KP_OK;
        o.extractable = s_avail(&a[5]) && extr == CK_TRUE;
        if (cls == CKO_SECRET_KEY && s_avail(&a[7]) && a[7].ulValueLen == sizeof(vlen))
            o.bits = (uint32_t)vlen * 8;
        else if (cls == CKO_PRIVATE_KEY && s_avail(&a[6]) && a[6].ulValueLen <= sizeof(mod))
            o.bits = kp_p11_bits(mod, a[6].ulValueLen);
        if (!s_room((void **)&s->keys, s->nkeys, &caps[0], sizeof(*s->keys)))
            return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
        s->keys[s->nkeys++] = o;
        return KP_OK;
    }
    if ((cls != CKO_PUBLIC_KEY && cls != CKO_DATA) || !s_avail(&a[0]) ||
        a[0].ulValueLen > KP_P11_OBJLABEL_MAX)
        return KP_OK;
    o.label[a[0].ulValueLen] = '\0';
    if (strlen(o.label) != a[0].ulValueLen)
        return KP_OK;
    kp_p11_snap_obj e;
    memset(&e, 0, sizeof(e));
    e.obj = obj;
    if (cls == CKO_DATA) {
        if (!s_doc_name(pi, o.label, e.name))
            return KP_OK;
        if (!s_room((void **)&s->docs, s->ndocs, &caps[2], sizeof(*s->docs)))
            return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
        s->docs[s->ndocs++] = e;
        return KP_OK;
    }
    if (!kp_p11_label_parse(pi, o.label, &o.at) || o.at.pending || !s_avail(&a[1]) ||
        a[1].ulValueLen > sizeof(e.id))
        return KP_OK;
    memcpy(e.name, o.at.name, sizeof(e.name));
    e.version = o.at.version;
    memcpy(e.id, o.id, a[1].ulValueLen);
    e.idlen = a[1].ulValueLen;
    CK_DATE date;
    CK_ATTRIBUTE da = {CKA_START_DATE, &date, sizeof(date)};
    if (op->f->C_GetAttributeValue(op->s, obj, &da, 1) == CKR_OK && da.ulValueLen == sizeof(date))
        e.created = kp_p11_date_time(&date);
    if (!s_room((void **)&s->pubs, s->npubs, &caps[1], sizeof(*s->pubs)))
        return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    s->pubs[s->npubs++] = e;
    return KP_OK;
}

static int s_cmp(const char *an, uint32_t av, const char *bn, uint32_t bv)
{
    int c = strcmp(an, bn);
    if (c != 0)
        return c;
    return av < bv ? -1 : av > bv;
}

static int s_key_order(const void *a, const void *b)
{
    const kp_p11_vobj *x = a, *y = b;
    return s_cmp(x->at.name, x->at.version, y->at.name, y->at.version);
}

static int s_obj_order(const void *a, const void *b)
{
    const kp_p11_snap_obj *x = a, *y = b;
    return s_cmp(x->name, x->version, y->name, y->version);
}

/* The first entry of arr (n entries of size sz, sorted by name then version) not ordered
 * before name/version. */
static size_t s_lower(const void *arr, size_t n, size_t sz, bool vobj, const char *name,
                      uint32_t version)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const void *e = (const char *)arr + mid * sz;
        const char *en =
            vobj ? ((const kp_p11_vobj *)e)->at.name : ((const kp_p11_snap_obj *)e)->name;
        uint32_t ev =
            vobj ? ((const kp_p11_vobj *)e)->at.version : ((const kp_p11_snap_obj *)e)->version;
        if (s_cmp(en, ev, name, version) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The one published public key of name/version with CKA_ID id in s (*p); false when there is
 * not exactly one. */
static bool s_pub(const kp_p11_snap *s, const char *name, uint32_t version, const uint8_t *id,
                  size_t idlen, const kp_p11_snap_obj **p)
{
    size_t i = s_lower(s->pubs, s->npubs, sizeof(*s->pubs), false, name, version), found = 0;

    for (; i < s->npubs && s->pubs[i].version == version && strcmp(s->pubs[i].name, name) == 0; i++)
        if (s->pubs[i].idlen == idlen && memcmp(s->pubs[i].id, id, idlen) == 0) {
            *p = &s->pubs[i];
            found++;
        }
    return found == 1;
}

/* Lists the token into a new snapshot. */
static kp_status s_take(kp_p11_op *op, kp_p11_snap **out)
{
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {{CKA_TOKEN, &yes, sizeof(yes)}};
    CK_OBJECT_HANDLE *objs = NULL;
    size_t nobj = 0, caps[3] = {0, 0, 0};
    kp_p11_snap *s;
    uint64_t writes;
    kp_status st;

    *out = NULL;
    /* No write runs while we list (kp_p11_write_run): the count stays as read. */
    pthread_mutex_lock(&op->pi->lock);
    writes = op->pi->mod != NULL ? op->pi->mod->writes : 0;
    pthread_mutex_unlock(&op->pi->lock);
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
    s->refs = 1;
    s->writes = writes;
    s->taken_ms = kpk_clock_ns() / 1000000u;
    st = kp_p11_find_all(op, tmpl, 1, &objs, &nobj);
    for (size_t i = 0; st == KP_OK && i < nobj; i++)
        st = s_add(op, s, objs[i], caps);
    free(objs);
    if (st != KP_OK) {
        free(s->keys);
        free(s->pubs);
        free(s->docs);
        free(s);
        return st;
    }
    if (s->nkeys > 1)
        qsort(s->keys, s->nkeys, sizeof(*s->keys), s_key_order);
    if (s->npubs > 1)
        qsort(s->pubs, s->npubs, sizeof(*s->pubs), s_obj_order);
    /* An RSA key whose public key the listing has is read in full: readers take it as it is.
     * An AES key's own CKA_START_DATE is read when it is used. */
    for (size_t i = 0; i < s->nkeys; i++) {
        kp_p11_vobj *k = &s->keys[i];
        const kp_p11_snap_obj *p = NULL;
        if (k->cls == CKO_PRIVATE_KEY && !k->at.pending &&
            s_pub(s, k->at.name, k->at.version, k->id, k->idlen, &p)) {
            k->created = p->created;
            k->full = true;
        }
    }
    if (s->ndocs > 1)
        qsort(s->docs, s->ndocs, sizeof(*s->docs), s_obj_order);
    *out = s;
    return KP_OK;
}

kp_p11_snap *kp_p11_snap_get(kp_p11_op *op, bool take, const char *name)
{
    kp_p11_inst *pi = op->pi;
    kp_p11_snap *s = kp_p11_snap_hold(pi);

    if (s != NULL || !take || !kp_p11_snap_wanted(pi, name))
        return s;
    pthread_mutex_lock(&pi->snap_take);
    /* Another thread may have listed the token while this one waited. */
    if ((s = kp_p11_snap_hold(pi)) == NULL) {
        if (s_take(op, &s) == KP_OK) {
            s->refs++; /* the instance's and ours */
            kp_p11_snap_install(pi, s);
        } else {
            op->rv = CKR_OK; /* the caller searches instead and reports what that finds */
        }
    }
    pthread_mutex_unlock(&pi->snap_take);
    return s;
}

kp_status kp_p11_snap_vobjs(kp_p11_inst *pi, const kp_p11_snap *s, const char *name,
                            uint32_t version, kp_p11_vobj **objs, size_t *n)
{
    size_t first = 0, last = s->nkeys;

    *objs = NULL;
    *n = 0;
    if (name != NULL) {
        first = s_lower(s->keys, s->nkeys, sizeof(*s->keys), true, name, version);
        for (last = first; last < s->nkeys && strcmp(s->keys[last].at.name, name) == 0 &&
                           (version == 0 || s->keys[last].at.version == version);
             last++)
            ;
    }
    if (last == first)
        return KP_OK;
    if ((*objs = malloc((last - first) * sizeof(**objs))) == NULL)
        return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    memcpy(*objs, s->keys + first, (last - first) * sizeof(**objs));
    *n = last - first;
    return KP_OK;
}

bool kp_p11_snap_pub(const kp_p11_snap *s, const char *name, uint32_t version, const uint8_t *id,
                     size_t idlen, CK_OBJECT_HANDLE *obj)
{
    const kp_p11_snap_obj *p;

    if (!s_pub(s, name, version, id, idlen, &p))
        return false;
    *obj = p->obj;
    return true;
}

const kp_p11_snap_obj *kp_p11_snap_docs(const kp_p11_snap *s, const char *name, size_t *n)
{
    size_t i = s_lower(s->docs, s->ndocs, sizeof(*s->docs), false, name, 0), j = i;

    while (j < s->ndocs && strcmp(s->docs[j].name, name) == 0)
        j++;
    *n = j - i;
    return s->docs + i;
}
