/* The Key Vault emulator's control client (kp_test_vault.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/http.h>

#include "kp_test_vault.h"

struct kp_test_vault {
    char url[256];
    kpk_http *http;   /* one attempt per request: the control endpoints are never faulted */
    char token[8192]; /* kp_test_vault_rest's bearer token, fetched once */
};

static const char *s_env(const char *name, const char *vault)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        kp_test_fail("%s is not set: run through tests/integration/run_with_vault.sh --name %s",
                     name, vault != NULL ? vault : "NAME");
    return v;
}

const char *kp_test_vault_ca(void)
{
    return s_env("KV_CA", NULL);
}

const char *kp_test_vault_dir(void)
{
    return s_env("KP_VAULT_DIR", NULL);
}

kp_test_vault *kp_test_vault_open(const char *name)
{
    char var[96];
    size_t n = (size_t)snprintf(var, sizeof var, "KV_%s_URL", name);
    for (size_t i = 3; i < n - 4 && i < sizeof var; i++)
        var[i] = var[i] == '-' ? '_' : (char)toupper((unsigned char)var[i]);
    kp_test_vault *v = calloc(1, sizeof(*v));
    if (v == NULL)
        kp_test_fail("out of memory");
    snprintf(v->url, sizeof v->url, "%s", s_env(var, name));
    char err[256];
    kpk_http_config cfg = {
        .ca_bundle = s_env("KV_CA", name), .max_attempts = 1, .max_response = 1 << 20};
    if (kpk_http_new(&cfg, &v->http, err, sizeof err) != KP_OK)
        kp_test_fail("kpk_http_new: %s", err);
    return v;
}

void kp_test_vault_close(kp_test_vault *v)
{
    if (v == NULL)
        return;
    kpk_http_free(v->http);
    OPENSSL_cleanse(v->token, sizeof v->token);
    free(v);
}

const char *kp_test_vault_url(const kp_test_vault *v)
{
    return v->url;
}

/* One request; returns the HTTP status and, in *out, the parsed answer. */
static long s_request(kp_test_vault *v, const char *method, const char *url,
                      const char *const *headers, const char *body, json_t **out)
{
    char err[256];
    kpk_http_request req = {.method = method,
                            .url = url,
                            .headers = headers,
                            .body = (const uint8_t *)body,
                            .body_len = body != NULL ? strlen(body) : 0};
    kpk_http_response resp;
    kp_status st = kpk_http_send(v->http, &req, &resp, err, sizeof err);
    if (st != KP_OK)
        kp_test_fail("%s %s: %s", method, url, err);
    long status = resp.status;
    if (out != NULL)
        *out = json_loadb((const char *)resp.body, resp.len, 0, NULL);
    kpk_http_response_free(&resp);
    return status;
}

/* One control request; returns the parsed answer (caller decrefs). */
static json_t *s_control(kp_test_vault *v, const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", v->url, path);
    const char *const headers[] = {"Content-Type: application/json", NULL};
    json_t *j = NULL;
    long status = s_request(v, method, url, headers, body, &j);
    if (status != 200 || j == NULL)
        kp_test_fail("%s %s %s: HTTP %ld, or the answer is not JSON", method, path,
                     body != NULL ? body : "", status);
    return j;
}

void kp_test_vault_faults(kp_test_vault *v, const char *json)
{
    json_decref(s_control(v, "PUT", "/_emulator/faults", json));
}

void kp_test_vault_revoke_tokens(kp_test_vault *v)
{
    json_decref(s_control(v, "POST", "/_emulator/tokens/revoke", "{}"));
}

static long s_counter(const json_t *j, const char *key)
{
    const json_t *c = json_object_get(j, key);
    if (!json_is_integer(c))
        kp_test_fail("/_emulator/stats: no counter %s", key);
    return (long)json_integer_value(c);
}

void kp_test_vault_stats_get(kp_test_vault *v, kp_test_vault_stats *out)
{
    json_t *j = s_control(v, "GET", "/_emulator/stats", NULL);
    out->requests = s_counter(j, "requests");
    out->r429 = s_counter(j, "429");
    out->r500 = s_counter(j, "500");
    out->r503 = s_counter(j, "503");
    out->drop = s_counter(j, "drop");
    out->ok = s_counter(j, "ok");
    out->corrupt = s_counter(j, "corrupt");
    json_decref(j);
}

long kp_test_vault_rest(kp_test_vault *v, const char *method, const char *path, const char *body,
                        json_t **out)
{
    char url[2048], auth[sizeof(v->token) + 32];
    if (v->token[0] == '\0') {
        const char *const mh[] = {"Metadata: true", NULL};
        json_t *j = NULL;
        snprintf(url, sizeof url,
                 "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                 "https://vault.azure.net",
                 v->url);
        long status = s_request(v, "GET", url, mh, NULL, &j);
        const char *tok = json_string_value(json_object_get(j, "access_token"));
        if (status != 200 || tok == NULL || strlen(tok) >= sizeof(v->token))
            kp_test_fail("no token from the emulator's IMDS endpoint (HTTP %ld)", status);
        snprintf(v->token, sizeof v->token, "%s", tok);
        json_decref(j);
    }
    snprintf(url, sizeof url, "%s%s%sapi-version=2025-07-01", v->url, path,
             strchr(path, '?') != NULL ? "&" : "?");
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", v->token);
    const char *const headers[] = {auth, "Content-Type: application/json", NULL};
    json_t *j = NULL;
    long status = s_request(v, method, url, headers, body, out != NULL ? &j : NULL);
    if (out != NULL)
        *out = j;
    return status;
}
