/*
 * What the pkcs11 plugin does in software, on OpenSSL 3: public keys as SubjectPublicKeyInfo,
 * vetting of imported keys, and the RFC 5649 wrap that carries a private key into or out of
 * the token without it ever being in plaintext at the PKCS#11 interface.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "p11_internal.h"

kp_status kp_p11_random(kp_p11_inst *pi, uint8_t *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1)
        return kp_p11_ossl_err(pi, KP_ERR_CRYPTO, "random generator failed");
    return KP_OK;
}

kp_status kp_p11_spki_id(kp_p11_inst *pi, const uint8_t *spki, size_t len, char fpr[KPK_FPR_HEX],
                         uint8_t id[KP_P11_SHA256_LEN])
{
    kp_status st = kpk_fpr_spki(spki, len, fpr);

    if (st == KP_OK)
        st = kpk_hex_decode(fpr, id, KP_P11_SHA256_LEN);
    if (st != KP_OK)
        return kp_p11_err(pi, st == KP_ERR_INVALID_ARG ? KP_ERR_INTERNAL : st,
                          "cannot compute the fingerprint of a public key");
    return KP_OK;
}

kp_status kp_p11_spki_build(kp_p11_inst *pi, const uint8_t *n, size_t nlen, const uint8_t *e,
                            size_t elen, uint8_t **der, size_t *len)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn_n = BN_bin2bn(n, (int)nlen, NULL), *bn_e = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    unsigned char *out = NULL;
    kp_status st = KP_OK;
    int k;

    *der = NULL;
    *len = 0;
    if (bld == NULL || bn_n == NULL || bn_e == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
        (k = i2d_PUBKEY(pkey, &out)) <= 0) {
        st = kp_p11_ossl_err(pi, KP_ERR_CRYPTO, "cannot encode an RSA public key");
    } else {
        *der = out;
        *len = (size_t)k;
    }
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return st;
}

static kp_status s_bn_out(const EVP_PKEY *pkey, const char *param, uint8_t **out, size_t *len)
{
    BIGNUM *bn = NULL;

    KP_ENSURE(EVP_PKEY_get_bn_param(pkey, param, &bn) == 1, KP_ERR_CRYPTO);
    int k = BN_num_bytes(bn);
    kp_status st = (*out = malloc(k > 0 ? (size_t)k : 1)) != NULL ? KP_OK : KP_ERR_NOMEM;
    if (st == KP_OK)
        *len = (size_t)BN_bn2bin(bn, *out);
    BN_free(bn);
    return st;
}

/* Modulus and public exponent of an RSA key. */
static kp_status s_rsa_parts(kp_p11_inst *pi, const EVP_PKEY *pkey, uint8_t **n, size_t *nlen,
                             uint8_t **e, size_t *elen)
{
    kp_status st = KP_OK;

    *n = *e = NULL;
    st = s_bn_out(pkey, OSSL_PKEY_PARAM_RSA_N, n, nlen);
    if (st == KP_OK)
        st = s_bn_out(pkey, OSSL_PKEY_PARAM_RSA_E, e, elen);
    if (st != KP_OK) {
        free(*n);
        *n = NULL;
        st = st == KP_ERR_NOMEM ? kp_p11_err(pi, st, "out of memory")
                                : kp_p11_ossl_err(pi, st, "cannot read the RSA public key");
    }
    return st;
}

kp_status kp_p11_spki_parse(kp_p11_inst *pi, const uint8_t *der, size_t len, uint8_t **n,
                            size_t *nlen, uint8_t **e, size_t *elen)
{
    const unsigned char *p = der;
    EVP_PKEY *pkey = der != NULL && len > 0 ? d2i_PUBKEY(NULL, &p, (long)len) : NULL;
    kp_status st = KP_OK;

    *n = *e = NULL;
    if (pkey == NULL || p != der + len) {
        ERR_clear_error();
        st = kp_p11_err(pi, KP_ERR_INVALID_ARG, "wrapping key is not a SubjectPublicKeyInfo DER");
    } else if (!EVP_PKEY_is_a(pkey, "RSA")) {
        st = kp_p11_err(pi, KP_ERR_INVALID_ARG, "wrapping key is not an RSA public key");
    } else if (EVP_PKEY_get_bits(pkey) < 2048) {
        st = kp_p11_err(pi, KP_ERR_INVALID_ARG, "wrapping key is RSA-%d; at least 2048 bits needed",
                        EVP_PKEY_get_bits(pkey));
    }
    if (st == KP_OK)
        st = s_rsa_parts(pi, pkey, n, nlen, e, elen);
    EVP_PKEY_free(pkey);
    return st;
}

static bool s_rsa_bits_ok(int bits)
{
    return bits == 2048 || bits == 3072 || bits == 4096;
}

kp_status kp_p11_p8_check(kp_p11_inst *pi, const char *name, uint32_t bits, const uint8_t *der,
                          size_t len, uint8_t **spki, size_t *spkilen)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8inf;
    EVP_PKEY *pkey = NULL;
    unsigned char *out = NULL;
    kp_status st = KP_OK;
    int have, k;

    *spki = NULL;
    *spkilen = 0;
    p8inf = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (p8inf != NULL && p == der + len)
        pkey = EVP_PKCS82PKEY_ex(p8inf, NULL, NULL);
    PKCS8_PRIV_KEY_INFO_free(p8inf); /* cleanses */
    if (pkey == NULL)
        return kp_p11_ossl_err(pi, KP_ERR_INVALID_ARG,
                               "import of %s: not a PKCS#8 PrivateKeyInfo DER", name);
    have = EVP_PKEY_get_bits(pkey);
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        st = kp_p11_err(pi, KP_ERR_INVALID_ARG, "import of %s: not an RSA key", name);
    } else if (!s_rsa_bits_ok(have)) {
        st = kp_p11_err(pi, KP_ERR_INVALID_ARG,
                        "import of %s: RSA modulus of %d bits; use 2048, 3072 or 4096", name, have);
    } else if (bits != 0 && bits != (uint32_t)have) {
        st = kp_p11_err(pi, KP_ERR_INVALID_ARG, "import of %s: key has %d bits, spec says %u", name,
                        have, bits);
    }
    /* A key whose halves do not match would wrap DEKs nobody can unwrap; refuse it now. */
    if (st == KP_OK) {
        if (!kpk_rsa_consistent(pkey)) {
            st = kp_p11_err(pi, KP_ERR_INVALID_ARG, "import of %s: inconsistent RSA key", name);
        } else if ((k = i2d_PUBKEY(pkey, &out)) <= 0) {
            st = kp_p11_ossl_err(pi, KP_ERR_CRYPTO, "import of %s: cannot encode public key", name);
        } else {
            *spki = out;
            *spkilen = (size_t)k;
        }
    }
    EVP_PKEY_free(pkey);
    return st;
}

size_t kp_p11_kwp_len(size_t inlen)
{
    return (inlen + 7) / 8 * 8 + 8;
}

bool kp_p11_kwp_raw(const uint8_t *key, bool enc, const uint8_t *in, size_t inlen, uint8_t *out,
                    size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    bool ok;

    if (ctx == NULL)
        return false;
    /* OpenSSL refuses the wrap modes in EVP_Cipher* unless asked explicitly. */
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    ok = EVP_CipherInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, key, NULL, enc ? 1 : 0) == 1 &&
         EVP_CipherUpdate(ctx, out, &n1, in, (int)inlen) == 1 &&
         EVP_CipherFinal_ex(ctx, out + n1, &n2) == 1;
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    *outlen = ok ? (size_t)n1 + (size_t)n2 : 0;
    return ok;
}

kp_status kp_p11_kwp_wrap(kp_p11_inst *pi, const uint8_t *key, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen)
{
    if (!kp_p11_kwp_raw(key, true, in, inlen, out, outlen))
        return kp_p11_ossl_err(pi, KP_ERR_CRYPTO, "AES key wrap with padding failed");
    return KP_OK;
}

/* The length of an unwrapped key without the padding SoftHSM 2.6.1 adds: it pads the key to a
 * multiple of 8 before its RFC 5649 wrap, so the length indicator covers the zeros too. A DER
 * SEQUENCE says its own length: zeros past it (fewer than 8) are that padding, not part of the
 * key. */
static size_t s_unpadded(const unsigned char *d, size_t n)
{
    size_t der = 0;
    if (n >= 2 && d[0] == 0x30 && d[1] < 0x80)
        der = 2 + (size_t)d[1];
    else if (n >= 4 && d[0] == 0x30 && d[1] == 0x82)
        der = 4 + ((size_t)d[2] << 8 | d[3]);
    if (der == 0 || der >= n || n - der >= 8)
        return n;
    for (size_t i = der; i < n; i++)
        if (d[i] != 0)
            return n;
    return der;
}

kp_status kp_p11_kwp_unwrap(kp_p11_inst *pi, const uint8_t *key, const uint8_t *in, size_t inlen,
                            kp_secret **out)
{
    const kp_p11_up *up = pi->up;
    kp_secret *s;
    size_t n = 0;
    kp_status st = KP_OK;

    *out = NULL;
    if (inlen < 16 || inlen % 8 != 0)
        return kp_p11_err(pi, KP_ERR_CRYPTO, "wrapped key of %zu bytes is not RFC 5649", inlen);
    if ((s = up->secret_new(inlen)) == NULL)
        return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    if (!kp_p11_kwp_raw(key, false, in, inlen, up->secret_data(s), &n))
        st = kp_p11_ossl_err(pi, KP_ERR_CRYPTO, "AES key unwrap with padding failed");
    if (st == KP_OK) {
        st = up->secret_shrink(s, s_unpadded(up->secret_data(s), n));
        if (st != KP_OK)
            st = kp_p11_err(pi, st, "cannot shrink the unwrapped key");
    }
    if (st == KP_OK) {
        *out = s;
        s = NULL;
    }
    up->secret_free(s);
    return st;
}
