/*
 * The versions x keystores matrix behind `keyplane verify` and `keyplane status`. verify proves
 * each replica usable: a random challenge is encrypted in software with the version's public
 * key, with the chain's algorithm and no other, and must come back through the replica's own
 * unwrap. A copy that cannot unwrap with that algorithm but holds the key (proved with the other
 * RSA-OAEP hash) and may export it is a restore source only: shown so, and a gap unless the
 * policy keeps that store restore-only for the chain.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "base/util.h"
#include "chain/proof.h"
#include "chain/secret_replica.h"
#include "chain/state.h"

struct kp_matrix {
    size_t nv, ni;
    uint32_t *versions;
    char (*fprs)[KPK_FPR_HEX];
    char (*names)[KP_NAME_MAX];
    kp_cell *cells;     /* nv x ni */
    char **ids;         /* nv x ni: the store's own id of the copy in that cell; NULL none */
    bool *restore_only; /* ni: the policy keeps that store restore-only for the chain */
    bool *unconfirmed;  /* nv: a version no store can vouch for (named in problem) */
    int64_t newest;
    kp__vstate *states; /* nv: the recorded lifecycle of each row */
    int64_t *created;   /* nv: the earliest creation a holder reports; 0 unknown */
    int64_t every;      /* the chain's rotation period; 0 none */
    uint32_t unrotated; /* without an active version: the one wrap uses (0 none) */
    char problem[1024]; /* what no cell shows (state documents, unconfirmed versions); "" */

    kp_cert_info *certs; /* nv: certificate chains: each version's certificate */
    bool *has_cert;      /* nv: certs[row] is one */

    kp_status *reach;          /* ni: KP_OK, or the status that store could not be asked with */
    char (*reach_detail)[256]; /* ni: why, when it could not */
};

KP_PRINTF_(4, 5)
static void s_cell(kp_cell *c, uint32_t state, kp_status st, const char *fmt, ...)
{
    va_list ap;
    c->state = state;
    c->status = st;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
    va_end(ap);
}

/* A fresh challenge under spki, encrypted with alg, unwrapped by inst: KP_OK when it came back,
 * KP_ERR_INTEGRITY when another value did, else the store's failure (its text in ctx). */
static kp_status s_challenge(kp_ctx *ctx, kp_instance *inst, const char *chain, uint32_t v,
                             uint32_t alg, const uint8_t *spki, size_t spkilen)
{
    kp__challenge challenge;
    kp_secret *back = NULL;
    kp_status st = kp__challenge_make(ctx, &challenge, spki, spkilen, alg);
    if (st == KP_OK)
        st = kp_key_unwrap(inst, chain, v, alg, challenge.ct, challenge.ctlen, &back);
    if (st == KP_OK && !kp__challenge_met(&challenge, kp_secret_cdata(back), kp_secret_len(back)))
        st = kp__set_error(ctx, KP_ERR_INTEGRITY, "unwrapped to another value");
    kp_secret_free(back);
    return st;
}

/* Whether inst says it can unwrap with alg (an instance that says nothing is asked). */
static bool s_unwraps(kp_instance *inst, uint32_t alg)
{
    uint32_t algs = kp_instance_get0_info(inst)->unwrap_algs;
    return algs == 0 || (algs & KP_ALG_BIT(alg)) != 0;
}

/* How a restore source only is judged: kept so by the policy, or a gap. */
static const char *s_kept(const kp_chain_policy *c, const kp__target *t)
{
    return kp__chain_restore_only(c, t->name) ? ", as the policy keeps it"
                                              : "; a gap unless the chain lists it in restore_only";
}

/* A copy that cannot unwrap with the chain's algorithm (cannot: why) is still a restore source
 * when its key may leave the store and is the version's: the other RSA-OAEP hash proves that. */
static void s_restore_source(kp_ctx *ctx, const kp_chain_policy *c, const kp__target *t,
                             const kp__held *h, const uint8_t *spki, size_t spkilen,
                             const char *cannot, kp_cell *cell)
{
    uint32_t other =
        c->wrap_alg == KP_WRAP_RSA_OAEP_SHA256 ? KP_WRAP_RSA_OAEP_SHA1 : KP_WRAP_RSA_OAEP_SHA256;
    const char *alg = kp_wrap_alg_name(c->wrap_alg), *oalg = kp_wrap_alg_name(other);
    if (!(h->flags & KP_KEY_EXPORTABLE)) {
        s_cell(cell, KP_CELL_UNUSABLE, KP_ERR_UNSUPPORTED,
               "cannot unwrap with %s (%.120s), and its key may not leave it: no restore source "
               "either",
               alg, cannot);
        return;
    }
    kp_status st =
        s_unwraps(t->inst, other)
            ? s_challenge(ctx, t->inst, c->name, h->version, other, spki, spkilen)
            : kp__set_error(ctx, KP_ERR_UNSUPPORTED, "it does not unwrap with %s either", oalg);
    if (st != KP_OK)
        s_cell(cell, KP_CELL_UNUSABLE, st,
               "cannot unwrap with %s (%.80s), and its key is not proved: %.80s", alg, cannot,
               kp_ctx_last_error(ctx));
    else
        s_cell(cell, KP_CELL_RESTORE_ONLY, KP_ERR_UNSUPPORTED,
               "restore source only: cannot unwrap with %s (%.60s); holds the key (unwrapped a "
               "challenge with %s) and may export it%s",
               alg, cannot, oalg, s_kept(c, t));
}

/* Proves that t can unwrap, with the chain's algorithm, what the version's public key wraps;
 * else whether it is a restore source. */
static void s_prove(kp_ctx *ctx, const kp_chain_policy *c, const kp__target *t, const kp__held *h,
                    const uint8_t *spki, size_t spkilen, kp_cell *cell)
{
    char why[KP_ERRBUF];
    kp_status st = KP_ERR_UNSUPPORTED;
    if (!s_unwraps(t->inst, c->wrap_alg))
        snprintf(why, sizeof(why), "%s", "as it declared when opened");
    else if ((st = s_challenge(ctx, t->inst, c->name, h->version, c->wrap_alg, spki, spkilen)) !=
             KP_OK)
        snprintf(why, sizeof(why), "%s", kp_ctx_last_error(ctx));
    if (st == KP_OK)
        s_cell(cell, KP_CELL_OK, KP_OK, "unwrapped a challenge (%s)",
               kp_wrap_alg_name(c->wrap_alg));
    else if (st == KP_ERR_UNSUPPORTED) /* a token without the hash: SoftHSM 2.6.1 and SHA-256 */
        s_restore_source(ctx, c, t, h, spki, spkilen, why, cell);
    else
        s_cell(cell, KP_CELL_UNUSABLE, st, "%s", why);
}

/* status: what a store holds, judged by what it declared (no key is used). */
static void s_present(const kp_chain_policy *c, const kp__target *t, const kp__held *h,
                      kp_cell *cell)
{
    const char *alg = kp_wrap_alg_name(c->wrap_alg);
    if (t->secret || s_unwraps(t->inst, c->wrap_alg))
        s_cell(cell, KP_CELL_OK, KP_OK, "%s", "present");
    else if (!(h->flags & KP_KEY_EXPORTABLE))
        s_cell(cell, KP_CELL_UNUSABLE, KP_ERR_UNSUPPORTED,
               "present, but %s says it cannot unwrap with %s, and the key may not leave it",
               t->name, alg);
    else
        s_cell(cell, KP_CELL_RESTORE_ONLY, KP_ERR_UNSUPPORTED,
               "present; restore source only: %s says it cannot unwrap with %s%s", t->name, alg,
               s_kept(c, t));
}

/* Certificate chains: a copy that holds the key is judged by its certificate too, in a store that
 * keeps certificates; SQL Server restores a TDE backup only with the certificate of that
 * thumbprint. ref: the version's certificate, NULL when no store keeps one. */
static void s_cert_cell(const kp__target *t, const kp__held *h, const kp_cert_info *ref,
                        kp_cell *cell)
{
    if (cell->state != KP_CELL_OK && cell->state != KP_CELL_RESTORE_ONLY)
        return;
    size_t len = strlen(cell->detail);
    if (!t->keeps_certs) {
        if (ref != NULL)
            snprintf(cell->detail + len, sizeof(cell->detail) - len,
                     "; keeps no certificates (the version's is kept elsewhere)");
    } else if (ref == NULL)
        s_cell(cell, KP_CELL_UNUSABLE, KP_ERR_NOT_FOUND,
               "holds the key, but no store keeps its certificate: SQL Server cannot restore "
               "with it (keyplane sqlserver import)");
    else if (h->cert == NULL && h->cert_st != KP_ERR_NOT_FOUND)
        s_cell(cell, KP_CELL_UNUSABLE, h->cert_st, "certificate unreadable: %.160s", h->cert_why);
    else if (h->cert == NULL)
        s_cell(cell, KP_CELL_UNUSABLE, KP_ERR_NOT_FOUND,
               "holds the key but not its certificate (thumbprint %s)", ref->thumbprint);
    else if (strcmp(h->cert->thumbprint, ref->thumbprint) != 0)
        s_cell(cell, KP_CELL_MISMATCH, KP_ERR_INTEGRITY,
               "keeps another certificate (thumbprint %s; the version's is %s)",
               h->cert->thumbprint, ref->thumbprint);
    else
        snprintf(cell->detail + len, sizeof(cell->detail) - len, "; certificate %s",
                 ref->thumbprint);
}

/* The public key a certificate chain's version carries in its certificate, when it hashes to
 * fpr: what proves the copies of a DR region whose only stores are secret replicas (no keystore
 * there to ask). NULL when no reachable store keeps the certificate. */
static uint8_t *s_cert_spki(kp_ctx *ctx, const kp__discovery *d, uint32_t v, const char *fpr,
                            size_t *len)
{
    size_t holder = d->n;
    if (d->chain->certificate == NULL || kp__version_cert(d, v, fpr, &holder, NULL) == NULL ||
        holder >= d->n)
        return NULL;
    const kp__target *t = &d->t[holder];
    uint8_t *der = NULL, *spki = NULL;
    size_t dlen = 0;
    kp_status st =
        t->secret ? kp__secret_cert_get(ctx, t->inst, d->chain->name, v, fpr, &der, &dlen, NULL)
                  : kp_key_cert_get(t->inst, d->chain->name, v, fpr, &der, &dlen);
    const unsigned char *p = der;
    X509 *x = st == KP_OK ? d2i_X509(NULL, &p, (long)dlen) : NULL;
    int n = x != NULL ? i2d_PUBKEY(X509_get0_pubkey(x), &spki) : -1;
    char check[KPK_FPR_HEX] = "";
    if (n <= 0 || kp_fingerprint_spki(spki, (size_t)n, check) != KP_OK || strcmp(check, fpr) != 0) {
        OPENSSL_free(spki);
        spki = NULL;
    }
    uint8_t *out = spki != NULL ? malloc((size_t)n) : NULL;
    if (out != NULL) {
        memcpy(out, spki, (size_t)n);
        *len = (size_t)n;
    }
    OPENSSL_free(spki);
    X509_free(x);
    kp_free(der);
    kp__clear_error(ctx);
    return out;
}

/* The public key of version v with fingerprint fpr, from any reachable holder of it whose key
 * hashes to fpr, else from its certificate; NULL when none has it. */
static uint8_t *s_reference_spki(kp_ctx *ctx, const kp__discovery *d, uint32_t v, const char *fpr,
                                 size_t *len)
{
    for (size_t i = 0; i < d->n; i++) {
        const kp__held *h = d->t[i].reachable ? kp__held_find(&d->t[i], v) : NULL;
        if (h == NULL || strcmp(h->fpr, fpr) != 0 || d->t[i].secret)
            continue;
        uint8_t *spki = NULL;
        char check[KPK_FPR_HEX];
        kp_status st = kp_key_get_public(d->t[i].inst, d->chain->name, v, &spki, len);
        if (st == KP_OK)
            st = kp_fingerprint_spki(spki, *len, check);
        if (st == KP_OK && strcmp(check, fpr) == 0)
            return spki;
        free(spki);
    }
    return s_cert_spki(ctx, d, v, fpr, len);
}

/* The recorded lifecycle of each row, and the chain-level problems no cell shows: state
 * documents that are unreadable, disagree or have no authority, and versions no store can
 * vouch for. */
static kp_status s_chain_state(kp_ctx *ctx, const kp__discovery *d, kp_matrix *m,
                               const uint32_t *versions, const char **fprs, size_t nv)
{
    kp__chain_state *cs = malloc(sizeof(*cs));
    kp__state_report *r = malloc(sizeof(*r));
    bool found = false;
    kp_status st = cs != NULL && r != NULL ? kp__state_decide(ctx, d, cs, &found, r) : KP_ERR_NOMEM;
    if (st == KP_ERR_NOMEM) {
        free(cs);
        free(r);
        return st;
    }
    if (st != KP_OK)
        snprintf(m->problem, sizeof(m->problem), "%s", kp_ctx_last_error(ctx));
    else if (r->problem[0] != '\0')
        snprintf(m->problem, sizeof(m->problem), "%s", r->problem);
    for (size_t k = 0; found && k < nv; k++) {
        kp__vstate *x = kp__state_find(cs, versions[k]);
        if (x != NULL)
            m->states[k] = *x;
    }
    m->unrotated = kp__unrotated_version(d, cs, found);
    for (size_t k = 0; k < nv; k++) {
        if (kp__version_confirmed(d, versions[k], fprs[k]) ||
            m->states[k].state == KP_VSTATE_ABANDONED)
            continue;
        m->unconfirmed[k] = true;
        size_t len = strlen(m->problem);
        snprintf(m->problem + len, sizeof(m->problem) - len,
                 "%sv%u (%.16s...) is held by %zu of the chain's %zu stores and not by the "
                 "origin: unconfirmed, never copied or used to wrap",
                 len > 0 ? "; " : "", versions[k], fprs[k],
                 kp__version_holders(d, versions[k], fprs[k]), d->n);
    }
    free(cs);
    free(r);
    kp__clear_error(ctx);
    return KP_OK;
}

static kp_status s_alloc(kp_matrix *m, size_t nv, size_t ni)
{
    m->nv = nv;
    m->ni = ni;
    m->versions = calloc(nv + 1, sizeof(*m->versions));
    m->fprs = calloc(nv + 1, sizeof(*m->fprs));
    m->names = calloc(ni + 1, sizeof(*m->names));
    m->cells = calloc((nv + 1) * (ni + 1), sizeof(*m->cells));
    m->ids = calloc((nv + 1) * (ni + 1), sizeof(*m->ids));
    m->states = calloc(nv + 1, sizeof(*m->states));
    m->created = calloc(nv + 1, sizeof(*m->created));
    m->restore_only = calloc(ni + 1, sizeof(*m->restore_only));
    m->unconfirmed = calloc(nv + 1, sizeof(*m->unconfirmed));
    m->reach = calloc(ni + 1, sizeof(*m->reach));
    m->reach_detail = calloc(ni + 1, sizeof(*m->reach_detail));
    m->certs = calloc(nv + 1, sizeof(*m->certs));
    m->has_cert = calloc(nv + 1, sizeof(*m->has_cert));
    return m->versions && m->fprs && m->names && m->cells && m->ids && m->states &&
                   m->restore_only && m->unconfirmed && m->created && m->reach && m->reach_detail &&
                   m->certs && m->has_cert
               ? KP_OK
               : KP_ERR_NOMEM;
}

kp_status kp_chain_matrix(kp_ctx *ctx, const kp_policy *policy, const char *chain, int prove,
                          kp_matrix **out)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    kp__discovery d;
    kp_status st = kp__discover_certs(ctx, policy, c, &d);
    uint32_t versions[KP_STATE_VERSIONS];
    const char *fprs[KP_STATE_VERSIONS];
    size_t nv = st == KP_OK ? kp__versions(&d, versions, fprs, KP_STATE_VERSIONS) : 0;
    /* Secret replicas are proved with the password the chain's secret store keeps. */
    kp_instance *secrets = NULL;
    bool any_secret = false;
    for (size_t i = 0; st == KP_OK && i < d.n; i++)
        any_secret = any_secret || d.t[i].secret;
    if (prove && any_secret && c->secrets != NULL &&
        kp__instance_borrow(ctx, policy, c->secrets, &secrets) != KP_OK)
        secrets = NULL;
    kp_matrix *m = calloc(1, sizeof(*m));
    if (m == NULL)
        st = KP_ERR_NOMEM;
    if (st == KP_OK)
        st = s_alloc(m, nv, d.n);
    if (st == KP_OK)
        m->every = c->rotation_every;
    for (size_t i = 0; st == KP_OK && i < d.n; i++) {
        snprintf(m->names[i], KP_NAME_MAX, "%s", d.t[i].name);
        m->restore_only[i] = kp__chain_restore_only(c, d.t[i].name);
        m->reach[i] = d.t[i].reachable         ? KP_OK
                      : d.t[i].status != KP_OK ? d.t[i].status
                                               : KP_ERR_UNAVAILABLE;
        if (!d.t[i].reachable)
            snprintf(m->reach_detail[i], sizeof(m->reach_detail[i]), "%s", d.t[i].detail);
    }
    if (st == KP_OK)
        st = s_chain_state(ctx, &d, m, versions, fprs, nv);
    for (size_t k = 0; st == KP_OK && k < nv; k++) {
        m->versions[k] = versions[k];
        snprintf(m->fprs[k], KPK_FPR_HEX, "%s", fprs[k]);
        size_t spkilen = 0;
        uint8_t *spki = prove ? s_reference_spki(ctx, &d, versions[k], fprs[k], &spkilen) : NULL;
        bool split = false;
        const kp_cert_info *ref = c->certificate != NULL
                                      ? kp__version_cert(&d, versions[k], fprs[k], NULL, &split)
                                      : NULL;
        if (split) {
            size_t len = strlen(m->problem);
            snprintf(m->problem + len, sizeof(m->problem) - len,
                     "%sstores keep different certificates for v%u and the origin keeps none: "
                     "remove the wrong one (keyplane status shows which store keeps which)",
                     len > 0 ? "; " : "", versions[k]);
        }
        if (ref != NULL) {
            m->certs[k] = *ref;
            m->has_cert[k] = true;
        }
        /* the chain-state document's record of the version's certificate */
        const char *rec = m->states[k].cert;
        if (ref != NULL && rec[0] != '\0' && strcmp(rec, ref->thumbprint) != 0) {
            size_t len = strlen(m->problem);
            snprintf(m->problem + len, sizeof(m->problem) - len,
                     "%sthe chain-state document records certificate %s for v%u, the stores keep "
                     "%s",
                     len > 0 ? "; " : "", rec, versions[k], ref->thumbprint);
        }
        for (size_t i = 0; i < d.n; i++) {
            kp_cell *cell = &m->cells[k * d.n + i];
            kp__target *t = &d.t[i];
            const kp__held *h = t->reachable ? kp__held_find(t, versions[k]) : NULL;
            if (h != NULL && h->created > m->newest)
                m->newest = h->created;
            if (h != NULL && h->backend_id[0] != '\0') {
                m->ids[k * d.n + i] = kp__strdup(h->backend_id);
                if (m->ids[k * d.n + i] == NULL)
                    st = KP_ERR_NOMEM;
            }
            if (h != NULL && h->created > 0 && strcmp(h->fpr, fprs[k]) == 0 &&
                (m->created[k] == 0 || h->created < m->created[k]))
                m->created[k] = h->created;
            if (!t->reachable)
                s_cell(cell, KP_CELL_UNREACHABLE, t->status, "%s", t->detail);
            else if (h == NULL)
                s_cell(cell, KP_CELL_MISSING, KP_ERR_NOT_FOUND, "%s", "version missing");
            else if (strcmp(h->fpr, fprs[k]) != 0)
                s_cell(cell, KP_CELL_MISMATCH, KP_ERR_INTEGRITY, "holds another key (%.16s...)",
                       h->fpr);
            else if (!prove)
                s_present(c, t, h, cell);
            else if (spki == NULL)
                s_cell(cell, KP_CELL_UNUSABLE, KP_ERR_NOT_FOUND, "%s",
                       "no public key of this version to prove it with");
            else if (t->secret) {
                char why[256];
                kp_status pst = kp__secret_prove(ctx, c, t->inst, secrets, versions[k], spki,
                                                 spkilen, why, sizeof(why));
                s_cell(cell, pst == KP_OK ? KP_CELL_OK : KP_CELL_UNUSABLE, pst, "%s", why);
            } else
                s_prove(ctx, c, t, h, spki, spkilen, cell);
            /* a usable copy in a store the policy keeps for restores: wrap and unwrap pass it
             * over unless it is named, so it is shown as what it is in a disaster */
            if (cell->state == KP_CELL_OK && m->restore_only[i]) {
                size_t len = strlen(cell->detail);
                cell->state = KP_CELL_RESTORE_ONLY;
                snprintf(cell->detail + len, sizeof(cell->detail) - len,
                         "; restore-only by policy (wrap and unwrap pass it over)");
            }
            /* the store's own word that the copy would fail its purpose (kp_key_info.gap, ABI
             * 1.2: a vault without purge protection, which Azure SQL refuses): a gap */
            if (h != NULL && h->gap[0] != '\0' &&
                (cell->state == KP_CELL_OK || cell->state == KP_CELL_RESTORE_ONLY))
                s_cell(cell, KP_CELL_UNUSABLE, KP_ERR_UNSUPPORTED, "%s", h->gap);
            if (h != NULL && c->certificate != NULL)
                s_cert_cell(t, h, ref, cell);
        }
        free(spki);
    }
    kp__instance_return(ctx, secrets);
    kp__discovery_clear(&d);
    if (st != KP_OK) {
        kp_matrix_free(m);
        return st;
    }
    kp__clear_error(ctx);
    *out = m;
    return KP_OK;
}

void kp_matrix_free(kp_matrix *m)
{
    if (m == NULL)
        return;
    free(m->versions);
    free(m->fprs);
    free(m->names);
    free(m->cells);
    for (size_t i = 0; m->ids != NULL && i < m->nv * m->ni; i++)
        free(m->ids[i]);
    free(m->ids);
    free(m->states);
    free(m->created);
    free(m->certs);
    free(m->has_cert);
    free(m->restore_only);
    free(m->unconfirmed);
    free(m->reach);
    free(m->reach_detail);
    free(m);
}

size_t kp_matrix_version_count(const kp_matrix *m)
{
    return m != NULL ? m->nv : 0;
}

uint32_t kp_matrix_version(const kp_matrix *m, size_t row)
{
    return m != NULL && row < m->nv ? m->versions[row] : 0;
}

const char *kp_matrix_fingerprint(const kp_matrix *m, size_t row)
{
    return m != NULL && row < m->nv ? m->fprs[row] : NULL;
}

size_t kp_matrix_instance_count(const kp_matrix *m)
{
    return m != NULL ? m->ni : 0;
}

const char *kp_matrix_instance(const kp_matrix *m, size_t col)
{
    return m != NULL && col < m->ni ? m->names[col] : NULL;
}

kp_status kp_matrix_instance_status(const kp_matrix *m, size_t col, const char **detail)
{
    if (detail != NULL)
        *detail = m != NULL && col < m->ni && m->reach[col] != KP_OK ? m->reach_detail[col] : NULL;
    if (m == NULL || col >= m->ni)
        return KP_ERR_INVALID_ARG;
    return m->reach[col];
}

const kp_cell *kp_matrix_cell(const kp_matrix *m, size_t row, size_t col)
{
    return m != NULL && row < m->nv && col < m->ni ? &m->cells[row * m->ni + col] : NULL;
}

const char *kp_matrix_backend_id(const kp_matrix *m, size_t row, size_t col)
{
    return m != NULL && row < m->nv && col < m->ni ? m->ids[row * m->ni + col] : NULL;
}

const char *kp_matrix_problem(const kp_matrix *m)
{
    return m != NULL && m->problem[0] != '\0' ? m->problem : NULL;
}

const kp_cert_info *kp_matrix_certificate(const kp_matrix *m, size_t row)
{
    return m != NULL && row < m->nv && m->has_cert[row] ? &m->certs[row] : NULL;
}

int kp_matrix_cell_ok(const kp_matrix *m, size_t row, size_t col)
{
    const kp_cell *cell = kp_matrix_cell(m, row, col);
    if (cell != NULL && m->states[row].state == KP_VSTATE_ABANDONED)
        return 1; /* given up: its copies are no longer wanted anywhere */
    if (cell != NULL && m->unconfirmed[row] && cell->state == KP_CELL_MISSING)
        return 1; /* not the chain's (the problem says so): no store should get it */
    return cell != NULL && (cell->state == KP_CELL_OK ||
                            (cell->state == KP_CELL_RESTORE_ONLY && m->restore_only[col]));
}

int kp_matrix_ok(const kp_matrix *m)
{
    if (m == NULL || m->nv == 0 || m->problem[0] != '\0')
        return 0;
    for (size_t r = 0; r < m->nv; r++)
        for (size_t i = 0; i < m->ni; i++)
            if (!kp_matrix_cell_ok(m, r, i))
                return 0;
    return 1;
}

uint32_t kp_matrix_state(const kp_matrix *m, size_t row, int64_t *active_from,
                         int64_t *active_until)
{
    if (m == NULL || row >= m->nv)
        return KP_VSTATE_NONE;
    if (active_from != NULL)
        *active_from = m->states[row].active_from;
    if (active_until != NULL)
        *active_until = m->states[row].active_until;
    return m->states[row].state;
}

int64_t kp_matrix_newest_created(const kp_matrix *m)
{
    return m != NULL ? m->newest : 0;
}

int64_t kp_matrix_created(const kp_matrix *m, size_t row)
{
    return m != NULL && row < m->nv ? m->created[row] : 0;
}

int64_t kp_matrix_rotation_due(const kp_matrix *m, uint32_t *version)
{
    if (version != NULL)
        *version = 0;
    if (m == NULL || m->every <= 0)
        return 0;
    size_t row = m->nv;
    for (size_t k = 0; k < m->nv; k++)
        if (m->states[k].state == KP_VSTATE_ACTIVE ||
            (row == m->nv && m->versions[k] == m->unrotated))
            row = k;
    /* The active version counts from its activation; the first one (active before the chain
     * had a document) and the version a never-rotated chain wraps with, from their creation. */
    int64_t from = row == m->nv                     ? 0
                   : m->states[row].active_from > 0 ? m->states[row].active_from
                                                    : m->created[row];
    if (from <= 0)
        return 0;
    if (version != NULL)
        *version = m->versions[row];
    return from + m->every; /* both bounded: durations are capped at 1000y */
}
