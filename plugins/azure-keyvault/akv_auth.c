/*
 * Bearer tokens for Key Vault (Key Vault authentication: the 401 challenge and the identity
 * platform's token endpoint):
 *   - client credentials: POST {authority}/{tenant}/oauth2/v2.0/token, form-encoded;
 *   - managed identity: GET the IMDS token endpoint with `Metadata: true`.
 * The scope comes from the vault's 401 challenge (or the `scope` param). Unless
 * verify_challenge_resource is off (emulators on 127.0.0.1), the challenge's resource must be a
 * parent domain of the vault's host, as the .NET and Python SDKs check, so a vault cannot talk
 * us into a token for another service. The token endpoint is always the configured authority:
 * the client secret never goes where a challenge points.
 *
 * A token is cached until shortly before it expires (5 minutes, or a quarter of a short
 * lifetime) and is refreshed once when the vault answers 401 to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "akv_internal.h"

#define S_TOKEN_MAX 16384

static bool s_host_under(const char *host, const char *resource)
{
    /* resource is https://domain[/...]; host must be domain or end with "." + domain */
    const char *d = resource + 8;
    size_t dl = strcspn(d, "/:?#");
    size_t hl = strlen(host);
    if (dl == 0)
        return false;
    if (hl == dl)
        return strncasecmp(host, d, dl) == 0;
    return hl > dl + 1 && host[hl - dl - 1] == '.' && strncasecmp(host + hl - dl, d, dl) == 0;
}

kp_status akv_take_challenge(akv_inst *a, const char *header)
{
    akv_challenge c;
    char err[KP_AKV_ERR];
    if (a->scope_param[0] != '\0') {
        snprintf(a->scope, sizeof(a->scope), "%s", a->scope_param);
        return KP_OK;
    }
    if (akv_parse_challenge(header, &c, err, sizeof(err)) != KP_OK)
        return akv_err(a, KP_ERR_AUTH, "%s: %s", a->vault_name, err);
    if (a->verify_challenge_resource && !s_host_under(a->vault_host, c.resource))
        return akv_err(a, KP_ERR_AUTH,
                       "%s: the vault's challenge asks for a token for %s, which is not a parent "
                       "domain of %s (verify_challenge_resource: false only for emulators)",
                       a->vault_name, c.resource, a->vault_host);
    if (strcmp(a->scope, c.scope) != 0) {
        snprintf(a->scope, sizeof(a->scope), "%s", c.scope);
        a->up->secret_free(a->token);
        a->token = NULL;
    }
    if (a->tenant[0] == '\0' && c.tenant[0] != '\0')
        snprintf(a->tenant, sizeof(a->tenant), "%s", c.tenant);
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
    memcpy(buf + *off, name, nl);
    *off += nl;
    buf[(*off)++] = '=';
    kp_status st = akv_urlenc(value, vlen, buf + *off, cap - *off);
    if (st == KP_OK)
        *off += strlen(buf + *off);
    return st;
}

static kp_status s_client_secret(akv_inst *a, kpk_http_response *r, char *where, size_t wlen)
{
    char url[2 * KP_AKV_URL_MAX];
    if (a->tenant[0] == '\0')
        return akv_err(a, KP_ERR_CONFIG,
                       "%s: no tenant: set the tenant param (the vault's challenge named none)",
                       a->vault_name);
    snprintf(url, sizeof(url), "%s/%s/oauth2/v2.0/token", a->authority, a->tenant);
    snprintf(where, wlen, "%s/%s", a->authority, a->tenant);
    size_t sl = a->up->secret_len(a->client_secret);
    size_t cap = 3 * (sl + strlen(a->client_id) + strlen(a->scope)) + 128;
    kp_secret *body = a->up->secret_new(cap);
    if (body == NULL)
        return akv_err(a, KP_ERR_NOMEM, "out of memory");
    char *b = (char *)a->up->secret_data(body);
    size_t off = 0;
    kp_status st = s_form(b, cap, &off, "grant_type", "client_credentials", 18);
    if (st == KP_OK)
        st = s_form(b, cap, &off, "client_id", a->client_id, strlen(a->client_id));
    if (st == KP_OK)
        st = s_form(b, cap, &off, "client_secret",
                    (const char *)a->up->secret_cdata(a->client_secret), sl);
    if (st == KP_OK)
        st = s_form(b, cap, &off, "scope", a->scope, strlen(a->scope));
    if (st != KP_OK) {
        a->up->secret_free(body);
        return akv_err(a, KP_ERR_INTERNAL, "token request too long");
    }
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                             "Accept: application/json", NULL};
    kpk_http_request req = {"POST", url, headers, (const uint8_t *)b, off, 0};
    st = akv_send(a, &req, r);
    a->up->secret_free(body);
    return st;
}

static kp_status s_imds(akv_inst *a, kpk_http_response *r, char *where, size_t wlen)
{
    char url[4 * KP_AKV_URL_MAX], res[2 * KP_AKV_URL_MAX], id[3 * 128];
    size_t sl = strlen(a->scope);
    size_t rl = sl > 9 && strcmp(a->scope + sl - 9, "/.default") == 0 ? sl - 9 : sl;
    if (akv_urlenc(a->scope, rl, res, sizeof(res)) != KP_OK ||
        akv_urlenc(a->mi_client_id, strlen(a->mi_client_id), id, sizeof(id)) != KP_OK)
        return akv_err(a, KP_ERR_INTERNAL, "IMDS request too long");
    snprintf(url, sizeof(url), "%s?api-version=2018-02-01&resource=%s%s%s", a->imds, res,
             id[0] != '\0' ? "&client_id=" : "", id);
    snprintf(where, wlen, "%s", a->imds);
    const char *headers[] = {"Metadata: true", "Accept: application/json", NULL};
    kpk_http_request req = {"GET", url, headers, NULL, 0, 0};
    return akv_send(a, &req, r);
}

kp_status akv_token(akv_inst *a, bool forced)
{
    time_t now = time(NULL);
    if (!forced && a->token != NULL && now < a->token_exp)
        return KP_OK;
    a->up->secret_free(a->token);
    a->token = NULL;

    kpk_http_response r;
    char where[2 * KP_AKV_URL_MAX];
    memset(&r, 0, sizeof(r));
    kp_status st = a->auth == AKV_AUTH_CLIENT_SECRET ? s_client_secret(a, &r, where, sizeof(where))
                                                     : s_imds(a, &r, where, sizeof(where));
    if (st != KP_OK)
        return st;
    if (r.status != 200) {
        char why[320];
        akv_parse_token_error(r.body, r.len, why, sizeof(why));
        st = r.status == 429   ? KP_ERR_THROTTLED
             : r.status >= 500 ? KP_ERR_UNAVAILABLE
                               : KP_ERR_AUTH;
        long status = r.status;
        kpk_http_response_free(&r);
        return akv_err(a, st, "%s: token request to %s refused (HTTP %ld): %s", a->vault_name,
                       where, status, why[0] != '\0' ? why : "no error description");
    }
    char err[KP_AKV_ERR];
    int64_t life = 0;
    kp_secret *tok = a->up->secret_new(S_TOKEN_MAX + 8);
    if (tok == NULL) {
        kpk_http_response_free(&r);
        return akv_err(a, KP_ERR_NOMEM, "out of memory");
    }
    char *t = (char *)a->up->secret_data(tok);
    memcpy(t, "Bearer ", 7);
    st = akv_parse_token(r.body, r.len, now, t + 7, S_TOKEN_MAX, &life, err, sizeof(err));
    kpk_http_response_free(&r);
    if (st != KP_OK) {
        a->up->secret_free(tok);
        return akv_err(a, st, "%s: token from %s unusable: %s", a->vault_name, where, err);
    }
    a->up->secret_shrink(tok, strlen(t));
    a->token = tok;
    a->token_exp = now + (time_t)(life >= 1200 ? life - 300 : life - life / 4);
    return KP_OK;
}
