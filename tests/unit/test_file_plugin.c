/* The file plugin through libkeyplane: keystore, secret store, at-rest protection. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "kp_test.h"

typedef struct fx {
    char *dir;
    char *policy_path;
    kp_ctx *ctx;
    kp_policy *pol;
    kp_instance *a, *b;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->dir = kp_test_tmpdir();
    f->policy_path = kp_test_two_region_policy(f->dir);
    f->ctx = kp_test_ctx(NULL);
    if (kp_policy_load(f->ctx, f->policy_path, &f->pol, NULL) != KP_OK)
        fail_msg("%s", kp_ctx_last_error(f->ctx));
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "a", &f->a), KP_OK);
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "b", &f->b), KP_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    kp_instance_close(f->a);
    kp_instance_close(f->b);
    kp_policy_free(f->pol);
    kp_ctx_free(f->ctx);
    kp_test_rmtree(f->dir);
    free(f->dir);
    free(f->policy_path);
    free(f);
    return 0;
}

static kp_key_info s_create(kp_instance *inst, const char *name, uint32_t flags, uint32_t version)
{
    kp_key_spec spec = {sizeof(spec), name, KP_KEY_RSA, 2048, flags, version};
    kp_key_info info;
    kp_status st = kp_key_create(inst, &spec, &info);
    assert_int_equal(st, KP_OK);
    return info;
}

static void test_create_versions_and_public(void **state)
{
    fx *f = *state;
    kp_key_info v1 = s_create(f->a, "k", 0, 0);
    kp_key_info v2 = s_create(f->a, "k", 0, 0);
    assert_int_equal(v1.version, 1);
    assert_int_equal(v2.version, 2);
    assert_string_not_equal(v1.fingerprint, v2.fingerprint);
    kp_key_spec dup = {sizeof(dup), "k", KP_KEY_RSA, 2048, 0, 2};
    kp_key_info info;
    assert_int_equal(kp_key_create(f->a, &dup, &info), KP_ERR_EXISTS);
    kp_key_info v7 = s_create(f->a, "k", 0, 7); /* replicas keep the origin's numbering */
    assert_int_equal(v7.version, 7);

    uint8_t *spki = NULL;
    size_t len = 0;
    assert_int_equal(kp_key_get_public(f->a, "k", 2, &spki, &len), KP_OK);
    char fpr[KP_FPR_HEX];
    assert_int_equal(kp_fingerprint_spki(spki, len, fpr), KP_OK);
    assert_string_equal(fpr, v2.fingerprint);
    const unsigned char *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)len);
    assert_non_null(pub);
    assert_int_equal(EVP_PKEY_get_bits(pub), 2048);
    EVP_PKEY_free(pub);
    free(spki);

    assert_int_equal(kp_key_info_get(f->a, "k", 0, &info), KP_OK);
    assert_int_equal(info.version, 7); /* latest */
    assert_int_equal(kp_key_info_get(f->a, "k", 3, &info), KP_ERR_NOT_FOUND);
    assert_int_equal(kp_key_info_get(f->b, "k", 0, &info), KP_ERR_NOT_FOUND); /* other region */
    assert_int_equal(kp_key_get_public(f->a, "k", 4, &spki, &len), KP_ERR_NOT_FOUND);

    kp_key_spec bad = {sizeof(bad), "../escape", KP_KEY_RSA, 2048, 0, 0};
    assert_int_equal(kp_key_create(f->a, &bad, &info), KP_ERR_INVALID_ARG);
    bad.name = "ok";
    bad.bits = 1024;
    assert_int_equal(kp_key_create(f->a, &bad, &info), KP_ERR_INVALID_ARG);
}

static void test_wrap_unwrap(void **state)
{
    fx *f = *state;
    s_create(f->a, "w", 0, 0);
    unsigned char raw[32];
    RAND_bytes(raw, sizeof(raw));
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw));
    uint32_t algs[] = {KP_WRAP_RSA_OAEP_SHA1, KP_WRAP_RSA_OAEP_SHA256};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *w = NULL;
        size_t wlen = 0;
        assert_int_equal(kp_key_wrap(f->a, "w", 1, algs[i], dek, &w, &wlen), KP_OK);
        assert_int_equal(wlen, 256);
        kp_secret *back = NULL;
        assert_int_equal(kp_key_unwrap(f->a, "w", 1, algs[i], w, wlen, &back), KP_OK);
        assert_true(kp_secret_equal(dek, back));
        kp_secret_free(back);
        /* The other OAEP hash, or a flipped byte, does not unwrap. */
        assert_int_equal(kp_key_unwrap(f->a, "w", 1, algs[1 - i], w, wlen, &back), KP_ERR_CRYPTO);
        w[10] ^= 1;
        assert_int_equal(kp_key_unwrap(f->a, "w", 1, algs[i], w, wlen, &back), KP_ERR_CRYPTO);
        assert_null(back);
        free(w);
    }
    uint8_t *w = NULL;
    size_t wlen = 0;
    assert_int_equal(kp_key_wrap(f->a, "w", 1, KP_WRAP_RSA_PKCS1, dek, &w, &wlen),
                     KP_ERR_UNSUPPORTED);
    assert_int_equal(kp_key_wrap(f->a, "w", 9, KP_WRAP_RSA_OAEP_SHA1, dek, &w, &wlen),
                     KP_ERR_NOT_FOUND);
    kp_secret *huge = kp_secret_new(300); /* more than OAEP fits in RSA-2048 */
    assert_int_equal(kp_key_wrap(f->a, "w", 1, KP_WRAP_RSA_OAEP_SHA1, huge, &w, &wlen),
                     KP_ERR_INVALID_ARG);
    kp_secret_free(huge);
    kp_secret_free(dek);
}

static kp_secret *s_pkcs8(int bits, EVP_PKEY **keep)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    assert_non_null(pkey);
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
    unsigned char *der = NULL;
    int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    kp_secret *s = kp_secret_new_copy(der, (size_t)len);
    OPENSSL_clear_free(der, (size_t)len);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (keep != NULL)
        *keep = pkey;
    else
        EVP_PKEY_free(pkey);
    return s;
}

static void test_import_export(void **state)
{
    fx *f = *state;
    EVP_PKEY *pkey = NULL;
    kp_secret *p8 = s_pkcs8(3072, &pkey);
    kp_key_spec spec = {sizeof(spec), "imp", KP_KEY_RSA, 0, KP_KEY_EXPORTABLE, 0};
    kp_key_info ia, ib;
    assert_int_equal(kp_key_import(f->a, &spec, p8, &ia), KP_OK);
    assert_int_equal(ia.bits, 3072);
    assert_int_equal(kp_key_import(f->b, &spec, p8, &ib), KP_OK);
    assert_string_equal(ia.fingerprint, ib.fingerprint);
    unsigned char *spki = NULL;
    int slen = i2d_PUBKEY(pkey, &spki);
    char fpr[KP_FPR_HEX];
    assert_int_equal(kp_fingerprint_spki(spki, (size_t)slen, fpr), KP_OK);
    assert_string_equal(fpr, ia.fingerprint);
    OPENSSL_free(spki);

    kp_secret *out = NULL;
    assert_int_equal(kp_key_export(f->a, "imp", 1, &out), KP_OK);
    const unsigned char *p = kp_secret_cdata(out);
    PKCS8_PRIV_KEY_INFO *back = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)kp_secret_len(out));
    assert_non_null(back);
    EVP_PKEY *bk = EVP_PKCS82PKEY(back);
    assert_int_equal(EVP_PKEY_eq(bk, pkey), 1);
    EVP_PKEY_free(bk);
    PKCS8_PRIV_KEY_INFO_free(back);
    kp_secret_free(out);

    /* Mismatched bits, garbage, weak keys are refused. */
    spec.bits = 2048;
    assert_int_equal(kp_key_import(f->a, &spec, p8, &ia), KP_ERR_INVALID_ARG);
    kp_secret *junk = kp_secret_new_copy("not a key at all", 16);
    spec.bits = 0;
    assert_int_equal(kp_key_import(f->a, &spec, junk, &ia), KP_ERR_INVALID_ARG);
    kp_secret_free(junk);
    kp_secret *weak = s_pkcs8(1024, NULL);
    assert_int_equal(kp_key_import(f->a, &spec, weak, &ia), KP_ERR_INVALID_ARG);
    kp_secret_free(weak);

    /* A key created without the exportable flag never leaves. */
    s_create(f->a, "locked", 0, 0);
    assert_int_equal(kp_key_export(f->a, "locked", 1, &out), KP_ERR_DENIED);
    assert_null(out);
    assert_non_null(strstr(kp_ctx_last_error(f->ctx), "not exportable"));
    kp_secret_free(p8);
    EVP_PKEY_free(pkey);
}

typedef struct {
    int calls;
    uint32_t last_version;
    char owner[64];
} s_meta_seen;

static kp_status s_meta_visit(void *arg, const kp_secret_info *info, const kp_meta *meta,
                              size_t nmeta)
{
    s_meta_seen *m = arg;
    m->calls++;
    m->last_version = info->version;
    for (size_t i = 0; i < nmeta; i++)
        if (strcmp(meta[i].key, "owner") == 0)
            snprintf(m->owner, sizeof(m->owner), "%s", meta[i].value);
    return KP_OK;
}

static void test_secret_store(void **state)
{
    fx *f = *state;
    kp_secret *v1 = kp_secret_new_copy("pvk password one", 16);
    kp_secret *v2 = kp_secret_new_copy("pvk password two!", 17);
    kp_meta meta[] = {{"owner", "dba"}, {"chain", "tde"}};
    uint32_t ver = 0;
    assert_int_equal(kp_store_put(f->a, "tde-pvk", v1, meta, 2, &ver), KP_OK);
    assert_int_equal(ver, 1);
    meta[0].value = "sec";
    assert_int_equal(kp_store_put(f->a, "tde-pvk", v2, meta, 2, &ver), KP_OK);
    assert_int_equal(ver, 2);
    kp_secret *got = NULL;
    s_meta_seen seen = {0};
    assert_int_equal(kp_store_get(f->a, "tde-pvk", 0, &got, s_meta_visit, &seen), KP_OK);
    assert_true(kp_secret_equal(got, v2));
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.owner, "sec");
    kp_secret_free(got);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kp_store_get(f->a, "tde-pvk", 1, &got, s_meta_visit, &seen), KP_OK);
    assert_true(kp_secret_equal(got, v1));
    assert_string_equal(seen.owner, "dba");
    kp_secret_free(got);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kp_store_list(f->a, "tde-pvk", s_meta_visit, &seen), KP_OK);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.last_version, 2); /* ascending */
    uint32_t other_ver = 0;
    assert_int_equal(kp_store_put(f->a, "other", v1, NULL, 0, &other_ver), KP_OK);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kp_store_list(f->a, NULL, s_meta_visit, &seen), KP_OK); /* every secret */
    assert_int_equal(seen.calls, 3);
    assert_int_equal(kp_store_get(f->a, "tde-pvk", 3, &got, NULL, NULL), KP_ERR_NOT_FOUND);
    assert_int_equal(kp_store_get(f->b, "tde-pvk", 0, &got, NULL, NULL), KP_ERR_NOT_FOUND);
    kp_meta bad[] = {{"Bad Key", "x"}};
    assert_int_equal(kp_store_put(f->a, "tde-pvk", v1, bad, 1, &ver), KP_ERR_INVALID_ARG);
    kp_secret_free(v1);
    kp_secret_free(v2);
}

static int s_perm_bad;
static int s_tmp_left;

static int s_perm_visit(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (strstr(path, ".tmp") != NULL)
        s_tmp_left++;
    if (strstr(path, "policy.yaml") != NULL || ftw->level == 0)
        return 0;
    mode_t mode = sb->st_mode & 07777;
    if ((flag == FTW_D && mode != 0700) || (flag == FTW_F && mode != 0600)) {
        print_message("loose permissions %o on %s\n", mode, path);
        s_perm_bad++;
    }
    return 0;
}

static void test_at_rest(void **state)
{
    fx *f = *state;
    s_create(f->a, "rest", 0, 0);
    kp_secret *v = kp_secret_new_copy("plaintext-marker-value", 22);
    uint32_t ver;
    assert_int_equal(kp_store_put(f->a, "s", v, NULL, 0, &ver), KP_OK);
    kp_secret_free(v);
    s_perm_bad = s_tmp_left = 0;
    assert_int_equal(nftw(f->dir, s_perm_visit, 16, FTW_PHYS), 0);
    assert_int_equal(s_perm_bad, 0);
    assert_int_equal(s_tmp_left, 0);
    /* The secret value is not on disk in the clear. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "grep -r -q plaintext-marker-value %s", f->dir);
    assert_int_not_equal(system(cmd), 0);
}

static void test_wrong_passphrase(void **state)
{
    fx *f = *state;
    s_create(f->a, "pp", 0, 0);
    unsigned char raw[16] = {1, 2, 3};
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw));
    uint8_t *w = NULL;
    size_t wlen = 0;
    assert_int_equal(kp_key_wrap(f->a, "pp", 1, KP_WRAP_RSA_OAEP_SHA256, dek, &w, &wlen), KP_OK);

    setenv("KP_TEST_PASSPHRASE", "the wrong one", 1);
    kp_instance *wrong = NULL;
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "a", &wrong), KP_OK);
    kp_secret *back = NULL;
    assert_int_equal(kp_key_unwrap(wrong, "pp", 1, KP_WRAP_RSA_OAEP_SHA256, w, wlen, &back),
                     KP_ERR_AUTH);
    assert_null(strstr(kp_ctx_last_error(f->ctx), "the wrong one"));
    kp_instance_close(wrong);

    unsetenv("KP_TEST_PASSPHRASE");
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "a", &wrong), KP_ERR_AUTH);
    assert_non_null(strstr(kp_ctx_last_error(f->ctx), "KP_TEST_PASSPHRASE"));
    setenv("KP_TEST_PASSPHRASE", "correct horse battery staple", 1);
    free(w);
    kp_secret_free(dek);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_versions_and_public, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrap_unwrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_at_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_passphrase, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
