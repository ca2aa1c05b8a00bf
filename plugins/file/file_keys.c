/*
 * One key version on disk: keys/<name>/<N>/{meta.json, public.der, private.p8}, read through
 * the instance's cache (file_cache.c). A private key is used (unwrap, export) only once it is
 * seen to match the version's recorded public key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "file_internal.h"

kp_status kp_file_key_dir(kp_file_inst *fi, const char *name, uint32_t version, char *buf,
                          size_t size)
{
    return kp_file_path(fi, buf, size, "%s/keys/%s/%u", fi->dir, name, version);
}

/* A file of version directory name/version: meta.json, public.der or private.p8. */
static kp_status s_key_file(kp_file_inst *fi, const char *name, uint32_t version, const char *file,
                            char *buf, size_t size)
{
    return kp_file_path(fi, buf, size, "%s/keys/%s/%u/%s", fi->dir, name, version, file);
}

kp_status kp_file_key_info_read(kp_file_inst *fi, const char *name, uint32_t version,
                                kp_key_info *info)
{
    char dir[KP_FILE_PATH_MAX], path[KP_FILE_PATH_MAX];
    const char *jname, *type, *state, *fpr;
    json_t *j, *flags, *el;
    size_t i;

    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    KP_GUARD(kp_file_key_dir(fi, name, version, dir, sizeof(dir)));
    KP_GUARD(kp_file_path(fi, path, sizeof(path), "%s/meta.json", dir));
    KP_GUARD(kp_file_json_read(fi, path, &j));
    jname = json_string_value(json_object_get(j, "name"));
    type = json_string_value(json_object_get(j, "type"));
    state = json_string_value(json_object_get(j, "state"));
    fpr = json_string_value(json_object_get(j, "fingerprint"));
    flags = json_object_get(j, "flags");
    /* name and version must match the directory: a copied or renamed directory would
     * otherwise answer for another key. */
    if (jname == NULL || strcmp(jname, name) != 0 ||
        json_integer_value(json_object_get(j, "version")) != (json_int_t)version || type == NULL ||
        strcmp(type, "rsa") != 0 || !kpk_fpr_valid(fpr) ||
        (flags != NULL && !json_is_array(flags)) || !json_is_integer(json_object_get(j, "bits")) ||
        !json_is_integer(json_object_get(j, "created"))) {
        json_decref(j);
        return kp_file_err(fi, KP_ERR_INTEGRITY, "%s is inconsistent", path);
    }
    snprintf(info->name, sizeof(info->name), "%s", name);
    info->version = version;
    info->type = KP_KEY_RSA;
    info->bits = (uint32_t)json_integer_value(json_object_get(j, "bits"));
    info->created = (int64_t)json_integer_value(json_object_get(j, "created"));
    info->state =
        state != NULL && strcmp(state, "disabled") == 0 ? KP_KEY_DISABLED : KP_KEY_ENABLED;
    json_array_foreach(flags, i, el)
    {
        const char *f = json_string_value(el);
        if (f != NULL && strcmp(f, "exportable") == 0)
            info->flags |= KP_KEY_EXPORTABLE;
    }
    memcpy(info->fingerprint, fpr, KPK_FPR_HEX);
    /* backend_id is the version directory; when the absolute path does not fit, the path
     * relative to the directory still identifies it. */
    if (strlen(dir) < sizeof(info->backend_id))
        memcpy(info->backend_id, dir, strlen(dir) + 1);
    else
        snprintf(info->backend_id, sizeof(info->backend_id), "keys/%s/%u", name, version);
    json_decref(j);
    return KP_OK;
}

kp_status kp_file_key_info(kp_file_inst *fi, const char *name, uint32_t version, kp_key_info *info)
{
    kp_file_stamp stamps[KP_FILE_INFO_STAMPS];

    if (kp_file_cache_info(fi, name, version, info))
        return KP_OK;
    kp_file_cache_stamp(fi, name, version, KP_FILE_INFO_STAMPS, stamps);
    KP_GUARD(kp_file_key_info_read(fi, name, version, info));
    kp_file_cache_keep_info(fi, info, stamps);
    return KP_OK;
}

kp_status kp_file_key_meta_write(kp_file_inst *fi, const char *dir, const kp_key_info *info)
{
    char path[KP_FILE_PATH_MAX];
    json_t *j, *flags;
    kp_status st = KP_OK;

    KP_GUARD(kp_file_path(fi, path, sizeof(path), "%s/meta.json", dir));
    flags = json_array();
    if (flags != NULL && (info->flags & KP_KEY_EXPORTABLE) != 0)
        json_array_append_new(flags, json_string("exportable"));
    j = json_pack("{s:s, s:I, s:s, s:I, s:o, s:s, s:I, s:s}", "name", info->name, "version",
                  (json_int_t)info->version, "type", "rsa", "bits", (json_int_t)info->bits, "flags",
                  flags, "state", info->state == KP_KEY_DISABLED ? "disabled" : "enabled",
                  "created", (json_int_t)info->created, "fingerprint", info->fingerprint);
    if (j == NULL) /* json_pack consumed flags ("o") even on failure */
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory writing %s", path);
    st = kp_file_json_write_new(fi, path, j);
    json_decref(j);
    return st;
}

kp_status kp_file_key_public_der(kp_file_inst *fi, const char *name, uint32_t version,
                                 uint8_t **der, size_t *len)
{
    char path[KP_FILE_PATH_MAX], fpr[KPK_FPR_HEX];
    kp_key_info info;
    kp_status st = KP_OK;

    *der = NULL;
    KP_GUARD(kp_file_key_info(fi, name, version, &info));
    KP_GUARD(s_key_file(fi, name, version, "public.der", path, sizeof(path)));
    KP_GUARD(kp_file_read(fi, path, KP_FILE_DER_MAX, der, len));
    if (kpk_fpr_spki(*der, *len, fpr) != KP_OK)
        st = kp_file_ossl_err(fi, KP_ERR_INTEGRITY, "cannot fingerprint %s", path);
    else if (strcmp(fpr, info.fingerprint) != 0)
        st = kp_file_err(fi, KP_ERR_INTEGRITY,
                         "%s does not match the fingerprint recorded for %s v%u: refusing it", path,
                         name, version);
    if (st != KP_OK) {
        free(*der);
        *der = NULL;
    }
    return st;
}

kp_status kp_file_key_public(kp_file_inst *fi, const char *name, uint32_t version, EVP_PKEY **pkey)
{
    char path[KP_FILE_PATH_MAX];
    uint8_t *der;
    size_t len;
    kp_status st = KP_OK;

    *pkey = NULL;
    KP_GUARD(s_key_file(fi, name, version, "public.der", path, sizeof(path)));
    KP_GUARD(kp_file_key_public_der(fi, name, version, &der, &len));
    *pkey = kpk_pkey_spki(der, len);
    if (*pkey == NULL || !EVP_PKEY_is_a(*pkey, "RSA")) {
        EVP_PKEY_free(*pkey);
        *pkey = NULL;
        st = kp_file_ossl_err(fi, KP_ERR_INTEGRITY, "%s is not an RSA public key", path);
    }
    free(der);
    return st;
}

/* The private key of a version must be the other half of its recorded public key (public.der,
 * itself checked against the fingerprint of meta.json): a private.p8 replaced by another key
 * would unwrap nothing wrapped under the version, and, exported, would put another key under
 * its number in a copy. Refused before any use; the text names no key material. */
static kp_status s_matches_public(kp_file_inst *fi, const char *name, uint32_t version,
                                  const EVP_PKEY *priv)
{
    EVP_PKEY *pub = NULL;
    kp_status st = kp_file_key_public(fi, name, version, &pub);
    if (st == KP_OK && EVP_PKEY_eq(pub, priv) != 1) {
        ERR_clear_error();
        st = kp_file_err(fi, KP_ERR_INTEGRITY,
                         "file store %s: the private key of %s v%u does not match the public key "
                         "recorded for it: refusing to use or export it",
                         fi->dir, name, version);
    }
    EVP_PKEY_free(pub);
    return st;
}

static kp_status s_decrypt(kp_file_inst *fi, const char *name, uint32_t version, EVP_PKEY **pkey)
{
    char path[KP_FILE_PATH_MAX], what[KP_NAME_MAX + 32];
    const kp_file_keys *keys;
    uint8_t *der;
    size_t len;
    kp_status st = KP_OK;

    /* Verifying the header's check value first turns a wrong passphrase into the same clear
     * message everywhere. */
    KP_GUARD(kp_file_unlock(fi, &keys));
    KP_GUARD(s_key_file(fi, name, version, "private.p8", path, sizeof(path)));
    KP_GUARD(kp_file_read(fi, path, KP_FILE_DER_MAX, &der, &len));
    snprintf(what, sizeof(what), "key %s v%u", name, version);
    st = kp_file_p8_decrypt(fi, keys, what, der, len, pkey);
    free(der); /* ciphertext: no need to cleanse */
    if (st == KP_OK && !EVP_PKEY_is_a(*pkey, "RSA")) {
        EVP_PKEY_free(*pkey);
        *pkey = NULL;
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "private key of %s is not RSA", what);
    }
    if (st == KP_OK)
        st = s_matches_public(fi, name, version, *pkey);
    if (st != KP_OK && *pkey != NULL) {
        EVP_PKEY_free(*pkey);
        *pkey = NULL;
    }
    return st;
}

kp_status kp_file_key_private(kp_file_inst *fi, const char *name, uint32_t version, EVP_PKEY **pkey)
{
    kp_file_stamp stamps[KP_FILE_STAMPS];
    EVP_PKEY *mine;

    if ((*pkey = kp_file_cache_pkey(fi, name, version)) != NULL)
        return KP_OK;
    kp_file_cache_stamp(fi, name, version, KP_FILE_STAMPS, stamps);
    /* Decrypt outside the lock: format 1 takes a PBKDF2, and other keys should not wait. */
    kp_status st = s_decrypt(fi, name, version, &mine);
    /* OpenSSL's secure heap full (other instances, other keys of the caller's): the keys this
     * instance keeps go, and the key is read once more. */
    if (st == KP_ERR_NOMEM && kp_file_cache_drop_pkeys(fi) > 0)
        st = s_decrypt(fi, name, version, &mine);
    KP_GUARD(st);
    *pkey = kp_file_cache_keep_pkey(fi, name, version, mine, stamps);
    return KP_OK;
}
