/*
 * The wrapped key transfer every keystore that imports an RSA private key under a wrapping key
 * speaks (kp_keyx_method KP_KEYX_RSA_AES_KWP_SHA1/_SHA256; CKM_RSA_AES_KEY_WRAP, PKCS#11 v2.40
 * 2.1.21): a fresh AES-256 key wraps the PKCS#8 PrivateKeyInfo with AES key wrap with padding
 * (RFC 5649), the AES key is encrypted with RSA-OAEP (SHA-1 or SHA-256, MGF1 with the same
 * hash, no label) under the wrapping key, and the blob is the RSA part then the AES part. Azure
 * Key Vault BYOK, AWS KMS ImportKeyMaterial and GCP import jobs take it. The file keystore
 * exports with it; the aws plugin's KMS keystore wraps a plain import with it, since KMS takes
 * nothing else.
 */
#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>

#define S_AES_KEY_LEN 32    /* AES-256 */
#define S_KWP_OVERHEAD 8    /* RFC 5649: the alternative IV block */
#define S_WRAPPING_MIN 2048 /* RSA bits a private key is wrapped under */

/* RSA-OAEP (md, MGF1-md, no label) of in under pub into out (k bytes). */
static bool s_rsa_part(EVP_PKEY *pub, const EVP_MD *md, const uint8_t *in, size_t inlen,
                       uint8_t *out, size_t k)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
    size_t n = k;
    bool ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 &&
              EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
              EVP_PKEY_encrypt(ctx, out, &n, in, inlen) == 1 && n == k;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* RFC 5649 wrap of in under the AES key into out (exactly want bytes). */
static bool s_aes_part(const uint8_t *aes, const uint8_t *in, size_t inlen, uint8_t *out,
                       size_t want)
{
    EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, "AES-256-WRAP-PAD", NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    bool ok = cipher != NULL && ctx != NULL && inlen <= INT_MAX;
    if (ok) {
        EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        ok = EVP_EncryptInit_ex2(ctx, cipher, aes, NULL, NULL) == 1 &&
             EVP_EncryptUpdate(ctx, out, &n1, in, (int)inlen) == 1 && n1 >= 0 &&
             EVP_EncryptFinal_ex(ctx, out + n1, &n2) == 1 && (size_t)n1 + (size_t)n2 == want;
    }
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    EVP_CIPHER_free(cipher);
    return ok;
}

kp_status kpk_keyx_wrap(const kp_upcalls *up, kp_core_handle *h, uint32_t method,
                        const uint8_t *spki, size_t spki_len, const kp_secret *pkcs8, uint8_t *out,
                        size_t *outlen)
{
    const EVP_MD *md = method == KP_KEYX_RSA_AES_KWP_SHA1     ? EVP_sha1()
                       : method == KP_KEYX_RSA_AES_KWP_SHA256 ? EVP_sha256()
                                                              : NULL;
    if (outlen == NULL || pkcs8 == NULL)
        return KP_ERRORF(up, h, KP_ERR_INVALID_ARG, "key wrap: no key or no length given");
    if (md == NULL)
        return KP_ERRORF(up, h, KP_ERR_UNSUPPORTED,
                         "key wrap: transfer method %u is not RSA-AES key wrap (SHA-1 or SHA-256)",
                         method);
    EVP_PKEY *pub = spki != NULL ? kpk_pkey_spki(spki, spki_len) : NULL;
    if (pub == NULL || !EVP_PKEY_is_a(pub, "RSA")) {
        EVP_PKEY_free(pub);
        return kpk_ossl_errorf(up, h, KP_ERR_INVALID_ARG,
                               "key wrap: the wrapping key is not an RSA SubjectPublicKeyInfo");
    }
    kp_status st = KP_OK;
    if (EVP_PKEY_get_bits(pub) < S_WRAPPING_MIN)
        st = KP_ERRORF(up, h, KP_ERR_INVALID_ARG,
                       "key wrap: a %d-bit wrapping key is too weak (at least %d)",
                       EVP_PKEY_get_bits(pub), S_WRAPPING_MIN);
    size_t k = (size_t)EVP_PKEY_get_size(pub), inlen = up->secret_len(pkcs8);
    size_t kwp = (inlen + 7) / 8 * 8 + S_KWP_OVERHEAD, need = k + kwp;
    if (st == KP_OK && (out == NULL || *outlen < need)) {
        *outlen = need;
        st = KP_ERRORF(up, h, KP_ERR_BUFFER_TOO_SMALL, "key wrap needs %zu bytes", need);
    }
    kp_secret *aes = st == KP_OK ? up->secret_new(S_AES_KEY_LEN) : NULL;
    if (st == KP_OK && aes == NULL)
        st = KP_ERRORF(up, h, KP_ERR_NOMEM, "key wrap: out of memory");
    if (st == KP_OK && RAND_priv_bytes(up->secret_data(aes), S_AES_KEY_LEN) != 1)
        st = kpk_ossl_errorf(up, h, KP_ERR_CRYPTO, "key wrap: the random generator failed");
    if (st == KP_OK && !s_rsa_part(pub, md, up->secret_cdata(aes), S_AES_KEY_LEN, out, k))
        st = kpk_ossl_errorf(up, h, KP_ERR_CRYPTO, "key wrap: RSA-OAEP of the AES key failed");
    if (st == KP_OK &&
        !s_aes_part(up->secret_cdata(aes), up->secret_cdata(pkcs8), inlen, out + k, kwp))
        st = kpk_ossl_errorf(up, h, KP_ERR_CRYPTO, "key wrap: AES key wrap failed");
    if (st == KP_OK)
        *outlen = need;
    else if (st != KP_ERR_BUFFER_TOO_SMALL && out != NULL && *outlen >= need)
        OPENSSL_cleanse(out, need); /* nothing half-written goes back */
    up->secret_free(aes);           /* wiped */
    EVP_PKEY_free(pub);
    return st;
}

kp_status kpk_oaep_wrap(const kp_upcalls *up, kp_core_handle *h, uint32_t alg, const uint8_t *spki,
                        size_t spki_len, const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    const EVP_MD *md = alg == KP_WRAP_RSA_OAEP_SHA1     ? EVP_sha1()
                       : alg == KP_WRAP_RSA_OAEP_SHA256 ? EVP_sha256()
                                                        : NULL;
    if (outlen == NULL || dek == NULL)
        return KP_ERRORF(up, h, KP_ERR_INVALID_ARG, "wrap: no key or no length given");
    if (md == NULL)
        return KP_ERRORF(up, h, KP_ERR_UNSUPPORTED, "wrap: algorithm %u is not RSA-OAEP", alg);
    EVP_PKEY *pub = spki != NULL ? kpk_pkey_spki(spki, spki_len) : NULL;
    if (pub == NULL || !EVP_PKEY_is_a(pub, "RSA")) {
        EVP_PKEY_free(pub);
        return kpk_ossl_errorf(up, h, KP_ERR_INVALID_ARG,
                               "wrap: the public key is not an RSA SubjectPublicKeyInfo");
    }
    size_t k = (size_t)EVP_PKEY_get_size(pub), inlen = up->secret_len(dek);
    size_t over = 2 * (size_t)EVP_MD_get_size(md) + 2; /* RFC 8017 7.1.1 */
    size_t room = k > over ? k - over : 0;             /* a tiny key holds nothing */
    kp_status st = KP_OK;
    if (inlen == 0 || inlen > room)
        st = KP_ERRORF(up, h, KP_ERR_INVALID_ARG,
                       "wrap: a %zu-byte key does not fit RSA-OAEP under a %d-bit key (1 to %zu)",
                       inlen, EVP_PKEY_get_bits(pub), room);
    else if (out == NULL || *outlen < k)
        st = KP_ERRORF(up, h, KP_ERR_BUFFER_TOO_SMALL, "wrap needs %zu bytes", k);
    else if (!s_rsa_part(pub, md, up->secret_cdata(dek), inlen, out, k))
        st = kpk_ossl_errorf(up, h, KP_ERR_CRYPTO, "wrap: RSA-OAEP failed");
    if (st == KP_OK || st == KP_ERR_BUFFER_TOO_SMALL)
        *outlen = k;
    EVP_PKEY_free(pub);
    return st;
}
