/*
 * Wrap and unwrap of data-encryption keys under a stored RSA key. Wrapping needs only
 * public.der (no passphrase), so a host that may encrypt but not decrypt can run it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "file_internal.h"

/* Digest of an OAEP algorithm; NULL for PKCS#1 v1.5. */
static const EVP_MD *s_oaep_md(uint32_t alg)
{
    return alg == KP_WRAP_RSA_OAEP_SHA1     ? EVP_sha1()
           : alg == KP_WRAP_RSA_OAEP_SHA256 ? EVP_sha256()
                                            : NULL;
}

/* A ready EVP_PKEY_CTX for alg in the given direction. */
static EVP_PKEY_CTX *s_rsa_ctx(EVP_PKEY *pkey, uint32_t alg, bool encrypt)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    const EVP_MD *md = s_oaep_md(alg);
    int ok;

    if (ctx == NULL)
        return NULL;
    ok = (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1;
    if (ok && md != NULL) {
        /* The label stays empty: that is what every KMS/HSM peer means by "OAEP". */
        ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1;
    } else if (ok) {
        ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
#ifdef OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION
        /* Implicit rejection (OpenSSL >= 3.2) turns a wrong key into random "plaintext";
         * callers try keys in turn and must see the failure. The padding oracle it guards
         * against needs an attacker who can submit ciphertexts and time us. */
        if (ok) {
            unsigned int off = 0;
            OSSL_PARAM params[2];
            params[0] = OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, &off);
            params[1] = OSSL_PARAM_construct_end();
            ok = EVP_PKEY_CTX_set_params(ctx, params) == 1;
        }
#endif
    }
    if (!ok) {
        EVP_PKEY_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

kp_status kp_file_ks_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                          const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    kp_file_inst *fi = inst;
    const kp_file_up *up = fi->up;
    const EVP_MD *md = s_oaep_md(alg);
    char dir[KP_FILE_PATH_MAX];
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    size_t k, max, deklen, n;
    kp_status st = KP_OK;

    if (dek == NULL || outlen == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "wrap: dek or outlen is NULL");
    if (alg == KP_WRAP_RSA_PKCS1)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED,
                           "RSA1_5 is accepted for unwrap of old data only");
    if (md == NULL)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED,
                           "wrap algorithm %u: the file keystore wraps with RSA-OAEP only", alg);
    KP_GUARD(kp_file_ready(fi));
    KP_GUARD(kp_file_object(fi, "key", name, &version, dir, sizeof(dir)));
    KP_GUARD(kp_file_key_public(fi, name, version, &pkey));
    k = (size_t)EVP_PKEY_get_size(pkey);
    max = k - 2 * (size_t)EVP_MD_get_size(md) - 2; /* RFC 8017 7.1.1 */
    deklen = up->secret_len(dek);
    if (deklen == 0 || deklen > max) {
        st = kp_file_err(fi, KP_ERR_INVALID_ARG, "wrap: %zu-byte key; key %s v%u takes 1 to %zu",
                         deklen, name, version, max);
    } else if (out == NULL || *outlen < k) {
        *outlen = k;
        st = kp_file_err(fi, KP_ERR_BUFFER_TOO_SMALL, "wrap needs %zu bytes", k);
    }
    n = *outlen;
    if (st == KP_OK && ((ctx = s_rsa_ctx(pkey, alg, true)) == NULL ||
                        EVP_PKEY_encrypt(ctx, out, &n, up->secret_cdata(dek), deklen) != 1))
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "wrap under key %s v%u failed", name, version);
    if (st == KP_OK)
        *outlen = n;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return st;
}

kp_status kp_file_ks_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                            const uint8_t *in, size_t inlen, kp_secret **dek)
{
    kp_file_inst *fi = inst;
    const kp_file_up *up = fi->up;
    char dir[KP_FILE_PATH_MAX];
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    kp_secret *plain = NULL;
    size_t k, n;
    kp_status st = KP_OK;
    bool ok;

    if (dek == NULL || in == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "unwrap: input or output is NULL");
    *dek = NULL;
    if (alg != KP_WRAP_RSA_OAEP_SHA1 && alg != KP_WRAP_RSA_OAEP_SHA256 && alg != KP_WRAP_RSA_PKCS1)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED,
                           "unwrap algorithm %u: the file keystore holds RSA keys only", alg);
    /* A version unwrapped before needs nothing from disk (versions never change once
     * written); the first unwrap checks the store and the version's directory. */
    if (version == 0 || name == NULL || (pkey = kp_file_cache_pkey(fi, name, version)) == NULL) {
        KP_GUARD(kp_file_ready(fi));
        KP_GUARD(kp_file_object(fi, "key", name, &version, dir, sizeof(dir)));
        KP_GUARD(kp_file_key_private(fi, name, version, &pkey));
    }
    n = k = (size_t)EVP_PKEY_get_size(pkey);
    /* Another length is as wrong as bytes that do not decrypt: the same answer for both. */
    ok = inlen == k;
    if (ok && (plain = up->secret_new(k)) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory unwrapping");
    else if (ok && (ctx = s_rsa_ctx(pkey, alg, false)) == NULL)
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot set up RSA decryption");
    else if (ok)
        ok = EVP_PKEY_decrypt(ctx, up->secret_data(plain), &n, in, inlen) == 1 && n > 0;
    if (st == KP_OK && !ok) {
        ERR_clear_error();
        st = kp_file_err(fi, KP_ERR_CRYPTO,
                         "unwrap failed under %s v%u: wrong key or corrupted data", name, version);
    }
    if (st == KP_OK) {
        st = up->secret_shrink(plain, n);
        if (st != KP_OK)
            st = kp_file_err(fi, st, "cannot shrink unwrapped key");
    }
    if (st == KP_OK) {
        *dek = plain;
        plain = NULL;
    }
    up->secret_free(plain); /* wipes whatever was decrypted */
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return st;
}
