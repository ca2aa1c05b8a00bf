/* Chain operations over two file "regions": create everywhere, wrap in one, unwrap in the
 * other, fail over, refuse a replica whose key is not the envelope's. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test.h"

typedef kp_test_fx fx;

static int setup(void **state)
{
    fx *f = kp_test_fx_new(sizeof(fx), NULL, KP_TEST_FX_AUDIT);
    kp_test_fx_load_two_region(f);
    *state = f;
    return 0;
}

typedef struct {
    int ok, failed;
} s_report;

static void s_reporter(void *arg, const char *item, kp_status st, const char *detail)
{
    s_report *r = arg;
    (void)item, (void)detail;
    if (st == KP_OK)
        r->ok++;
    else
        r->failed++;
}

static kp_secret *s_dek(void)
{
    unsigned char raw[32];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(0xA0 + i);
    return kp_secret_new_copy(raw, sizeof(raw));
}

static void test_create_wrap_unwrap_across_regions(void **state)
{
    fx *f = *state;
    s_report r = {0};
    kp_key_info info;
    kp_status st = kp_chain_create_protector(f->ctx, f->pol, "c", s_reporter, &r, &info);
    if (st != KP_OK)
        fail_msg("%s", kp_ctx_last_error(f->ctx));
    assert_int_equal(info.version, 1);
    assert_int_equal(r.ok, 2);
    assert_int_equal(r.failed, 0);
    /* A second create makes v2 in both, numbered alike. */
    assert_int_equal(kp_chain_create_protector(f->ctx, f->pol, "c", NULL, NULL, &info), KP_OK);
    assert_int_equal(info.version, 2);
    kp_instance *b = NULL;
    kp_key_info ib;
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "b", &b), KP_OK);
    assert_int_equal(kp_key_info_get(b, "c", 2, &ib), KP_OK);
    assert_string_equal(ib.fingerprint, info.fingerprint);
    kp_instance_close(b);

    kp_secret *dek = s_dek();
    kp_envelope *env = NULL;
    char used[KP_NAME_MAX];
    assert_int_equal(kp_chain_wrap(f->ctx, f->pol, "c", "a", dek, &env, used), KP_OK);
    assert_string_equal(used, "a");
    assert_int_equal(kp_envelope_get0(env, 0)->version, 2);
    kp_secret *back = NULL;
    assert_int_equal(kp_chain_unwrap(f->ctx, f->pol, env, "b", &back, used), KP_OK);
    assert_string_equal(used, "b");
    assert_true(kp_secret_equal(dek, back));
    kp_secret_free(back);

    /* Audit: every operation is there, no key material is. */
    fflush(f->audit);
    assert_non_null(strstr(f->audit_buf, "\"op\":\"key.create\""));
    assert_non_null(strstr(f->audit_buf, "\"op\":\"key.import\""));
    assert_non_null(strstr(f->audit_buf, "\"op\":\"key.wrap\""));
    assert_non_null(strstr(f->audit_buf, "\"op\":\"key.unwrap\""));
    assert_null(strstr(f->audit_buf, "a0a1a2a3"));
    kp_secret_free(dek);
    kp_envelope_free(env);
}

static void test_failover_and_fingerprint_mismatch(void **state)
{
    fx *f = *state;
    kp_key_info info;
    assert_int_equal(kp_chain_create_protector(f->ctx, f->pol, "c", NULL, NULL, &info), KP_OK);
    kp_secret *dek = s_dek();
    kp_envelope *env = NULL;
    assert_int_equal(kp_chain_wrap(f->ctx, f->pol, "c", NULL, dek, &env, NULL), KP_OK);

    /* Region a loses its key store: unwrap fails over to b. */
    char *keys = NULL;
    assert_true(asprintf(&keys, "%s/a", f->dir) > 0);
    kp_test_rmtree(keys);
    free(keys);
    kp_secret *back = NULL;
    char used[KP_NAME_MAX] = "";
    assert_int_equal(kp_chain_unwrap(f->ctx, f->pol, env, NULL, &back, used), KP_OK);
    assert_string_equal(used, "b");
    assert_true(kp_secret_equal(dek, back));
    kp_secret_free(back);
    /* Pinned to the lost region: no failover, a clear error: the store is unreachable (not
     * initialised), not one that lacks the key. */
    assert_int_equal(kp_chain_unwrap(f->ctx, f->pol, env, "a", &back, used), KP_ERR_UNAVAILABLE);
    assert_non_null(strstr(kp_ctx_last_error(f->ctx), "is not initialised"));

    /* Region a, made again, gets a different key under the same version: it is skipped, not
     * trusted. */
    kp_instance *a = NULL;
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "a", &a), KP_OK);
    assert_int_equal(kp_instance_init(a), KP_OK);
    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = "c", .type = KP_KEY_RSA, .bits = 2048, .version = 1};
    assert_int_equal(kp_key_create(a, &spec, &info), KP_OK);
    kp_instance_close(a);
    assert_int_equal(kp_chain_unwrap(f->ctx, f->pol, env, "a", &back, used), KP_ERR_INTEGRITY);
    assert_non_null(strstr(kp_ctx_last_error(f->ctx), "fingerprint"));
    assert_int_equal(kp_chain_unwrap(f->ctx, f->pol, env, NULL, &back, used), KP_OK);
    assert_string_equal(used, "b");
    kp_secret_free(back);

    /* Both gone: one error naming every replica's failure. */
    char *bdir = NULL;
    assert_true(asprintf(&bdir, "%s/b", f->dir) > 0);
    kp_test_rmtree(bdir);
    free(bdir);
    assert_int_not_equal(kp_chain_unwrap(f->ctx, f->pol, env, NULL, &back, used), KP_OK);
    assert_non_null(strstr(kp_ctx_last_error(f->ctx), "no replica of chain 'c' could unwrap"));
    assert_null(back);
    kp_secret_free(dek);
    kp_envelope_free(env);
}

static void test_unknown_chain(void **state)
{
    fx *f = *state;
    kp_secret *dek = s_dek();
    kp_envelope *env = NULL;
    assert_int_equal(kp_chain_wrap(f->ctx, f->pol, "nope", NULL, dek, &env, NULL),
                     KP_ERR_NOT_FOUND);
    assert_non_null(strstr(kp_ctx_last_error(f->ctx), "no chain 'nope'"));
    /* No key yet: wrap fails in every replica and says so. */
    assert_int_equal(kp_chain_wrap(f->ctx, f->pol, "c", NULL, dek, &env, NULL), KP_ERR_NOT_FOUND);
    assert_null(env);
    kp_secret_free(dek);
}

/* How many actions of plan copy a version into target. */
static size_t s_copies_to(const kp_plan *plan, const char *target)
{
    size_t n = 0;
    for (size_t i = 0; i < kp_plan_action_count(plan); i++) {
        const kp_action *a = kp_plan_action(plan, i);
        n += a->kind == KP_ACTION_COPY && strcmp(a->target, target) == 0;
    }
    return n;
}

/* A version only the replica holds (the origin silent) is unconfirmed, and copied to the origin
 * only when the caller vouches for the replica (restore --from): also for a caller built
 * against kp_plan_opts before `workers` was appended (its smaller struct_size). */
static void test_plan_vouch(void **state)
{
    fx *f = *state;
    kp_instance *b = kp_test_fx_open(f, "b");
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = "c",
                        .type = KP_KEY_RSA,
                        .bits = 2048,
                        .flags = KP_KEY_EXPORTABLE};
    kp_key_info info = {.struct_size = sizeof(info)};
    assert_int_equal(kp_key_create(b, &spec, &info), KP_OK);

    kp_plan *plan = NULL;
    assert_int_equal(kp_plan_make_with(f->ctx, f->pol, "c", NULL, &plan), KP_OK);
    assert_int_equal(s_copies_to(plan, "a"), 0);
    assert_true(kp_plan_finding_count(plan) > 0);
    kp_plan_free(plan);

    kp_plan_opts opts = {.struct_size = sizeof(opts), .vouch = "b", .workers = 1};
    assert_int_equal(kp_plan_make_with(f->ctx, f->pol, "c", &opts, &plan), KP_OK);
    assert_int_equal(s_copies_to(plan, "a"), 1);
    kp_plan_free(plan);

    kp_plan_opts old = {.struct_size = (uint32_t)offsetof(kp_plan_opts, workers), .vouch = "b"};
    assert_int_equal(kp_plan_make_with(f->ctx, f->pol, "c", &old, &plan), KP_OK);
    assert_int_equal(s_copies_to(plan, "a"), 1);
    kp_plan_free(plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        KP_TEST_FX(test_create_wrap_unwrap_across_regions, setup),
        KP_TEST_FX(test_failover_and_fingerprint_mismatch, setup),
        KP_TEST_FX(test_unknown_chain, setup),
        KP_TEST_FX(test_plan_vouch, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
