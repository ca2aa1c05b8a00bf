/*
 * Private keys as users hand them over (PEM or DER; PKCS#8, encrypted PKCS#8 or PKCS#1) turned
 * into the one form the provider ABI carries: PKCS#8 PrivateKeyInfo DER, inside a kp_secret;
 * and that DER encrypted under a password for export (format/pkcs8.h). A failure's text carries
 * OpenSSL's reason, and OpenSSL's error queue is left empty.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/ossl.h>

#include "base/error.h"
#include "format/err_text.h"
#include "format/pkcs8.h"

kp_status kp__pkey_pkcs8(const void *pkey, kp_secret **out, char *err, size_t errlen)
{
    KP_ENSURE(pkey != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    unsigned char *der = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
    int len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (len <= 0)
        return kp__fmt_ossl_fail(err, errlen, KP_ERR_CRYPTO, "cannot encode the key as PKCS#8");
    *out = kp_secret_new_copy(der, (size_t)len);
    OPENSSL_clear_free(der, (size_t)len);
    return *out != NULL ? KP_OK : KP_ERR_NOMEM;
}

void *kp__pkcs8_pkey(const kp_secret *pkcs8)
{
    const unsigned char *p = kp_secret_cdata(pkcs8);
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)kp_secret_len(pkcs8));
    EVP_PKEY *pk = p8 != NULL && p == kp_secret_cdata(pkcs8) + kp_secret_len(pkcs8)
                       ? EVP_PKCS82PKEY(p8)
                       : NULL;
    PKCS8_PRIV_KEY_INFO_free(p8);
    ERR_clear_error();
    return pk;
}

kp_status kp__rsa_generate(kp_ctx *ctx, uint32_t bits, kp_secret **out)
{
    char why[KPK_OSSL_REASON_MAX + 64];
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    kp_status st = pk != NULL ? kp__pkey_pkcs8(pk, out, why, sizeof(why))
                              : kp__fmt_ossl_fail(why, sizeof(why), KP_ERR_CRYPTO,
                                                  "RSA key generation failed");
    EVP_PKEY_free(pk);
    if (st != KP_OK && st != KP_ERR_NOMEM)
        kp__set_error(ctx, st, "cannot make an RSA-%u key: %s", bits, why);
    return st;
}

kp_status kp_private_key_to_pkcs8(const kp_secret *input, const kp_secret *passphrase,
                                  kp_secret **pkcs8_der, char *err, size_t errlen)
{
    KP_ENSURE(input != NULL && pkcs8_der != NULL, KP_ERR_INVALID_ARG);
    *pkcs8_der = NULL;
    kp_status st = KP_OK;
    EVP_PKEY *pkey = NULL;
    int decoded = 0;
    const unsigned char *p = kp_secret_cdata(input);
    size_t left = kp_secret_len(input);
    OSSL_DECODER_CTX *dctx =
        OSSL_DECODER_CTX_new_for_pkey(&pkey, NULL, NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL);
    if (dctx == NULL) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_NOMEM, "cannot set up the key decoder");
        goto out;
    }
    if (passphrase != NULL)
        OSSL_DECODER_CTX_set_passphrase(dctx, kp_secret_cdata(passphrase),
                                        kp_secret_len(passphrase));
    decoded = OSSL_DECODER_from_data(dctx, &p, &left);
    if (!decoded || pkey == NULL) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG,
                               passphrase != NULL
                                   ? "not a private key, or the passphrase is wrong"
                                   : "not a private key (PEM or DER; for an encrypted one give "
                                     "--passphrase)");
        goto out;
    }
    st = kp__pkey_pkcs8(pkey, pkcs8_der, err, errlen);
out:
    EVP_PKEY_free(pkey);
    OSSL_DECODER_CTX_free(dctx);
    return st;
}

/* PBKDF2 iterations for exported keys: an export may sit on a file share for years. */
#define KP_EXPORT_PBKDF2_ITER 600000

kp_status kp__pkcs8_encrypt_pem(const kp_secret *pkcs8_der, const kp_secret *passphrase, char **pem,
                                size_t *len, char *err, size_t errlen)
{
    KP_ENSURE(pkcs8_der != NULL && passphrase != NULL && pem != NULL && len != NULL,
              KP_ERR_INVALID_ARG);
    *pem = NULL;
    kp_status st = KP_OK;
    X509_SIG *enc = NULL;
    BIO *bio = NULL;
    char *data = NULL;
    long n = 0;
    const unsigned char *p = kp_secret_cdata(pkcs8_der);
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)kp_secret_len(pkcs8_der));
    if (p8 == NULL) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG, "not a PKCS#8 private key");
        goto out;
    }
    /* PBES2: PBKDF2-HMAC-SHA256 (OpenSSL 3's default PRF) and AES-256-CBC. */
    enc = PKCS8_encrypt_ex(-1, EVP_aes_256_cbc(), (const char *)kp_secret_cdata(passphrase),
                           (int)kp_secret_len(passphrase), NULL, 0, KP_EXPORT_PBKDF2_ITER, p8, NULL,
                           NULL);
    if (enc == NULL) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_CRYPTO, "cannot encrypt the key as PKCS#8");
        goto out;
    }
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || !PEM_write_bio_PKCS8(bio, enc)) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_CRYPTO, "cannot write the encrypted key as PEM");
        goto out;
    }
    n = BIO_get_mem_data(bio, &data);
    *pem = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (*pem == NULL) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_NOMEM, "out of memory for the encrypted key");
        goto out;
    }
    memcpy(*pem, data, (size_t)n);
    (*pem)[n] = '\0';
    *len = (size_t)n;
out:
    BIO_free(bio);
    X509_SIG_free(enc);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return st;
}

kp_status kp_pkcs8_encrypt_pem(const kp_secret *pkcs8_der, const kp_secret *passphrase, char **pem,
                               size_t *len)
{
    return kp__pkcs8_encrypt_pem(pkcs8_der, passphrase, pem, len, NULL, 0);
}
