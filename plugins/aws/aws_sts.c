/*
 * AWS STS, the two calls the credential chain makes (the STS API reference): AssumeRole, signed
 * with the credentials of a source profile, and AssumeRoleWithWebIdentity, unsigned, carrying
 * an OIDC token (EKS's projected service-account token). Both are the query protocol: a form
 * POST, an XML answer whose Credentials hold the temporary keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "aws_internal.h"

#define S_TOKEN_MAX (16 * 1024) /* a web identity token: a JWT of a few KB */

/* What an STS answer's Credentials hold; the secret parts are wiped when done. */
typedef struct s_sts {
    char akid[128];
    char secret[256];
    char token[8192];
    char expiration[64];
    bool too_long;
} s_sts;

static void s_take(char *dst, size_t cap, const char *text, bool *too_long)
{
    if (strlen(text) >= cap)
        *too_long = true;
    else
        memcpy(dst, text, strlen(text) + 1);
}

static kp_status s_leaf(void *arg, const char *path, const char *text)
{
    s_sts *c = arg;
    const char *tail = strstr(path, "/Credentials/");
    if (tail == NULL)
        return KP_OK;
    tail += strlen("/Credentials/");
    if (strcmp(tail, "AccessKeyId") == 0)
        s_take(c->akid, sizeof(c->akid), text, &c->too_long);
    else if (strcmp(tail, "SecretAccessKey") == 0)
        s_take(c->secret, sizeof(c->secret), text, &c->too_long);
    else if (strcmp(tail, "SessionToken") == 0)
        s_take(c->token, sizeof(c->token), text, &c->too_long);
    else if (strcmp(tail, "Expiration") == 0)
        s_take(c->expiration, sizeof(c->expiration), text, &c->too_long);
    return KP_OK;
}

/* Sends the form body to STS and takes the Credentials of its answer into out. */
static kp_status s_call(kp_aws_inst *a, const kp_aws_creds *creds, const char *what,
                        const char *body, const char *source, kp_aws_creds *out)
{
    static const char *const headers[] = {
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL};
    kp_aws_req req = {.service = "sts",
                      .region = a->region,
                      .endpoint = a->sts_endpoint,
                      .method = "POST",
                      .path = "/",
                      .headers = headers,
                      .body = (const uint8_t *)body,
                      .body_len = strlen(body),
                      .anonymous = creds == NULL};
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    KP_GUARD(kp_aws_send_with(a, &req, creds, &r));
    kp_status st = KP_OK;
    if (r.status / 100 != 2) {
        st = kp_aws_fail(a, &r, what, NULL, 0);
        kpk_http_response_free(&r);
        /* not KP_ERR_NOT_FOUND (an endpoint that is not STS answering 404): the chain would
         * take that for a source that does not apply and go on to the next one */
        return st == KP_ERR_NOT_FOUND ? KP_ERR_BACKEND : st;
    }
    s_sts c;
    memset(&c, 0, sizeof(c));
    char why[KP_AWS_ERR];
    st = kp_aws_xml_walk(r.body, r.len, s_leaf, &c, why, sizeof(why));
    kpk_http_response_free(&r);
    time_t exp = kp_aws_iso8601(c.expiration);
    if (st != KP_OK)
        st = kp_aws_err(a, st, "%s: %s", what, why);
    else if (c.too_long || c.akid[0] == '\0' || c.secret[0] == '\0' || c.token[0] == '\0' ||
             exp <= 0)
        st = kp_aws_err(a, KP_ERR_BACKEND, "%s: the answer holds no usable Credentials", what);
    else
        st = kp_aws_creds_set(a, out, c.akid, c.secret, strlen(c.secret), c.token, exp, source);
    OPENSSL_cleanse(&c, sizeof(c));
    return st;
}

/* Appends "&name=value" to a form body, value encoded; false when it does not fit. */
static bool s_form(char *body, size_t cap, const char *name, const char *value)
{
    size_t at = strlen(body);
    int n = snprintf(body + at, cap - at, "&%s=", name);
    if (n < 0 || (size_t)n >= cap - at)
        return false;
    at += (size_t)n;
    return kpk_aws_uri_encode(value, strlen(value), 0, body + at, cap - at) != (size_t)-1;
}

kp_status kp_aws_sts_assume(kp_aws_inst *a, const kp_aws_creds *creds, const char *role_arn,
                            const char *session, kp_aws_creds *out)
{
    char body[2048] = "Action=AssumeRole&Version=2011-06-15";
    if (!s_form(body, sizeof(body), "RoleArn", role_arn) ||
        !s_form(body, sizeof(body), "RoleSessionName", session))
        return kp_aws_err(a, KP_ERR_CONFIG, "role %s: the request is too long", role_arn);
    char what[300];
    snprintf(what, sizeof(what), "sts AssumeRole %.256s", role_arn);
    return s_call(a, creds, what, body, "assume-role", out);
}

/* The token file's contents (one line, whitespace trimmed) into a new secret. */
static kp_status s_token(kp_aws_inst *a, const char *path, kp_secret **out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return kp_aws_err(a, KP_ERR_CONFIG, "cannot read the web identity token file %s", path);
    kp_secret *s = a->up->secret_new(S_TOKEN_MAX + 1);
    kp_status st = s != NULL ? KP_OK : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    size_t n = 0;
    if (st == KP_OK) {
        char *buf = (char *)a->up->secret_data(s);
        n = fread(buf, 1, S_TOKEN_MAX + 1, f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        if (n == 0 || n > S_TOKEN_MAX)
            st = kp_aws_err(a, KP_ERR_CONFIG, "the web identity token file %s is %s", path,
                            n == 0 ? "empty" : "over 16 KiB");
        else
            st = a->up->secret_shrink(s, n);
    }
    fclose(f);
    if (st == KP_OK)
        *out = s;
    else
        a->up->secret_free(s);
    return st;
}

kp_status kp_aws_sts_web_identity(kp_aws_inst *a, const char *role_arn, const char *token_file,
                                  const char *session, kp_aws_creds *out)
{
    kp_secret *token = NULL;
    KP_GUARD(s_token(a, token_file, &token));
    size_t cap = 2048 + 3 * a->up->secret_len(token);
    char *body = malloc(cap);
    kp_status st = body != NULL ? KP_OK : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK) {
        snprintf(body, cap, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15");
        /* the token as text: copy it NUL-terminated into the body only */
        size_t tl = a->up->secret_len(token);
        char *t = malloc(tl + 1);
        bool ok = t != NULL;
        if (ok) {
            memcpy(t, a->up->secret_cdata(token), tl);
            t[tl] = '\0';
            ok = s_form(body, cap, "RoleArn", role_arn) &&
                 s_form(body, cap, "RoleSessionName", session) &&
                 s_form(body, cap, "WebIdentityToken", t);
            OPENSSL_cleanse(t, tl + 1);
            free(t);
        }
        if (!ok)
            st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    }
    char what[300];
    snprintf(what, sizeof(what), "sts AssumeRoleWithWebIdentity %.256s", role_arn);
    if (st == KP_OK)
        st = s_call(a, NULL, what, body, "web-identity", out);
    if (body != NULL) {
        OPENSSL_cleanse(body, cap);
        free(body);
    }
    a->up->secret_free(token);
    return st;
}
