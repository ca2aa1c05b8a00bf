/*
 * The header, keyplane-store.json in the directory, and the keys it opens to with the
 * passphrase. Format 2 (what INIT writes): a random store key sealed under the passphrase as
 * `openssl enc -pbkdf2` would seal it, and a check value derived from the store key; one PBKDF2
 * per instance opens it, and the store key then protects every private.p8 (as its password)
 * and every secret value (through HKDF). Format 1 (read and written on, as stores made before
 * format 2 are): a salt for the master key and a sealed check text; its private.p8 files are
 * each under the passphrase, so each costs a PBKDF2 of its own. The check value tells a wrong
 * passphrase apart from damaged data before anything is decrypted or written.
 *
 * The header is what makes a directory a store: INSTANCE_INIT writes it (kp_file_init), nothing
 * else does, and it is never rewritten, as every key file and secret value depends on it. A
 * directory without it (never initialised, or moved away, its disk not mounted) is a store that
 * cannot be reached, not an empty one: every call fails with KP_ERR_UNAVAILABLE (kp_file_ready), so
 * the engine never takes it for a store that holds nothing and creates a new v1 beside the real
 * one. Creation goes through link(), so of two concurrent INITs one wins and the other is told the
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
#define S_FORMAT 2 /* the header version INIT writes */

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

static kp_status s_wrong_pass(kp_file_inst *fi)
{
    return kp_file_err(fi, KP_ERR_AUTH, "wrong passphrase for file store %s", fi->dir);
}

void kp_file_keys_free(kp_file_inst *fi, kp_file_keys *keys)
{
    if (keys == NULL)
        return;
    fi->up->secret_free(keys->values);
    fi->up->secret_free(keys->p8_pass);
    free(keys);
}

/* Format 1: the master key derived from the passphrase and the salt, checked by opening the
 * sealed check text; private.p8 files are under the passphrase itself. */
static kp_status s_open_v1(kp_file_inst *fi, const char *path, const json_t *j, uint32_t iter,
                           kp_file_keys *keys)
{
    const char *salt64 = json_string_value(json_object_get(j, "salt"));
    const char *check64 = json_string_value(json_object_get(j, "check"));
    uint8_t *salt = NULL, *check = NULL;
    uint8_t plain[S_CHECK_LEN];
    size_t saltlen = 0, checklen = 0;
    kp_status st = KP_OK;

    if (!s_field(salt64, &salt, &saltlen) || saltlen < KP_FILE_SALT_LEN || saltlen > 64 ||
        !s_field(check64, &check, &checklen) || checklen != S_CHECK_SEALED)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s: bad salt or check value", path);
    if (st == KP_OK)
        st = kp_file_pbkdf2(fi, fi->pass, salt, saltlen, iter, &keys->values);
    if (st == KP_OK) {
        st = kp_file_gcm_open(fi, keys->values, NULL, 0, check, checklen, plain);
        if (st == KP_OK && CRYPTO_memcmp(plain, KP_FILE_CHECK_TEXT, S_CHECK_LEN) != 0)
            st = KP_ERR_INTEGRITY;
        if (st == KP_ERR_INTEGRITY) /* GCM cannot tell a wrong key from a changed value */
            st = s_wrong_pass(fi);
    }
    keys->magic = "KPS1";
    keys->p8_iter = iter;
    free(salt);
    free(check);
    return st;
}

/* Format 2: the store key opened with the passphrase (the one PBKDF2), checked against the
 * check value derived from it; the values key is derived from it too. */
static kp_status s_open_v2(kp_file_inst *fi, const char *path, const json_t *j, uint32_t iter,
                           kp_file_keys *keys)
{
    const char *sk64 = json_string_value(json_object_get(j, "store_key"));
    const char *check64 = json_string_value(json_object_get(j, "check"));
    uint8_t *sealed = NULL, *check = NULL;
    size_t sealedlen = 0, checklen = 0;
    kp_secret *want = NULL;
    kp_status st = KP_OK;

    if (!s_field(sk64, &sealed, &sealedlen) || !s_field(check64, &check, &checklen) ||
        checklen != KP_FILE_KEY_LEN)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s: bad store key or check value", path);
    if (st == KP_OK) {
        st = kp_file_sk_open(fi, fi->pass, iter, sealed, sealedlen, &keys->p8_pass);
        if (st == KP_ERR_INTEGRITY)
            st = kp_file_err(fi, st, "%s: bad store key", path);
        else if (st == KP_ERR_AUTH)
            st = s_wrong_pass(fi);
    }
    if (st == KP_OK)
        st = kp_file_sk_derive(fi, keys->p8_pass, KP_FILE_SK_CHECK, &want);
    if (st == KP_OK && CRYPTO_memcmp(fi->up->secret_cdata(want), check, checklen) != 0)
        st = s_wrong_pass(fi); /* a padding that happened to fit: another passphrase */
    if (st == KP_OK)
        st = kp_file_sk_derive(fi, keys->p8_pass, KP_FILE_SK_VALUES, &keys->values);
    keys->magic = "KPS2";
    keys->p8_iter = KP_FILE_P8_ITER_SK;
    fi->up->secret_free(want);
    free(sealed);
    free(check);
    return st;
}

/* Opens the header j (read from path) with the passphrase. */
static kp_status s_open(kp_file_inst *fi, const char *path, const json_t *j, kp_file_keys **out)
{
    const char *format = json_string_value(json_object_get(j, "format"));
    const char *kdf = json_string_value(json_object_get(j, "kdf"));
    json_t *jver = json_object_get(j, "version");
    json_t *jiter = json_object_get(j, "iterations");
    kp_file_keys *keys;
    kp_status st;

    *out = NULL;
    if (format == NULL || strcmp(format, KP_FILE_HEADER_FORMAT) != 0)
        return kp_file_err(fi, KP_ERR_INTEGRITY, "%s is not a keyplane file store", path);
    if (!json_is_integer(jver) || json_integer_value(jver) < 1 || json_integer_value(jver) > 2)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED,
                           "%s: unsupported store version (this keyplane reads 1 and 2)", path);
    if (kdf == NULL || strcmp(kdf, "pbkdf2-sha256") != 0)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED, "%s: unsupported kdf", path);
    if (!json_is_integer(jiter) || json_integer_value(jiter) < KP_FILE_KDF_MIN ||
        json_integer_value(jiter) > KP_FILE_KDF_MAX)
        return kp_file_err(fi, KP_ERR_INTEGRITY, "%s: iterations out of range", path);
    if ((keys = calloc(1, sizeof(*keys))) == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory opening %s", path);
    keys->format = (int)json_integer_value(jver);
    uint32_t iter = (uint32_t)json_integer_value(jiter);
    st =
        keys->format == 1 ? s_open_v1(fi, path, j, iter, keys) : s_open_v2(fi, path, j, iter, keys);
    if (st == KP_OK)
        *out = keys;
    else
        kp_file_keys_free(fi, keys);
    return st;
}

/* A new store key, sealed under the passphrase, and the header's JSON text (malloc'ed) holding
 * it; *keys what the header opens to. */
static kp_status s_new(kp_file_inst *fi, const char *path, char **text, kp_file_keys **out)
{
    const kp_file_up *up = fi->up;
    uint8_t raw[KP_FILE_SK_LEN], sealed[KP_FILE_SK_SEALED];
    char hex[KP_FILE_SK_HEX + 1];
    char *sk64 = NULL, *check64 = NULL;
    kp_secret *check = NULL;
    json_t *j = NULL;
    kp_file_keys *keys = calloc(1, sizeof(*keys));
    kp_status st = keys != NULL ? kp_file_random(fi, raw, sizeof(raw)) : KP_ERR_NOMEM;

    *out = NULL;
    if (st == KP_OK) {
        kpk_hex_encode(raw, sizeof(raw), hex);
        keys->format = S_FORMAT;
        keys->magic = "KPS2";
        keys->p8_iter = KP_FILE_P8_ITER_SK;
        if ((keys->p8_pass = kp_secret_dup(up, hex, KP_FILE_SK_HEX)) == NULL)
            st = KP_ERR_NOMEM;
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    if (st == KP_OK)
        st = kp_file_sk_seal(fi, fi->pass, fi->kdf_iter, keys->p8_pass, sealed);
    if (st == KP_OK)
        st = kp_file_sk_derive(fi, keys->p8_pass, KP_FILE_SK_CHECK, &check);
    if (st == KP_OK)
        st = kp_file_sk_derive(fi, keys->p8_pass, KP_FILE_SK_VALUES, &keys->values);
    if (st == KP_OK)
        st = kpk_b64_encode_alloc(sealed, sizeof(sealed), false, &sk64);
    if (st == KP_OK)
        st = kpk_b64_encode_alloc(up->secret_cdata(check), KP_FILE_KEY_LEN, false, &check64);
    if (st == KP_OK)
        j = json_pack("{s:s, s:i, s:s, s:I, s:s, s:s}", "format", KP_FILE_HEADER_FORMAT, "version",
                      S_FORMAT, "kdf", "pbkdf2-sha256", "iterations", (json_int_t)fi->kdf_iter,
                      "store_key", sk64, "check", check64);
    if (st == KP_OK && (j == NULL || (*text = json_dumps(j, JSON_INDENT(2))) == NULL))
        st = KP_ERR_NOMEM;
    if (st == KP_ERR_NOMEM)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory creating %s", path);
    if (st == KP_OK) {
        *out = keys;
        keys = NULL;
    }
    if (keys != NULL)
        kp_file_keys_free(fi, keys);
    up->secret_free(check);
    free(sk64);
    free(check64);
    json_decref(j);
    return st;
}

/* Writes a new header; KP_ERR_EXISTS (no text) when another writer was first. */
static kp_status s_create(kp_file_inst *fi, const char *path, kp_file_keys **keys)
{
    char *text = NULL;
    kp_status st = kp_file_mkdirs(fi, fi->dir);

    *keys = NULL;
    if (st == KP_OK)
        st = s_new(fi, path, &text, keys);
    if (st == KP_OK)
        st = kp_file_write_atomic(fi, path, text, strlen(text), true);
    if (st != KP_OK) {
        kp_file_keys_free(fi, *keys);
        *keys = NULL;
    }
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

static kp_status s_derive(kp_file_inst *fi, kp_file_keys **keys)
{
    char path[KP_FILE_PATH_MAX];
    json_t *j;
    kp_status st = KP_OK;

    KP_GUARD(s_header_path(fi, path, sizeof(path)));
    KP_GUARD(kp_file_json_read(fi, path, &j));
    st = s_open(fi, path, j, keys);
    json_decref(j);
    return st;
}

kp_status kp_file_unlock(kp_file_inst *fi, const kp_file_keys **keys)
{
    kp_status st = KP_OK;

    *keys = NULL;
    /* Every time, not only before the first derivation: a store moved away after it was opened
     * is unreachable too, and nothing may be written where it was. */
    KP_GUARD(kp_file_ready(fi));
    /* Held across the PBKDF2 so concurrent first users derive once, not once each. */
    pthread_mutex_lock(&fi->lock);
    if (fi->keys == NULL)
        st = s_derive(fi, &fi->keys);
    if (st == KP_OK)
        *keys = fi->keys;
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
    kp_file_keys *keys = NULL;
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
        st = s_create(fi, path, &keys);
    if (st == KP_OK && fi->keys == NULL) {
        fi->keys = keys;
        keys = NULL;
    }
    pthread_mutex_unlock(&fi->lock);
    kp_file_keys_free(fi, keys);
    if (st == KP_ERR_EXISTS) /* there before us, or another INIT won the race */
        return kp_file_err(fi, KP_ERR_EXISTS, "file store %s is already initialised", fi->dir);
    if (st == KP_OK)
        kp_logf(fi->up, fi->h, KP_LOG_INFO, "initialised file store %s", fi->dir);
    return st;
}
