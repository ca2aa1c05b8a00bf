/*
 * The DEK cache (kp_ctx_set_dek_cache): a hash table of envelopes to their DEKs, with the least
 * recently used entry first out, an age and a use bound per entry.
 *
 * The key is the envelope itself, canonically: the chain name, then per wrap its version,
 * algorithm, fingerprint and wrapped bytes. Two envelopes with the same key open to the same DEK
 * (each wrap names the key by fingerprint), so a hit can never hand out another envelope's DEK;
 * the hash only picks the bucket, and the whole key is compared. The hash is keyed with a random
 * seed so that chosen envelopes cannot pile into one bucket. DEKs live in kp_secret (locked,
 * dump-excluded, wiped on free); the keys are envelopes, which are not secret.
 *
 * The context's pointer to the cache is set once (under the context's lock) and then only
 * read; turning the cache off empties it and sets its bounds to zero.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "base/context.h"
#include "base/error.h"
#include "base/util.h"
#include "instance/dek_cache.h"

typedef struct s_entry {
    struct s_entry *hnext;         /* bucket chain */
    struct s_entry *older, *newer; /* recency list */
    uint64_t hash;
    uint8_t *key;
    size_t keylen;
    char chain[KP_NAME_MAX];
    uint32_t version; /* of the wrap that opened it */
    kp__dek_hit hit;
    kp_secret *dek;
    int64_t born_ms;
    uint64_t uses;
} s_entry;

struct kp__dek_cache {
    pthread_mutex_t lock;
    kp_dek_cache_limits lim; /* max_entries 0: off */
    s_entry **buckets;
    size_t nbuckets; /* a power of two */
    s_entry *oldest, *newest;
    size_t n;
    uint64_t seed;
    kp_dek_cache_stats stats;
};

static int64_t s_real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t (*s_now)(void) = s_real_now;

void kp__dek_cache_set_clock(int64_t (*now_ms)(void))
{
    s_now = now_ms != NULL ? now_ms : s_real_now;
}

/* ---- the key ---- */

static size_t s_put(uint8_t *buf, size_t cap, size_t at, const void *p, size_t n)
{
    if (n > 0 && at <= cap && n <= cap - at)
        memcpy(buf + at, p, n);
    return at + n;
}

/* Writes env's canonical key into buf (when it fits in cap); returns its length. */
static size_t s_key(const kp_envelope *env, uint8_t *buf, size_t cap)
{
    const char *chain = kp_envelope_chain(env);
    size_t at = s_put(buf, cap, 0, chain, strlen(chain) + 1);
    for (size_t i = 0; i < kp_envelope_count(env); i++) {
        const kp_envelope_wrap *w = kp_envelope_get0(env, i);
        uint32_t head[3] = {w->version, w->alg, (uint32_t)w->wrapped_len};
        at = s_put(buf, cap, at, head, sizeof(head));
        at = s_put(buf, cap, at, w->fingerprint, strlen(w->fingerprint) + 1);
        at = s_put(buf, cap, at, w->wrapped, w->wrapped_len);
    }
    return at;
}

/* A keyed 64-bit mix of the key's bytes (picks a bucket; equality is checked in full). */
static uint64_t s_hash(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t t = 0;
    memcpy(&t, p + i, n - i);
    h = (h ^ t) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

/* The key of env in buf (stack) or a new allocation (*heap, caller frees); NULL when out of
 * memory. */
static const uint8_t *s_key_of(const kp_envelope *env, uint8_t *buf, size_t cap, size_t *len,
                               uint8_t **heap)
{
    *heap = NULL;
    *len = s_key(env, buf, cap);
    if (*len <= cap)
        return buf;
    if ((*heap = malloc(*len)) == NULL)
        return NULL;
    s_key(env, *heap, *len);
    return *heap;
}

/* ---- the table (cache lock held) ---- */

static void s_unlink(kp__dek_cache *c, s_entry *e)
{
    s_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    c->n--;
}

static void s_drop(kp__dek_cache *c, s_entry *e, bool evicted)
{
    s_unlink(c, e);
    kp_secret_free(e->dek); /* wiped */
    free(e->key);
    free(e);
    if (evicted)
        c->stats.evicted++;
}

static void s_make_newest(kp__dek_cache *c, s_entry *e)
{
    if (c->newest == e)
        return;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer->older = e->older; /* e is not the newest, so it has a newer one */
    e->older = c->newest;
    e->newer = NULL;
    c->newest->newer = e;
    c->newest = e;
}

static s_entry *s_find(kp__dek_cache *c, uint64_t h, const uint8_t *key, size_t len)
{
    for (s_entry *e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->hnext)
        if (e->hash == h && e->keylen == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static void s_clear(kp__dek_cache *c)
{
    while (c->oldest != NULL)
        s_drop(c, c->oldest, false);
}

static kp__dek_cache *s_cache(kp_ctx *ctx)
{
    return __atomic_load_n(&ctx->dek_cache, __ATOMIC_ACQUIRE);
}

/* ---- the library's side ---- */

kp_secret *kp__dek_cache_get(kp_ctx *ctx, const kp_envelope *env, kp__dek_hit *hit)
{
    kp__dek_cache *c = s_cache(ctx);
    if (c == NULL)
        return NULL;
    uint8_t buf[2048], *heap;
    size_t len;
    kp_secret *out = NULL;
    const uint8_t *key = s_key_of(env, buf, sizeof(buf), &len, &heap);
    uint64_t h = key != NULL ? s_hash(c->seed, key, len) : 0;
    pthread_mutex_lock(&c->lock);
    s_entry *e = key != NULL && c->lim.max_entries > 0 ? s_find(c, h, key, len) : NULL;
    if (e != NULL && s_now() - e->born_ms >= (int64_t)c->lim.max_age_s * 1000) {
        s_drop(c, e, true);
        e = NULL;
    }
    if (e != NULL &&
        (out = kp_secret_new_copy(kp_secret_cdata(e->dek), kp_secret_len(e->dek))) != NULL) {
        *hit = e->hit;
        c->stats.hits++;
        if (c->lim.max_uses > 0 && ++e->uses >= c->lim.max_uses)
            s_drop(c, e, true);
        else
            s_make_newest(c, e);
    } else if (c->lim.max_entries > 0) {
        c->stats.misses++;
    }
    pthread_mutex_unlock(&c->lock);
    free(heap);
    return out;
}

void kp__dek_cache_put(kp_ctx *ctx, const kp_envelope *env, const kp_secret *dek,
                       const kp__dek_hit *hit)
{
    kp__dek_cache *c = s_cache(ctx);
    if (c == NULL || hit->wrap >= kp_envelope_count(env))
        return;
    s_entry *e = calloc(1, sizeof(*e));
    size_t len = s_key(env, NULL, 0);
    if (e == NULL || (e->key = malloc(len)) == NULL ||
        (e->dek = kp_secret_new_copy(kp_secret_cdata(dek), kp_secret_len(dek))) == NULL) {
        if (e != NULL)
            free(e->key);
        free(e);
        return;
    }
    e->keylen = s_key(env, e->key, len);
    snprintf(e->chain, sizeof(e->chain), "%s", kp_envelope_chain(env));
    e->version = kp_envelope_get0(env, hit->wrap)->version;
    e->hit = *hit;
    pthread_mutex_lock(&c->lock);
    e->hash = s_hash(c->seed, e->key, e->keylen);
    e->born_ms = s_now();
    s_entry *old = c->lim.max_entries > 0 ? s_find(c, e->hash, e->key, e->keylen) : NULL;
    if (old != NULL)
        s_drop(c, old, false); /* unwrapped again (two threads at once): the new one stays */
    while (c->lim.max_entries > 0 && c->n >= c->lim.max_entries)
        s_drop(c, c->oldest, true);
    if (c->lim.max_entries > 0) {
        size_t b = e->hash & (c->nbuckets - 1);
        e->hnext = c->buckets[b];
        c->buckets[b] = e;
        e->older = c->newest;
        if (c->newest != NULL)
            c->newest->newer = e;
        else
            c->oldest = e;
        c->newest = e;
        c->n++;
        e = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (e != NULL) { /* turned off meanwhile */
        kp_secret_free(e->dek);
        free(e->key);
        free(e);
    }
}

void kp__dek_cache_forget(kp_ctx *ctx, const char *chain, uint32_t version)
{
    kp__dek_cache *c = ctx != NULL ? s_cache(ctx) : NULL;
    if (c == NULL || chain == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    for (s_entry *e = c->oldest, *next; e != NULL; e = next) {
        next = e->newer;
        if ((version == 0 || e->version == version) && strcmp(e->chain, chain) == 0)
            s_drop(c, e, true);
    }
    pthread_mutex_unlock(&c->lock);
}

void kp__dek_cache_free(kp__dek_cache *c)
{
    if (c == NULL)
        return;
    s_clear(c);
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- the public calls ---- */

kp_status kp_ctx_set_dek_cache(kp_ctx *ctx, const kp_dek_cache_limits *limits)
{
    KP_ENSURE(ctx != NULL, KP_ERR_INVALID_ARG);
    if (limits != NULL && (limits->max_entries < 1 || limits->max_entries > 1048576 ||
                           limits->max_age_s < 1 || limits->max_age_s > 86400))
        return kp__set_error(ctx, KP_ERR_INVALID_ARG,
                             "DEK cache: max_entries must be 1..1048576 and max_age_s 1..86400");
    pthread_mutex_lock(&ctx->lock);
    kp__dek_cache *c = ctx->dek_cache;
    if (c == NULL && limits != NULL) {
        if ((c = calloc(1, sizeof(*c))) != NULL &&
            RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1) {
            free(c);
            c = NULL;
        }
        if (c != NULL) {
            pthread_mutex_init(&c->lock, NULL);
            __atomic_store_n(&ctx->dek_cache, c, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    if (c == NULL)
        return limits == NULL ? KP_OK
                              : kp__set_error(ctx, KP_ERR_NOMEM, "DEK cache: out of memory");
    size_t nb = 1;
    while (limits != NULL && nb < limits->max_entries * 2)
        nb <<= 1;
    s_entry **buckets = limits != NULL ? calloc(nb, sizeof(*buckets)) : NULL;
    if (limits != NULL && buckets == NULL)
        return kp__set_error(ctx, KP_ERR_NOMEM, "DEK cache: out of memory");
    pthread_mutex_lock(&c->lock);
    s_clear(c);
    free(c->buckets);
    c->buckets = buckets;
    c->nbuckets = buckets != NULL ? nb : 0;
    memset(&c->lim, 0, sizeof(c->lim));
    if (limits != NULL)
        c->lim = *limits;
    memset(&c->stats, 0, sizeof(c->stats));
    pthread_mutex_unlock(&c->lock);
    return KP_OK;
}

void kp_ctx_dek_cache_stats(kp_ctx *ctx, kp_dek_cache_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    kp__dek_cache *c = ctx != NULL ? s_cache(ctx) : NULL;
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    out->entries = c->n;
    pthread_mutex_unlock(&c->lock);
}

void kp_ctx_dek_cache_forget(kp_ctx *ctx, const char *chain, uint32_t version)
{
    kp__dek_cache_forget(ctx, chain, version);
}
