/* kpk_rsa_consistent: a generated key holds together; each of its relations broken (n, d, the
 * CRT values) is caught; a public key alone and a key of another type are refused. */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <keyplane/kit/codec.h>

#include "kp_test.h"

static const char *const s_names[] = {
    OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};
#define S_NP (sizeof(s_names) / sizeof(s_names[0]))

static EVP_PKEY *s_key;

static int setup(void **state)
{
    (void)state;
    s_key = EVP_RSA_gen(2048);
    return s_key != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(s_key);
    return 0;
}

/* s_key rebuilt from its parameters, with parameter `bump` (an index of s_names, or -1 for none)
 * plus 2, and only the first `count` parameters. */
static EVP_PKEY *s_rebuilt(int bump, size_t count)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    BIGNUM *v[S_NP] = {NULL};
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(EVP_PKEY_get_bn_param(s_key, s_names[i], &v[i]), 1);
        if ((int)i == bump)
            assert_int_equal(BN_add_word(v[i], 2), 1);
        assert_int_equal(OSSL_PARAM_BLD_push_BN(b, s_names[i], v[i]), 1);
    }
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *out = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(c), 1);
    assert_int_equal(
        EVP_PKEY_fromdata(c, &out, count > 2 ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    for (size_t i = 0; i < S_NP; i++)
        BN_clear_free(v[i]);
    return out;
}

static void test_generated_holds(void **state)
{
    (void)state;
    assert_true(kpk_rsa_consistent(s_key));
    EVP_PKEY *same = s_rebuilt(-1, S_NP);
    assert_true(kpk_rsa_consistent(same));
    EVP_PKEY_free(same);
}

static void test_each_relation_broken(void **state)
{
    (void)state;
    /* e is left alone: e+2 with d unchanged breaks e*d = 1 too, but so does d+2 */
    for (int i = 0; i < (int)S_NP; i++) {
        if (i == 1)
            continue;
        EVP_PKEY *bad = s_rebuilt(i, S_NP);
        if (kpk_rsa_consistent(bad))
            fail_msg("%s changed, yet the key is called consistent", s_names[i]);
        EVP_PKEY_free(bad);
    }
}

static void test_public_and_other_types(void **state)
{
    (void)state;
    EVP_PKEY *pub = s_rebuilt(-1, 2);
    assert_false(kpk_rsa_consistent(pub));
    EVP_PKEY_free(pub);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    assert_false(kpk_rsa_consistent(ec));
    EVP_PKEY_free(ec);
    assert_false(kpk_rsa_consistent(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_holds),
        cmocka_unit_test(test_each_relation_broken),
        cmocka_unit_test(test_public_and_other_types),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
