/* kpk_pkey_spki and kpk_p8_decode (codec_pkey.c) read what OpenSSL's decoders read, and
 * refuse what they refuse: RSA the fast way, other keys through the decoders.
 * kpk_rsa_consistent: a generated key holds together; each of its relations broken (n, d, the
 * CRT values) is caught; so are keys whose arithmetic holds but which do not work (e = 1, qInv
 * off by p, a composite factor); a public key alone and a key of another type are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

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

/* A key made of the eight values v (in s_names' order). */
static EVP_PKEY *s_from_values(BIGNUM *const *v)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    for (size_t i = 0; i < S_NP; i++)
        assert_int_equal(OSSL_PARAM_BLD_push_BN(b, s_names[i], v[i]), 1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *out = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(c), 1);
    assert_int_equal(EVP_PKEY_fromdata(c, &out, EVP_PKEY_KEYPAIR, params), 1);
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    return out;
}

/* A key on factors p and q with exponent e, every other value derived as RFC 8017 says (d the
 * inverse of e modulo lcm(p-1, q-1)), so its arithmetic holds whatever p and q are. */
static EVP_PKEY *s_from_factors(const BIGNUM *p, const BIGNUM *q, const BIGNUM *e)
{
    BN_CTX *bc = BN_CTX_new();
    BIGNUM *v[S_NP], *p1 = BN_new(), *q1 = BN_new(), *g = BN_new(), *l = BN_new();
    for (size_t i = 0; i < S_NP; i++)
        v[i] = BN_new();
    assert_true(BN_mul(v[0], p, q, bc) && BN_copy(v[1], e) && BN_copy(v[3], p) && BN_copy(v[4], q));
    assert_true(BN_sub(p1, p, BN_value_one()) && BN_sub(q1, q, BN_value_one()));
    assert_true(BN_gcd(g, p1, q1, bc) && BN_mul(l, p1, q1, bc) && BN_div(l, NULL, l, g, bc));
    assert_non_null(BN_mod_inverse(v[2], e, l, bc));
    assert_true(BN_nnmod(v[5], v[2], p1, bc) && BN_nnmod(v[6], v[2], q1, bc));
    assert_non_null(BN_mod_inverse(v[7], q, p, bc));
    EVP_PKEY *out = s_from_values(v);
    for (size_t i = 0; i < S_NP; i++)
        BN_clear_free(v[i]);
    BN_free(p1), BN_free(q1), BN_free(g), BN_free(l);
    BN_CTX_free(bc);
    return out;
}

/* A prime of bits bits with e = 65537 invertible modulo it minus one. */
static BIGNUM *s_prime(int bits)
{
    BIGNUM *p = BN_new(), *p1 = BN_new(), *g = BN_new(), *e = BN_new();
    BN_CTX *bc = BN_CTX_new();
    assert_true(BN_set_word(e, 65537));
    do {
        assert_int_equal(BN_generate_prime_ex2(p, bits, 0, NULL, NULL, NULL, bc), 1);
        assert_true(BN_sub(p1, p, BN_value_one()) && BN_gcd(g, p1, e, bc));
    } while (!BN_is_one(g));
    BN_free(p1), BN_free(g), BN_free(e);
    BN_CTX_free(bc);
    return p;
}

static void test_arithmetic_holds_yet_broken(void **state)
{
    (void)state;
    BIGNUM *p = NULL, *q = NULL, *e = BN_new();
    assert_int_equal(EVP_PKEY_get_bn_param(s_key, OSSL_PKEY_PARAM_RSA_FACTOR1, &p), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(s_key, OSSL_PKEY_PARAM_RSA_FACTOR2, &q), 1);

    /* The same factors and e = 65537 as the generated key: it holds (the helper is sound). */
    assert_true(BN_set_word(e, 65537));
    EVP_PKEY *k = s_from_factors(p, q, e);
    assert_true(kpk_rsa_consistent(k));
    EVP_PKEY_free(k);

    /* e = 1 (d = dP = dQ = 1): every relation holds, and encryption is the identity. */
    assert_true(BN_set_word(e, 1));
    k = s_from_factors(p, q, e);
    assert_false(kpk_rsa_consistent(k));
    EVP_PKEY_free(k);

    /* qInv + p: qInv * q is still 1 mod p, but qInv is no longer the reduced coefficient. */
    BIGNUM *v[S_NP] = {NULL};
    for (size_t i = 0; i < S_NP; i++)
        assert_int_equal(EVP_PKEY_get_bn_param(s_key, s_names[i], &v[i]), 1);
    assert_true(BN_add(v[7], v[7], p));
    k = s_from_values(v);
    assert_false(kpk_rsa_consistent(k));
    EVP_PKEY_free(k);
    for (size_t i = 0; i < S_NP; i++)
        BN_clear_free(v[i]);

    /* A composite first factor (two 512-bit primes): n = p*q and e*d = 1 mod (p-1) hold, but
     * decryption modulo p does not work; only the round trip sees it. */
    BIGNUM *a = s_prime(512), *b = NULL, *comp = BN_new(), *c1 = BN_new(), *g = BN_new();
    BN_CTX *bc = BN_CTX_new();
    assert_true(BN_set_word(e, 65537));
    do { /* e must be invertible modulo comp - 1 for the key to be built */
        BN_free(b);
        b = s_prime(512);
        assert_true(BN_mul(comp, a, b, bc) && BN_sub(c1, comp, BN_value_one()) &&
                    BN_gcd(g, c1, e, bc));
    } while (!BN_is_one(g));
    k = s_from_factors(comp, q, e);
    assert_false(kpk_rsa_consistent(k));
    EVP_PKEY_free(k);
    BN_free(c1), BN_free(g), BN_free(a), BN_free(b), BN_free(comp);
    BN_CTX_free(bc);
    BN_free(p), BN_free(q), BN_free(e);
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

/* The SPKI of pkey, and the PKCS#8 structure of its private half. */
static int s_spki(EVP_PKEY *pkey, unsigned char **der)
{
    *der = NULL;
    int n = i2d_PUBKEY(pkey, der);
    assert_true(n > 0);
    return n;
}

static void test_fast_readers(void **state)
{
    (void)state;
    unsigned char *der = NULL;
    int n = s_spki(s_key, &der);
    EVP_PKEY *k = kpk_pkey_spki(der, (size_t)n);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_eq(k, s_key), 1);
    assert_true(EVP_PKEY_is_a(k, "RSA"));
    EVP_PKEY_free(k);
    /* Exactly one SPKI: a byte more, a byte less, a bit changed in the algorithm: none. */
    unsigned char *longer = malloc((size_t)n + 1);
    memcpy(longer, der, (size_t)n);
    longer[n] = 0;
    assert_null(kpk_pkey_spki(longer, (size_t)n + 1));
    assert_null(kpk_pkey_spki(der, (size_t)n - 1));
    assert_null(kpk_pkey_spki(der, 0));
    longer[12] ^= 0x01; /* inside the rsaEncryption OID */
    EVP_PKEY *other = kpk_pkey_spki(longer, (size_t)n);
    assert_true(other == NULL || !EVP_PKEY_is_a(other, "RSA"));
    EVP_PKEY_free(other);
    free(longer);
    OPENSSL_free(der);

    /* Other key types go through the decoders. */
    EVP_PKEY *ec = EVP_EC_gen("P-256"), *pss = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    assert_non_null(pc);
    assert_int_equal(EVP_PKEY_keygen_init(pc), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(pc, 2048), 1);
    assert_int_equal(EVP_PKEY_generate(pc, &pss), 1);
    EVP_PKEY_CTX_free(pc);
    assert_non_null(ec);
    assert_non_null(pss);
    EVP_PKEY *const others[2] = {ec, pss};
    kpk_p8_decoder *d = kpk_p8_decoder_new();
    assert_non_null(d);
    for (int i = 0; i < 2; i++) {
        n = s_spki(others[i], &der);
        k = kpk_pkey_spki(der, (size_t)n);
        assert_non_null(k);
        assert_int_equal(EVP_PKEY_eq(k, others[i]), 1);
        EVP_PKEY_free(k);
        OPENSSL_free(der);
        PKCS8_PRIV_KEY_INFO *inf = EVP_PKEY2PKCS8(others[i]);
        k = kpk_p8_decode(d, inf);
        assert_non_null(k);
        assert_int_equal(EVP_PKEY_get_id(k), EVP_PKEY_get_id(others[i]));
        assert_int_equal(EVP_PKEY_eq(k, others[i]), 1);
        EVP_PKEY_free(k);
        PKCS8_PRIV_KEY_INFO_free(inf);
    }

    /* The RSA key pair, with and without the decoder object, and a key followed by junk
     * inside its PKCS#8: whatever EVP_PKCS82PKEY_ex makes of that. */
    PKCS8_PRIV_KEY_INFO *inf = EVP_PKEY2PKCS8(s_key);
    for (int i = 0; i < 2; i++) {
        k = kpk_p8_decode(i == 0 ? d : NULL, inf);
        assert_non_null(k);
        assert_int_equal(EVP_PKEY_eq(k, s_key), 1);
        assert_true(kpk_rsa_consistent(k));
        EVP_PKEY_free(k);
    }
    const unsigned char *body = NULL;
    int blen = 0;
    assert_int_equal(PKCS8_pkey_get0(NULL, &body, &blen, NULL, inf), 1);
    unsigned char *junk = OPENSSL_malloc((size_t)blen + 3);
    memcpy(junk, body, (size_t)blen);
    memset(junk + blen, 0, 3);
    PKCS8_PRIV_KEY_INFO *bad = PKCS8_PRIV_KEY_INFO_new();
    assert_int_equal(
        PKCS8_pkey_set0(bad, OBJ_nid2obj(NID_rsaEncryption), 0, V_ASN1_NULL, NULL, junk, blen + 3),
        1);
    EVP_PKEY *want = EVP_PKCS82PKEY_ex(bad, NULL, NULL);
    k = kpk_p8_decode(d, bad);
    assert_int_equal(k != NULL, want != NULL);
    if (k != NULL)
        assert_int_equal(EVP_PKEY_eq(k, want), 1);
    EVP_PKEY_free(k);
    EVP_PKEY_free(want);
    /* And the decoder object still reads the good key after that. */
    k = kpk_p8_decode(d, inf);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_eq(k, s_key), 1);
    EVP_PKEY_free(k);
    assert_null(kpk_p8_decode(d, NULL));
    PKCS8_PRIV_KEY_INFO_free(bad);
    PKCS8_PRIV_KEY_INFO_free(inf);
    kpk_p8_decoder_free(d);
    kpk_p8_decoder_free(NULL);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(pss);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_holds),
        cmocka_unit_test(test_each_relation_broken),
        cmocka_unit_test(test_arithmetic_holds_yet_broken),
        cmocka_unit_test(test_public_and_other_types),
        cmocka_unit_test(test_fast_readers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
