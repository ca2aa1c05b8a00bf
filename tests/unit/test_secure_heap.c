/* The keyplane command's process hardening (core/cli/harden.c, linked into this test as into
 * the command): once its constructor has run, before main, the process is non-dumpable, has a
 * core limit of 0, and OpenSSL's secure heap is initialised; the RSA private key that the file
 * plugin decrypts to unwrap a DEK (and keeps cached while its instance is open) lives in that
 * heap, so that it is kept out of core files and cleared when freed. */
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "kp_test.h"

static void test_before_main(void **state)
{
    (void)state;
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    assert_int_equal(rl.rlim_cur, 0);
    assert_int_equal(rl.rlim_max, 0);
    assert_int_equal(CRYPTO_secure_malloc_initialized(), 1);
}

static void test_private_key_in_secure_heap(void **state)
{
    (void)state;
    kp_test_fx f = {0};
    kp_test_fx_init(&f, NULL, 0);
    kp_test_fx_load_two_region(&f);
    kp_instance *a = kp_test_fx_open(&f, "a");
    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = "sh", .type = KP_KEY_RSA, .bits = 2048};
    kp_key_info info = {.struct_size = sizeof(info)};
    assert_int_equal(kp_key_create(a, &spec, &info), KP_OK);
    unsigned char raw[32];
    assert_int_equal(RAND_bytes(raw, sizeof(raw)), 1);
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw)), *back = NULL;
    uint8_t *w = NULL;
    size_t wlen = 0;
    assert_int_equal(kp_key_wrap(a, "sh", 1, KP_WRAP_RSA_OAEP_SHA256, dek, &w, &wlen), KP_OK);
    /* Creating and wrapping leave no private key behind: unwrap decrypts private.p8. */
    size_t before = CRYPTO_secure_used();
    assert_int_equal(kp_key_unwrap(a, "sh", 1, KP_WRAP_RSA_OAEP_SHA256, w, wlen, &back), KP_OK);
    assert_true(kp_secret_equal(dek, back));
    /* The decrypted private key (d, p, q, ... of RSA-2048: well over 512 bytes) is held in the
     * secure heap while the instance keeps it. */
    assert_true(CRYPTO_secure_used() >= before + 512);
    kp_secret_free(back);
    kp_secret_free(dek);
    kp_free(w);
    kp_test_fx_fini(&f);
}

/* A command that goes through many keys once each (verify of thousands of chains) keeps no more
 * than KP_FILE_PKEYS_MAX of them decrypted per store, so the secure heap does not fill: 100 keys
 * unwrap with 64 KiB of it left. And a key that cannot be decoded for want of secure memory is
 * reported as that (KP_ERR_NOMEM), not as a malformed key (which verify would call a gap). */
#define S_KEYS 100
#define S_BLOCK 1024

static void test_many_keys(void **state)
{
    (void)state;
    kp_test_fx f = {0};
    kp_test_fx_init(&f, NULL, 0);
    kp_test_fx_load_two_region(&f);
    kp_instance *a = kp_test_fx_open(&f, "a");
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    assert_non_null(pkey);
    PKCS8_PRIV_KEY_INFO *inf = EVP_PKEY2PKCS8(pkey);
    unsigned char *der = NULL;
    int dlen = i2d_PKCS8_PRIV_KEY_INFO(inf, &der);
    assert_true(dlen > 0);
    kp_secret *p8 = kp_secret_new_copy(der, (size_t)dlen);
    OPENSSL_clear_free(der, (size_t)dlen);
    PKCS8_PRIV_KEY_INFO_free(inf);
    EVP_PKEY_free(pkey);
    unsigned char raw[32];
    assert_int_equal(RAND_bytes(raw, sizeof(raw)), 1);
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw));
    static uint8_t *w[S_KEYS];
    static size_t wlen[S_KEYS];
    for (int i = 0; i < S_KEYS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "m%03d", i);
        kp_key_spec spec = {.struct_size = sizeof(spec), .name = name, .type = KP_KEY_RSA};
        kp_key_info info = {.struct_size = sizeof(info)};
        assert_int_equal(kp_key_import(a, &spec, p8, &info), KP_OK);
        assert_int_equal(kp_key_wrap(a, name, 1, KP_WRAP_RSA_OAEP_SHA256, dek, &w[i], &wlen[i]),
                         KP_OK);
    }

    /* The secure heap filled but for 64 KiB: room for about 70 RSA-2048 keys. */
    static void *blocks[(1u << 20) / 64];
    size_t nb = 0;
    while (nb < sizeof(blocks) / sizeof(blocks[0]) &&
           (blocks[nb] = OPENSSL_secure_malloc(S_BLOCK)) != NULL)
        nb++;
    ERR_clear_error();
    assert_true(nb > 64);
    for (size_t i = 0; i < 64; i++)
        OPENSSL_secure_free(blocks[--nb]);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < S_KEYS; i++) {
            char name[16];
            kp_secret *back = NULL;
            snprintf(name, sizeof(name), "m%03d", i);
            kp_status st = kp_key_unwrap(a, name, 1, KP_WRAP_RSA_OAEP_SHA256, w[i], wlen[i], &back);
            if (st != KP_OK)
                fail_msg("unwrap %s (round %d): %s", name, round, kp_ctx_last_error(f.ctx));
            assert_true(kp_secret_equal(dek, back));
            kp_secret_free(back);
        }

    /* Now the heap is full: a key not kept cannot be decoded, and the error says why. */
    while (nb < sizeof(blocks) / sizeof(blocks[0]) &&
           (blocks[nb] = OPENSSL_secure_malloc(64)) != NULL)
        nb++;
    ERR_clear_error();
    kp_secret *back = NULL;
    assert_int_equal(kp_key_unwrap(a, "m000", 1, KP_WRAP_RSA_OAEP_SHA256, w[0], wlen[0], &back),
                     KP_ERR_NOMEM);
    assert_null(back);
    if (strstr(kp_ctx_last_error(f.ctx), "secure heap is full") == NULL &&
        strstr(kp_ctx_last_error(f.ctx), "out of memory") == NULL)
        fail_msg("got '%s'", kp_ctx_last_error(f.ctx));
    /* The last one used is still kept, and unwraps without decoding. */
    assert_int_equal(kp_key_unwrap(a, "m099", 1, KP_WRAP_RSA_OAEP_SHA256, w[99], wlen[99], &back),
                     KP_OK);
    kp_secret_free(back);
    while (nb > 0)
        OPENSSL_secure_free(blocks[--nb]);
    assert_int_equal(kp_key_unwrap(a, "m000", 1, KP_WRAP_RSA_OAEP_SHA256, w[0], wlen[0], &back),
                     KP_OK);
    kp_secret_free(back);
    for (int i = 0; i < S_KEYS; i++)
        kp_free(w[i]);
    kp_secret_free(dek);
    kp_secret_free(p8);
    kp_test_fx_fini(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_main),
        cmocka_unit_test(test_private_key_in_secure_heap),
        cmocka_unit_test(test_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
