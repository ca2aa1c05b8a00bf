/*
 * How a writer makes a new key version on a token that other writers (other processes, other
 * hosts) may be making at the same moment, with no lock they all share: every writer makes its
 * objects under its own pending label, and one winner that every writer and reader agrees on
 * gets the version; the others destroy what they made, which no reader ever used.
 *
 * 1. The objects are made under "<prefix><name>/v<N>~<time>~<random>" (kp_p11_pending_label),
 *    which no lookup takes for the version, with their ordering key: an RSA key's CKA_ID (its
 *    fingerprint), an AES key's random label part.
 * 2. The writer lists every object of the version (kp_p11_vobjs) until it has waited
 *    KP_P11_DECIDE_MS: it loses when another object is published, or is pending and ordered
 *    before its own (kp_p11_vobj_order); pending objects older than KP_P11_STALE_S are a dead
 *    writer's and are destroyed. Otherwise, once no other live object of the version is
 *    pending (one ordered after its own is a writer that loses once it sees this one, or, when
 *    its view lags, publishes without having seen it, and this one loses), it publishes: sets
 *    the version's label.
 * 3. It lists again: an object ordered before its own that is published means both published
 *    at once, and it destroys its own (readers use the first one only, so none used its own);
 *    one that is pending is waited for (KP_P11_SETTLE_MS at most).
 * A loser destroys its objects and waits for the version to be published, then answers
 * KP_ERR_EXISTS, so that the caller adopts the winner as when another run made it earlier.
 * Readers (p11_lookup.c) use only the first object in that order; when it is pending the version
 * is being created (KP_ERR_UNAVAILABLE), never another object, so a published object that a
 * reader once used stays first for good.
 *
 * Tokens whose object list lags behind other processes. SoftHSM 2.6's file store re-reads its
 * list of objects only when a shared generation counter moved since the process last read or
 * wrote it; a process that makes or destroys an object takes the counter as it finds it, so it
 * never sees an object another process made between its last search and its own change (until
 * some later change). A writer that generated its key on the token for a second while another
 * made and published the version would publish too. Hence, besides the steps above:
 * - every object is made or destroyed right after a search, which re-reads the list; an RSA key
 *   pair is generated as session objects and copied onto the token (C_CopyObject) after one,
 *   so that the long generation is not between them (p11_keygen.c; tokens that refuse the copy
 *   get the key generated on the token, and keep the window);
 * - a writer nudges twice after making its key (makes a throw-away data object, then destroys
 *   it: after each, every process re-reads the list at its next search), at jittered times,
 *   and decides only after both, so that a writer that missed its objects sees them before it
 *   decides.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <keyplane/kit/clock.h>

#include "p11_internal.h"

#define S_POLL_MS 20      /* between two listings */
#define S_NUDGE_MS 25     /* the first nudge this long after the key, plus up to S_JITTER_MS */
#define S_NUDGE_GAP_MS 40 /* the second nudge after the first, plus up to S_JITTER_MS */
#define S_JITTER_MS 25
#define S_DECIDE_GAP_MS 25 /* a decision this long after the last nudge at least */
#define S_GONE_MS 2000     /* a version absent this long was given up (s_lost) or is half-dead */

static uint64_t s_ms(void)
{
    return kpk_clock_ns() / 1000000u;
}

static void s_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static unsigned s_jitter(kp_p11_inst *pi)
{
    uint8_t b = 0;

    (void)kp_p11_random(pi, &b, 1);
    return b % (S_JITTER_MS + 1);
}

void kp_p11_refresh(kp_p11_op *op)
{
    char label[KP_P11_PREFIX_MAX + 8];
    CK_ATTRIBUTE t = {CKA_LABEL, label, 0};
    CK_OBJECT_HANDLE obj;
    CK_ULONG got = 0;

    snprintf(label, sizeof(label), "%s.none", op->pi->prefix);
    t.ulValueLen = strlen(label);
    if (op->f->C_FindObjectsInit(op->s, &t, 1) != CKR_OK)
        return;
    (void)op->f->C_FindObjects(op->s, &obj, 1, &got);
    (void)op->f->C_FindObjectsFinal(op->s);
}

/* A nudge: makes the throw-away data object *obj, or destroys it when it is made. Either
 * changes the token's list of objects, so every process whose view of the token lags (see the
 * top) re-reads it at its next search. A failure only costs that. Certificates use it too
 * (p11_cert.c). */
void kp_p11_nudge(kp_p11_op *op, CK_OBJECT_HANDLE *obj)
{
    char label[KP_P11_PREFIX_MAX + 8];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, label, 0},
    };

    snprintf(label, sizeof(label), "%s.nudge", op->pi->prefix);
    t[3].ulValueLen = strlen(label);
    kp_p11_refresh(op);
    if (*obj != CK_INVALID_HANDLE) {
        kp_p11_destroy(op, *obj);
        *obj = CK_INVALID_HANDLE;
    } else if (op->f->C_CreateObject(op->s, t, sizeof(t) / sizeof(t[0]), obj) != CKR_OK) {
        *obj = CK_INVALID_HANDLE;
    }
}

/* Any object (of any class) labelled as the version itself blocks it: a public key left by
 * another tool would otherwise pair with our new private key. *pub_only: only public keys hold
 * the label (no private or secret key of any maker does; s_sweep_half). */
static kp_status s_label_taken(kp_p11_op *op, const char *label, bool *taken, bool *pub_only)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_SECRET_KEY, CKO_PUBLIC_KEY};
    CK_OBJECT_HANDLE obj;
    kp_status st = KP_OK;

    *taken = *pub_only = false;
    for (size_t c = 0; c < 3; c++) {
        st = kp_p11_find_one(op, classes[c], label, &obj);
        if (st == KP_ERR_NOT_FOUND)
            continue;
        if (st != KP_OK && st != KP_ERR_INTEGRITY)
            return st;
        *taken = true;
        *pub_only = classes[c] == CKO_PUBLIC_KEY; /* the last class asked */
        return KP_OK;
    }
    return KP_OK;
}

/* Whether objs holds a published private key of o's version with o's CKA_ID: the public key
 * under the version's label with that ID is then its pair, not a dead writer's. */
static bool s_published_twin(const kp_p11_vobj *o, const kp_p11_vobj *objs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!objs[i].at.pending && objs[i].cls == CKO_PRIVATE_KEY &&
            objs[i].at.version == o->at.version && objs[i].idlen == o->idlen &&
            memcmp(objs[i].id, o->id, o->idlen) == 0)
            return true;
    return false;
}

/* Whether another private key of o's version with o's CKA_ID is on the token now (a fresh
 * listing), published or pending and not stale; true also when the token cannot say. */
static bool s_claimed(kp_p11_op *op, const kp_p11_vobj *o)
{
    kp_p11_vobj *objs = NULL;
    size_t n = 0;
    int64_t now = (int64_t)time(NULL);
    bool claimed = kp_p11_vobjs(op, o->at.name, o->at.version, &objs, &n) != KP_OK;

    for (size_t i = 0; !claimed && i < n; i++)
        claimed = objs[i].obj != o->obj && objs[i].cls == CKO_PRIVATE_KEY &&
                  objs[i].idlen == o->idlen && memcmp(objs[i].id, o->id, o->idlen) == 0 &&
                  !kp_p11_vobj_stale(&objs[i], now);
    free(objs);
    return claimed;
}

/* Destroys a dead writer's pending object and, for RSA, its public half: under the pending
 * label, or under the version's own when the writer died between publishing the public half
 * and the private one (s_publish), which would otherwise hold the version's label for good.
 * objs: every object of the version, as listed. */
static void s_sweep(kp_p11_op *op, const kp_p11_vobj *o, const kp_p11_vobj *objs, size_t n)
{
    char label[KP_P11_OBJLABEL_MAX + 1];
    CK_OBJECT_HANDLE pub;

    kp_logf(op->pi->up, op->pi->h, KP_LOG_WARN,
            "destroying '%s' on token '%s': a writer left it pending more than %d s ago", o->label,
            op->pi->token, KP_P11_STALE_S);
    if (o->cls == CKO_PRIVATE_KEY) {
        kp_status st = kp_p11_find_pub(op, o->label, o->id, o->idlen, &pub);
        if (st == KP_ERR_NOT_FOUND && o->idlen > 0 && !s_published_twin(o, objs, n)) {
            st = kp_p11_label(op->pi, o->at.name, o->at.version, label, sizeof(label));
            if (st == KP_OK)
                st = kp_p11_find_pub(op, label, o->id, o->idlen, &pub);
            /* The public key found may be a live writer's with the same ID (an imported key
             * has its fingerprint for ID on every writer), published a moment ago while its
             * private key still waits to be: its private key is on the token now, pending or
             * published, since a writer makes it before it publishes either half. */
            if (st == KP_OK && s_claimed(op, o))
                st = KP_ERR_EXISTS;
        }
        if (st == KP_OK)
            kp_p11_destroy(op, pub);
    }
    kp_p11_destroy(op, o->obj);
}

/* Whether a key object in objs carries label (the pending label of a public half). */
static bool s_has_label(const kp_p11_vobj *objs, size_t n, const char *label)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(objs[i].label, label) == 0)
            return true;
    return false;
}

/* A dead writer's stale pending objects of key name (s_sweep), swept before a version is picked
 * so that one killed between publishing its two halves does not hold the version. No token call
 * when there is none: a writer's searches before it makes its key are timed against the other
 * writers' (see the top). objs: every object of name, as listed. */
static void s_sweep_dead(kp_p11_op *op, const kp_p11_vobj *objs, size_t n)
{
    int64_t now = (int64_t)time(NULL);

    for (size_t i = 0; i < n; i++)
        if (kp_p11_vobj_stale(&objs[i], now))
            s_sweep(op, &objs[i], objs, n);
}

/* Public halves of key name a writer left pending alone (killed before it made the private half,
 * or while it destroyed its draft), found by the tag they carry: swept once a version is
 * settled, outside any writer's decision. Failures only leave them for the next writer. */
static void s_sweep_lone(kp_p11_op *op, const char *name)
{
    int64_t now = (int64_t)time(NULL);
    uint8_t subject[KP_P11_TAG_MAX];
    size_t len = 0, np = 0, n = 0;
    CK_OBJECT_HANDLE *pubs = NULL;
    kp_p11_vobj *objs = NULL;
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_SUBJECT, subject, 0},
    };

    if (kp_p11_tag(op->pi, name, subject, &len, NULL) != KP_OK)
        return;
    tmpl[2].ulValueLen = len;
    kp_status st = kp_p11_find_all(op, tmpl, 3, &pubs, &np);
    if (st == KP_OK && np > 0)
        st = kp_p11_vobjs(op, name, 0, &objs, &n);
    if (st != KP_OK || np == 0) {
        free(pubs);
        free(objs);
        return;
    }
    for (size_t i = 0; i < np; i++) {
        char label[KP_P11_OBJLABEL_MAX + 1];
        CK_ATTRIBUTE a = {CKA_LABEL, label, KP_P11_OBJLABEL_MAX};
        kp_p11_label_info at;
        if (op->f->C_GetAttributeValue(op->s, pubs[i], &a, 1) != CKR_OK ||
            a.ulValueLen > KP_P11_OBJLABEL_MAX)
            continue;
        label[a.ulValueLen] = '\0';
        if (strlen(label) != a.ulValueLen || !kp_p11_label_parse(op->pi, label, &at) ||
            !at.pending || now - at.since <= KP_P11_STALE_S || strcmp(at.name, name) != 0 ||
            s_has_label(objs, n, label))
            continue;
        kp_logf(op->pi->up, op->pi->h, KP_LOG_WARN,
                "destroying '%s' on token '%s': a public key a writer left pending more than %d "
                "s ago without its private key",
                label, op->pi->token, KP_P11_STALE_S);
        kp_p11_destroy(op, pubs[i]);
    }
    free(pubs);
    free(objs);
}

/* Whether a fresh listing shows a private or secret key of name/version published, or pending
 * and live (stale ones count for nothing). */
static kp_status s_version_keys(kp_p11_op *op, const char *name, uint32_t version, bool *published,
                                bool *pending)
{
    int64_t now = (int64_t)time(NULL);
    kp_p11_vobj *objs = NULL;
    size_t n = 0;
    kp_status st = kp_p11_vobjs(op, name, version, &objs, &n);

    *published = *pending = false;
    for (size_t i = 0; st == KP_OK && i < n; i++) {
        if (kp_p11_vobj_stale(&objs[i], now))
            continue;
        *published |= !objs[i].at.pending;
        *pending |= objs[i].at.pending;
    }
    free(objs);
    return st;
}

/* A half-dead version: its label is held by public keys only, and no private key of it is on
 * the token in any form (a writer died while it destroyed its published pair, private key
 * first, or another tool deleted the private key alone). Neither sweep above matches it, and it
 * refused every copy of the version for good. No reader uses such a public key (readers start from
 * the private key), and it is no live writer's: a writer makes its private key before it publishes
 * either half, and destroys it before its public half when it gives up. So the public keys labelled
 * label that carry the key's tag are destroyed (*swept), whatever their CKA_ID, once the version's
 * listings show no private or secret key of it, published or pending and live, for S_GONE_MS (an
 * object may be missing from one listing while SoftHSM rewrites its file to rename it: a writer
 * publishing its private key right now). The last listing is the search right before the
 * destruction (see the top). A live pending key is a writer at work: KP_ERR_UNAVAILABLE. A
 * published one (made since), or no public key with the tag (another tool's, or an earlier
 * build's): nothing is destroyed, and the label stays taken. */
static kp_status s_sweep_half(kp_p11_op *op, const char *name, uint32_t version, const char *label,
                              bool *swept)
{
    kp_p11_inst *pi = op->pi;
    uint64_t until = s_ms() + S_GONE_MS;
    uint8_t subject[KP_P11_TAG_MAX];
    size_t len = 0, np = 0;
    CK_OBJECT_HANDLE *pubs = NULL;
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_SUBJECT, subject, 0},
    };
    bool published = false, pending = false;

    *swept = false;
    KP_GUARD(kp_p11_tag(pi, name, subject, &len, NULL));
    tmpl[3].ulValueLen = len;
    kp_status st = kp_p11_find_all(op, tmpl, 4, &pubs, &np);
    while (st == KP_OK && np > 0) {
        st = s_version_keys(op, name, version, &published, &pending);
        if (st != KP_OK || published || pending || s_ms() >= until)
            break;
        s_sleep_ms(S_POLL_MS);
    }
    if (st == KP_OK && !published && pending)
        st = kp_p11_err(pi, KP_ERR_UNAVAILABLE,
                        "key %s v%u is being created on token '%s' (a writer's private key is "
                        "pending); retry",
                        name, version, pi->token);
    for (size_t i = 0; st == KP_OK && !published && i < np; i++) {
        kp_logf(pi->up, pi->h, KP_LOG_WARN,
                "destroying public key '%s' on token '%s': no private key of that version is "
                "left (its writer died while it published or destroyed the pair, or the private "
                "key was deleted alone)",
                label, pi->token);
        kp_p11_destroy(op, pubs[i]);
        *swept = true;
    }
    free(pubs);
    return st;
}

/* The version of a new key: want when free, else the next past every published and live
 * pending one. A wanted version held only by a half-dead public key is swept first
 * (s_sweep_half) and asked for once more; version 0 just takes the next free one, with no
 * search more before the key is made (see the top). */
static kp_status s_pick(kp_p11_op *op, const char *name, uint32_t want, kp_p11_draft *d)
{
    kp_p11_inst *pi = op->pi;
    kp_p11_vobj *objs = NULL;
    int64_t now = (int64_t)time(NULL);
    uint32_t v = 0;
    size_t n = 0;
    bool taken = false, pub_only = false;
    kp_status st = KP_OK; /* the loop below may not run: v wrapped past UINT32_MAX */

    KP_GUARD(kp_p11_vobjs(op, name, 0, &objs, &n));
    s_sweep_dead(op, objs, n);
    for (size_t i = 0; i < n; i++)
        if (!kp_p11_vobj_stale(&objs[i], now) && objs[i].at.version > v)
            v = objs[i].at.version;
    v = want != 0 ? want : v + 1;
    for (int tries = 0; tries < 100 && v != 0; tries++, v++) {
        bool published = false;

        for (size_t i = 0; i < n; i++)
            published |= objs[i].at.version == v && !objs[i].at.pending;
        st = kp_p11_label(pi, name, v, d->label, sizeof(d->label));
        if (st == KP_OK && !published)
            st = s_label_taken(op, d->label, &taken, &pub_only);
        else
            taken = published;
        if (st == KP_OK && taken && pub_only && want != 0) {
            bool swept = false;

            st = s_sweep_half(op, name, v, d->label, &swept);
            if (st == KP_OK && swept)
                st = s_label_taken(op, d->label, &taken, &pub_only);
        }
        if (st != KP_OK || !taken)
            break;
        if (want != 0) {
            st = kp_p11_err(pi, KP_ERR_EXISTS, "key %s v%u already exists on token '%s'", name,
                            want, pi->token);
            break;
        }
    }
    free(objs);
    KP_GUARD(st);
    if (v == 0 || taken)
        return kp_p11_err(pi, KP_ERR_EXISTS, "no free version for key %s on token '%s'", name,
                          pi->token);
    d->version = v;
    return KP_OK;
}

kp_status kp_p11_draft_open(kp_p11_op *op, const char *name, uint32_t want, kp_p11_draft *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    KP_GUARD(s_pick(op, name, want, d));
    d->since = (int64_t)time(NULL);
    return kp_p11_pending_label(op->pi, name, d->version, d->since, d->pending, sizeof(d->pending));
}

void kp_p11_draft_made(kp_p11_draft *d, CK_OBJECT_HANDLE key, CK_OBJECT_HANDLE pub)
{
    d->key = key;
    d->pub = pub;
    d->made_ms = s_ms();
}

void kp_p11_draft_drop(kp_p11_op *op, kp_p11_draft *d)
{
    kp_p11_refresh(op);
    kp_p11_destroy(op, d->key);
    kp_p11_destroy(op, d->pub);
    d->key = d->pub = CK_INVALID_HANDLE;
}

/* What one listing says to the writer of d. */
typedef struct s_view {
    bool own;       /* its own object is there */
    bool published; /* another object is published */
    bool before;    /* another object is ordered before its own */
    bool before_published;
    bool after;     /* another object is pending and ordered after its own */
    bool unordered; /* another RSA key has no CKA_ID yet */
} s_view;

static kp_status s_look(kp_p11_op *op, const kp_p11_draft *d, s_view *v)
{
    kp_p11_vobj *objs = NULL, *own = NULL;
    size_t n = 0;
    int64_t now = (int64_t)time(NULL);
    kp_status st = kp_p11_vobjs(op, d->name, d->version, &objs, &n);

    memset(v, 0, sizeof(*v));
    for (size_t i = 0; st == KP_OK && i < n; i++)
        if (objs[i].obj == d->key)
            own = &objs[i];
    v->own = own != NULL;
    for (size_t i = 0; st == KP_OK && i < n && own != NULL; i++) {
        const kp_p11_vobj *o = &objs[i];

        if (o == own)
            continue;
        if (kp_p11_vobj_stale(o, now)) {
            s_sweep(op, o, objs, n);
            continue;
        }
        v->published |= !o->at.pending;
        v->unordered |= o->cls == CKO_PRIVATE_KEY && o->idlen == 0;
        if (kp_p11_vobj_order(o, own) < 0) {
            v->before = true;
            v->before_published |= !o->at.pending;
        } else {
            v->after |= o->at.pending;
        }
    }
    free(objs);
    return st;
}

/* Sets the version's label on the objects of d, public half first: a reader that finds the
 * private key must find its pair. */
static kp_status s_publish(kp_p11_op *op, kp_p11_draft *d)
{
    kp_status st = KP_OK;

    if (d->pub != CK_INVALID_HANDLE)
        st = kp_p11_relabel(op, d->pub, NULL, 0, d->label);
    if (st == KP_OK)
        st = kp_p11_relabel(op, d->key, NULL, 0, d->label);
    return st;
}

/* The loser's end: its objects go, and it waits for the version to be published so that the
 * caller can adopt it (KP_ERR_EXISTS). */
static kp_status s_lost(kp_p11_op *op, kp_p11_draft *d)
{
    kp_p11_inst *pi = op->pi;
    uint64_t until = s_ms() + KP_P11_SETTLE_MS, gone = s_ms() + S_GONE_MS;
    kp_status st = KP_OK, r = KP_ERR_UNAVAILABLE;

    kp_p11_draft_drop(op, d);
    for (;;) {
        kp_p11_vobj *objs = NULL;
        size_t n = 0, win;

        st = kp_p11_vobjs(op, d->name, d->version, &objs, &n);
        if (st == KP_OK)
            r = kp_p11_vobj_resolve(objs, n, (int64_t)time(NULL), &win);
        free(objs);
        /* The winner's object may be missing from one listing while it is renamed (SoftHSM
         * rewrites the object's file): only a version gone for S_GONE_MS was given up. */
        if (st != KP_OK || r == KP_OK || r == KP_ERR_INTEGRITY || s_ms() >= until ||
            (r == KP_ERR_NOT_FOUND && s_ms() >= gone))
            break;
        s_sleep_ms(S_POLL_MS);
    }
    KP_GUARD(st);
    if (r == KP_OK || r == KP_ERR_INTEGRITY)
        return kp_p11_err(pi, KP_ERR_EXISTS,
                          "another writer created %s v%u on token '%s' at the same time", d->name,
                          d->version, pi->token);
    if (r == KP_ERR_NOT_FOUND)
        return kp_p11_err(pi, KP_ERR_UNAVAILABLE,
                          "another writer was creating %s v%u on token '%s' and gave up; retry",
                          d->name, d->version, pi->token);
    return kp_p11_err(pi, KP_ERR_UNAVAILABLE,
                      "another writer is still creating %s v%u on token '%s'; retry", d->name,
                      d->version, pi->token);
}

static kp_status s_settle(kp_p11_op *op, kp_p11_draft *d, CK_OBJECT_HANDLE *nudged)
{
    kp_p11_inst *pi = op->pi;
    uint64_t nudge = d->made_ms + S_NUDGE_MS + s_jitter(pi), decide = 0, until = 0;
    bool published = false;
    int nudges = 0;
    kp_status st = KP_OK;
    s_view v;

    for (;;) {
        if ((st = s_look(op, d, &v)) != KP_OK && published)
            return st; /* published objects are never taken back: readers may use them */
        if (st != KP_OK)
            break;
        if (!v.own) {
            st = kp_p11_err(pi, published ? KP_ERR_INTEGRITY : KP_ERR_UNAVAILABLE,
                            "the objects made for %s v%u vanished from token '%s'%s", d->name,
                            d->version, pi->token,
                            published ? " after they were published" : "; retry");
            d->key = CK_INVALID_HANDLE;
            break;
        }
        uint64_t now = s_ms();
        if (!published) {
            if (v.published || v.before)
                return s_lost(op, d);
            if (nudges < 2 && now >= nudge) {
                kp_p11_nudge(op, nudged);
                nudges++;
                nudge = s_ms() + S_NUDGE_GAP_MS + s_jitter(pi);
                decide = s_ms() + S_DECIDE_GAP_MS;
                continue; /* list again before anything is decided */
            }
            /* Not while another writer's object ordered after ours is pending: that writer
             * loses once it sees ours, but one whose view of the token lags (see the top) may
             * never have, and publishes its own; ours then loses to it here, instead of both
             * being published (two AES keys have no order to undo that by). */
            if (nudges == 2 && now >= decide && now >= d->made_ms + KP_P11_DECIDE_MS &&
                !v.unordered && !v.after) {
                if ((st = s_publish(op, d)) != KP_OK)
                    break;
                published = true;
                until = s_ms() + KP_P11_SETTLE_MS;
                continue;
            }
            if (now >= d->made_ms + KP_P11_SETTLE_MS) {
                st = kp_p11_err(pi, KP_ERR_UNAVAILABLE,
                                v.unordered ? "another writer's key for %s v%u on token '%s' has "
                                              "no CKA_ID yet; retry"
                                            : "another writer is still creating %s v%u on token "
                                              "'%s'; retry",
                                d->name, d->version, pi->token);
                break;
            }
        } else {
            if (v.before_published)
                return s_lost(op, d);
            if (!v.before)
                return KP_OK;
            if (now >= until) {
                /* Ours stays published: readers take it once the other is gone or stale. */
                return kp_p11_err(pi, KP_ERR_UNAVAILABLE,
                                  "created %s v%u on token '%s', but another writer's object "
                                  "ordered before it is still pending; retry",
                                  d->name, d->version, pi->token);
            }
        }
        s_sleep_ms(S_POLL_MS);
    }
    kp_p11_draft_drop(op, d);
    return st;
}

kp_status kp_p11_draft_settle(kp_p11_op *op, kp_p11_draft *d)
{
    CK_OBJECT_HANDLE nudged = CK_INVALID_HANDLE;
    kp_status st = s_settle(op, d, &nudged);

    if (nudged != CK_INVALID_HANDLE) { /* a decision came before the second nudge */
        kp_p11_refresh(op);
        kp_p11_destroy(op, nudged);
    }
    if (st == KP_OK)
        s_sweep_lone(op, d->name);
    return st;
}
