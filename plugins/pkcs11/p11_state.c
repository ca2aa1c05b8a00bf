/*
 * The chain-state document of a key (KS_STATE_GET / KS_STATE_PUT) as a token data object,
 * CKA_LABEL "<prefix><name>/state", CKA_APPLICATION "keyplane/<generation>", CKA_VALUE the
 * document.
 *
 * A write never leaves the token without a document, whenever it stops: the new object is made
 * under the label "<prefix><name>/state.new" (no reader looks there), renamed to the real
 * label, and only then are the old objects destroyed. Between the last two steps a reader finds
 * two documents and takes the one of the higher generation (the writer's old one plus 1); two
 * of one generation (two processes wrote at once) go to the longer document, then to the
 * byte-wise greater: every reader picks the same one. A leftover ".new" object (a write that
 * stopped before its rename) is never read and is destroyed by the next write. An object
 * without a generation ("keyplane", older builds) is generation 0.
 *
 * The compare-and-swap holds between the threads of one process (kp_p11_write_run); PKCS#11 offers
 * no lock other processes would respect, so the instance does not claim KP_INST_STATE_CAS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

#define S_APP "keyplane"

/* One document found under the state label. */
typedef struct s_doc {
    CK_OBJECT_HANDLE obj;
    uint64_t gen;
    uint8_t *value; /* malloc'ed */
    size_t len;
} s_doc;

typedef struct s_state {
    const char *name;
    const uint8_t *in, *expect; /* put */
    size_t inlen, expect_len;
    bool renamed; /* put: the new document is in place (a retry only reports success) */
    uint8_t *out; /* get: malloc'ed */
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

/* The generation of CKA_APPLICATION "keyplane/<n>"; 0 for "keyplane" or anything else. */
static uint64_t s_gen(const uint8_t *app, size_t len)
{
    size_t plen = sizeof(S_APP) - 1;
    uint64_t g = 0;

    if (len <= plen + 1 || memcmp(app, S_APP "/", plen + 1) != 0 || len > plen + 1 + 19)
        return 0;
    for (size_t i = plen + 1; i < len; i++) {
        if (app[i] < '0' || app[i] > '9')
            return 0;
        g = g * 10 + (uint64_t)(app[i] - '0');
    }
    return g;
}

/* Whether a beats b as the current document (see the top of the file). */
static bool s_beats(const s_doc *a, const s_doc *b)
{
    int c;

    if (a->gen != b->gen)
        return a->gen > b->gen;
    if (a->len != b->len)
        return a->len > b->len;
    c = a->len > 0 ? memcmp(a->value, b->value, a->len) : 0;
    return c > 0;
}

static void s_docs_free(s_doc *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(d[i].value);
    free(d);
}

/* Reads the documents objs (nobj handles) into *out; *n of them were still there, *cur the
 * index of the current one (when *n > 0). */
static kp_status s_docs_read(kp_p11_op *op, const CK_OBJECT_HANDLE *objs, size_t nobj, s_doc **out,
                             size_t *n, size_t *cur)
{
    size_t got = 0;
    s_doc *d = NULL;
    kp_status st = KP_OK;

    *out = NULL;
    *n = *cur = 0;
    if (nobj > 0 && (d = calloc(nobj, sizeof(*d))) == NULL)
        return kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == KP_OK && i < nobj; i++) {
        uint8_t *app = NULL;
        size_t applen = 0;

        d[got].obj = objs[i];
        st = kp_p11_attr(op, objs[i], CKA_APPLICATION, &app, &applen);
        if (st == KP_OK)
            st = kp_p11_attr(op, objs[i], CKA_VALUE, &d[got].value, &d[got].len);
        if (st != KP_OK && op->rv == CKR_OBJECT_HANDLE_INVALID) {
            /* destroyed since the search (a writer finishing): not there */
            free(app);
            free(d[got].value);
            d[got].value = NULL;
            op->rv = CKR_OK;
            st = KP_OK;
            continue;
        }
        if (st == KP_OK) {
            d[got].gen = s_gen(app, applen);
            if (got > 0 && s_beats(&d[got], &d[*cur]))
                *cur = got;
            got++;
        }
        free(app);
    }
    if (st == KP_OK) {
        *out = d;
        *n = got;
    } else if (d != NULL) {
        s_docs_free(d, nobj); /* calloc'ed: the slots not reached hold NULL */
    }
    return st;
}

/* The data objects labelled label, read as s_docs_read does; *found how many the search found
 * (some may be gone before they were read). */
static kp_status s_docs(kp_p11_op *op, const char *label, s_doc **out, size_t *n, size_t *cur,
                        size_t *found)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_OBJECT_HANDLE *objs = NULL;
    kp_status st;

    *out = NULL;
    *n = *cur = *found = 0;
    KP_GUARD(kp_p11_find_all(op, tmpl, 3, &objs, found));
    st = s_docs_read(op, objs, *found, out, n, cur);
    free(objs);
    return st;
}

/* The documents of the instance's listing of the token (s): KP_OK with *n of them read (0 when
 * the listing has none), KP_ERR_NOT_FOUND without text when every one it saw is gone (the
 * caller searches again). */
static kp_status s_docs_listed(kp_p11_op *op, const kp_p11_snap *s, const char *name, s_doc **out,
                               size_t *n, size_t *cur)
{
    size_t nlisted = 0;
    const kp_p11_snap_obj *e = kp_p11_snap_docs(s, name, &nlisted);
    CK_OBJECT_HANDLE objs[4];

    *out = NULL;
    *n = *cur = 0;
    /* More than a write in progress leaves: ask the token. */
    if (nlisted > sizeof(objs) / sizeof(objs[0]))
        return KP_ERR_NOT_FOUND;
    for (size_t i = 0; i < nlisted; i++)
        objs[i] = e[i].obj;
    KP_GUARD(s_docs_read(op, objs, nlisted, out, n, cur));
    if (nlisted > 0 && *n == 0) {
        free(*out);
        *out = NULL;
        return KP_ERR_NOT_FOUND;
    }
    return KP_OK;
}

static kp_status s_get_op(kp_p11_op *op, void *arg)
{
    s_state *s = arg;
    char label[KP_P11_OBJLABEL_MAX];
    s_doc *d = NULL;
    size_t n = 0, cur = 0, found = 0;
    kp_p11_snap *snap;
    kp_status st = KP_ERR_NOT_FOUND;

    free(s->out);
    s->out = NULL;
    KP_GUARD(s_label(op->pi, s->name, "state", label, sizeof(label)));
    if ((snap = kp_p11_snap_get(op, true, s->name)) != NULL) {
        st = s_docs_listed(op, snap, s->name, &d, &n, &cur);
        kp_p11_snap_put(op->pi, snap);
        if (st != KP_OK && st != KP_ERR_NOT_FOUND)
            return st;
    }
    /* A writer renames the new document in before it destroys the old one, so a search finds
     * at least one; but the one this search found may be destroyed before it is read. Looking
     * again then finds the new one. A search that finds none: there is none. */
    for (int attempt = 0; st != KP_OK && attempt < 3; attempt++) {
        KP_GUARD(s_docs(op, label, &d, &n, &cur, &found));
        if (n > 0 || found == 0)
            break;
        free(d);
        d = NULL;
    }
    if (n == 0)
        return kp_p11_err(op->pi, KP_ERR_NOT_FOUND, "no state document for %s on token '%s'",
                          s->name, op->pi->token);
    s->out = d[cur].value;
    s->outlen = d[cur].len;
    d[cur].value = NULL;
    s_docs_free(d, n);
    return KP_OK;
}

/* Destroys what a write that stopped early left under the temporary label. */
static kp_status s_sweep(kp_p11_op *op, const char *temp)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)temp, strlen(temp)},
    };
    CK_OBJECT_HANDLE *objs = NULL;
    size_t n = 0;
    kp_status st = kp_p11_find_all(op, tmpl, 3, &objs, &n);

    for (size_t i = 0; st == KP_OK && i < n; i++)
        kp_p11_destroy(op, objs[i]);
    free(objs);
    return st;
}

/* KP_OK when the stored document is what the caller expects. */
static kp_status s_compare(kp_p11_inst *pi, const s_state *s, const s_doc *d, size_t n, size_t cur)
{
    if (s->expect == NULL)
        return KP_OK;
    if (s->expect_len == 0)
        return n == 0 ? KP_OK
                      : kp_p11_err(pi, KP_ERR_CONFLICT,
                                   "state document of %s: one is stored already on token '%s'",
                                   s->name, pi->token);
    if (n == 0)
        return kp_p11_err(pi, KP_ERR_CONFLICT, "state document of %s: none is stored on token '%s'",
                          s->name, pi->token);
    if (d[cur].len != s->expect_len || memcmp(d[cur].value, s->expect, s->expect_len) != 0)
        return kp_p11_err(pi, KP_ERR_CONFLICT,
                          "state document of %s changed on token '%s' since it was read", s->name,
                          pi->token);
    return KP_OK;
}

static kp_status s_put_op(kp_p11_op *op, void *arg)
{
    s_state *s = arg;
    kp_p11_inst *pi = op->pi;
    char label[KP_P11_OBJLABEL_MAX], temp[KP_P11_OBJLABEL_MAX], app[sizeof(S_APP) + 24];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_MODIFIABLE, &yes, sizeof(yes)},
        {CKA_LABEL, temp, 0},
        {CKA_APPLICATION, app, 0},
        {CKA_VALUE, (void *)s->in, s->inlen},
    };
    CK_OBJECT_HANDLE fresh = CK_INVALID_HANDLE;
    s_doc *d = NULL;
    size_t n = 0, cur = 0, found = 0;
    kp_status st = KP_OK;
    CK_RV rv;

    /* A first attempt that got the new document in place and then lost its session: done. */
    if (s->renamed)
        return KP_OK;
    KP_GUARD(s_label(pi, s->name, "state", label, sizeof(label)));
    KP_GUARD(s_label(pi, s->name, "state.new", temp, sizeof(temp)));
    KP_GUARD(s_docs(op, label, &d, &n, &cur, &found));
    st = s_compare(pi, s, d, n, cur);
    if (st == KP_OK)
        st = s_sweep(op, temp);
    if (st == KP_OK) {
        snprintf(app, sizeof(app), "%s/%llu", S_APP,
                 (unsigned long long)(n > 0 ? d[cur].gen : 0) + 1);
        t[4].ulValueLen = strlen(temp);
        t[5].ulValueLen = strlen(app);
        if ((rv = op->f->C_CreateObject(op->s, t, sizeof(t) / sizeof(t[0]), &fresh)) != CKR_OK)
            st = kp_p11_ck(pi, op, rv, false, "C_CreateObject", "state document of %s", s->name);
    }
    if (st == KP_OK) {
        st = kp_p11_relabel(op, fresh, NULL, 0, label);
        if (st != KP_OK && kp_p11_stale_handle(op->rv)) {
            /* Another process's write swept our ".new" object: its document goes in instead. */
            op->rv = CKR_OK;
            st = kp_p11_err(pi, KP_ERR_CONFLICT,
                            "state document of %s: another writer replaced it on token '%s' at "
                            "the same time",
                            s->name, pi->token);
        } else if (st != KP_OK) {
            kp_p11_destroy(op, fresh);
        }
    }
    if (st == KP_OK) {
        s->renamed = true;
        /* Readers now take the new one (a higher generation); the old ones only go. */
        for (size_t i = 0; i < n; i++)
            kp_p11_destroy(op, d[i].obj);
    }
    s_docs_free(d, n);
    return st;
}

kp_status kp_p11_ks_state_get(void *inst, const char *name, uint8_t *doc, size_t *len)
{
    kp_p11_inst *pi = inst;
    s_state s = {.name = name};

    if (len == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "state_get: len is NULL");
    KP_GUARD(kp_p11_check_name(pi, name));
    KP_GUARD(kp_p11_run(pi, s_get_op, &s));
    return kp_buffer_take(pi->up, pi->h, s.out, s.outlen, doc, len, "state document");
}

kp_status kp_p11_ks_state_put(void *inst, const char *name, const uint8_t *doc, size_t len,
                              const uint8_t *expect, size_t expect_len)
{
    kp_p11_inst *pi = inst;
    s_state s = {.name = name, .in = doc, .inlen = len, .expect = expect, .expect_len = expect_len};

    if (doc == NULL || len == 0 || len > KP_STATE_MAX)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "state document of %zu bytes", len);
    if (expect != NULL && expect_len > KP_STATE_MAX)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "expected state document of %zu bytes",
                          expect_len);
    KP_GUARD(kp_p11_check_name(pi, name));
    /* Compare and swap are one step for the threads of this process (kp_p11_write_run). */
    return kp_p11_write_run(pi, s_put_op, &s);
}
