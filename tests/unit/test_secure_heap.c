/* The keyplane command's process hardening (core/cli/harden.c, linked into this test as into
 * the command): once its constructor has run, before main, the process is non-dumpable, has a
 * core limit of 0, and OpenSSL's secure heap is initialised; the RSA private key that the file
 * plugin decrypts to unwrap a DEK (and keeps cached while its instance is open) lives in that
 * heap, so that it is kept out of core files and cleared when freed. */
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_main),
        cmocka_unit_test(test_private_key_in_secure_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
