/*
 * Running one test: an instance of its own (opened and closed around it, so every secret the
 * plugin allocated for the test must be freed by the time it ends), its time, a watchdog for a
 * plugin that hangs and a last word for one that crashes, so the output always names the test
 * that was running. Its failures are recorded in conf_result.c.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keyplane/kit/clock.h>

#include "conf.h"

kp_status conf_open(conf_run *r, const kp_param *params, void **inst, kp_core_handle **h)
{
    conf_kit *k = r->kit;
    kp_instance_open_fn *open = CONF_FN(k, instance_open, KP_FN_INSTANCE_OPEN);
    *inst = NULL;
    *h = NULL;
    if (open == NULL)
        return KP_ERR_PLUGIN;
    *h = conf_handle_new(k->info->name);
    if (*h == NULL)
        return KP_ERR_NOMEM;
    conf_err_clear();
    kp_status st = open(k->plugin_ctx, *h, params != NULL ? params : k->params.list, inst);
    if (st != KP_OK) {
        conf_handle_retire(*h);
        *h = NULL;
        if (*inst != NULL)
            conf_fail(r, "INSTANCE_OPEN failed with %s but set *inst", conf_status_name(st));
        *inst = NULL;
    }
    return st;
}

void conf_close(conf_run *r, void *inst, kp_core_handle *h)
{
    kp_instance_close_fn *close = CONF_FN(r->kit, instance_close, KP_FN_INSTANCE_CLOSE);
    if (close != NULL && h != NULL)
        close(inst);
    conf_handle_retire(h);
}

bool conf_instance_info(conf_run *r, void *inst, kp_instance_info *out)
{
    kp_instance_info_fn *fn = CONF_FN(r->kit, instance_info, KP_FN_INSTANCE_INFO);
    if (fn == NULL) {
        conf_fail(r, "no KP_FN_INSTANCE_INFO (113)");
        return false;
    }
    struct {
        kp_instance_info i;
        unsigned char guard[CONF_GUARD];
    } g;
    memset(&g, 0, sizeof(g));
    memset(g.guard, 0xa5, sizeof(g.guard));
    g.i.struct_size = sizeof(g.i);
    conf_err_clear();
    kp_status st = fn(inst, &g.i);
    bool ok = st == KP_OK;
    if (!ok)
        conf_fail(r, "INSTANCE_INFO failed: %s: %s", conf_status_name(st), conf_reason());
    if (g.i.struct_size != sizeof(g.i)) {
        conf_fail(r, "INSTANCE_INFO changed struct_size (the core owns it)");
        ok = false;
    }
    for (size_t i = 0; i < sizeof(g.guard); i++)
        if (g.guard[i] != 0xa5) {
            conf_fail(r, "INSTANCE_INFO wrote past kp_instance_info's struct_size");
            ok = false;
            break;
        }
    *out = g.i;
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Watchdog and crash report                                                                 */

static const char *volatile s_running;
static volatile double s_deadline;
static struct sigaction s_old[32];

static void s_say(const char *a, const char *b, const char *c)
{
    const char *parts[] = {a, b, c};
    for (size_t i = 0; i < 3; i++)
        if (write(1, parts[i], strlen(parts[i])) < 0)
            return;
}

static void *s_watch(void *arg)
{
    unsigned timeout = *(unsigned *)arg;
    for (;;) {
        sleep(1);
        const char *t = s_running;
        if (t != NULL && kpk_clock_ms() > s_deadline) {
            char tail[96];
            snprintf(tail, sizeof(tail), ": timed out after %u s (a deadlock?)\n", timeout);
            s_say("FAIL ", t, tail);
            _exit(1);
        }
    }
    return NULL;
}

static void s_crash(int sig)
{
    const char *t = s_running;
    const char *what = sig == SIGSEGV   ? ": crashed (SIGSEGV)\n"
                       : sig == SIGBUS  ? ": crashed (SIGBUS)\n"
                       : sig == SIGABRT ? ": crashed (SIGABRT)\n"
                                        : ": crashed (a fatal signal)\n";
    if (t != NULL)
        s_say("FAIL ", t, what);
    /* back to whatever handled it before (ASan's report, or the default), then again */
    sigaction(sig, &s_old[sig], NULL);
    if (sig == SIGABRT)
        raise(sig);
}

void conf_running(const char *test)
{
    s_deadline = kpk_clock_ms() + 1000.0 * 600;
    s_running = test;
}

void conf_guard_start(unsigned *timeout_s)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_crash;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NODEFER;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, &s_old[sigs[i]]);
    pthread_t t;
    if (*timeout_s > 0 && pthread_create(&t, NULL, s_watch, timeout_s) == 0)
        pthread_detach(t);
}

/* ---------------------------------------------------------------------------------------- */
/* One test                                                                                  */

void conf_run_one(conf_kit *k, const conf_test *t, unsigned seq, conf_run *r)
{
    memset(r, 0, sizeof(*r));
    r->kit = k;
    r->test = t;
    r->seq = seq;
    double start = kpk_clock_ms();
    s_deadline = start + 1000.0 * k->timeout_s;
    s_running = t->name;
    conf_secret_set_seq(seq);
    conf_set_current(r);
    const char *why = NULL;
    if (!k->loaded && strcmp(t->name, "handshake") != 0 && strcmp(t->name, "valgrind") != 0)
        why = "the plugin did not load";
    else if (t->applies != NULL)
        why = t->applies(k);
    if (why != NULL) {
        conf_skip(r, "%s", why);
    } else if (t->instance && !k->have_iinfo) {
        conf_fail(r, "no instance to test: %s", k->iinfo_error);
    } else if (t->instance) {
        kp_status st = conf_open(r, NULL, &r->inst, &r->h);
        if (st != KP_OK)
            conf_fail(r, "INSTANCE_OPEN with the params file's params failed: %s: %s",
                      conf_status_name(st), conf_reason());
        else
            t->run(r);
        if (r->h != NULL)
            conf_close(r, r->inst, r->h);
    } else {
        t->run(r);
    }
    conf_secret_sweep(seq, true);
    conf_set_current(NULL);
    conf_secret_set_seq(0);
    s_running = NULL;
    r->ms = kpk_clock_ms() - start;
}
