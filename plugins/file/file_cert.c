/*
 * Certificates kept with key versions (KS_CERT_PUT / KS_CERT_GET): keys/<name>/<N>/
 * certificate.der beside the version's public.der. The file appears whole or not at all (a
 * temporary file renamed without replacing), so two writers of one version cannot leave two
 * certificates, and a reader never sees half of one. A version's certificate is never replaced:
 * SQL Server finds a protector by its certificate's thumbprint, so a second certificate for the
 * same key would be another protector.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "file_internal.h"

#define S_CERT_FILE "certificate.der"

/* The path of name/version's certificate, once the version is seen to exist. */
static kp_status s_path(kp_file_inst *fi, const char *name, uint32_t version, char *buf,
                        size_t size)
{
    kp_key_info info;

    if (version == 0)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "certificate of %s: version 0", name);
    KP_GUARD(kp_file_ready(fi));
    KP_GUARD(kp_file_check_name(fi, "key", name));
    KP_GUARD(kp_file_key_info(fi, name, version, &info));
    return kp_file_path(fi, buf, size, "%s/keys/%s/%u/%s", fi->dir, name, version, S_CERT_FILE);
}

/* The stored certificate of name/version (*der malloc'd), checked against the version's key. */
static kp_status s_read(kp_file_inst *fi, const char *name, uint32_t version, const char *path,
                        uint8_t **der, size_t *len)
{
    char fpr[KPK_FPR_HEX];
    kp_key_info info;
    kp_status st;

    KP_GUARD(kp_file_key_info(fi, name, version, &info));
    KP_GUARD(kp_file_read(fi, path, KP_CERT_DER_MAX, der, len));
    st = kpk_cert_fpr(*der, *len, fpr);
    if (st != KP_OK)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s is not a DER X.509 certificate", path);
    else if (strcmp(fpr, info.fingerprint) != 0)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s is the certificate of another key than %s v%u",
                         path, name, version);
    if (st != KP_OK) {
        free(*der);
        *der = NULL;
    }
    return st;
}

kp_status kp_file_ks_cert_put(void *inst, const char *name, uint32_t version, const uint8_t *der,
                              size_t len)
{
    kp_file_inst *fi = inst;
    char path[KP_FILE_PATH_MAX], fpr[KPK_FPR_HEX];
    kp_key_info info;
    uint8_t *have = NULL;
    size_t have_len = 0;
    struct stat sb;
    bool missing = false;
    kp_status st;

    if (der == NULL || len == 0 || len > KP_CERT_DER_MAX)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "certificate of %zu bytes", len);
    KP_GUARD(s_path(fi, name, version, path, sizeof(path)));
    KP_GUARD(kp_file_key_info(fi, name, version, &info));
    if (kpk_cert_fpr(der, len, fpr) != KP_OK)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "not a DER X.509 certificate");
    if (strcmp(fpr, info.fingerprint) != 0)
        return kp_file_err(fi, KP_ERR_INTEGRITY,
                           "the certificate is for another key than %s v%u (its key %.12s, the "
                           "version %.12s)",
                           name, version, fpr, info.fingerprint);
    KP_GUARD(kp_file_lstat(fi, path, &sb, &missing));
    st = missing ? kp_file_write_atomic(fi, path, der, len, true) : KP_ERR_EXISTS;
    if (st != KP_ERR_EXISTS)
        return st;
    /* There is one already (or a writer won the race): the same bytes are success. */
    KP_GUARD(s_read(fi, name, version, path, &have, &have_len));
    bool same = have_len == len && CRYPTO_memcmp(have, der, len) == 0;
    free(have);
    if (!same)
        return kp_file_err(fi, KP_ERR_EXISTS, "%s v%u keeps another certificate already", name,
                           version);
    return KP_OK;
}

kp_status kp_file_ks_cert_get(void *inst, const char *name, uint32_t version, uint8_t *der,
                              size_t *len)
{
    kp_file_inst *fi = inst;
    char path[KP_FILE_PATH_MAX];
    struct stat sb;
    bool missing = false;
    uint8_t *data = NULL;
    size_t n = 0;

    if (len == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "cert_get: len is NULL");
    KP_GUARD(s_path(fi, name, version, path, sizeof(path)));
    KP_GUARD(kp_file_lstat(fi, path, &sb, &missing));
    if (missing)
        return kp_file_err(fi, KP_ERR_NOT_FOUND, "%s v%u keeps no certificate", name, version);
    KP_GUARD(s_read(fi, name, version, path, &data, &n));
    return kp_buffer_take(fi->up, fi->h, data, n, der, len, "certificate");
}
