/*
 * tests/bench/azure: latency of one Key Vault unwrapKey through keyplane (kp_key_unwrap on an
 * open azure-keyvault instance) against the same request sent with raw libcurl, in the same
 * run, against the same emulated vault. Prints p50, p99 and mean per side and keyplane's p50
 * overhead; it is a measurement, not a test, so it never fails on speed.
 *
 * Both sides do the same work per operation:
 *   - one POST {vault}/keys/{name}/{version}/unwrapkey?api-version=2025-07-01 with the body
 *     {"alg":"RSA-OAEP-256","value":"<base64url>"}, the headers keyplane sends (Authorization,
 *     Content-Type and Accept: application/json, no Expect, the kit's User-Agent), over one
 *     kept-alive HTTP/1.1 TLS connection with the same CA bundle and full verification;
 *   - the JSON answer parsed with jansson, its "value" base64url-decoded (with the kit's
 *     decoder, the one the plugin uses) and compared with the DEK.
 * The raw side holds its own bearer token, fetched once with libcurl from the vault's token
 * endpoint, and sets every curl option once: it is the floor for a client of this service.
 * keyplane adds the core's dispatch and audit path, the plugin (version cache, bearer header
 * and body built as secrets, error mapping) and the kit's per-request setup and wiping.
 *
 * The two sides run in blocks of OPS operations, alternating which goes first, for ROUNDS
 * rounds after a warm-up of each, so drift in the machine or the emulator hits both alike.
 *
 * Usage: bench_azure PLUGIN_DIR POLICY INSTANCE CA_BUNDLE TOKEN_URL CLIENT_ID SECRET_ENV
 *                    [OPS=300] [ROUNDS=5]
 * The policy's INSTANCE is an azure-keyvault instance; the key "bench" (RSA-2048) is created in
 * it when missing. TOKEN_URL is the AAD v2 token endpoint of that instance's tenant and
 * SECRET_ENV names the variable holding the client secret.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/codec.h>

#include "bench_raw.h"
#include "kp_test.h"

#define S_KEY "bench"
#define S_API "2025-07-01" /* the plugin's default api-version (akv_internal.h) */
#define S_USER_AGENT "keyplane-kit/1"
#define S_DEK_LEN 32

/* ---- statistics ------------------------------------------------------------------------- */

/* ---- raw libcurl ------------------------------------------------------------------------ */

/* A bearer token for the vault from the AAD v2 token endpoint: "Authorization: Bearer T". */
static int s_token(const char *ca, const char *token_url, const char *client_id, const char *secret,
                   char *header, size_t headerlen)
{
    kp_bench_buf rx = {NULL, 0, 0};
    CURL *c = kp_bench_curl(ca, S_USER_AGENT, &rx);
    int bad = 1;
    if (c == NULL)
        return 1;
    char *id = curl_easy_escape(c, client_id, 0), *sec = curl_easy_escape(c, secret, 0);
    char *scope = curl_easy_escape(c, "https://vault.azure.net/.default", 0);
    char form[2048];
    snprintf(form, sizeof(form),
             "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s", id, sec,
             scope);
    curl_easy_setopt(c, CURLOPT_URL, token_url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK &&
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200) {
        json_t *j = json_loadb(rx.p, rx.len, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "access_token"));
        if (tok != NULL) {
            int n = snprintf(header, headerlen, "Authorization: Bearer %s", tok);
            bad = n < 0 || (size_t)n >= headerlen;
        }
        json_decref(j);
    }
    if (bad)
        fprintf(stderr, "bench_azure: no token from %s (HTTP %ld)\n", token_url, status);
    curl_free(id);
    curl_free(sec);
    curl_free(scope);
    curl_easy_cleanup(c);
    free(rx.p);
    return bad;
}

typedef struct s_raw {
    CURL *c;
    kp_bench_buf rx;
    struct curl_slist *headers;
    char *body;
    const uint8_t *dek;
    long connects; /* connections opened by the timed operations */
} s_raw;

/* One unwrap: POST, HTTP 200, parse, decode, compare. Non-zero on any failure. */
static int s_raw_op(s_raw *r)
{
    uint8_t out[512];
    size_t outlen = sizeof(out);
    long status = 0, conns = 0;
    r->rx.len = 0;
    if (curl_easy_perform(r->c) != CURLE_OK ||
        curl_easy_getinfo(r->c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
        return 1;
    if (curl_easy_getinfo(r->c, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK)
        r->connects += conns;
    json_t *j = json_loadb(r->rx.p, r->rx.len, JSON_REJECT_DUPLICATES, NULL);
    json_t *v = json_object_get(j, "value");
    int bad = !json_is_string(v) || kpk_b64_decoded_max(json_string_length(v)) > sizeof(out) ||
              kpk_b64_decode(json_string_value(v), json_string_length(v), out, &outlen) != KP_OK ||
              outlen != S_DEK_LEN || memcmp(out, r->dek, S_DEK_LEN) != 0;
    json_decref(j);
    return bad;
}

static int s_raw_open(s_raw *r, const char *ca, const char *auth, const char *kid,
                      const uint8_t *ct, size_t ctlen, const uint8_t *dek)
{
    static const char *const fixed[] = {"Content-Type: application/json",
                                        "Accept: application/json", "Expect:"};
    char url[1024];
    memset(r, 0, sizeof(*r));
    r->dek = dek;
    if ((r->c = kp_bench_curl(ca, S_USER_AGENT, &r->rx)) == NULL)
        return 1;
    snprintf(url, sizeof(url), "%s/unwrapkey?api-version=%s", kid, S_API);
    size_t cap = kpk_b64_encoded_size(ctlen) + 64;
    if ((r->body = malloc(cap)) == NULL)
        return 1;
    int n = snprintf(r->body, cap, "{\"alg\":\"RSA-OAEP-256\",\"value\":\"");
    size_t m = kpk_b64url_encode(ct, ctlen, r->body + n);
    memcpy(r->body + n + m, "\"}", 3);
    r->headers = curl_slist_append(NULL, auth);
    for (size_t i = 0; r->headers != NULL && i < sizeof(fixed) / sizeof(fixed[0]); i++)
        r->headers = curl_slist_append(r->headers, fixed[i]);
    if (r->headers == NULL)
        return 1;
    curl_easy_setopt(r->c, CURLOPT_URL, url);
    curl_easy_setopt(r->c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->c, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(r->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
    return 0;
}

static void s_raw_close(s_raw *r)
{
    curl_easy_cleanup(r->c);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->rx.p);
}

/* ---- keyplane --------------------------------------------------------------------------- */

typedef struct s_kp {
    kp_instance *inst;
    uint32_t version;
    const uint8_t *ct;
    size_t ctlen;
    const kp_secret *dek;
} s_kp;

static int s_kp_op(s_kp *k)
{
    kp_secret *back = NULL;
    int bad = kp_key_unwrap(k->inst, S_KEY, k->version, KP_WRAP_RSA_OAEP_SHA256, k->ct, k->ctlen,
                            &back) != KP_OK ||
              !kp_secret_equal(k->dek, back);
    kp_secret_free(back);
    return bad;
}

/* ---- the run ---------------------------------------------------------------------------- */

/* Times n operations into t[] (ms each) and adds their CPU time to *cpu; non-zero when one
 * fails. */
static int s_block(int (*op)(void *), void *arg, double *t, long n, double *cpu)
{
    double c0 = kp_bench_cpu_ms();
    for (long i = 0; i < n; i++) {
        double t0 = kpk_clock_ms();
        if (op(arg) != 0)
            return 1;
        t[i] = kpk_clock_ms() - t0;
    }
    *cpu += kp_bench_cpu_ms() - c0;
    return 0;
}

static int s_raw_fn(void *arg)
{
    return s_raw_op(arg);
}

static int s_kp_fn(void *arg)
{
    return s_kp_op(arg);
}

int main(int argc, char **argv)
{
    long ops, rounds;
    if (argc < 8 || kp_test_arg(argc, argv, 8, 300, 1, 1000000, &ops) != 0 ||
        kp_test_arg(argc, argv, 9, 5, 1, 1000, &rounds) != 0) {
        fprintf(stderr,
                "usage: %s PLUGIN_DIR POLICY INSTANCE CA_BUNDLE TOKEN_URL CLIENT_ID SECRET_ENV "
                "[OPS=300] [ROUNDS=5]\n",
                argv[0]);
        return 2;
    }
    const char *plugin_dir = argv[1], *policy = argv[2], *instance = argv[3], *ca = argv[4];
    const char *token_url = argv[5], *client_id = argv[6], *secret = getenv(argv[7]);
    if (secret == NULL) {
        fprintf(stderr, "bench_azure: %s is not set\n", argv[7]);
        return 2;
    }

    /* keyplane: the instance, the key (created when missing), one wrapped DEK */
    kp_ctx *ctx = NULL;
    kp_policy *pol = NULL;
    kp_instance *inst = NULL;
    kp_key_info info;
    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = S_KEY, .type = KP_KEY_RSA, .bits = 2048};
    uint8_t raw_dek[S_DEK_LEN];
    for (size_t i = 0; i < sizeof(raw_dek); i++)
        raw_dek[i] = (uint8_t)(0xa5 ^ (i * 7));
    kp_secret *dek = kp_secret_new_copy(raw_dek, sizeof(raw_dek));
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    kp_status st = kp_test_open_instance(plugin_dir, policy, instance, &ctx, &pol, &inst);
    if (st == KP_OK && (st = kp_key_info_get(inst, S_KEY, 0, &info)) == KP_ERR_NOT_FOUND)
        st = kp_key_create(inst, &spec, &info);
    if (st == KP_OK && (info.type != KP_KEY_RSA || info.bits != 2048))
        st = KP_ERR_EXISTS;
    if (st == KP_OK)
        st = kp_key_wrap(inst, S_KEY, info.version, KP_WRAP_RSA_OAEP_SHA256, dek, &ct, &ctlen);
    if (st != KP_OK || dek == NULL) {
        fprintf(stderr, "bench_azure: keyplane setup: %s\n",
                st == KP_ERR_EXISTS ? "key " S_KEY " is not RSA-2048" : kp_ctx_last_error(ctx));
        return 1;
    }

    /* raw: its own token, and a handle set up once for the kid's unwrapkey */
    char auth[8192];
    s_raw raw;
    s_kp kp = {inst, info.version, ct, ctlen, dek};
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        s_token(ca, token_url, client_id, secret, auth, sizeof(auth)) != 0 ||
        s_raw_open(&raw, ca, auth, info.backend_id, ct, ctlen, raw_dek) != 0) {
        fprintf(stderr, "bench_azure: raw libcurl setup failed\n");
        return 1;
    }

    long warm = ops < 20 ? ops : 20;
    size_t total = (size_t)(ops * rounds);
    double *t_raw = calloc(total, sizeof(double)), *t_kp = calloc(total, sizeof(double));
    double *tmp = calloc((size_t)ops, sizeof(double));
    double best_raw = 0, best_kp = 0;
    if (t_raw == NULL || t_kp == NULL || tmp == NULL)
        return 1;

    printf("azure bench: unwrapKey of a %d-byte DEK under %s v%u (RSA-2048, RSA-OAEP-256), "
           "one kept-alive TLS connection per side\n",
           S_DEK_LEN, S_KEY, info.version);
    printf("raw = libcurl, options set once, JSON parsed and value base64url-decoded as keyplane "
           "does; %ld ops per side per round, %ld rounds alternating which side goes first, "
           "after %ld warm-up ops each\n",
           ops, rounds, warm);
    printf("%-6s %-9s %9s %9s %9s   %-9s %9s %9s %9s %9s\n", "round", "side", "p50_ms", "p99_ms",
           "mean_ms", "side", "p50_ms", "p99_ms", "mean_ms", "p50_ovh");
    fflush(stdout);

    double cpu_raw = 0, cpu_kp = 0;
    int bad = s_block(s_raw_fn, &raw, tmp, warm, &cpu_raw) != 0;
    bad = bad || s_block(s_kp_fn, &kp, tmp, warm, &cpu_kp) != 0;
    cpu_raw = cpu_kp = 0;
    raw.connects = 0;
    for (long r = 0; r < rounds && !bad; r++) {
        double *tr = t_raw + r * ops, *tk = t_kp + r * ops;
        if (r % 2 == 0)
            bad = s_block(s_raw_fn, &raw, tr, ops, &cpu_raw) != 0 ||
                  s_block(s_kp_fn, &kp, tk, ops, &cpu_kp) != 0;
        else
            bad = s_block(s_kp_fn, &kp, tk, ops, &cpu_kp) != 0 ||
                  s_block(s_raw_fn, &raw, tr, ops, &cpu_raw) != 0;
        if (bad)
            break;
        memcpy(tmp, tr, (size_t)ops * sizeof(double));
        kp_bench_stats sr = kp_bench_summary(tmp, (size_t)ops);
        memcpy(tmp, tk, (size_t)ops * sizeof(double));
        kp_bench_stats sk = kp_bench_summary(tmp, (size_t)ops);
        best_raw = r == 0 || sr.p50 < best_raw ? sr.p50 : best_raw;
        best_kp = r == 0 || sk.p50 < best_kp ? sk.p50 : best_kp;
        printf("%-6ld %-9s %9.3f %9.3f %9.3f   %-9s %9.3f %9.3f %9.3f %8.1f%%\n", r + 1, "raw",
               sr.p50, sr.p99, sr.mean, "keyplane", sk.p50, sk.p99, sk.mean,
               kp_bench_overhead(sk.p50, sr.p50));
        fflush(stdout);
    }
    if (bad) {
        fprintf(stderr, "bench_azure: an unwrap failed: %s\n", kp_ctx_last_error(ctx));
    } else {
        kp_bench_stats ar = kp_bench_summary(t_raw, total), ak = kp_bench_summary(t_kp, total);
        printf("best of rounds: raw p50 %.3f ms | keyplane p50 %.3f ms | p50 overhead %.1f%%\n",
               best_raw, best_kp, kp_bench_overhead(best_kp, best_raw));
        printf("overall (%zu ops per side): raw mean %.3f ms | keyplane mean %.3f ms | mean "
               "overhead %.1f%%; raw connections opened while timed: %ld\n",
               total, ar.mean, ak.mean, kp_bench_overhead(ak.mean, ar.mean), raw.connects);
        printf("client CPU per op (this process, user+system): raw %.1f us | keyplane %.1f us\n",
               cpu_raw * 1e3 / (double)total, cpu_kp * 1e3 / (double)total);
        printf("azure unwrap: raw p50 %.3f ms p99 %.3f ms | keyplane p50 %.3f ms p99 %.3f ms | "
               "p50 overhead %.1f%%\n",
               ar.p50, ar.p99, ak.p50, ak.p99, kp_bench_overhead(ak.p50, ar.p50));
    }
    s_raw_close(&raw);
    free(t_raw);
    free(t_kp);
    free(tmp);
    free(ct);
    kp_secret_free(dek);
    kp_instance_close(inst);
    kp_policy_free(pol);
    kp_ctx_free(ctx);
    curl_global_cleanup();
    return bad;
}
