/* The provider kit's transport in tests (kp_test_http.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test_http.h"

static char s_base[256];

void kp_test_http_base(const char *url)
{
    snprintf(s_base, sizeof s_base, "%s", url != NULL ? url : "");
}

static void s_record(void *arg, long ms)
{
    kp_test_sleeps *s = arg;
    if (s->n < 16)
        s->ms[s->n] = ms;
    s->n++;
}

kpk_http *kp_test_http(kpk_http_config cfg, kp_test_sleeps *sleeps)
{
    kpk_http *h = NULL;
    char err[256];
    if (cfg.ca_bundle == NULL)
        cfg.ca_bundle = getenv("KV_CA");
    kp_status st = kpk_http_new(&cfg, &h, err, sizeof err);
    if (st != KP_OK)
        kp_test_fail("kpk_http_new: %s", err);
    if (sleeps != NULL)
        kpk_http_set_sleep_hook(h, s_record, sleeps);
    return h;
}

kp_status kp_test_http_send(kpk_http *h, const char *method, const char *path,
                            const char *const *headers, const char *body, unsigned flags,
                            kpk_http_response *resp, char *err, size_t errlen)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", path[0] == '/' ? s_base : "", path);
    kpk_http_request req = {.method = method,
                            .url = url,
                            .headers = headers,
                            .body = (const uint8_t *)body,
                            .body_len = body != NULL ? strlen(body) : 0,
                            .flags = flags};
    return kpk_http_send(h, &req, resp, err, errlen);
}
