/* Helpers of the azure-keyvault driver tests: see azure_vault.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/http.h>

#include "azure_vault.h"

#define S_TENANT "00000000-0000-0000-0000-000000000001"

static const char *s_url, *s_ca;
static kpk_http *s_ctl;
static char s_token[8192]; /* akvt_rest's bearer token */
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
    kpk_http_config cfg = {.ca_bundle = s_ca, .max_attempts = 1, .max_response = 1 << 20};
    if (kpk_http_new(&cfg, &s_ctl, err, sizeof err) != KP_OK)
        akvt_fail("kpk_http_new: %s", err);

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
    kpk_http_free(s_ctl);
    unlink(s_policy_path);
    OPENSSL_cleanse(s_token, sizeof s_token);
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

/* One request to the emulator; returns the HTTP status and, in *out, the parsed answer. */
static long s_request(const char *method, const char *url, const char *const *headers,
                      const char *body, json_t **out)
{
    char err[256];
    kpk_http_request req = {.method = method,
                            .url = url,
                            .headers = headers,
                            .body = (const uint8_t *)body,
                            .body_len = body != NULL ? strlen(body) : 0};
    kpk_http_response resp;
    kp_status st = kpk_http_send(s_ctl, &req, &resp, err, sizeof err);
    if (st != KP_OK)
        akvt_fail("%s %s: %s", method, url, err);
    long status = resp.status;
    if (out != NULL)
        *out = json_loadb((const char *)resp.body, resp.len, 0, NULL);
    kpk_http_response_free(&resp);
    return status;
}

/* One control request; returns the parsed answer (caller decrefs). */
static json_t *s_control(const char *method, const char *path, const char *body)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", s_url, path);
    const char *const headers[] = {"Content-Type: application/json", NULL};
    json_t *j = NULL;
    long status = s_request(method, url, headers, body, &j);
    if (status != 200 || j == NULL)
        akvt_fail("%s %s: HTTP %ld, or the answer is not JSON", method, path, status);
    return j;
}

long akvt_rest(const char *method, const char *path, const char *body, json_t **out)
{
    char url[2048], auth[sizeof(s_token) + 32];
    if (s_token[0] == '\0') {
        const char *const mh[] = {"Metadata: true", NULL};
        json_t *j = NULL;
        snprintf(url, sizeof url,
                 "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                 "https://vault.azure.net",
                 s_url);
        long status = s_request("GET", url, mh, NULL, &j);
        const char *tok = json_string_value(json_object_get(j, "access_token"));
        if (status != 200 || tok == NULL || strlen(tok) >= sizeof(s_token))
            akvt_fail("no token from the emulator's IMDS endpoint (HTTP %ld)", status);
        snprintf(s_token, sizeof s_token, "%s", tok);
        json_decref(j);
    }
    snprintf(url, sizeof url, "%s%s%sapi-version=2025-07-01", s_url, path,
             strchr(path, '?') != NULL ? "&" : "?");
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", s_token);
    const char *const headers[] = {auth, "Content-Type: application/json", NULL};
    json_t *j = NULL;
    long status = s_request(method, url, headers, body, out != NULL ? &j : NULL);
    if (out != NULL)
        *out = j;
    return status;
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

EVP_PKEY *akvt_rsa(unsigned bits)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    if (k == NULL)
        akvt_fail("RSA-%u key generation", bits);
    return k;
}

void akvt_spki(EVP_PKEY *key, uint8_t **spki, size_t *len, char fpr[KPK_FPR_HEX])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0 || (*spki = malloc((size_t)n)) == NULL)
        akvt_fail("SubjectPublicKeyInfo");
    memcpy(*spki, der, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(der);
    if (kp_fingerprint_spki(*spki, *len, fpr) != KP_OK)
        akvt_fail("fingerprint");
}

kp_secret *akvt_pkcs8(EVP_PKEY *key)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    unsigned char *der = NULL;
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    kp_secret *s = n > 0 ? kp_secret_new((size_t)n) : NULL;
    if (s == NULL)
        akvt_fail("PKCS#8");
    memcpy(kp_secret_data(s), der, (size_t)n);
    OPENSSL_clear_free(der, (size_t)n);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return s;
}

void akvt_keyx_blob(const uint8_t *spki, size_t spki_len, EVP_PKEY *key, uint8_t **blob,
                    size_t *len)
{
    kp_secret *p8 = akvt_pkcs8(key);
    unsigned char aes[32];
    const unsigned char *p = spki;
    EVP_PKEY *kek = d2i_PUBKEY(NULL, &p, (long)spki_len);
    EVP_PKEY_CTX *c = kek != NULL ? EVP_PKEY_CTX_new(kek, NULL) : NULL;
    size_t rsa_len = 0;
    if (RAND_bytes(aes, sizeof aes) != 1 || c == NULL || EVP_PKEY_encrypt_init(c) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha1()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha1()) <= 0 ||
        EVP_PKEY_encrypt(c, NULL, &rsa_len, aes, sizeof aes) <= 0)
        akvt_fail("BYOK blob: RSA-OAEP-SHA-1 setup");
    /* RFC 5649 output: the input padded to a multiple of 8, plus 8 */
    size_t p8len = kp_secret_len(p8), cap = rsa_len + (p8len + 7) / 8 * 8 + 8;
    if ((*blob = malloc(cap)) == NULL || EVP_PKEY_encrypt(c, *blob, &rsa_len, aes, sizeof aes) <= 0)
        akvt_fail("BYOK blob: RSA-OAEP-SHA-1");
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    if (x == NULL)
        akvt_fail("out of memory");
    EVP_CIPHER_CTX_set_flags(x, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_EncryptInit_ex(x, EVP_aes_256_wrap_pad(), NULL, aes, NULL) != 1 ||
        EVP_EncryptUpdate(x, *blob + rsa_len, &n1, kp_secret_cdata(p8), (int)p8len) != 1 ||
        EVP_EncryptFinal_ex(x, *blob + rsa_len + n1, &n2) != 1)
        akvt_fail("BYOK blob: AES key wrap with padding");
    *len = rsa_len + (size_t)n1 + (size_t)n2;
    EVP_CIPHER_CTX_free(x);
    OPENSSL_cleanse(aes, sizeof aes);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(kek);
    kp_secret_free(p8);
}
