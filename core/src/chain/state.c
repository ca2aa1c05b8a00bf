/*
 * The chain-state document (see state.h): JSON
 *   {"format":"keyplane-chain-state","chain":C,"serial":N,"updated":T,
 *    "versions":[{"version":1,"state":"active","active_from":T,"active_until":0,"verified":T,
 *                 "certificate":THUMBPRINT}]}
 * ("certificate" only for a certificate chain's version whose certificate was known.)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "chain/state.h"

static const char *s_names[] = {"none", "staged", "active", "previous", "retired", "abandoned"};

const char *kp_version_state_name(uint32_t state)
{
    return state < sizeof(s_names) / sizeof(s_names[0]) ? s_names[state] : "unknown";
}

static uint32_t s_state_of(const char *name)
{
    for (uint32_t i = 1; name != NULL && i < sizeof(s_names) / sizeof(s_names[0]); i++)
        if (strcmp(s_names[i], name) == 0)
            return i;
    return 0;
}

bool kp__state_parse(const uint8_t *doc, size_t len, const char *chain, kp__chain_state *s)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)doc, len, JSON_REJECT_DUPLICATES, &err);
    const char *fmt = json_string_value(json_object_get(j, "format"));
    const char *c = json_string_value(json_object_get(j, "chain"));
    json_t *vs = json_object_get(j, "versions");
    bool ok = fmt != NULL && strcmp(fmt, "keyplane-chain-state") == 0 && c != NULL &&
              strcmp(c, chain) == 0 && json_is_array(vs) &&
              json_array_size(vs) <= KP_STATE_VERSIONS;
    memset(s, 0, sizeof(*s));
    if (ok) {
        json_t *sj = json_object_get(j, "serial");
        json_int_t serial = json_integer_value(sj);
        ok = json_is_integer(sj) && serial >= 1 && serial <= ((json_int_t)1 << 53);
        s->serial = (uint64_t)serial;
        s->updated = (int64_t)json_integer_value(json_object_get(j, "updated"));
        for (size_t i = 0; ok && i < json_array_size(vs); i++) {
            json_t *v = json_array_get(vs, i);
            kp__vstate *x = &s->v[s->n++];
            json_int_t ver = json_integer_value(json_object_get(v, "version"));
            x->version = (uint32_t)ver;
            x->state = s_state_of(json_string_value(json_object_get(v, "state")));
            x->active_from = (int64_t)json_integer_value(json_object_get(v, "active_from"));
            x->active_until = (int64_t)json_integer_value(json_object_get(v, "active_until"));
            x->verified = (int64_t)json_integer_value(json_object_get(v, "verified"));
            ok = ver >= 1 && ver <= UINT32_MAX && x->state != 0;
            json_t *cj = json_object_get(v, "certificate");
            const char *cert = json_string_value(cj);
            if (ok && cj != NULL)
                ok = cert != NULL && strlen(cert) == KP_THUMBPRINT_HEX - 1 &&
                     strspn(cert, "0123456789ABCDEF") == KP_THUMBPRINT_HEX - 1;
            if (ok && cert != NULL)
                memcpy(x->cert, cert, KP_THUMBPRINT_HEX);
        }
    }
    json_decref(j);
    return ok;
}

char *kp__state_encode(const char *chain, const kp__chain_state *s)
{
    json_t *vs = json_array();
    for (size_t i = 0; i < s->n; i++) {
        json_t *v =
            json_pack("{s:I, s:s, s:I, s:I, s:I}", "version", (json_int_t)s->v[i].version, "state",
                      kp_version_state_name(s->v[i].state), "active_from",
                      (json_int_t)s->v[i].active_from, "active_until",
                      (json_int_t)s->v[i].active_until, "verified", (json_int_t)s->v[i].verified);
        if (v != NULL && s->v[i].cert[0] != '\0')
            json_object_set_new(v, "certificate", json_string(s->v[i].cert));
        json_array_append_new(vs, v);
    }
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:o}", "format", "keyplane-chain-state", "chain",
                          chain, "serial", (json_int_t)s->serial, "updated", (json_int_t)s->updated,
                          "versions", vs);
    char *out = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

/* The document of one instance: 1 read, 0 none kept, -1 there but unreadable (why says how). */
static int s_read3(kp_ctx *ctx, kp_instance *inst, const char *chain, kp__chain_state *s, char *why,
                   size_t whylen)
{
    if (!kp__inst_state_kept(inst))
        return 0;
    uint8_t *buf = malloc(KP_STATE_MAX);
    size_t len = KP_STATE_MAX;
    kp_status st = buf != NULL ? kp__inst_state_get(inst, chain, buf, &len) : KP_ERR_NOMEM;
    int r = -1;
    if (st == KP_ERR_NOT_FOUND)
        r = 0;
    else if (st == KP_OK && kp__state_parse(buf, len, chain, s))
        r = 1;
    if (r < 0)
        snprintf(why, whylen, "%s",
                 st != KP_OK ? kp_ctx_last_error(ctx) : "not a keyplane chain-state document");
    free(buf);
    return r;
}

/* Appends "; " and the formatted text to r->problem. */
static void s_problem(kp__state_report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_problem(kp__state_report *r, const char *fmt, ...)
{
    size_t len = strlen(r->problem);
    if (len > 0 && len + 2 < sizeof(r->problem)) {
        memcpy(r->problem + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problem + len, sizeof(r->problem) - len, fmt, ap);
    va_end(ap);
}

/* The authority among the documents read (rc 1): the origin's when it has one, else (the origin
 * silent: kp__origin_silent) that of the store the caller vouches for, else the newest of the
 * documents that more than half of the chain's state-keeping keystores agree on (same
 * active version); d->n when there is none. */
static size_t s_authority(const kp__discovery *d, const int *rc, const kp__chain_state *docs,
                          size_t keepers)
{
    if (rc[d->origin] == 1)
        return d->origin;
    if (d->vouch < d->n && rc[d->vouch] == 1 && kp__origin_silent(d))
        return d->vouch;
    size_t best = d->n;
    for (size_t i = 0; i < d->n; i++) {
        if (rc[i] != 1)
            continue;
        size_t votes = 0;
        for (size_t j = 0; j < d->n; j++)
            votes += rc[j] == 1 && kp__state_active(&docs[j]) == kp__state_active(&docs[i]);
        if (votes * 2 > keepers && (best == d->n || docs[i].serial > docs[best].serial))
            best = i;
    }
    return best;
}

kp_status kp__state_decide(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s, bool *found,
                           kp__state_report *r)
{
    memset(r, 0, sizeof(*r));
    *found = false;
    r->source = d->n;
    kp__chain_state *docs = calloc(d->n + 1, sizeof(*docs));
    int rc[KP_MAX_TARGETS] = {0};
    KP_ENSURE(docs != NULL, KP_ERR_NOMEM);
    size_t keepers = 0, nread = 0, nbad = 0;
    for (size_t i = 0; i < d->n; i++) {
        const kp__target *t = &d->t[i];
        rc[i] = -2; /* not asked: a secret replica, unreachable, or keeping no documents */
        if (t->secret || (t->reachable && !t->keeps_state))
            continue;
        keepers++; /* an unreachable keystore counts: it may keep one */
        if (!t->reachable)
            continue;
        char why[256] = "";
        rc[i] = s_read3(ctx, t->inst, d->chain->name, &docs[i], why, sizeof(why));
        nread += rc[i] == 1;
        if (rc[i] < 0) {
            nbad++;
            r->repair[i] = true;
            s_problem(r, "the state document in %s is unreadable (%s)", t->name, why);
        }
    }
    /* With no authority, an origin that answers, holds the chain and keeps no document says
     * "never rotated": a document elsewhere is a stray (planted, or left over), named but not
     * followed. */
    const kp__target *o = &d->t[d->origin];
    size_t a = s_authority(d, rc, docs, keepers);
    bool never_rotated =
        a == d->n && rc[d->origin] == 0 && o->reachable && o->keeps_state && o->nheld > 0;
    if (never_rotated) {
        for (size_t i = 0; i < d->n; i++)
            if (rc[i] == 1)
                s_problem(r,
                          "%s keeps a state document naming v%u active (serial %llu), but the "
                          "origin %s keeps none (the chain never rotated; 'keyplane rotate %s "
                          "--stage' writes the origin's document everywhere)",
                          d->t[i].name, kp__state_active(&docs[i]),
                          (unsigned long long)docs[i].serial, o->name, d->chain->name);
    } else if (a < d->n) {
        *s = docs[a];
        *found = true;
        r->source = a;
        uint32_t active = kp__state_active(s);
        for (size_t i = 0; i < d->n; i++) {
            if (rc[i] == 0 && d->t[i].reachable)
                r->repair[i] = true; /* a restored keystore: gets the document */
            if (rc[i] != 1 || i == a)
                continue;
            if (kp__state_active(&docs[i]) != active && docs[i].serial >= s->serial)
                s_problem(r,
                          "%s's state document names v%u active (serial %llu), %s's v%u "
                          "(serial %llu)",
                          d->t[i].name, kp__state_active(&docs[i]),
                          (unsigned long long)docs[i].serial, d->t[a].name, active,
                          (unsigned long long)s->serial);
            r->repair[i] = docs[i].serial != s->serial || kp__state_active(&docs[i]) != active;
        }
    } else if (nread > 0) {
        /* Documents, but no origin's and no majority: a store that only one party can write
         * must not decide which key wraps. */
        for (size_t i = 0; i < d->n; i++)
            if (rc[i] == 1)
                s_problem(r, "%s names v%u active (serial %llu)", d->t[i].name,
                          kp__state_active(&docs[i]), (unsigned long long)docs[i].serial);
        r->undecided = true;
    } else if (nbad > 0) {
        r->undecided = true; /* unreadable must not pass for "never rotated" */
    }
    free(docs);
    if (r->undecided)
        return kp__set_error(
            ctx, KP_ERR_INTEGRITY,
            "cannot tell which version of chain '%s' is active: %s; the origin "
            "%s %s, and a state document counts only when it is the origin's "
            "or more than half of the chain's %zu state-keeping keystores agree",
            d->chain->name, r->problem, d->t[d->origin].name,
            d->t[d->origin].reachable ? "keeps no readable document" : "is unreachable", keepers);
    kp__clear_error(ctx);
    return KP_OK;
}

kp_status kp__state_load(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s, bool *found)
{
    kp__state_report *r = malloc(sizeof(*r));
    KP_ENSURE(r != NULL, KP_ERR_NOMEM);
    kp_status st = kp__state_decide(ctx, d, s, found, r);
    free(r);
    return st;
}

kp_status kp__state_store(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s)
{
    /* A certificate chain's document names each version's certificate once one is known; a
     * recorded one is never changed here (verify reports stores that disagree with it). */
    uint32_t vs[KP_STATE_VERSIONS];
    const char *fs[KP_STATE_VERSIONS];
    size_t nv = d->chain->certificate != NULL ? kp__versions(d, vs, fs, KP_STATE_VERSIONS) : 0;
    for (size_t k = 0; k < nv; k++) {
        kp__vstate *x = kp__state_find(s, vs[k]);
        const kp_cert_info *ci =
            x != NULL && x->cert[0] == '\0' ? kp__version_cert(d, vs[k], fs[k], NULL, NULL) : NULL;
        if (ci != NULL)
            memcpy(x->cert, ci->thumbprint, KP_THUMBPRINT_HEX);
    }
    s->serial++;
    s->updated = (int64_t)time(NULL);
    char *doc = kp__state_encode(d->chain->name, s);
    if (doc == NULL)
        return KP_ERR_NOMEM;
    size_t len = strlen(doc), written = 0;
    kp_status st = KP_OK;
    /* The origin first: its document is the authority, so a reader between two writes sees the
     * others lag (harmless) rather than disagree with it. */
    for (size_t k = 0; k < d->n; k++) {
        size_t i = k == 0 ? d->origin : k <= d->origin ? k - 1 : k;
        if (!d->t[i].reachable || d->t[i].secret)
            continue;
        if (!kp__inst_state_kept(d->t[i].inst))
            continue;
        kp_status w =
            kp__inst_state_put(d->t[i].inst, d->chain->name, (const uint8_t *)doc, len, NULL, 0);
        if (w == KP_OK)
            written++;
        else if (st == KP_OK)
            st = w;
    }
    free(doc);
    if (st != KP_OK && written > 0) {
        /* Recorded where it could be; apply copies the newest document to the others. */
        kp__log(ctx, KP_LOG_WARN, "chain '%s': state recorded in %zu keystore(s) only: %s",
                d->chain->name, written, kp_ctx_last_error(ctx));
        st = KP_OK;
    }
    if (st == KP_OK && written == 0)
        st = kp__set_error(ctx, KP_ERR_UNSUPPORTED,
                           "no keystore of chain '%s' can keep its state document", d->chain->name);
    return st;
}

kp__vstate *kp__state_find(kp__chain_state *s, uint32_t version)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].version == version)
            return &s->v[i];
    return NULL;
}

kp__vstate *kp__state_add(kp__chain_state *s, uint32_t version)
{
    kp__vstate *x = kp__state_find(s, version);
    if (x != NULL || s->n == KP_STATE_VERSIONS)
        return x;
    x = &s->v[s->n++];
    memset(x, 0, sizeof(*x));
    x->version = version;
    return x;
}

uint32_t kp__state_active(const kp__chain_state *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].state == KP_VSTATE_ACTIVE)
            return s->v[i].version;
    return 0;
}

kp_status kp__state_copy(kp_ctx *ctx, const char *chain, kp_instance *src, kp_instance *dst,
                         bool *noop)
{
    if (!kp__inst_state_kept(src) || !kp__inst_state_kept(dst))
        return kp__set_error(ctx, KP_ERR_UNSUPPORTED, "state documents not kept there");
    uint8_t *buf = malloc(KP_STATE_MAX);
    size_t len = KP_STATE_MAX;
    kp__chain_state *s = malloc(sizeof(*s)), *have = malloc(sizeof(*have));
    kp_status st = buf != NULL && s != NULL && have != NULL ? KP_OK : KP_ERR_NOMEM;
    char why[256] = "";
    if (st == KP_OK)
        st = kp__inst_state_get(src, chain, buf, &len);
    if (st == KP_OK && !kp__state_parse(buf, len, chain, s))
        st = kp__set_error(ctx, KP_ERR_INTEGRITY, "%s keeps an unreadable state document",
                           kp_instance_name(src));
    /* The plan chose src as the authority; dst already agreeing with it is all there is to do. */
    *noop = st == KP_OK && s_read3(ctx, dst, chain, have, why, sizeof(why)) == 1 &&
            have->serial == s->serial && kp__state_active(have) == kp__state_active(s);
    if (st == KP_OK && !*noop)
        st = kp__inst_state_put(dst, chain, buf, len, NULL, 0);
    free(buf);
    free(s);
    free(have);
    return st;
}
