/* ABI 1.0 rules the core enforces and plugins must keep: the minor-version rule both ways, the
 * version node of the entry point, the mandatory INSTANCE_INFO, and the core's defences against
 * a plugin that lies about a length, returns an empty key or a malformed fingerprint. Each fault
 * is a single-fault mock plugin (tests/mock-plugins). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test.h"

static void test_newer_minor_refused(void **state)
{
    (void)state;
    char want[96];
    snprintf(want, sizeof(want), "built for ABI 1.%d, this keyplane offers ABI 1.%d",
             KP_ABI_MINOR + 1, KP_ABI_MINOR);
    kp_test_expect_refused("newer-minor", KP_ERR_ABI, want);
}

static void test_no_version_node_refused(void **state)
{
    (void)state;
    kp_test_expect_refused(
        "no-version-node", KP_ERR_PLUGIN,
        "kp_plugin_init is not exported under the version node KEYPLANE_PROVIDER_1");
}

static void test_half_pair_refused(void **state)
{
    (void)state;
    kp_test_expect_refused("half-pair", KP_ERR_PLUGIN,
                           "offers KS_STATE_GET (id 208) without KS_STATE_PUT (id 209)");
}

static void test_missing_instance_info_refused(void **state)
{
    (void)state;
    kp_test_expect_refused("missing-instance-info", KP_ERR_PLUGIN,
                           "lacks mandatory function INSTANCE_INFO (id 113)");
}

/* ---- a plugin built for 1.0 in a core of a higher minor ----------------------------------- */

/* An upcall a later minor might add: a 1.0 plugin must ignore it. */
static void s_up_future(void)
{
}

/* Calls path's kp_plugin_init as a core of ABI 1.(KP_ABI_MINOR + 1) would: a longer
 * kp_core_info and an upcall the plugin does not know. The plugin must accept it, and then give
 * a table with PLUGIN_INFO whose abi_minor is at most what it was built for. */
static void s_init_in_newer_core(const char *path)
{
    void *dl = NULL;
    kp_plugin_init_fn *init = kp_test_plugin_init(path, &dl);
    /* the minimal core's upcalls and one more */
    kp_dispatch up[KP_TEST_UPCALLS + 2];
    memcpy(up, kp_test_upcalls, KP_TEST_UPCALLS * sizeof(up[0]));
    up[KP_TEST_UPCALLS] = (kp_dispatch){98, (kp_fn)s_up_future};
    up[KP_TEST_UPCALLS + 1] = (kp_dispatch){0, NULL};
    /* a kp_core_info of the next minor: one member appended */
    struct {
        kp_core_info v1;
        uint64_t appended;
    } core = {{sizeof(core), KP_ABI_MAJOR, KP_ABI_MINOR + 1, up, NULL}, 42};
    const kp_dispatch *table = NULL;
    void *pctx = NULL;
    kp_status st = init(&core.v1, &table, &pctx);
    if (st != KP_OK)
        fail_msg("%s refused a core of ABI 1.%d: %s", path, KP_ABI_MINOR + 1, kp_status_name(st));
    assert_non_null(table);
    const kp_dispatch *d = kp_dispatch_find(table, KP_FN_PLUGIN_INFO);
    assert_non_null(d);
    const kp_plugin_info *info = kp_dispatch_plugin_info(d)(pctx);
    assert_int_equal(info->abi_major, KP_ABI_MAJOR);
    assert_true(info->abi_minor <= KP_ABI_MINOR);
    d = kp_dispatch_find(table, KP_FN_PLUGIN_TEARDOWN);
    if (d != NULL)
        kp_dispatch_plugin_teardown(d)(pctx);
    dlclose(dl);

    /* and a core of another major is refused by the plugin itself */
    init = kp_test_plugin_init(path, &dl);
    core.v1.abi_major = KP_ABI_MAJOR + 1;
    table = NULL;
    assert_int_equal(init(&core.v1, &table, &pctx), KP_ERR_ABI);
    dlclose(dl);
}

static void test_plugins_load_in_newer_minor(void **state)
{
    (void)state;
    static const char *const plugins[] = {"file", "pkcs11", "azure-keyvault"};
    for (size_t i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s.so", KP_TEST_PLUGIN_DIR, plugins[i]);
        s_init_in_newer_core(path);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/good/good.so", KP_TEST_MOCK_DIR);
    s_init_in_newer_core(path);
}

/* ---- the core's defences ------------------------------------------------------------------ */

/* The fixture (tests/support) with instance "m" of the plugin under test open. */
typedef struct s_fixture {
    kp_test_fx t;
    kp_instance *inst;
} s_fixture;

/* Opens instance "m" of plugin `name` from directory dir (a mock's own when NULL) through a
 * policy; a keystore gets a chain over it. */
static void s_open_in(s_fixture *f, const char *name, const char *dir)
{
    char *own = dir != NULL ? NULL : kp_test_mock_dir(name);
    kp_test_fx_init(&f->t, dir != NULL ? dir : own, 0);
    free(own);
    char text[512];
    snprintf(text, sizeof(text),
             "version: 1\n"
             "providers:\n"
             "  m:\n"
             "    plugin: %s\n"
             "%s",
             name,
             dir != NULL ? ""
                         : "chains:\n"
                           "  mock:\n"
                           "    protector: {type: rsa, bits: 2048, origin: m}\n"
                           "    replicas: [m]\n");
    kp_test_fx_load(&f->t, text);
    f->inst = kp_test_fx_open(&f->t, "m");
}

static void s_open(s_fixture *f, const char *name)
{
    s_open_in(f, name, NULL);
}

static void s_close(s_fixture *f)
{
    kp_test_fx_fini(&f->t);
}

static void s_expect_error(s_fixture *f, kp_status got, kp_status want, const char *words)
{
    const char *err = kp_ctx_last_error(f->t.ctx);
    if (got != want || strstr(err, words) == NULL)
        fail_msg("got %s '%s', want %s with '%s'", kp_status_name(got), err, kp_status_name(want),
                 words);
}

static void test_good_mock_works(void **state)
{
    (void)state;
    s_fixture f;
    s_open(&f, "good");
    assert_int_equal(kp_instance_capabilities(f.inst), KP_CAP_KEYSTORE);
    kp_key_info info;
    assert_int_equal(kp_key_info_get(f.inst, "mock", 0, &info), KP_OK);
    assert_int_equal(info.version, 1);
    uint8_t *spki = NULL, *wrapped = NULL;
    size_t spki_len = 0, wlen = 0;
    assert_int_equal(kp_key_get_public(f.inst, "mock", 1, &spki, &spki_len), KP_OK);
    kp_secret *dek = kp_secret_new(32), *back = NULL;
    memset(kp_secret_data(dek), 7, 32);
    assert_int_equal(kp_key_wrap(f.inst, "mock", 1, KP_WRAP_RSA_OAEP_SHA256, dek, &wrapped, &wlen),
                     KP_OK);
    assert_int_equal(
        kp_key_unwrap(f.inst, "mock", 1, KP_WRAP_RSA_OAEP_SHA256, wrapped, wlen, &back), KP_OK);
    assert_int_equal(kp_secret_len(back), 32);
    assert_memory_equal(kp_secret_cdata(back), kp_secret_cdata(dek), 32);
    kp_secret_free(dek);
    kp_secret_free(back);
    kp_free(spki);
    kp_free(wrapped);
    s_close(&f);
}

static void test_lying_length(void **state)
{
    (void)state;
    s_fixture f;
    s_open(&f, "lying-length");
    uint8_t *out = NULL;
    size_t len = 0;
    kp_secret *dek = kp_secret_new(32);
    /* the mock claims 720 bytes beyond the buffer: the core must not copy them */
    s_expect_error(&f, kp_key_wrap(f.inst, "mock", 1, KP_WRAP_RSA_OAEP_SHA256, dek, &out, &len),
                   KP_ERR_PLUGIN, "KS_WRAP returned");
    assert_null(out);
    s_expect_error(&f, kp_key_get_public(f.inst, "mock", 1, &out, &len), KP_ERR_PLUGIN,
                   "KS_GET_PUBLIC returned");
    assert_null(out);
    kp_secret_free(dek);
    s_close(&f);
}

/* Mock `name` wraps a DEK correctly; its unwrap of it must be refused with words. */
static void s_expect_bad_unwrap(const char *name, const char *words)
{
    s_fixture f;
    s_open(&f, name);
    uint8_t *wrapped = NULL;
    size_t wlen = 0;
    kp_secret *dek = kp_secret_new(32), *back = NULL;
    assert_int_equal(kp_key_wrap(f.inst, "mock", 1, KP_WRAP_RSA_OAEP_SHA256, dek, &wrapped, &wlen),
                     KP_OK);
    s_expect_error(&f,
                   kp_key_unwrap(f.inst, "mock", 1, KP_WRAP_RSA_OAEP_SHA256, wrapped, wlen, &back),
                   KP_ERR_PLUGIN, words);
    assert_null(back);
    kp_secret_free(dek);
    kp_free(wrapped);
    s_close(&f);
}

static void test_empty_unwrap(void **state)
{
    (void)state;
    s_expect_bad_unwrap("empty-unwrap", "unwrap succeeded with no key");
}

static kp_status s_count(void *arg, const kp_key_info *info)
{
    (void)info;
    (*(int *)arg)++;
    return KP_OK;
}

/* Mock name answers a lookup and a listing of the key "mock" wrongly: both are KP_ERR_PLUGIN with
 * the words given, and the caller never sees the bad entry. */
static void s_expect_bad_answers(const char *name, const char *lookup, const char *listing)
{
    s_fixture f;
    s_open(&f, name);
    kp_key_info info;
    s_expect_error(&f, kp_key_info_get(f.inst, "mock", 1, &info), KP_ERR_PLUGIN, lookup);
    int n = 0;
    s_expect_error(&f, kp_key_list(f.inst, "mock", s_count, &n), KP_ERR_PLUGIN, listing);
    assert_int_equal(n, 0);
    s_close(&f);
}

static void test_malformed_fingerprint(void **state)
{
    (void)state;
    s_expect_bad_answers("bad-fpr", "returned a malformed fingerprint for mock v1",
                         "malformed fingerprint");
}

/* A plugin that lists or looks up another key than the one asked for is broken, not a store
 * that lacks the key: the caller must never see the wrong key as the asked one. */
static void test_other_name(void **state)
{
    (void)state;
    s_expect_bad_answers("other-name", "answered a lookup of mock v1 with mock-old v1",
                         "listed mock-old when asked for mock");
}

static void test_other_version(void **state)
{
    (void)state;
    s_fixture f;
    s_open(&f, "other-version");
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = "made",
                        .type = KP_KEY_RSA,
                        .bits = 2048,
                        .version = 3};
    kp_key_info info;
    s_expect_error(&f, kp_key_create(f.inst, &spec, &info), KP_ERR_PLUGIN,
                   "KS_CREATE of made v3 made made v10");
    /* a spec too short to be one is the caller's mistake, said before the plugin runs */
    kp_key_spec shorty = spec;
    shorty.struct_size = 4;
    s_expect_error(&f, kp_key_create(f.inst, &shorty, &info), KP_ERR_INVALID_ARG, "too short");
    s_close(&f);
}

/* An instance may narrow its plugin's capabilities, never widen them: refused at open. */
static void test_wide_caps(void **state)
{
    (void)state;
    char *dir = kp_test_mock_dir("wide-caps");
    kp_test_fx f;
    kp_test_fx_init(&f, dir, 0);
    kp_test_fx_load(&f, "version: 1\nproviders:\n  m:\n    plugin: wide-caps\n");
    kp_instance *inst = NULL;
    assert_int_equal(kp_instance_open(f.ctx, f.pol, "m", &inst), KP_ERR_PLUGIN);
    assert_null(inst);
    if (strstr(kp_ctx_last_error(f.ctx),
               "declares instance capabilities 0x3 outside its own 0x1") == NULL)
        fail_msg("got '%s'", kp_ctx_last_error(f.ctx));
    kp_test_fx_fini(&f);
    free(dir);
}

static void test_long_unwrap(void **state)
{
    (void)state;
    s_expect_bad_unwrap("long-unwrap", "gave a key of");
}

/* The DATAKEY capability through the library: a context-bound data key round trip, and every
 * way a decrypt must fail. */
static void test_datakey(void **state)
{
    (void)state;
    s_fixture f;
    s_open_in(&f, "datakey", KP_TEST_DATAKEY_DIR);
    assert_int_equal(kp_instance_capabilities(f.inst), KP_CAP_DATAKEY);
    const kp_meta ctx1[] = {{"kms_cmk_id", "k1"}, {"db", "sales"}};
    const kp_meta ctx2[] = {{"db", "sales"}, {"kms_cmk_id", "k1"}}; /* same pairs, other order */
    const kp_meta other[] = {{"db", "hr"}, {"kms_cmk_id", "k1"}};
    kp_secret *plain = NULL, *back = NULL;
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    assert_int_equal(kp_datakey_generate(f.inst, "k1", 32, ctx1, 2, &plain, &ct, &ctlen), KP_OK);
    assert_int_equal(kp_secret_len(plain), 32);
    assert_true(ctlen > 32);
    assert_int_equal(kp_datakey_decrypt(f.inst, "k1", ct, ctlen, ctx2, 2, &back), KP_OK);
    assert_int_equal(kp_secret_len(back), 32);
    assert_memory_equal(kp_secret_cdata(back), kp_secret_cdata(plain), 32);
    kp_secret_free(back);
    back = NULL;
    s_expect_error(&f, kp_datakey_decrypt(f.inst, "k1", ct, ctlen, other, 2, &back), KP_ERR_CRYPTO,
                   "does not decrypt");
    assert_null(back);
    s_expect_error(&f, kp_datakey_decrypt(f.inst, "k1", ct, ctlen, NULL, 0, &back), KP_ERR_CRYPTO,
                   "does not decrypt");
    s_expect_error(&f, kp_datakey_decrypt(f.inst, "k2", ct, ctlen, ctx1, 2, &back), KP_ERR_CRYPTO,
                   "does not decrypt");
    ct[ctlen - 1] ^= 1;
    s_expect_error(&f, kp_datakey_decrypt(f.inst, "k1", ct, ctlen, ctx1, 2, &back), KP_ERR_CRYPTO,
                   "does not decrypt");
    assert_null(back);
    /* a data-key instance is no keystore */
    uint8_t *w = NULL;
    size_t wlen = 0;
    s_expect_error(&f, kp_key_wrap(f.inst, "k1", 0, KP_WRAP_RSA_OAEP_SHA256, plain, &w, &wlen),
                   KP_ERR_UNSUPPORTED, "does not support wrap");
    kp_secret_free(plain);
    kp_free(ct);
    s_close(&f);
}

/* DK_REENCRYPT through the library: the data key moves to another key and context inside the
 * plugin, opens there and nowhere else, and the audit event names both keys. */
static void test_datakey_reencrypt(void **state)
{
    (void)state;
    s_fixture f;
    s_open_in(&f, "datakey", KP_TEST_DATAKEY_DIR);
    FILE *audit = tmpfile();
    assert_non_null(audit);
    kp_ctx_set_audit(f.t.ctx, audit);
    const kp_meta ctx1[] = {{"db", "sales"}}, ctx2[] = {{"db", "sales"}, {"rotated", "2"}};
    kp_secret *plain = NULL, *back = NULL;
    uint8_t *ct = NULL, *ct2 = NULL;
    size_t ctlen = 0, ct2len = 0;
    assert_int_equal(kp_datakey_generate(f.inst, "k1", 32, ctx1, 1, &plain, &ct, &ctlen), KP_OK);
    assert_int_equal(
        kp_datakey_reencrypt(f.inst, "k1", ct, ctlen, ctx1, 1, "k2", ctx2, 2, &ct2, &ct2len),
        KP_OK);
    assert_true(ct2len > 32);
    assert_int_equal(kp_datakey_decrypt(f.inst, "k2", ct2, ct2len, ctx2, 2, &back), KP_OK);
    assert_memory_equal(kp_secret_cdata(back), kp_secret_cdata(plain), 32);
    kp_secret_free(back);
    back = NULL;
    s_expect_error(&f, kp_datakey_decrypt(f.inst, "k2", ct2, ct2len, ctx1, 1, &back), KP_ERR_CRYPTO,
                   "does not decrypt");
    s_expect_error(&f, kp_datakey_decrypt(f.inst, "k1", ct2, ct2len, ctx2, 2, &back), KP_ERR_CRYPTO,
                   "does not decrypt");
    assert_null(back);
    /* the source's context and key are checked; the old ciphertext still opens where it did */
    uint8_t *none = NULL;
    size_t nlen = 0;
    s_expect_error(
        &f, kp_datakey_reencrypt(f.inst, "k1", ct, ctlen, ctx2, 2, "k2", ctx2, 2, &none, &nlen),
        KP_ERR_CRYPTO, "does not decrypt");
    s_expect_error(
        &f, kp_datakey_reencrypt(f.inst, "k2", ct, ctlen, ctx1, 1, "k2", ctx2, 2, &none, &nlen),
        KP_ERR_CRYPTO, "does not decrypt");
    ct[ctlen / 2] ^= 1;
    s_expect_error(
        &f, kp_datakey_reencrypt(f.inst, "k1", ct, ctlen, ctx1, 1, "k1", ctx2, 2, &none, &nlen),
        KP_ERR_CRYPTO, "does not decrypt");
    assert_null(none);
    /* one event per call, the destination as "to" */
    fflush(audit);
    rewind(audit);
    char line[2048];
    int events = 0, ok = 0;
    while (fgets(line, sizeof(line), audit) != NULL) {
        if (strstr(line, "\"op\":\"datakey.reencrypt\"") == NULL)
            continue;
        events++;
        if (strstr(line, "\"name\":\"k1\",\"to\":\"k2\"") != NULL &&
            strstr(line, "\"outcome\":\"ok\"") != NULL)
            ok++;
    }
    assert_int_equal(events, 4);
    assert_int_equal(ok, 1);
    kp_ctx_set_audit(f.t.ctx, NULL);
    fclose(audit);
    kp_secret_free(plain);
    kp_free(ct);
    kp_free(ct2);
    s_close(&f);
}

/* A data-key plugin of ABI 1.0-1.4 has no DK_REENCRYPT, a keystore no data keys: both are
 * KP_ERR_UNSUPPORTED, each saying which. */
static void test_datakey_reencrypt_unsupported(void **state)
{
    (void)state;
    const kp_meta ctx1[] = {{"db", "sales"}};
    s_fixture f;
    s_open_in(&f, "datakey-1-0", KP_TEST_DATAKEY_1_0_DIR);
    kp_secret *plain = NULL;
    uint8_t *ct = NULL, *ct2 = NULL;
    size_t ctlen = 0, ct2len = 0;
    assert_int_equal(kp_datakey_generate(f.inst, "k1", 32, ctx1, 1, &plain, &ct, &ctlen), KP_OK);
    s_expect_error(
        &f, kp_datakey_reencrypt(f.inst, "k1", ct, ctlen, ctx1, 1, "k2", NULL, 0, &ct2, &ct2len),
        KP_ERR_UNSUPPORTED,
        "m: plugin datakey-1-0 does not support re-encrypting data keys (DK_REENCRYPT, "
        "ABI 1.5)");
    assert_null(ct2);
    s_close(&f);
    s_open(&f, "good");
    s_expect_error(
        &f, kp_datakey_reencrypt(f.inst, "k1", ct, ctlen, ctx1, 1, "k2", NULL, 0, &ct2, &ct2len),
        KP_ERR_UNSUPPORTED, "m: plugin good does not support data keys");
    s_close(&f);
    kp_secret_free(plain);
    kp_free(ct);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newer_minor_refused),
        cmocka_unit_test(test_no_version_node_refused),
        cmocka_unit_test(test_missing_instance_info_refused),
        cmocka_unit_test(test_half_pair_refused),
        cmocka_unit_test(test_wide_caps),
        cmocka_unit_test(test_plugins_load_in_newer_minor),
        cmocka_unit_test(test_good_mock_works),
        cmocka_unit_test(test_lying_length),
        cmocka_unit_test(test_empty_unwrap),
        cmocka_unit_test(test_malformed_fingerprint),
        cmocka_unit_test(test_other_name),
        cmocka_unit_test(test_other_version),
        cmocka_unit_test(test_long_unwrap),
        cmocka_unit_test(test_datakey),
        cmocka_unit_test(test_datakey_reencrypt),
        cmocka_unit_test(test_datakey_reencrypt_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
