/*
 * Client-side pacing per vault. Key Vault limits each vault per 10-second window, by class:
 * creating a key (an import counts as one) 10 per 10 s for HSM-protected keys and 20 for software
 * keys, every other transaction some thousands; beyond that it answers 429 with Retry-After
 * (learn.microsoft.com, "Azure Key Vault service limits" and "throttling guidance"). The
 * transport waits out a 429 and repeats, but a run that keeps sending at the limit is refused
 * about once a window, and several runners (or Azure SQL's own traffic) sharing the vault may spend
 * a request's attempts. So every process keeps, per vault, the times of its last creates and a
 * budget: the documented limit to begin with (none for a Managed HSM, whose limits differ, or
 * with the `pace` param false, for a vault whose limits were raised), lowered
 * on a 429 to what the vault took in the window before it, and raised by one again for each
 * window that passes without one. A create that would exceed the budget waits until the send
 * that holds its place leaves the window, unless that would take it past its operation's deadline
 * (then the vault decides). The other class is not paced: its limits (thousands a window) are
 * beyond what one keyplane sends, so a 429 there is other clients' load, which the transport
 * waits out. Instances of one vault share the state; it lives in a fixed table (no heap, nothing
 * to free at unload).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "akv_internal.h"

#define S_RING 64       /* sends remembered per vault and class: the largest budget enforced */
#define S_VAULTS 32     /* vaults paced per process; more go unpaced */
#define S_MARGIN_MS 100 /* the vault counts a send a little after we do */

typedef struct s_class {
    int64_t sent[S_RING]; /* kpk_http_clock_ms() of the last sends, a ring */
    size_t next, n;
    unsigned budget;  /* sends per window; 0: not paced */
    unsigned ceiling; /* the documented limit: where the budget starts and returns to */
    int64_t moved;    /* when the budget last changed */
} s_class;

typedef struct s_vault {
    char url[KP_AKV_URL_MAX];
    s_class c[2];
} s_vault;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static s_vault s_table[S_VAULTS];
static size_t s_nvaults;
static bool s_full_said;

/* The vault of a, made on first use; NULL when the table is full. Under s_lock. */
static s_vault *s_find(const kp_akv_inst *a)
{
    for (size_t i = 0; i < s_nvaults; i++)
        if (strcmp(s_table[i].url, a->place.vault_url) == 0)
            return &s_table[i];
    if (s_nvaults == S_VAULTS) {
        if (!s_full_said)
            kp_logf(a->up, a->h, KP_LOG_INFO,
                    "more than %d vaults in one run: the creates of the others are not paced "
                    "(the vault's 429s still are waited out)",
                    S_VAULTS);
        s_full_said = true;
        return NULL;
    }
    s_vault *v = &s_table[s_nvaults++];
    memset(v, 0, sizeof(*v));
    snprintf(v->url, sizeof(v->url), "%s", a->place.vault_url);
    bool managed_hsm = strstr(a->place.vault_host, ".managedhsm.") != NULL;
    s_class *c = &v->c[KP_AKV_CLASS_CREATE];
    c->budget = c->ceiling = managed_hsm || !a->pace ? 0 : a->hsm ? 10 : 20;
    return v;
}

/* Sends of c within the window ending at now. */
static size_t s_in_window(const s_class *c, int64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->sent[i] > now - KP_AKV_PACE_WINDOW_MS;
    return n;
}

static int s_newer_first(const void *x, const void *y)
{
    int64_t p = *(const int64_t *)x, q = *(const int64_t *)y;
    return p > q ? -1 : p < q;
}

/* The send holding the place a new one needs: of the sends in the window, newest first, the
 * budget-th (sends in one millisecond count apart). */
static int64_t s_kth_newest(const s_class *c, unsigned budget, int64_t now)
{
    int64_t times[S_RING] = {0};
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->sent[i] > now - KP_AKV_PACE_WINDOW_MS)
            times[n++] = c->sent[i];
    qsort(times, n, sizeof(times[0]), s_newer_first);
    return budget >= 1 && budget <= n ? times[budget - 1] : 0;
}

void kp_akv_pace_wait(kp_akv_inst *a, kp_akv_class cls, kp_akv_pace *ticket)
{
    memset(ticket, 0, sizeof(*ticket));
    ticket->cls = cls;
    if (cls != KP_AKV_CLASS_CREATE)
        return;
    for (;;) {
        int64_t now = kpk_http_clock_ms(), wait = 0;
        pthread_mutex_lock(&s_lock);
        s_vault *v = s_find(a);
        if (v == NULL) {
            pthread_mutex_unlock(&s_lock);
            return;
        }
        s_class *c = &v->c[cls];
        if (c->budget != 0 && c->budget < c->ceiling && now - c->moved >= KP_AKV_PACE_WINDOW_MS) {
            c->budget++; /* a window without a 429 */
            c->moved = now;
        }
        size_t n = s_in_window(c, now);
        if (c->budget != 0 && n >= c->budget)
            wait = s_kth_newest(c, c->budget, now) + KP_AKV_PACE_WINDOW_MS + S_MARGIN_MS - now;
        if (wait <= 0 || (a->deadline != 0 && now + wait > a->deadline)) {
            c->sent[c->next] = now;
            ticket->slot = c->next;
            ticket->paced = true;
            ticket->prior = n;
            c->next = (c->next + 1) % S_RING;
            if (c->n < S_RING)
                c->n++;
            pthread_mutex_unlock(&s_lock);
            return;
        }
        pthread_mutex_unlock(&s_lock);
        a->paced_ms += wait;
        struct timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void kp_akv_pace_done(kp_akv_inst *a, const kp_akv_pace *ticket, unsigned throttled)
{
    if (!ticket->paced || throttled == 0 || ticket->cls != KP_AKV_CLASS_CREATE)
        return;
    pthread_mutex_lock(&s_lock);
    s_vault *v = s_find(a);
    s_class *c = v != NULL ? &v->c[ticket->cls] : NULL;
    bool paced =
        c != NULL && c->ceiling != 0; /* else (pace: false, Managed HSM) the vault decides */
    if (paced) {
        /* the vault took the sends before this one in the window, and no more */
        unsigned learnt = ticket->prior > 0 ? (unsigned)ticket->prior : 1;
        if (learnt < c->budget)
            c->budget = learnt;
        c->moved = kpk_http_clock_ms();
        c->sent[ticket->slot] = c->moved; /* admitted after the waits */
    }
    pthread_mutex_unlock(&s_lock);
    if (paced)
        a->up->log(a->h, KP_LOG_INFO, "the vault throttled a create (429): pacing to its budget");
}
