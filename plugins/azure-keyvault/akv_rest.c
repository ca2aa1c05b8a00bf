/*
 * One call to the Key Vault keys API: URL with api-version, the bearer challenge, the token,
 * one refresh on a 401, and the service's error mapped to a status with its code and message.
 *
 * The first call of an instance goes out without a token and without its body, as the Azure
 * SDKs do, to provoke the 401 challenge that names the token's scope and tenant
 * (Key Vault authentication): the key material of an import is only sent once a token
 * is attached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>

#include "akv_internal.h"

void akv_resp_free(akv_resp *r)
{
    if (r == NULL)
        return;
    kpk_http_response_free(&r->http);
    r->status = 0;
}

kp_status akv_resp_value(akv_inst *a, akv_resp *r, size_t max, const char *what, kp_secret **out)
{
    /* the value cannot decode to more than the whole body could */
    size_t cap = kpk_b64_decoded_max(r->http.len);
    cap = cap == 0 ? 1 : cap > max ? max : cap;
    char err[KP_AKV_ERR];
    kp_secret *s = a->up->secret_new(cap);
    kp_status st = s == NULL ? KP_ERR_NOMEM
                             : akv_parse_value(r->http.body, r->http.len, a->up->secret_data(s),
                                               &cap, err, sizeof(err));
    akv_resp_free(r);
    if (st == KP_OK)
        st = a->up->secret_shrink(s, cap);
    if (st != KP_OK) {
        a->up->secret_free(s);
        return st == KP_ERR_NOMEM ? akv_err(a, st, "out of memory")
                                  : akv_err(a, st, "%s: %s: %s", a->vault_name, what, err);
    }
    *out = s;
    return KP_OK;
}

kp_status akv_send(akv_inst *a, const kpk_http_request *req, kpk_http_response *resp)
{
    char err[KP_AKV_ERR];
    kp_status st;
    if (a->http == NULL && (st = kpk_http_new(&a->http_cfg, &a->http, err, sizeof(err))) != KP_OK)
        return akv_err(a, st, "%s: %s", a->vault_name, err);
    st = kpk_http_send(a->http, req, resp, err, sizeof(err));
    if (st != KP_OK)
        return akv_err(a, st, "%s", err);
    return KP_OK;
}

kp_status akv_urlenc(const char *s, size_t len, char *out, size_t outlen)
{
    static const char x[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.' || c == '_' || c == '~';
        if (o + (keep ? 1 : 3) >= outlen)
            return KP_ERR_BUFFER_TOO_SMALL;
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = x[c >> 4];
            out[o++] = x[c & 15];
        }
    }
    out[o] = '\0';
    return KP_OK;
}

/* The URL of path: relative paths get the vault URL and api-version; an absolute nextLink
 * must point into this vault (the token is never sent anywhere else). */
static kp_status s_url(akv_inst *a, const char *path, char *url, size_t len)
{
    int n;
    if (strncmp(path, "https://", 8) == 0) {
        size_t vl = strlen(a->vault_url);
        const char *rest = path + 8 + strcspn(path + 8, "/");
        const char *host = path + 8;
        size_t hl = (size_t)(rest - host);
        /* the service writes nextLinks with an explicit :443 (as the Azure SDK's recorded exchanges
         * show) */
        int same = strncmp(path, a->vault_url, vl) == 0 && (path[vl] == '/' || path[vl] == '\0');
        if (!same && hl == strlen(a->vault_host) + 4 && strncmp(host, a->vault_host, hl - 4) == 0 &&
            strncmp(host + hl - 4, ":443", 4) == 0 && strchr(a->vault_url + 8, ':') == NULL)
            same = 1;
        if (!same)
            return akv_err(a, KP_ERR_BACKEND, "%s: the vault sent a nextLink to another host",
                           a->vault_name);
        n = snprintf(url, len, "%s", path);
    } else {
        n = snprintf(url, len, "%s%s%sapi-version=%s", a->vault_url, path,
                     strchr(path, '?') != NULL ? "&" : "?", a->api_version);
    }
    if (n < 0 || (size_t)n >= len)
        return akv_err(a, KP_ERR_INVALID_ARG, "%s: URL too long", a->vault_name);
    return KP_OK;
}

/* Maps a non-2xx answer to a status and a one-line message. */
static kp_status s_fail(akv_inst *a, const kpk_http_response *r, const char *what)
{
    akv_error_body e;
    akv_parse_error(r->body, r->len, &e);
    const char *code = e.code[0] != '\0' ? e.code : "no error code";
    const char *msg = e.message[0] != '\0' ? e.message : "(no message)";
    kp_status st = kpk_http_status(r->status);
    if (r->status == 400)
        st = KP_ERR_BACKEND; /* Key Vault's "bad parameter": the request, not the caller */
    if (r->status == 409 && strcmp(e.inner, "ObjectIsDeletedButRecoverable") == 0)
        return akv_err(a, KP_ERR_EXISTS,
                       "%s: %s: the key is deleted but recoverable in vault '%s': recover it "
                       "(az keyvault key recover --vault-name %s --name NAME) or, if it "
                       "must go, purge it; keyplane does neither",
                       a->vault_name, what, a->vault_name, a->vault_name);
    if (r->status == 409 && strcmp(e.inner, "ObjectIsBeingDeleted") == 0)
        return akv_err(a, KP_ERR_UNAVAILABLE,
                       "%s: %s: the key is being deleted in vault '%s'; wait, then recover it",
                       a->vault_name, what, a->vault_name);
    /* x-ms-request-id is what Azure support asks for; it goes before the (long) message */
    char rid[64] = "";
    if (r->request_id != NULL)
        snprintf(rid, sizeof(rid), " [request %.40s]", r->request_id);
    if (r->status == 429 || r->status >= 500)
        return akv_err(a, st, "%s: %s: HTTP %ld %s%s: %s (after %u attempts)", a->vault_name, what,
                       r->status, code, rid, msg, r->attempts);
    return akv_err(a, st, "%s: %s: HTTP %ld %s%s: %s", a->vault_name, what, r->status, code, rid,
                   msg);
}

/* Sends once with the current token (or none when probing). */
static kp_status s_once(akv_inst *a, const char *method, const char *url, const uint8_t *body,
                        size_t body_len, unsigned flags, bool probe, kpk_http_response *out)
{
    const char *headers[4];
    size_t nh = 0, authlen = 0;
    char *auth = NULL;
    if (!probe) {
        /* The header is wiped after use but is not a kp_secret: the kit copies it into its
         * header list and libcurl into its send buffer, neither of them locked memory, so a
         * locked copy here would protect nothing and cost an mlock, a munlock and two madvise
         * calls per request (tests/bench/azure). The token itself stays a kp_secret. */
        size_t tl = a->up->secret_len(a->token);
        authlen = tl + sizeof("Authorization: ");
        if ((auth = malloc(authlen)) == NULL)
            return akv_err(a, KP_ERR_NOMEM, "out of memory");
        memcpy(auth, "Authorization: ", 15);
        memcpy(auth + 15, a->up->secret_cdata(a->token), tl);
        auth[15 + tl] = '\0';
        headers[nh++] = auth;
    }
    if (body != NULL && !probe)
        headers[nh++] = "Content-Type: application/json";
    headers[nh++] = "Accept: application/json";
    headers[nh] = NULL;
    kpk_http_request req = {method, url, headers, probe ? NULL : body, probe ? 0 : body_len, flags};
    kp_status st = akv_send(a, &req, out);
    if (auth != NULL) {
        OPENSSL_cleanse(auth, authlen);
        free(auth);
    }
    return st;
}

kp_status akv_call(akv_inst *a, const char *method, const char *path, const uint8_t *body,
                   size_t body_len, unsigned flags, const char *what, akv_resp *resp)
{
    char url[2 * KP_AKV_URL_MAX];
    kp_status st;
    memset(resp, 0, sizeof(*resp));
    KP_AKV_GUARD(s_url(a, path, url, sizeof(url)));

    if (a->scope[0] == '\0') {
        /* no scope yet: provoke the challenge without a token and without the body */
        if ((st = s_once(a, method, url, body, body_len, flags, true, &resp->http)) != KP_OK)
            return st;
        if (resp->http.status == 429 || resp->http.status >= 500) {
            st = s_fail(a, &resp->http, what); /* throttled or failing: transient, not auth */
            akv_resp_free(resp);
            return st;
        }
        if (resp->http.status != 401 || resp->http.www_authenticate == NULL) {
            long got = resp->http.status;
            akv_resp_free(resp);
            return akv_err(a, KP_ERR_AUTH,
                           "%s: the vault answered HTTP %ld without a bearer challenge to a "
                           "request without a token",
                           a->vault_name, got);
        }
        st = akv_take_challenge(a, resp->http.www_authenticate);
        akv_resp_free(resp);
        if (st != KP_OK)
            return st;
    }
    for (int round = 0; round < 2; round++) {
        if ((st = akv_token(a, round > 0)) != KP_OK)
            return st;
        if ((st = s_once(a, method, url, body, body_len, flags, false, &resp->http)) != KP_OK)
            return st;
        resp->status = resp->http.status;
        if (resp->status != 401)
            break;
        /* a 401 with a token: expired or revoked; the challenge may have moved. Refresh once. */
        if (resp->http.www_authenticate != NULL && round == 0 &&
            (st = akv_take_challenge(a, resp->http.www_authenticate)) != KP_OK) {
            akv_resp_free(resp);
            return st;
        }
        if (round == 0)
            akv_resp_free(resp);
    }
    if (resp->status >= 200 && resp->status < 300)
        return KP_OK;
    if (resp->status == 404) {
        akv_resp_free(resp);
        return KP_ERR_NOT_FOUND;
    }
    st = s_fail(a, &resp->http, what);
    long status = resp->status;
    akv_resp_free(resp);
    resp->status = status; /* the caller may tell a 400 from a transport failure */
    return st;
}
