/*
 * The chain-state document of a key (KS_STATE_GET / KS_STATE_PUT): keys/<name>/state.json,
 * replaced atomically. Its content belongs to the core; this file only keeps it.
 */
#include <string.h>

#include "file_internal.h"

static kp_status s_path(kp_file_inst *fi, const char *name, char *buf, size_t size)
{
    kp_status st = kp_file_check_name(fi, "key", name);
    if (st != KP_OK)
        return st;
    return kp_file_path(fi, buf, size, "%s/keys/%s/state.json", fi->path, name);
}

kp_status kp_file_ks_state_get(void *inst, const char *name, uint8_t *doc, size_t *len)
{
    kp_file_inst *fi = inst;
    char path[KP_FILE_PATH_MAX];
    uint8_t *data = NULL;
    size_t n = 0;
    kp_status st;

    if (len == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "state_get: len is NULL");
    if ((st = s_path(fi, name, path, sizeof(path))) != KP_OK ||
        (st = kp_file_read(fi, path, KP_STATE_MAX, &data, &n)) != KP_OK)
        return st;
    if (doc == NULL || *len < n)
        st = kp_file_err(fi, KP_ERR_BUFFER_TOO_SMALL, "state document needs %zu bytes", n);
    else
        memcpy(doc, data, n);
    *len = n;
    free(data);
    return st;
}

kp_status kp_file_ks_state_put(void *inst, const char *name, const uint8_t *doc, size_t len)
{
    kp_file_inst *fi = inst;
    char path[KP_FILE_PATH_MAX], dir[KP_FILE_PATH_MAX];
    kp_status st;

    if (doc == NULL || len == 0 || len > KP_STATE_MAX)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "state document of %zu bytes", len);
    if ((st = s_path(fi, name, path, sizeof(path))) != KP_OK ||
        (st = kp_file_path(fi, dir, sizeof(dir), "%s/keys/%s", fi->path, name)) != KP_OK ||
        (st = kp_file_mkdirs(fi, dir)) != KP_OK)
        return st;
    return kp_file_write_atomic(fi, path, doc, len, false);
}
