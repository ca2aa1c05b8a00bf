/*
 * The provider kit's HTTPS transport against a real Key Vault emulator over real TLS, started
 * by run_with_vault.sh --name kit (which exports KV_CA and KV_KIT_URL). The vault's fault
 * injection drives the retry rule; a sleep hook records the backoffs, so nothing here really waits
 * but the deadline test, which gives a server that never answers 0.7 s.
 * The kit's tests that need no vault are unit.kit_local (tests/unit/test_kit_local.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kp_test_http.h"
#include "kp_test_vault.h"

#define TENANT "00000000-0000-0000-0000-000000000001"
#define OPENID "/" TENANT "/v2.0/.well-known/openid-configuration"
#define IMDS                                                                                       \
    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"

static kp_test_vault *s_vault;
static const char *s_base; /* the vault's URL */

/* ---- helpers ---------------------------------------------------------------------------- */

/* The vault's /_emulator/stats. The counters never reset (a new fault
 * configuration keeps them), so tests compare before and after. */
static kp_test_vault_stats s_stats(void)
{
    kp_test_vault_stats st;
    kp_test_vault_stats_get(s_vault, &st);
    return st;
}

static int s_setup_vault(void **state)
{
    (void)state;
    kp_test_vault_faults(s_vault, "{}");
    return 0;
}

static int s_group_setup(void **state)
{
    (void)state;
    s_vault = kp_test_vault_open("kit");
    s_base = kp_test_vault_url(s_vault);
    kp_test_http_base(s_base);
    return 0;
}

static int s_group_teardown(void **state)
{
    (void)state;
    kp_test_vault_close(s_vault);
    return 0;
}

/* ---- against the emulator --------------------------------------------------------------- */

static void test_http_health_keepalive(void **state)
{
    (void)state;
    kpk_http *h = kp_test_http((kpk_http_config){0}, NULL);
    for (int i = 0; i < 2; i++) {
        kpk_http_response r;
        char err[256];
        assert_int_equal(
            kp_test_http_send(h, "GET", "/_emulator/health", NULL, NULL, 0, &r, err, sizeof err),
            KP_OK);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.attempts, 1);
        assert_non_null(strstr((const char *)r.body, "\"status\":\"ok\""));
        assert_int_equal(strlen((const char *)r.body), r.len);
        assert_non_null(r.request_id);
        assert_int_equal(strlen(r.request_id), 36); /* a UUID */
        assert_null(r.www_authenticate);
        kpk_http_response_free(&r);
        assert_null(r.body);
    }
    kpk_http_stats st;
    kpk_http_stats_get(h, &st);
    assert_int_equal(st.attempts, 2);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.connects, 1); /* the second request used the kept-alive connection */
    kpk_http_free(h);
}

/* A self-signed CA under the same name as the test CA, with another key: an impostor. */
static char *s_write_wrong_ca(void)
{
    const char *tmp = kp_test_vault_dir();
    char *path = malloc(strlen(tmp) + 32);
    assert_non_null(path);
    sprintf(path, "%s/wrong-ca-XXXXXX", tmp);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x), -300);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"keyplane test CA",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
    assert_non_null(bc);
    X509_add_ext(x, bc, -1);
    X509_EXTENSION_free(bc);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
    return path;
}

static void test_http_wrong_ca(void **state)
{
    (void)state;
    char *ca = s_write_wrong_ca();
    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){.ca_bundle = ca}, &sl);
    kpk_http_response r;
    char err[512], origin[160];
    assert_int_equal(
        kp_test_http_send(h, "GET", "/_emulator/health", NULL, NULL, 0, &r, err, sizeof err),
        KP_ERR_INTEGRITY);
    snprintf(origin, sizeof origin, "%s: TLS verification failed (", s_base);
    if (strncmp(err, origin, strlen(origin)) != 0)
        fail_msg("err: %s", err);
    assert_int_equal(r.attempts, 1);
    assert_null(r.body);
    assert_int_equal(sl.n, 0);
    kpk_http_stats st;
    kpk_http_stats_get(h, &st);
    assert_int_equal(st.attempts, 1);
    kpk_http_free(h);
    unlink(ca);
    free(ca);

    /* the system store does not know the test CA either */
    kpk_http *sys = NULL;
    assert_int_equal(kpk_http_new(NULL, &sys, err, sizeof err), KP_OK);
    assert_int_equal(
        kp_test_http_send(sys, "GET", "/_emulator/health", NULL, NULL, 0, &r, err, sizeof err),
        KP_ERR_INTEGRITY);
    kpk_http_free(sys);
}

static void test_http_fault_sequence(void **state)
{
    (void)state;
    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){0}, &sl);
    kpk_http_response r;
    char err[512];
    /* a first request opens the connection, so the drop below hits a kept-alive one: libcurl
     * would send the request again by itself there; the kit makes that its own retry */
    assert_int_equal(
        kp_test_http_send(h, "GET", "/_emulator/health", NULL, NULL, 0, &r, err, sizeof err),
        KP_OK);
    kpk_http_response_free(&r);
    kp_test_vault_stats before = s_stats();
    kp_test_vault_faults(
        s_vault, "{\"scope\":\"all\",\"sequence\":[\"429\",\"503\",\"drop\"],\"retry_after\":1}");

    assert_int_equal(kp_test_http_send(h, "GET", OPENID, NULL, NULL, 0, &r, err, sizeof err),
                     KP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 4);
    assert_non_null(strstr((const char *)r.body, "\"token_endpoint\""));
    assert_int_equal(sl.n, 3);
    assert_int_equal(sl.ms[0], 1000);  /* 429 with Retry-After: 1 */
    assert_int_equal(sl.ms[1], 1000);  /* 503 with Retry-After: 1 */
    assert_in_range(sl.ms[2], 0, 400); /* the drop: backoff, third retry, ceiling 100 * 2^2 */
    kpk_http_response_free(&r);

    kpk_http_stats st;
    kpk_http_stats_get(h, &st);
    assert_int_equal(st.attempts, 5);
    assert_int_equal(st.retries, 3);
    assert_int_equal(st.connects, 2); /* the drop killed the first connection */
    kp_test_vault_stats after = s_stats();
    assert_int_equal(after.requests - before.requests, 4);
    assert_int_equal(after.drop - before.drop, 1);
    assert_int_equal(after.ok - before.ok, 1);
    kpk_http_free(h);
}

static void test_http_retry_after_cap(void **state)
{
    (void)state;
    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){.retry_after_cap_ms = 2500}, &sl);
    kpk_http_response r;
    char err[512];
    kp_test_vault_faults(s_vault,
                         "{\"scope\":\"all\",\"sequence\":[\"429\",\"500\"],\"retry_after\":60}");
    assert_int_equal(kp_test_http_send(h, "GET", OPENID, NULL, NULL, 0, &r, err, sizeof err),
                     KP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(sl.n, 2);
    assert_int_equal(sl.ms[0], 2500);  /* Retry-After: 60, capped */
    assert_in_range(sl.ms[1], 0, 200); /* a 500 has no Retry-After: backoff */
    kpk_http_response_free(&r);
    kpk_http_free(h);
}

static void test_http_attempts_exhausted(void **state)
{
    (void)state;
    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){.max_attempts = 3}, &sl);
    kpk_http_response r;
    char err[512];
    long before = s_stats().r503;
    kp_test_vault_faults(s_vault,
                         "{\"scope\":\"all\",\"retry_after\":1,"
                         "\"sequence\":[\"503\",\"503\",\"503\",\"503\",\"503\",\"503\"]}");
    assert_int_equal(kp_test_http_send(h, "GET", OPENID, NULL, NULL, 0, &r, err, sizeof err),
                     KP_OK);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 3);
    assert_non_null(strstr((const char *)r.body, "ServiceUnavailable"));
    assert_int_equal(sl.n, 2);
    kpk_http_response_free(&r);
    assert_int_equal(s_stats().r503 - before, 3);
    kpk_http_free(h);
}

static void test_http_not_retryable_400(void **state)
{
    (void)state;
    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){0}, &sl);
    kpk_http_response r;
    char err[512];
    assert_int_equal(kp_test_http_send(h, "GET", IMDS, NULL, NULL, 0, &r, err, sizeof err), KP_OK);
    assert_int_equal(r.status, 400);
    assert_int_equal(r.attempts, 1);
    assert_non_null(strstr((const char *)r.body, "invalid_request"));
    assert_int_equal(sl.n, 0);
    kpk_http_response_free(&r);
    /* the same with the header IMDS wants */
    const char *md[] = {"Metadata: true", NULL};
    assert_int_equal(kp_test_http_send(h, "GET", IMDS, md, NULL, 0, &r, err, sizeof err), KP_OK);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr((const char *)r.body, "\"access_token\""));
    kpk_http_response_free(&r);
    kpk_http_free(h);
}

#define TOKEN_PATH "/" TENANT "/oauth2/v2.0/token"
#define TOKEN_FORM                                                                                 \
    "grant_type=client_credentials&client_id=kp-client&client_secret=kp-secret"                    \
    "&scope=https%3A%2F%2Fvault.azure.net%2F.default"

static kp_status s_token(kpk_http *h, kpk_http_response *r, char *err, size_t errlen)
{
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    return kp_test_http_send(h, "POST", TOKEN_PATH, form, TOKEN_FORM, KPK_HTTP_UNSAFE, r, err,
                             errlen);
}

static void test_http_unsafe(void **state)
{
    (void)state;
    kp_test_sleeps sl = {0};
    kpk_http_response r;
    char err[512];

    /* a drop after the request went out, on a fresh connection and on a kept-alive one: the
     * request is not repeated (the vault saw it exactly once) */
    for (int reused = 0; reused < 2; reused++) {
        kpk_http *h = kp_test_http((kpk_http_config){0}, &sl);
        if (reused) {
            assert_int_equal(kp_test_http_send(h, "GET", "/_emulator/health", NULL, NULL, 0, &r,
                                               err, sizeof err),
                             KP_OK);
            kpk_http_response_free(&r);
        }
        kp_test_vault_stats before = s_stats();
        kp_test_vault_faults(s_vault, "{\"scope\":\"all\",\"sequence\":[\"drop\"]}");
        assert_int_equal(s_token(h, &r, err, sizeof err), KP_ERR_UNAVAILABLE);
        assert_int_equal(r.attempts, 1);
        assert_null(r.body);
        assert_non_null(strstr(err, "not repeated"));
        assert_null(strstr(err, "kp-secret"));
        assert_int_equal(sl.n, 0);
        kp_test_vault_stats after = s_stats();
        assert_int_equal(after.requests - before.requests, 1);
        assert_int_equal(after.drop - before.drop, 1);
        kpk_http_free(h);
    }

    /* 429 and 503: the service did not act, so even a create is repeated */
    kpk_http *h = kp_test_http((kpk_http_config){0}, &sl);
    kp_test_vault_faults(s_vault,
                         "{\"scope\":\"all\",\"sequence\":[\"429\",\"503\"],\"retry_after\":1}");
    assert_int_equal(s_token(h, &r, err, sizeof err), KP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 3);
    assert_non_null(strstr((const char *)r.body, "\"access_token\""));
    assert_int_equal(sl.n, 2);
    assert_int_equal(sl.ms[0], 1000);
    assert_int_equal(sl.ms[1], 1000);
    kpk_http_response_free(&r);

    /* a 500 may have come after the service acted: it comes back at once */
    sl.n = 0;
    kp_test_vault_faults(s_vault, "{\"scope\":\"all\",\"sequence\":[\"500\"]}");
    assert_int_equal(s_token(h, &r, err, sizeof err), KP_OK);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(sl.n, 0);
    kpk_http_response_free(&r);
    kpk_http_free(h);
}

static void test_http_timeout(void **state)
{
    (void)state;
    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){.timeout_ms = 300, .max_attempts = 2}, &sl);
    kpk_http_response r;
    char err[512];
    kp_test_vault_faults(s_vault, "{\"scope\":\"all\",\"latency_ms\":1500}");
    assert_int_equal(kp_test_http_send(h, "GET", OPENID, NULL, NULL, 0, &r, err, sizeof err),
                     KP_ERR_TIMEOUT);
    assert_int_equal(r.attempts, 2);
    assert_non_null(strstr(err, "timed out after 2 attempts"));
    assert_int_equal(sl.n, 1);
    /* an unsafe request that timed out after it was sent is not repeated */
    sl.n = 0;
    assert_int_equal(s_token(h, &r, err, sizeof err), KP_ERR_TIMEOUT);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(sl.n, 0);
    kp_test_vault_faults(s_vault, "{}");
    kpk_http_free(h);
}

/* A request's deadline: a 503 whose Retry-After ends past it comes back at once, naming the wait
 * it asked for; a server that takes the request and never answers costs the deadline, not
 * attempts x timeout; a deadline already past sends nothing. And a header line over libcurl's
 * limit is a backend error, not "out of memory". */
static void test_http_deadline(void **state)
{
    (void)state;
    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){0}, &sl);
    kpk_http_response r;
    char err[512], url[1024], want[256];
    snprintf(url, sizeof url, "%s%s", s_base, OPENID);
    kpk_http_request req = {.method = "GET", .url = url, .deadline = kpk_http_clock_ms() + 5000};
    kp_test_vault_faults(s_vault, "{\"scope\":\"all\",\"rate_503\":1,\"retry_after\":3600}");
    assert_int_equal(kpk_http_send(h, &req, &r, err, sizeof err), KP_OK);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.retry_after_ms, 3600000);
    assert_int_equal(sl.n, 0);
    kpk_http_response_free(&r);

    kp_test_vault_faults(s_vault, "{\"scope\":\"all\",\"latency_ms\":60000}");
    req.deadline = kpk_http_clock_ms() + 700;
    assert_int_equal(kpk_http_send(h, &req, &r, err, sizeof err), KP_ERR_TIMEOUT);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(sl.n, 0);
    snprintf(want, sizeof want,
             "%s: timed out; no time left before the request's deadline (Operation timed out "
             "after ",
             s_base);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got '%s', want '%s...'", err, want);

    req.deadline = kpk_http_clock_ms() - 1;
    assert_int_equal(kpk_http_send(h, &req, &r, err, sizeof err), KP_ERR_TIMEOUT);
    snprintf(want, sizeof want, "%s: not sent: no time left before the request's deadline", s_base);
    assert_string_equal(err, want);
    assert_int_equal(r.attempts, 0);

    kp_test_vault_faults(s_vault, "{\"scope\":\"all\",\"header_pad\":200000}");
    req.deadline = 0;
    assert_int_equal(kpk_http_send(h, &req, &r, err, sizeof err), KP_ERR_BACKEND);
    snprintf(want, sizeof want, "%s: response header too large (a line over 102400 bytes)", s_base);
    assert_string_equal(err, want);
    assert_int_equal(r.attempts, 1);
    kp_test_vault_faults(s_vault, "{}");
    kpk_http_free(h);
}

static void test_http_max_response(void **state)
{
    (void)state;
    kpk_http *h = kp_test_http((kpk_http_config){.max_response = 10}, NULL);
    kpk_http_response r;
    char err[512], want[160];
    assert_int_equal(
        kp_test_http_send(h, "GET", "/_emulator/health", NULL, NULL, 0, &r, err, sizeof err),
        KP_ERR_BACKEND);
    snprintf(want, sizeof want, "%s: response body larger than 10 bytes", s_base);
    assert_string_equal(err, want);
    assert_int_equal(r.attempts, 1);
    assert_null(r.body);
    kpk_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_http_health_keepalive, s_setup_vault),
        cmocka_unit_test_setup(test_http_wrong_ca, s_setup_vault),
        cmocka_unit_test_setup(test_http_fault_sequence, s_setup_vault),
        cmocka_unit_test_setup(test_http_retry_after_cap, s_setup_vault),
        cmocka_unit_test_setup(test_http_attempts_exhausted, s_setup_vault),
        cmocka_unit_test_setup(test_http_not_retryable_400, s_setup_vault),
        cmocka_unit_test_setup(test_http_unsafe, s_setup_vault),
        cmocka_unit_test_setup(test_http_timeout, s_setup_vault),
        cmocka_unit_test_setup(test_http_max_response, s_setup_vault),
        cmocka_unit_test_setup(test_http_deadline, s_setup_vault),
    };
    return cmocka_run_group_tests_name("kit against the emulator", tests, s_group_setup,
                                       s_group_teardown);
}
