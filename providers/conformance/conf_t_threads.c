/*
 * threads: the ABI lets the core call any function from several threads at once on one instance.
 * N threads (--threads, default 8) wrap and unwrap, make the next version of one shared key and a
 * key of their own, and put versions of one shared secret, all at once. Results must be right,
 * every version handed out once, and the listings afterwards exactly what the threads were told.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_crypto.h"
#include "conf_list.h"
#include "conf_tests.h"

#define S_ROUNDS 4
#define S_PUTS 2

typedef struct shared {
    conf_run *r;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool go;
    pthread_barrier_t phase; /* every thread makes its keys at the same moment */
    bool ks, ss;
    uint32_t alg;
    char key[CONF_NAME_LEN], vkey[CONF_NAME_LEN], secret[CONF_NAME_LEN];
} shared;

typedef struct worker {
    shared *sh;
    unsigned id;
    pthread_t t;
    uint32_t version; /* of sh->vkey made by this thread, 0 when it failed */
    char fpr[KPK_FPR_HEX];
    uint32_t sv[S_PUTS]; /* versions of sh->secret put by this thread */
    uint8_t val[S_PUTS][16];
} worker;

static void s_wraps(worker *w)
{
    conf_run *r = w->sh->r;
    for (int i = 0; i < S_ROUNDS; i++) {
        uint8_t d[32], out[1024];
        conf_random(d, sizeof(d));
        kp_secret *dek = conf_secret_new(d, sizeof(d)), *back = NULL;
        size_t len = sizeof(out);
        conf_err_clear();
        kp_status st = CONF_FN(r->kit, ks_wrap, KP_FN_KS_WRAP)(r->inst, w->sh->key, 0, w->sh->alg,
                                                               dek, out, &len);
        if (st == KP_OK && len <= sizeof(out)) {
            conf_err_clear();
            st = CONF_FN(r->kit, ks_unwrap, KP_FN_KS_UNWRAP)(r->inst, w->sh->key, 0, w->sh->alg,
                                                             out, len, &back);
        }
        if (st != KP_OK)
            conf_fail(r, "thread %u: a wrap/unwrap round trip failed: %s: %s", w->id,
                      conf_status_name(st), conf_reason());
        else if (conf_secret_adopt(r, back, "KS_UNWRAP") &&
                 (conf_secret_size(back) != sizeof(d) ||
                  memcmp(conf_secret_bytes(back), d, sizeof(d)) != 0))
            conf_fail(r, "thread %u: KS_UNWRAP returned other bytes than were wrapped", w->id);
        conf_secret_free(back);
        conf_secret_free(dek);
    }
}

static void s_makes(worker *w)
{
    conf_run *r = w->sh->r;
    kp_key_info info;
    kp_status st = conf_make_version(r, w->sh->vkey, 0, &info);
    if (st != KP_OK) {
        conf_fail(r, "thread %u: making the next version of a shared key: %s: %s", w->id,
                  conf_status_name(st), conf_reason());
    } else {
        w->version = info.version;
        memcpy(w->fpr, info.fingerprint, sizeof(w->fpr));
        w->fpr[KPK_FPR_HEX - 1] = '\0';
    }
    char name[CONF_NAME_LEN], tag[16];
    snprintf(tag, sizeof(tag), "th%u", w->id);
    conf_name(r->kit, tag, name);
    st = conf_make_version(r, name, 0, &info);
    if (st != KP_OK)
        conf_fail(r, "thread %u: making a key of its own: %s: %s", w->id, conf_status_name(st),
                  conf_reason());
    else if (info.version != 1)
        conf_fail(r, "thread %u: the first version of a new key is %u", w->id, info.version);
}

static void s_puts(worker *w)
{
    conf_run *r = w->sh->r;
    for (int i = 0; i < S_PUTS; i++) {
        conf_random(w->val[i], sizeof(w->val[i]));
        kp_secret *v = conf_secret_new(w->val[i], sizeof(w->val[i]));
        conf_err_clear();
        kp_status st =
            CONF_FN(r->kit, ss_put, KP_FN_SS_PUT)(r->inst, w->sh->secret, v, NULL, 0, &w->sv[i]);
        conf_secret_free(v);
        if (st != KP_OK) {
            w->sv[i] = 0;
            conf_fail(r, "thread %u: SS_PUT: %s: %s", w->id, conf_status_name(st), conf_reason());
        }
    }
}

static void *s_work(void *arg)
{
    worker *w = arg;
    pthread_mutex_lock(&w->sh->lock);
    while (!w->sh->go)
        pthread_cond_wait(&w->sh->cond, &w->sh->lock);
    pthread_mutex_unlock(&w->sh->lock);
    if (w->sh->ks) {
        s_wraps(w);
        pthread_barrier_wait(&w->sh->phase);
        s_makes(w);
    }
    if (w->sh->ss)
        s_puts(w);
    return NULL;
}

static int s_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Versions handed out: each once. */
static void s_unique(conf_run *r, uint32_t *v, size_t n, const char *what)
{
    qsort(v, n, sizeof(*v), s_cmp);
    for (size_t i = 1; i < n; i++)
        if (v[i] != 0 && v[i] == v[i - 1]) {
            conf_fail(r, "two threads were both given version %u of the shared %s", v[i], what);
            return;
        }
}

static void s_check_keys(shared *sh, worker *w, unsigned n)
{
    conf_run *r = sh->r;
    uint32_t *v = calloc(n > 0 ? n : 1, sizeof(*v));
    if (v == NULL)
        return;
    size_t made = 0;
    for (unsigned i = 0; i < n; i++)
        if (w[i].version != 0)
            v[made++] = w[i].version;
    s_unique(r, v, made, "key");
    conf_list l;
    kp_status st = conf_list_keys(r, sh->vkey, &l);
    if (st != KP_OK)
        conf_fail(r, "KS_LIST of the shared key after the threads: %s", conf_status_name(st));
    else if (l.n != made + 1)
        conf_fail(r,
                  "KS_LIST shows %zu versions of the shared key; the threads were told of %zu "
                  "new ones besides version 1",
                  l.n, made);
    conf_list_check_ascending(r, &l, "KS_LIST after the threads");
    for (unsigned i = 0; i < n && st == KP_OK; i++) {
        bool found = w[i].version == 0;
        for (size_t j = 0; j < l.n && !found; j++)
            found = l.e[j].version == w[i].version && strcmp(l.e[j].fpr, w[i].fpr) == 0;
        if (!found) {
            conf_fail(r,
                      "thread %u was given version %u of the shared key, which KS_LIST does "
                      "not show with its fingerprint",
                      w[i].id, w[i].version);
            break;
        }
    }
    conf_list_free(&l);
    free(v);
}

static void s_check_secrets(shared *sh, worker *w, unsigned n)
{
    conf_run *r = sh->r;
    uint32_t *v = calloc(n > 0 ? (size_t)n * S_PUTS : 1, sizeof(*v));
    if (v == NULL)
        return;
    size_t made = 0;
    for (unsigned i = 0; i < n; i++)
        for (int j = 0; j < S_PUTS; j++)
            if (w[i].sv[j] != 0)
                v[made++] = w[i].sv[j];
    s_unique(r, v, made, "secret");
    free(v);
    conf_list l;
    kp_status st = conf_list_secrets(r, sh->secret, &l);
    if (st != KP_OK || l.n != made)
        conf_fail(r, "SS_LIST of the shared secret after the threads: %s, %zu versions, want %zu",
                  conf_status_name(st), l.n, made);
    conf_list_check_ascending(r, &l, "SS_LIST after the threads");
    conf_list_free(&l);
    for (unsigned i = 0; i < n; i++)
        for (int j = 0; j < S_PUTS; j++) {
            kp_secret *val = NULL;
            if (w[i].sv[j] == 0)
                continue;
            conf_err_clear();
            st = CONF_FN(r->kit, ss_get, KP_FN_SS_GET)(r->inst, sh->secret, w[i].sv[j], &val, NULL,
                                                       NULL);
            if (st != KP_OK) {
                conf_fail(r, "SS_GET of version %u after the threads: %s", w[i].sv[j],
                          conf_status_name(st));
                return;
            }
            if (!conf_secret_adopt(r, val, "SS_GET"))
                return;
            bool same = conf_secret_size(val) == sizeof(w[i].val[j]) &&
                        memcmp(conf_secret_bytes(val), w[i].val[j], sizeof(w[i].val[j])) == 0;
            conf_secret_free(val);
            if (!same) {
                conf_fail(r, "version %u of the shared secret holds another thread's value",
                          w[i].sv[j]);
                return;
            }
        }
}

void conf_t_threads(conf_run *r)
{
    conf_kit *k = r->kit;
    shared sh = {.r = r};
    sh.ks = (k->iinfo.capabilities & KP_CAP_KEYSTORE) &&
            (conf_fn(k, KP_FN_KS_CREATE) != NULL || conf_fn(k, KP_FN_KS_IMPORT) != NULL);
    sh.ss = (k->iinfo.capabilities & KP_CAP_SECRETSTORE) != 0;
    for (uint32_t a = 1; a <= 3 && sh.alg == 0; a++)
        sh.alg = (k->iinfo.wrap_algs & KP_ALG_BIT(a)) ? a : 0;
    if (sh.ks) {
        conf_key key, vkey;
        if (sh.alg == 0 || !conf_key_make(r, "th", 0, false, &key) ||
            !conf_key_make(r, "thv", 0, false, &vkey))
            return;
        memcpy(sh.key, key.name, sizeof(sh.key));
        memcpy(sh.vkey, vkey.name, sizeof(sh.vkey));
        conf_key_free(&key);
        conf_key_free(&vkey);
    }
    conf_name(k, "thss", sh.secret);
    unsigned n = k->threads;
    worker *w = calloc(n, sizeof(*w));
    if (w == NULL)
        return;
    /* the threads wait until all are there, so their calls overlap as much as they can */
    pthread_mutex_init(&sh.lock, NULL);
    pthread_cond_init(&sh.cond, NULL);
    unsigned started = 0;
    for (; started < n; started++) {
        w[started].sh = &sh;
        w[started].id = started;
        if (pthread_create(&w[started].t, NULL, s_work, &w[started]) != 0) {
            conf_fail(r, "the kit could start only %u threads", started);
            break;
        }
    }
    pthread_barrier_init(&sh.phase, NULL, started > 0 ? started : 1);
    pthread_mutex_lock(&sh.lock);
    sh.go = true;
    pthread_cond_broadcast(&sh.cond);
    pthread_mutex_unlock(&sh.lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(w[i].t, NULL);
    pthread_barrier_destroy(&sh.phase);
    pthread_cond_destroy(&sh.cond);
    pthread_mutex_destroy(&sh.lock);
    if (sh.ks)
        s_check_keys(&sh, w, started);
    if (sh.ss)
        s_check_secrets(&sh, w, started);
    snprintf(r->note, sizeof(r->note), "%u threads", started);
    free(w);
}
