/*
 * RSA keys as JSON Web Keys (RFC 7518 6.3): the public part the vault answers with becomes a
 * SubjectPublicKeyInfo (for fingerprints and local checks), and a PKCS#8 private key becomes the
 * JWK of a plain import. Pure conversions (akv_codec.h): no instance, no call into the core, so
 * the fuzz target links this file as it is. OpenSSL does the arithmetic and encodings; key
 * material is wiped wherever this file holds it. A failure leaves OpenSSL's error queue empty
 * (kpk_ossl_reason): the status is the whole answer (akv_codec.h), and a stale queued error must
 * not turn up in the text of the thread's next OpenSSL failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>

#include "akv_codec.h"

#define S_MAX_MODULUS 1024 /* bytes: RSA-8192 */

/* st, with OpenSSL's error queue emptied when st is a failure (its reason is not part of a
 * codec's answer). */
static kp_status s_done(kp_status st)
{
    char why[KPK_OSSL_REASON_MAX];
    if (st != KP_OK)
        kpk_ossl_reason(why, sizeof(why));
    return st;
}

static BIGNUM *s_bn(const char *b64, size_t len)
{
    uint8_t buf[S_MAX_MODULUS + 8];
    size_t n = sizeof(buf);
    if (len == 0 || kpk_b64_decoded_max(len) > sizeof(buf))
        return NULL;
    if (kpk_b64_decode(b64, len, buf, &n) != KP_OK || n == 0)
        return NULL;
    return BN_bin2bn(buf, (int)n, NULL);
}

/* n and e within what a vault key can be: 1024 to 8192 bits, an odd exponent of 64 bits at most. */
static bool s_ne_sane(const BIGNUM *n, const BIGNUM *e)
{
    return BN_num_bits(n) >= 1024 && BN_num_bits(n) <= 8 * S_MAX_MODULUS && BN_is_odd(e) &&
           BN_num_bits(e) <= 64;
}

kp_status kp_akv_spki_from_ne(const char *n, size_t nlen, const char *e, size_t elen,
                              uint8_t **spki, size_t *spki_len, uint32_t *bits,
                              char fpr[KPK_FPR_HEX])
{
    kp_status st = KP_ERR_BACKEND;
    BIGNUM *bn = s_bn(n, nlen), *be = s_bn(e, elen);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    unsigned char *der = NULL;
    *spki = NULL;
    if (bn == NULL || be == NULL || bld == NULL || pctx == NULL || !s_ne_sane(bn, be))
        goto out;
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1)
        goto out;
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1)
        goto out;
    if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    if (EVP_PKEY_fromdata_init(pctx) <= 0)
        goto out;
    if (EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    int len = i2d_PUBKEY(pkey, &der);
    if (len <= 0)
        goto out;
    if (kpk_fpr_spki(der, (size_t)len, fpr) != KP_OK)
        goto out;
    if ((*spki = malloc((size_t)len)) == NULL) {
        st = KP_ERR_NOMEM;
        goto out;
    }
    memcpy(*spki, der, (size_t)len);
    *spki_len = (size_t)len;
    *bits = (uint32_t)BN_num_bits(bn);
    st = KP_OK;
out:
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return s_done(st);
}

/* Sets jwk[name] to the unpadded base64url of a BIGNUM parameter of pkey. */
static bool s_member(json_t *jwk, const EVP_PKEY *pkey, const char *param, const char *name)
{
    BIGNUM *bn = NULL;
    uint8_t bin[S_MAX_MODULUS];
    char text[S_MAX_MODULUS * 4 / 3 + 8];
    bool ok = false;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
        goto out;
    if (BN_num_bytes(bn) > (int)sizeof(bin))
        goto out;
    int n = BN_bn2bin(bn, bin);
    kpk_b64url_encode(bin, (size_t)n, text);
    ok = json_object_set_new(jwk, name, json_string(text)) == 0;
out:
    BN_clear_free(bn);
    OPENSSL_cleanse(bin, sizeof(bin));
    OPENSSL_cleanse(text, sizeof(text));
    return ok;
}

kp_status kp_akv_jwk_from_pkcs8(const uint8_t *der, size_t len, json_t *jwk, uint32_t *bits,
                                char fpr[KPK_FPR_HEX])
{
    static const char *const map[][2] = {
        {OSSL_PKEY_PARAM_RSA_N, "n"},          {OSSL_PKEY_PARAM_RSA_E, "e"},
        {OSSL_PKEY_PARAM_RSA_D, "d"},          {OSSL_PKEY_PARAM_RSA_FACTOR1, "p"},
        {OSSL_PKEY_PARAM_RSA_FACTOR2, "q"},    {OSSL_PKEY_PARAM_RSA_EXPONENT1, "dp"},
        {OSSL_PKEY_PARAM_RSA_EXPONENT2, "dq"}, {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, "qi"},
    };
    const unsigned char *p = der;
    EVP_PKEY *pkey = d2i_AutoPrivateKey(NULL, &p, (long)len);
    kp_status st = KP_ERR_INVALID_ARG;
    if (pkey == NULL || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
        goto out;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!s_member(jwk, pkey, map[i][0], map[i][1]))
            goto out;
    if (kpk_fpr_pkey(pkey, fpr) != KP_OK)
        goto out;
    *bits = (uint32_t)EVP_PKEY_get_bits(pkey);
    st = KP_OK;
out:
    EVP_PKEY_free(pkey);
    return s_done(st);
}

void kp_akv_json_wipe(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_string(j)) {
        OPENSSL_cleanse((char *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        json_object_foreach(j, k, v) kp_akv_json_wipe(v);
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) kp_akv_json_wipe(v);
    }
}
