/*
 * The kit's independent cryptography: everything here is plain OpenSSL, written without looking
 * at any plugin, so a plugin that agrees with itself but not with the standards is caught.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "conf.h"
#include "conf_crypto.h"

EVP_PKEY *conf_rsa_new(uint32_t bits)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *k = NULL;
    if (c == NULL || EVP_PKEY_keygen_init(c) <= 0 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(c, (int)bits) <= 0 || EVP_PKEY_keygen(c, &k) <= 0)
        k = NULL;
    EVP_PKEY_CTX_free(c);
    return k;
}

uint8_t *conf_spki_der(EVP_PKEY *k, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    if (n <= 0)
        return NULL;
    uint8_t *out = malloc((size_t)n);
    if (out != NULL)
        memcpy(out, der, (size_t)n);
    OPENSSL_free(der);
    *len = (size_t)n;
    return out;
}

kp_secret *conf_pkcs8_secret(EVP_PKEY *k)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
    unsigned char *der = NULL;
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (n <= 0)
        return NULL;
    kp_secret *s = conf_secret_new(der, (size_t)n);
    OPENSSL_clear_free(der, (size_t)n);
    return s;
}

EVP_PKEY *conf_pkey_from_spki(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);
    if (k != NULL && p != der + len) {
        EVP_PKEY_free(k); /* trailing bytes: not one SPKI */
        k = NULL;
    }
    return k;
}

EVP_PKEY *conf_pkey_from_pkcs8(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    EVP_PKEY *k = p8 != NULL && p == der + len ? EVP_PKCS82PKEY(p8) : NULL;
    PKCS8_PRIV_KEY_INFO_free(p8);
    return k;
}

uint32_t conf_rsa_bits(EVP_PKEY *k)
{
    if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA)
        return 0;
    return (uint32_t)EVP_PKEY_get_bits(k);
}

void conf_sha256_hex(const uint8_t *der, size_t len, char out[65])
{
    unsigned char md[32];
    static const char hex[] = "0123456789abcdef";
    EVP_Digest(der, len, md, NULL, EVP_sha256(), NULL);
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

bool conf_pkey_fpr(EVP_PKEY *k, char out[65])
{
    size_t n = 0;
    uint8_t *der = conf_spki_der(k, &n);
    if (der == NULL)
        return false;
    conf_sha256_hex(der, n, out);
    free(der);
    return true;
}

void conf_random(void *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        abort(); /* the kit cannot test anything without randomness */
}

static bool s_pad(EVP_PKEY_CTX *c, uint32_t alg)
{
    switch (alg) {
    case KP_WRAP_RSA_OAEP_SHA1:
    case KP_WRAP_RSA_OAEP_SHA256: {
        const EVP_MD *md = alg == KP_WRAP_RSA_OAEP_SHA1 ? EVP_sha1() : EVP_sha256();
        return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) > 0 &&
               EVP_PKEY_CTX_set_rsa_oaep_md(c, md) > 0 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) > 0;
    }
    case KP_WRAP_RSA_PKCS1:
        return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0;
    default:
        return false;
    }
}

uint8_t *conf_rsa_encrypt(EVP_PKEY *k, uint32_t alg, const uint8_t *in, size_t inlen,
                          size_t *outlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
    uint8_t *out = NULL;
    size_t n = 0;
    if (c != NULL && EVP_PKEY_encrypt_init(c) > 0 && s_pad(c, alg) &&
        EVP_PKEY_encrypt(c, NULL, &n, in, inlen) > 0 && (out = malloc(n)) != NULL &&
        EVP_PKEY_encrypt(c, out, &n, in, inlen) > 0) {
        *outlen = n;
    } else {
        free(out);
        out = NULL;
    }
    EVP_PKEY_CTX_free(c);
    return out;
}

bool conf_rsa_decrypt(EVP_PKEY *k, uint32_t alg, const uint8_t *in, size_t inlen, uint8_t *out,
                      size_t *outlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
    bool ok = c != NULL && EVP_PKEY_decrypt_init(c) > 0 && s_pad(c, alg) &&
              EVP_PKEY_decrypt(c, out, outlen, in, inlen) > 0;
    EVP_PKEY_CTX_free(c);
    return ok;
}

static uint32_t s_keyx_alg(uint32_t method)
{
    return method == KP_KEYX_RSA_AES_KWP_SHA1 ? KP_WRAP_RSA_OAEP_SHA1 : KP_WRAP_RSA_OAEP_SHA256;
}

/* RFC 5649 with AES-256, one direction or the other. */
static uint8_t *s_kwp(const uint8_t key[32], int enc, const uint8_t *in, size_t inlen,
                      size_t *outlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t *out = malloc(inlen + 16);
    int n1 = 0, n2 = 0;
    bool ok = false;
    if (c != NULL && out != NULL) {
        EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        ok = EVP_CipherInit_ex(c, EVP_aes_256_wrap_pad(), NULL, key, NULL, enc) > 0 &&
             EVP_CipherUpdate(c, out, &n1, in, (int)inlen) > 0 &&
             EVP_CipherFinal_ex(c, out + n1, &n2) > 0;
    }
    EVP_CIPHER_CTX_free(c);
    if (ok) {
        *outlen = (size_t)n1 + (size_t)n2;
    } else if (out != NULL) {
        OPENSSL_cleanse(out, inlen + 16);
        free(out);
        out = NULL;
    }
    return out;
}

uint8_t *conf_rsa_aes_wrap(EVP_PKEY *k, uint32_t method, const uint8_t *data, size_t len,
                           size_t *bloblen)
{
    uint8_t aes[32];
    size_t rlen = 0, alen = 0;
    conf_random(aes, sizeof(aes));
    uint8_t *rsa = conf_rsa_encrypt(k, s_keyx_alg(method), aes, sizeof(aes), &rlen);
    uint8_t *wrapped = rsa != NULL ? s_kwp(aes, 1, data, len, &alen) : NULL;
    OPENSSL_cleanse(aes, sizeof(aes));
    uint8_t *blob = wrapped != NULL ? malloc(rlen + alen) : NULL;
    if (blob != NULL) {
        memcpy(blob, rsa, rlen);
        memcpy(blob + rlen, wrapped, alen);
        *bloblen = rlen + alen;
    }
    free(rsa);
    free(wrapped);
    return blob;
}

uint8_t *conf_rsa_aes_unwrap(EVP_PKEY *k, uint32_t method, const uint8_t *blob, size_t bloblen,
                             size_t *outlen)
{
    size_t rlen = (size_t)EVP_PKEY_get_size(k);
    if (bloblen <= rlen)
        return NULL;
    uint8_t aes[1024], *out = NULL;
    size_t alen = sizeof(aes);
    if (conf_rsa_decrypt(k, s_keyx_alg(method), blob, rlen, aes, &alen) && alen == 32)
        out = s_kwp(aes, 0, blob + rlen, bloblen - rlen, outlen);
    OPENSSL_cleanse(aes, sizeof(aes));
    return out;
}
