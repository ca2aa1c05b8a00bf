/*
 * The instance's HTTPS transport: the kit's client, made on the first request with the settings
 * read from the params, and one send whose failure to get any answer becomes the instance's
 * error text. Both the token requests (akv_auth.c) and the keys API (akv_rest.c) go through it,
 * which is why it sits below both. It also holds the operation's deadline: every request of a
 * lookup, listing, wrap or unwrap (probe, token, retries) shares one budget, so one slow region
 * costs the caller deadline_ms, not attempts x timeout per request.
 */
#include "akv_internal.h"

void kp_akv_begin(kp_akv_inst *a, bool bounded)
{
    pthread_mutex_lock(&a->lock);
    a->deadline = bounded ? kpk_http_clock_ms() + a->deadline_ms : 0;
}

kp_status kp_akv_send(kp_akv_inst *a, const kpk_http_request *req, kpk_http_response *resp)
{
    char err[KP_AKV_ERR];
    kp_status st = KP_OK;
    if (a->http == NULL) {
        st = kpk_http_new(&a->http_cfg, &a->http, err, sizeof(err));
        if (st != KP_OK)
            return kp_akv_err(a, st, "%s: %s", a->place.vault_name, err);
    }
    kpk_http_request bounded = *req;
    bounded.deadline = a->deadline;
    st = kpk_http_send(a->http, &bounded, resp, err, sizeof(err));
    if (st != KP_OK)
        return kp_akv_err(a, st, "%s", err);
    return KP_OK;
}
