/*
 * tests/bench/aws: latency of one secret read through keyplane (kp_store_get of a given version
 * on an open `aws` instance) and of one DEK unwrap (kp_key_unwrap on a `kms` instance) against
 * the same requests sent with raw libcurl, in the same run, against the same emulated region,
 * for each instance kind:
 *
 *   s3  one GET of the object <prefix>NAME/vN (4 KiB, SSE-KMS), path-style addressing;
 *   sm  Secrets Manager: DescribeSecret then GetSecretValue of the secret <prefix>NAME/vN.
 *       Both are what a verified read needs: the version id GetSecretValue answers must be the
 *       token the version's Description names, and only DescribeSecret gives the Description.
 *       The raw side sends both and checks the token too; it is "GetSecretValue
 *       through keyplane" with the one request in front of it that the check needs. The instance
 *       has no `replicas` (a read would also prove every replica).
 *   kms one KMS Decrypt of a 32-byte DEK wrapped with RSA-OAEP-SHA256 (wrapped here with OpenSSL
 *       under the public half of an RSA-2048 key made here and imported into the instance with
 *       kp_key_import, its fingerprint checked by the plugin), KeyId the version's alias
 *       alias/<prefix>NAME/vN, EncryptionAlgorithm RSAES_OAEP_SHA_256: the DEK path
 *       (kp_key_unwrap of a given version costs one request, no lookup).
 *
 * Both sides do the same work per read:
 *   - the same requests, each signed with the kit's SigV4 (kpk_sigv4_sign: the signature covers
 *     X-Amz-Date, so every request is signed anew), with the same headers (the signed ones,
 *     Content-Type and X-Amz-Target for Secrets Manager, no Expect, the kit's User-Agent), over
 *     one kept-alive HTTP/1.1 TLS connection per instance kind with the same CA bundle and full
 *     verification;
 *   - the answer parsed the same way: S3's body bytes compared with the value; Secrets Manager's
 *     JSON parsed with jansson, SecretBinary base64-decoded with the kit's decoder and compared,
 *     the version id checked against the Description's token; KMS's JSON parsed with jansson,
 *     Plaintext base64-decoded with the kit's decoder and compared with the DEK.
 * The raw side sets every curl option once but the signed headers (a curl_slist per request),
 * and its request bodies are fixed strings: it is the floor for a client of these services.
 * keyplane adds the core's dispatch and audit path, the plugin (credential check, names, the
 * JSON request built per call, the object's headers kept and read for its metadata and SSE-KMS
 * key, the Description parsed, values and DEKs held as wiped secrets) and the kit's per-request
 * setup.
 *
 * After the warm-up, each side's requests per read are counted by the emulator itself (its
 * /_emulator/stats counters, per service) over a few reads, so the figures say what each side
 * sent. Then the sides run in blocks of OPS reads, alternating which goes first, for ROUNDS
 * rounds, so drift in the machine or the emulator hits both alike. Prints p50, p90 and mean per
 * side and keyplane's p50 overhead; it is a measurement, not a test, so it never fails on speed.
 *
 * Usage: bench_aws PLUGIN_DIR POLICY S3_INSTANCE SM_INSTANCE KMS_INSTANCE CA_BUNDLE ENDPOINT
 *                  REGION BUCKET [OPS=300] [ROUNDS=5]
 * The instances use ENDPOINT in REGION, the default prefix and the credentials in
 * AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which the raw side signs with too. The secret
 * "bench" is put once in the s3 and sm instances and the key "bench" imported once in the kms
 * one (a new version per run).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/codec.h>
#include <keyplane/kit/sigv4.h>

#include "bench_raw.h"
#include "kp_test.h"

#define S_NAME "bench"
#define S_PREFIX "keyplane/" /* the plugin's default prefix */
#define S_USER_AGENT "keyplane-kit/1"
#define S_VALUE_LEN 4096
#define S_COUNTED 10 /* reads per side whose requests the emulator counts */
#define S_DEK_LEN 32
#define S_KINDS 3

/* ---- statistics ------------------------------------------------------------------------- */

/* ---- raw libcurl ------------------------------------------------------------------------ */

/* One raw side: a handle set up for one kind of request, and what it signs with. */
typedef struct s_raw {
    CURL *c;
    kp_bench_buf rx;
    const char *host, *region, *service, *method, *path;
    const kpk_sigv4_creds *creds;
    const char *body; /* sm: {"SecretId":"..."}, the same for both operations */
    size_t body_len;
    const char *full;    /* sm: the secret's name, for the token */
    const uint8_t *want; /* the value (kms: the DEK) */
    long connects;       /* connections opened by the timed reads */
    double t_describe;   /* sm: the last read's DescribeSecret, ms */
} s_raw;

/* One signed request on r's handle: fixed (signed and sent; NULL-ended, may be NULL) plus the
 * signature's headers, no Expect, and no Content-Type unless fixed has one (the kit's rules).
 * 0 with the HTTP status in *status. */
static int s_raw_send(s_raw *r, const char *const *fixed, long *status)
{
    kpk_sigv4_request sr = {.method = r->method,
                            .host = r->host,
                            .path = r->path,
                            .region = r->region,
                            .service = r->service,
                            .headers = fixed,
                            .body = (const uint8_t *)r->body,
                            .body_len = r->body_len,
                            .s3 = strcmp(r->service, "s3") == 0};
    kpk_sigv4_out sig;
    char err[256];
    if (kpk_sigv4_sign(&sr, r->creds, &sig, err, sizeof(err)) != KP_OK) {
        fprintf(stderr, "bench_aws: cannot sign: %s\n", err);
        return 1;
    }
    struct curl_slist *h = NULL, *t;
    int bad = 0, typed = 0;
    for (size_t i = 0; fixed != NULL && fixed[i] != NULL && !bad; i++) {
        typed |= strncmp(fixed[i], "Content-Type:", 13) == 0;
        bad = (t = curl_slist_append(h, fixed[i])) == NULL;
        h = bad ? h : t;
    }
    const char *more[5];
    size_t n = 0;
    more[n++] = sig.authorization;
    more[n++] = sig.amz_date;
    if (sig.content_sha256[0] != '\0')
        more[n++] = sig.content_sha256;
    more[n++] = "Expect:";
    if (!typed)
        more[n++] = "Content-Type:";
    for (size_t i = 0; i < n && !bad; i++) {
        bad = (t = curl_slist_append(h, more[i])) == NULL;
        h = bad ? h : t;
    }
    long conns = 0;
    r->rx.len = 0;
    if (!bad) {
        curl_easy_setopt(r->c, CURLOPT_HTTPHEADER, h);
        bad = curl_easy_perform(r->c) != CURLE_OK ||
              curl_easy_getinfo(r->c, CURLINFO_RESPONSE_CODE, status) != CURLE_OK;
        if (curl_easy_getinfo(r->c, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK)
            r->connects += conns;
        curl_easy_setopt(r->c, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    }
    curl_slist_free_all(h);
    kpk_sigv4_out_free(&sig);
    return bad;
}

/* S3: GET of the object, HTTP 200, the body is the value. */
static int s_raw_s3(s_raw *r)
{
    long status = 0;
    return s_raw_send(r, NULL, &status) != 0 || status != 200 || r->rx.len != S_VALUE_LEN ||
           memcmp(r->rx.p, r->want, S_VALUE_LEN) != 0;
}

/* 0 when the base64 string field of j decodes (with the kit's decoder) to the len bytes want. */
static int s_b64_field_is(json_t *j, const char *field, const uint8_t *want, size_t len)
{
    json_t *v = json_object_get(j, field);
    uint8_t out[S_VALUE_LEN + 16];
    size_t outlen = 0;
    return !json_is_string(v) || kpk_b64_decoded_max(json_string_length(v)) > sizeof(out) ||
           kpk_b64_decode(json_string_value(v), json_string_length(v), out, &outlen) != KP_OK ||
           outlen != len || memcmp(out, want, len) != 0;
}

/* Secrets Manager: DescribeSecret (its Description), then GetSecretValue: HTTP 200 each, the
 * SecretBinary decoded is the value, and the version id is the token the Description names. */
static int s_raw_sm(s_raw *r)
{
    static const char *const describe[] = {"Content-Type: application/x-amz-json-1.1",
                                           "X-Amz-Target: secretsmanager.DescribeSecret", NULL};
    static const char *const value[] = {"Content-Type: application/x-amz-json-1.1",
                                        "X-Amz-Target: secretsmanager.GetSecretValue", NULL};
    long status = 0;
    double t0 = kpk_clock_ms();
    if (s_raw_send(r, describe, &status) != 0 || status != 200)
        return 1;
    json_t *d = json_loadb(r->rx.p, r->rx.len, 0, NULL);
    const char *desc = json_string_value(json_object_get(d, "Description"));
    json_t *dj = desc != NULL ? json_loads(desc, 0, NULL) : NULL;
    const char *tok = json_string_value(json_object_get(dj, "token"));
    char *text = tok != NULL ? strdup(tok) : NULL;
    json_decref(dj);
    json_decref(d);
    if (text == NULL)
        return 1;
    double t1 = kpk_clock_ms();
    int bad = s_raw_send(r, value, &status) != 0 || status != 200;
    json_t *j = bad ? NULL : json_loadb(r->rx.p, r->rx.len, 0, NULL);
    const char *vid = json_string_value(json_object_get(j, "VersionId"));
    bad = bad || vid == NULL || s_b64_field_is(j, "SecretBinary", r->want, S_VALUE_LEN) != 0 ||
          strcmp(vid, text) != 0;
    json_decref(j);
    free(text);
    r->t_describe = t1 - t0;
    return bad;
}

/* KMS: Decrypt of the wrapped DEK by the version's alias, HTTP 200, the Plaintext decoded is
 * the DEK. */
static int s_raw_kms(s_raw *r)
{
    static const char *const decrypt[] = {"Content-Type: application/x-amz-json-1.1",
                                          "X-Amz-Target: TrentService.Decrypt", NULL};
    long status = 0;
    if (s_raw_send(r, decrypt, &status) != 0 || status != 200)
        return 1;
    json_t *j = json_loadb(r->rx.p, r->rx.len, 0, NULL);
    int bad = s_b64_field_is(j, "Plaintext", r->want, S_DEK_LEN);
    json_decref(j);
    return bad;
}

/* ---- the emulator's request counters ---------------------------------------------------- */

/* Requests the emulator has seen per service, from GET ENDPOINT/_emulator/stats (its
 * requests_by_service; control requests are not counted). */
typedef struct s_counts {
    long s3, sm, kms, sts;
} s_counts;

static int s_counts_get(const char *ca, const char *endpoint, s_counts *out)
{
    kp_bench_buf rx = {NULL, 0, 0};
    CURL *c = kp_bench_curl(ca, S_USER_AGENT, &rx);
    char url[1024];
    long status = 0;
    int bad = 1;
    snprintf(url, sizeof(url), "%s/_emulator/stats", endpoint);
    if (c != NULL && curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK &&
        curl_easy_perform(c) == CURLE_OK &&
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200) {
        json_t *j = json_loadb(rx.p, rx.len, 0, NULL);
        json_t *r = json_object_get(j, "requests_by_service");
        if (!json_is_object(r)) /* the emulator's earlier name for them */
            r = json_object_get(j, "requests");
        out->s3 = (long)json_integer_value(json_object_get(r, "s3"));
        out->sm = (long)json_integer_value(json_object_get(r, "secretsmanager"));
        out->kms = (long)json_integer_value(json_object_get(r, "kms"));
        out->sts = (long)json_integer_value(json_object_get(r, "sts"));
        bad = !json_is_object(r);
        json_decref(j);
    }
    curl_easy_cleanup(c);
    free(rx.p);
    return bad;
}

/* ---- keyplane --------------------------------------------------------------------------- */

typedef struct s_kp {
    kp_instance *inst;
    uint32_t version;
    const uint8_t *want;
} s_kp;

/* kp_store_get of the version, compared with memcmp as the raw side compares (the check is the
 * benchmark's, not keyplane's work). */
static int s_kp_get(void *arg)
{
    s_kp *k = arg;
    kp_secret *back = NULL;
    int bad = kp_store_get(k->inst, S_NAME, k->version, &back, NULL, NULL) != KP_OK ||
              kp_secret_len(back) != S_VALUE_LEN ||
              memcmp(kp_secret_cdata(back), k->want, S_VALUE_LEN) != 0;
    kp_secret_free(back);
    return bad;
}

typedef struct s_kp_key {
    kp_instance *inst;
    uint32_t version;
    const uint8_t *ct, *dek;
    size_t ctlen;
} s_kp_key;

/* kp_key_unwrap of the wrapped DEK under the version (RSA-OAEP-SHA256), compared with memcmp. */
static int s_kp_unwrap(void *arg)
{
    s_kp_key *k = arg;
    kp_secret *back = NULL;
    int bad = kp_key_unwrap(k->inst, S_NAME, k->version, KP_WRAP_RSA_OAEP_SHA256, k->ct, k->ctlen,
                            &back) != KP_OK ||
              kp_secret_len(back) != S_DEK_LEN ||
              memcmp(kp_secret_cdata(back), k->dek, S_DEK_LEN) != 0;
    kp_secret_free(back);
    return bad;
}

/* The kms instance's key: a fresh RSA-2048 key imported as S_NAME (PKCS#8, with its fingerprint,
 * which the plugin checks before the key is visible) into *version, and a fresh DEK wrapped
 * with OpenSSL under its public half, RSA-OAEP with SHA-256 and MGF1-SHA-256, into ct (*ctlen).
 * KP_OK, or the status with the reason in the context's error or on stderr. */
static kp_status s_kms_setup(kp_instance *kms, uint8_t dek[S_DEK_LEN], uint8_t *ct, size_t *ctlen,
                             uint32_t *version)
{
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    PKCS8_PRIV_KEY_INFO *p8 = pkey != NULL ? EVP_PKEY2PKCS8(pkey) : NULL;
    EVP_PKEY_CTX *pc = pkey != NULL ? EVP_PKEY_CTX_new(pkey, NULL) : NULL;
    unsigned char *der = NULL, *spki = NULL;
    int len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : 0;
    int slen = pkey != NULL ? i2d_PUBKEY(pkey, &spki) : 0;
    char fpr[KPK_FPR_HEX];
    kp_secret *priv = len > 0 ? kp_secret_new_copy(der, (size_t)len) : NULL;
    kp_status st = priv != NULL && slen > 0 && RAND_bytes(dek, S_DEK_LEN) == 1 && pc != NULL &&
                           EVP_PKEY_encrypt_init(pc) == 1 &&
                           EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) == 1 &&
                           EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) == 1 &&
                           EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1 &&
                           EVP_PKEY_encrypt(pc, ct, ctlen, dek, S_DEK_LEN) == 1
                       ? KP_OK
                       : KP_ERR_CRYPTO;
    if (st != KP_OK)
        fprintf(stderr, "bench_aws: cannot make the RSA-2048 key or wrap the DEK with OpenSSL\n");
    if (st == KP_OK)
        st = kp_fingerprint_spki(spki, (size_t)slen, fpr);
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = S_NAME,
                        .type = KP_KEY_RSA,
                        .bits = 2048,
                        .fingerprint = fpr};
    kp_key_info info = {.struct_size = sizeof(info)};
    if (st == KP_OK)
        st = kp_key_import(kms, &spec, priv, &info);
    *version = info.version;
    kp_secret_free(priv);
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)len);
    OPENSSL_free(spki);
    EVP_PKEY_CTX_free(pc);
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(pkey);
    return st;
}

/* ---- the run ---------------------------------------------------------------------------- */

typedef int (*s_op_fn)(void *arg);

/* Times n operations into t[] (ms each) and adds their CPU time to *cpu; split[] (may be NULL)
 * gets the raw Secrets Manager read's DescribeSecret time. Non-zero when one fails. */
static int s_block(s_op_fn op, void *arg, double *t, double *split, long n, double *cpu)
{
    double c0 = kp_bench_cpu_ms();
    for (long i = 0; i < n; i++) {
        double t0 = kpk_clock_ms();
        if (op(arg) != 0)
            return 1;
        t[i] = kpk_clock_ms() - t0;
        if (split != NULL)
            split[i] = ((s_raw *)arg)->t_describe;
    }
    *cpu += kp_bench_cpu_ms() - c0;
    return 0;
}

static int s_raw_s3_fn(void *arg)
{
    return s_raw_s3(arg);
}

static int s_raw_sm_fn(void *arg)
{
    return s_raw_sm(arg);
}

static int s_raw_kms_fn(void *arg)
{
    return s_raw_kms(arg);
}

/* One measure: both sides' samples and CPU time. */
typedef struct s_measure {
    const char *name, *what, *unit; /* unit: one operation, "read" or "unwrap" */
    int reqs;                       /* the requests one operation needs */
    s_op_fn raw_op, kp_op;
    void *raw_arg, *kp_arg;
    double *t_raw, *t_kp, *split; /* split: raw sm's DescribeSecret share, else NULL */
    double cpu_raw, cpu_kp, best_raw, best_kp;
    double req_raw, req_kp; /* requests per read, as the emulator counted them */
} s_measure;

/* Requests the emulator saw per read of op, over S_COUNTED reads; a line of text in what. */
static int s_count(const char *ca, const char *endpoint, s_op_fn op, void *arg, double *per,
                   char *what, size_t cap)
{
    s_counts a, b;
    double tmp[S_COUNTED], cpu = 0;
    if (s_counts_get(ca, endpoint, &a) != 0 || s_block(op, arg, tmp, NULL, S_COUNTED, &cpu) != 0 ||
        s_counts_get(ca, endpoint, &b) != 0)
        return 1;
    long all = (b.s3 - a.s3) + (b.sm - a.sm) + (b.kms - a.kms) + (b.sts - a.sts);
    *per = (double)all / S_COUNTED;
    snprintf(what, cap, "%.1f (s3 %.1f, secretsmanager %.1f, kms %.1f, sts %.1f)", *per,
             (double)(b.s3 - a.s3) / S_COUNTED, (double)(b.sm - a.sm) / S_COUNTED,
             (double)(b.kms - a.kms) / S_COUNTED, (double)(b.sts - a.sts) / S_COUNTED);
    return 0;
}

static int s_round(s_measure *m, long r, long ops, double *tmp)
{
    double *tr = m->t_raw + r * ops, *tk = m->t_kp + r * ops;
    double *sp = m->split != NULL ? m->split + r * ops : NULL;
    int bad;
    if (r % 2 == 0)
        bad = s_block(m->raw_op, m->raw_arg, tr, sp, ops, &m->cpu_raw) != 0 ||
              s_block(m->kp_op, m->kp_arg, tk, NULL, ops, &m->cpu_kp) != 0;
    else
        bad = s_block(m->kp_op, m->kp_arg, tk, NULL, ops, &m->cpu_kp) != 0 ||
              s_block(m->raw_op, m->raw_arg, tr, sp, ops, &m->cpu_raw) != 0;
    if (bad)
        return 1;
    memcpy(tmp, tr, (size_t)ops * sizeof(double));
    kp_bench_stats sr = kp_bench_summary(tmp, (size_t)ops);
    memcpy(tmp, tk, (size_t)ops * sizeof(double));
    kp_bench_stats sk = kp_bench_summary(tmp, (size_t)ops);
    m->best_raw = r == 0 || sr.p50 < m->best_raw ? sr.p50 : m->best_raw;
    m->best_kp = r == 0 || sk.p50 < m->best_kp ? sk.p50 : m->best_kp;
    printf("%-6ld %-4s %-4s %9.3f %9.3f %9.3f   %-8s %9.3f %9.3f %9.3f %8.1f%%\n", r + 1, m->name,
           "raw", sr.p50, sr.p90, sr.mean, "keyplane", sk.p50, sk.p90, sk.mean,
           kp_bench_overhead(sk.p50, sr.p50));
    fflush(stdout);
    return 0;
}

static void s_report(s_measure *m, size_t total)
{
    kp_bench_stats ar = kp_bench_summary(m->t_raw, total), ak = kp_bench_summary(m->t_kp, total);
    printf("%s: best of rounds: raw p50 %.3f ms | keyplane p50 %.3f ms | p50 overhead %.1f%%; "
           "means: raw %.3f ms | keyplane %.3f ms (%.1f%%)\n",
           m->name, m->best_raw, m->best_kp, kp_bench_overhead(m->best_kp, m->best_raw), ar.mean,
           ak.mean, kp_bench_overhead(ak.mean, ar.mean));
    printf("%s: client CPU per %s (this thread, user+system): raw %.1f us | keyplane %.1f us\n",
           m->name, m->unit, m->cpu_raw * 1e3 / (double)total, m->cpu_kp * 1e3 / (double)total);
    if (m->split != NULL) {
        kp_bench_stats sd = kp_bench_summary(m->split, total);
        printf("%s: per request: raw p50 %.3f ms (%.1f per read) | keyplane p50 %.3f ms (%.1f per "
               "read); the raw read's DescribeSecret alone p50 %.3f ms\n",
               m->name, ar.p50 / m->req_raw, m->req_raw, ak.p50 / m->req_kp, m->req_kp, sd.p50);
    }
    printf("aws %s: raw p50 %.3f ms p90 %.3f ms | keyplane p50 %.3f ms p90 %.3f ms | "
           "p50 overhead %.1f%%\n",
           m->what, ar.p50, ar.p90, ak.p50, ak.p90, kp_bench_overhead(ak.p50, ar.p50));
}

int main(int argc, char **argv)
{
    long ops, rounds;
    if (argc < 10 || kp_test_arg(argc, argv, 10, 300, 1, 1000000, &ops) != 0 ||
        kp_test_arg(argc, argv, 11, 5, 1, 1000, &rounds) != 0) {
        fprintf(stderr,
                "usage: %s PLUGIN_DIR POLICY S3_INSTANCE SM_INSTANCE KMS_INSTANCE CA_BUNDLE "
                "ENDPOINT REGION BUCKET [OPS=300] [ROUNDS=5]\n",
                argv[0]);
        return 2;
    }
    const char *plugin_dir = argv[1], *policy = argv[2], *s3_name = argv[3], *sm_name = argv[4];
    const char *kms_name = argv[5], *ca = argv[6], *endpoint = argv[7], *region = argv[8];
    const char *bucket = argv[9];
    const char *akid = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (akid == NULL || secret == NULL) {
        fprintf(stderr, "bench_aws: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set\n");
        return 2;
    }

    /* keyplane: the three instances, one 4 KiB value (binary: SecretBinary) put in s3 and sm,
     * an RSA-2048 key imported into kms and a DEK wrapped under it */
    uint8_t value[S_VALUE_LEN];
    uint32_t x = 0x9e3779b9u;
    for (size_t i = 0; i < sizeof(value); i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        value[i] = (uint8_t)(i % 512 == 0 ? 0 : x); /* NULs: never a SecretString */
    }
    kp_secret *want = kp_secret_new_copy(value, sizeof(value));
    kp_ctx *ctx = NULL;
    kp_policy *pol = NULL;
    kp_instance *s3 = NULL, *sm = NULL, *kms = NULL;
    uint32_t s3_version = 0, sm_version = 0, kms_version = 0;
    uint8_t dek[S_DEK_LEN], ct[512];
    size_t ctlen = sizeof(ct);
    kp_status st = want != NULL
                       ? kp_test_open_instance(plugin_dir, policy, s3_name, &ctx, &pol, &s3)
                       : KP_ERR_NOMEM;
    if (st == KP_OK)
        st = kp_instance_open(ctx, pol, sm_name, &sm);
    if (st == KP_OK)
        st = kp_instance_open(ctx, pol, kms_name, &kms);
    if (st == KP_OK)
        st = kp_store_put(s3, S_NAME, want, NULL, 0, &s3_version);
    if (st == KP_OK)
        st = kp_store_put(sm, S_NAME, want, NULL, 0, &sm_version);
    if (st == KP_OK)
        st = s_kms_setup(kms, dek, ct, &ctlen, &kms_version);
    if (st != KP_OK) {
        fprintf(stderr, "bench_aws: keyplane setup: %s\n",
                ctx != NULL ? kp_ctx_last_error(ctx) : "out of memory");
        return 1;
    }

    /* raw: one handle per kind, URL, method and body set once; only the signature changes */
    kpk_sigv4_creds creds = {
        .access_key_id = akid, .secret_access_key = secret, .secret_len = strlen(secret)};
    const char *host = strstr(endpoint, "://") != NULL ? strstr(endpoint, "://") + 3 : endpoint;
    char s3_key[256], s3_path[1024], s3_url[2048], sm_full[256], sm_body[512], json_url[1024];
    char kms_body[1024], ct_b64[sizeof(ct) * 4 / 3 + 8];
    snprintf(s3_key, sizeof(s3_key), "%s/%s%s/v%u", bucket, S_PREFIX, S_NAME, s3_version);
    if (kpk_aws_uri_encode(s3_key, strlen(s3_key), 1, s3_path + 1, sizeof(s3_path) - 1) ==
        (size_t)-1)
        return 1;
    s3_path[0] = '/';
    snprintf(s3_url, sizeof(s3_url), "%s%s", endpoint, s3_path);
    snprintf(sm_full, sizeof(sm_full), "%s%s/v%u", S_PREFIX, S_NAME, sm_version);
    snprintf(sm_body, sizeof(sm_body), "{\"SecretId\":\"%s\"}", sm_full);
    snprintf(json_url, sizeof(json_url), "%s/", endpoint);
    kpk_b64_encode(ct, ctlen, ct_b64);
    snprintf(kms_body, sizeof(kms_body),
             "{\"KeyId\":\"alias/%s%s/v%u\",\"CiphertextBlob\":\"%s\","
             "\"EncryptionAlgorithm\":\"RSAES_OAEP_SHA_256\"}",
             S_PREFIX, S_NAME, kms_version, ct_b64);
    s_raw raw[S_KINDS] = {
        {.service = "s3", .method = "GET", .path = s3_path, .want = value},
        {.service = "secretsmanager",
         .method = "POST",
         .path = "/",
         .body = sm_body,
         .full = sm_full,
         .want = value},
        {.service = "kms", .method = "POST", .path = "/", .body = kms_body, .want = dek}};
    int bad = curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK;
    for (size_t i = 0; i < S_KINDS && !bad; i++) {
        raw[i].host = host;
        raw[i].region = region;
        raw[i].creds = &creds;
        raw[i].body_len = raw[i].body != NULL ? strlen(raw[i].body) : 0;
        bad = (raw[i].c = kp_bench_curl(ca, S_USER_AGENT, &raw[i].rx)) == NULL;
    }
    if (bad) {
        fprintf(stderr, "bench_aws: raw libcurl setup failed\n");
        return 1;
    }
    curl_easy_setopt(raw[0].c, CURLOPT_URL, s3_url);
    curl_easy_setopt(raw[0].c, CURLOPT_HTTPGET, 1L);
    for (size_t i = 1; i < S_KINDS; i++) {
        curl_easy_setopt(raw[i].c, CURLOPT_URL, json_url);
        curl_easy_setopt(raw[i].c, CURLOPT_POSTFIELDS, raw[i].body);
        curl_easy_setopt(raw[i].c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)raw[i].body_len);
    }

    long warm = ops < 20 ? ops : 20;
    size_t total = (size_t)(ops * rounds);
    s_kp kp_s3 = {s3, s3_version, value}, kp_sm = {sm, sm_version, value};
    s_kp_key kp_kms = {kms, kms_version, ct, dek, ctlen};
    s_measure ms[S_KINDS] = {
        {.name = "s3",
         .what = "s3 GetObject 4 KiB",
         .unit = "read",
         .reqs = 1,
         .raw_op = s_raw_s3_fn,
         .kp_op = s_kp_get,
         .raw_arg = &raw[0],
         .kp_arg = &kp_s3},
        {.name = "sm",
         .what = "secretsmanager get 4 KiB (DescribeSecret + GetSecretValue)",
         .unit = "read",
         .reqs = 2,
         .raw_op = s_raw_sm_fn,
         .kp_op = s_kp_get,
         .raw_arg = &raw[1],
         .kp_arg = &kp_sm},
        {.name = "kms",
         .what = "kms Decrypt RSA-2048 RSAES_OAEP_SHA_256 (32-byte DEK)",
         .unit = "unwrap",
         .reqs = 1,
         .raw_op = s_raw_kms_fn,
         .kp_op = s_kp_unwrap,
         .raw_arg = &raw[2],
         .kp_arg = &kp_kms},
    };
    double *tmp = calloc((size_t)ops > S_COUNTED ? (size_t)ops : S_COUNTED, sizeof(double));
    bad = tmp == NULL;
    for (size_t i = 0; i < S_KINDS && !bad; i++) {
        ms[i].t_raw = calloc(total, sizeof(double));
        ms[i].t_kp = calloc(total, sizeof(double));
        bad = ms[i].t_raw == NULL || ms[i].t_kp == NULL;
    }
    if (!bad && (ms[1].split = calloc(total, sizeof(double))) == NULL)
        bad = 1;
    if (bad)
        return 1;

    printf("aws bench: kp_store_get of a %d-byte secret (%s v%u in bucket %s, SSE-KMS; %s%s/v%u "
           "in Secrets Manager, SecretBinary, no replicas) and kp_key_unwrap of a %d-byte DEK "
           "(KMS Decrypt by alias/%s%s/v%u, an imported RSA-2048 key, RSA-OAEP-SHA256) against "
           "raw libcurl, one kept-alive TLS connection per kind and side, every request signed "
           "with the kit's SigV4\n",
           S_VALUE_LEN, S_NAME, s3_version, bucket, S_PREFIX, S_NAME, sm_version, S_DEK_LEN,
           S_PREFIX, S_NAME, kms_version);
    printf("%ld operations per side per kind per round, %ld rounds alternating which side goes "
           "first, after %ld warm-up operations each\n",
           ops, rounds, warm);

    /* warm-up, then the requests each side sends per operation, as the emulator counts them */
    for (size_t i = 0; i < S_KINDS && !bad; i++) {
        double cpu = 0;
        bad = s_block(ms[i].raw_op, ms[i].raw_arg, tmp, NULL, warm, &cpu) != 0 ||
              s_block(ms[i].kp_op, ms[i].kp_arg, tmp, NULL, warm, &cpu) != 0;
        char wr[160], wk[160];
        if (!bad &&
            s_count(ca, endpoint, ms[i].raw_op, ms[i].raw_arg, &ms[i].req_raw, wr, sizeof(wr)) ==
                0 &&
            s_count(ca, endpoint, ms[i].kp_op, ms[i].kp_arg, &ms[i].req_kp, wk, sizeof(wk)) == 0)
            printf("%s: requests per %s (the emulator's counters over %d): raw %s | keyplane %s\n",
                   ms[i].name, ms[i].unit, S_COUNTED, wr, wk);
        else if (!bad)
            printf("%s: requests per %s: the emulator's counters could not be read\n", ms[i].name,
                   ms[i].unit);
        if (ms[i].req_raw <= 0)
            ms[i].req_raw = ms[i].reqs;
        if (ms[i].req_kp <= 0)
            ms[i].req_kp = ms[i].req_raw;
    }
    for (size_t i = 0; i < S_KINDS; i++)
        raw[i].connects = 0;
    if (!bad)
        printf("%-6s %-4s %-4s %9s %9s %9s   %-8s %9s %9s %9s %9s\n", "round", "kind", "side",
               "p50_ms", "p90_ms", "mean_ms", "side", "p50_ms", "p90_ms", "mean_ms", "p50_ovh");
    for (long r = 0; r < rounds && !bad; r++)
        for (size_t i = 0; i < S_KINDS && !bad; i++)
            bad = s_round(&ms[i], r, ops, tmp) != 0;
    if (bad) {
        fprintf(stderr, "bench_aws: an operation failed: %s\n", kp_ctx_last_error(ctx));
    } else {
        printf("raw connections opened while timed: s3 %ld, secretsmanager %ld, kms %ld\n",
               raw[0].connects, raw[1].connects, raw[2].connects);
        for (size_t i = 0; i < S_KINDS; i++)
            s_report(&ms[i], total);
    }
    for (size_t i = 0; i < S_KINDS; i++) {
        free(ms[i].t_raw);
        free(ms[i].t_kp);
        curl_easy_cleanup(raw[i].c);
        free(raw[i].rx.p);
    }
    free(ms[1].split);
    free(tmp);
    OPENSSL_cleanse(dek, sizeof(dek));
    kp_secret_free(want);
    kp_instance_close(s3);
    kp_instance_close(sm);
    kp_instance_close(kms);
    kp_policy_free(pol);
    kp_ctx_free(ctx);
    curl_global_cleanup();
    return bad;
}
