/*
 * The kit's SigV4 signer as a filter, for unit.sigv4_botocore (sigv4_botocore.py), which asks
 * botocore the same questions. Reads one JSON object per line on stdin and writes one per line
 * on stdout:
 *
 *   in:  {"method", "host", "path", "query", "region", "service", "s3": bool, "when": seconds,
 *         "akid", "secret", "token", "headers": ["Name: value", ...], "payload_hash",
 *         "body_hex", "encode": {"text", "keep_slash"}, "params": [[name, value|null], ...]}
 *        (every member but method, host, path, region and service may be left out)
 *   out: {"status", "error", "signature", "authorization", "amz_date", "content_sha256",
 *         "security_token", "creq", "sts", "encoded", "query"}
 *
 * "encoded" is kpk_aws_uri_encode of encode.text, "query" kpk_sigv4_query of params; the
 * Authorization and other header lines are what kpk_sigv4_sign returns, whole. Test-only: it
 * prints the canonical request, which holds the session token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <keyplane/kit/sigv4.h>

#define S_MAX_HEADERS 64
#define S_MAX_PARAMS 64

static const char *s_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int s_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* body_hex decoded into a malloc'd buffer (*len bytes); NULL with *len 0 when absent. */
static uint8_t *s_body(const json_t *in, size_t *len)
{
    const char *hex = s_str(in, "body_hex");
    *len = 0;
    if (hex == NULL)
        return NULL;
    size_t n = strlen(hex) / 2;
    uint8_t *b = malloc(n + 1);
    if (b == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi = s_nibble(hex[2 * i]), lo = s_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return NULL;
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n;
    return b;
}

static void s_extras(const json_t *in, json_t *out)
{
    const json_t *enc = json_object_get(in, "encode");
    if (enc != NULL) {
        const json_t *text = json_object_get(enc, "text");
        size_t len = json_string_length(text);
        size_t cap = 3 * len + 1;
        char *buf = malloc(cap);
        if (buf != NULL && kpk_aws_uri_encode(json_string_value(text), len,
                                              json_is_true(json_object_get(enc, "keep_slash")), buf,
                                              cap) != (size_t)-1)
            json_object_set_new(out, "encoded", json_string(buf));
        free(buf);
    }
    const json_t *params = json_object_get(in, "params");
    if (params != NULL) {
        kpk_query_param ps[S_MAX_PARAMS];
        size_t n = json_array_size(params);
        if (n > S_MAX_PARAMS)
            n = S_MAX_PARAMS;
        for (size_t i = 0; i < n; i++) {
            const json_t *p = json_array_get(params, i);
            ps[i].name = json_string_value(json_array_get(p, 0));
            ps[i].value = json_string_value(json_array_get(p, 1));
        }
        char *q = NULL;
        if (kpk_sigv4_query(ps, n, &q) == KP_OK)
            json_object_set_new(out, "query", json_string(q));
        free(q);
    }
}

static json_t *s_one(const json_t *in)
{
    const char *headers[S_MAX_HEADERS + 1];
    const json_t *hs = json_object_get(in, "headers");
    size_t nh = json_array_size(hs);
    if (nh > S_MAX_HEADERS)
        nh = S_MAX_HEADERS;
    for (size_t i = 0; i < nh; i++)
        headers[i] = json_string_value(json_array_get(hs, i));
    headers[nh] = NULL;
    size_t body_len = 0;
    uint8_t *body = s_body(in, &body_len);
    kpk_sigv4_request req = {
        .method = s_str(in, "method"),
        .host = s_str(in, "host"),
        .path = s_str(in, "path"),
        .query = s_str(in, "query"),
        .region = s_str(in, "region"),
        .service = s_str(in, "service"),
        .headers = headers,
        .payload_hash = s_str(in, "payload_hash"),
        .body = body,
        .body_len = body_len,
        .s3 = json_is_true(json_object_get(in, "s3")),
        .when = (time_t)json_integer_value(json_object_get(in, "when")),
    };
    const char *secret = s_str(in, "secret");
    kpk_sigv4_creds creds = {s_str(in, "akid"), secret, secret != NULL ? strlen(secret) : 0,
                             s_str(in, "token")};
    kpk_sigv4_out sig;
    char err[256] = "", *creq = NULL, *sts = NULL;
    kp_status st = kpk_sigv4_sign(&req, &creds, &sig, err, sizeof(err));
    json_t *out = json_pack("{s:i, s:s}", "status", (int)st, "error", err);
    if (st == KP_OK && kpk_sigv4_debug(&req, &creds, &creq, &sts) == KP_OK) {
        json_object_set_new(out, "signature", json_string(sig.signature));
        json_object_set_new(out, "authorization", json_string(sig.authorization));
        json_object_set_new(out, "amz_date", json_string(sig.amz_date));
        json_object_set_new(out, "content_sha256", json_string(sig.content_sha256));
        json_object_set_new(out, "security_token",
                            sig.security_token != NULL ? json_string(sig.security_token)
                                                       : json_null());
        json_object_set_new(out, "creq", json_string(creq));
        json_object_set_new(out, "sts", json_string(sts));
    }
    kpk_sigv4_out_free(&sig);
    s_extras(in, out);
    free(creq);
    free(sts);
    free(body);
    return out;
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    while (getline(&line, &cap, stdin) > 0) {
        json_error_t jerr;
        json_t *in = json_loads(line, 0, &jerr);
        if (!json_is_object(in)) {
            fprintf(stderr, "sigv4_tool: line %ld is not a JSON object: %s\n", n + 1, jerr.text);
            json_decref(in);
            free(line);
            return 2;
        }
        json_t *out = s_one(in);
        char *text = json_dumps(out, JSON_COMPACT);
        if (text == NULL) {
            fprintf(stderr, "sigv4_tool: cannot write the answer to line %ld\n", n + 1);
            free(line);
            return 2;
        }
        puts(text);
        free(text);
        json_decref(out);
        json_decref(in);
        n++;
    }
    free(line);
    fflush(stdout);
    return 0;
}
