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
 * than KP_FILE_PKEYS_MAX (128) of them decrypted per store, so the secure heap does not fill
 * with them: 200 keys used in turn leave 128 keys' worth taken. When it is full all the same, the
 * instance gives up the keys it keeps and reads the key again. And a key that cannot be decoded for
 * want of secure memory is reported as that (KP_ERR_NOMEM), not as a malformed key (a gap, to
 * verify). */
#define S_KEYS 200

static uint8_t *s_w[S_KEYS + 1];
static size_t s_wlen[S_KEYS + 1];
static void *s_blocks[(4u << 20) / 64];
static size_t s_nb;

/* Takes every piece of the secure heap still free (as other keys of the process would). */
static void s_fill(size_t piece)
{
    while (s_nb < sizeof(s_blocks) / sizeof(s_blocks[0]) &&
           (s_blocks[s_nb] = OPENSSL_secure_malloc(piece)) != NULL)
        s_nb++;
    ERR_clear_error();
}

static kp_status s_unwrap(kp_test_fx *f, kp_instance *inst, const char *name, int i,
                          const kp_secret *dek)
{
    kp_secret *back = NULL;
    kp_status st = kp_key_unwrap(inst, name, 1, KP_WRAP_RSA_OAEP_SHA256, s_w[i], s_wlen[i], &back);
    if (st == KP_OK && !kp_secret_equal(dek, back))
        fail_msg("unwrap %s: another DEK", name);
    if (st != KP_OK)
        assert_null(back);
    kp_secret_free(back);
    (void)f;
    return st;
}

static void test_many_keys(void **state)
{
    (void)state;
    kp_test_fx f = {0};
    kp_test_fx_init(&f, NULL, 0);
    kp_test_fx_load_two_region(&f);
    kp_instance *a = kp_test_fx_open(&f, "a"), *b = kp_test_fx_open(&f, "b");
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
    for (int i = 0; i <= S_KEYS; i++) {
        char name[16];
        kp_instance *inst = i < S_KEYS ? a : b; /* the last, "solo", in b */
        if (i < S_KEYS)
            snprintf(name, sizeof(name), "m%03d", i);
        else
            snprintf(name, sizeof(name), "solo");
        kp_key_spec spec = {.struct_size = sizeof(spec), .name = name, .type = KP_KEY_RSA};
        kp_key_info info = {.struct_size = sizeof(info)};
        assert_int_equal(kp_key_import(inst, &spec, p8, &info), KP_OK);
        assert_int_equal(
            kp_key_wrap(inst, name, 1, KP_WRAP_RSA_OAEP_SHA256, dek, &s_w[i], &s_wlen[i]), KP_OK);
    }

    /* What one key takes of the secure heap, and what 200 used in turn take: 128 keys' worth. */
    size_t used0 = CRYPTO_secure_used();
    assert_int_equal(s_unwrap(&f, a, "m000", 0, dek), KP_OK);
    size_t per = CRYPTO_secure_used() - used0;
    assert_true(per >= 512);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < S_KEYS; i++) {
            char name[16];
            snprintf(name, sizeof(name), "m%03d", i);
            if (s_unwrap(&f, a, name, i, dek) != KP_OK)
                fail_msg("unwrap %s (round %d): %s", name, round, kp_ctx_last_error(f.ctx));
        }
    size_t kept = (CRYPTO_secure_used() - used0) / per;
    if (kept != 128)
        fail_msg("%zu keys' worth of the secure heap kept (%zu bytes per key)", kept, per);

    /* The heap full: m000 (given up for the 128 used since) is read again once a's keys go. */
    s_fill(64);
    if (s_unwrap(&f, a, "m000", 0, dek) != KP_OK)
        fail_msg("unwrap m000 on a full heap: %s", kp_ctx_last_error(f.ctx));
    /* Full again, and b keeps no key to give up: its key cannot be decoded, and it says why. */
    s_fill(64);
    assert_int_equal(s_unwrap(&f, b, "solo", S_KEYS, dek), KP_ERR_NOMEM);
    if (strstr(kp_ctx_last_error(f.ctx), "secure heap is full") == NULL &&
        strstr(kp_ctx_last_error(f.ctx), "out of memory") == NULL)
        fail_msg("got '%s'", kp_ctx_last_error(f.ctx));
    /* a still keeps m000, and unwraps with it without decoding. */
    assert_int_equal(s_unwrap(&f, a, "m000", 0, dek), KP_OK);
    while (s_nb > 0)
        OPENSSL_secure_free(s_blocks[--s_nb]);
    assert_int_equal(s_unwrap(&f, b, "solo", S_KEYS, dek), KP_OK);
    for (int i = 0; i <= S_KEYS; i++)
        kp_free(s_w[i]);
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
