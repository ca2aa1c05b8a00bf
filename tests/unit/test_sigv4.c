/*
 * The kit's AWS Signature Version 4 signer (providers/kit/src/sigv4.c, sigv4_uri.c; unit.sigv4):
 * AWS's published test suite (tests/fixtures/sigv4-test-suite, whose README says where it comes
 * from and how its cases are read), each case's canonical request, string to sign and
 * Authorization compared byte for byte; then the encoder, the query builder and canonicaliser,
 * S3's rules, the session token, repeated and SSE-KMS headers, and every refusal of sigv4.h's
 * contract. Last, a micro-benchmark of one S3 PUT's signature (printed, never asserted).
 * botocore's signer checks the same code on random requests: unit.sigv4_botocore.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/sigv4.h>

#include "kp_test.h"

#define S_SUITE KP_TEST_SOURCE_DIR "/tests/fixtures/sigv4-test-suite/"
#define S_AKID "AKIDEXAMPLE"
#define S_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
/* the AWS SDK for Rust's test credentials (aws-credential-types, Credentials::for_tests) */
#define S_RUST_AKID "ANOTREAL"
#define S_RUST_SECRET "notrealrnrELgWzOk3IfjzDKtFBhDby"
#define S_WHEN 1440938160 /* 20150830T123600Z */
#define S_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S_MAX_HEADERS 32

static const kpk_sigv4_creds s_creds = {S_AKID, S_SECRET, sizeof(S_SECRET) - 1, NULL};

/* ---- reading the suite ------------------------------------------------------------------ */

/* The file's text (NUL-terminated), or NULL when it does not exist. */
static char *s_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0, got;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* An expected file, without the trailing newline the SDK's repository adds to some. */
static char *s_expected(const char *dir, const char *base, const char *ext)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s%s/%s.%s", S_SUITE, dir, base, ext);
    char *t = s_read(path);
    for (size_t n = t != NULL ? strlen(t) : 0; n > 0 && t[n - 1] == '\n'; n--)
        t[n - 1] = '\0';
    return t;
}

static time_t s_parse_time(const char *s)
{
    struct tm tm = {0};
    assert_int_equal(sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec),
                     6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

/* A .req: the request line, the headers (Host and the two the signer adds taken out), the body. */
typedef struct s_case {
    char *text;
    char *lines[S_MAX_HEADERS]; /* header lines made here ("Name:value" of a continuation) */
    size_t nmade;
    const char *headers[S_MAX_HEADERS + 1];
    size_t nheaders;
    const char *token;
    kpk_sigv4_request req;
} s_case;

static char *s_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static void s_parse_req(const char *dir, const char *base, s_case *c)
{
    memset(c, 0, sizeof(*c));
    char path[1024];
    snprintf(path, sizeof(path), "%s%s/%s.req", S_SUITE, dir, base);
    c->text = s_read(path);
    if (c->text == NULL)
        fail_msg("%s: cannot read", path);
    char *body = strstr(c->text, "\n\n");
    if (body != NULL) {
        *body = '\0';
        body += 2;
        c->req.body = (const uint8_t *)body;
        c->req.body_len = strlen(body);
    }
    /* request line: METHOD SP target SP HTTP/1.1, the target may hold a space (get-space) */
    char *line = c->text, *next = strchr(line, '\n');
    if (next != NULL)
        *next++ = '\0';
    char *sp = strchr(line, ' '), *last = strrchr(line, ' ');
    assert_true(sp != NULL && last != NULL && last > sp);
    *sp = *last = '\0';
    c->req.method = line;
    char *target = sp + 1, *q = strchr(target, '?');
    if (q != NULL)
        *q++ = '\0';
    c->req.path = target;
    c->req.query = q;
    const char *prev = NULL;
    size_t prev_len = 0;
    for (line = next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        assert_true(c->nheaders < S_MAX_HEADERS && c->nmade < S_MAX_HEADERS);
        if (line[0] == ' ' || line[0] == '\t') {
            /* a continuation: another value of the header before it */
            assert_non_null(prev);
            char *made = malloc(prev_len + strlen(line) + 2);
            assert_non_null(made);
            sprintf(made, "%.*s:%s", (int)prev_len, prev, s_trim(line));
            c->lines[c->nmade++] = made;
            c->headers[c->nheaders++] = made;
            continue;
        }
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        prev = line;
        prev_len = (size_t)(colon - line);
        if (strncasecmp(line, "Host:", 5) == 0)
            c->req.host = s_trim(colon + 1);
        else if (strncasecmp(line, "X-Amz-Security-Token:", 21) == 0)
            c->token = s_trim(colon + 1);
        else if (strncasecmp(line, "X-Amz-Date:", 11) != 0)
            c->headers[c->nheaders++] = line;
    }
    c->req.headers = c->headers;
    c->req.region = "us-east-1";
    c->req.service = "service";
}

static void s_case_free(s_case *c)
{
    for (size_t i = 0; i < c->nmade; i++)
        free(c->lines[i]);
    free(c->text);
}

/* region and service from a credential scope "DATE/REGION/SERVICE/aws4_request" */
static void s_scope(const char *scope, char *region, char *service, size_t cap)
{
    char fmt[64];
    snprintf(fmt, sizeof(fmt), "%%*8[0-9]/%%%zu[a-z0-9-]/%%%zu[a-z0-9-]/aws4_request", cap - 1,
             cap - 1);
    assert_int_equal(sscanf(scope, fmt, region, service), 2);
}

static int s_creqs, s_stss, s_authzs, s_sreqs;

static void s_check_creq(const char *dir, const char *base, s_case *c)
{
    char *want = s_expected(dir, base, "creq");
    if (want == NULL || strcmp(base, "post-x-www-form-urlencoded") == 0) {
        free(want);
        return; /* the README says why that one's .creq is not compared */
    }
    const char *date = strstr(want, "\nx-amz-date:");
    assert_non_null(date);
    c->req.when = s_parse_time(date + 12);
    kpk_sigv4_creds creds = s_creds;
    creds.session_token = c->token;
    char *creq = NULL, *sts = NULL;
    assert_int_equal(kpk_sigv4_debug(&c->req, &creds, &creq, &sts), KP_OK);
    if (strcmp(creq, want) != 0)
        fail_msg("%s: canonical request\n--- want\n%s\n--- got\n%s", base, want, creq);
    s_creqs++;
    free(creq);
    free(sts);
    free(want);
}

static void s_check_sts_authz(const char *dir, const char *base, s_case *c)
{
    char *want = s_expected(dir, base, "sts"), *authz = s_expected(dir, base, "authz");
    if (want == NULL) {
        assert_null(authz);
        return;
    }
    char region[64], service[64];
    const char *l2 = strchr(want, '\n');
    assert_non_null(l2);
    c->req.when = s_parse_time(l2 + 1);
    s_scope(strchr(l2 + 1, '\n') + 1, region, service, sizeof(region));
    c->req.region = region;
    c->req.service = service;
    kpk_sigv4_creds creds = s_creds;
    creds.session_token = c->token;
    char *creq = NULL, *sts = NULL;
    assert_int_equal(kpk_sigv4_debug(&c->req, &creds, &creq, &sts), KP_OK);
    if (strcmp(sts, want) != 0)
        fail_msg("%s: string to sign\n--- want\n%s\n--- got\n%s", base, want, sts);
    s_stss++;
    if (authz != NULL) {
        kpk_sigv4_out out;
        char err[256];
        assert_int_equal(kpk_sigv4_sign(&c->req, &creds, &out, err, sizeof(err)), KP_OK);
        if (strcmp(out.authorization + strlen("Authorization: "), authz) != 0)
            fail_msg("%s: Authorization\n--- want\n%s\n--- got\n%s", base, authz,
                     out.authorization);
        s_authzs++;
        kpk_sigv4_out_free(&out);
    }
    c->req.region = "us-east-1";
    c->req.service = "service";
    free(creq);
    free(sts);
    free(authz);
    free(want);
}

static void s_check_sreq(const char *dir, const char *base, s_case *c)
{
    char *sreq = s_expected(dir, base, "sreq");
    if (sreq == NULL)
        return;
    char *auth = strstr(sreq, "\nAuthorization:"), *date = strcasestr(sreq, "\nX-Amz-Date:");
    assert_true(auth != NULL && date != NULL);
    auth = s_trim(auth + 15);
    auth[strcspn(auth, "\n")] = '\0';
    date = s_trim(date + 12);
    char when[17];
    snprintf(when, sizeof(when), "%.16s", date);
    const char *cred = strstr(auth, "Credential=");
    assert_non_null(cred);
    cred += 11;
    kpk_sigv4_creds creds = s_creds;
    if (strncmp(cred, S_RUST_AKID "/", 9) == 0)
        creds = (kpk_sigv4_creds){S_RUST_AKID, S_RUST_SECRET, sizeof(S_RUST_SECRET) - 1, NULL};
    else
        assert_memory_equal(cred, S_AKID "/", 12);
    creds.session_token = c->token;
    char region[64], service[64];
    s_scope(strchr(cred, '/') + 1, region, service, sizeof(region));
    c->req.region = region;
    c->req.service = service;
    c->req.when = s_parse_time(when);
    kpk_sigv4_out out;
    char err[256], want_date[40];
    assert_int_equal(kpk_sigv4_sign(&c->req, &creds, &out, err, sizeof(err)), KP_OK);
    if (strcmp(out.authorization + strlen("Authorization: "), auth) != 0)
        fail_msg("%s: signed request's Authorization\n--- want\n%s\n--- got\n%s", base, auth,
                 out.authorization);
    snprintf(want_date, sizeof(want_date), "X-Amz-Date: %s", when);
    assert_string_equal(out.amz_date, want_date);
    s_sreqs++;
    kpk_sigv4_out_free(&out);
    c->req.region = "us-east-1";
    c->req.service = "service";
    free(sreq);
}

static void test_aws_suite(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "double-encode-path",
        "double-url-encode",
        "get-header-key-duplicate",
        "get-header-value-multiline",
        "get-header-value-order",
        "get-header-value-trim",
        "get-unreserved",
        "get-utf8",
        "get-vanilla",
        "get-vanilla-empty-query-key",
        "get-vanilla-query",
        "get-vanilla-query-order-key",
        "get-vanilla-query-order-key-case",
        "get-vanilla-query-order-value",
        "get-vanilla-query-unreserved",
        "get-vanilla-utf8-query",
        "normalize-path/get-relative",
        "normalize-path/get-relative-relative",
        "normalize-path/get-slash",
        "normalize-path/get-slash-dot-slash",
        "normalize-path/get-slash-pointless-dot",
        "normalize-path/get-slashes",
        "normalize-path/get-space",
        "post-header-key-case",
        "post-header-key-sort",
        "post-header-value-case",
        "post-sts-token/post-sts-header-after",
        "post-sts-token/post-sts-header-before",
        "post-vanilla",
        "post-vanilla-empty-query-value",
        "post-vanilla-query",
        "post-x-www-form-urlencoded",
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        const char *base = strrchr(cases[i], '/');
        base = base != NULL ? base + 1 : cases[i];
        s_case c;
        s_parse_req(cases[i], base, &c);
        s_check_creq(cases[i], base, &c);
        s_check_sts_authz(cases[i], base, &c);
        s_check_sreq(cases[i], base, &c);
        s_case_free(&c);
    }
    printf("AWS SigV4 test suite: %zu cases; %d canonical requests, %d strings to sign, %d "
           "Authorization values, %d signed requests equal\n",
           n, s_creqs, s_stss, s_authzs, s_sreqs);
    /* every case but one has its .creq compared, all but double-encode-path a .sts and .authz,
     * and all a .sreq */
    assert_int_equal(s_creqs, (int)n - 1);
    assert_int_equal(s_stss, (int)n - 1);
    assert_int_equal(s_authzs, (int)n - 1);
    assert_int_equal(s_sreqs, (int)n);
}

/* ---- the encoder and the query ---------------------------------------------------------- */

static void test_uri_encode(void **state)
{
    (void)state;
    char out[128];
    /* every byte alone: the unreserved kept, '/' kept only for keep_slash, the rest %XX */
    for (int b = 0; b < 256; b++) {
        char in = (char)b, want[4];
        int keep = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
                   b == '-' || b == '_' || b == '.' || b == '~';
        for (int slash = 0; slash < 2; slash++) {
            if (keep || (slash && b == '/'))
                snprintf(want, sizeof(want), "%c", b);
            else
                snprintf(want, sizeof(want), "%%%02X", b);
            assert_int_equal(kpk_aws_uri_encode(&in, 1, slash, out, sizeof(out)), strlen(want));
            assert_string_equal(out, want);
        }
    }
    static const char reserved[] = ":/?#[]@!$&'()*+,;= %\"<>\\^`{|}";
    static const char reserved_enc[] = "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B"
                                       "%3D%20%25%22%3C%3E%5C%5E%60%7B%7C%7D";
    assert_int_equal(kpk_aws_uri_encode(reserved, strlen(reserved), 0, out, sizeof(out)),
                     strlen(reserved_enc));
    assert_string_equal(out, reserved_enc);
    /* Unicode: the UTF-8 bytes, upper-case hex */
    const char *u = "/caf\xc3\xa9/\xe1\x88\xb4 \xf0\x9f\x94\x91";
    const char *u_slash = "/caf%C3%A9/%E1%88%B4%20%F0%9F%94%91";
    const char *u_all = "%2Fcaf%C3%A9%2F%E1%88%B4%20%F0%9F%94%91";
    assert_int_equal(kpk_aws_uri_encode(u, strlen(u), 1, out, sizeof(out)), strlen(u_slash));
    assert_string_equal(out, u_slash);
    assert_int_equal(kpk_aws_uri_encode(u, strlen(u), 0, out, sizeof(out)), strlen(u_all));
    assert_string_equal(out, u_all);
    /* only len bytes are read: a NUL inside is encoded too */
    assert_int_equal(kpk_aws_uri_encode("a\0b", 3, 0, out, sizeof(out)), 5);
    assert_string_equal(out, "a%00b");
    /* too small: exactly the length with its NUL fits, one byte less does not */
    const char *k = "a b";
    assert_int_equal(kpk_aws_uri_encode(k, 3, 0, out, 6), 5);
    assert_string_equal(out, "a%20b");
    memset(out, 'x', sizeof(out));
    assert_int_equal(kpk_aws_uri_encode(k, 3, 0, out, 5), (size_t)-1);
    assert_string_equal(out, "");
    memset(out, 'x', sizeof(out));
    assert_int_equal(kpk_aws_uri_encode(k, 3, 0, out, 2), (size_t)-1); /* cut inside %XX */
    assert_string_equal(out, "");
    assert_int_equal(kpk_aws_uri_encode(k, 3, 0, out, 0), (size_t)-1);
    assert_int_equal(kpk_aws_uri_encode(k, 3, 0, NULL, 8), (size_t)-1);
    assert_int_equal(kpk_aws_uri_encode(NULL, 0, 0, out, 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(kpk_aws_uri_encode(NULL, 1, 0, out, sizeof(out)), (size_t)-1);
}

/* The canonical query the signer makes of query (the third line of the canonical request). */
static kp_status s_canon_query(const char *query, char *line, size_t cap)
{
    kpk_sigv4_request req = {.method = "GET",
                             .host = "h",
                             .path = "/",
                             .query = query,
                             .region = "us-east-1",
                             .service = "service",
                             .when = S_WHEN};
    char *creq = NULL, *sts = NULL;
    kp_status st = kpk_sigv4_debug(&req, NULL, &creq, &sts);
    if (st == KP_OK) {
        const char *l3 = strchr(strchr(creq, '\n') + 1, '\n') + 1;
        snprintf(line, cap, "%.*s", (int)strcspn(l3, "\n"), l3);
    } else {
        assert_null(creq);
        assert_null(sts);
    }
    free(creq);
    free(sts);
    return st;
}

static void s_query_is(const char *query, const char *want)
{
    char got[512];
    assert_int_equal(s_canon_query(query, got, sizeof(got)), KP_OK);
    if (strcmp(got, want) != 0)
        fail_msg("query \"%s\": want \"%s\", got \"%s\"", query, want, got);
}

static void test_query_build(void **state)
{
    (void)state;
    char *q = NULL;
    /* sorted by encoded name, then encoded value; not as "name=value" strings: "a" before
     * "a-b" although "a-b=" sorts before "a=" */
    const kpk_query_param sorted[] = {{"b", "2"}, {"a-b", "x"}, {"a", "2"},
                                      {"a", "1"}, {"A", "z"},   {"uploads", NULL}};
    assert_int_equal(kpk_sigv4_query(sorted, 6, &q), KP_OK);
    assert_string_equal(q, "A=z&a=1&a=2&a-b=x&b=2&uploads=");
    s_query_is(q, q); /* what kpk_sigv4_query makes is canonical already */
    free(q);
    /* '/', '=', '&', '+', space, '%', '~' and Unicode in names and values */
    const kpk_query_param odd[] = {{"prefix", "a/b=c&d"},
                                   {"key name", "x+y z%"},
                                   {"t~", "~\xc3\xa9"},
                                   {"versioning", NULL},
                                   {"empty", ""}};
    assert_int_equal(kpk_sigv4_query(odd, 5, &q), KP_OK);
    assert_string_equal(q, "empty=&key%20name=x%2By%20z%25&prefix=a%2Fb%3Dc%26d&t~=~%C3%A9&"
                           "versioning=");
    s_query_is(q, q);
    free(q);
    assert_int_equal(kpk_sigv4_query(NULL, 0, &q), KP_OK);
    assert_string_equal(q, "");
    free(q);
    const kpk_query_param noname[] = {{NULL, "v"}};
    assert_int_equal(kpk_sigv4_query(noname, 1, &q), KP_ERR_INVALID_ARG);
    assert_null(q);
    assert_int_equal(kpk_sigv4_query(NULL, 1, &q), KP_ERR_INVALID_ARG);
    assert_int_equal(kpk_sigv4_query(sorted, 1, NULL), KP_ERR_INVALID_ARG);
}

static void test_query_canonical(void **state)
{
    (void)state;
    s_query_is(NULL, "");
    s_query_is("", "");
    s_query_is("b=2&a=1", "a=1&b=2");
    s_query_is("acl", "acl=");
    s_query_is("uploads&prefix=", "prefix=&uploads=");
    s_query_is("a=%2f&b=%7e&c=%41", "a=%2F&b=~&c=A"); /* decoded, encoded again */
    s_query_is("a=b+c", "a=b%2Bc");                   /* '+' is a plus, not a space */
    s_query_is("a=b=c", "a=b%3Dc");
    s_query_is("a=1&&b=2&", "a=1&b=2"); /* empty parts dropped */
    s_query_is("=x", "=x");
    s_query_is("%00=1", "%00=1");
    s_query_is("k=a b/c*d", "k=a%20b%2Fc%2Ad");
    s_query_is("\xe1\x88\xb4=bar", "%E1%88%B4=bar");
    s_query_is("Param1=value2&Param1=Value1&param0=x", "Param1=Value1&Param1=value2&param0=x");
    char got[64];
    static const char *const bad[] = {"a=%zz", "a=%4", "a=%", "%g1=b", "a=b\r\nc", "a=\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(s_canon_query(bad[i], got, sizeof(got)), KP_ERR_INVALID_ARG);
}

/* ---- S3, the session token, repeated and SSE-KMS headers -------------------------------- */

#define S_HELLO_SHA256 "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
/* What botocore 1.29's S3SigV4Auth makes of s_put() (request.context["timestamp"] set to
 * S_WHEN), without and with test_session_token's token. */
#define S_BOTO_PUT_SIGNATURE "1f66b8c2d531091cf4c9fe6c14fe3dbe44b49b5a171a01c817475b61f9987c0e"
#define S_BOTO_TOKEN_SIGNATURE "6c6c4d386c578dda158c227de8803065cdcd3545e31dd464ace2f43950d1cfb7"

/* An SSE-KMS PUT of "hello" to S3, its key-id header before the algorithm's (curl 7.88.1 sorts
 * "name:value" strings and signs these two the wrong way round). */
static const char *const s_put_headers[] = {
    "Content-Type: text/plain", "x-amz-server-side-encryption-aws-kms-key-id: alias/k",
    "X-Amz-Server-Side-Encryption: aws:kms", "X-Amz-Meta-Owner:  keyplane \t team ", NULL};

static kpk_sigv4_request s_put(void)
{
    return (kpk_sigv4_request){.method = "PUT",
                               .host = "s3.us-east-1.amazonaws.com",
                               .path = "/bucket/a//b/./c/../d%20e",
                               .region = "us-east-1",
                               .service = "s3",
                               .headers = s_put_headers,
                               .body = (const uint8_t *)"hello",
                               .body_len = 5,
                               .s3 = 1,
                               .when = S_WHEN};
}

/* noinline: inlined, GCC 12 takes the result for a pointer to the local it was returned in */
__attribute__((noinline)) static char *s_creq(const kpk_sigv4_request *req,
                                              const kpk_sigv4_creds *creds)
{
    char *creq = NULL, *sts = NULL;
    assert_int_equal(kpk_sigv4_debug(req, creds, &creq, &sts), KP_OK);
    free(sts);
    return creq;
}

/* out.signature is the HMAC chain of sigv4.h over the string to sign, recomputed here with
 * OpenSSL's one-shot HMAC */
static void s_signature_matches(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds,
                                const kpk_sigv4_out *out)
{
    char *creq = NULL, *sts = NULL, date[9], hex[65];
    assert_int_equal(kpk_sigv4_debug(req, creds, &creq, &sts), KP_OK);
    snprintf(date, sizeof(date), "%.8s", strchr(sts, '\n') + 1);
    unsigned char k[32];
    unsigned int klen = 0;
    char k0[128];
    snprintf(k0, sizeof(k0), "AWS4%.*s", (int)creds->secret_len, creds->secret_access_key);
    const char *parts[] = {date, req->region, req->service, "aws4_request", sts};
    HMAC(EVP_sha256(), k0, (int)strlen(k0), (const unsigned char *)parts[0], strlen(parts[0]), k,
         &klen);
    for (size_t i = 1; i < 5; i++)
        HMAC(EVP_sha256(), k, 32, (const unsigned char *)parts[i], strlen(parts[i]), k, &klen);
    kpk_hex_encode(k, 32, hex);
    assert_string_equal(out->signature, hex);
    free(creq);
    free(sts);
}

static void test_s3_rules(void **state)
{
    (void)state;
    kpk_sigv4_request req = s_put();
    kpk_sigv4_out out;
    char err[256];
    char *creq = s_creq(&req, &s_creds);
    assert_string_equal(creq,
                        "PUT\n"
                        "/bucket/a//b/./c/../d%20e\n" /* as given: not normalised, not re-encoded */
                        "\n"
                        "content-type:text/plain\n"
                        "host:s3.us-east-1.amazonaws.com\n"
                        "x-amz-content-sha256:" S_HELLO_SHA256 "\n"
                        "x-amz-date:20150830T123600Z\n"
                        "x-amz-meta-owner:keyplane team\n"
                        "x-amz-server-side-encryption:aws:kms\n"
                        "x-amz-server-side-encryption-aws-kms-key-id:alias/k\n"
                        "\n"
                        "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-owner;"
                        "x-amz-server-side-encryption;x-amz-server-side-encryption-aws-kms-key-"
                        "id\n" S_HELLO_SHA256);
    free(creq);
    assert_int_equal(kpk_sigv4_sign(&req, &s_creds, &out, err, sizeof(err)), KP_OK);
    assert_string_equal(out.content_sha256, "X-Amz-Content-SHA256: " S_HELLO_SHA256);
    assert_string_equal(out.amz_date, "X-Amz-Date: 20150830T123600Z");
    assert_null(out.security_token);
    /* botocore 1.29's S3SigV4Auth signs the same request alike */
    assert_string_equal(out.signature, S_BOTO_PUT_SIGNATURE);
    assert_string_equal(out.authorization,
                        "Authorization: AWS4-HMAC-SHA256 "
                        "Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, "
                        "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
                        "x-amz-meta-owner;x-amz-server-side-encryption;"
                        "x-amz-server-side-encryption-aws-kms-key-id, "
                        "Signature=" S_BOTO_PUT_SIGNATURE);
    s_signature_matches(&req, &s_creds, &out);
    kpk_sigv4_out_free(&out);

    /* the hash given instead of the body, and UNSIGNED-PAYLOAD */
    req.body = NULL;
    req.body_len = 0;
    req.payload_hash = S_HELLO_SHA256;
    assert_int_equal(kpk_sigv4_sign(&req, &s_creds, &out, err, sizeof(err)), KP_OK);
    assert_string_equal(out.signature, S_BOTO_PUT_SIGNATURE);
    kpk_sigv4_out_free(&out);
    req.payload_hash = KPK_SIGV4_UNSIGNED;
    assert_int_equal(kpk_sigv4_sign(&req, &s_creds, &out, err, sizeof(err)), KP_OK);
    assert_string_equal(out.content_sha256, "X-Amz-Content-SHA256: UNSIGNED-PAYLOAD");
    creq = s_creq(&req, &s_creds);
    assert_non_null(strstr(creq, "\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"));
    assert_string_equal(creq + strlen(creq) - 17, "\nUNSIGNED-PAYLOAD");
    free(creq);
    kpk_sigv4_out_free(&out);

    /* no body at all: the empty string's hash; "" is "/" */
    req.payload_hash = NULL;
    req.path = "";
    creq = s_creq(&req, &s_creds);
    assert_memory_equal(creq, "PUT\n/\n\n", 7);
    assert_string_equal(creq + strlen(creq) - 65, "\n" S_EMPTY_SHA256);
    free(creq);

    /* the same path under another service: normalised, then encoded again; no header */
    req = s_put();
    req.s3 = 0;
    req.service = "kms";
    creq = s_creq(&req, &s_creds);
    assert_memory_equal(creq, "PUT\n/bucket/a/b/d%2520e\n\n", 25);
    assert_null(strstr(creq, "x-amz-content-sha256"));
    assert_string_equal(creq + strlen(creq) - 65, "\n" S_HELLO_SHA256);
    free(creq);
    assert_int_equal(kpk_sigv4_sign(&req, &s_creds, &out, err, sizeof(err)), KP_OK);
    assert_string_equal(out.content_sha256, "");
    kpk_sigv4_out_free(&out);
}

static void test_paths_normalised(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"", "/"},
        {"/", "/"},
        {"//", "/"},
        {"/a/..", "/"},
        {"/a/../..", "/"},
        {"/..", "/"},
        {"/./a", "/a"},
        {"/a/.", "/a"}, /* botocore: a trailing '/' only when the path ends with one */
        {"/a/./", "/a/"},
        {"//a//b//", "/a/b/"},
        {"/a/b/../c", "/a/c"},
        {"/a/.b/..c/...", "/a/.b/..c/..."},
        {"/%2E%2E/x", "/%252E%252E/x"}, /* encoded dots are no dot segments */
        {"/a b/c%2Fd", "/a%20b/c%252Fd"},
        {"/~user/*", "/~user/%2A"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kpk_sigv4_request req = {.method = "GET",
                                 .host = "h",
                                 .path = cases[i][0],
                                 .region = "r",
                                 .service = "s",
                                 .when = S_WHEN};
        char *creq = s_creq(&req, NULL);
        const char *l2 = strchr(creq, '\n') + 1;
        if (strncmp(l2, cases[i][1], strlen(cases[i][1])) != 0 || l2[strlen(cases[i][1])] != '\n')
            fail_msg("path \"%s\": want \"%s\", got \"%.*s\"", cases[i][0], cases[i][1],
                     (int)strcspn(l2, "\n"), l2);
        free(creq);
    }
}

static void test_session_token(void **state)
{
    (void)state;
    kpk_sigv4_request req = s_put();
    kpk_sigv4_creds creds = s_creds;
    creds.session_token = "FwoGZXIvYXdzEJr//////////wEaDExample+Token/==";
    kpk_sigv4_out out;
    char err[256];
    assert_int_equal(kpk_sigv4_sign(&req, &creds, &out, err, sizeof(err)), KP_OK);
    assert_string_equal(out.security_token,
                        "X-Amz-Security-Token: FwoGZXIvYXdzEJr//////////wEaDExample+Token/==");
    assert_non_null(strstr(out.authorization, ";x-amz-meta-owner;x-amz-security-token;"
                                              "x-amz-server-side-encryption;"));
    assert_string_equal(out.signature, S_BOTO_TOKEN_SIGNATURE);
    s_signature_matches(&req, &creds, &out);
    char *creq = s_creq(&req, &creds);
    assert_non_null(
        strstr(creq, "\nx-amz-security-token:FwoGZXIvYXdzEJr//////////wEaDExample+Token/==\n"));
    free(creq);
    /* the debug output without the token's creds has no token line: it is a signed header */
    creq = s_creq(&req, NULL);
    assert_null(strstr(creq, "x-amz-security-token"));
    free(creq);
    kpk_sigv4_out_free(&out);
    assert_null(out.security_token);
    assert_string_equal(out.authorization, "");
    kpk_sigv4_out_free(NULL);
    /* "" is no token */
    creds.session_token = "";
    assert_int_equal(kpk_sigv4_sign(&req, &creds, &out, err, sizeof(err)), KP_OK);
    assert_null(out.security_token);
    assert_null(strstr(out.authorization, "x-amz-security-token"));
    kpk_sigv4_out_free(&out);
}

static void test_header_twice(void **state)
{
    (void)state;
    const char *const headers[] = {
        "X-Amz-Meta-A: one", "x-amz-meta-b:\tb  ", "x-amz-meta-A:  two   words  ",
        "X-AMZ-META-A:",     "Accept:*/*",         NULL};
    kpk_sigv4_request req = {.method = "GET",
                             .host = "example.com:8443",
                             .path = "/",
                             .region = "eu-west-1",
                             .service = "secretsmanager",
                             .headers = headers,
                             .when = S_WHEN};
    char *creq = s_creq(&req, NULL);
    assert_string_equal(creq, "GET\n/\n\n"
                              "accept:*/*\n"
                              "host:example.com:8443\n"
                              "x-amz-date:20150830T123600Z\n"
                              "x-amz-meta-a:one,two words,\n"
                              "x-amz-meta-b:b\n"
                              "\n"
                              "accept;host;x-amz-date;x-amz-meta-a;x-amz-meta-b\n" S_EMPTY_SHA256);
    free(creq);
}

/* ---- refusals --------------------------------------------------------------------------- */

#define S_HIDDEN "Hidden-Value-42"

/* req with creds is refused with want, out is left empty, and the one-line error text holds no
 * credential and no header value; kpk_sigv4_debug refuses req too unless only the credentials
 * or the Authorization header's size are at fault (it reads neither). */
static void s_refuse(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds, kp_status want,
                     const char *what, bool debug_too)
{
    kpk_sigv4_out out;
    memset(&out, 'x', sizeof(out));
    char err[256] = "";
    kp_status st = kpk_sigv4_sign(req, creds, &out, err, sizeof(err));
    if (st != want)
        fail_msg("%s: status %d, want %d (%s)", what, (int)st, (int)want, err);
    assert_true(err[0] != '\0');
    assert_null(strchr(err, '\n'));
    assert_null(strstr(err, S_SECRET));
    assert_null(strstr(err, S_HIDDEN));
    assert_null(strstr(err, "TOKEN"));
    assert_string_equal(out.authorization, "");
    assert_string_equal(out.amz_date, "");
    assert_string_equal(out.signature, "");
    assert_null(out.security_token);
    if (req != NULL && debug_too) {
        static char sentinel[1];
        char *creq = sentinel, *sts = sentinel;
        assert_int_equal(kpk_sigv4_debug(req, creds, &creq, &sts), want);
        assert_null(creq);
        assert_null(sts);
    }
}

static void s_refused(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds, kp_status want,
                      const char *what)
{
    s_refuse(req, creds, want, what, true);
}

static void test_refusals(void **state)
{
    (void)state;
    const kpk_sigv4_request good = s_put();
    kpk_sigv4_request r;
    kpk_sigv4_creds c = s_creds;
    kpk_sigv4_out out;
    char err[256];
    assert_int_equal(kpk_sigv4_sign(&good, &c, &out, err, sizeof(err)), KP_OK);
    kpk_sigv4_out_free(&out);
    assert_int_equal(kpk_sigv4_sign(&good, &c, NULL, err, sizeof(err)), KP_ERR_INVALID_ARG);
    s_refused(NULL, &c, KP_ERR_INVALID_ARG, "no request");
    s_refuse(&good, NULL, KP_ERR_INVALID_ARG, "no creds", false);

    /* a missing member, a method that is not upper-case letters, a host with a space */
    const char *methods[] = {NULL, "", "get", "GET ", "G\r\nET"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        r = good;
        r.method = methods[i];
        s_refused(&r, &c, KP_ERR_INVALID_ARG, "method");
    }
    const char *hosts[] = {NULL, "", "a b", "h\r\nX-Evil: 1", "h\x7f"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        r = good;
        r.host = hosts[i];
        s_refused(&r, &c, KP_ERR_INVALID_ARG, "host");
    }
    const char *paths[] = {NULL, "bucket/key", "/a\nb", "/a\x01"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        r = good;
        r.path = paths[i];
        s_refused(&r, &c, KP_ERR_INVALID_ARG, "path");
    }
    /* a region or service outside [a-z0-9-] */
    const char *names[] = {NULL, "", "US-EAST-1", "us_east_1", "us east", "us/east", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        r = good;
        r.region = names[i];
        s_refused(&r, &c, KP_ERR_INVALID_ARG, "region");
        r = good;
        r.service = names[i];
        s_refused(&r, &c, KP_ERR_INVALID_ARG, "service");
    }
    /* a query with a bad %-escape or a control character */
    const char *queries[] = {"a=%zz", "a=%4", "x=" S_HIDDEN "%", "a=1\n"};
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        r = good;
        r.query = queries[i];
        s_refused(&r, &c, KP_ERR_INVALID_ARG, "query");
    }
    /* header lines: without ':', a name that is no token, a control character in the value,
     * one the signer adds itself (any case) */
    const char *bad_headers[] = {"X-Amz-Meta-A " S_HIDDEN,
                                 ": " S_HIDDEN,
                                 "X Amz: " S_HIDDEN,
                                 "X-Amz-Meta-\xc3\xa9: " S_HIDDEN,
                                 "X-Amz-Meta-A: " S_HIDDEN "\r\nX-Injected: 1",
                                 "X-Amz-Meta-A: " S_HIDDEN "\x01",
                                 "X-Amz-Meta-A: " S_HIDDEN "\x7f",
                                 "Host: " S_HIDDEN,
                                 "x-amz-date: " S_HIDDEN,
                                 "X-Amz-Content-SHA256: " S_HIDDEN,
                                 "X-AMZ-SECURITY-TOKEN: " S_HIDDEN,
                                 "Authorization: " S_HIDDEN};
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        const char *lines[] = {"Content-Type: text/plain", bad_headers[i], NULL};
        r = good;
        r.headers = lines;
        s_refused(&r, &c, KP_ERR_INVALID_ARG, bad_headers[i]);
    }
    /* the payload: a hash that is not 64 lower-case hex, UNSIGNED-PAYLOAD off S3, a body
     * length without a body */
    const char *hashes[] = {"", "abc", S_HELLO_SHA256 "0",
                            "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
                            "unsigned-payload"};
    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        r = good;
        r.payload_hash = hashes[i];
        s_refused(&r, &c, KP_ERR_INVALID_ARG, "payload hash");
    }
    r = good;
    r.s3 = 0;
    r.payload_hash = KPK_SIGV4_UNSIGNED;
    s_refused(&r, &c, KP_ERR_INVALID_ARG, "UNSIGNED-PAYLOAD off S3");
    r = good;
    r.body = NULL;
    s_refused(&r, &c, KP_ERR_INVALID_ARG, "body_len without body");
    /* times before 1970 and after 9999 */
    r = good;
    r.when = -1;
    s_refused(&r, &c, KP_ERR_INVALID_ARG, "time before 1970");
    r.when = (time_t)253402300800LL; /* 10000-01-01 */
    s_refused(&r, &c, KP_ERR_INVALID_ARG, "time after 9999");
    /* credentials: no or a bad access key id, no secret, a token with a control character */
    const char *akids[] = {NULL, "", "AKID EXAMPLE", "AKID/X", "AKID,X", "AKID\n"};
    for (size_t i = 0; i < sizeof(akids) / sizeof(akids[0]); i++) {
        c = s_creds;
        c.access_key_id = akids[i];
        s_refuse(&good, &c, KP_ERR_INVALID_ARG, "access key id", false);
    }
    c = s_creds;
    c.secret_access_key = NULL;
    s_refuse(&good, &c, KP_ERR_INVALID_ARG, "no secret", false);
    c = s_creds;
    c.secret_len = 0;
    s_refuse(&good, &c, KP_ERR_INVALID_ARG, "empty secret", false);
    c = s_creds;
    c.session_token = "TOKEN\r\nX-Injected: 1";
    s_refused(&good, &c, KP_ERR_INVALID_ARG, "token");
    /* more signed header names than the Authorization header holds */
    static char names_buf[40][80];
    const char *many[41];
    for (int i = 0; i < 40; i++) {
        snprintf(names_buf[i], sizeof(names_buf[i]),
                 "X-Amz-Meta-A-Rather-Long-Header-Name-That-Takes-Room-%02d: v", i);
        many[i] = names_buf[i];
    }
    many[40] = NULL;
    r = good;
    r.headers = many;
    s_refuse(&r, &s_creds, KP_ERR_INVALID_ARG, "Authorization too long", false);
    char *creq = NULL, *sts = NULL;
    assert_int_equal(kpk_sigv4_debug(&r, NULL, &creq, NULL), KP_ERR_INVALID_ARG);
    assert_null(creq);
    assert_int_equal(kpk_sigv4_debug(&r, NULL, NULL, &sts), KP_ERR_INVALID_ARG);
    assert_null(sts);
}

/* when 0 is now */
static void test_now(void **state)
{
    (void)state;
    kpk_sigv4_request req = s_put();
    req.when = 0;
    kpk_sigv4_out out;
    char err[256], before[17], after[17];
    time_t t0 = time(NULL);
    assert_int_equal(kpk_sigv4_sign(&req, &s_creds, &out, err, sizeof(err)), KP_OK);
    time_t t1 = time(NULL);
    struct tm tm;
    strftime(before, sizeof(before), "%Y%m%dT%H%M%SZ", gmtime_r(&t0, &tm));
    strftime(after, sizeof(after), "%Y%m%dT%H%M%SZ", gmtime_r(&t1, &tm));
    const char *got = out.amz_date + strlen("X-Amz-Date: ");
    assert_true(strcmp(got, before) >= 0 && strcmp(got, after) <= 0);
    kpk_sigv4_out_free(&out);
}

/* ---- the micro-benchmark ---------------------------------------------------------------- */

/* One S3 PUT with six headers of its own (the signer adds three), signed over and over for a
 * quarter of a second: what one request pays for its signature. Printed, never asserted. */
static void test_benchmark(void **state)
{
    (void)state;
    const char *const headers[] = {"Content-Type: application/octet-stream",
                                   "Content-Length: 4096",
                                   "Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==",
                                   "x-amz-server-side-encryption: aws:kms",
                                   "x-amz-server-side-encryption-aws-kms-key-id: "
                                   "arn:aws:kms:us-east-1:111122223333:key/"
                                   "1234abcd-12ab-34cd-56ef-1234567890ab",
                                   "x-amz-meta-keyplane-chain: prod-sql-tde",
                                   NULL};
    kpk_sigv4_request req = {.method = "PUT",
                             .host = "keyplane-backups.s3.us-east-1.amazonaws.com",
                             .path = "/chains/prod-sql-tde/v000042/envelope.json",
                             .region = "us-east-1",
                             .service = "s3",
                             .headers = headers,
                             .payload_hash = KPK_SIGV4_UNSIGNED,
                             .s3 = 1,
                             .when = S_WHEN};
    kpk_sigv4_creds creds = s_creds;
    creds.session_token = "FwoGZXIvYXdzEJr//////////wEaDExampleSessionToken";
    kpk_sigv4_out out;
    char err[256];
    long n = 0;
    uint64_t start = kpk_clock_ns(), now;
    do {
        for (int i = 0; i < 100; i++, n++) {
            if (kpk_sigv4_sign(&req, &creds, &out, err, sizeof(err)) != KP_OK)
                fail_msg("sign: %s", err);
            kpk_sigv4_out_free(&out);
        }
        now = kpk_clock_ns();
    } while (now - start < 250000000ull);
    printf("sigv4 micro-benchmark: %.2f us per signature (S3 PUT, 6 headers + session token, "
           "%ld signatures)\n",
           (double)(now - start) / 1e3 / (double)n, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_suite),     cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_query_build),   cmocka_unit_test(test_query_canonical),
        cmocka_unit_test(test_s3_rules),      cmocka_unit_test(test_paths_normalised),
        cmocka_unit_test(test_session_token), cmocka_unit_test(test_header_twice),
        cmocka_unit_test(test_refusals),      cmocka_unit_test(test_now),
        cmocka_unit_test(test_benchmark),
    };
    return cmocka_run_group_tests_name("sigv4", tests, NULL, NULL);
}
