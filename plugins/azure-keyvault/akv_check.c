/*
 * `keyplane check` for a vault: reachable over verified TLS, a token for its scope, and the
 * right to list keys. Each item is one request, so the first failing one names the cause.
 */
#include <stdio.h>
#include <string.h>

#include "akv_internal.h"

kp_status kp_akv_instance_check(void *inst, kp_check_report_fn report, void *arg)
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && report != NULL, KP_ERR_INVALID_ARG);
    char detail[KP_AKV_URL_MAX + 128];
    kp_akv_resp r;
    kp_akv_begin(a, false);
    /* vault: any answer over verified TLS; a first call also learns the challenge */
    kp_status st = kp_akv_call(a, "GET", "/keys?maxresults=1", NULL, 0, 0, "list keys", &r);
    kp_status reach = st == KP_OK || st == KP_ERR_PERMISSION || st == KP_ERR_AUTH ? KP_OK : st;
    if (reach == KP_OK)
        snprintf(detail, sizeof(detail), "%s (api-version %s)", a->place.vault_url, a->api_version);
    /* the failure's text is what kp_akv_call set on this thread */
    report(arg, "vault", reach, reach == KP_OK ? detail : a->up->get_error(a->h));
    if (reach == KP_OK) {
        kp_status tst = a->token != NULL ? KP_OK : st;
        snprintf(detail, sizeof(detail), "%s, scope %s",
                 a->auth == KP_AKV_AUTH_CLIENT_SECRET ? "client secret" : "managed identity",
                 a->scope);
        report(arg, "token", tst, tst == KP_OK ? detail : a->up->get_error(a->h));
        if (tst == KP_OK)
            report(arg, "list", st, st == KP_OK ? "keys/list permitted" : a->up->get_error(a->h));
    }
    if (st == KP_OK)
        kp_akv_resp_free(&r);
    pthread_mutex_unlock(&a->lock);
    return st;
}
