/* Helpers of the azure-keyvault driver tests: see azure_vault.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/http.h>

#include "azure_vault.h"

#define S_TENANT "00000000-0000-0000-0000-000000000001"

static const char *s_url, *s_ca;
static kp_http *s_ctl;
static kp_ctx *s_ctx;
static kp_policy *s_pol;
static char s_policy_path[4096]; /* in KP_VAULT_DIR, which the runner always removes */

void akvt_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

double akvt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *s_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        akvt_fail("%s is not set: run through tests/unit/run_with_vault.sh", name);
    return v;
}

static void s_instance(FILE *f, const char *name, unsigned attempts)
{
    fprintf(f,
            "  %s:\n    plugin: azure-keyvault\n    vault_url: %s\n    tenant: %s\n"
            "    client_id: kp-client\n    client_secret: env:AZ_SECRET\n    authority: %s\n"
            "    ca_bundle: %s\n    verify_challenge_resource: false\n    max_attempts: %u\n"
            "    timeout_ms: 20000\n",
            name, s_url, S_TENANT, s_url, s_ca, attempts);
}

void akvt_init(void)
{
    s_url = s_env("KV_VAULT1_URL");
    s_ca = s_env("KV_CA");
    if (setenv("AZ_SECRET", "kp-secret", 1) != 0)
        akvt_fail("setenv");
    char err[256];
    kp_http_config cfg = {.ca_bundle = s_ca, .max_attempts = 1, .max_response = 1 << 20};
    if (kp_http_new(&cfg, &s_ctl, err, sizeof err) != KP_OK)
        akvt_fail("kp_http_new: %s", err);

    snprintf(s_policy_path, sizeof s_policy_path, "%s/policy.yaml", s_env("KP_VAULT_DIR"));
    FILE *f = fopen(s_policy_path, "w");
    if (f == NULL)
        akvt_fail("cannot write a policy");
    fputs("version: 1\nproviders:\n", f);
    s_instance(f, "vault1", 4);
    s_instance(f, "vault1-a3", 3);
    fclose(f);
    kp_status st = kp_ctx_new(&s_ctx);
    if (st == KP_OK)
        st = kp_ctx_add_plugin_dir(s_ctx, KP_TEST_PLUGIN_DIR);
    if (st == KP_OK)
        st = kp_policy_load(s_ctx, s_policy_path, &s_pol, NULL);
    if (st != KP_OK)
        akvt_fail("policy: %s: %s", kp_status_name(st),
                  s_ctx != NULL ? kp_ctx_last_error(s_ctx) : "");
}

void akvt_done(void)
{
    kp_policy_free(s_pol);
    kp_ctx_free(s_ctx);
    kp_http_free(s_ctl);
    unlink(s_policy_path);
    s_pol = NULL;
    s_ctx = NULL;
    s_ctl = NULL;
}

kp_ctx *akvt_ctx(void)
{
    return s_ctx;
}

kp_instance *akvt_open(const char *name)
{
    kp_instance *inst = NULL;
    kp_status st = kp_instance_open(s_ctx, s_pol, name, &inst);
    if (st != KP_OK)
        akvt_fail("open %s: %s: %s", name, kp_status_name(st), kp_ctx_last_error(s_ctx));
    return inst;
}

/* One control request; returns the parsed answer (caller decrefs). */
static json_t *s_control(const char *method, const char *path, const char *body)
{
    char url[1024], err[256];
    snprintf(url, sizeof url, "%s%s", s_url, path);
    const char *const headers[] = {"Content-Type: application/json", NULL};
    kp_http_request req = {.method = method,
                           .url = url,
                           .headers = headers,
                           .body = (const uint8_t *)body,
                           .body_len = body != NULL ? strlen(body) : 0};
    kp_http_response resp;
    kp_status st = kp_http_send(s_ctl, &req, &resp, err, sizeof err);
    if (st != KP_OK)
        akvt_fail("%s %s: %s", method, path, err);
    if (resp.status != 200)
        akvt_fail("%s %s: HTTP %ld %s", method, path, resp.status, (const char *)resp.body);
    json_error_t je;
    json_t *j = json_loadb((const char *)resp.body, resp.len, 0, &je);
    kp_http_response_free(&resp);
    if (j == NULL)
        akvt_fail("%s %s: answer is not JSON: %s", method, path, je.text);
    return j;
}

void akvt_faults(const char *json)
{
    json_decref(s_control("PUT", "/_emulator/faults", json));
}

static long s_num(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        akvt_fail("stats: no counter %s", key);
    return (long)json_integer_value(v);
}

void akvt_stats_get(akvt_stats *out)
{
    json_t *j = s_control("GET", "/_emulator/stats", NULL);
    out->requests = s_num(j, "requests");
    out->r429 = s_num(j, "429");
    out->r500 = s_num(j, "500");
    out->r503 = s_num(j, "503");
    out->drop = s_num(j, "drop");
    out->ok = s_num(j, "ok");
    out->corrupt = s_num(j, "corrupt");
    json_decref(j);
}

kp_secret *akvt_random_dek(size_t n)
{
    kp_secret *s = kp_secret_new(n);
    if (s == NULL || RAND_bytes(kp_secret_data(s), (int)n) != 1)
        akvt_fail("random DEK");
    return s;
}

void akvt_local_wrap(const uint8_t *spki, size_t spki_len, const kp_secret *dek, uint8_t **out,
                     size_t *outlen)
{
    const unsigned char *p = spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spki_len);
    EVP_PKEY_CTX *c = pk != NULL ? EVP_PKEY_CTX_new(pk, NULL) : NULL;
    size_t n = 0;
    if (c == NULL || EVP_PKEY_encrypt_init(c) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) <= 0 ||
        EVP_PKEY_encrypt(c, NULL, &n, kp_secret_cdata(dek), kp_secret_len(dek)) <= 0 ||
        (*out = malloc(n)) == NULL ||
        EVP_PKEY_encrypt(c, *out, &n, kp_secret_cdata(dek), kp_secret_len(dek)) <= 0)
        akvt_fail("local RSA-OAEP-256 wrap");
    *outlen = n;
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(pk);
}
