/*
 * Export of a stored private key: as PKCS#8 PrivateKeyInfo in a core secret (KS_EXPORT), or
 * wrapped for another keystore under its RSA wrapping key (KS_EXPORT_WRAPPED), so a replica or a
 * cloud KMS can import it without the plaintext key crossing the process boundary.
 *
 * KP_KEYX_RSA_AES_KWP_SHA1/_SHA256 (CKM_RSA_AES_KEY_WRAP), done by the kit (kpk_keyx_wrap), which
 * the KMS keystore's import shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "file_internal.h"

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

kp_status kp_file_ks_export_wrapped(void *inst, const char *name, uint32_t version, uint32_t method,
                                    const uint8_t *wrapping_spki, size_t spki_len, uint8_t *out,
                                    size_t *outlen)
{
    kp_file_inst *fi = inst;
    kp_secret *p8 = NULL;

    if (outlen == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "export_wrapped: outlen is NULL");
    if (method != KP_KEYX_RSA_AES_KWP_SHA1 && method != KP_KEYX_RSA_AES_KWP_SHA256)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED,
                           "export_wrapped: transfer method %u; the file keystore wraps with "
                           "RSA-AES key wrap (SHA-1 or SHA-256) only",
                           method);
    /* exportable or not first: a key that may not leave is refused whatever the wrapping key */
    kp_status st = s_pkcs8(fi, name, version, &p8, &version);
    if (st == KP_OK)
        st = kpk_keyx_wrap(fi->up, fi->h, method, wrapping_spki, spki_len, p8, out, outlen);
    if (st == KP_OK)
        kp_logf(fi->up, fi->h, KP_LOG_DEBUG, "exported key %s v%u wrapped (method %u)", name,
                version, method);
    fi->up->secret_free(p8); /* wiped */
    return st;
}
