/*
 * The provider kit without a vault: base64, hex and fingerprints, OpenSSL's error queue read
 * into text (kpk_ossl_reason), parameter descriptions (kpk_param_desc, kpk_param_names), the
 * transport's parts (body buffer, header capture, the retry rule), requests refused before any
 * network use, a refused connection, and a tiny plain-http echo server on loopback that shows
 * exactly what goes on the wire (unit.kit_local; the transport against the emulator over TLS is
 * unit.kit, tests/integration/test_kit.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>
#include <keyplane/kit/params.h>

#include "http_internal.h"
#include "kp_test_http.h"

/* ---- base64 ----------------------------------------------------------------------------- */

static void s_decodes(const char *text, const void *want, size_t wantlen)
{
    uint8_t out[64];
    size_t len = 99;
    assert_true(kpk_b64_decoded_max(strlen(text)) <= sizeof out);
    assert_true(kpk_b64_decoded_max(strlen(text)) >= wantlen);
    if (kpk_b64_decode(text, strlen(text), out, &len) != KP_OK)
        fail_msg("\"%s\" does not decode", text);
    assert_int_equal(len, wantlen);
    assert_memory_equal(out, want, wantlen);
}

static void test_b64_vectors(void **state)
{
    (void)state;
    /* RFC 4648 section 10 */
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(plain[i]);
        char out[16];
        assert_int_equal(kpk_b64_encoded_size(n), strlen(std[i]) + 1);
        assert_int_equal(kpk_b64_encode((const uint8_t *)plain[i], n, out), strlen(std[i]));
        assert_string_equal(out, std[i]);
        assert_int_equal(kpk_b64url_encode((const uint8_t *)plain[i], n, out), strlen(url[i]));
        assert_string_equal(out, url[i]);
        s_decodes(std[i], plain[i], n);
        s_decodes(url[i], plain[i], n);
    }
    /* the characters where the alphabets differ, padded and not, in both */
    static const uint8_t fb[] = {0xfb, 0xff, 0xbf, 0xfb, 0xff};
    char out[16];
    kpk_b64_encode(fb, 3, out);
    assert_string_equal(out, "+/+/");
    kpk_b64url_encode(fb, 3, out);
    assert_string_equal(out, "-_-_");
    kpk_b64_encode(fb, 5, out);
    assert_string_equal(out, "+/+/+/8=");
    kpk_b64url_encode(fb, 5, out);
    assert_string_equal(out, "-_-_-_8");
    s_decodes("+/+/+/8=", fb, 5);
    s_decodes("+/+/+/8", fb, 5);
    s_decodes("-_-_-_8=", fb, 5); /* padded base64url, as a vendor .byok file has it */
    s_decodes("-_-_-_8", fb, 5);
}

static void test_b64_roundtrip(void **state)
{
    (void)state;
    uint8_t in[300], back[300];
    char text[404];
    for (size_t n = 0; n <= 300; n++) {
        assert_int_equal(RAND_bytes(in, (int)sizeof in), 1);
        size_t len = 0;
        size_t tl = kpk_b64_encode(in, n, text);
        assert_int_equal(tl + 1, kpk_b64_encoded_size(n));
        assert_int_equal(tl % 4, 0);
        assert_int_equal(kpk_b64_decode(text, tl, back, &len), KP_OK);
        assert_int_equal(len, n);
        assert_memory_equal(back, in, n);
        tl = kpk_b64url_encode(in, n, text);
        assert_int_equal(tl, (n * 4 + 2) / 3); /* unpadded: ceil(4n/3) */
        assert_null(strpbrk(text, "+/="));
        assert_int_equal(kpk_b64_decode(text, tl, back, &len), KP_OK);
        assert_int_equal(len, n);
        assert_memory_equal(back, in, n);
        assert_true(kpk_b64_decoded_max(tl) >= n);
    }
    /* longer than one chunk of the encoder (3072 bytes) and of the decoder (256 characters) */
    size_t big = 10001;
    uint8_t *raw = malloc(big), *again = malloc(big);
    char *t = malloc(kpk_b64_encoded_size(big));
    assert_true(raw != NULL && again != NULL && t != NULL);
    assert_int_equal(RAND_bytes(raw, (int)big), 1);
    size_t tl = kpk_b64_encode(raw, big, t), len = 0;
    assert_int_equal(tl, 13336);
    char *one = malloc(kpk_b64_encoded_size(big));
    assert_non_null(one);
    assert_int_equal(EVP_EncodeBlock((unsigned char *)one, raw, (int)big), 13336);
    assert_string_equal(t, one); /* chunk by chunk = in one go */
    free(one);
    assert_int_equal(kpk_b64_decode(t, tl, again, &len), KP_OK);
    assert_int_equal(len, big);
    assert_memory_equal(again, raw, big);
    free(raw);
    free(again);
    free(t);
}

static void test_b64_rejects(void **state)
{
    (void)state;
    const char *bad[] = {
        "Zm9v!A==",  /* a character of neither alphabet */
        "Zm9v YQ==", /* whitespace */
        "Zm9vY",     /* 5 characters: one carries no whole byte */
        "Z",         /* likewise */
        "Zm9vY===",  /* three '=' */
        "+/-_",      /* both alphabets */
        "Zm+vYm_y",  /* both alphabets, apart */
        "Zm=9v",     /* '=' in the middle */
        "Zg==Zm9v",  /* padding, then more */
        "Zg=",       /* padding that does not complete a group */
        "Zm9v=",     /* likewise */
        "====",      /* padding only */
        "Zh==",      /* bits after the last byte */
        "Zm9=",      /* likewise */
    };
    uint8_t out[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = 7;
        if (kpk_b64_decode(bad[i], strlen(bad[i]), out, &len) != KP_ERR_INVALID_ARG)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(len, 0);
    }
    size_t len;
    assert_int_equal(kpk_b64_decode("Zg==", 4, out, NULL), KP_ERR_INVALID_ARG);
    assert_int_equal(kpk_b64_decode(NULL, 4, out, &len), KP_ERR_INVALID_ARG);
    assert_int_equal(kpk_b64_decode("", 0, out, &len), KP_OK);
    assert_int_equal(len, 0);
}

/* ---- the pieces of the transport -------------------------------------------------------- */

static void test_http_body_buffer(void **state)
{
    (void)state;
    kpk__http_rx rx = {.max = 20000};
    char chunk[1000];
    for (int i = 0; i < 10; i++) {
        memset(chunk, 'a' + i, sizeof chunk);
        assert_int_equal(kpk__http_on_body(chunk, 1, sizeof chunk, &rx), sizeof chunk);
    }
    assert_int_equal(rx.len, 10000);
    assert_true(rx.cap > rx.len);
    assert_int_equal(rx.body[rx.len], '\0');
    assert_int_equal(rx.body[0], 'a');
    assert_int_equal(rx.body[9999], 'j');
    assert_int_equal(rx.body[5000], 'f');
    /* past the limit the transfer stops (0 = CURLE_WRITE_ERROR) and stays stopped */
    rx.max = 10500;
    assert_int_equal(kpk__http_on_body(chunk, 1, sizeof chunk, &rx), 0);
    assert_true(rx.too_large);
    assert_int_equal(kpk__http_on_body(chunk, 1, 1, &rx), 0);
    kpk__http_rx_reset(&rx);
    assert_null(rx.body);
    assert_int_equal(rx.len, 0);
    assert_false(rx.too_large);
    assert_int_equal(rx.max, 10500);
}

static void s_header(kpk__http_rx *rx, const char *line)
{
    char buf[256];
    size_t n = strlen(line);
    memcpy(buf, line, n); /* libcurl's data is not NUL-terminated either */
    assert_int_equal(kpk__http_on_header(buf, 1, n, rx), n);
}

static void test_http_headers(void **state)
{
    (void)state;
    kpk__http_rx rx = {.max = 100};
    s_header(&rx, "HTTP/1.1 401 Unauthorized\r\n");
    s_header(&rx, "www-authenticate: Bearer authorization=\"x\"\r\n");
    s_header(&rx, "Retry-After: 7\r\n");
    s_header(&rx, "X-MS-Request-Id: first\r\n");
    /* a second response in the same attempt replaces everything */
    s_header(&rx, "HTTP/1.1 200 OK\r\n");
    assert_null(rx.www_authenticate);
    assert_null(rx.retry_after);
    assert_null(rx.request_id);
    s_header(&rx, "WWW-Authenticate: Bearer a=\"1\"\r\n");
    s_header(&rx, "WWW-AUTHENTICATE:PoP  nonce=\"2\" \r\n");
    s_header(&rx, "content-type: application/json; charset=utf-8\r\n");
    s_header(&rx, "x-amzn-RequestId: aws-42\r\n");
    s_header(&rx, "Content-Length: 100\r\n");
    s_header(&rx, "\r\n");
    assert_string_equal(rx.www_authenticate, "Bearer a=\"1\", PoP  nonce=\"2\"");
    assert_string_equal(rx.request_id, "aws-42");
    /* an announced body over the limit stops the transfer before it is read */
    char cl[] = "Content-Length: 101\r\n";
    assert_int_equal(kpk__http_on_header(cl, 1, strlen(cl), &rx), 0);
    assert_true(rx.too_large);
    kpk__http_rx_reset(&rx);
    assert_null(rx.www_authenticate);
    assert_null(rx.request_id);
}

static void test_http_retry_rule(void **state)
{
    (void)state;
    time_t now = 1445412470; /* Wed, 21 Oct 2015 07:27:50 GMT */
    assert_int_equal(kpk__http_retry_after_ms("1", now), 1000);
    assert_int_equal(kpk__http_retry_after_ms(" 120 ", now), 120000);
    assert_int_equal(kpk__http_retry_after_ms("0", now), 0);
    assert_int_equal(kpk__http_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", now), 10000);
    assert_int_equal(kpk__http_retry_after_ms("Wed, 21 Oct 2015 07:00:00 GMT", now), 0);
    assert_int_equal(kpk__http_retry_after_ms("soon", now), -1);
    assert_int_equal(kpk__http_retry_after_ms("-1", now), -1);
    assert_int_equal(kpk__http_retry_after_ms("1.5", now), -1);
    assert_int_equal(kpk__http_retry_after_ms("", now), -1);
    assert_int_equal(kpk__http_retry_after_ms(NULL, now), -1);

    for (long s = 400; s < 600; s++) {
        bool safe = s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
        assert_int_equal(kpk__http_status_retryable(s, false), safe);
        assert_int_equal(kpk__http_status_retryable(s, true), s == 429 || s == 503);
    }

    /* full jitter: uniform in [0, min(cap, base * 2^retry)], so it spreads */
    for (unsigned r = 0; r < 40; r++) {
        long ceiling = r < 6 ? 100L << r : 4000;
        if (ceiling > 4000)
            ceiling = 4000;
        long lo = ceiling, hi = 0;
        for (int i = 0; i < 200; i++) {
            long w = kpk__http_backoff_ms(100, 4000, r);
            assert_in_range(w, 0, ceiling);
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
        }
        assert_true(hi - lo > ceiling / 4);
    }
    assert_int_equal(kpk__http_backoff_ms(0, 4000, 3), 0);

    /* what a failed transfer means: its status, and whether another attempt may help */
    static const struct {
        kpk__http_outcome o;
        kp_status status;
        bool transient;
        const char *what; /* the words it gives, when checked */
    } cases[] = {
        {.o = {.rc = CURLE_COULDNT_CONNECT, .os_errno = 111}, /* refused */
         .status = KP_ERR_UNAVAILABLE},
        {.o = {.rc = CURLE_COULDNT_RESOLVE_HOST}, .status = KP_ERR_UNAVAILABLE},
        {.o = {.rc = CURLE_RECV_ERROR, .os_errno = 104},
         .status = KP_ERR_UNAVAILABLE,
         .transient = true,
         .what = "connection reset"},
        {.o = {.rc = CURLE_OPERATION_TIMEDOUT}, .status = KP_ERR_TIMEOUT, .transient = true},
        {.o = {.rc = CURLE_SSL_CONNECT_ERROR, .verify_result = 20}, .status = KP_ERR_INTEGRITY},
        /* a connection reset as soon as it was taken (libcurl: a failed connect) is transient,
         * unlike a refused one (above) */
        {.o = {.rc = CURLE_COULDNT_CONNECT, .os_errno = ECONNRESET},
         .status = KP_ERR_UNAVAILABLE,
         .transient = true},
        /* reset mid-handshake: libcurl's verify result still reads "not verified" (1) */
        {.o = {.rc = CURLE_SSL_CONNECT_ERROR, .verify_result = 1, .os_errno = ECONNRESET},
         .status = KP_ERR_UNAVAILABLE,
         .transient = true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kpk__http_failure f;
        kpk__http_classify(&cases[i].o, &f);
        if (f.status != cases[i].status || f.transient != cases[i].transient)
            fail_msg("case %zu: status %d%s", i, (int)f.status, f.transient ? ", transient" : "");
        if (cases[i].what != NULL)
            assert_string_equal(f.what, cases[i].what);
    }
}

static void test_http_bad_requests(void **state)
{
    (void)state;
    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){0}, &sl);
    kpk_http_response r;
    char err[512];
    double t0 = kpk_clock_ms();
    /* plain http only to loopback and IMDS: refused before any network use */
    assert_int_equal(
        kp_test_http_send(h, "GET", "http://192.0.2.1/", NULL, NULL, 0, &r, err, sizeof err),
        KP_ERR_INVALID_ARG);
    assert_string_equal(err, "http://192.0.2.1:80: only https:// is allowed (http:// only to "
                             "loopback, 169.254.169.254 and the container endpoints "
                             "169.254.170.2 and .23)");
    assert_true(kpk_clock_ms() - t0 < 500);
    assert_int_equal(
        kp_test_http_send(h, "GET", "ftp://127.0.0.1/x", NULL, NULL, 0, &r, err, sizeof err),
        KP_ERR_INVALID_ARG);
    assert_int_equal(kp_test_http_send(h, "GET", "https://user:pw@127.0.0.1/", NULL, NULL, 0, &r,
                                       err, sizeof err),
                     KP_ERR_INVALID_ARG);
    assert_null(strstr(err, "pw"));
    assert_int_equal(kp_test_http_send(h, "GET", "not a url", NULL, NULL, 0, &r, err, sizeof err),
                     KP_ERR_INVALID_ARG);
    assert_int_equal(
        kp_test_http_send(h, "OPTIONS", "https://127.0.0.1/", NULL, NULL, 0, &r, err, sizeof err),
        KP_ERR_INVALID_ARG);
    assert_int_equal(
        kp_test_http_send(h, "GET", "https://127.0.0.1/", NULL, "x", 0, &r, err, sizeof err),
        KP_ERR_INVALID_ARG);
    const char *split[] = {"X-A: 1\r\nX-B: 2", NULL};
    assert_int_equal(
        kp_test_http_send(h, "GET", "https://127.0.0.1/", split, NULL, 0, &r, err, sizeof err),
        KP_ERR_INVALID_ARG);
    kpk_http_stats st;
    kpk_http_stats_get(h, &st);
    assert_int_equal(st.attempts, 0);
    kpk_http_free(h);

    kpk_http *bad = NULL;
    assert_int_equal(kpk_http_new(&(kpk_http_config){.max_attempts = 11}, &bad, err, sizeof err),
                     KP_ERR_INVALID_ARG);
    assert_int_equal(
        kpk_http_new(&(kpk_http_config){.ca_bundle = "/nonexistent/ca.pem"}, &bad, err, sizeof err),
        KP_ERR_INVALID_ARG);
    assert_null(bad);
}

static void test_http_refused(void **state)
{
    (void)state;
    /* a bound socket that does not listen: its port refuses connections and stays ours */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char url[64], want[96], err[512];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/keys", ntohs(a.sin_port));
    snprintf(want, sizeof want, "https://127.0.0.1:%u: connection refused (", ntohs(a.sin_port));

    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){0}, &sl);
    kpk_http_response r;
    double t0 = kpk_clock_ms();
    assert_int_equal(kp_test_http_send(h, "GET", url, NULL, NULL, 0, &r, err, sizeof err),
                     KP_ERR_UNAVAILABLE);
    assert_true(kpk_clock_ms() - t0 < 1000);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("err: %s", err);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(sl.n, 0);
    kpk_http_stats st;
    kpk_http_stats_get(h, &st);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.retries, 0);
    kpk_http_free(h);
    close(fd);
}

/* ---- on the wire: a plain-http echo server on loopback ------------------------------------ */

typedef struct s_echo {
    int fd;
    unsigned short port;
    pthread_t thread;
} s_echo;

/* Answers one connection with its request (head and body) as the response body. */
static void *s_echo_main(void *arg)
{
    s_echo *e = arg;
    int c = accept(e->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char req[8192];
    size_t n = 0;
    char *end = NULL;
    while (n < sizeof req - 1 && end == NULL) {
        ssize_t got = read(c, req + n, sizeof req - 1 - n);
        if (got <= 0)
            break;
        n += (size_t)got;
        req[n] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (end != NULL) {
        const char *cl = strstr(req, "Content-Length: ");
        size_t body = cl != NULL && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
        size_t want = (size_t)(end + 4 - req) + body;
        while (n < want && n < sizeof req - 1) {
            ssize_t got = read(c, req + n, want - n);
            if (got <= 0)
                break;
            n += (size_t)got;
        }
    }
    char head[128];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      n);
    if (write(c, head, (size_t)hl) != hl || write(c, req, n) != (ssize_t)n)
        perror("echo");
    close(c);
    return NULL;
}

static void s_echo_start(s_echo *e)
{
    e->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(e->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(e->fd, 4), 0);
    assert_int_equal(getsockname(e->fd, (struct sockaddr *)&a, &alen), 0);
    e->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&e->thread, NULL, s_echo_main, e), 0);
}

/* Sends one request to a fresh echo server; returns what the server received (caller frees). */
static char *s_echo_request(const char *method, const char *const *headers, const char *body)
{
    s_echo e;
    s_echo_start(&e);
    kpk_http *h = kp_test_http((kpk_http_config){0}, NULL);
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo?x=1", e.port);
    kpk_http_response r;
    assert_int_equal(kp_test_http_send(h, method, url, headers, body, 0, &r, err, sizeof err),
                     KP_OK);
    assert_int_equal(r.status, 200);
    pthread_join(e.thread, NULL);
    close(e.fd);
    char *got = strdup((const char *)r.body);
    kpk_http_response_free(&r);
    kpk_http_free(h);
    return got;
}

static void test_http_wire(void **state)
{
    (void)state;
    const char *hdrs[] = {"Authorization: Bearer abc", "X-Test: 1", NULL};
    char *w = s_echo_request("POST", hdrs, NULL);
    assert_non_null(strstr(w, "POST /echo?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(w, "\r\nContent-Length: 0\r\n"));
    assert_non_null(strstr(w, "\r\nAuthorization: Bearer abc\r\n"));
    assert_non_null(strstr(w, "\r\nX-Test: 1\r\n"));
    assert_non_null(strstr(w, "\r\nUser-Agent: keyplane-kit/1\r\n"));
    assert_null(strstr(w, "Expect:"));
    assert_null(strstr(w, "Content-Type:"));
    free(w);

    const char *json[] = {"Content-Type: application/json", NULL};
    w = s_echo_request("PATCH", json, "{\"a\":1}");
    assert_non_null(strstr(w, "PATCH /echo?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(w, "\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(w, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(w, "\r\n\r\n{\"a\":1}"));
    assert_null(strstr(w, "Expect:"));
    free(w);

    w = s_echo_request("PUT", NULL, NULL);
    assert_non_null(strstr(w, "PUT /echo?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(w, "\r\nContent-Length: 0\r\n"));
    free(w);

    w = s_echo_request("DELETE", NULL, NULL);
    assert_non_null(strstr(w, "DELETE /echo?x=1 HTTP/1.1\r\n"));
    assert_null(strstr(w, "Content-Length"));
    free(w);

    w = s_echo_request("GET", NULL, NULL);
    assert_non_null(strstr(w, "GET /echo?x=1 HTTP/1.1\r\n"));
    assert_null(strstr(w, "Content-Length"));
    free(w);
}

/* ---- an UNSAFE request that never went out is repeated ----------------------------------- */

typedef struct s_reset {
    int fd;
    unsigned short port;
    unsigned accepted;
    pthread_t thread;
} s_reset;

/* Accepts three connections and resets each at once (SO_LINGER 0), inside the TLS handshake,
 * before any request could be written. */
static void *s_reset_main(void *arg)
{
    s_reset *r = arg;
    for (; r->accepted < 3; r->accepted++) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        struct linger lg = {1, 0};
        setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c);
    }
    return NULL;
}

static void test_http_unsafe_not_sent(void **state)
{
    (void)state;
    s_reset rs = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(rs.fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(rs.fd, 4), 0);
    assert_int_equal(getsockname(rs.fd, (struct sockaddr *)&a, &alen), 0);
    rs.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&rs.thread, NULL, s_reset_main, &rs), 0);

    kp_test_sleeps sl = {0};
    kpk_http *h = kp_test_http((kpk_http_config){.max_attempts = 3}, &sl);
    char url[64], err[512];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/keys/k/create", rs.port);
    kpk_http_response r;
    kp_status st =
        kp_test_http_send(h, "POST", url, NULL, "{}", KPK_HTTP_UNSAFE, &r, err, sizeof err);
    shutdown(rs.fd, SHUT_RDWR); /* wakes the server's accept should fewer attempts come */
    pthread_join(rs.thread, NULL);
    close(rs.fd);
    if (st != KP_ERR_UNAVAILABLE || r.attempts != 3)
        fail_msg("status %d after %u attempts: %s", (int)st, r.attempts, err);
    /* nothing reached the server, so creating requests are tried again like any other */
    assert_int_equal(r.attempts, 3);
    assert_int_equal(rs.accepted, 3);
    assert_int_equal(sl.n, 2);
    if (strstr(err, "not repeated") != NULL || strstr(err, "reset") == NULL)
        fail_msg("err: %s", err);
    kpk_http_free(h);
}

/* The kit's codec: hex both ways, fingerprints as the ABI defines them, the name rule. */
static void test_codec_hex_fpr_names(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x00, 0x9f, 0xa0, 0xff};
    char hex[9];
    kpk_hex_encode(bytes, sizeof(bytes), hex);
    assert_string_equal(hex, "009fa0ff");
    uint8_t back[4];
    assert_int_equal(kpk_hex_decode("009FA0ff", back, sizeof(back)), KP_OK);
    assert_memory_equal(back, bytes, sizeof(bytes));
    assert_int_equal(kpk_hex_decode("009fa0f", back, sizeof(back)), KP_ERR_INVALID_ARG);
    assert_int_equal(kpk_hex_decode("009fa0fg", back, sizeof(back)), KP_ERR_INVALID_ARG);
    /* SHA-256 of "abc" (FIPS 180-2 B.1), as the fingerprint of a 3-byte "SPKI" */
    char fpr[KPK_FPR_CHARS + 1];
    assert_int_equal(kpk_fpr_spki((const uint8_t *)"abc", 3, fpr), KP_OK);
    assert_string_equal(fpr, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(kpk_fpr_valid(fpr));
    assert_int_equal(kpk_fpr_spki(NULL, 0, fpr), KP_ERR_INVALID_ARG);
    assert_false(kpk_fpr_valid("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    assert_false(kpk_fpr_valid("ba7816bf"));
    assert_false(
        kpk_fpr_valid("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"));
    assert_false(kpk_fpr_valid(NULL));
    assert_int_equal(kpk_fpr_pkey(NULL, fpr), KP_ERR_INVALID_ARG);
    assert_true(kpk_key_name_valid("tde-demo.v1_A"));
    assert_false(kpk_key_name_valid(".hidden"));
    assert_false(kpk_key_name_valid("a/b"));
    assert_false(kpk_key_name_valid(""));
    char longname[130];
    memset(longname, 'a', 128);
    longname[128] = '\0';
    assert_false(kpk_key_name_valid(longname));
    longname[127] = '\0';
    assert_true(kpk_key_name_valid(longname));
}

/* OpenSSL's error queue read in one place: the last queued reason, the queue emptied after. */
static void test_ossl_reason(void **state)
{
    (void)state;
    char buf[KPK_OSSL_REASON_MAX];
    /* An empty queue: "". */
    ERR_clear_error();
    strcpy(buf, "stale");
    assert_ptr_equal(kpk_ossl_reason(buf, sizeof(buf)), buf);
    assert_string_equal(buf, "");
    /* A real failure: its reason, as OpenSSL words it; the queue is empty afterwards. */
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01};
    const unsigned char *p = junk;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)sizeof(junk));
    assert_null(pkey);
    unsigned long e = ERR_peek_last_error();
    assert_int_not_equal(e, 0);
    const char *want = ERR_reason_error_string(e);
    assert_non_null(want);
    assert_true(strlen(want) > 0);
    char copy[KPK_OSSL_REASON_MAX];
    snprintf(copy, sizeof(copy), "%s", want);
    assert_string_equal(kpk_ossl_reason(buf, sizeof(buf)), copy);
    assert_int_equal(ERR_peek_error(), 0);
    assert_string_equal(kpk_ossl_reason(buf, sizeof(buf)), "");
    /* The last of several queued errors is the one named. */
    ERR_raise(ERR_LIB_EVP, EVP_R_BAD_DECRYPT);
    ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
    assert_string_equal(kpk_ossl_reason(buf, sizeof(buf)), "no start line");
    assert_int_equal(ERR_peek_error(), 0);
    /* Cut to fit cap (with its NUL); cap 0 writes nothing but still empties the queue. */
    ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
    char small[5];
    assert_string_equal(kpk_ossl_reason(small, sizeof(small)), "no s");
    assert_int_equal(ERR_peek_error(), 0);
    ERR_raise(ERR_LIB_EVP, EVP_R_BAD_DECRYPT);
    strcpy(small, "keep");
    kpk_ossl_reason(small, 0);
    assert_string_equal(small, "keep");
    assert_int_equal(ERR_peek_error(), 0);
}

/* A plugin's parameter descriptions: looked up by name, listed for a refusal message. */
static void test_param_desc_names(void **state)
{
    (void)state;
    static const kp_param_desc descs[] = {
        {.name = "path", .type = KP_PARAM_PATH, .flags = KP_PARAM_REQUIRED, .help = "directory"},
        {.name = "passphrase", .type = KP_PARAM_SECRET, .help = "env: or file:"},
        {.name = "kdf_iterations", .type = KP_PARAM_INT, .min = 1000, .max = 10000000},
        {.name = NULL},
    };
    static const kp_param_desc none[] = {{.name = NULL}};
    const kp_param_desc *d = kpk_param_desc(descs, "passphrase");
    assert_ptr_equal(d, &descs[1]);
    assert_ptr_equal(kpk_param_desc(descs, "kdf_iterations"), &descs[2]);
    assert_null(kpk_param_desc(descs, "pass"));       /* no prefix match */
    assert_null(kpk_param_desc(descs, "PATH"));       /* names are exact */
    assert_null(kpk_param_desc(descs, "path_extra")); /* nor a longer name */
    assert_null(kpk_param_desc(none, "path"));
    assert_null(kpk_param_desc(NULL, "path"));
    char buf[64];
    kpk_param_names(descs, buf, sizeof(buf));
    assert_string_equal(buf, "path, passphrase, kdf_iterations");
    kpk_param_names(none, buf, sizeof(buf));
    assert_string_equal(buf, "none");
    kpk_param_names(NULL, buf, sizeof(buf));
    assert_string_equal(buf, "none");
    /* A buffer too small: whole names, then "..." for the rest, never a cut name (one that
     * does not exist); always terminated. */
    char part[24];
    kpk_param_names(descs, part, sizeof(part));
    assert_string_equal(part, "path, passphrase, ...");
    char small[8];
    memset(small, 'x', sizeof(small));
    kpk_param_names(descs, small, sizeof(small));
    assert_string_equal(small, "...");
    char three[3];
    kpk_param_names(descs, three, sizeof(three));
    assert_string_equal(three, "");
}

/* The one HTTP status map and the endpoint URL rule of the kit. */
static void test_http_status_and_url(void **state)
{
    (void)state;
    assert_int_equal(kpk_http_status(401), KP_ERR_AUTH);
    assert_int_equal(kpk_http_status(403), KP_ERR_PERMISSION);
    assert_int_equal(kpk_http_status(404), KP_ERR_NOT_FOUND);
    assert_int_equal(kpk_http_status(408), KP_ERR_TIMEOUT);
    assert_int_equal(kpk_http_status(409), KP_ERR_EXISTS);
    assert_int_equal(kpk_http_status(412), KP_ERR_CONFLICT);
    assert_int_equal(kpk_http_status(429), KP_ERR_THROTTLED);
    assert_int_equal(kpk_http_status(503), KP_ERR_UNAVAILABLE);
    assert_int_equal(kpk_http_status(400), KP_ERR_BACKEND);
    assert_int_equal(kpk_http_status(302), KP_ERR_BACKEND);
    kpk_http_url u;
    char err[160];
    assert_int_equal(
        kpk_http_url_parse("u", "https://Vault1.Vault.Azure.NET/", 0, &u, err, sizeof(err)), KP_OK);
    assert_string_equal(u.base, "https://Vault1.Vault.Azure.NET");
    assert_string_equal(u.host, "vault1.vault.azure.net");
    assert_int_equal(u.port, 0);
    assert_int_equal(u.https, 1);
    assert_int_equal(kpk_http_url_parse("u", "https://127.0.0.1:8443", 0, &u, err, sizeof(err)),
                     KP_OK);
    assert_int_equal(u.port, 8443);
    assert_int_equal(kpk_http_url_parse("u", "http://169.254.169.254", 1, &u, err, sizeof(err)),
                     KP_OK);
    assert_int_equal(u.https, 0);
    static const char *const bad[] = {"http://vault",
                                      "https://",
                                      "https://v/path",
                                      "https://v?q",
                                      "https://user@v",
                                      "https://v:0",
                                      "https://v:65536",
                                      "https://v:8x",
                                      "https://v_a",
                                      "ftp://v",
                                      NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        err[0] = '\0';
        if (kpk_http_url_parse("vault_url", bad[i], 0, &u, err, sizeof(err)) != KP_ERR_CONFIG ||
            strncmp(err, "vault_url ", 10) != 0)
            fail_msg("%s: accepted or no reason (%s)", bad[i], err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_vectors),         cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_b64_rejects),         cmocka_unit_test(test_http_body_buffer),
        cmocka_unit_test(test_http_headers),        cmocka_unit_test(test_http_retry_rule),
        cmocka_unit_test(test_http_bad_requests),   cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_wire),           cmocka_unit_test(test_http_unsafe_not_sent),
        cmocka_unit_test(test_codec_hex_fpr_names), cmocka_unit_test(test_http_status_and_url),
        cmocka_unit_test(test_ossl_reason),         cmocka_unit_test(test_param_desc_names),
    };
    return cmocka_run_group_tests_name("kit without a vault", tests, NULL, NULL);
}
