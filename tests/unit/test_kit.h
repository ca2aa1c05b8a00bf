/* Shared pieces of test_kit: test_kit.c (against the emulator) and test_kit_local.c (base64,
 * the transport's parts, and loopback without TLS). */
#ifndef KP_TEST_KIT_H
#define KP_TEST_KIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <keyplane/kit/http.h>

/* The backoffs a transport asked for, recorded by its sleep hook instead of sleeping. */
typedef struct kp_test_kit_sleeps {
    long ms[16];
    unsigned n;
} kp_test_kit_sleeps;

/* A transport trusting the emulator's CA (KV_CA) unless cfg names another; records its sleeps
 * into sleeps when not NULL. Fails the test when it cannot be made. */
kpk_http *kp_test_kit_http(kpk_http_config cfg, kp_test_kit_sleeps *sleeps);

/* Sends method to path: a path starting with '/' goes to the emulator, anything else is an
 * absolute URL. body is a string or NULL. */
kp_status kp_test_kit_send(kpk_http *h, const char *method, const char *path,
                           const char *const *headers, const char *body, unsigned flags,
                           kpk_http_response *resp, char *err, size_t errlen);

/* Monotonic seconds. */
double kp_test_kit_now(void);

/* Runs the tests of test_kit_local.c; returns the number that failed. */
int kp_test_kit_local(void);

#endif
