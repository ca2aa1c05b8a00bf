/*
 * What a test comes to: its failures and why it was skipped, and the faults the kit's upcalls
 * notice while a plugin runs, which go to the test running now or, between tests (init,
 * teardown), to the totals reported at the end. Every other file of the kit records through
 * this one, which uses none of them.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static conf_run *s_current;
static char **s_orphans;
static size_t s_norphans;

void conf_fail(conf_run *r, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s_lock);
    r->result = CONF_FAIL;
    if (r->nreasons < CONF_MAX_REASONS)
        r->reasons[r->nreasons++] = strdup(msg);
    else
        r->dropped++;
    pthread_mutex_unlock(&s_lock);
}

void conf_skip(conf_run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->skip, sizeof(r->skip), fmt, ap);
    va_end(ap);
    if (r->result == CONF_OK)
        r->result = CONF_SKIP;
}

conf_run *conf_current(void)
{
    pthread_mutex_lock(&s_lock);
    conf_run *r = s_current;
    pthread_mutex_unlock(&s_lock);
    return r;
}

void conf_set_current(conf_run *r)
{
    pthread_mutex_lock(&s_lock);
    s_current = r;
    pthread_mutex_unlock(&s_lock);
}

void conf_fault(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conf_run *r = conf_current();
    if (r != NULL) {
        conf_fail(r, "%s", msg);
        return;
    }
    pthread_mutex_lock(&s_lock);
    char **n = realloc(s_orphans, (s_norphans + 1) * sizeof(*n));
    if (n != NULL) {
        s_orphans = n;
        s_orphans[s_norphans] = strdup(msg);
        if (s_orphans[s_norphans] != NULL)
            s_norphans++;
    }
    pthread_mutex_unlock(&s_lock);
}

size_t conf_orphan_faults(char ***out)
{
    *out = s_orphans;
    return s_norphans;
}
