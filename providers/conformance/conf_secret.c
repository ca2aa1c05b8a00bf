/*
 * The kit's secret allocator: a registry of every kp_secret, so the kit can tell a plugin that
 * keeps a secret it allocated (a leak), frees one twice or frees one it only borrowed, writes
 * past the end of one, or writes into one after freeing it. Freed secrets are wiped and kept in
 * a quarantine until the end of the test, when they must still be all zero. Each secret remembers
 * the ABI call it was allocated during, so a leak report names it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define S_LIVE 0x6b70736563726574ull
#define S_FREED 0x6b70667265656421ull
#define S_GUARD_BYTE 0xd7
#define S_MAX (1u << 30)

struct kp_secret {
    uint64_t magic;
    struct kp_secret *next;
    size_t len, cap;
    bool kit;            /* owned by the kit: made by it, or adopted from the plugin */
    unsigned seq;        /* the test that allocated it (0: outside any test) */
    const char *call;    /* the ABI call it was allocated during (static), NULL: none */
    unsigned char *data; /* cap bytes, then CONF_GUARD guard bytes */
};

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static kp_secret *s_live, *s_quarantine;
static unsigned s_seq;
static conf_secret_stats s_stats;

void conf_secret_set_seq(unsigned seq)
{
    pthread_mutex_lock(&s_lock);
    s_seq = seq;
    pthread_mutex_unlock(&s_lock);
}

static kp_secret *s_alloc(size_t len, bool kit)
{
    if (len > S_MAX)
        return NULL;
    kp_secret *s = calloc(1, sizeof(*s));
    unsigned char *d = s != NULL ? calloc(1, len + CONF_GUARD) : NULL;
    if (d == NULL) { /* both or neither */
        free(s);
        s = NULL;
    }
    if (s == NULL)
        return NULL;
    memset(d + len, S_GUARD_BYTE, CONF_GUARD);
    s->magic = S_LIVE;
    s->len = s->cap = len;
    s->kit = kit;
    s->data = d;
    s->call = conf_call_now();
    pthread_mutex_lock(&s_lock);
    s->seq = s_seq;
    s->next = s_live;
    s_live = s;
    if (kit)
        s_stats.kit_new++;
    else
        s_stats.plugin_new++;
    pthread_mutex_unlock(&s_lock);
    return s;
}

static bool s_guard_ok(const kp_secret *s)
{
    for (size_t i = 0; i < CONF_GUARD; i++)
        if (s->data[s->cap + i] != S_GUARD_BYTE)
            return false;
    return true;
}

/* Where p is: 1 live, 2 quarantined (freed), 0 unknown. Call with s_lock held. */
static int s_find(const kp_secret *p, kp_secret ***link)
{
    for (kp_secret **l = &s_live; *l != NULL; l = &(*l)->next)
        if (*l == p) {
            if (link != NULL)
                *link = l;
            return 1;
        }
    for (kp_secret *q = s_quarantine; q != NULL; q = q->next)
        if (q == p)
            return 2;
    return 0;
}

/* Wipes s and moves it from the live list to the quarantine. s_lock held. */
static bool s_release(kp_secret **link)
{
    kp_secret *s = *link;
    bool guard = s_guard_ok(s);
    *link = s->next;
    explicit_bzero(s->data, s->cap + CONF_GUARD);
    memset(s->data + s->cap, S_GUARD_BYTE, CONF_GUARD);
    s->magic = S_FREED;
    s->next = s_quarantine;
    s_quarantine = s;
    return guard;
}

static const char *s_where(int w)
{
    return w == 2 ? "a secret already freed" : "a pointer that is not a secret";
}

kp_secret *conf_up_secret_new(size_t len)
{
    return s_alloc(len, false);
}

void conf_up_secret_free(kp_secret *s)
{
    if (s == NULL)
        return;
    kp_secret **link = NULL;
    pthread_mutex_lock(&s_lock);
    int w = s_find(s, &link);
    bool kit = w == 1 && s->kit, guard = true;
    if (w == 1 && !kit) {
        guard = s_release(link);
        s_stats.plugin_freed++;
    }
    pthread_mutex_unlock(&s_lock);
    if (w != 1)
        conf_fault("SECRET_FREE of %s (a double free?)", s_where(w));
    else if (kit)
        conf_fault("SECRET_FREE of a secret the plugin does not own (one lent to it, or one it "
                   "returned)");
    else if (!guard)
        conf_fault("the plugin wrote past the end of a secret");
}

/* The checks of data/cdata/len/shrink: the secret must be live. */
static bool s_live_ok(const kp_secret *s, const char *upcall)
{
    pthread_mutex_lock(&s_lock);
    int w = s_find(s, NULL);
    pthread_mutex_unlock(&s_lock);
    if (w != 1)
        conf_fault("%s of %s", upcall, s_where(w));
    return w == 1;
}

unsigned char *conf_up_secret_data(kp_secret *s)
{
    return s_live_ok(s, "SECRET_DATA") ? s->data : NULL;
}

const unsigned char *conf_up_secret_cdata(const kp_secret *s)
{
    return s_live_ok(s, "SECRET_CDATA") ? s->data : NULL;
}

size_t conf_up_secret_len(const kp_secret *s)
{
    return s_live_ok(s, "SECRET_LEN") ? s->len : 0;
}

kp_status conf_up_secret_shrink(kp_secret *s, size_t len)
{
    if (!s_live_ok(s, "SECRET_SHRINK"))
        return KP_ERR_INVALID_ARG;
    pthread_mutex_lock(&s_lock);
    kp_status st = KP_ERR_INVALID_ARG;
    if (len <= s->len) {
        explicit_bzero(s->data + len, s->len - len);
        s->len = len;
        st = KP_OK;
    }
    pthread_mutex_unlock(&s_lock);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* The kit's side                                                                            */

kp_secret *conf_secret_new(const void *p, size_t len)
{
    kp_secret *s = s_alloc(len, true);
    if (s != NULL && len > 0)
        memcpy(s->data, p, len);
    return s;
}

void conf_secret_free(kp_secret *s)
{
    if (s == NULL)
        return;
    kp_secret **link = NULL;
    pthread_mutex_lock(&s_lock);
    int w = s_find(s, &link);
    bool guard = true;
    if (w == 1) {
        guard = s_release(link);
        s_stats.kit_freed++;
    }
    pthread_mutex_unlock(&s_lock);
    if (w != 1)
        conf_fault("kit bug: it freed %s", s_where(w));
    else if (!guard)
        conf_fault("a secret was written past its end");
}

const unsigned char *conf_secret_bytes(const kp_secret *s)
{
    return s->data;
}

size_t conf_secret_size(const kp_secret *s)
{
    return s->len;
}

bool conf_secret_adopt(conf_run *r, kp_secret *s, const char *what)
{
    if (s == NULL) {
        conf_fail(r, "%s returned KP_OK without a secret", what);
        return false;
    }
    pthread_mutex_lock(&s_lock);
    int w = s_find(s, NULL);
    bool kit = w == 1 && s->kit;
    if (w == 1 && !kit) {
        s->kit = true;
        s_stats.adopted++;
    }
    pthread_mutex_unlock(&s_lock);
    if (w != 1)
        conf_fail(r, "%s returned %s", what, s_where(w));
    else if (kit)
        conf_fail(r, "%s returned a secret it does not own (one the kit lent it?)", what);
    return w == 1 && !kit;
}

void conf_secret_stats_get(conf_secret_stats *st)
{
    pthread_mutex_lock(&s_lock);
    *st = s_stats;
    st->live_plugin = 0;
    for (kp_secret *s = s_live; s != NULL; s = s->next)
        if (!s->kit)
            st->live_plugin++;
    pthread_mutex_unlock(&s_lock);
}

/* The calls leaked secrets were allocated during, with counts: "during KS_UNWRAP" or "during
 * KS_UNWRAP (2), during SS_GET". call[i] NULL: outside any ABI call. */
#define S_CALLS 8

typedef struct s_leaks {
    const char *call[S_CALLS];
    size_t n[S_CALLS], ncalls, other;
} s_leaks;

static void s_leak_note(s_leaks *L, const char *call)
{
    for (size_t i = 0; i < L->ncalls; i++)
        if (L->call[i] == call ||
            (call != NULL && L->call[i] != NULL && !strcmp(L->call[i], call))) {
            L->n[i]++;
            return;
        }
    if (L->ncalls == S_CALLS) {
        L->other++;
        return;
    }
    L->call[L->ncalls] = call;
    L->n[L->ncalls++] = 1;
}

static void s_leak_where(const s_leaks *L, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < L->ncalls && at < len; i++) {
        int w = snprintf(buf + at, len - at, "%s%s%s", i > 0 ? ", " : "",
                         L->call[i] != NULL ? "during " : "outside any ABI call",
                         L->call[i] != NULL ? L->call[i] : "");
        if (w > 0 && L->n[i] > 1 && (size_t)w < len - at)
            w += snprintf(buf + at + (size_t)w, len - at - (size_t)w, " (%zu)", L->n[i]);
        at += w > 0 ? (size_t)w : 0;
    }
    if (L->other > 0 && at < len)
        snprintf(buf + at, len - at, ", %zu elsewhere", L->other);
}

void conf_secret_sweep(unsigned seq, bool leaks)
{
    size_t leaked = 0, bytes = 0, overrun = 0, touched = 0;
    s_leaks where;
    memset(&where, 0, sizeof(where));
    pthread_mutex_lock(&s_lock);
    for (kp_secret *s = s_live; s != NULL; s = s->next) {
        if (!s_guard_ok(s)) {
            overrun++;
            memset(s->data + s->cap, S_GUARD_BYTE, CONF_GUARD); /* report it once */
        }
        if (leaks && !s->kit && (seq == 0 || s->seq == seq)) {
            leaked++;
            bytes += s->len;
            s_leak_note(&where, s->call);
            s->seq = 0; /* reported: do not blame the next test for it */
        }
    }
    while (s_quarantine != NULL) {
        kp_secret *q = s_quarantine;
        s_quarantine = q->next;
        bool clean = s_guard_ok(q);
        for (size_t i = 0; i < q->cap && clean; i++)
            clean = q->data[i] == 0;
        if (!clean)
            touched++;
        free(q->data);
        free(q);
    }
    pthread_mutex_unlock(&s_lock);
    if (leaked > 0) {
        char calls[256];
        s_leak_where(&where, calls, sizeof(calls));
        conf_fault("the plugin leaked %zu secret(s) (%zu bytes), allocated %s and never freed",
                   leaked, bytes, calls);
    }
    if (overrun > 0)
        conf_fault("%zu secret(s) written past their end", overrun);
    if (touched > 0)
        conf_fault("%zu secret(s) written to after they were freed", touched);
}
