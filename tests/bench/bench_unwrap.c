/*
 * tests/bench/unwrap: in-process unwrap through libkeyplane, as a database engine embedding it
 * does (one context and policy for the process, kp_chain_unwrap per DEK), against a baseline
 * measured in the same run (issue 13, targets 3, 5 and 6). Each side is one of:
 *
 *   raw:STORE_DIR:POLICY   OpenSSL alone: EVP_PKEY_decrypt (RSA-OAEP, a context per operation)
 *                          with the private key of the version the chain wrapped with, taken
 *                          from the file store at STORE_DIR the documented openssl way
 *                          (KP_BENCH_PASS is its passphrase)
 *   kp:POLICY              kp_chain_unwrap of the envelope
 *   cache:POLICY           kp_chain_unwrap with the context's DEK cache on (kp_ctx_set_dek_cache)
 *
 * Each side loads its policy in its own context, wraps one fresh 32-byte DEK with kp_chain_wrap
 * (untimed) and checks every unwrap gives it back. Each round runs each side for MS
 * milliseconds, alternating which goes first; the figure of a side is the median of its rounds'
 * per-operation times.
 *
 * Usage: bench_unwrap MS ROUNDS CHAIN BASE_LABEL BASE LABEL SIDE [TARGET]
 * Exit 1 when a side fails; speed never fails it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <keyplane/engine.h>
#include <keyplane/envelope.h>
#include <keyplane/keyplane.h>
#include <keyplane/kit/clock.h>
#include <keyplane/policy.h>
#include <keyplane/secret.h>

#include "bench_proc.h"

#define S_DEK 32

typedef struct s_side {
    const char *label;
    enum { S_RAW, S_KP, S_CACHE } kind;
    kp_ctx *ctx;
    kp_policy *policy;
    kp_envelope *env;
    EVP_PKEY *pkey; /* raw */
    const EVP_MD *md;
    uint8_t dek[S_DEK];
    double *per_op_us;
} s_side;

static int s_fail(const s_side *s, const char *what)
{
    fprintf(stderr, "bench_unwrap: %s: %s%s%s\n", s->label, what, s->ctx != NULL ? ": " : "",
            s->ctx != NULL ? kp_ctx_last_error(s->ctx) : "");
    return -1;
}

static int s_setup(s_side *s, const char *spec, const char *chain, int rounds)
{
    char *copy = strdup(spec), *policy = NULL, *store = NULL;
    if (copy == NULL)
        return s_fail(s, "out of memory");
    if (strncmp(copy, "raw:", 4) == 0) {
        s->kind = S_RAW;
        store = copy + 4;
        policy = strchr(store, ':');
        if (policy != NULL)
            *policy++ = '\0';
    } else if (strncmp(copy, "kp:", 3) == 0) {
        s->kind = S_KP;
        policy = copy + 3;
    } else if (strncmp(copy, "cache:", 6) == 0) {
        s->kind = S_CACHE;
        policy = copy + 6;
    }
    int rc = -1;
    kp_secret *dek = NULL;
    if (policy == NULL)
        s_fail(s, "a side is raw:STORE_DIR:POLICY, kp:POLICY or cache:POLICY");
    else if (kp_ctx_new(&s->ctx) != KP_OK || kp_ctx_use_default_plugin_dirs(s->ctx) != KP_OK)
        s_fail(s, "cannot make a context");
    else if (kp_policy_load(s->ctx, policy, &s->policy, NULL) != KP_OK)
        s_fail(s, "cannot load the policy");
    else if (s->kind == S_CACHE &&
             kp_ctx_set_dek_cache(s->ctx, &(kp_dek_cache_limits){.max_entries = 1024,
                                                                 .max_age_s = 300,
                                                                 .max_uses = 0}) != KP_OK)
        s_fail(s, "cannot turn the DEK cache on");
    else if (RAND_bytes(s->dek, S_DEK) != 1 || (dek = kp_secret_new_copy(s->dek, S_DEK)) == NULL)
        s_fail(s, "cannot make a DEK");
    else if (kp_chain_wrap(s->ctx, s->policy, chain, NULL, dek, &s->env, NULL) != KP_OK)
        s_fail(s, "cannot wrap");
    else
        rc = 0;
    kp_secret_free(dek);
    if (rc == 0 && s->kind == S_RAW) {
        const kp_envelope_wrap *w = kp_envelope_get0(s->env, 0);
        char sk[65], path[4096];
        const char *pass = getenv("KP_BENCH_PASS");
        snprintf(path, sizeof(path), "%s/keys/%s/%u/private.p8", store, chain, w->version);
        s->md = w->alg == KP_WRAP_RSA_OAEP_SHA256 ? EVP_sha256() : EVP_sha1();
        if (pass == NULL || kpb_store_key(store, pass, sk) != 0)
            rc = s_fail(s, "cannot open the store key (KP_BENCH_PASS?)");
        else if ((s->pkey = kpb_store_p8(path, sk)) == NULL)
            rc = s_fail(s, "cannot open the private key");
        OPENSSL_cleanse(sk, sizeof(sk));
    }
    if (rc == 0 && (s->per_op_us = calloc((size_t)rounds, sizeof(double))) == NULL)
        rc = s_fail(s, "out of memory");
    free(copy);
    return rc;
}

static int s_one(s_side *s)
{
    uint8_t out[1024];
    size_t outlen = sizeof(out);
    if (s->kind == S_RAW) {
        const kp_envelope_wrap *w = kp_envelope_get0(s->env, 0);
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, s->pkey, NULL);
        int ok = c != NULL && EVP_PKEY_decrypt_init(c) == 1 &&
                 EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_oaep_md(c, s->md) == 1 &&
                 EVP_PKEY_CTX_set_rsa_mgf1_md(c, s->md) == 1 &&
                 EVP_PKEY_decrypt(c, out, &outlen, w->wrapped, w->wrapped_len) == 1 &&
                 outlen == S_DEK && CRYPTO_memcmp(out, s->dek, S_DEK) == 0;
        EVP_PKEY_CTX_free(c);
        OPENSSL_cleanse(out, sizeof(out));
        return ok ? 0 : s_fail(s, "a raw decryption failed");
    }
    kp_secret *dek = NULL;
    if (kp_chain_unwrap(s->ctx, s->policy, s->env, NULL, &dek, NULL) != KP_OK)
        return s_fail(s, "unwrap failed");
    int ok = kp_secret_len(dek) == S_DEK && CRYPTO_memcmp(kp_secret_data(dek), s->dek, S_DEK) == 0;
    kp_secret_free(dek);
    return ok ? 0 : s_fail(s, "unwrap gave another key");
}

/* One round of a side: unwraps for ms milliseconds (the clock read every 16 operations). */
static int s_round(s_side *s, int ms, int r)
{
    double t0 = kpk_clock_ms(), t = t0;
    long ops = 0;
    while (t - t0 < ms) {
        for (int i = 0; i < 16; i++)
            if (s_one(s) != 0)
                return -1;
        ops += 16;
        t = kpk_clock_ms();
    }
    s->per_op_us[r] = (t - t0) * 1000.0 / (double)ops;
    return 0;
}

static void s_free(s_side *s)
{
    kp_envelope_free(s->env);
    kp_policy_free(s->policy);
    kp_ctx_free(s->ctx);
    EVP_PKEY_free(s->pkey);
    free(s->per_op_us);
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: bench_unwrap MS ROUNDS CHAIN BASE_LABEL BASE LABEL SIDE "
                        "[TARGET]\n");
        return 2;
    }
    int ms = atoi(argv[1]), rounds = atoi(argv[2]);
    ms = ms < 1 ? 1 : ms;
    rounds = rounds < 1 ? 1 : rounds;
    s_side sides[2] = {{.label = argv[4]}, {.label = argv[6]}};
    int rc = s_setup(&sides[0], argv[5], argv[3], rounds) != 0 ||
                     s_setup(&sides[1], argv[7], argv[3], rounds) != 0
                 ? 1
                 : 0;
    /* Warm-up: each side's first unwraps open what it keeps open (a store key, a session). */
    for (int i = 0; rc == 0 && i < 2; i++)
        for (int j = 0; rc == 0 && j < 3; j++)
            rc = s_one(&sides[i]) != 0;
    for (int r = 0; rc == 0 && r < rounds; r++) {
        int first = r % 2;
        rc = s_round(&sides[first], ms, r) != 0 || s_round(&sides[1 - first], ms, r) != 0;
        if (rc == 0)
            printf("  round %d: %s %.2f us | %s %.2f us | %.3fx\n", r + 1, sides[0].label,
                   sides[0].per_op_us[r], sides[1].label, sides[1].per_op_us[r],
                   sides[1].per_op_us[r] / sides[0].per_op_us[r]);
    }
    if (rc == 0) {
        double b = kpb_median(sides[0].per_op_us, (size_t)rounds);
        double k = kpb_median(sides[1].per_op_us, (size_t)rounds);
        printf("unwrap, %d ms x %d rounds per side: %s %.2f us/op | %s %.2f us/op (%.0f/s) | ratio "
               "%.3fx%s%s%s\n",
               ms, rounds, sides[0].label, b, sides[1].label, k, 1e6 / k, k / b,
               argc > 8 ? " (target: " : "", argc > 8 ? argv[8] : "", argc > 8 ? ")" : "");
    }
    s_free(&sides[0]);
    s_free(&sides[1]);
    return rc;
}
