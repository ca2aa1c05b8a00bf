/*
 * Private keys as users hand them over (PEM or DER; PKCS#8, encrypted PKCS#8 or PKCS#1) turned
 * into the one form the provider ABI carries: PKCS#8 PrivateKeyInfo DER, inside a kp_secret;
 * and that DER encrypted under a password for export (format/pkcs8.h). A failure's text carries
 * OpenSSL's reason, and OpenSSL's error queue is left empty.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/ossl.h>

#include "format/pkcs8.h"

/* msg into err, with the reason OpenSSL queued for the failure when it queued one; the queue is
 * emptied either way. Returns st. */
static kp_status s_err(char *err, size_t errlen, kp_status st, const char *msg)
{
    char why[KPK_OSSL_REASON_MAX];
    kpk_ossl_reason(why, sizeof(why));
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s%s%s", msg, why[0] != '\0' ? ": " : "", why);
    return st;
}

kp_status kp_private_key_to_pkcs8(const kp_secret *input, const kp_secret *passphrase,
                                  kp_secret **pkcs8_der, char *err, size_t errlen)
{
    KP_ENSURE(input != NULL && pkcs8_der != NULL, KP_ERR_INVALID_ARG);
    *pkcs8_der = NULL;
    kp_status st = KP_OK;
    EVP_PKEY *pkey = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *der = NULL;
    int len = -1, decoded = 0;
    const unsigned char *p = kp_secret_cdata(input);
    size_t left = kp_secret_len(input);
    OSSL_DECODER_CTX *dctx =
        OSSL_DECODER_CTX_new_for_pkey(&pkey, NULL, NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL);
    if (dctx == NULL) {
        st = s_err(err, errlen, KP_ERR_NOMEM, "cannot set up the key decoder");
        goto out;
    }
    if (passphrase != NULL)
        OSSL_DECODER_CTX_set_passphrase(dctx, kp_secret_cdata(passphrase),
                                        kp_secret_len(passphrase));
    decoded = OSSL_DECODER_from_data(dctx, &p, &left);
    if (!decoded || pkey == NULL) {
        st = s_err(err, errlen, KP_ERR_INVALID_ARG,
                   passphrase != NULL ? "not a private key, or the passphrase is wrong"
                                      : "not a private key (PEM or DER; for an encrypted one give "
                                        "--passphrase)");
        goto out;
    }
    p8 = EVP_PKEY2PKCS8(pkey);
    len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    if (len <= 0) {
        st = s_err(err, errlen, KP_ERR_CRYPTO, "cannot encode the key as PKCS#8");
        goto out;
    }
    *pkcs8_der = kp_secret_new_copy(der, (size_t)len);
    if (*pkcs8_der == NULL)
        st = KP_ERR_NOMEM;
out:
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)len);
    PKCS8_PRIV_KEY_INFO_free(p8);
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
        st = s_err(err, errlen, KP_ERR_INVALID_ARG, "not a PKCS#8 private key");
        goto out;
    }
    /* PBES2: PBKDF2-HMAC-SHA256 (OpenSSL 3's default PRF) and AES-256-CBC. */
    enc = PKCS8_encrypt_ex(-1, EVP_aes_256_cbc(), (const char *)kp_secret_cdata(passphrase),
                           (int)kp_secret_len(passphrase), NULL, 0, KP_EXPORT_PBKDF2_ITER, p8, NULL,
                           NULL);
    if (enc == NULL) {
        st = s_err(err, errlen, KP_ERR_CRYPTO, "cannot encrypt the key as PKCS#8");
        goto out;
    }
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || !PEM_write_bio_PKCS8(bio, enc)) {
        st = s_err(err, errlen, KP_ERR_CRYPTO, "cannot write the encrypted key as PEM");
        goto out;
    }
    n = BIO_get_mem_data(bio, &data);
    *pem = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (*pem == NULL) {
        st = s_err(err, errlen, KP_ERR_NOMEM, "out of memory for the encrypted key");
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
