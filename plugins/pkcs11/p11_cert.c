/*
 * Certificates kept with key versions (KS_CERT_PUT / KS_CERT_GET, ABI 1.3). The certificate of
 * RSA version N of key NAME is a token object CKO_CERTIFICATE / CKC_X_509, public
 * (CKA_PRIVATE false), not modifiable where the token allows it, labelled as the version
 * ("<prefix>NAME/vN") and with the version's CKA_ID (its key's fingerprint), so that any PKCS#11
 * tool finds it beside its key pair (`pkcs11-tool --read-object --type cert --id <fingerprint>`).
 * CKA_VALUE is the DER; CKA_SUBJECT, CKA_ISSUER and CKA_SERIAL_NUMBER come from it. A
 * certificate cannot carry the tag of the key's objects (its CKA_SUBJECT is its own subject):
 * the label and CKA_ID are what find it, and the plugin only ever destroys the object the same
 * call made.
 *
 * Which certificate a version keeps, when writers race: the threads of one process never do
 * (the put runs under kp_p11_write_run), but processes have no lock they all respect. Every
 * object of the version's label and CKA_ID counts, and the version keeps the one whose DER sorts
 * first (memcmp; on a common prefix the shorter first); readers take that one, and several
 * objects of the same bytes are one certificate. A writer
 * 1. lists the version's certificates: when there is one, it makes nothing and answers as the
 *    kept one says (its own bytes: KP_OK; others: KP_ERR_EXISTS);
 * 2. else makes its object right after that search (a search re-reads a lagging token's list of
 *    objects, p11_version.c);
 * 3. lists again until KP_P11_DECIDE_MS have passed and it has nudged twice (p11_version.c):
 *    as soon as another certificate sorts before its own, it destroys its own and answers
 *    KP_ERR_EXISTS; otherwise KP_OK.
 * Why that leaves one certificate: a writer destroys nothing but its own object, and only when
 * another sorts before it, so the first in the order is never destroyed. A writer that searches
 * after another's object was made finds it in step 1 and makes nothing. Two writers that both
 * made an object (each searched before the other's create) made them moments apart, and each
 * decides only after its own two nudges and KP_P11_DECIDE_MS, by when the other has nudged too:
 * each sees the other's object (on SoftHSM, whose list of objects lags, because a nudge makes
 * every other process re-read it) and they agree which one sorts first. The window left is the one
 * key versions have (p11_version.c): a writer held up between its search and its create for longer
 * than another writer's whole step 3 may never see that writer's object on SoftHSM; readers
 * still all take the same certificate, the first in the order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <keyplane/kit/clock.h>
#include <keyplane/kit/codec.h>

#include "p11_internal.h"

#define S_POLL_MS 20       /* between two listings */
#define S_NUDGE_MS 25      /* the first nudge this long after the object, plus up to S_JITTER_MS */
#define S_NUDGE_GAP_MS 40  /* the second nudge after the first, plus up to S_JITTER_MS */
#define S_JITTER_MS 25     /* so that two writers' nudges fall apart */
#define S_DECIDE_GAP_MS 25 /* a decision this long after the last nudge at least */

/* One certificate object of a version, as a listing read it. */
typedef struct s_cert {
    CK_OBJECT_HANDLE obj;
    uint8_t *der; /* malloc'ed CKA_VALUE */
    size_t len;
} s_cert;

/* One call: its arguments, what the certificate says, and what a first attempt did. */
typedef struct s_call {
    const char *name;
    uint32_t version;
    const uint8_t *der; /* put */
    size_t len;
    bool parsed;                     /* put: der is one certificate */
    char fpr[KPK_FPR_HEX];           /* put: the fingerprint of its key */
    unsigned char *subject, *issuer; /* put: DER, OPENSSL_malloc'ed */
    unsigned char *serial;           /* put: DER INTEGER, OPENSSL_malloc'ed */
    size_t subject_len, issuer_len, serial_len;
    CK_OBJECT_HANDLE made; /* put: the object this call made (kept over a retry) */
    uint64_t made_ms;      /* put: monotonic time it was made */
    uint8_t *out;          /* get: malloc'ed */
    size_t outlen;
} s_call;

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

/* The order of certificates (<0: a first): memcmp, and on a common prefix the shorter first. */
static int s_order(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static void s_certs_free(s_cert *c, size_t n)
{
    for (size_t i = 0; c != NULL && i < n; i++)
        free(c[i].der);
    free(c);
}

/* The certificate the version keeps among c (n > 0): the first in the order. */
static size_t s_kept(const s_cert *c, size_t n)
{
    size_t k = 0;

    for (size_t i = 1; i < n; i++)
        if (s_order(c[i].der, c[i].len, c[k].der, c[k].len) < 0)
            k = i;
    return k;
}

/* Whether key->obj is still the object of that version: one found in the cache may have been
 * destroyed or replaced by another tool since (as KS_GET checks, p11_keystore.c). */
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

/* The version, found as KS_GET finds it, its label and the fingerprint of its key ("" for an
 * AES key, which has no public key a certificate could hold). */
static kp_status s_version(kp_p11_op *op, const s_call *c, kp_p11_key *key, char *label,
                           size_t size, char fpr[KPK_FPR_HEX])
{
    kp_status st = kp_p11_key_find(op, c->name, c->version, key);

    if (st == KP_OK && !s_still_there(op, key)) {
        kp_p11_cache_flush(op->pi);
        st = kp_p11_key_find(op, c->name, c->version, key);
    }
    KP_GUARD(st);
    fpr[0] = '\0';
    if (key->type == KP_KEY_RSA && key->idlen == KP_P11_SHA256_LEN)
        kpk_hex_encode(key->id, key->idlen, fpr);
    return kp_p11_label(op->pi, c->name, c->version, label, size);
}

/* The certificate objects of the version (its label and CKA_ID) with their DER. Objects
 * destroyed between the search and the read (a losing writer's) are left out. */
static kp_status s_list(kp_p11_op *op, const kp_p11_key *key, const char *label, s_cert **out,
                        size_t *n)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ct = CKC_X_509;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},        {CKA_CERTIFICATE_TYPE, &ct, sizeof(ct)},
        {CKA_TOKEN, &yes, sizeof(yes)},        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)key->id, key->idlen},
    };
    CK_OBJECT_HANDLE *objs = NULL;
    s_cert *c = NULL;
    size_t found = 0, got = 0;
    kp_status st;

    *out = NULL;
    *n = 0;
    KP_GUARD(kp_p11_find_all(op, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &objs, &found));
    if (found > 0 && (c = calloc(found, sizeof(*c))) == NULL)
        st = kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
    else
        st = KP_OK;
    for (size_t i = 0; st == KP_OK && i < found; i++) {
        c[got].obj = objs[i];
        st = kp_p11_attr(op, objs[i], CKA_VALUE, &c[got].der, &c[got].len);
        if (st != KP_OK && op->rv == CKR_OBJECT_HANDLE_INVALID) {
            op->rv = CKR_OK; /* destroyed since the search: not there */
            st = KP_OK;
            continue;
        }
        if (st == KP_OK)
            got++;
    }
    free(objs);
    if (st != KP_OK) {
        s_certs_free(c, found); /* calloc'ed: the slots not reached hold NULL */
        return st;
    }
    *out = c;
    *n = got;
    return KP_OK;
}

/* KP_OK when cert is a certificate of the key whose fingerprint is fpr, else KP_ERR_INTEGRITY:
 * a reader never hands out, and a writer never agrees with, another key's certificate. */
static kp_status s_check_kept(kp_p11_inst *pi, const s_call *c, const s_cert *cert, const char *fpr)
{
    char got[KPK_FPR_HEX];

    if (cert->len > KP_CERT_DER_MAX || kpk_cert_fpr(cert->der, cert->len, got) != KP_OK)
        return kp_p11_err(pi, KP_ERR_INTEGRITY,
                          "the certificate object of %s v%u on token '%s' is not one DER X.509 "
                          "certificate",
                          c->name, c->version, pi->token);
    if (fpr[0] == '\0' || strcmp(got, fpr) != 0)
        return kp_p11_err(pi, KP_ERR_INTEGRITY,
                          "the certificate object of %s v%u on token '%s' is for another key "
                          "(%.12s)",
                          c->name, c->version, pi->token, got);
    return KP_OK;
}

static kp_status s_get_op(kp_p11_op *op, void *arg)
{
    s_call *c = arg;
    char label[KP_P11_OBJLABEL_MAX], fpr[KPK_FPR_HEX];
    s_cert *certs = NULL;
    size_t n = 0, k;
    kp_p11_key key;
    kp_status st;

    free(c->out); /* from a first attempt that failed half-way */
    c->out = NULL;
    KP_GUARD(s_version(op, c, &key, label, sizeof(label), fpr));
    KP_GUARD(s_list(op, &key, label, &certs, &n));
    if (n == 0) {
        st = kp_p11_err(op->pi, KP_ERR_NOT_FOUND, "key %s v%u keeps no certificate on token '%s'",
                        c->name, c->version, op->pi->token);
    } else {
        k = s_kept(certs, n);
        st = s_check_kept(op->pi, c, &certs[k], fpr);
        if (st == KP_OK) {
            c->out = certs[k].der;
            c->outlen = certs[k].len;
            certs[k].der = NULL;
        }
    }
    s_certs_free(certs, n);
    return st;
}

/* The answer to a writer of c->der when the version keeps certs[0..n) already (n > 0). */
static kp_status s_answer(kp_p11_inst *pi, const s_call *c, const s_cert *certs, size_t n,
                          const char *fpr)
{
    const s_cert *kept = &certs[s_kept(certs, n)];

    KP_GUARD(s_check_kept(pi, c, kept, fpr));
    if (kept->len == c->len && CRYPTO_memcmp(kept->der, c->der, c->len) == 0)
        return KP_OK;
    return kp_p11_err(pi, KP_ERR_EXISTS, "%s v%u keeps another certificate already on token '%s'",
                      c->name, c->version, pi->token);
}

/* Makes the certificate object of c, right after the caller's search. Not modifiable where the
 * token takes that; a token that refuses the attribute gets the object without it. */
static kp_status s_make(kp_p11_op *op, s_call *c, const kp_p11_key *key, const char *label)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ct = CKC_X_509;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_CERTIFICATE_TYPE, &ct, sizeof(ct)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)key->id, key->idlen},
        {CKA_SUBJECT, c->subject, c->subject_len},
        {CKA_ISSUER, c->issuer, c->issuer_len},
        {CKA_SERIAL_NUMBER, c->serial, c->serial_len},
        {CKA_VALUE, (void *)c->der, c->len},
        {CKA_MODIFIABLE, &no, sizeof(no)}, /* last: left out when refused */
    };
    CK_ULONG nt = sizeof(t) / sizeof(t[0]);
    CK_RV rv = op->f->C_CreateObject(op->s, t, nt, &c->made);

    if (rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_ATTRIBUTE_TYPE_INVALID ||
        rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_TEMPLATE_INCONSISTENT) {
        kp_p11_refresh(op);
        rv = op->f->C_CreateObject(op->s, t, nt - 1, &c->made);
    }
    if (rv != CKR_OK) {
        c->made = CK_INVALID_HANDLE;
        return kp_p11_ck(op->pi, op, rv, false, "C_CreateObject", "certificate of %s v%u", c->name,
                         c->version);
    }
    c->made_ms = s_ms();
    return KP_OK;
}

/* What one listing says to the writer of c: whether its own object is there, and whether
 * another certificate sorts before its own. */
static kp_status s_look(kp_p11_op *op, const s_call *c, const kp_p11_key *key, const char *label,
                        bool *own, bool *beaten)
{
    s_cert *certs = NULL;
    size_t n = 0;

    *own = *beaten = false;
    KP_GUARD(s_list(op, key, label, &certs, &n));
    for (size_t i = 0; i < n; i++) {
        *own |= certs[i].obj == c->made;
        *beaten |= s_order(certs[i].der, certs[i].len, c->der, c->len) < 0;
    }
    s_certs_free(certs, n);
    return KP_OK;
}

/* Step 3 of the top: whether the object c made stays the version's certificate. */
static kp_status s_settle(kp_p11_op *op, s_call *c, const kp_p11_key *key, const char *label)
{
    kp_p11_inst *pi = op->pi;
    uint64_t nudge = c->made_ms + S_NUDGE_MS + s_jitter(pi), decide = 0;
    CK_OBJECT_HANDLE nudged = CK_INVALID_HANDLE;
    bool own = false, beaten = false;
    int nudges = 0;
    kp_status st;

    for (;;) {
        if ((st = s_look(op, c, key, label, &own, &beaten)) != KP_OK)
            break;
        if (!own) {
            c->made = CK_INVALID_HANDLE;
            st = kp_p11_err(pi, KP_ERR_UNAVAILABLE,
                            "the certificate object made for %s v%u vanished from token '%s'; "
                            "retry",
                            c->name, c->version, pi->token);
            break;
        }
        if (beaten) {
            kp_p11_refresh(op);
            kp_p11_destroy(op, c->made);
            c->made = CK_INVALID_HANDLE;
            st = kp_p11_err(pi, KP_ERR_EXISTS,
                            "another writer put another certificate with %s v%u on token '%s' "
                            "at the same time",
                            c->name, c->version, pi->token);
            break;
        }
        uint64_t now = s_ms();
        if (nudges < 2 && now >= nudge) {
            kp_p11_nudge(op, &nudged);
            nudges++;
            nudge = s_ms() + S_NUDGE_GAP_MS + s_jitter(pi);
            decide = s_ms() + S_DECIDE_GAP_MS;
            continue; /* list again before anything is decided */
        }
        if (nudges == 2 && now >= decide && now >= c->made_ms + KP_P11_DECIDE_MS)
            break; /* st is KP_OK: ours is first */
        s_sleep_ms(S_POLL_MS);
    }
    if (nudged != CK_INVALID_HANDLE) { /* a decision came before the second nudge */
        kp_p11_refresh(op);
        kp_p11_destroy(op, nudged);
    }
    return st;
}

static kp_status s_put_op(kp_p11_op *op, void *arg)
{
    s_call *c = arg;
    kp_p11_inst *pi = op->pi;
    char label[KP_P11_OBJLABEL_MAX], fpr[KPK_FPR_HEX];
    s_cert *certs = NULL;
    size_t n = 0;
    kp_p11_key key;
    kp_status st;

    KP_GUARD(s_version(op, c, &key, label, sizeof(label), fpr));
    if (!c->parsed)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "not one DER X.509 certificate");
    if (fpr[0] == '\0')
        return kp_p11_err(pi, KP_ERR_INTEGRITY,
                          "key %s v%u is an AES key: no certificate holds its key", c->name,
                          c->version);
    if (strcmp(c->fpr, fpr) != 0)
        return kp_p11_err(pi, KP_ERR_INTEGRITY,
                          "the certificate is for another key than %s v%u (its key %.12s, the "
                          "version %.12s)",
                          c->name, c->version, c->fpr, fpr);
    /* A first attempt that made its object and then lost its session decides about it now. */
    if (c->made != CK_INVALID_HANDLE)
        return s_settle(op, c, &key, label);
    KP_GUARD(s_list(op, &key, label, &certs, &n));
    st = n > 0 ? s_answer(pi, c, certs, n, fpr) : s_make(op, c, &key, label);
    s_certs_free(certs, n);
    if (st != KP_OK || n > 0)
        return st;
    return s_settle(op, c, &key, label);
}

/* The attributes of the certificate object that come from the certificate (der is one). */
static kp_status s_fields(kp_p11_inst *pi, s_call *c)
{
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->len);
    int ns = -1, ni = -1, nr = -1;

    if (x != NULL) {
        ns = i2d_X509_NAME(X509_get_subject_name(x), &c->subject);
        ni = i2d_X509_NAME(X509_get_issuer_name(x), &c->issuer);
        nr = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &c->serial);
    }
    X509_free(x);
    if (ns <= 0 || ni <= 0 || nr <= 0)
        return kp_p11_ossl_err(pi, KP_ERR_INVALID_ARG,
                               "cannot read the subject, issuer and serial of the certificate");
    c->subject_len = (size_t)ns;
    c->issuer_len = (size_t)ni;
    c->serial_len = (size_t)nr;
    return KP_OK;
}

kp_status kp_p11_ks_cert_put(void *inst, const char *name, uint32_t version, const uint8_t *der,
                             size_t len)
{
    kp_p11_inst *pi = inst;
    s_call c = {.name = name, .version = version, .der = der, .len = len};
    kp_status st = KP_OK;

    if (der == NULL || len == 0 || len > KP_CERT_DER_MAX)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "certificate of %zu bytes", len);
    KP_GUARD(kp_p11_check_name(pi, name));
    if (version == 0)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "certificate of %s: version 0", name);
    /* Read before the token is: the object is made right after a search (see the top). Bytes
     * that are no certificate are refused once the version is seen to exist. */
    c.parsed = kpk_cert_fpr(der, len, c.fpr) == KP_OK;
    if (c.parsed)
        st = s_fields(pi, &c);
    if (st == KP_OK)
        st = kp_p11_write_run(pi, s_put_op, &c);
    OPENSSL_free(c.subject);
    OPENSSL_free(c.issuer);
    OPENSSL_free(c.serial);
    return st;
}

kp_status kp_p11_ks_cert_get(void *inst, const char *name, uint32_t version, uint8_t *der,
                             size_t *len)
{
    kp_p11_inst *pi = inst;
    s_call c = {.name = name, .version = version};

    if (len == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "cert_get: len is NULL");
    KP_GUARD(kp_p11_check_name(pi, name));
    if (version == 0)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "certificate of %s: version 0", name);
    KP_GUARD(kp_p11_run(pi, s_get_op, &c));
    return kp_buffer_take(pi->up, pi->h, c.out, c.outlen, der, len, "certificate");
}
