/*
 * AWS Signature Version 4 for one request (sigv4.h): the canonical request, the string to sign,
 * the signing key derived from the secret, and the header lines to send.
 *
 * It runs for every request, so it is kept cheap: one HMAC context does all five HMACs of a
 * signature, fetched and given its digest once per call and then only re-keyed (EVP_MAC_init
 * with a new key). HMAC()'s one-shot fetches the MAC and the digest for each of the five, which
 * on OpenSSL 3.0 costs about as much again (test_sigv4's micro-benchmark prints the figure).
 * The secret ("AWS4" + secret) and every derived key sit in buffers of this file that are wiped
 * before they go; the HMAC context wipes its own copy when it is freed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>
#include <keyplane/provider.h>

#include "sigv4_internal.h"

#define S_ALGORITHM "AWS4-HMAC-SHA256"
#define S_TERMINATOR "aws4_request"
#define S_SHA256_LEN 32
#define S_HEX_LEN 64
/* "AWS4" + a secret of up to this many bytes is keyed from the stack; longer ones from the heap */
#define S_KEY_STACK 256

/* One header to sign: a name and a raw value (not yet trimmed), both borrowed, and its place
 * in the caller's list, so that repeated names keep their values' order through the sort. */
typedef struct s_header {
    const char *name, *value;
    size_t name_len, value_len, order;
} s_header;

/* What the canonical request is built from and what it leaves for the signature. */
typedef struct s_canon {
    char amz_date[17]; /* YYYYMMDDTHHMMSSZ */
    char payload[S_HEX_LEN + 1];
    kpk__sigv4_buf creq, signed_names;
} s_canon;

/* The first key is "AWS4" + the secret: bytes of a key, not a string. */
static const uint8_t s_key_prefix[4] = {'A', 'W', 'S', '4'};

/* The names the signer adds itself: a caller's header of the same name is refused. */
static const char *const s_added[] = {"host", "x-amz-date", "x-amz-content-sha256",
                                      "x-amz-security-token", "authorization"};

__attribute__((format(printf, 4, 5))) static kp_status s_fail(char *err, size_t errlen,
                                                              kp_status st, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

static bool s_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* ASCII only, as header names are (not the locale's tolower) */
static unsigned char s_lower(char c)
{
    unsigned char u = (unsigned char)c;
    return u >= 'A' && u <= 'Z' ? (unsigned char)(u + ('a' - 'A')) : u;
}

/* RFC 9110's tchar: what a header name is made of */
static bool s_tchar(unsigned char c)
{
    static const char other[] = "!#$%&'*+-.^_`|~";
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           memchr(other, c, sizeof(other) - 1) != NULL;
}

static bool s_has_ctl(const char *s, size_t n, bool tab_ok)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(tab_ok && c == '\t')) || c == 0x7f)
            return true;
    }
    return false;
}

/* Every byte of s is one of set's, and s is not empty. */
static bool s_only(const char *s, const char *set)
{
    return s != NULL && s[0] != '\0' && strspn(s, set) == strlen(s);
}

#define S_LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"

static bool s_printable_no(const char *s, const char *banned)
{
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || (banned[0] != '\0' && strchr(banned, c) != NULL))
            return false;
    }
    return s[0] != '\0';
}

/* ---- checking the request ------------------------------------------------------------- */

static kp_status s_check_payload(const kpk_sigv4_request *req, char *err, size_t errlen)
{
    const char *h = req->payload_hash;
    if (req->body == NULL && req->body_len > 0)
        return s_fail(err, errlen, KP_ERR_INVALID_ARG, "sigv4: body_len without a body");
    if (h == NULL)
        return KP_OK;
    if (strcmp(h, KPK_SIGV4_UNSIGNED) == 0)
        return req->s3 ? KP_OK
                       : s_fail(err, errlen, KP_ERR_INVALID_ARG,
                                "sigv4: " KPK_SIGV4_UNSIGNED " is for S3 requests only");
    if (strlen(h) != S_HEX_LEN || strspn(h, "0123456789abcdef") != S_HEX_LEN)
        return s_fail(
            err, errlen, KP_ERR_INVALID_ARG,
            "sigv4: payload_hash is neither 64 lower-case hex digits nor " KPK_SIGV4_UNSIGNED);
    return KP_OK;
}

static kp_status s_check(const kpk_sigv4_request *req, const char *token, char *err, size_t errlen)
{
    if (req == NULL)
        return s_fail(err, errlen, KP_ERR_INVALID_ARG, "sigv4: no request");
    if (!s_only(req->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the method is missing or not upper-case letters");
    if (req->host == NULL || !s_printable_no(req->host, ""))
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the host is missing or holds a space or control character");
    if (req->path == NULL || (req->path[0] != '\0' && req->path[0] != '/') ||
        s_has_ctl(req->path, strlen(req->path), false))
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the path is missing, does not start with '/' or holds a control "
                      "character");
    if (!s_only(req->region, S_LOWER_DIGITS "-"))
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the region is missing or not [a-z0-9-]");
    if (!s_only(req->service, S_LOWER_DIGITS "-"))
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the service is missing or not [a-z0-9-]");
    if (token != NULL && s_has_ctl(token, strlen(token), false))
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the session token holds a control character");
    if (req->when < 0)
        return s_fail(err, errlen, KP_ERR_INVALID_ARG, "sigv4: the signing time is before 1970");
    return s_check_payload(req, err, errlen);
}

/* ---- the canonical request ------------------------------------------------------------ */

static int s_name_cmp(const s_header *a, const s_header *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = s_lower(a->name[i]), cb = s_lower(b->name[i]);
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static int s_header_cmp(const void *x, const void *y)
{
    const s_header *a = x, *b = y;
    int c = s_name_cmp(a, b);
    return c != 0 ? c : (a->order < b->order ? -1 : a->order > b->order);
}

static bool s_is_added(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(s_added) / sizeof(s_added[0]); i++)
        if (strlen(s_added[i]) == len && strncasecmp(name, s_added[i], len) == 0)
            return true;
    return false;
}

static bool s_is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!s_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}

/* The caller's header lines into hs (names checked; values for control characters). */
static kp_status s_parse_headers(const char *const *lines, s_header *hs, size_t *n, char *err,
                                 size_t errlen)
{
    for (size_t i = 0; lines != NULL && lines[i] != NULL; i++) {
        const char *line = lines[i], *colon = strchr(line, ':');
        if (colon == NULL)
            return s_fail(err, errlen, KP_ERR_INVALID_ARG, "sigv4: header %zu has no ':'", i + 1);
        size_t nlen = (size_t)(colon - line);
        if (!s_is_token(line, nlen))
            return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                          "sigv4: header %zu has a name that is no HTTP token", i + 1);
        if (s_is_added(line, nlen))
            return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                          "sigv4: header %zu is one the signer adds itself", i + 1);
        size_t vlen = strlen(colon + 1);
        if (s_has_ctl(colon + 1, vlen, true))
            return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                          "sigv4: header %zu has a control character in its value", i + 1);
        hs[*n] = (s_header){line, colon + 1, nlen, vlen, *n};
        (*n)++;
    }
    return KP_OK;
}

static void s_add_header(s_header *hs, size_t *n, const char *name, const char *value)
{
    hs[*n] = (s_header){name, value, strlen(name), strlen(value), *n};
    (*n)++;
}

/* value trimmed, with each run of spaces and tabs inside it written as one space */
static void s_add_value(kpk__sigv4_buf *b, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && s_ws(v[i]))
        i++;
    while (n > i && s_ws(v[n - 1]))
        n--;
    while (i < n) {
        size_t run = i;
        while (run < n && !s_ws(v[run]))
            run++;
        kpk__sigv4_buf_add(b, v + i, run - i);
        if (run == n)
            break;
        kpk__sigv4_buf_addc(b, ' ');
        while (s_ws(v[run]))
            run++;
        i = run;
    }
}

/* The sorted headers into the canonical request (one "name:v1,v2" line per name) and their
 * names, joined by ';', into signed_names. */
static void s_emit_headers(const s_header *hs, size_t n, s_canon *c)
{
    for (size_t i = 0; i < n;) {
        if (i > 0)
            kpk__sigv4_buf_addc(&c->signed_names, ';');
        kpk__sigv4_buf_lower(&c->creq, hs[i].name, hs[i].name_len);
        kpk__sigv4_buf_lower(&c->signed_names, hs[i].name, hs[i].name_len);
        kpk__sigv4_buf_addc(&c->creq, ':');
        size_t j = i;
        for (; j < n && s_name_cmp(&hs[i], &hs[j]) == 0; j++) {
            if (j > i)
                kpk__sigv4_buf_addc(&c->creq, ',');
            s_add_value(&c->creq, hs[j].value, hs[j].value_len);
        }
        kpk__sigv4_buf_addc(&c->creq, '\n');
        i = j;
    }
}

static kp_status s_payload(const kpk_sigv4_request *req, char hex[S_HEX_LEN + 1], char *err,
                           size_t errlen)
{
    if (req->payload_hash != NULL) {
        snprintf(hex, S_HEX_LEN + 1, "%s", req->payload_hash);
        return KP_OK;
    }
    unsigned char md[S_SHA256_LEN];
    unsigned int mdlen = 0;
    static const uint8_t empty[1] = {0};
    const uint8_t *body = req->body != NULL ? req->body : empty;
    if (EVP_Digest(body, req->body_len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != S_SHA256_LEN) {
        char why[KPK_OSSL_REASON_MAX];
        return s_fail(err, errlen, KP_ERR_CRYPTO, "sigv4: SHA-256 of the body failed: %s",
                      kpk_ossl_reason(why, sizeof(why)));
    }
    kpk_hex_encode(md, sizeof(md), hex);
    return KP_OK;
}

static kp_status s_amz_date(time_t when, char out[17], char *err, size_t errlen)
{
    struct tm tm;
    if (when == 0)
        when = time(NULL);
    if (gmtime_r(&when, &tm) == NULL || tm.tm_year < 70 || tm.tm_year > 9999 - 1900 ||
        strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the signing time is outside the years 1970 to 9999");
    return KP_OK;
}

/* Everything up to the signature: c->creq, c->signed_names, c->amz_date, c->payload. */
static kp_status s_canonical(const kpk_sigv4_request *req, const char *token, s_canon *c, char *err,
                             size_t errlen)
{
    size_t count = 0, n = 0;
    while (req->headers != NULL && req->headers[count] != NULL)
        count++;
    s_header *hs = malloc((count + 4) * sizeof(*hs));
    if (hs == NULL)
        return s_fail(err, errlen, KP_ERR_NOMEM, "sigv4: out of memory");
    kp_status st = s_amz_date(req->when, c->amz_date, err, errlen);
    if (st == KP_OK)
        st = s_payload(req, c->payload, err, errlen);
    if (st == KP_OK)
        st = s_parse_headers(req->headers, hs, &n, err, errlen);
    if (st == KP_OK) {
        s_add_header(hs, &n, "host", req->host);
        s_add_header(hs, &n, "x-amz-date", c->amz_date);
        if (req->s3)
            s_add_header(hs, &n, "x-amz-content-sha256", c->payload);
        if (token != NULL && token[0] != '\0')
            s_add_header(hs, &n, "x-amz-security-token", token);
        qsort(hs, n, sizeof(*hs), s_header_cmp);
        kpk__sigv4_buf_str(&c->creq, req->method);
        kpk__sigv4_buf_addc(&c->creq, '\n');
        kpk__sigv4_canon_path(req->path, req->s3, &c->creq);
        kpk__sigv4_buf_addc(&c->creq, '\n');
        st = kpk__sigv4_canon_query(req->query, &c->creq);
        if (st == KP_ERR_INVALID_ARG)
            s_fail(err, errlen, st, "sigv4: the query has a bad %%-escape or a control character");
        else if (st != KP_OK)
            s_fail(err, errlen, st, "sigv4: out of memory");
    }
    if (st == KP_OK) {
        kpk__sigv4_buf_addc(&c->creq, '\n');
        s_emit_headers(hs, n, c);
        kpk__sigv4_buf_addc(&c->creq, '\n');
        kpk__sigv4_buf_add(&c->creq, c->signed_names.p, c->signed_names.len);
        kpk__sigv4_buf_addc(&c->creq, '\n');
        kpk__sigv4_buf_str(&c->creq, c->payload);
        if (c->creq.oom || c->signed_names.oom)
            st = s_fail(err, errlen, KP_ERR_NOMEM, "sigv4: out of memory");
    }
    free(hs);
    return st;
}

/* ---- the string to sign and the signature --------------------------------------------- */

static kp_status s_string_to_sign(const kpk_sigv4_request *req, const s_canon *c,
                                  kpk__sigv4_buf *sts, char *err, size_t errlen)
{
    unsigned char md[S_SHA256_LEN];
    unsigned int mdlen = 0;
    char hex[S_HEX_LEN + 1];
    if (EVP_Digest(c->creq.p, c->creq.len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != S_SHA256_LEN) {
        char why[KPK_OSSL_REASON_MAX];
        return s_fail(err, errlen, KP_ERR_CRYPTO,
                      "sigv4: SHA-256 of the canonical request failed: %s",
                      kpk_ossl_reason(why, sizeof(why)));
    }
    kpk_hex_encode(md, sizeof(md), hex);
    kpk__sigv4_buf_str(sts, S_ALGORITHM "\n");
    kpk__sigv4_buf_str(sts, c->amz_date);
    kpk__sigv4_buf_addc(sts, '\n');
    kpk__sigv4_buf_add(sts, c->amz_date, 8);
    kpk__sigv4_buf_addc(sts, '/');
    kpk__sigv4_buf_str(sts, req->region);
    kpk__sigv4_buf_addc(sts, '/');
    kpk__sigv4_buf_str(sts, req->service);
    kpk__sigv4_buf_str(sts, "/" S_TERMINATOR "\n");
    kpk__sigv4_buf_str(sts, hex);
    return sts->oom ? s_fail(err, errlen, KP_ERR_NOMEM, "sigv4: out of memory") : KP_OK;
}

/* One HMAC-SHA256 with ctx (its digest set) under key; out may be key. */
static bool s_hmac(EVP_MAC_CTX *ctx, const uint8_t *key, size_t keylen, const void *msg, size_t len,
                   uint8_t out[S_SHA256_LEN])
{
    size_t n = 0;
    return EVP_MAC_init(ctx, key, keylen, NULL) == 1 && EVP_MAC_update(ctx, msg, len) == 1 &&
           EVP_MAC_final(ctx, out, &n, S_SHA256_LEN) == 1 && n == S_SHA256_LEN;
}

/* The hex signature of sts under the key derived from the secret for the request's scope. */
static kp_status s_signature(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds,
                             const s_canon *c, const kpk__sigv4_buf *sts, char hex[S_HEX_LEN + 1],
                             char *err, size_t errlen)
{
    kp_status st = KP_ERR_CRYPTO;
    uint8_t stack[S_KEY_STACK], k[S_SHA256_LEN], sig[S_SHA256_LEN];
    size_t klen = sizeof(s_key_prefix) + creds->secret_len;
    uint8_t *k0 = klen <= sizeof(stack) ? stack : malloc(klen);
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    if (k0 == NULL) {
        st = s_fail(err, errlen, KP_ERR_NOMEM, "sigv4: out of memory");
        goto out;
    }
    memcpy(k0, s_key_prefix, sizeof(s_key_prefix));
    memcpy(k0 + sizeof(s_key_prefix), creds->secret_access_key, creds->secret_len);
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx == NULL || EVP_MAC_CTX_set_params(ctx, params) != 1 ||
        !s_hmac(ctx, k0, klen, c->amz_date, 8, k) ||
        !s_hmac(ctx, k, sizeof(k), req->region, strlen(req->region), k) ||
        !s_hmac(ctx, k, sizeof(k), req->service, strlen(req->service), k) ||
        !s_hmac(ctx, k, sizeof(k), S_TERMINATOR, strlen(S_TERMINATOR), k) ||
        !s_hmac(ctx, k, sizeof(k), sts->p, sts->len, sig)) {
        char why[KPK_OSSL_REASON_MAX];
        st = s_fail(err, errlen, KP_ERR_CRYPTO, "sigv4: HMAC-SHA256 failed: %s",
                    kpk_ossl_reason(why, sizeof(why)));
        goto out;
    }
    kpk_hex_encode(sig, sizeof(sig), hex);
    st = KP_OK;
out:
    if (k0 != NULL)
        OPENSSL_cleanse(k0, klen);
    if (k0 != stack)
        free(k0);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(sig, sizeof(sig));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return st;
}

/* ---- what to send ---------------------------------------------------------------------- */

static kp_status s_output(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds,
                          const s_canon *c, const char *sig, kpk_sigv4_out *out, char *err,
                          size_t errlen)
{
    /* the Authorization value, as in sigv4.h's KPK_SIGV4_AUTH_MAX, with its NUL */
    size_t need = strlen(S_ALGORITHM " Credential=") + strlen(creds->access_key_id) + 1 + 8 + 1 +
                  strlen(req->region) + 1 + strlen(req->service) + strlen("/" S_TERMINATOR) +
                  strlen(", SignedHeaders=") + c->signed_names.len + strlen(", Signature=") +
                  S_HEX_LEN + 1;
    if (need > KPK_SIGV4_AUTH_MAX)
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the Authorization header would exceed %d bytes (too many or too "
                      "long header names)",
                      KPK_SIGV4_AUTH_MAX);
    snprintf(out->authorization, sizeof(out->authorization),
             "Authorization: " S_ALGORITHM " Credential=%s/%.8s/%s/%s/" S_TERMINATOR
             ", SignedHeaders=%s, Signature=%s",
             creds->access_key_id, c->amz_date, req->region, req->service, c->signed_names.p, sig);
    snprintf(out->amz_date, sizeof(out->amz_date), "X-Amz-Date: %s", c->amz_date);
    if (req->s3)
        snprintf(out->content_sha256, sizeof(out->content_sha256), "X-Amz-Content-SHA256: %s",
                 c->payload);
    snprintf(out->signature, sizeof(out->signature), "%s", sig);
    const char *token = creds->session_token;
    if (token != NULL && token[0] != '\0') {
        static const char name[] = "X-Amz-Security-Token: ";
        size_t size = sizeof(name) + strlen(token);
        out->security_token = malloc(size);
        if (out->security_token == NULL)
            return s_fail(err, errlen, KP_ERR_NOMEM, "sigv4: out of memory");
        snprintf(out->security_token, size, "%s%s", name, token);
    }
    return KP_OK;
}

static kp_status s_check_creds(const kpk_sigv4_creds *creds, char *err, size_t errlen)
{
    if (creds == NULL || creds->access_key_id == NULL ||
        !s_printable_no(creds->access_key_id, "/,"))
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "sigv4: the access key id is missing or holds a space, '/', ',' or "
                      "control character");
    if (creds->secret_access_key == NULL || creds->secret_len == 0 ||
        creds->secret_len > ((size_t)-1) / 2)
        return s_fail(err, errlen, KP_ERR_INVALID_ARG, "sigv4: the secret access key is missing");
    return KP_OK;
}

kp_status kpk_sigv4_sign(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds,
                         kpk_sigv4_out *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return s_fail(err, errlen, KP_ERR_INVALID_ARG, "sigv4: no output");
    memset(out, 0, sizeof(*out));
    s_canon c = {0};
    kpk__sigv4_buf sts = {0};
    char sig[S_HEX_LEN + 1] = "";
    kp_status st = s_check_creds(creds, err, errlen);
    if (st == KP_OK)
        st = s_check(req, creds->session_token, err, errlen);
    if (st == KP_OK)
        st = s_canonical(req, creds->session_token, &c, err, errlen);
    if (st == KP_OK)
        st = s_string_to_sign(req, &c, &sts, err, errlen);
    if (st == KP_OK)
        st = s_signature(req, creds, &c, &sts, sig, err, errlen);
    if (st == KP_OK)
        st = s_output(req, creds, &c, sig, out, err, errlen);
    if (st != KP_OK)
        kpk_sigv4_out_free(out);
    kpk__sigv4_buf_free(&sts);
    kpk__sigv4_buf_free(&c.creq);
    kpk__sigv4_buf_free(&c.signed_names);
    return st;
}

void kpk_sigv4_out_free(kpk_sigv4_out *out)
{
    if (out == NULL)
        return;
    if (out->security_token != NULL) {
        OPENSSL_cleanse(out->security_token, strlen(out->security_token));
        free(out->security_token);
    }
    OPENSSL_cleanse(out, sizeof(*out));
}

kp_status kpk_sigv4_debug(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds,
                          char **canonical_request, char **string_to_sign)
{
    if (canonical_request != NULL)
        *canonical_request = NULL;
    if (string_to_sign != NULL)
        *string_to_sign = NULL;
    KP_ENSURE(canonical_request != NULL && string_to_sign != NULL, KP_ERR_INVALID_ARG);
    const char *token = creds != NULL ? creds->session_token : NULL;
    s_canon c = {0};
    kpk__sigv4_buf sts = {0};
    kp_status st = s_check(req, token, NULL, 0);
    if (st == KP_OK)
        st = s_canonical(req, token, &c, NULL, 0);
    if (st == KP_OK)
        st = s_string_to_sign(req, &c, &sts, NULL, 0);
    if (st == KP_OK) {
        *canonical_request = kpk__sigv4_buf_take(&c.creq);
        *string_to_sign = kpk__sigv4_buf_take(&sts);
        if (*canonical_request == NULL || *string_to_sign == NULL) {
            free(*canonical_request);
            free(*string_to_sign);
            *canonical_request = *string_to_sign = NULL;
            st = KP_ERR_NOMEM;
        }
    }
    kpk__sigv4_buf_free(&sts);
    kpk__sigv4_buf_free(&c.creq);
    kpk__sigv4_buf_free(&c.signed_names);
    return st;
}
