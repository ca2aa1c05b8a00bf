/*
 * Bearer tokens for Key Vault (Key Vault authentication: the 401 challenge and the identity
 * platform's token endpoint):
 *   - client credentials: POST {authority}/{tenant}/oauth2/v2.0/token, form-encoded;
 *   - managed identity: GET the IMDS token endpoint with `Metadata: true`.
 * The scope comes from the vault's 401 challenge (or the `scope` param), and is always derived
 * from the challenge's resource ("<resource>/.default"), as the .NET SDK's
 * ChallengeBasedAuthenticationPolicy derives it: a `scope` the challenge names beside its
 * resource is never asked for. Unless verify_challenge_resource is off (emulators on
 * 127.0.0.1), every host the challenge names, its resource's and its scope's, must be the
 * vault's host or a parent domain of it, as the Azure SDKs check the scope they request
 * (azure-sdk-for-python, azure-keyvault-keys _shared/challenge_auth_policy.py, on_challenge:
 * the request's host must end with "." + the scope's host unless verify_challenge_resource is
 * False; azure-sdk-for-js keyvault-common verifyChallengeResource; azure-sdk-for-net
 * ChallengeBasedAuthenticationPolicy, VerifyChallengeResource). So a "vault" cannot talk us
 * into a token for another service (resource="https://<vault host>" with
 * scope="https://management.azure.com/.default" asked for an ARM token before). The token
 * endpoint is always the configured authority: the client secret never goes where a challenge
 * points.
 *
 * A token is cached until shortly before it expires (5 minutes, or a quarter of a short
 * lifetime) and is refreshed once when the vault answers 401 to it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "akv_internal.h"

#define S_TOKEN_MAX 16384

static bool s_host_under(const char *host, const char *resource)
{
    /* resource is https://domain[:port][/...]; host must be domain, or end with "." + domain
     * where domain has a dot of its own (a parent such as vault.azure.net, never a bare "net").
     * A user part ("https://vault.azure.net:1@evil.example") names another host: refused. */
    if (strncasecmp(resource, "https://", 8) != 0)
        return false;
    const char *d = resource + 8;
    size_t authority = strcspn(d, "/?#");
    if (memchr(d, '@', authority) != NULL)
        return false;
    size_t dl = strcspn(d, ":/?#");
    size_t hl = strlen(host);
    if (dl == 0)
        return false;
    if (hl == dl)
        return strncasecmp(host, d, dl) == 0;
    return memchr(d, '.', dl) != NULL && hl > dl + 1 && host[hl - dl - 1] == '.' &&
           strncasecmp(host + hl - dl, d, dl) == 0;
}

kp_status kp_akv_take_challenge(kp_akv_inst *a, const char *header)
{
    kp_akv_challenge c;
    char err[KP_AKV_ERR];
    if (a->scope_param[0] != '\0') {
        snprintf(a->scope, sizeof(a->scope), "%s", a->scope_param);
        return KP_OK;
    }
    if (kp_akv_parse_challenge(header, &c, err, sizeof(err)) != KP_OK)
        return kp_akv_err(a, KP_ERR_AUTH, "%s: %s", a->place.vault_name, err);
    /* both what the challenge names: its resource and, when it names one, its scope */
    const char *named[] = {c.resource, c.scope};
    for (size_t i = 0; a->verify_challenge_resource && i < 2; i++) {
        if (!s_host_under(a->place.vault_host, named[i]))
            return kp_akv_err(
                a, KP_ERR_AUTH,
                "%s: the vault's challenge asks for a token for %s, which is not a parent "
                "domain of %s (verify_challenge_resource: false only for emulators)",
                a->place.vault_name, named[i], a->place.vault_host);
    }
    char scope[KP_AKV_URL_MAX];
    int n = snprintf(scope, sizeof(scope), "%s/.default", c.resource);
    if (n < 0 || (size_t)n >= sizeof(scope))
        return kp_akv_err(a, KP_ERR_AUTH, "%s: the vault's challenge names too long a resource",
                          a->place.vault_name);
    if (strcmp(a->scope, scope) != 0) {
        snprintf(a->scope, sizeof(a->scope), "%s", scope);
        a->up->secret_free(a->token);
        a->token = NULL;
    }
    if (a->tenant[0] == '\0' && c.tenant[0] != '\0')
        snprintf(a->tenant, sizeof(a->tenant), "%s", c.tenant);
    return KP_OK;
}

/* Percent-encodes s into out (RFC 3986 unreserved kept). By hand, not curl_easy_escape: the
 * client secret goes through it, and out may be kp_secret memory (curl would malloc a copy it
 * never wipes). */
static kp_status s_urlenc(const char *s, size_t len, char *out, size_t outlen)
{
    static const char x[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
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

/* Appends "name=urlenc(value)" to a secret form body. */
static kp_status s_form(char *buf, size_t cap, size_t *off, const char *name, const char *value,
                        size_t vlen)
{
    size_t nl = strlen(name);
    if (*off + nl + 2 >= cap)
        return KP_ERR_BUFFER_TOO_SMALL;
    if (*off > 0)
        buf[(*off)++] = '&';
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): a part of the form, ended below */
    memcpy(buf + *off, name, nl);
    *off += nl;
    buf[(*off)++] = '=';
    KP_GUARD(s_urlenc(value, vlen, buf + *off, cap - *off));
    *off += strlen(buf + *off);
    return KP_OK;
}

static kp_status s_client_secret(kp_akv_inst *a, kpk_http_response *r, char *where, size_t wlen)
{
    char url[2 * KP_AKV_URL_MAX];
    if (a->tenant[0] == '\0')
        return kp_akv_err(a, KP_ERR_CONFIG,
                          "%s: no tenant: set the tenant param (the vault's challenge named none)",
                          a->place.vault_name);
    snprintf(url, sizeof(url), "%s/%s/oauth2/v2.0/token", a->authority, a->tenant);
    snprintf(where, wlen, "%s/%s", a->authority, a->tenant);
    size_t sl = a->up->secret_len(a->client_secret);
    size_t cap = 3 * (sl + strlen(a->client_id) + strlen(a->scope)) + 128;
    kp_secret *body = a->up->secret_new(cap);
    if (body == NULL)
        return kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    char *b = (char *)a->up->secret_data(body);
    const char *secret = (const char *)a->up->secret_cdata(a->client_secret);
    size_t off = 0;
    kp_status st = s_form(b, cap, &off, "grant_type", "client_credentials", 18);
    if (st == KP_OK)
        st = s_form(b, cap, &off, "client_id", a->client_id, strlen(a->client_id));
    if (st == KP_OK)
        st = s_form(b, cap, &off, "client_secret", secret, sl);
    if (st == KP_OK)
        st = s_form(b, cap, &off, "scope", a->scope, strlen(a->scope));
    if (st != KP_OK)
        st = kp_akv_err(a, KP_ERR_INTERNAL, "token request too long");
    if (st == KP_OK) {
        const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                 "Accept: application/json", NULL};
        kpk_http_request req = {.method = "POST",
                                .url = url,
                                .headers = headers,
                                .body = (const uint8_t *)b,
                                .body_len = off};
        st = kp_akv_send(a, &req, r);
    }
    a->up->secret_free(body);
    return st;
}

static kp_status s_imds(kp_akv_inst *a, kpk_http_response *r, char *where, size_t wlen)
{
    char url[4 * KP_AKV_URL_MAX], res[2 * KP_AKV_URL_MAX], id[3 * 128];
    size_t sl = strlen(a->scope);
    size_t rl = sl > 9 && strcmp(a->scope + sl - 9, "/.default") == 0 ? sl - 9 : sl;
    kp_status st = s_urlenc(a->scope, rl, res, sizeof(res));
    if (st == KP_OK)
        st = s_urlenc(a->mi_client_id, strlen(a->mi_client_id), id, sizeof(id));
    if (st != KP_OK)
        return kp_akv_err(a, KP_ERR_INTERNAL, "IMDS request too long");
    snprintf(url, sizeof(url), "%s?api-version=2018-02-01&resource=%s%s%s", a->imds, res,
             id[0] != '\0' ? "&client_id=" : "", id);
    snprintf(where, wlen, "%s", a->imds);
    const char *headers[] = {"Metadata: true", "Accept: application/json", NULL};
    kpk_http_request req = {.method = "GET", .url = url, .headers = headers};
    return kp_akv_send(a, &req, r);
}

/* A token endpoint's refusal (r->status is not 200) as a status and a line. */
static kp_status s_refused(kp_akv_inst *a, const kpk_http_response *r, const char *where)
{
    char why[320];
    kp_akv_parse_token_error(r->body, r->len, why, sizeof(why));
    kp_status st = r->status == 429   ? KP_ERR_THROTTLED
                   : r->status >= 500 ? KP_ERR_UNAVAILABLE
                                      : KP_ERR_AUTH;
    return kp_akv_err(a, st, "%s: token request to %s refused (HTTP %ld): %s", a->place.vault_name,
                      where, r->status, why[0] != '\0' ? why : "no error description");
}

/* Takes the token of a 200 answer as a->token ("Bearer ..."), cached until shortly before it
 * expires. */
static kp_status s_take_token(kp_akv_inst *a, const kpk_http_response *r, time_t now,
                              const char *where)
{
    char err[KP_AKV_ERR];
    int64_t life = 0;
    kp_secret *tok = a->up->secret_new(S_TOKEN_MAX + 8);
    if (tok == NULL)
        return kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    char *t = (char *)a->up->secret_data(tok);
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): the token follows and ends it */
    memcpy(t, "Bearer ", 7);
    kp_status st =
        kp_akv_parse_token(r->body, r->len, now, t + 7, S_TOKEN_MAX, &life, err, sizeof(err));
    if (st != KP_OK)
        st = kp_akv_err(a, st, "%s: token from %s unusable: %s", a->place.vault_name, where, err);
    if (st == KP_OK)
        st = a->up->secret_shrink(tok, strlen(t));
    if (st == KP_OK) {
        a->token = tok;
        tok = NULL;
        a->token_exp = now + (time_t)(life >= 1200 ? life - 300 : life - life / 4);
    }
    a->up->secret_free(tok);
    return st;
}

kp_status kp_akv_token(kp_akv_inst *a, bool forced)
{
    time_t now = time(NULL);
    if (!forced && a->token != NULL && now < a->token_exp)
        return KP_OK;
    a->up->secret_free(a->token);
    a->token = NULL;

    kpk_http_response r;
    char where[2 * KP_AKV_URL_MAX];
    memset(&r, 0, sizeof(r));
    kp_status st = a->auth == KP_AKV_AUTH_CLIENT_SECRET
                       ? s_client_secret(a, &r, where, sizeof(where))
                       : s_imds(a, &r, where, sizeof(where));
    if (st == KP_OK && r.status != 200)
        st = s_refused(a, &r, where);
    if (st == KP_OK)
        st = s_take_token(a, &r, now, where);
    kpk_http_response_free(&r);
    return st;
}
