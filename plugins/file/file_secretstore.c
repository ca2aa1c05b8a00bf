/*
 * Secret store of the file plugin: secrets/<name>/<N>/{value.enc, meta.json}.
 *
 * value.enc = magic | IV (12) | AES-256-GCM ciphertext | tag (16) under the values key, with
 * "<name>/<version>" as AAD so a value moved to another name or version fails authentication.
 * The magic says which key: "KPS2" the one derived from a format 2 store key, "KPS1" a format 1
 * store's master key (kp_file_keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "file_internal.h"

#define S_MAGIC_LEN 4
#define S_META_MAX 32     /* pairs per version */
#define S_META_KEY_MAX 64 /* bytes */
#define S_META_VALUE_MAX 1024

typedef struct s_put {
    const char *name;
    const kp_secret *value;
    const kp_meta *meta;
    size_t nmeta;
    const kp_file_keys *keys;
    int64_t created;
} s_put;

static kp_status s_check_meta(kp_file_inst *fi, const kp_meta *meta, size_t nmeta)
{
    if (nmeta > 0 && meta == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "metadata is NULL");
    if (nmeta > S_META_MAX)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "more than %d metadata pairs", S_META_MAX);
    for (size_t i = 0; i < nmeta; i++) {
        const char *k = meta[i].key, *v = meta[i].value;
        size_t klen = k != NULL ? strlen(k) : 0;
        if (klen == 0 || klen > S_META_KEY_MAX ||
            strspn(k, "abcdefghijklmnopqrstuvwxyz"
                      "0123456789_.-") != klen)
            return kp_file_err(fi, KP_ERR_INVALID_ARG, "metadata key #%zu: use 1-%d of [a-z0-9_.-]",
                               i + 1, S_META_KEY_MAX);
        if (v == NULL || strlen(v) > S_META_VALUE_MAX)
            return kp_file_err(fi, KP_ERR_INVALID_ARG,
                               "metadata %s: value missing or over %d bytes", k, S_META_VALUE_MAX);
        /* Printable: no control characters; UTF-8 validity is checked by json_string(). */
        for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
            if (*p < 0x20 || *p == 0x7f)
                return kp_file_err(fi, KP_ERR_INVALID_ARG,
                                   "metadata %s: value has control characters", k);
        for (size_t j = 0; j < i; j++)
            if (strcmp(meta[j].key, k) == 0)
                return kp_file_err(fi, KP_ERR_INVALID_ARG, "metadata %s: given twice", k);
    }
    return KP_OK;
}

static kp_status s_fill(kp_file_inst *fi, const char *dir, uint32_t version, void *arg)
{
    const s_put *sp = arg;
    const kp_file_up *up = fi->up;
    size_t len = up->secret_len(sp->value), enclen = S_MAGIC_LEN + len + KP_FILE_GCM_OVERHEAD;
    char path[KP_FILE_PATH_MAX], aad[KP_NAME_MAX + 16];
    json_t *j = NULL, *jm;
    uint8_t *enc;
    kp_status st = KP_OK;

    snprintf(aad, sizeof(aad), "%s/%u", sp->name, version);
    if ((enc = malloc(enclen)) == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory storing secret %s", sp->name);
    memcpy(enc, sp->keys->magic, S_MAGIC_LEN);
    st = kp_file_gcm_seal(fi, sp->keys->values, aad, strlen(aad), up->secret_cdata(sp->value), len,
                          enc + S_MAGIC_LEN);
    if (st == KP_OK)
        st = kp_file_path(fi, path, sizeof(path), "%s/value.enc", dir);
    if (st == KP_OK)
        st = kp_file_write_new(fi, path, enc, enclen);
    free(enc); /* ciphertext only */
    KP_GUARD(st);

    if ((jm = json_object()) == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory storing secret %s", sp->name);
    for (size_t i = 0; st == KP_OK && i < sp->nmeta; i++) {
        json_t *v = json_string(sp->meta[i].value);
        if (v == NULL) /* not UTF-8 */
            st = kp_file_err(fi, KP_ERR_INVALID_ARG, "metadata %s: value is not UTF-8 text",
                             sp->meta[i].key);
        else
            json_object_set_new(jm, sp->meta[i].key, v);
    }
    if (st == KP_OK) {
        /* "o" takes jm over, made or not */
        j = json_pack("{s:s, s:I, s:I, s:I, s:o}", "name", sp->name, "version", (json_int_t)version,
                      "created", (json_int_t)sp->created, "size", (json_int_t)len, "meta", jm);
        jm = NULL;
        if (j == NULL)
            st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory storing secret %s", sp->name);
    }
    if (st == KP_OK)
        st = kp_file_path(fi, path, sizeof(path), "%s/meta.json", dir);
    if (st == KP_OK)
        st = kp_file_json_write_new(fi, path, j);
    json_decref(jm);
    json_decref(j);
    return st;
}

kp_status kp_file_ss_put(void *inst, const char *name, const kp_secret *value, const kp_meta *meta,
                         size_t nmeta, uint32_t *version)
{
    kp_file_inst *fi = inst;
    char parent[KP_FILE_PATH_MAX];
    s_put sp = {name, value, meta, nmeta, NULL, (int64_t)time(NULL)};

    KP_GUARD(kp_file_object_dir(fi, "secret", name, parent, sizeof(parent)));
    if (value == NULL || version == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "put: value or version is NULL");
    if (fi->up->secret_len(value) > KP_FILE_SECRET_MAX)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "secret %s: value larger than %u bytes", name,
                           KP_FILE_SECRET_MAX);
    KP_GUARD(s_check_meta(fi, meta, nmeta));
    KP_GUARD(kp_file_unlock(fi, &sp.keys)); /* KP_ERR_UNAVAILABLE when not initialised */
    KP_GUARD(kp_file_commit_version(fi, parent, 0, s_fill, &sp, version));
    kp_logf(fi->up, fi->h, KP_LOG_DEBUG, "stored secret %s v%u in %s", name, *version, fi->dir);
    return KP_OK;
}

/* One version's meta.json: info, and pairs borrowed from *j (decref it after use). */
static kp_status s_read_meta(kp_file_inst *fi, const char *dir, const char *name, uint32_t version,
                             kp_secret_info *info, json_t **j, kp_meta **pairs, size_t *n)
{
    char path[KP_FILE_PATH_MAX];
    const char *jname, *key;
    json_t *jm, *v, *size, *created;
    size_t i = 0;
    kp_status st = KP_OK;
    bool ok;

    *j = NULL;
    *pairs = NULL;
    *n = 0;
    memset(info, 0, sizeof(*info));
    KP_GUARD(kp_file_path(fi, path, sizeof(path), "%s/%u/meta.json", dir, version));
    KP_GUARD(kp_file_json_read(fi, path, j));
    jname = json_string_value(json_object_get(*j, "name"));
    size = json_object_get(*j, "size");
    created = json_object_get(*j, "created");
    jm = json_object_get(*j, "meta");
    ok = jname != NULL && strcmp(jname, name) == 0 &&
         json_integer_value(json_object_get(*j, "version")) == (json_int_t)version &&
         json_is_integer(size) && json_integer_value(size) >= 0 &&
         json_integer_value(size) <= KP_FILE_SECRET_MAX && json_is_integer(created) &&
         (jm == NULL || json_is_object(jm));
    if (ok && json_object_size(jm) > 0 &&
        (*pairs = calloc(json_object_size(jm), sizeof(**pairs))) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory reading %s", path);
    if (*pairs != NULL) {
        json_object_foreach(jm, key, v)
        {
            ok = ok && json_is_string(v);
            if (ok)
                (*pairs)[i++] = (kp_meta){.key = key, .value = json_string_value(v)};
        }
    }
    if (st == KP_OK && !ok)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s is inconsistent", path);
    if (st == KP_OK) {
        snprintf(info->name, sizeof(info->name), "%s", name);
        info->version = version;
        info->created = (int64_t)json_integer_value(created);
        info->size = (uint64_t)json_integer_value(size);
        *n = i;
    } else {
        free(*pairs);
        *pairs = NULL;
        json_decref(*j);
        *j = NULL;
    }
    return st;
}

static kp_status s_decrypt(kp_file_inst *fi, const char *dir, const char *name, uint32_t version,
                           uint64_t size, kp_secret **value)
{
    const kp_file_up *up = fi->up;
    char path[KP_FILE_PATH_MAX], aad[KP_NAME_MAX + 16];
    const kp_file_keys *keys;
    kp_secret *plain = NULL;
    uint8_t *enc;
    size_t len;
    kp_status st = KP_OK;

    KP_GUARD(kp_file_unlock(fi, &keys));
    KP_GUARD(kp_file_path(fi, path, sizeof(path), "%s/%u/value.enc", dir, version));
    KP_GUARD(kp_file_read(fi, path, S_MAGIC_LEN + KP_FILE_SECRET_MAX + KP_FILE_GCM_OVERHEAD, &enc,
                          &len));
    /* Another length or no magic fails like a changed value: KP_ERR_INTEGRITY. */
    if (len != S_MAGIC_LEN + size + KP_FILE_GCM_OVERHEAD ||
        memcmp(enc, keys->magic, S_MAGIC_LEN) != 0)
        st = KP_ERR_INTEGRITY;
    else if ((plain = up->secret_new((size_t)size)) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory reading secret %s", name);
    if (st == KP_OK) {
        snprintf(aad, sizeof(aad), "%s/%u", name, version);
        st = kp_file_gcm_open(fi, keys->values, aad, strlen(aad), enc + S_MAGIC_LEN,
                              len - S_MAGIC_LEN, up->secret_data(plain));
    }
    if (st == KP_ERR_INTEGRITY) /* kp_file_gcm_open sets no text for it */
        st = kp_file_err(fi, st, "secret %s v%u failed authentication", name, version);
    free(enc); /* ciphertext only */
    if (st == KP_OK) {
        *value = plain;
        plain = NULL;
    }
    up->secret_free(plain);
    return st;
}

kp_status kp_file_ss_get(void *inst, const char *name, uint32_t version, kp_secret **value,
                         kp_secret_visit_fn visit, void *arg)
{
    kp_file_inst *fi = inst;
    char dir[KP_FILE_PATH_MAX];
    kp_secret_info info;
    kp_secret *plain = NULL;
    kp_meta *pairs;
    json_t *j;
    size_t n;
    kp_status st = KP_OK;

    if (value == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "get: value is NULL");
    *value = NULL;
    KP_GUARD(kp_file_ready(fi));
    KP_GUARD(kp_file_object(fi, "secret", name, &version, dir, sizeof(dir)));
    KP_GUARD(s_read_meta(fi, dir, name, version, &info, &j, &pairs, &n));
    st = s_decrypt(fi, dir, name, version, info.size, &plain);
    if (st == KP_OK && visit != NULL)
        st = visit(arg, &info, pairs, n);
    free(pairs);
    json_decref(j);
    if (st == KP_OK) {
        *value = plain;
        plain = NULL;
    }
    fi->up->secret_free(plain);
    return st;
}

typedef struct s_visitor {
    kp_secret_visit_fn visit;
    void *arg;
} s_visitor;

static kp_status s_visit_version(kp_file_inst *fi, const char *name, const char *objdir,
                                 uint32_t version, void *arg, bool *broken)
{
    const s_visitor *v = arg;
    kp_secret_info info;
    kp_meta *pairs;
    json_t *j;
    size_t n;
    kp_status st = s_read_meta(fi, objdir, name, version, &info, &j, &pairs, &n);

    *broken = st != KP_OK;
    KP_GUARD(st);
    st = v->visit(v->arg, &info, pairs, n);
    free(pairs);
    json_decref(j);
    return st;
}

kp_status kp_file_ss_list(void *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    kp_file_inst *fi = inst;
    s_visitor v = {visit, arg};

    if (visit == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "list: visit is NULL");
    /* a store that is not there is unreachable: never "holds no secret" (KP_ERR_NOT_FOUND) */
    KP_GUARD(kp_file_ready(fi));
    return kp_file_list(fi, "secret", name, s_visit_version, &v);
}
