/*
 * RSA keys out of their DER without the cost of OpenSSL 3.0's decoder framework, which spends
 * about 0.2 ms per SubjectPublicKeyInfo and 0.8 ms per PKCS#8 on this class of machine building
 * a chain of candidate decoders for every call, more than the RSA operation that follows; verify
 * and a cold unwrap read each key once, so that was most of their time.
 *
 * kpk_pkey_spki takes a plain rsaEncryption SubjectPublicKeyInfo (RFC 3279 2.3.1, RFC 8017
 * A.1.1) apart with OpenSSL's own ASN.1 parser and hands n and e to the RSA provider
 * (EVP_PKEY_fromdata). kpk_p8_decode keeps one decoder context narrowed to an
 * RSAPrivateKey (RFC 8017 A.1.2) and reuses it: a private key cannot go through fromdata,
 * whose copies of d, p and q OpenSSL 3.0 makes outside the secure heap, while the RSA decoder
 * puts them there (multi-prime keys too). Anything else (RSA-PSS keys, other algorithms, an
 * SPKI with parameters) goes to the general decoder as before.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

/* The DER of AlgorithmIdentifier { rsaEncryption, NULL }. */
static const unsigned char s_rsa_alg[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                          0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};

/* A SEQUENCE of two INTEGERs parsed from exactly der/len, neither negative, or NULL. */
static ASN1_SEQUENCE_ANY *s_two_ints(const unsigned char *der, long len)
{
    const unsigned char *p = der;
    ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
    bool ok = seq != NULL && p == der + len && sk_ASN1_TYPE_num(seq) == 2;
    for (int i = 0; ok && i < 2; i++)
        ok = sk_ASN1_TYPE_value(seq, i)->type == V_ASN1_INTEGER;
    if (!ok && seq != NULL) {
        sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
        seq = NULL;
    }
    return seq;
}

/* The RSA public key of the INTEGERs n and e in seq; NULL on any failure. */
static EVP_PKEY *s_public(ASN1_SEQUENCE_ANY *seq)
{
    static const char *const names[2] = {OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E};
    BIGNUM *bn[2] = {NULL, NULL};
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    bool ok = bld != NULL;

    for (int i = 0; ok && i < 2; i++)
        ok =
            (bn[i] = ASN1_INTEGER_to_BN(sk_ASN1_TYPE_value(seq, i)->value.integer, NULL)) != NULL &&
            !BN_is_zero(bn[i]) && OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]) == 1;
    if (ok && (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) != NULL &&
        EVP_PKEY_fromdata_init(ctx) == 1)
        (void)EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn[0]);
    BN_free(bn[1]);
    return pkey;
}

void *kpk_pkey_spki(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    ASN1_SEQUENCE_ANY *outer = NULL, *ints = NULL;
    EVP_PKEY *pkey = NULL;

    if (der == NULL || len == 0 || len > LONG_MAX)
        return NULL;
    outer = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len);
    if (outer != NULL && p == der + len && sk_ASN1_TYPE_num(outer) == 2) {
        const ASN1_TYPE *alg = sk_ASN1_TYPE_value(outer, 0), *key = sk_ASN1_TYPE_value(outer, 1);
        if (alg->type == V_ASN1_SEQUENCE && alg->value.sequence->length == sizeof(s_rsa_alg) &&
            memcmp(alg->value.sequence->data, s_rsa_alg, sizeof(s_rsa_alg)) == 0 &&
            key->type == V_ASN1_BIT_STRING &&
            /* no unused bits: OpenSSL sets ASN1_STRING_FLAG_BITS_LEFT on every BIT STRING it
             * parses and keeps the count in the low three bits */
            (key->value.bit_string->flags & 0x07) == 0 &&
            (ints = s_two_ints(key->value.bit_string->data, key->value.bit_string->length)) != NULL)
            pkey = s_public(ints);
    }
    sk_ASN1_TYPE_pop_free(outer, ASN1_TYPE_free);
    sk_ASN1_TYPE_pop_free(ints, ASN1_TYPE_free);
    if (pkey == NULL) { /* not a plain RSA key: the decoder decides */
        ERR_clear_error();
        p = der;
        pkey = d2i_PUBKEY(NULL, &p, (long)len);
        if (pkey != NULL && p != der + len) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    return pkey;
}

struct kpk_p8_decoder {
    pthread_mutex_t lock;  /* one decode at a time: the context writes into slot */
    OSSL_DECODER_CTX *dec; /* DER RSAPrivateKey to an RSA key pair */
    EVP_PKEY *slot;
};

kpk_p8_decoder *kpk_p8_decoder_new(void)
{
    kpk_p8_decoder *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->dec = OSSL_DECODER_CTX_new_for_pkey(&d->slot, "DER", "type-specific", "RSA",
                                           EVP_PKEY_KEYPAIR, NULL, NULL);
    if (d->dec == NULL || pthread_mutex_init(&d->lock, NULL) != 0) {
        OSSL_DECODER_CTX_free(d->dec);
        free(d);
        ERR_clear_error();
        return NULL;
    }
    return d;
}

void kpk_p8_decoder_free(kpk_p8_decoder *d)
{
    if (d == NULL)
        return;
    OSSL_DECODER_CTX_free(d->dec);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

void *kpk_p8_decode(kpk_p8_decoder *d, const void *p8inf)
{
    const PKCS8_PRIV_KEY_INFO *inf = p8inf;
    const unsigned char *der = NULL;
    const X509_ALGOR *alg = NULL;
    const ASN1_OBJECT *obj = NULL;
    int len = 0, ptype = 0;
    EVP_PKEY *pkey = NULL;

    if (inf == NULL)
        return NULL;
    if (d != NULL && PKCS8_pkey_get0(&obj, &der, &len, &alg, inf) == 1 &&
        OBJ_obj2nid(obj) == NID_rsaEncryption && len > 0) {
        X509_ALGOR_get0(NULL, &ptype, NULL, alg);
        if (ptype == V_ASN1_NULL || ptype == V_ASN1_UNDEF) {
            size_t left = (size_t)len;
            pthread_mutex_lock(&d->lock);
            if (OSSL_DECODER_from_data(d->dec, &der, &left) == 1 && left == 0) {
                pkey = d->slot;
            } else {
                EVP_PKEY_free(d->slot); /* not all of it was the key */
            }
            d->slot = NULL;
            pthread_mutex_unlock(&d->lock);
        }
    }
    if (pkey == NULL) { /* not a plain RSA key, or none at all: the decoder decides */
        ERR_clear_error();
        pkey = EVP_PKCS82PKEY_ex(inf, NULL, NULL);
    }
    return pkey;
}
