/*
 * Fuzz target of the kit's SigV4 canonicalisation (providers/kit/src/sigv4.c, sigv4_uri.c): the
 * input's lines are a path, a query, a session token and header lines ("Name: value"), signed
 * with S3's rules and with the others'. Besides memory errors (the sanitizers) it checks what
 * sigv4.h promises of what it accepts: a canonical path that starts with '/', holds only
 * unreserved bytes, '/' and upper-case %XX, and (not S3) no empty, "." or ".." segment; a
 * canonical query of "name=value" pairs, each so encoded, sorted by name then value, that
 * canonicalises to itself, and that kpk_sigv4_query makes again from its decoded parameters;
 * header lines without CR or LF; and for what it refuses, one printable line that quotes neither
 * the secret, the token nor a header value. kpk_aws_uri_encode of the path must decode back to
 * it and fail cleanly in a buffer one byte short.
 *
 * Built as a libFuzzer target (fuzz_sigv4, Clang) and as a replay program over a corpus
 * (fuzz_sigv4_replay, any compiler; ctest fuzz.sigv4.replay). See README.md.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/sigv4.h>

#include "fuzz_check.h"

#define S_TARGET "fuzz_sigv4"
#define S_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define S_MAX_HEADERS 16
#define S_MAX_PARAMS 64

static void s_die(const char *what, const char *why)
{
    kp_test_fuzz_die(S_TARGET, what, why);
}

static bool s_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static bool s_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* s/n holds only unreserved bytes, upper-case %XX and the bytes of extra */
static void s_encoded(const char *what, const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || !s_upper_hex(s[i + 1]) || !s_upper_hex(s[i + 2]))
                s_die(what, "a '%' not followed by two upper-case hex digits");
            i += 2;
        } else if (!s_unreserved((unsigned char)s[i]) && strchr(extra, s[i]) == NULL) {
            s_die(what, "a byte that should have been encoded");
        }
    }
}

static int s_nibble(char c)
{
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* s/n (checked by s_encoded) decoded into out; returns the length */
static size_t s_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            out[o++] = (char)(s_nibble(s[i + 1]) << 4 | s_nibble(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return o;
}

static void s_check_path(const char *p, size_t n, int s3)
{
    if (n == 0 || p[0] != '/')
        s_die("canonical path", "does not start with '/'");
    if (s3)
        return;
    s_encoded("canonical path", p, n, "/");
    for (size_t i = 1; i < n;) {
        size_t seg = strcspn(p + i, "/\n");
        if (i + seg > n)
            seg = n - i;
        bool last = i + seg >= n;
        if ((seg == 0 && !last) || (seg == 1 && p[i] == '.') ||
            (seg == 2 && p[i] == '.' && p[i + 1] == '.'))
            s_die("canonical path", "an empty, \".\" or \"..\" segment survived");
        i += seg + 1;
    }
}

/* The canonical query q/n: encoded pairs, sorted; it canonicalises to itself, and
 * kpk_sigv4_query rebuilds it from the decoded parameters. */
static void s_check_query(const char *q, size_t n)
{
    char *copy = strndup(q, n), *dec = malloc(n + 1);
    kpk_query_param ps[S_MAX_PARAMS];
    size_t np = 0;
    if (copy == NULL || dec == NULL)
        s_die("canonical query", "out of memory");
    const char *prev = NULL;
    size_t doff = 0;
    for (char *part = copy; part != NULL && n > 0;) {
        char *amp = strchr(part, '&');
        if (amp != NULL)
            *amp = '\0';
        char *eq = strchr(part, '=');
        if (eq == NULL)
            s_die("canonical query", "a pair without '='");
        s_encoded("canonical query", part, strlen(part), "=");
        if (strchr(eq + 1, '=') != NULL)
            s_die("canonical query", "a raw '=' in a value");
        /* name then value order: compare the names, then the values */
        if (prev != NULL) {
            size_t pn = strcspn(prev, "="), cn = (size_t)(eq - part);
            int c = memcmp(prev, part, pn < cn ? pn : cn);
            if (c == 0)
                c = pn < cn ? -1 : pn > cn;
            if (c == 0)
                c = strcmp(prev + pn + 1, eq + 1);
            if (c > 0)
                s_die("canonical query", "pairs out of order");
        }
        prev = part;
        if (np < S_MAX_PARAMS) {
            *eq = '\0';
            ps[np].name = dec + doff;
            doff += s_decode(part, strlen(part), dec + doff) + 1;
            ps[np].value = dec + doff;
            doff += s_decode(eq + 1, strlen(eq + 1), dec + doff) + 1;
            *eq = '=';
            np++;
        }
        part = amp != NULL ? amp + 1 : NULL;
    }
    /* decoded names with a NUL inside cannot round-trip through C strings: skip those */
    bool nul = memchr(q, '%', n) != NULL && strstr(q, "%00") != NULL;
    if (np < S_MAX_PARAMS && !nul) {
        char *built = NULL;
        if (kpk_sigv4_query(ps, np, &built) != KP_OK)
            s_die("kpk_sigv4_query", "refused decoded parameters");
        if (strlen(built) != n || memcmp(built, q, n) != 0)
            s_die("kpk_sigv4_query", "does not rebuild the canonical query");
        free(built);
    }
    free(dec);
    free(copy);
}

static void s_check_encode(const char *path)
{
    size_t len = strlen(path), cap = 3 * len + 1;
    char *out = malloc(cap), *back = malloc(len + 1);
    if (out == NULL || back == NULL)
        s_die("kpk_aws_uri_encode", "out of memory");
    size_t n = kpk_aws_uri_encode(path, len, 1, out, cap);
    if (n == (size_t)-1 || n != strlen(out))
        s_die("kpk_aws_uri_encode", "failed in a buffer three times the input");
    s_encoded("kpk_aws_uri_encode", out, n, "/");
    if (s_decode(out, n, back) != len || memcmp(back, path, len) != 0)
        s_die("kpk_aws_uri_encode", "does not decode back to its input");
    if (kpk_aws_uri_encode(path, len, 1, out, n) != (size_t)-1 || out[0] != '\0')
        s_die("kpk_aws_uri_encode", "a buffer one byte short did not fail empty");
    free(out);
    free(back);
}

static void s_check_err(const char *what, const char *err, const char *token,
                        const char *const *headers)
{
    kp_test_fuzz_error_text(S_TARGET, what, err);
    if (strstr(err, S_SECRET) != NULL || (strlen(token) >= 8 && strstr(err, token) != NULL))
        s_die(what, "the error text quotes a credential");
    for (size_t i = 0; headers[i] != NULL; i++) {
        const char *v = strchr(headers[i], ':');
        v = v != NULL ? v + 1 + strspn(v + 1, " \t") : "";
        if (strlen(v) >= 8 && strstr(err, v) != NULL)
            s_die(what, "the error text quotes a header value");
    }
}

static void s_one(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds)
{
    char *creq = NULL, *sts = NULL, err[256] = "";
    kpk_sigv4_out out;
    kp_status st = kpk_sigv4_sign(req, creds, &out, err, sizeof(err));
    if (st != KP_OK) {
        s_check_err("kpk_sigv4_sign", err, creds->session_token, req->headers);
        if (out.authorization[0] != '\0' || out.security_token != NULL)
            s_die("kpk_sigv4_sign", "a refusal left output behind");
        return;
    }
    if (strpbrk(out.authorization, "\r\n") != NULL ||
        (out.security_token != NULL && strpbrk(out.security_token, "\r\n") != NULL))
        s_die("kpk_sigv4_sign", "a header line holds CR or LF");
    if (kpk_sigv4_debug(req, creds, &creq, &sts) != KP_OK)
        s_die("kpk_sigv4_debug", "refused what kpk_sigv4_sign signed");
    const char *l2 = strchr(creq, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    s_check_path(l2, (size_t)(l3 - l2 - 1), req->s3);
    s_check_query(l3, strcspn(l3, "\n"));
    kpk_sigv4_out_free(&out);
    free(creq);
    free(sts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *fields[3 + S_MAX_HEADERS] = {0};
    size_t nf = 0;
    for (char *p = text; p != NULL && nf < 3 + S_MAX_HEADERS; nf++) {
        fields[nf] = p;
        p = strchr(p, '\n');
        if (p != NULL)
            *p++ = '\0';
    }
    const char *headers[S_MAX_HEADERS + 1] = {0};
    for (size_t i = 3; i < nf; i++)
        headers[i - 3] = fields[i];
    const char *path = fields[0] != NULL ? fields[0] : "";
    const char *token = fields[2] != NULL ? fields[2] : "";
    kpk_sigv4_request req = {.method = "PUT",
                             .host = "s3.us-east-1.amazonaws.com",
                             .path = path,
                             .query = fields[1],
                             .region = "us-east-1",
                             .service = "s3",
                             .headers = headers,
                             .when = 1440938160};
    kpk_sigv4_creds creds = {"AKIDEXAMPLE", S_SECRET, sizeof(S_SECRET) - 1, token};
    s_check_encode(path);
    req.s3 = 1;
    s_one(&req, &creds);
    req.s3 = 0;
    req.service = "kms";
    s_one(&req, &creds);
    free(text);
    return 0;
}
