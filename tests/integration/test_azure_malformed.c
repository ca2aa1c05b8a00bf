/*
 * azure.malformed: the azure-keyvault plugin against malformed success answers, through
 * libkeyplane (run_with_vault.sh starts the vault). The emulator's test-only `corrupt` fault
 * replaces the body of a 200 answer with: HTML, "{}", base64 fields that are not base64, the
 * first half of the JSON, or 9 MiB of valid JSON (more than the plugin's 8 MiB response limit).
 *
 * For each corruption, reading a public key on a fresh instance (corrupting the versions
 * listing, then the GET of the version), a wrap and an unwrap must each fail with KP_ERR_BACKEND
 * and one line naming what was wrong: never succeed with garbage, never crash. Afterwards the
 * same instance works again without faults.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azure_vault.h"

#define S_KEY "malformed"
#define S_ALG KP_WRAP_RSA_OAEP_SHA256

typedef struct s_case {
    const char *kind;
    const char *list; /* expected text for the versions listing; NULL: nothing to corrupt */
    const char *get;  /* for the GET of a version */
    const char *wrap; /* for wrapKey and unwrapKey */
} s_case;

static const s_case s_cases[] = {
    {"not_json", "is not JSON", "is not JSON", "is not JSON"},
    {"missing_fields", "has no value array", "has no key.kid", "the answer has no value"},
    {"bad_base64", NULL, "malformed modulus or exponent", "not base64url"},
    {"truncated", "is not JSON", "is not JSON", "is not JSON"},
    {"oversize", "larger than 8388608 bytes", "larger than 8388608 bytes",
     "larger than 8388608 bytes"},
};

/* st must be KP_ERR_BACKEND with one line holding want. */
static void s_expect(kp_status st, const char *kind, const char *op, const char *want)
{
    const char *why = kp_ctx_last_error(kp_test_akv_ctx());
    printf("  %-14s %-10s %s: %s\n", kind, op, kp_status_name(st), why);
    if (st == KP_OK)
        kp_test_fail("%s: %s succeeded on a corrupt answer", kind, op);
    if (st != KP_ERR_BACKEND) /* also an unwrap: only a 400 answer means KP_ERR_CRYPTO */
        kp_test_fail("%s: %s: %s, want KP_ERR_BACKEND: %s", kind, op, kp_status_name(st), why);
    if (strstr(why, want) == NULL)
        kp_test_fail("%s: %s: the error does not say \"%s\": %s", kind, op, want, why);
    if (strchr(why, '\n') != NULL || strlen(why) > 400)
        kp_test_fail("%s: %s: the error is not one short line: %s", kind, op, why);
}

static void s_corrupt(const char *kind, const char *op)
{
    char cfg[160];
    snprintf(cfg, sizeof cfg, "{\"corrupt\":\"%s\",\"corrupt_ops\":[\"%s\"]}", kind, op);
    kp_test_vault_faults(kp_test_akv_vault(), cfg);
}

/* Reads the public key on a fresh instance (nothing cached) while op's answers are corrupt. */
static void s_get_public(const s_case *c, const char *op, const char *want, const uint8_t *spki,
                         size_t spki_len)
{
    kp_instance *fresh = kp_test_akv_open("vault1");
    uint8_t *got = NULL;
    size_t len = 0;
    s_corrupt(c->kind, op);
    kp_status st = kp_key_get_public(fresh, S_KEY, 1, &got, &len);
    kp_test_vault_faults(kp_test_akv_vault(), "{}");
    if (want != NULL) {
        s_expect(st, c->kind, strcmp(op, "list") == 0 ? "public(ls)" : "public", want);
        if (got != NULL)
            kp_test_fail("%s: get-public failed but returned a key", c->kind);
    } else if (st != KP_OK || len != spki_len || memcmp(got, spki, len) != 0) {
        /* nothing of this kind in the answer: it must go through unchanged */
        kp_test_fail("%s: get-public with an untouched %s answer: %s", c->kind, op,
                     kp_status_name(st));
    }
    kp_free(got);
    kp_instance_close(fresh);
}

int main(void)
{
    kp_test_akv_init();
    kp_test_vault_faults(kp_test_akv_vault(), "{}");
    kp_instance *inst = kp_test_akv_open("vault1");
    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = S_KEY, .type = KP_KEY_RSA, .bits = 2048};
    kp_key_info info;
    kp_status st = kp_key_create(inst, &spec, &info);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    if (st == KP_OK)
        st = kp_key_get_public(inst, S_KEY, 1, &spki, &spki_len);
    if (st != KP_OK)
        kp_test_fail("setup: %s: %s", kp_status_name(st), kp_ctx_last_error(kp_test_akv_ctx()));
    kp_secret *dek = kp_test_akv_random_dek(32);
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    kp_test_akv_local_wrap(spki, spki_len, dek, &ct, &ctlen);

    kp_test_vault_stats s0, s1;
    kp_test_vault_stats_get(kp_test_akv_vault(), &s0);
    double t0 = kpk_clock_ms();
    for (size_t i = 0; i < sizeof(s_cases) / sizeof(s_cases[0]); i++) {
        const s_case *c = &s_cases[i];
        s_get_public(c, "list", c->list, spki, spki_len);
        s_get_public(c, "get", c->get, spki, spki_len);

        uint8_t *w = NULL;
        size_t wlen = 0;
        s_corrupt(c->kind, "wrapKey");
        st = kp_key_wrap(inst, S_KEY, 1, S_ALG, dek, &w, &wlen);
        kp_test_vault_faults(kp_test_akv_vault(), "{}");
        s_expect(st, c->kind, "wrap", c->wrap);
        if (w != NULL)
            kp_test_fail("%s: wrap failed but returned bytes", c->kind);

        kp_secret *back = NULL;
        s_corrupt(c->kind, "unwrapKey");
        st = kp_key_unwrap(inst, S_KEY, 1, S_ALG, ct, ctlen, &back);
        kp_test_vault_faults(kp_test_akv_vault(), "{}");
        s_expect(st, c->kind, "unwrap", c->wrap);
        if (back != NULL)
            kp_test_fail("%s: unwrap failed but returned a DEK", c->kind);
    }
    kp_test_vault_stats_get(kp_test_akv_vault(), &s1);

    /* the instance that saw all of it still works */
    uint8_t *w = NULL;
    size_t wlen = 0;
    kp_secret *back = NULL, *back2 = NULL;
    st = kp_key_wrap(inst, S_KEY, 1, S_ALG, dek, &w, &wlen);
    if (st == KP_OK)
        st = kp_key_unwrap(inst, S_KEY, 1, S_ALG, w, wlen, &back);
    if (st == KP_OK)
        st = kp_key_unwrap(inst, S_KEY, 1, S_ALG, ct, ctlen, &back2);
    if (st != KP_OK || !kp_secret_equal(back, dek) || !kp_secret_equal(back2, dek))
        kp_test_fail("after the corrupt answers: %s: %s", kp_status_name(st),
                     kp_ctx_last_error(kp_test_akv_ctx()));
    printf("azure.malformed: %ld answers corrupted in %.2f s; afterwards wrap and unwrap work\n",
           s1.corrupt - s0.corrupt, (kpk_clock_ms() - t0) / 1000.0);
    if (s1.corrupt - s0.corrupt != 20)
        kp_test_fail("%ld answers were corrupted, want 20", s1.corrupt - s0.corrupt);

    kp_free(w);
    kp_secret_free(back);
    kp_secret_free(back2);
    kp_secret_free(dek);
    free(ct); /* kp_test_akv_local_wrap's */
    kp_free(spki);
    kp_instance_close(inst);
    kp_test_akv_done();
    printf("azure.malformed: PASS\n");
    return 0;
}
