/*
 * kpk_rsa_consistent: the arithmetic an RSA private key must satisfy, checked with OpenSSL's
 * bignums (RFC 8017, section 3.2: n = p*q, e*d = 1 mod lambda(n), dP = d mod (p-1),
 * dQ = d mod (q-1), qInv*q = 1 mod p, 0 < qInv < p), e odd and above 1, and one private
 * operation on a random value done the CRT way. No primality test: the round trip is what
 * catches a composite factor, for which e*d = 1 mod (p-1) does not make decryption work.
 */
#include <stdbool.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <keyplane/kit/codec.h>

enum { S_N, S_E, S_D, S_P, S_Q, S_DP, S_DQ, S_QI, S_COUNT };

/* m^(e*dP) = m mod p and m^(e*dQ) = m mod q for a random m: one RSA decryption's work. */
static bool s_round_trip(BIGNUM *const *v, BN_CTX *bc)
{
    BIGNUM *m = BN_CTX_get(bc), *c = BN_CTX_get(bc), *r = BN_CTX_get(bc), *want = BN_CTX_get(bc);
    const BIGNUM *f[2] = {v[S_P], v[S_Q]}, *x[2] = {v[S_DP], v[S_DQ]};
    if (want == NULL || !BN_rand_range(m, v[S_N]) || !BN_mod_exp(c, m, v[S_E], v[S_N], bc))
        return false;
    for (int i = 0; i < 2; i++)
        if (!BN_nnmod(r, c, f[i], bc) || !BN_mod_exp_mont_consttime(r, r, x[i], f[i], bc, NULL) ||
            !BN_nnmod(want, m, f[i], bc) || BN_cmp(r, want) != 0)
            return false;
    return true;
}

static bool s_check(BIGNUM *const *v, BN_CTX *bc)
{
    BIGNUM *t = BN_CTX_get(bc), *p1 = BN_CTX_get(bc), *q1 = BN_CTX_get(bc);
    if (t == NULL || BN_copy(p1, v[S_P]) == NULL || !BN_sub_word(p1, 1) ||
        BN_copy(q1, v[S_Q]) == NULL || !BN_sub_word(q1, 1) || BN_is_zero(p1) || BN_is_zero(q1))
        return false;
    /* n = p*q */
    if (!BN_mul(t, v[S_P], v[S_Q], bc) || BN_cmp(t, v[S_N]) != 0)
        return false;
    /* e*d = 1 mod (p-1) and mod (q-1): together, mod lcm(p-1, q-1) */
    if (!BN_mod_mul(t, v[S_E], v[S_D], p1, bc) || !BN_is_one(t) ||
        !BN_mod_mul(t, v[S_E], v[S_D], q1, bc) || !BN_is_one(t))
        return false;
    /* the CRT values */
    if (!BN_nnmod(t, v[S_D], p1, bc) || BN_cmp(t, v[S_DP]) != 0 || !BN_nnmod(t, v[S_D], q1, bc) ||
        BN_cmp(t, v[S_DQ]) != 0)
        return false;
    if (BN_cmp(v[S_QI], v[S_P]) >= 0 || !BN_mod_mul(t, v[S_QI], v[S_Q], v[S_P], bc) ||
        !BN_is_one(t))
        return false;
    /* e = 1 would make encryption the identity; an even e has no inverse mod an even p-1 */
    if (!BN_is_odd(v[S_E]) || BN_is_one(v[S_E]))
        return false;
    return s_round_trip(v, bc);
}

bool kpk_rsa_consistent(const void *pkey)
{
    static const char *const names[S_COUNT] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    BIGNUM *v[S_COUNT] = {NULL};
    bool ok = pkey != NULL && EVP_PKEY_is_a(pkey, "RSA");
    for (int i = 0; ok && i < S_COUNT; i++)
        ok = EVP_PKEY_get_bn_param(pkey, names[i], &v[i]) == 1 && v[i] != NULL;
    BN_CTX *bc = ok ? BN_CTX_secure_new() : NULL;
    if (bc != NULL) {
        BN_CTX_start(bc);
        ok = s_check(v, bc);
        BN_CTX_end(bc);
    }
    ok = ok && bc != NULL;
    BN_CTX_free(bc);
    for (int i = 0; i < S_COUNT; i++)
        BN_clear_free(v[i]);
    ERR_clear_error();
    return ok;
}
