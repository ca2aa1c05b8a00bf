/*
 * The services the core offers plugins (KP_UP_* in provider.h).
 */
#include <stdio.h>
#include <string.h>

#include "base/audit.h"
#include "base/error.h"
#include "base/log.h"
#include "plugin/plugin.h"

static kp_up_log_fn s_log;
static kp_up_set_error_fn s_set_error;
static kp_up_audit_fn s_audit;
static kp_up_get_error_fn s_get_error;

static void s_log(kp_core_handle *h, kp_log_level level, const char *msg)
{
    if (h == NULL || msg == NULL)
        return;
    kp__log(h->ctx, level, "%s: %s", h->who, msg);
}

static kp_status s_set_error(kp_core_handle *h, kp_status status, const char *msg)
{
    if (h == NULL)
        return status;
    return kp__set_error(h->ctx, status, "%s: %s", h->who, msg != NULL ? msg : kp_strerror(status));
}

/* The plugin's own words: the text without the "<who>: " that SET_ERROR put before them, so a
 * plugin that adds context to a helper's message does not repeat its name. */
static const char *s_get_error(kp_core_handle *h)
{
    if (h == NULL)
        return "";
    const char *text = kp_ctx_last_error(h->ctx);
    size_t n = strlen(h->who);
    if (strncmp(text, h->who, n) == 0 && text[n] == ':' && text[n + 1] == ' ')
        return text + n + 2;
    return text;
}

static void s_audit(kp_core_handle *h, const char *event, const char *detail)
{
    if (h == NULL || event == NULL)
        return;
    /* "plugin." keeps a plugin's events apart from the core's key.* events it might mimic. */
    char op[64];
    snprintf(op, sizeof(op), "plugin.%.48s", event);
    kp_audit_event ev = {.op = op, .instance = h->who, .detail = detail, .status = KP_OK};
    kp__audit(h->ctx, &ev);
}

static const kp_dispatch s_upcalls[] = {
    {KP_UP_LOG, (kp_fn)s_log},
    {KP_UP_SET_ERROR, (kp_fn)s_set_error},
    {KP_UP_AUDIT, (kp_fn)s_audit},
    {KP_UP_SECRET_NEW, (kp_fn)kp_secret_new},
    {KP_UP_SECRET_FREE, (kp_fn)kp_secret_free},
    {KP_UP_SECRET_DATA, (kp_fn)kp_secret_data},
    {KP_UP_SECRET_CDATA, (kp_fn)kp_secret_cdata},
    {KP_UP_SECRET_LEN, (kp_fn)kp_secret_len},
    {KP_UP_SECRET_SHRINK, (kp_fn)kp_secret_shrink},
    {KP_UP_GET_ERROR, (kp_fn)s_get_error},
    {0, NULL},
};

const kp_dispatch *kp__upcalls(void)
{
    return s_upcalls;
}
