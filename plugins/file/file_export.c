/*
 * Export of a stored private key: as PKCS#8 PrivateKeyInfo in a core secret (KS_EXPORT), or
 * wrapped for another keystore under its RSA wrapping key (KS_EXPORT_WRAPPED), so a replica or a
 * cloud KMS can import it without the plaintext key crossing the process boundary.
 *
 * KP_KEYX_RSA_AES_KWP_SHA1/_SHA256 (CKM_RSA_AES_KEY_WRAP): a fresh AES-256 key wraps the PKCS#8
 * with AES key wrap with padding (RFC 5649), the AES key is wrapped with RSA-OAEP (SHA-1 or
 * SHA-256, MGF1 with the same hash, no label) under the wrapping key; the blob is the RSA part
 * then the AES part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "file_internal.h"

#define S_AES_KEY_LEN 32    /* AES-256 */
#define S_KWP_OVERHEAD 8    /* RFC 5649: the alternative IV block */
#define S_WRAPPING_MIN 2048 /* RSA bits we wrap a private key under */

/* The private key of name/version as PKCS#8 PrivateKeyInfo DER in a new secret (caller owns),
 * after resolving version 0 and checking the key is exportable (KP_ERR_DENIED). *resolved
 * receives the version. */
static kp_status s_pkcs8(kp_file_inst *fi, const char *name, uint32_t version,
                         kp_secret **pkcs8_der, uint32_t *resolved)
{
    const kp_file_up *up = fi->up;
    char dir[KP_FILE_PATH_MAX];
    OSSL_ENCODER_CTX *ectx;
    unsigned char *der = NULL;
    size_t len = 0;
    kp_secret *out;
    kp_key_info info;
    EVP_PKEY *pkey;
    int ok;

    *pkcs8_der = NULL;
    KP_GUARD(kp_file_ready(fi));
    KP_GUARD(kp_file_object(fi, "key", name, &version, dir, sizeof(dir)));
    KP_GUARD(kp_file_key_info(fi, name, version, &info));
    *resolved = version;
    if ((info.flags & KP_KEY_EXPORTABLE) == 0)
        return kp_file_err(fi, KP_ERR_DENIED, "key %s v%u is not exportable", name, version);
    KP_GUARD(kp_file_key_private(fi, name, version, &pkey));
    ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", NULL);
    ok = ectx != NULL && OSSL_ENCODER_to_data(ectx, &der, &len) == 1 && len > 0;
    OSSL_ENCODER_CTX_free(ectx);
    EVP_PKEY_free(pkey);
    kp_status st = KP_OK;
    if (!ok)
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot encode key %s v%u", name, version);
    if (st == KP_OK && (out = kp_secret_dup(up, der, len)) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory exporting key %s", name);
    OPENSSL_clear_free(der, len);
    if (st == KP_OK)
        *pkcs8_der = out;
    return st;
}

kp_status kp_file_ks_export(void *inst, const char *name, uint32_t version, kp_secret **pkcs8_der)
{
    kp_file_inst *fi = inst;

    if (pkcs8_der == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "export: output is NULL");
    return s_pkcs8(fi, name, version, pkcs8_der, &version);
}

/* The wrapping key: an RSA SubjectPublicKeyInfo DER, the whole input, of at least 2048 bits. */
static kp_status s_wrapping_key(kp_file_inst *fi, const uint8_t *spki, size_t len, EVP_PKEY **out)
{
    const unsigned char *p = spki;
    EVP_PKEY *pkey = NULL;
    kp_status st = KP_OK;

    *out = NULL;
    if (spki == NULL || len == 0 || len > KP_FILE_DER_MAX)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "export_wrapped: no wrapping key given");
    pkey = d2i_PUBKEY(NULL, &p, (long)len);
    if (pkey == NULL || p != spki + len || !EVP_PKEY_is_a(pkey, "RSA"))
        st = kp_file_ossl_err(fi, KP_ERR_INVALID_ARG,
                              "export_wrapped: the wrapping key is not an RSA "
                              "SubjectPublicKeyInfo DER");
    else if (EVP_PKEY_get_bits(pkey) < S_WRAPPING_MIN)
        st = kp_file_err(fi, KP_ERR_INVALID_ARG,
                         "export_wrapped: a %d-bit wrapping key is too weak (at least %d)",
                         EVP_PKEY_get_bits(pkey), S_WRAPPING_MIN);
    if (st == KP_OK) {
        *out = pkey;
        pkey = NULL;
    }
    EVP_PKEY_free(pkey);
    return st;
}

/* RSA-OAEP (md, MGF1-md, no label) of the AES key under pub into out (k bytes). */
static kp_status s_rsa_part(kp_file_inst *fi, EVP_PKEY *pub, const EVP_MD *md, const kp_secret *aes,
                            uint8_t *out, size_t k)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
    size_t n = k;
    int ok =
        ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
        EVP_PKEY_encrypt(ctx, out, &n, fi->up->secret_cdata(aes), S_AES_KEY_LEN) == 1 && n == k;

    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO,
                                "export_wrapped: RSA-OAEP of the AES key failed");
    return KP_OK;
}

/* RFC 5649 wrap of the PKCS#8 under the AES key into out (exactly want bytes). */
static kp_status s_aes_part(kp_file_inst *fi, const kp_secret *aes, const kp_secret *p8,
                            uint8_t *out, size_t want)
{
    const kp_file_up *up = fi->up;
    EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, "AES-256-WRAP-PAD", NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    int ok = cipher != NULL && ctx != NULL;

    if (ok) {
        EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        ok = EVP_EncryptInit_ex2(ctx, cipher, up->secret_cdata(aes), NULL, NULL) == 1 &&
             EVP_EncryptUpdate(ctx, out, &n1, up->secret_cdata(p8), (int)up->secret_len(p8)) == 1 &&
             n1 >= 0 && EVP_EncryptFinal_ex(ctx, out + n1, &n2) == 1 &&
             (size_t)n1 + (size_t)n2 == want;
    }
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    EVP_CIPHER_free(cipher);
    if (!ok)
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO, "export_wrapped: AES key wrap failed");
    return KP_OK;
}

kp_status kp_file_ks_export_wrapped(void *inst, const char *name, uint32_t version, uint32_t method,
                                    const uint8_t *wrapping_spki, size_t spki_len, uint8_t *out,
                                    size_t *outlen)
{
    kp_file_inst *fi = inst;
    const kp_file_up *up = fi->up;
    const EVP_MD *md;
    EVP_PKEY *pub = NULL;
    kp_secret *p8 = NULL, *aes = NULL;
    size_t k = 0, kwp = 0, need = 0;
    kp_status st = KP_OK;

    if (outlen == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "export_wrapped: outlen is NULL");
    if (method == KP_KEYX_RSA_AES_KWP_SHA1)
        md = EVP_sha1();
    else if (method == KP_KEYX_RSA_AES_KWP_SHA256)
        md = EVP_sha256();
    else
        return kp_file_err(fi, KP_ERR_UNSUPPORTED,
                           "export_wrapped: transfer method %u; the file keystore wraps with "
                           "RSA-AES key wrap (SHA-1 or SHA-256) only",
                           method);
    KP_GUARD(s_wrapping_key(fi, wrapping_spki, spki_len, &pub));
    /* Exportable or not, and the PKCS#8 length the blob's size depends on. */
    st = s_pkcs8(fi, name, version, &p8, &version);
    if (st == KP_OK) {
        k = (size_t)EVP_PKEY_get_size(pub);
        kwp = (up->secret_len(p8) + 7) / 8 * 8 + S_KWP_OVERHEAD;
        need = k + kwp;
        if (out == NULL || *outlen < need) {
            *outlen = need;
            st = kp_file_err(fi, KP_ERR_BUFFER_TOO_SMALL, "export_wrapped needs %zu bytes", need);
        }
    }
    if (st == KP_OK && (aes = up->secret_new(S_AES_KEY_LEN)) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory exporting key %s", name);
    if (st == KP_OK && RAND_priv_bytes(up->secret_data(aes), S_AES_KEY_LEN) != 1)
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "random generator failed");
    if (st == KP_OK) {
        st = s_rsa_part(fi, pub, md, aes, out, k);
        if (st == KP_OK)
            st = s_aes_part(fi, aes, p8, out + k, kwp);
        if (st != KP_OK)
            OPENSSL_cleanse(out, need); /* nothing half-written goes back */
    }
    if (st == KP_OK) {
        *outlen = need;
        kp_logf(fi->up, fi->h, KP_LOG_DEBUG, "exported key %s v%u wrapped (method %u)", name,
                version, method);
    }
    up->secret_free(aes); /* wiped */
    up->secret_free(p8);  /* wiped */
    EVP_PKEY_free(pub);
    return st;
}
