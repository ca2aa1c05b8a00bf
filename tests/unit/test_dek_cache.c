/* The DEK cache (kp_ctx_set_dek_cache) over a real chain in two file stores: a hit answers
 * without a store, the bounds (entries, age, uses) hold, a retire drops the retired version's
 * entries, and every DEK the cache drops is wiped. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/secret_hook.h"
#include "instance/dek_cache.h"
#include "kp_test.h"

typedef kp_test_fx fx;

#define S_N 3

static unsigned char s_raw[S_N][32];
static size_t s_freed_with_dek; /* freed secret blocks still holding one of the DEKs */

static void s_free_hook(const unsigned char *data, size_t len)
{
    for (size_t k = 0; k < S_N; k++)
        for (size_t i = 0; i + 32 <= len; i++)
            if (memcmp(data + i, s_raw[k], 32) == 0)
                s_freed_with_dek++;
}

static int64_t s_fake_ms;
static int64_t s_fake_now(void)
{
    return s_fake_ms;
}

typedef struct {
    kp_test_fx base;
    kp_envelope *env[S_N];
} s_fx;

static int setup(void **state)
{
    s_fx *f = kp_test_fx_new(sizeof(s_fx), NULL, KP_TEST_FX_AUDIT);
    kp_test_fx_load_two_region(&f->base);
    kp_key_info info;
    if (kp_chain_create_protector(f->base.ctx, f->base.pol, "c", NULL, NULL, &info) != KP_OK)
        fail_msg("%s", kp_ctx_last_error(f->base.ctx));
    for (size_t k = 0; k < S_N; k++) {
        for (size_t i = 0; i < 32; i++)
            s_raw[k][i] = (unsigned char)(0x40 + 16 * k + i);
        kp_secret *dek = kp_secret_new_copy(s_raw[k], 32);
        assert_int_equal(kp_chain_wrap(f->base.ctx, f->base.pol, "c", NULL, dek, &f->env[k], NULL),
                         KP_OK);
        kp_secret_free(dek);
    }
    s_freed_with_dek = 0;
    s_fake_ms = 1000000;
    kp__dek_cache_set_clock(s_fake_now);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    s_fx *f = *state;
    kp__secret_set_free_hook(NULL);
    kp__dek_cache_set_clock(NULL);
    for (size_t k = 0; k < S_N; k++)
        kp_envelope_free(f->env[k]);
    return kp_test_fx_teardown(state);
}

/* Unwraps envelope k and checks the DEK; returns the store that did it ("" for none named). */
static void s_unwrap(s_fx *f, size_t k, char used[KP_NAME_MAX])
{
    kp_secret *dek = NULL;
    if (kp_chain_unwrap(f->base.ctx, f->base.pol, f->env[k], NULL, &dek, used) != KP_OK)
        fail_msg("unwrap %zu: %s", k, kp_ctx_last_error(f->base.ctx));
    assert_int_equal(kp_secret_len(dek), 32);
    assert_memory_equal(kp_secret_data(dek), s_raw[k], 32);
    kp_secret_free(dek);
}

static kp_dek_cache_stats s_stats(s_fx *f)
{
    kp_dek_cache_stats st;
    kp_ctx_dek_cache_stats(f->base.ctx, &st);
    return st;
}

static size_t s_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_off_by_default_and_bad_bounds(void **state)
{
    s_fx *f = *state;
    char used[KP_NAME_MAX];
    s_unwrap(f, 0, used);
    s_unwrap(f, 0, used);
    kp_dek_cache_stats st = s_stats(f);
    assert_int_equal(st.hits + st.misses + st.entries, 0);
    kp_dek_cache_limits bad[] = {
        {.max_entries = 0, .max_age_s = 60},
        {.max_entries = 1048577, .max_age_s = 60},
        {.max_entries = 8, .max_age_s = 0},
        {.max_entries = 8, .max_age_s = 86401},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(kp_ctx_set_dek_cache(f->base.ctx, &bad[i]), KP_ERR_INVALID_ARG);
    assert_non_null(strstr(kp_ctx_last_error(f->base.ctx), "max_entries"));
    assert_int_equal(kp_ctx_set_dek_cache(f->base.ctx, NULL), KP_OK); /* off stays off */
}

static void test_hit_needs_no_store(void **state)
{
    s_fx *f = *state;
    char used[KP_NAME_MAX];
    kp_dek_cache_limits lim = {.max_entries = 8, .max_age_s = 60};
    assert_int_equal(kp_ctx_set_dek_cache(f->base.ctx, &lim), KP_OK);
    fflush(f->base.audit);
    size_t before = s_count(f->base.audit_buf, "\"op\":\"key.unwrap\"");
    s_unwrap(f, 0, used);
    char filled[KP_NAME_MAX];
    snprintf(filled, sizeof(filled), "%s", used);
    /* The stores gone: only the cache can answer now. */
    char *a = NULL, *b = NULL;
    assert_true(asprintf(&a, "%s/a", f->base.dir) > 0 && asprintf(&b, "%s/b", f->base.dir) > 0);
    kp_test_rmtree(a);
    kp_test_rmtree(b);
    free(a), free(b);
    s_unwrap(f, 0, used);
    assert_string_equal(used, filled); /* the store that filled the entry */
    kp_dek_cache_stats st = s_stats(f);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.entries, 1);
    /* A hit is no key use: one audit event, for the unwrap that filled the entry. */
    fflush(f->base.audit);
    assert_int_equal(s_count(f->base.audit_buf, "\"op\":\"key.unwrap\"") - before, 1);
    /* A replica asked for by name is always asked: gone, it fails. */
    kp_secret *dek = NULL;
    assert_int_not_equal(kp_chain_unwrap(f->base.ctx, f->base.pol, f->env[0], "a", &dek, NULL),
                         KP_OK);
    assert_null(dek);
}

static void test_entries_bound_lru(void **state)
{
    s_fx *f = *state;
    char used[KP_NAME_MAX];
    kp_dek_cache_limits lim = {.max_entries = 2, .max_age_s = 60};
    assert_int_equal(kp_ctx_set_dek_cache(f->base.ctx, &lim), KP_OK);
    kp__secret_set_free_hook(s_free_hook);
    s_unwrap(f, 0, used); /* miss: {0} */
    s_unwrap(f, 1, used); /* miss: {0, 1} */
    s_unwrap(f, 0, used); /* hit: 0 is the most recent */
    s_unwrap(f, 2, used); /* miss: 1 (least recent) goes: {0, 2} */
    kp_dek_cache_stats st = s_stats(f);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 3);
    s_unwrap(f, 0, used);
    s_unwrap(f, 2, used);
    assert_int_equal(s_stats(f).hits, 3);
    s_unwrap(f, 1, used); /* evicted: a miss */
    assert_int_equal(s_stats(f).misses, 4);
    /* Turning it off wipes what it held. */
    assert_int_equal(kp_ctx_set_dek_cache(f->base.ctx, NULL), KP_OK);
    assert_int_equal(s_stats(f).entries, 0);
    assert_int_equal(s_freed_with_dek, 0);
}

static void test_age_bound(void **state)
{
    s_fx *f = *state;
    char used[KP_NAME_MAX];
    kp_dek_cache_limits lim = {.max_entries = 8, .max_age_s = 10};
    assert_int_equal(kp_ctx_set_dek_cache(f->base.ctx, &lim), KP_OK);
    kp__secret_set_free_hook(s_free_hook);
    s_unwrap(f, 0, used);
    s_fake_ms += 9999;
    s_unwrap(f, 0, used);
    assert_int_equal(s_stats(f).hits, 1);
    s_fake_ms += 1; /* 10 s after the unwrap that filled it, hits or not */
    s_unwrap(f, 0, used);
    kp_dek_cache_stats st = s_stats(f);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.entries, 1); /* filled again */
    assert_int_equal(s_freed_with_dek, 0);
}

static void test_uses_bound(void **state)
{
    s_fx *f = *state;
    char used[KP_NAME_MAX];
    kp_dek_cache_limits lim = {.max_entries = 8, .max_age_s = 60, .max_uses = 2};
    assert_int_equal(kp_ctx_set_dek_cache(f->base.ctx, &lim), KP_OK);
    kp__secret_set_free_hook(s_free_hook);
    s_unwrap(f, 1, used); /* fill */
    s_unwrap(f, 1, used); /* use 1 */
    s_unwrap(f, 1, used); /* use 2: dropped after answering */
    kp_dek_cache_stats st = s_stats(f);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.evicted, 1);
    s_unwrap(f, 1, used);
    assert_int_equal(s_stats(f).misses, 2);
    assert_int_equal(s_freed_with_dek, 0);
}

static void test_retire_forgets(void **state)
{
    s_fx *f = *state;
    char used[KP_NAME_MAX];
    kp_dek_cache_limits lim = {.max_entries = 8, .max_age_s = 60};
    assert_int_equal(kp_ctx_set_dek_cache(f->base.ctx, &lim), KP_OK);
    s_unwrap(f, 0, used);
    s_unwrap(f, 1, used);
    assert_int_equal(s_stats(f).entries, 2);
    uint32_t v = 0;
    int verified = 0;
    if (kp_chain_stage(f->base.ctx, f->base.pol, "c", NULL, &v, &verified) != KP_OK ||
        kp_chain_activate(f->base.ctx, f->base.pol, "c", &v) != KP_OK)
        fail_msg("%s", kp_ctx_last_error(f->base.ctx));
    assert_int_equal(v, 2);
    /* Still cached: v1 is previous, not retired. */
    assert_int_equal(s_stats(f).entries, 2);
    kp__secret_set_free_hook(s_free_hook);
    if (kp_chain_retire(f->base.ctx, f->base.pol, "c", 1) != KP_OK)
        fail_msg("%s", kp_ctx_last_error(f->base.ctx));
    kp_dek_cache_stats st = s_stats(f);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.evicted, 2);
    assert_int_equal(s_freed_with_dek, 0);
    /* kp_ctx_dek_cache_forget does the same for a retire made elsewhere. */
    s_unwrap(f, 2, used);
    assert_int_equal(s_stats(f).entries, 1);
    kp_ctx_dek_cache_forget(f->base.ctx, "other", 0);
    assert_int_equal(s_stats(f).entries, 1);
    kp_ctx_dek_cache_forget(f->base.ctx, "c", 2);
    assert_int_equal(s_stats(f).entries, 1);
    kp_ctx_dek_cache_forget(f->base.ctx, "c", 0);
    assert_int_equal(s_stats(f).entries, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_off_by_default_and_bad_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hit_needs_no_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_bound_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_age_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uses_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_forgets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
