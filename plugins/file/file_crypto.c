/*
 * Cryptographic helpers of the file plugin, on OpenSSL 3 EVP APIs only. Plaintext key
 * material lives in core secrets (wiped on free) or is cleansed here before release.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "file_internal.h"

kp_status kp_file_random(kp_file_inst *fi, uint8_t *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1)
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO, "random generator failed");
    return KP_OK;
}

kp_status kp_file_pbkdf2(kp_file_inst *fi, const kp_secret *pass, const uint8_t *salt,
                         size_t saltlen, uint32_t iter, kp_secret **key)
{
    const kp_file_up *up = fi->up;
    kp_secret *k = up->secret_new(KP_FILE_KEY_LEN);
    kp_status st = KP_OK;

    *key = NULL;
    if (k == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory deriving the master key");
    if (PKCS5_PBKDF2_HMAC((const char *)up->secret_cdata(pass), (int)up->secret_len(pass), salt,
                          (int)saltlen, (int)iter, EVP_sha256(), KP_FILE_KEY_LEN,
                          up->secret_data(k)) != 1)
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "PBKDF2 failed");
    if (st == KP_OK) {
        *key = k;
        k = NULL;
    }
    up->secret_free(k);
    return st;
}

kp_status kp_file_gcm_seal(kp_file_inst *fi, const kp_secret *key, const void *aad, size_t aadlen,
                           const uint8_t *pt, size_t ptlen, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx;
    uint8_t *iv = out, *ct = out + KP_FILE_GCM_IV_LEN;
    int n1 = 0, n2 = 0;
    kp_status st = KP_OK;

    if (ptlen > KP_FILE_SECRET_MAX || aadlen > KP_FILE_PATH_MAX)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "data too large to encrypt");
    KP_GUARD(kp_file_random(fi, iv, KP_FILE_GCM_IV_LEN));
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory encrypting");
    /* The GCM default IV length is 12 bytes, the size we store. */
    if (EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), fi->up->secret_cdata(key), iv, NULL) != 1 ||
        (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n1, aad, (int)aadlen) != 1) ||
        (ptlen > 0 && EVP_EncryptUpdate(ctx, ct, &n1, pt, (int)ptlen) != 1) ||
        EVP_EncryptFinal_ex(ctx, ct + n1, &n2) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, KP_FILE_GCM_TAG_LEN, ct + ptlen) != 1)
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "AES-256-GCM encryption failed");
    EVP_CIPHER_CTX_free(ctx);
    return st;
}

kp_status kp_file_gcm_open(kp_file_inst *fi, const kp_secret *key, const void *aad, size_t aadlen,
                           const uint8_t *in, size_t inlen, uint8_t *pt)
{
    const uint8_t *iv = in, *ct = in + KP_FILE_GCM_IV_LEN;
    size_t ctlen;
    EVP_CIPHER_CTX *ctx;
    uint8_t none[1];
    int n1 = 0, n2 = 0;
    kp_status st = KP_OK;

    if (pt == NULL) /* an empty secret may have no buffer; keep pointer arithmetic defined */
        pt = none;

    if (inlen < KP_FILE_GCM_OVERHEAD)
        return KP_ERR_INTEGRITY;
    ctlen = inlen - KP_FILE_GCM_OVERHEAD;
    if (ctlen > KP_FILE_SECRET_MAX || aadlen > KP_FILE_PATH_MAX)
        return KP_ERR_INTEGRITY;
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory decrypting");
    if (EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), fi->up->secret_cdata(key), iv, NULL) != 1 ||
        (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n1, aad, (int)aadlen) != 1) ||
        (ctlen > 0 && EVP_DecryptUpdate(ctx, pt, &n1, ct, (int)ctlen) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, KP_FILE_GCM_TAG_LEN,
                            (void *)(ct + ctlen)) != 1) {
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "AES-256-GCM decryption failed");
    } else if (EVP_DecryptFinal_ex(ctx, pt + n1, &n2) != 1) {
        ERR_clear_error();
        st = KP_ERR_INTEGRITY;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (st != KP_OK && ctlen > 0)
        OPENSSL_cleanse(pt, ctlen); /* unauthenticated plaintext must not be used */
    return st;
}

/* The password of private.p8: format 2's store key, format 1's passphrase. */
static const kp_secret *s_p8_pass(const kp_file_inst *fi, const kp_file_keys *keys)
{
    return keys->p8_pass != NULL ? keys->p8_pass : fi->pass;
}

kp_status kp_file_p8_encrypt(kp_file_inst *fi, const kp_file_keys *keys, EVP_PKEY *pkey,
                             uint8_t **der, size_t *len)
{
    const kp_file_up *up = fi->up;
    const kp_secret *pass = s_p8_pass(fi, keys);
    PKCS8_PRIV_KEY_INFO *p8inf = NULL;
    X509_ALGOR *pbe = NULL;
    X509_SIG *p8 = NULL;
    uint8_t salt[KP_FILE_SALT_LEN];
    unsigned char *out = NULL;
    int n;

    *der = NULL;
    *len = 0;
    KP_GUARD(kp_file_random(fi, salt, sizeof(salt)));
    /* Exactly what `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256` writes, so
     * `openssl pkey -passin` can recover the key without keyplane. */
    p8inf = EVP_PKEY2PKCS8(pkey);
    if (p8inf == NULL)
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot encode private key");
    pbe = PKCS5_pbe2_set_iv_ex(EVP_aes_256_cbc(), (int)keys->p8_iter, salt, sizeof(salt), NULL,
                               NID_hmacWithSHA256, NULL);
    if (pbe != NULL) {
        p8 = PKCS8_set0_pbe_ex((const char *)up->secret_cdata(pass), (int)up->secret_len(pass),
                               p8inf, pbe, NULL, NULL);
        if (p8 == NULL)
            X509_ALGOR_free(pbe); /* only a successful set0 takes it */
    }
    PKCS8_PRIV_KEY_INFO_free(p8inf); /* cleanses the plaintext key */
    if (p8 == NULL)
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot encrypt private key");
    n = i2d_X509_SIG(p8, &out);
    X509_SIG_free(p8);
    if (n <= 0)
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot encode encrypted private key");
    /* Hand out plain malloc memory so callers free everything the same way. */
    kp_status st = KP_OK;
    if ((*der = malloc((size_t)n)) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory encoding private key");
    if (st == KP_OK) {
        memcpy(*der, out, (size_t)n);
        *len = (size_t)n;
    }
    OPENSSL_free(out);
    return st;
}

/* The instance's reader of private keys, made the first time one is read (the lock keeps two
 * threads from making two); NULL when memory is short, which kpk_p8_decode takes too. */
static kpk_p8_decoder *s_p8dec(kp_file_inst *fi)
{
    pthread_mutex_lock(&fi->lock);
    if (fi->p8dec == NULL)
        fi->p8dec = kpk_p8_decoder_new();
    kpk_p8_decoder *d = fi->p8dec;
    pthread_mutex_unlock(&fi->lock);
    return d;
}

kp_status kp_file_p8_decrypt(kp_file_inst *fi, const kp_file_keys *keys, const char *what,
                             const uint8_t *der, size_t len, EVP_PKEY **pkey)
{
    const kp_file_up *up = fi->up;
    const kp_secret *pass = s_p8_pass(fi, keys);
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8inf = NULL;
    X509_SIG *p8;
    kp_status st = KP_OK;

    *pkey = NULL;
    p8 = d2i_X509_SIG(NULL, &p, (long)len);
    if (p8 == NULL || p != der + len)
        st = kp_file_ossl_err(fi, KP_ERR_INTEGRITY, "private.p8 of %s is damaged", what);
    else
        p8inf = PKCS8_decrypt_ex(p8, (const char *)up->secret_cdata(pass),
                                 (int)up->secret_len(pass), NULL, NULL);
    X509_SIG_free(p8);
    if (st == KP_OK && p8inf == NULL) {
        ERR_clear_error();
        /* Format 2: the passphrase opened the header, so a key file the store key does not open
         * was written by another store (copied in) or changed. */
        st = keys->p8_pass != NULL
                 ? kp_file_err(fi, KP_ERR_INTEGRITY,
                               "cannot decrypt private key of %s: private.p8 was not written "
                               "under the store key of %s, or is damaged",
                               what, fi->dir)
                 : kp_file_err(fi, KP_ERR_AUTH,
                               "cannot decrypt private key of %s: wrong passphrase for file "
                               "store %s",
                               what, fi->dir);
    }
    if (st == KP_OK && (*pkey = kpk_p8_decode(s_p8dec(fi), p8inf)) == NULL)
        st = kp_file_ossl_err(fi, KP_ERR_INTEGRITY, "cannot decode the private key of %s", what);
    PKCS8_PRIV_KEY_INFO_free(p8inf); /* cleanses the plaintext key */
    return st;
}

/* key | iv of `openssl enc -aes-256-cbc -pbkdf2 -md sha256 -iter N`: PBKDF2-HMAC-SHA256 of the
 * password and the 8-byte salt, 48 bytes, the first 32 the key and the last 16 the IV. */
static kp_status s_enc_kdf(kp_file_inst *fi, const kp_secret *pass, const uint8_t *salt,
                           uint32_t iter, kp_secret **kiv)
{
    const kp_file_up *up = fi->up;

    if ((*kiv = up->secret_new(KP_FILE_KEY_LEN + 16)) == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory deriving the store key's key");
    if (PKCS5_PBKDF2_HMAC((const char *)up->secret_cdata(pass), (int)up->secret_len(pass), salt,
                          KP_FILE_ENC_SALT_LEN, (int)iter, EVP_sha256(), KP_FILE_KEY_LEN + 16,
                          up->secret_data(*kiv)) != 1) {
        up->secret_free(*kiv);
        *kiv = NULL;
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO, "PBKDF2 failed");
    }
    return KP_OK;
}

/* The 8 bytes openssl enc writes before its salt (not a C string: no NUL is stored). */
static const uint8_t s_enc_magic[KP_FILE_ENC_MAGIC_LEN] = {'S', 'a', 'l', 't', 'e', 'd', '_', '_'};

kp_status kp_file_sk_seal(kp_file_inst *fi, const kp_secret *pass, uint32_t iter,
                          const kp_secret *text, uint8_t *out)
{
    const kp_file_up *up = fi->up;
    uint8_t *salt = out + KP_FILE_ENC_MAGIC_LEN, *ct = salt + KP_FILE_ENC_SALT_LEN;
    kp_secret *kiv = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int n1 = 0, n2 = 0;
    kp_status st;

    memcpy(out, s_enc_magic, sizeof(s_enc_magic));
    st = kp_file_random(fi, salt, KP_FILE_ENC_SALT_LEN);
    if (st == KP_OK)
        st = s_enc_kdf(fi, pass, salt, iter, &kiv);
    if (st == KP_OK && (ctx = EVP_CIPHER_CTX_new()) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory encrypting the store key");
    if (st == KP_OK &&
        (EVP_EncryptInit_ex2(ctx, EVP_aes_256_cbc(), up->secret_cdata(kiv),
                             up->secret_cdata(kiv) + KP_FILE_KEY_LEN, NULL) != 1 ||
         EVP_EncryptUpdate(ctx, ct, &n1, up->secret_cdata(text), (int)up->secret_len(text)) != 1 ||
         EVP_EncryptFinal_ex(ctx, ct + n1, &n2) != 1 ||
         (size_t)n1 + (size_t)n2 !=
             KP_FILE_SK_SEALED - KP_FILE_ENC_MAGIC_LEN - KP_FILE_ENC_SALT_LEN))
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot encrypt the store key");
    EVP_CIPHER_CTX_free(ctx);
    up->secret_free(kiv);
    return st;
}

kp_status kp_file_sk_open(kp_file_inst *fi, const kp_secret *pass, uint32_t iter, const uint8_t *in,
                          size_t inlen, kp_secret **text)
{
    const kp_file_up *up = fi->up;
    const uint8_t *salt = in + KP_FILE_ENC_MAGIC_LEN, *ct = salt + KP_FILE_ENC_SALT_LEN;
    uint8_t pt[KP_FILE_SK_SEALED];
    kp_secret *kiv = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int n1 = 0, n2 = 0;
    kp_status st = KP_OK;

    *text = NULL;
    if (inlen != KP_FILE_SK_SEALED || memcmp(in, s_enc_magic, sizeof(s_enc_magic)) != 0)
        return KP_ERR_INTEGRITY;
    KP_GUARD(s_enc_kdf(fi, pass, salt, iter, &kiv));
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory decrypting the store key");
    else if (EVP_DecryptInit_ex2(ctx, EVP_aes_256_cbc(), up->secret_cdata(kiv),
                                 up->secret_cdata(kiv) + KP_FILE_KEY_LEN, NULL) != 1 ||
             EVP_DecryptUpdate(ctx, pt, &n1, ct, (int)(in + inlen - ct)) != 1)
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot decrypt the store key");
    else if (EVP_DecryptFinal_ex(ctx, pt + n1, &n2) != 1)
        st = KP_ERR_AUTH; /* bad padding: another passphrase (the caller says so) */
    ERR_clear_error();
    /* Anything but the 64 hex digits written is another passphrase too; the caller's check
     * value catches the rest. */
    if (st == KP_OK && (size_t)n1 + (size_t)n2 != KP_FILE_SK_HEX)
        st = KP_ERR_AUTH;
    for (size_t i = 0; st == KP_OK && i < KP_FILE_SK_HEX; i++)
        if (!((pt[i] >= '0' && pt[i] <= '9') || (pt[i] >= 'a' && pt[i] <= 'f')))
            st = KP_ERR_AUTH;
    if (st == KP_OK && (*text = kp_secret_dup(up, pt, KP_FILE_SK_HEX)) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory decrypting the store key");
    OPENSSL_cleanse(pt, sizeof(pt));
    EVP_CIPHER_CTX_free(ctx);
    up->secret_free(kiv);
    return st;
}

kp_status kp_file_sk_derive(kp_file_inst *fi, const kp_secret *text, const char *label,
                            kp_secret **key)
{
    const kp_file_up *up = fi->up;
    uint8_t sk[KP_FILE_SK_LEN];
    char hex[KP_FILE_SK_HEX + 1];
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    kp_status st = KP_OK;

    *key = NULL;
    memcpy(hex, up->secret_cdata(text), KP_FILE_SK_HEX);
    hex[KP_FILE_SK_HEX] = '\0';
    if (kpk_hex_decode(hex, sk, sizeof(sk)) != KP_OK)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "the store key of %s is malformed", fi->dir);
    if (st == KP_OK && (*key = up->secret_new(KP_FILE_KEY_LEN)) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory deriving a key");
    if (st == KP_OK) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, sk, sizeof(sk)),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label)),
            OSSL_PARAM_construct_end(),
        };
        if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL ||
            (kctx = EVP_KDF_CTX_new(kdf)) == NULL ||
            EVP_KDF_derive(kctx, up->secret_data(*key), KP_FILE_KEY_LEN, params) != 1)
            st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "HKDF failed");
    }
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    OPENSSL_cleanse(sk, sizeof(sk));
    OPENSSL_cleanse(hex, sizeof(hex));
    if (st != KP_OK) {
        up->secret_free(*key);
        *key = NULL;
    }
    return st;
}
