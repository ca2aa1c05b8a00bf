/*
 * The versions x keystores matrix behind `keyplane verify` and `keyplane status`. verify proves
 * each replica usable: a random challenge is encrypted in software with the version's public
 * key and must come back through the replica's own unwrap.
 */
#include <stdlib.h>
#include <string.h>

#include "chain/proof.h"
#include "chain/secret_replica.h"
#include "chain/state.h"

#define KP_MATRIX_MAX_VERSIONS 512

struct kp_matrix {
    size_t nv, ni;
    uint32_t *versions;
    char (*fprs)[KPK_FPR_HEX];
    char (*names)[KP_NAME_MAX];
    kp_cell *cells; /* nv x ni */
    int64_t newest;
    kp__vstate *states; /* nv: the recorded lifecycle of each row */
};

static void s_cell(kp_cell *c, uint32_t state, kp_status st, const char *fmt, const char *a)
{
    c->state = state;
    c->status = st;
    snprintf(c->detail, sizeof(c->detail), fmt, a);
}

/* Proves that t can unwrap what the version's public key wraps. */
static void s_prove(kp_ctx *ctx, const kp_chain_policy *c, kp__target *t, uint32_t v,
                    const uint8_t *spki, size_t spkilen, kp_cell *cell)
{
    kp__challenge challenge;
    uint32_t alg = c->wrap_alg;
    kp_secret *back = NULL;
    kp_status st = KP_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        st = kp__challenge_make(ctx, &challenge, spki, spkilen, alg);
        if (st == KP_OK)
            st = kp_key_unwrap(t->inst, c->name, v, alg, challenge.ct, challenge.ctlen, &back);
        /* A token without OAEP-SHA-256 (SoftHSM 2.6.1) still proves the key with SHA-1. */
        if (st != KP_ERR_UNSUPPORTED || alg != KP_WRAP_RSA_OAEP_SHA256)
            break;
        alg = KP_WRAP_RSA_OAEP_SHA1;
    }
    if (st == KP_OK && kp__challenge_met(&challenge, kp_secret_cdata(back), kp_secret_len(back)))
        s_cell(cell, KP_CELL_OK, KP_OK, "unwrapped a challenge (%s)", kp_wrap_alg_name(alg));
    else if (st == KP_OK)
        s_cell(cell, KP_CELL_UNUSABLE, KP_ERR_INTEGRITY, "%s", "unwrapped to another value");
    else
        s_cell(cell, KP_CELL_UNUSABLE, st, "%s", kp_ctx_last_error(ctx));
    kp_secret_free(back);
}

/* The public key of version v with fingerprint fpr, from any reachable holder of it whose key
 * hashes to fpr; NULL when none has it. */
static uint8_t *s_reference_spki(const kp__discovery *d, uint32_t v, const char *fpr, size_t *len)
{
    for (size_t i = 0; i < d->n; i++) {
        const kp__held *h = d->t[i].reachable ? kp__held_find(&d->t[i], v) : NULL;
        if (h == NULL || strcmp(h->fpr, fpr) != 0)
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
    return NULL;
}

static kp_status s_alloc(kp_matrix *m, size_t nv, size_t ni)
{
    m->nv = nv;
    m->ni = ni;
    m->versions = calloc(nv + 1, sizeof(*m->versions));
    m->fprs = calloc(nv + 1, sizeof(*m->fprs));
    m->names = calloc(ni + 1, sizeof(*m->names));
    m->cells = calloc((nv + 1) * (ni + 1), sizeof(*m->cells));
    m->states = calloc(nv + 1, sizeof(*m->states));
    return m->versions && m->fprs && m->names && m->cells && m->states ? KP_OK : KP_ERR_NOMEM;
}

kp_status kp_chain_matrix(kp_ctx *ctx, const kp_policy *policy, const char *chain, int prove,
                          kp_matrix **out)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    kp__discovery d;
    kp_status st = kp__discover(ctx, policy, c, &d);
    uint32_t versions[KP_MATRIX_MAX_VERSIONS];
    const char *fprs[KP_MATRIX_MAX_VERSIONS];
    size_t nv = st == KP_OK ? kp__versions(&d, versions, fprs, KP_MATRIX_MAX_VERSIONS) : 0;
    /* Secret replicas are proved with the password the chain's secret store keeps. */
    kp_instance *secrets = NULL;
    bool any_secret = false;
    for (size_t i = 0; st == KP_OK && i < d.n; i++)
        any_secret = any_secret || d.t[i].secret;
    if (prove && any_secret && c->secrets != NULL &&
        kp_instance_open(ctx, policy, c->secrets, &secrets) != KP_OK)
        secrets = NULL;
    kp_matrix *m = calloc(1, sizeof(*m));
    if (m == NULL)
        st = KP_ERR_NOMEM;
    if (st == KP_OK)
        st = s_alloc(m, nv, d.n);
    for (size_t i = 0; st == KP_OK && i < d.n; i++)
        snprintf(m->names[i], KP_NAME_MAX, "%s", d.t[i].name);
    kp__chain_state *cs = st == KP_OK ? malloc(sizeof(*cs)) : NULL;
    bool have_state = false;
    if (cs != NULL && kp__state_load(ctx, &d, cs, &have_state) == KP_OK && have_state)
        for (size_t k = 0; k < nv; k++) {
            kp__vstate *x = kp__state_find(cs, versions[k]);
            if (x != NULL)
                m->states[k] = *x;
        }
    free(cs);
    for (size_t k = 0; st == KP_OK && k < nv; k++) {
        m->versions[k] = versions[k];
        snprintf(m->fprs[k], KPK_FPR_HEX, "%s", fprs[k]);
        size_t spkilen = 0;
        uint8_t *spki = prove ? s_reference_spki(&d, versions[k], fprs[k], &spkilen) : NULL;
        for (size_t i = 0; i < d.n; i++) {
            kp_cell *cell = &m->cells[k * d.n + i];
            kp__target *t = &d.t[i];
            const kp__held *h = t->reachable ? kp__held_find(t, versions[k]) : NULL;
            if (h != NULL && h->created > m->newest)
                m->newest = h->created;
            if (!t->reachable)
                s_cell(cell, KP_CELL_UNREACHABLE, t->status, "%s", t->detail);
            else if (h == NULL)
                s_cell(cell, KP_CELL_MISSING, KP_ERR_NOT_FOUND, "%s", "version missing");
            else if (strcmp(h->fpr, fprs[k]) != 0)
                s_cell(cell, KP_CELL_MISMATCH, KP_ERR_INTEGRITY, "holds another key (%.16s...)",
                       h->fpr);
            else if (!prove)
                s_cell(cell, KP_CELL_OK, KP_OK, "%s", "present");
            else if (spki == NULL)
                s_cell(cell, KP_CELL_UNUSABLE, KP_ERR_NOT_FOUND, "%s",
                       "no public key of this version to prove it with");
            else if (t->secret) {
                char why[256];
                kp_status pst = kp__secret_prove(ctx, c, t->inst, secrets, versions[k], spki,
                                                 spkilen, why, sizeof(why));
                s_cell(cell, pst == KP_OK ? KP_CELL_OK : KP_CELL_UNUSABLE, pst, "%s", why);
            } else
                s_prove(ctx, c, t, versions[k], spki, spkilen, cell);
        }
        free(spki);
    }
    kp_instance_close(secrets);
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
    free(m->states);
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

const kp_cell *kp_matrix_cell(const kp_matrix *m, size_t row, size_t col)
{
    return m != NULL && row < m->nv && col < m->ni ? &m->cells[row * m->ni + col] : NULL;
}

int kp_matrix_ok(const kp_matrix *m)
{
    if (m == NULL || m->nv == 0)
        return 0;
    for (size_t i = 0; i < m->nv * m->ni; i++)
        if (m->cells[i].state != KP_CELL_OK)
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
