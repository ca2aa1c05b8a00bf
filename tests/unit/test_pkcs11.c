/* The pkcs11 plugin through libkeyplane on a SoftHSM2 token made for the test: AES key-wrap
 * KEKs, export, recovery after the token dropped every session, and two threads at once. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>

#include "kp_test.h"

#define PIN "13579"

typedef struct fx {
    char *dir, *policy_path;
    kp_ctx *ctx;
    kp_policy *pol;
    kp_instance *hsm;
} fx;

static const char *s_module(void)
{
    static const char *paths[] = {"/usr/lib/softhsm/libsofthsm2.so",
                                  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", NULL};
    for (size_t i = 0; paths[i] != NULL; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (f != NULL) {
            fclose(f);
            return paths[i];
        }
    }
    return NULL;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->dir = kp_test_tmpdir();
    char *conf_text = NULL, *cmd = NULL, *policy = NULL;
    assert_true(asprintf(&conf_text,
                         "directories.tokendir = %s\nobjectstore.backend = file\n"
                         "log.level = ERROR\n",
                         f->dir) > 0);
    char *conf = kp_test_write(f->dir, "softhsm2.conf", conf_text);
    setenv("SOFTHSM2_CONF", conf, 1);
    assert_true(asprintf(&cmd,
                         "softhsm2-util --init-token --free --label unit --so-pin 97531 "
                         "--pin %s >/dev/null",
                         PIN) > 0);
    assert_int_equal(system(cmd), 0);
    setenv("KP_TEST_HSM_PIN", PIN, 1);
    assert_non_null(s_module());
    assert_true(asprintf(&policy,
                         "version: 1\nproviders:\n  hsm: {plugin: pkcs11, module: %s, token: unit,"
                         " pin: env:KP_TEST_HSM_PIN}\n",
                         s_module()) > 0);
    f->policy_path = kp_test_write(f->dir, "policy.yaml", policy);
    f->ctx = kp_test_ctx(NULL);
    if (kp_policy_load(f->ctx, f->policy_path, &f->pol, NULL) != KP_OK)
        fail_msg("%s", kp_ctx_last_error(f->ctx));
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "hsm", &f->hsm), KP_OK);
    free(conf_text);
    free(conf);
    free(cmd);
    free(policy);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    kp_instance_close(f->hsm);
    kp_policy_free(f->pol);
    kp_ctx_free(f->ctx);
    kp_test_rmtree(f->dir);
    free(f->dir);
    free(f->policy_path);
    free(f);
    return 0;
}

static kp_key_info s_create(kp_instance *inst, const char *name, uint32_t type, uint32_t bits,
                            uint32_t flags)
{
    kp_key_spec spec = {sizeof(spec), name, type, bits, flags, 0};
    kp_key_info info;
    kp_status st = kp_key_create(inst, &spec, &info);
    if (st != KP_OK)
        fail_msg("create %s failed with %s", name, kp_status_name(st));
    return info;
}

static void s_roundtrip(kp_instance *inst, const char *name, uint32_t alg, size_t deklen,
                        size_t want_len)
{
    unsigned char raw[64];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 7 + 1);
    kp_secret *dek = kp_secret_new_copy(raw, deklen);
    uint8_t *w = NULL;
    size_t wlen = 0;
    assert_int_equal(kp_key_wrap(inst, name, 0, alg, dek, &w, &wlen), KP_OK);
    if (want_len != 0)
        assert_int_equal(wlen, want_len);
    kp_secret *back = NULL;
    assert_int_equal(kp_key_unwrap(inst, name, 0, alg, w, wlen, &back), KP_OK);
    assert_true(kp_secret_equal(dek, back));
    kp_secret_free(back);
    w[wlen - 1] ^= 1; /* the integrity check of key wrap catches any change */
    assert_int_equal(kp_key_unwrap(inst, name, 0, alg, w, wlen, &back), KP_ERR_CRYPTO);
    assert_null(back);
    free(w);
    kp_secret_free(dek);
}

static void test_aes_kek(void **state)
{
    fx *f = *state;
    kp_key_info k = s_create(f->hsm, "kek", KP_KEY_AES, 256, 0);
    assert_int_equal(k.type, KP_KEY_AES);
    assert_int_equal(k.bits, 256);
    s_roundtrip(f->hsm, "kek", KP_WRAP_AES_KW, 32, 40); /* RFC 3394: n + 8 */
    /* RFC 5649: padded to 8, + 8. A DEK whose length is a multiple of 8: SoftHSM 2.6.1 keeps
     * the padding on unwrap, so the plugin refuses other lengths there (KP_ERR_UNSUPPORTED). */
    s_roundtrip(f->hsm, "kek", KP_WRAP_AES_KWP, 24, 32);
    uint8_t *spki = NULL;
    size_t len = 0;
    assert_int_not_equal(kp_key_get_public(f->hsm, "kek", 0, &spki, &len), KP_OK);

    /* The key is deleted behind the plugin's back and made again under the same version: the
     * cached handle is stale, and the plugin must look the key up again, not fail for good. */
    char *cmd = NULL;
    assert_true(asprintf(&cmd,
                         "pkcs11-tool --module %s --token-label unit --login --pin %s "
                         "--delete-object --type secrkey --label kp:kek/v1 >/dev/null 2>&1",
                         s_module(), PIN) > 0);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    kp_key_spec spec = {sizeof(spec), "kek", KP_KEY_AES, 256, 0, 1};
    kp_key_info again;
    assert_int_equal(kp_key_create(f->hsm, &spec, &again), KP_OK);
    s_roundtrip(f->hsm, "kek", KP_WRAP_AES_KW, 32, 40);
}

static void test_rsa_and_export(void **state)
{
    fx *f = *state;
    kp_key_info k = s_create(f->hsm, "prot", KP_KEY_RSA, 2048, KP_KEY_EXPORTABLE);
    s_roundtrip(f->hsm, "prot", KP_WRAP_RSA_OAEP_SHA1, 32, 256);
    kp_secret *p8 = NULL;
    assert_int_equal(kp_key_export(f->hsm, "prot", 1, &p8), KP_OK);
    const unsigned char *p = kp_secret_cdata(p8);
    PKCS8_PRIV_KEY_INFO *info = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)kp_secret_len(p8));
    assert_non_null(info);
    EVP_PKEY *pkey = EVP_PKCS82PKEY(info);
    unsigned char *spki = NULL;
    int slen = i2d_PUBKEY(pkey, &spki);
    char fpr[KP_FPR_HEX];
    assert_int_equal(kp_fingerprint_spki(spki, (size_t)slen, fpr), KP_OK);
    assert_string_equal(fpr, k.fingerprint);
    OPENSSL_free(spki);
    EVP_PKEY_free(pkey);
    PKCS8_PRIV_KEY_INFO_free(info);
    kp_secret_free(p8);
    /* Importing the export back gives the same fingerprint under a new name. */
    assert_int_equal(kp_key_export(f->hsm, "prot", 1, &p8), KP_OK);
    kp_key_spec spec = {sizeof(spec), "again", KP_KEY_RSA, 0, 0, 0};
    kp_key_info again;
    kp_status st = kp_key_import(f->hsm, &spec, p8, &again);
    if (st != KP_OK)
        fail_msg("import: %s", kp_ctx_last_error(f->ctx));
    assert_string_equal(again.fingerprint, k.fingerprint);
    kp_secret_free(p8);
    assert_int_equal(kp_key_export(f->hsm, "again", 1, &p8), KP_ERR_DENIED);
}

/* Closes every session of the token behind the plugin's back, as a token reset would. The
 * module is already loaded and initialised in this process, so dlopen returns the same one. */
static void s_close_all_sessions(void)
{
    void *dl = dlopen(s_module(), RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(dl);
    CK_C_GetFunctionList get = NULL;
    void *sym = dlsym(dl, "C_GetFunctionList");
    memcpy(&get, &sym, sizeof(get));
    CK_FUNCTION_LIST_PTR fl = NULL;
    assert_int_equal(get(&fl), CKR_OK);
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    assert_int_equal(fl->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    for (CK_ULONG i = 0; i < n; i++)
        fl->C_CloseAllSessions(slots[i]);
    dlclose(dl);
}

static void test_recovers_from_lost_sessions(void **state)
{
    fx *f = *state;
    s_create(f->hsm, "rec", KP_KEY_RSA, 2048, 0);
    s_roundtrip(f->hsm, "rec", KP_WRAP_RSA_OAEP_SHA1, 16, 256);
    s_close_all_sessions(); /* also logs the user out */
    s_roundtrip(f->hsm, "rec", KP_WRAP_RSA_OAEP_SHA1, 16, 256);
    kp_key_info info;
    assert_int_equal(kp_key_info_get(f->hsm, "rec", 1, &info), KP_OK);
}

typedef struct {
    kp_instance *inst;
    int ok;
} s_worker;

static void *s_work(void *arg)
{
    s_worker *w = arg;
    unsigned char raw[32] = {9, 8, 7};
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw));
    for (int i = 0; i < 25; i++) {
        uint8_t *wr = NULL;
        size_t wlen = 0;
        kp_secret *back = NULL;
        if (kp_key_wrap(w->inst, "mt", 1, KP_WRAP_RSA_OAEP_SHA1, dek, &wr, &wlen) == KP_OK &&
            kp_key_unwrap(w->inst, "mt", 1, KP_WRAP_RSA_OAEP_SHA1, wr, wlen, &back) == KP_OK &&
            kp_secret_equal(dek, back))
            w->ok++;
        kp_secret_free(back);
        free(wr);
    }
    kp_secret_free(dek);
    return NULL;
}

static void test_two_threads(void **state)
{
    fx *f = *state;
    s_create(f->hsm, "mt", KP_KEY_RSA, 2048, 0);
    s_worker w[2] = {{f->hsm, 0}, {f->hsm, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, s_work, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(w[0].ok, 25);
    assert_int_equal(w[1].ok, 25);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_aes_kek, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rsa_and_export, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovers_from_lost_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
