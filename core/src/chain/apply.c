/*
 * Applying a plan: CREATEs first, then COPYs, each phase on a bounded pool of workers sharing one
 * open instance per provider (the plugins are thread-safe). Every action re-checks its target,
 * so a repeated or interrupted apply converges instead of duplicating anything. A JSON-lines
 * journal records each run, so the next run can say what an interrupted one had done.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/util.h"
#include "chain/plan.h"
#include "chain/secret_replica.h"
#include "chain/state.h"

#define KP_APPLY_MAX_INSTANCES 128

typedef struct s_run {
    kp_ctx *ctx;
    const kp_policy *policy;
    const kp_plan *plan;
    const kp_apply_opts *opts;
    pthread_mutex_t lock;
    uint32_t phase; /* the kind of action this phase runs */
    size_t next;    /* next action index to consider */
    size_t done, total, failed;
    kp_status first;
    char first_detail[640];
    struct {
        char name[KP_NAME_MAX];
        kp_instance *inst;
        kp_status status;
        char detail[256];
    } inst[KP_APPLY_MAX_INSTANCES];
    size_t ninst;
    FILE *journal;
    char run_id[32];
    /* Group commit of the journal: lines are written (in order, under lock) and numbered;
     * s_journal_sync makes them durable outside lock, one fsync covering every line written
     * before it, so workers do not queue behind each other's fsync. */
    uint64_t jwritten;     /* lines written (under lock) */
    uint64_t jsynced;      /* lines known durable (under jlock) */
    bool jwarned;          /* a failed fsync was reported (under jlock) */
    pthread_mutex_t jlock; /* one fsync at a time */
} s_run;

/* ---- journal ----------------------------------------------------------------------------- */

static void s_journal(s_run *r, json_t *event)
{
    if (r->journal == NULL || event == NULL) {
        json_decref(event);
        return;
    }
    json_object_set_new(event, "run", json_string(r->run_id));
    json_object_set_new(event, "time", json_integer((json_int_t)time(NULL)));
    char *line = json_dumps(event, JSON_COMPACT);
    json_decref(event);
    if (line == NULL)
        return;
    fprintf(r->journal, "%s\n", line);
    fflush(r->journal);
    __atomic_add_fetch(&r->jwritten, 1, __ATOMIC_RELEASE);
    free(line);
}

/* Makes every journal line written so far durable (the next run relies on them after a crash).
 * Called without r->lock: a worker waits only for an fsync, never holds others behind its own,
 * and one fsync serves every line written before it began. */
static void s_journal_sync(s_run *r)
{
    if (r->journal == NULL)
        return;
    uint64_t want = __atomic_load_n(&r->jwritten, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&r->jlock);
    if (r->jsynced < want) {
        uint64_t upto = __atomic_load_n(&r->jwritten, __ATOMIC_ACQUIRE);
        /* A failed fsync proves nothing durable: the next caller tries again. */
        if (fsync(fileno(r->journal)) == 0)
            r->jsynced = upto;
        else if (!r->jwarned) {
            r->jwarned = true;
            kp__log(r->ctx, KP_LOG_WARN, "journal: cannot make it durable (fsync: %s)",
                    strerror(errno));
        }
    }
    pthread_mutex_unlock(&r->jlock);
}

/* Reports a run that began and never ended (killed, crashed, power lost). */
static void s_journal_check(kp_ctx *ctx, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[2048], open_run[32] = "";
    long long began = 0, done = 0, total = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *j = json_loads(line, 0, NULL);
        const char *ev = json_string_value(json_object_get(j, "event"));
        const char *run = json_string_value(json_object_get(j, "run"));
        if (ev != NULL && run != NULL && strcmp(ev, "begin") == 0) {
            snprintf(open_run, sizeof(open_run), "%s", run);
            began = (long long)json_integer_value(json_object_get(j, "time"));
            total = (long long)json_integer_value(json_object_get(j, "actions"));
            done = 0;
        } else if (ev != NULL && run != NULL && strcmp(ev, "end") == 0 &&
                   strcmp(run, open_run) == 0) {
            open_run[0] = '\0';
        } else if (ev != NULL && strcmp(ev, "action") == 0) {
            done++;
        }
        json_decref(j);
    }
    fclose(f);
    if (open_run[0] != '\0')
        kp__log(ctx, KP_LOG_WARN,
                "resuming after an interrupted apply (run %s, started at %lld, %lld of %lld "
                "actions done): re-planning from what the providers hold",
                open_run, began, done, total);
}

/* Opens the journal at path for appending (after reporting a run it shows was interrupted)
 * and records this run's beginning. */
static kp_status s_journal_open(s_run *r, const char *path)
{
    s_journal_check(r->ctx, path);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    r->journal = fd >= 0 ? fdopen(fd, "a") : NULL;
    if (r->journal == NULL) {
        if (fd >= 0)
            close(fd);
        return kp__set_error(r->ctx, KP_ERR_IO, "cannot open journal %s", path);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(r->run_id, sizeof(r->run_id), "%lld.%d.%ld", (long long)ts.tv_sec, (int)getpid(),
             ts.tv_nsec / 1000);
    s_journal(r, json_pack("{s:s, s:I}", "event", "begin", "actions", (json_int_t)r->plan->n));
    s_journal_sync(r);
    return KP_OK;
}

/* ---- instances --------------------------------------------------------------------------- */

/* The shared open instance called name; opened on first use. Caller holds r->lock. */
static kp_instance *s_instance(s_run *r, const char *name, char *why, size_t whylen)
{
    for (size_t i = 0; i < r->ninst; i++) {
        if (strcmp(r->inst[i].name, name) == 0) {
            if (r->inst[i].inst == NULL)
                snprintf(why, whylen, "%s", r->inst[i].detail);
            return r->inst[i].inst;
        }
    }
    if (r->ninst == KP_APPLY_MAX_INSTANCES) {
        snprintf(why, whylen, "too many instances");
        return NULL;
    }
    size_t i = r->ninst++;
    snprintf(r->inst[i].name, sizeof(r->inst[i].name), "%s", name);
    r->inst[i].status = kp__instance_borrow(r->ctx, r->policy, name, &r->inst[i].inst);
    if (r->inst[i].status != KP_OK) {
        snprintf(r->inst[i].detail, sizeof(r->inst[i].detail), "%s", kp_ctx_last_error(r->ctx));
        snprintf(why, whylen, "%s", r->inst[i].detail);
    }
    return r->inst[i].inst;
}

/* The shared open instance called name, or KP_ERR_UNAVAILABLE saying why there is none. */
static kp_status s_get(s_run *r, const char *name, kp_instance **out)
{
    char why[256] = "";
    pthread_mutex_lock(&r->lock);
    *out = s_instance(r, name, why, sizeof(why));
    pthread_mutex_unlock(&r->lock);
    if (*out == NULL)
        return kp__set_error(r->ctx, KP_ERR_UNAVAILABLE, "%s", why);
    return KP_OK;
}

/* ---- actions ----------------------------------------------------------------------------- */

static kp_status s_create(s_run *r, const kp_action *a, const kp_chain_policy *c, bool *noop)
{
    kp_instance *inst = NULL;
    KP_GUARD(s_get(r, a->target, &inst));
    kp_key_info info;
    kp_status st = kp_key_info_get(inst, a->chain, a->version, &info);
    if (st == KP_OK) {
        *noop = true; /* made by an earlier, interrupted run */
        return KP_OK;
    }
    if (st != KP_ERR_NOT_FOUND)
        return st;
    kp_key_spec spec;
    kp__chain_spec(c, a->version, &spec);
    st = c->certificate != NULL ? kp__cert_create(r->ctx, c, inst, &spec, &info)
                                : kp_key_create(inst, &spec, &info);
    if (st == KP_ERR_EXISTS && kp_key_info_get(inst, a->chain, a->version, &info) == KP_OK) {
        *noop = true; /* another run made it first */
        return KP_OK;
    }
    return st;
}

/* KP_ERR_NOT_FOUND when planning found no source for the action (what: the kind of store). */
static kp_status s_has_source(s_run *r, const kp_action *a, const char *what)
{
    if (a->source[0] == '\0')
        return kp__set_error(r->ctx, KP_ERR_NOT_FOUND,
                             "no reachable %s holds %s v%u with the expected key", what, a->chain,
                             a->version);
    return KP_OK;
}

/* src's info of the action's version, which must still be the key planned. */
static kp_status s_planned_key(s_run *r, const kp_action *a, kp_instance *src, kp_key_info *want)
{
    KP_GUARD(kp_key_info_get(src, a->chain, a->version, want));
    if (a->fingerprint[0] != '\0' && strcmp(want->fingerprint, a->fingerprint) != 0)
        return kp__set_error(r->ctx, KP_ERR_INTEGRITY,
                             "%s now holds another key as %s v%u than when planned", a->source,
                             a->chain, a->version);
    return KP_OK;
}

/* The version's private key from a secret replica (the action's source), opened with its
 * password from the chain's secret store and checked against the planned fingerprint. */
static kp_status s_from_secret(s_run *r, const kp_action *a, const kp_chain_policy *c,
                               kp_secret **pkcs8, kp_key_info *want)
{
    kp_instance *src = NULL, *secrets = NULL;
    if (c->secrets == NULL)
        return kp__set_error(r->ctx, KP_ERR_CONFIG, "chain '%s' names no secret store", c->name);
    KP_GUARD(s_get(r, a->source, &src));
    KP_GUARD(s_get(r, c->secrets, &secrets));
    return kp__secret_export(r->ctx, c, src, secrets, a->version, a->fingerprint, pkcs8, want);
}

static kp_status s_copy(s_run *r, const kp_action *a, const kp_chain_policy *c, bool *noop)
{
    kp_instance *src = NULL, *dst = NULL;
    kp_key_info have, want;
    bool secret_src = kp__secret_replica_of(r->policy, c, a->source);
    KP_GUARD(s_has_source(r, a, "instance"));
    KP_GUARD(s_get(r, a->target, &dst));
    /* The key expected: the planned fingerprint, or (a version a CREATE of this run made) the
     * source keystore's. */
    memset(&want, 0, sizeof(want));
    snprintf(want.fingerprint, sizeof(want.fingerprint), "%s", a->fingerprint);
    if (!secret_src) {
        KP_GUARD(s_get(r, a->source, &src));
        KP_GUARD(s_planned_key(r, a, src, &want));
    }
    kp_status st = kp_key_info_get(dst, a->chain, a->version, &have);
    if (st == KP_OK && strcmp(have.fingerprint, want.fingerprint) == 0) {
        *noop = true;
        return KP_OK;
    }
    if (st == KP_OK)
        return kp__set_error(r->ctx, KP_ERR_INTEGRITY,
                             "%s holds another key as %s v%u (fingerprint %.16s...); left alone",
                             a->target, a->chain, a->version, have.fingerprint);
    if (st != KP_ERR_NOT_FOUND)
        return st;
    if (secret_src) {
        kp_secret *pkcs8 = NULL;
        st = s_from_secret(r, a, c, &pkcs8, &want);
        kp_key_spec sp = {.struct_size = sizeof(sp),
                          .name = want.name,
                          .type = want.type,
                          .bits = want.bits,
                          .flags = want.flags,
                          .version = want.version,
                          .fingerprint = want.fingerprint};
        if (st == KP_OK)
            st = kp_key_import(dst, &sp, pkcs8, &have);
        kp_secret_free(pkcs8);
        if (st == KP_OK && strcmp(have.fingerprint, want.fingerprint) != 0)
            st = kp__set_error(r->ctx, KP_ERR_INTEGRITY, "%s: the copy of %s v%u is another key",
                               a->target, a->chain, a->version);
    } else {
        st = kp__key_copy(r->ctx, src, dst, &want, &have);
    }
    if (st == KP_ERR_EXISTS) {
        char why[KP_ERRBUF];
        snprintf(why, sizeof(why), "%s", kp_ctx_last_error(r->ctx));
        if (kp_key_info_get(dst, a->chain, a->version, &have) == KP_OK) {
            *noop = strcmp(have.fingerprint, want.fingerprint) == 0; /* another run copied it */
            st = *noop ? KP_OK : KP_ERR_EXISTS;
        }
        if (st != KP_OK) /* not a concurrent copy (e.g. a soft-deleted name): keep the reason */
            kp__set_error(r->ctx, st, "%s", why);
    }
    return st;
}

static kp_status s_secret(s_run *r, const kp_action *a, const kp_chain_policy *c)
{
    kp_instance *src = NULL, *dst = NULL, *secrets = NULL;
    kp_key_info want;
    kp_secret *pkcs8 = NULL;
    KP_GUARD(s_has_source(r, a, "store"));
    if (c->secrets == NULL)
        return kp__set_error(r->ctx, KP_ERR_CONFIG, "chain '%s' names no secret store", c->name);
    KP_GUARD(s_get(r, a->target, &dst));
    KP_GUARD(s_get(r, c->secrets, &secrets));
    /* never a no-op: re-planning finds existing copies; a repeated put only adds a version */
    if (kp__secret_replica_of(r->policy, c, a->source)) {
        KP_GUARD(s_from_secret(r, a, c, &pkcs8, &want));
    } else {
        KP_GUARD(s_get(r, a->source, &src));
        KP_GUARD(s_planned_key(r, a, src, &want));
        KP_GUARD(kp_key_export(src, a->chain, a->version, &pkcs8));
    }
    kp_status st = kp__secret_copy(r->ctx, c, pkcs8, dst, secrets, a->version, want.fingerprint);
    kp_secret_free(pkcs8);
    return st;
}

/* Certificate chains: the version's certificate from the source into the target (the kind of
 * each, keystore or secret replica, as the policy says), or made in the origin (no source). */
static kp_status s_cert(s_run *r, const kp_action *a, const kp_chain_policy *c)
{
    kp_instance *src = NULL, *dst = NULL;
    KP_GUARD(s_get(r, a->target, &dst));
    if (a->source[0] == '\0')
        return kp__cert_make(r->ctx, c, dst, a->version, a->fingerprint);
    KP_GUARD(s_get(r, a->source, &src));
    return kp__cert_copy(r->ctx, c, src, kp__secret_replica_of(r->policy, c, a->source), dst,
                         kp__secret_replica_of(r->policy, c, a->target), a->version,
                         a->fingerprint);
}

static kp_status s_state(s_run *r, const kp_action *a, bool *noop)
{
    kp_instance *src = NULL, *dst = NULL;
    KP_GUARD(s_get(r, a->source, &src));
    KP_GUARD(s_get(r, a->target, &dst));
    return kp__state_copy(r->ctx, a->chain, src, dst, noop);
}

/* The phase an action runs in: its kind, except that a certificate made in the origin (a CERT
 * without a source) runs before the copies of it. */
#define S_PHASE_CERT_MAKE 100u
static uint32_t s_phase_of(const kp_action *a)
{
    return a->kind == KP_ACTION_CERT && a->source[0] == '\0' ? S_PHASE_CERT_MAKE : a->kind;
}

static void *s_worker(void *arg)
{
    s_run *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        size_t i = r->next;
        while (i < r->plan->n && s_phase_of(kp_plan_action(r->plan, i)) != r->phase)
            i++;
        r->next = i < r->plan->n ? i + 1 : i;
        pthread_mutex_unlock(&r->lock);
        if (i >= r->plan->n)
            return NULL;

        const kp_action *a = kp_plan_action(r->plan, i);
        const kp_chain_policy *c = kp_policy_chain(r->policy, a->chain);
        bool noop = false;
        kp__clear_error(r->ctx);
        kp_status st = c == NULL ? kp__set_error(r->ctx, KP_ERR_NOT_FOUND, "no chain %s", a->chain)
                       : a->kind == KP_ACTION_CREATE ? s_create(r, a, c, &noop)
                       : a->kind == KP_ACTION_SECRET ? s_secret(r, a, c)
                       : a->kind == KP_ACTION_STATE  ? s_state(r, a, &noop)
                       : a->kind == KP_ACTION_CERT   ? s_cert(r, a, c)
                                                     : s_copy(r, a, c, &noop);
        char detail[256];
        snprintf(detail, sizeof(detail), "%s",
                 st != KP_OK ? kp_ctx_last_error(r->ctx)
                 : noop      ? "already present"
                             : "done");

        pthread_mutex_lock(&r->lock);
        r->done++;
        if (st != KP_OK) {
            r->failed++;
            if (r->first == KP_OK) {
                r->first = st;
                snprintf(r->first_detail, sizeof(r->first_detail), "%s %s v%u -> %s: %s",
                         a->kind == KP_ACTION_CREATE ? "create"
                         : a->kind == KP_ACTION_CERT ? "certificate"
                                                     : "copy",
                         a->chain, a->version, a->target, detail);
            }
        }
        s_journal(r, json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:s}", "event", "action",
                               "index", (json_int_t)i, "kind",
                               a->kind == KP_ACTION_CREATE   ? "create"
                               : a->kind == KP_ACTION_SECRET ? "secret"
                               : a->kind == KP_ACTION_STATE  ? "state"
                               : a->kind == KP_ACTION_CERT   ? "cert"
                                                             : "copy",
                               "chain", a->chain, "target", a->target, "version",
                               (json_int_t)a->version, "status", kp_status_name(st), "detail",
                               detail));
        if (r->opts != NULL && r->opts->progress != NULL)
            r->opts->progress(r->opts->arg, a, st, detail, r->done, r->total);
        pthread_mutex_unlock(&r->lock);
        s_journal_sync(r);
    }
}

static void s_run_phase(s_run *r, uint32_t phase, unsigned workers)
{
    size_t count = 0;
    for (size_t i = 0; i < r->plan->n; i++)
        count += s_phase_of(kp_plan_action(r->plan, i)) == phase;
    if (count == 0)
        return;
    r->phase = phase;
    r->next = 0;
    unsigned n = workers < count ? workers : (unsigned)count;
    pthread_t *t = calloc((size_t)n + 1, sizeof(*t)); /* n >= 1: kp__workers never says 0 */
    unsigned started = 0;
    for (unsigned i = 0; t != NULL && i < n; i++)
        if (pthread_create(&t[i], NULL, s_worker, r) == 0)
            started++;
    if (started == 0)
        s_worker(r); /* no thread could start: do the work here */
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
}

kp_status kp_plan_apply(kp_ctx *ctx, const kp_policy *policy, const kp_plan *plan,
                        const kp_apply_opts *opts, size_t *failed)
{
    KP_ENSURE(ctx != NULL && policy != NULL && plan != NULL, KP_ERR_INVALID_ARG);
    if (failed != NULL)
        *failed = 0;
    s_run *r = calloc(1, sizeof(*r));
    KP_ENSURE(r != NULL, KP_ERR_NOMEM);
    r->ctx = ctx;
    r->policy = policy;
    r->plan = plan;
    r->opts = opts != NULL && opts->struct_size >= sizeof(kp_apply_opts) ? opts : NULL;
    r->total = plan->n;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->jlock, NULL);
    unsigned workers = kp__workers(r->opts != NULL ? r->opts->workers : 0);
    kp_status st = KP_OK;
    if (r->opts != NULL && r->opts->journal != NULL)
        st = s_journal_open(r, r->opts->journal);
    if (st == KP_OK) {
        /* A version must exist before it can be copied: all CREATEs, then all COPYs. */
        s_run_phase(r, KP_ACTION_CREATE, workers);
        s_run_phase(r, KP_ACTION_COPY, workers);
        s_run_phase(r, KP_ACTION_SECRET, workers);
        /* the keys are where their certificates go; a certificate is made before it is copied */
        s_run_phase(r, S_PHASE_CERT_MAKE, workers);
        s_run_phase(r, KP_ACTION_CERT, workers);
        s_run_phase(r, KP_ACTION_STATE, workers);
        s_journal(r, json_pack("{s:s, s:I}", "event", "end", "failed", (json_int_t)r->failed));
        s_journal_sync(r);
        st = r->first;
    }
    if (r->journal != NULL)
        fclose(r->journal);
    for (size_t i = 0; i < r->ninst; i++)
        kp__instance_return(r->ctx, r->inst[i].inst);
    if (failed != NULL)
        *failed = r->failed;
    if (st != KP_OK && r->failed > 0)
        kp__set_error(ctx, st, "%zu of %zu actions failed; first: %.200s", r->failed, r->total,
                      r->first_detail);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->jlock);
    free(r);
    return st;
}
