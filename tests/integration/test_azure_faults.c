/*
 * azure.faults: the azure-keyvault plugin under injected faults, through libkeyplane on one
 * open instance (run_with_vault.sh starts the vault).
 *
 * 1. With 30% of the keys requests failing (10% each 429, 503 and a dropped connection;
 *    Retry-After 0), 200 operations alternate a wrap of a fresh random 32-byte DEK and an unwrap
 *    of a DEK wrapped beforehand (locally, with the key's public half). Each one either succeeds
 *    with the right result or fails with a transient status once its attempts are spent: never
 *    a wrong DEK, never another error. Every blob a faulty wrap returned is unwrapped again
 *    afterwards without faults and must give its DEK back.
 * 2. A 403 (forbidden_ops unwrapKey) is KP_ERR_PERMISSION after exactly one request.
 * 3. Five 429s in a row against max_attempts 3: KP_ERR_THROTTLED "after 3 attempts", three
 *    requests.
 *
 * Usage: test_azure_faults [OPS] (default 200); AKV_FAULT_SEED picks the emulator's seed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azure_vault.h"

#define S_KEY "faults"
#define S_DEK 32
#define S_ALG KP_WRAP_RSA_OAEP_SHA256

typedef struct s_blob {
    kp_secret *dek;
    uint8_t *ct; /* in[]: kp_test_akv_local_wrap's (free); out[]: kp_key_wrap's (kp_free) */
    size_t len;
} s_blob;

/* A failed operation must be transient (and say so in one line). */
static void s_expect_transient(kp_status st, const char *op, int i)
{
    const char *why = kp_ctx_last_error(kp_test_akv_ctx());
    if (kp_status_category(st) != KP_CAT_TRANSIENT)
        kp_test_fail("op %d (%s): %s, not a transient status: %s", i, op, kp_status_name(st), why);
    if (strchr(why, '\n') != NULL)
        kp_test_fail("op %d (%s): the error text is not one line: %s", i, op, why);
}

static void s_unwrap_ok(kp_instance *inst, const s_blob *b, const char *what)
{
    kp_secret *back = NULL;
    kp_status st = kp_key_unwrap(inst, S_KEY, 1, S_ALG, b->ct, b->len, &back);
    if (st != KP_OK)
        kp_test_fail("%s: unwrap: %s: %s", what, kp_status_name(st),
                     kp_ctx_last_error(kp_test_akv_ctx()));
    if (!kp_secret_equal(back, b->dek))
        kp_test_fail("%s: unwrap gave a different DEK", what);
    kp_secret_free(back);
}

int main(int argc, char **argv)
{
    int ops = argc > 1 ? atoi(argv[1]) : 200;
    const char *seed_env = getenv("AKV_FAULT_SEED");
    long seed = seed_env != NULL ? atol(seed_env) : 20250605;
    if (ops < 2)
        kp_test_fail("usage: %s [OPS>=2]", argv[0]);
    kp_test_akv_init();
    kp_test_vault_faults(kp_test_akv_vault(), "{}");
    kp_instance *inst = kp_test_akv_open("vault1");
    kp_instance *a3 = kp_test_akv_open("vault1-a3");

    /* the key, made in the vault, and its public half */
    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = S_KEY, .type = KP_KEY_RSA, .bits = 2048};
    kp_key_info info;
    kp_status st = kp_key_create(inst, &spec, &info);
    if (st != KP_OK || info.version != 1)
        kp_test_fail("create: %s: %s", kp_status_name(st), kp_ctx_last_error(kp_test_akv_ctx()));
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    if ((st = kp_key_get_public(inst, S_KEY, 1, &spki, &spki_len)) != KP_OK)
        kp_test_fail("get public: %s: %s", kp_status_name(st),
                     kp_ctx_last_error(kp_test_akv_ctx()));

    /* unwrap inputs, wrapped without the vault (so without faults) */
    int nun = ops / 2, nwr = ops - ops / 2;
    s_blob *in = calloc((size_t)nun, sizeof(*in)), *out = calloc((size_t)nwr, sizeof(*out));
    if (in == NULL || out == NULL)
        kp_test_fail("out of memory");
    for (int i = 0; i < nun; i++) {
        in[i].dek = kp_test_akv_random_dek(S_DEK);
        kp_test_akv_local_wrap(spki, spki_len, in[i].dek, &in[i].ct, &in[i].len);
    }
    s_unwrap_ok(inst, &in[0], "fault-free check"); /* the vault agrees with the local wrap */
    s_unwrap_ok(a3, &in[0], "fault-free check (max_attempts 3)");

    /* 1. 30% faults */
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"rate_429\":0.1,\"rate_503\":0.1,\"rate_drop\":0.1,\"retry_after\":0,"
             "\"seed\":%ld}",
             seed);
    kp_test_vault_stats s0, s1;
    kp_test_vault_stats_get(kp_test_akv_vault(), &s0);
    kp_test_vault_faults(kp_test_akv_vault(), cfg);
    int ok = 0, transient = 0, wrapped = 0;
    int by_status[KP_STATUS_COUNT_] = {0};
    double t0 = kpk_clock_ms();
    for (int i = 0, w = 0, u = 0; i < ops; i++) {
        if (i % 2 == 0) {
            s_blob *b = &out[w++];
            b->dek = kp_test_akv_random_dek(S_DEK);
            st = kp_key_wrap(inst, S_KEY, 1, S_ALG, b->dek, &b->ct, &b->len);
            if (st == KP_OK) {
                if (b->ct == NULL || b->len != 256)
                    kp_test_fail("op %d (wrap): %zu bytes of wrapped key", i, b->len);
                wrapped++;
            } else {
                s_expect_transient(st, "wrap", i);
            }
        } else {
            s_blob *b = &in[u++];
            kp_secret *back = NULL;
            st = kp_key_unwrap(inst, S_KEY, 1, S_ALG, b->ct, b->len, &back);
            if (st == KP_OK && !kp_secret_equal(back, b->dek))
                kp_test_fail("op %d (unwrap): a wrong DEK came back", i);
            if (st != KP_OK) {
                if (back != NULL)
                    kp_test_fail("op %d (unwrap): failed but returned a DEK", i);
                s_expect_transient(st, "unwrap", i);
            }
            kp_secret_free(back);
        }
        if (st == KP_OK) {
            ok++;
        } else {
            transient++;
            by_status[st]++; /* st is transient: checked above */
            printf("  op %3d transient: %s: %s\n", i, kp_status_name(st),
                   kp_ctx_last_error(kp_test_akv_ctx()));
        }
    }
    double secs = (kpk_clock_ms() - t0) / 1000.0;
    kp_test_vault_stats_get(kp_test_akv_vault(), &s1);
    kp_test_vault_faults(kp_test_akv_vault(), "{}");

    /* every blob a faulty wrap handed out unwraps to its DEK */
    for (int i = 0; i < nwr; i++)
        if (out[i].ct != NULL)
            s_unwrap_ok(inst, &out[i], "re-check of a wrap made under faults");

    long req = s1.requests - s0.requests, f429 = s1.r429 - s0.r429, f503 = s1.r503 - s0.r503,
         fdrop = s1.drop - s0.drop;
    printf("azure.faults: %d ops in %.2f s (seed %ld): ok %d (wraps %d, all re-checked), "
           "transient failures %d (throttled %d, unavailable %d, timeout %d)\n",
           ops, secs, seed, ok, wrapped, transient, by_status[KP_ERR_THROTTLED],
           by_status[KP_ERR_UNAVAILABLE], by_status[KP_ERR_TIMEOUT]);
    printf("azure.faults: emulator: requests %ld, injected 429 %ld, 503 %ld, drop %ld "
           "(%.1f%% of requests)\n",
           req, f429, f503, fdrop,
           req > 0 ? 100.0 * (double)(f429 + f503 + fdrop) / (double)req : 0);
    if (f429 <= 0 || f503 <= 0 || fdrop <= 0)
        kp_test_fail("the emulator injected no faults of some kind (429 %ld, 503 %ld, drop %ld)",
                     f429, f503, fdrop);
    if (req < ops)
        kp_test_fail("%ld requests for %d operations", req, ops);
    if (ok * 4 <= ops * 3)
        kp_test_fail("only %d of %d operations succeeded (want more than 75%%)", ok, ops);

    /* 2. a 403 is final: one request, KP_ERR_PERMISSION */
    kp_test_vault_faults(kp_test_akv_vault(), "{\"forbidden_ops\":[\"unwrapKey\"]}");
    kp_test_vault_stats_get(kp_test_akv_vault(), &s0);
    kp_secret *back = NULL;
    st = kp_key_unwrap(inst, S_KEY, 1, S_ALG, in[0].ct, in[0].len, &back);
    kp_test_vault_stats_get(kp_test_akv_vault(), &s1);
    printf("azure.faults: forbidden unwrap: %s: %s (%ld request)\n", kp_status_name(st),
           kp_ctx_last_error(kp_test_akv_ctx()), s1.requests - s0.requests);
    if (st != KP_ERR_PERMISSION || back != NULL)
        kp_test_fail("forbidden unwrap: %s, want KP_ERR_PERMISSION", kp_status_name(st));
    if (s1.requests - s0.requests != 1)
        kp_test_fail("forbidden unwrap: %ld requests, want 1 (a 403 is not retried)",
                     s1.requests - s0.requests);

    /* 3. throttled beyond max_attempts 3: three requests, then KP_ERR_THROTTLED */
    kp_test_vault_faults(
        kp_test_akv_vault(),
        "{\"sequence\":[\"429\",\"429\",\"429\",\"429\",\"429\"],\"retry_after\":0}");
    kp_test_vault_stats_get(kp_test_akv_vault(), &s0);
    st = kp_key_unwrap(a3, S_KEY, 1, S_ALG, in[0].ct, in[0].len, &back);
    kp_test_vault_stats_get(kp_test_akv_vault(), &s1);
    const char *why = kp_ctx_last_error(kp_test_akv_ctx());
    printf("azure.faults: throttled unwrap: %s: %s (%ld requests)\n", kp_status_name(st), why,
           s1.requests - s0.requests);
    if (st != KP_ERR_THROTTLED || back != NULL)
        kp_test_fail("throttled unwrap: %s, want KP_ERR_THROTTLED", kp_status_name(st));
    if (strstr(why, "after 3 attempts") == NULL)
        kp_test_fail("throttled unwrap: the error does not say \"after 3 attempts\": %s", why);
    if (s1.requests - s0.requests != 3)
        kp_test_fail("throttled unwrap: %ld requests, want 3", s1.requests - s0.requests);
    kp_test_vault_faults(kp_test_akv_vault(), "{}");
    s_unwrap_ok(a3, &in[0], "after the throttling");

    for (int i = 0; i < nun; i++) {
        kp_secret_free(in[i].dek);
        free(in[i].ct);
    }
    for (int i = 0; i < nwr; i++) {
        kp_secret_free(out[i].dek);
        kp_free(out[i].ct); /* from kp_key_wrap */
    }
    free(in);
    free(out);
    kp_free(spki);
    kp_instance_close(a3);
    kp_instance_close(inst);
    kp_test_akv_done();
    printf("azure.faults: PASS\n");
    return 0;
}
