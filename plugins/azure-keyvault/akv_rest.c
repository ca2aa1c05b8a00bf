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

void kp_akv_resp_free(kp_akv_resp *r)
{
    if (r == NULL)
        return;
    kpk_http_response_free(&r->http);
    r->status = 0;
}

kp_status kp_akv_resp_value(kp_akv_inst *a, kp_akv_resp *r, size_t max, const char *what,
                            kp_secret **out)
{
    /* the value cannot decode to more than the whole body could */
    size_t cap = kpk_b64_decoded_max(r->http.len);
    cap = cap == 0 ? 1 : cap > max ? max : cap;
    char err[KP_AKV_ERR];
    kp_secret *s = a->up->secret_new(cap);
    kp_status st = s == NULL ? kp_akv_err(a, KP_ERR_NOMEM, "out of memory") : KP_OK;
    if (st == KP_OK) {
        st = kp_akv_parse_value(r->http.body, r->http.len, a->up->secret_data(s), &cap, err,
                                sizeof(err));
        if (st != KP_OK)
            st = kp_akv_err(a, st, "%s: %s: %s", a->place.vault_name, what, err);
    }
    if (st == KP_OK) {
        st = a->up->secret_shrink(s, cap);
        if (st != KP_OK)
            st = kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    }
    if (st == KP_OK) {
        *out = s;
        s = NULL;
    }
    a->up->secret_free(s);
    kp_akv_resp_free(r);
    return st;
}

/* A nextLink (absolute) is this vault's: the same URL base, or the host with the explicit :443
 * the service writes (as the Azure SDK's recorded exchanges show) when the vault URL has no
 * port. */
static bool s_same_vault(const kp_akv_inst *a, const char *link)
{
    size_t vl = strlen(a->place.vault_url);
    if (strncmp(link, a->place.vault_url, vl) == 0 && (link[vl] == '/' || link[vl] == '\0'))
        return true;
    const char *host = link + 8;
    size_t hl = strcspn(host, "/");
    return hl == strlen(a->place.vault_host) + 4 &&
           strncmp(host, a->place.vault_host, hl - 4) == 0 &&
           strncmp(host + hl - 4, ":443", 4) == 0 && strchr(a->place.vault_url + 8, ':') == NULL;
}

/* The URL of path: relative paths get the vault URL and api-version; an absolute nextLink
 * must point into this vault (the token is never sent anywhere else). */
static kp_status s_url(kp_akv_inst *a, const char *path, char *url, size_t len)
{
    int n;
    if (strncmp(path, "https://", 8) == 0) {
        if (!s_same_vault(a, path))
            return kp_akv_err(a, KP_ERR_BACKEND, "%s: the vault sent a nextLink to another host",
                              a->place.vault_name);
        n = snprintf(url, len, "%s", path);
    } else {
        n = snprintf(url, len, "%s%s%sapi-version=%s", a->place.vault_url, path,
                     strchr(path, '?') != NULL ? "&" : "?", a->api_version);
    }
    if (n < 0 || (size_t)n >= len)
        return kp_akv_err(a, KP_ERR_INVALID_ARG, "%s: URL too long", a->place.vault_name);
    return KP_OK;
}

/* Maps a non-2xx answer to a status and a one-line message. */
static kp_status s_fail(kp_akv_inst *a, const kpk_http_response *r, const char *what)
{
    const char *vault = a->place.vault_name;
    kp_akv_error_body e;
    kp_akv_parse_error(r->body, r->len, &e);
    const char *code = e.code[0] != '\0' ? e.code : "no error code";
    const char *msg = e.message[0] != '\0' ? e.message : "(no message)";
    kp_status st = kpk_http_status(r->status);
    if (r->status == 400)
        st = KP_ERR_BACKEND; /* Key Vault's "bad parameter": the request, not the caller */
    if (r->status == 409 && strcmp(e.inner, "ObjectIsDeletedButRecoverable") == 0)
        return kp_akv_err(a, KP_ERR_EXISTS,
                          "%s: %s: the key is deleted but recoverable in vault '%s': recover it "
                          "(az keyvault key recover --vault-name %s --name NAME) or, if it "
                          "must go, purge it; keyplane does neither",
                          vault, what, vault, vault);
    if (r->status == 409 && strcmp(e.inner, "ObjectIsBeingDeleted") == 0)
        return kp_akv_err(a, KP_ERR_UNAVAILABLE,
                          "%s: %s: the key is being deleted in vault '%s'; wait, then recover it",
                          vault, what, vault);
    /* x-ms-request-id and our x-ms-client-request-id are what Azure support asks for; they go
     * before the (long) message */
    char rid[128];
    if (r->request_id != NULL)
        snprintf(rid, sizeof(rid), " [request %.40s, client request %s]", r->request_id,
                 a->client_rid);
    else
        snprintf(rid, sizeof(rid), " [client request %s]", a->client_rid);
    if (r->retry_after_ms > 0)
        return kp_akv_err(a, st,
                          "%s: %s: HTTP %ld %s%s: %s (after %u attempt%s; it asked to be retried "
                          "in %ld s, past this operation's deadline)",
                          vault, what, r->status, code, rid, msg, r->attempts,
                          r->attempts == 1 ? "" : "s", (r->retry_after_ms + 999) / 1000);
    if (r->status == 429 || r->status >= 500)
        return kp_akv_err(a, st, "%s: %s: HTTP %ld %s%s: %s (after %u attempts)", vault, what,
                          r->status, code, rid, msg, r->attempts);
    return kp_akv_err(a, st, "%s: %s: HTTP %ld %s%s: %s", vault, what, r->status, code, rid, msg);
}

/* Sends once, with the current token (and the body) when authorized, else bare. */
static kp_status s_once(kp_akv_inst *a, const char *method, const char *url, const uint8_t *body,
                        size_t body_len, unsigned flags, bool authorized, kpk_http_response *out)
{
    const char *headers[5];
    size_t nh = 0, authlen = 0;
    char *auth = NULL, crid[80];
    /* every request names itself, as the Azure SDKs do (a retry by the transport keeps it) */
    (void)kpk_uuid4(a->client_rid);
    snprintf(crid, sizeof(crid), "x-ms-client-request-id: %s", a->client_rid);
    if (authorized) {
        /* The header is wiped after use but is not a kp_secret: the kit copies it into its
         * header list and libcurl into its send buffer, neither of them locked memory, so a
         * locked copy here would protect nothing and cost an mlock, a munlock and two madvise
         * calls per request (tests/bench/azure). The token itself stays a kp_secret. */
        size_t tl = a->up->secret_len(a->token);
        authlen = tl + sizeof("Authorization: ");
        if ((auth = malloc(authlen)) == NULL)
            return kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
        memcpy(auth, "Authorization: ", 15);
        memcpy(auth + 15, a->up->secret_cdata(a->token), tl);
        auth[15 + tl] = '\0';
        headers[nh++] = auth;
    }
    if (body != NULL && authorized)
        headers[nh++] = "Content-Type: application/json";
    headers[nh++] = "Accept: application/json";
    headers[nh++] = crid;
    headers[nh] = NULL;
    kpk_http_request req = {.method = method,
                            .url = url,
                            .headers = headers,
                            .body = authorized ? body : NULL,
                            .body_len = authorized ? body_len : 0,
                            .flags = flags};
    /* Key Vault counts creates (an import is one) apart from every other transaction; a
     * request without a token is not counted */
    bool create = strcmp(method, "PUT") == 0 ||
                  (strcmp(method, "POST") == 0 && strstr(url, "/create?") != NULL);
    kp_akv_pace ticket;
    if (authorized)
        kp_akv_pace_wait(a, create ? KP_AKV_CLASS_CREATE : KP_AKV_CLASS_OTHER, &ticket);
    kp_status st = kp_akv_send(a, &req, out);
    if (authorized)
        kp_akv_pace_done(a, &ticket, out->throttled);
    if (st != KP_OK) {
        char why[KP_ERROR_MAX + 1];
        snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
        st = kp_akv_err(a, st, "%s [client request %s]", why, a->client_rid);
    }
    if (auth != NULL) {
        OPENSSL_cleanse(auth, authlen);
        free(auth);
    }
    return st;
}

/* No scope yet: provokes the challenge without a token and without the body, and learns it. */
static kp_status s_probe(kp_akv_inst *a, const char *method, const char *url, unsigned flags,
                         const char *what)
{
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_status st = s_once(a, method, url, NULL, 0, flags, false, &r);
    if (st == KP_OK && (r.status == 429 || r.status >= 500))
        st = s_fail(a, &r, what); /* throttled or failing: transient, not auth */
    else if (st == KP_OK && (r.status != 401 || r.www_authenticate == NULL))
        st = kp_akv_err(a, KP_ERR_AUTH,
                        "%s: the vault answered HTTP %ld without a bearer challenge to a "
                        "request without a token",
                        a->place.vault_name, r.status);
    else if (st == KP_OK)
        st = kp_akv_take_challenge(a, r.www_authenticate);
    kpk_http_response_free(&r);
    return st;
}

/* Sends with a token; a 401 to it (expired or revoked; the challenge may have moved) refreshes
 * it once. out is empty after a failure. */
static kp_status s_authorized(kp_akv_inst *a, const char *method, const char *url,
                              const uint8_t *body, size_t body_len, unsigned flags,
                              kpk_http_response *out)
{
    kp_status st = kp_akv_token(a, false);
    if (st == KP_OK)
        st = s_once(a, method, url, body, body_len, flags, true, out);
    if (st == KP_OK && out->status == 401) {
        if (out->www_authenticate != NULL)
            st = kp_akv_take_challenge(a, out->www_authenticate);
        kpk_http_response_free(out);
        if (st == KP_OK)
            st = kp_akv_token(a, true);
        if (st == KP_OK)
            st = s_once(a, method, url, body, body_len, flags, true, out);
    }
    return st;
}

kp_status kp_akv_call(kp_akv_inst *a, const char *method, const char *path, const uint8_t *body,
                      size_t body_len, unsigned flags, const char *what, kp_akv_resp *resp)
{
    char url[2 * KP_AKV_URL_MAX];
    memset(resp, 0, sizeof(*resp));
    kp_status st = s_url(a, path, url, sizeof(url));
    if (st == KP_OK && a->scope[0] == '\0')
        st = s_probe(a, method, url, flags, what);
    if (st == KP_OK)
        st = s_authorized(a, method, url, body, body_len, flags, &resp->http);
    if (st == KP_OK)
        resp->status = resp->http.status;
    if (st == KP_OK && (resp->status < 200 || resp->status >= 300)) {
        /* 404 quietly: the caller words it */
        st = resp->status == 404 ? KP_ERR_NOT_FOUND : s_fail(a, &resp->http, what);
        kpk_http_response_free(&resp->http); /* the status stays: a 400 is not a transport error */
    }
    return st;
}

kp_status kp_akv_call_bundle(kp_akv_inst *a, const char *method, const char *path,
                             const uint8_t *body, size_t body_len, unsigned flags, const char *what,
                             kp_akv_bundle *b)
{
    kp_akv_resp r;
    char err[KP_AKV_ERR];
    KP_GUARD(kp_akv_call(a, method, path, body, body_len, flags, what, &r));
    kp_status st = kp_akv_parse_bundle(r.http.body, r.http.len, b, err, sizeof(err));
    kp_akv_resp_free(&r);
    if (st != KP_OK)
        return kp_akv_err(a, st, "%s: %s: %s", a->place.vault_name, what, err);
    return KP_OK;
}

kp_status kp_akv_make_bundle(kp_akv_inst *a, const char *method, const char *path,
                             const uint8_t *body, size_t body_len, const char *what,
                             kp_akv_bundle *b)
{
    kp_status st = kp_akv_call_bundle(a, method, path, body, body_len, KPK_HTTP_UNSAFE, what, b);
    if (st == KP_ERR_NOT_FOUND)
        return kp_akv_err(a, st, "%s: %s: HTTP 404", a->place.vault_name, what);
    return st;
}

kp_status kp_akv_json_body(kp_akv_inst *a, const json_t *j, kp_secret **out)
{
    /* json_dumpb writes straight into our buffer (no intermediate copy in jansson's heap);
     * the first call only measures. */
    size_t need = json_dumpb(j, NULL, 0, JSON_COMPACT);
    if (need == 0)
        return kp_akv_err(a, KP_ERR_INTERNAL, "cannot serialise a request");
    kp_secret *s = a->up->secret_new(need);
    if (s == NULL)
        return kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    kp_status st = KP_OK;
    if (json_dumpb(j, (char *)a->up->secret_data(s), need, JSON_COMPACT) != need)
        st = kp_akv_err(a, KP_ERR_INTERNAL, "cannot serialise a request");
    if (st == KP_OK) {
        *out = s;
        s = NULL;
    }
    a->up->secret_free(s);
    return st;
}
