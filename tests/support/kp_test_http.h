/* The provider kit's transport in tests (kp_test_http*): a kpk_http whose sleep hook records the
 * backoffs instead of sleeping, and one request by method and URL. Shared by unit.kit_local
 * (loopback, no TLS) and unit.kit (the emulator over TLS). */
#ifndef KP_TEST_HTTP_H
#define KP_TEST_HTTP_H

#include <keyplane/kit/http.h>

#include "kp_test.h"

/* The backoffs a transport asked for, recorded by its sleep hook instead of sleeping. */
typedef struct kp_test_sleeps {
    long ms[16];
    unsigned n;
} kp_test_sleeps;

/* Where a path starting with '/' goes in kp_test_http_send (a vault's URL); NULL: nowhere. */
void kp_test_http_base(const char *url);

/* A transport trusting KV_CA (the emulator's test CA, when set) unless cfg names another CA;
 * records its sleeps into sleeps when not NULL. Fails the test when it cannot be made. */
kpk_http *kp_test_http(kpk_http_config cfg, kp_test_sleeps *sleeps);

/* Sends method to path: a path starting with '/' goes to kp_test_http_base's URL, anything else
 * is an absolute URL. body is a string or NULL. */
kp_status kp_test_http_send(kpk_http *h, const char *method, const char *path,
                            const char *const *headers, const char *body, unsigned flags,
                            kpk_http_response *resp, char *err, size_t errlen);

#endif
