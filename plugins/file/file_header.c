/*
 * The header, keyplane-store.json in the directory: the salt and iteration count of the master
 * key, and a check value that tells a wrong passphrase apart from damaged data before anything
 * is decrypted or written; and the master key derived from it.
 *
 * The header is what makes a directory a store: INSTANCE_INIT writes it (kp_file_init), nothing
 * else does, and it is never rewritten, as every secret value depends on its salt. A directory
 * without it (never initialised, or moved away, its disk not mounted) is a store that cannot be
 * reached, not an empty one: every call fails with KP_ERR_UNAVAILABLE (kp_file_ready), so the
 * engine never takes it for a store that holds nothing and creates a new v1 beside the real one.
 * Creation goes through link(), so of two concurrent INITs one wins and the other is told the
 * store is initialised already.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "file_internal.h"

#define S_CHECK_LEN (sizeof(KP_FILE_CHECK_TEXT) - 1)
#define S_CHECK_SEALED (S_CHECK_LEN + KP_FILE_GCM_OVERHEAD)

/* Decodes a base64 field of the header into a malloc'ed buffer (*data stays NULL otherwise);
 * false when absent or malformed. The kit's decoder takes the padded standard base64 this file
 * has always been written in. */
static bool s_field(const char *text, uint8_t **data, size_t *len)
{
    size_t tlen = text != NULL ? strlen(text) : 0;

    if (tlen == 0 || tlen > KP_FILE_JSON_MAX)
        return false;
    return kpk_b64_decode_alloc(text, tlen, data, len) == KP_OK;
}

static kp_status s_header_path(kp_file_inst *fi, char *buf, size_t size)
{
    return kp_file_path(fi, buf, size, "%s/%s", fi->dir, KP_FILE_HEADER);
}

/* Derives the master key from the header's parameters and verifies the check value with it. */
static kp_status s_load(kp_file_inst *fi, const char *path, const json_t *j, kp_secret **key,
                        uint32_t *iter)
{
    const char *format = json_string_value(json_object_get(j, "format"));
    const char *kdf = json_string_value(json_object_get(j, "kdf"));
    const char *salt64 = json_string_value(json_object_get(j, "salt"));
    const char *check64 = json_string_value(json_object_get(j, "check"));
    json_t *jver = json_object_get(j, "version");
    json_t *jiter = json_object_get(j, "iterations");
    uint8_t *salt = NULL, *check = NULL;
    uint8_t plain[S_CHECK_LEN];
    size_t saltlen = 0, checklen = 0;
    kp_secret *k = NULL;
    kp_status st = KP_OK;

    *key = NULL;
    if (format == NULL || strcmp(format, KP_FILE_HEADER_FORMAT) != 0)
        return kp_file_err(fi, KP_ERR_INTEGRITY, "%s is not a keyplane file store", path);
    if (!json_is_integer(jver) || json_integer_value(jver) != 1)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED, "%s: unsupported store version", path);
    if (kdf == NULL || strcmp(kdf, "pbkdf2-sha256") != 0)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED, "%s: unsupported kdf", path);
    if (!json_is_integer(jiter) || json_integer_value(jiter) < KP_FILE_KDF_MIN ||
        json_integer_value(jiter) > KP_FILE_KDF_MAX)
        return kp_file_err(fi, KP_ERR_INTEGRITY, "%s: iterations out of range", path);
    if (!s_field(salt64, &salt, &saltlen) || saltlen < KP_FILE_SALT_LEN || saltlen > 64 ||
        !s_field(check64, &check, &checklen) || checklen != S_CHECK_SEALED)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s: bad salt or check value", path);
    *iter = (uint32_t)json_integer_value(jiter);
    if (st == KP_OK)
        st = kp_file_pbkdf2(fi, fi->pass, salt, saltlen, *iter, &k);
    if (st == KP_OK) {
        st = kp_file_gcm_open(fi, k, NULL, 0, check, checklen, plain);
        if (st == KP_OK && CRYPTO_memcmp(plain, KP_FILE_CHECK_TEXT, S_CHECK_LEN) != 0)
            st = KP_ERR_INTEGRITY;
        if (st == KP_ERR_INTEGRITY) /* GCM cannot tell a wrong key from a changed value */
            st = kp_file_err(fi, KP_ERR_AUTH, "wrong passphrase for file store %s", fi->dir);
    }
    if (st == KP_OK) {
        *key = k;
        k = NULL;
    }
    fi->up->secret_free(k);
    free(salt);
    free(check);
    return st;
}

/* The header's JSON text (malloc'ed) for a salt and a sealed check value. */
static kp_status s_text(kp_file_inst *fi, const char *path, const uint8_t *salt,
                        const uint8_t *check, char **text)
{
    char *salt64 = NULL, *check64 = NULL;
    json_t *j = NULL;
    kp_status st = kpk_b64_encode_alloc(salt, KP_FILE_SALT_LEN, false, &salt64);

    if (st == KP_OK)
        st = kpk_b64_encode_alloc(check, S_CHECK_SEALED, false, &check64);
    if (st == KP_OK)
        j = json_pack("{s:s, s:i, s:s, s:s, s:I, s:s}", "format", KP_FILE_HEADER_FORMAT, "version",
                      1, "salt", salt64, "kdf", "pbkdf2-sha256", "iterations",
                      (json_int_t)fi->kdf_iter, "check", check64);
    if (st == KP_OK && (j == NULL || (*text = json_dumps(j, JSON_INDENT(2))) == NULL))
        st = KP_ERR_NOMEM;
    if (st != KP_OK)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory creating %s", path);
    free(salt64);
    free(check64);
    json_decref(j);
    return st;
}

/* Writes a new header; KP_ERR_EXISTS (no text) when another writer was first. */
static kp_status s_create(kp_file_inst *fi, const char *path, kp_secret **key, uint32_t *iter)
{
    uint8_t salt[KP_FILE_SALT_LEN];
    uint8_t check[S_CHECK_SEALED];
    char *text = NULL;
    kp_secret *k = NULL;
    kp_status st = KP_OK;

    *key = NULL;
    st = kp_file_mkdirs(fi, fi->dir);
    if (st == KP_OK)
        st = kp_file_random(fi, salt, sizeof(salt));
    if (st == KP_OK)
        st = kp_file_pbkdf2(fi, fi->pass, salt, sizeof(salt), fi->kdf_iter, &k);
    if (st == KP_OK)
        st = kp_file_gcm_seal(fi, k, NULL, 0, (const uint8_t *)KP_FILE_CHECK_TEXT, S_CHECK_LEN,
                              check);
    if (st == KP_OK)
        st = s_text(fi, path, salt, check, &text);
    if (st == KP_OK)
        st = kp_file_write_atomic(fi, path, text, strlen(text), true);
    if (st == KP_OK) {
        *iter = fi->kdf_iter;
        *key = k;
        k = NULL;
    }
    fi->up->secret_free(k);
    free(text);
    return st;
}

/* The one line every call on a store that is not initialised answers. */
static kp_status s_not_initialised(kp_file_inst *fi)
{
    return kp_file_err(fi, KP_ERR_UNAVAILABLE,
                       "file store %s is not initialised (no %s): if it was moved or its disk is "
                       "not mounted, bring it back; to create a new, empty store there, run "
                       "'keyplane init' for this instance",
                       fi->dir, KP_FILE_HEADER);
}

kp_status kp_file_ready(kp_file_inst *fi)
{
    char path[KP_FILE_PATH_MAX];
    struct stat sb;
    bool missing;

    KP_GUARD(s_header_path(fi, path, sizeof(path)));
    /* Not through a link: a header is the store's own file, as every other (kp_file_openat). */
    KP_GUARD(kp_file_lstat(fi, path, &sb, &missing));
    if (missing)
        return s_not_initialised(fi);
    if (S_ISLNK(sb.st_mode))
        return kp_file_open_err(fi, ELOOP, strlen(path), false, "", path);
    if (!S_ISREG(sb.st_mode))
        return kp_file_err(fi, KP_ERR_INTEGRITY, "%s is not a regular file", path);
    return KP_OK;
}

static kp_status s_derive(kp_file_inst *fi, kp_secret **key, uint32_t *iter)
{
    char path[KP_FILE_PATH_MAX];
    json_t *j;
    kp_status st = KP_OK;

    KP_GUARD(s_header_path(fi, path, sizeof(path)));
    KP_GUARD(kp_file_json_read(fi, path, &j));
    st = s_load(fi, path, j, key, iter);
    json_decref(j);
    return st;
}

kp_status kp_file_master_key(kp_file_inst *fi, const kp_secret **key)
{
    kp_status st = KP_OK;

    *key = NULL;
    /* Every time, not only before the first derivation: a store moved away after it was opened
     * is unreachable too, and nothing may be written where it was. */
    KP_GUARD(kp_file_ready(fi));
    /* Held across the PBKDF2 so concurrent first users derive once, not once each. */
    pthread_mutex_lock(&fi->lock);
    if (fi->master_key == NULL) {
        kp_secret *k = NULL;
        uint32_t iter = 0;
        st = s_derive(fi, &k, &iter);
        if (st == KP_OK) {
            fi->master_key = k;
            fi->header_iter = iter;
        }
    }
    if (st == KP_OK)
        *key = fi->master_key;
    pthread_mutex_unlock(&fi->lock);
    return st;
}

/* The store's data directories: a directory that holds one but no header is a store whose header
 * was lost, and a new header (a new salt) would make its secret values unreadable. */
static kp_status s_no_data(kp_file_inst *fi)
{
    static const char *const subdirs[] = {"keys", "secrets"};
    char path[KP_FILE_PATH_MAX];
    struct stat sb;

    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        KP_GUARD(kp_file_path(fi, path, sizeof(path), "%s/%s", fi->dir, subdirs[i]));
        if (stat(path, &sb) == 0)
            return kp_file_err(fi, KP_ERR_INTEGRITY,
                               "%s holds %s/ but no %s: it is a store whose header is lost, not a "
                               "new one; restore its %s rather than initialise over it",
                               fi->dir, subdirs[i], KP_FILE_HEADER, KP_FILE_HEADER);
    }
    return KP_OK;
}

kp_status kp_file_init(void *inst)
{
    kp_file_inst *fi = inst;
    char path[KP_FILE_PATH_MAX];
    struct stat sb;
    kp_secret *k = NULL;
    uint32_t iter = 0;
    kp_status st = KP_OK;

    KP_GUARD(s_header_path(fi, path, sizeof(path)));
    pthread_mutex_lock(&fi->lock);
    if (stat(path, &sb) == 0)
        st = KP_ERR_EXISTS;
    else if (errno != ENOENT && errno != ENOTDIR)
        st = kp_file_errno(fi, errno, "cannot stat", path);
    else if (stat(fi->dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        st = kp_file_err(fi, KP_ERR_CONFIG, "path %s is not a directory", fi->dir);
    if (st == KP_OK)
        st = s_no_data(fi);
    if (st == KP_OK)
        st = s_create(fi, path, &k, &iter);
    if (st == KP_OK && fi->master_key == NULL) {
        fi->master_key = k;
        fi->header_iter = iter;
        k = NULL;
    }
    pthread_mutex_unlock(&fi->lock);
    fi->up->secret_free(k);
    if (st == KP_ERR_EXISTS) /* there before us, or another INIT won the race */
        return kp_file_err(fi, KP_ERR_EXISTS, "file store %s is already initialised", fi->dir);
    if (st == KP_OK)
        kp_logf(fi->up, fi->h, KP_LOG_INFO, "initialised file store %s", fi->dir);
    return st;
}

uint32_t kp_file_header_iterations(kp_file_inst *fi)
{
    uint32_t iter;

    pthread_mutex_lock(&fi->lock);
    iter = fi->header_iter;
    pthread_mutex_unlock(&fi->lock);
    return iter;
}
