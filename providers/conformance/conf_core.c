/*
 * The kit's core: the upcalls a plugin gets (log, error text, audit; secrets are in
 * conf_secret.c) and the handles it uses them through. Each upcall checks what a plugin hands
 * it: a handle the kit never gave or one of a closed instance, error text that is not one line,
 * and the value of a SECRET param in any text; what it finds is a fault for the test that is
 * running (conf_result.c).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define CONF_HANDLE_MAGIC 0x6b70636fu

struct kp_core_handle {
    uint32_t magic;
    bool live;
    char who[64];
    struct kp_core_handle *next;
};

int conf_verbose;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static kp_core_handle *s_handles;
static kp_core_handle s_plugin_handle = {CONF_HANDLE_MAGIC, true, "plugin", NULL};

static _Thread_local char s_err[KP_ERROR_MAX + 1];
static _Thread_local bool s_err_set;
static _Thread_local kp_status s_err_st;

typedef struct forbidden {
    char name[64];
    unsigned char *p;
    size_t len;
} forbidden;
static forbidden s_forbidden[16];
static size_t s_nforbidden;

/* ---------------------------------------------------------------------------------------- */
/* Handles                                                                                   */

kp_core_handle *conf_plugin_handle(void)
{
    return &s_plugin_handle;
}

kp_core_handle *conf_handle_new(const char *who)
{
    kp_core_handle *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->magic = CONF_HANDLE_MAGIC;
    h->live = true;
    snprintf(h->who, sizeof(h->who), "%s", who);
    pthread_mutex_lock(&s_lock);
    h->next = s_handles;
    s_handles = h;
    pthread_mutex_unlock(&s_lock);
    return h;
}

/* Handles are never freed while the plugin is loaded, so a late upcall through one is caught
 * rather than touching freed memory. */
void conf_handle_retire(kp_core_handle *h)
{
    pthread_mutex_lock(&s_lock);
    if (h != NULL)
        h->live = false;
    pthread_mutex_unlock(&s_lock);
}

static bool s_handle_ok(kp_core_handle *h, const char *upcall)
{
    bool known = h == &s_plugin_handle, live = known;
    pthread_mutex_lock(&s_lock);
    for (kp_core_handle *p = s_handles; p != NULL && !known; p = p->next)
        if (p == h) {
            known = true;
            live = p->live;
        }
    pthread_mutex_unlock(&s_lock);
    if (!known)
        conf_fault("%s upcall with a handle the core never gave (%p)", upcall, (void *)h);
    else if (!live)
        conf_fault("%s upcall through the handle of an instance already closed", upcall);
    return known;
}

/* ---------------------------------------------------------------------------------------- */
/* Texts                                                                                     */

void conf_forbid_text(const char *name, const unsigned char *p, size_t len)
{
    if (len < 4 || s_nforbidden == sizeof(s_forbidden) / sizeof(s_forbidden[0]))
        return; /* shorter values would match by chance */
    forbidden *f = &s_forbidden[s_nforbidden];
    f->p = malloc(len);
    if (f->p == NULL)
        return;
    memcpy(f->p, p, len);
    f->len = len;
    snprintf(f->name, sizeof(f->name), "%s", name);
    s_nforbidden++;
}

static void s_check_text(const char *where, const char *text)
{
    if (text == NULL)
        return;
    size_t n = strlen(text);
    for (size_t i = 0; i < s_nforbidden; i++)
        if (memmem(text, n, s_forbidden[i].p, s_forbidden[i].len) != NULL)
            conf_fault("%s holds the value of the SECRET param '%s'", where, s_forbidden[i].name);
}

bool conf_one_line(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Upcalls                                                                                   */

static void s_log(kp_core_handle *h, kp_log_level level, const char *msg)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!s_handle_ok(h, "LOG"))
        return;
    if ((unsigned)level > KP_LOG_DEBUG)
        conf_fault("LOG upcall with unknown level %d", (int)level);
    if (msg == NULL) {
        conf_fault("LOG upcall with a NULL message");
        return;
    }
    s_check_text("a log line", msg);
    if (conf_verbose)
        fprintf(stderr, "[%s %s] %s\n", h->who, (unsigned)level <= 3 ? names[level] : "?", msg);
}

static kp_status s_set_error(kp_core_handle *h, kp_status status, const char *msg)
{
    s_handle_ok(h, "SET_ERROR");
    if (msg == NULL) {
        conf_fault("SET_ERROR upcall with a NULL message");
        msg = "";
    }
    if (!conf_one_line(msg))
        conf_fault("error text is not one line: \"%.80s\"", msg);
    s_check_text("error text", msg);
    snprintf(s_err, sizeof(s_err), "%s", msg);
    s_err_set = true;
    s_err_st = status;
    return status;
}

static const char *s_get_error(kp_core_handle *h)
{
    s_handle_ok(h, "GET_ERROR");
    return s_err;
}

static void s_audit(kp_core_handle *h, const char *event, const char *detail)
{
    if (!s_handle_ok(h, "AUDIT"))
        return;
    if (event == NULL || event[0] == '\0' || !conf_one_line(event) || !conf_one_line(detail))
        conf_fault("AUDIT upcall with an empty event or text of more than one line");
    s_check_text("an audit event", event);
    s_check_text("an audit event", detail);
    if (conf_verbose)
        fprintf(stderr, "[%s audit] %s: %s\n", h->who, event != NULL ? event : "?",
                detail != NULL ? detail : "");
}

void conf_err_clear(void)
{
    s_err[0] = '\0';
    s_err_set = false;
    s_err_st = KP_OK;
}

const char *conf_err_text(void)
{
    return s_err;
}

bool conf_err_was_set(void)
{
    return s_err_set;
}

kp_status conf_err_status(void)
{
    return s_err_st;
}

const kp_dispatch conf_upcalls[] = {
    {KP_UP_LOG, (kp_fn)s_log},
    {KP_UP_SET_ERROR, (kp_fn)s_set_error},
    {KP_UP_AUDIT, (kp_fn)s_audit},
    {KP_UP_SECRET_NEW, (kp_fn)conf_up_secret_new},
    {KP_UP_SECRET_FREE, (kp_fn)conf_up_secret_free},
    {KP_UP_SECRET_DATA, (kp_fn)conf_up_secret_data},
    {KP_UP_SECRET_CDATA, (kp_fn)conf_up_secret_cdata},
    {KP_UP_SECRET_LEN, (kp_fn)conf_up_secret_len},
    {KP_UP_SECRET_SHRINK, (kp_fn)conf_up_secret_shrink},
    {KP_UP_GET_ERROR, (kp_fn)s_get_error},
    {0, NULL},
};
