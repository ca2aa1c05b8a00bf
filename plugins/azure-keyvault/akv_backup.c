/*
 * Key Vault's own backup and restore (Key Vault REST reference, backup/restore): POST
 * /keys/{name}/backup returns an opaque blob with every version, restorable only into a vault of
 * the same geography; POST /keys/restore brings it back with the original versions and ids, and
 * refuses when the name exists. keyplane stores the blob as a secret and never looks inside.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "akv_internal.h"

#define S_MAX_BACKUP (4 * 1024 * 1024)

kp_status akv_ks_backup(void *inst, const char *name, kp_secret **blob)
{
    akv_inst *a = inst;
    if (a == NULL || name == NULL || blob == NULL)
        return KP_ERR_INVALID_ARG;
    char vname[KP_NAME_MAX], path[KP_AKV_URL_MAX];
    akv_resp r;
    pthread_mutex_lock(&a->lock);
    kp_status st = akv_vault_name(a, name, vname);
    snprintf(path, sizeof(path), "/keys/%s/backup", vname);
    if (st == KP_OK)
        st = akv_call(a, "POST", path, NULL, 0, 0, "backup", &r);
    if (st == KP_ERR_NOT_FOUND)
        st = akv_err(a, st, "%s: backup: key %s not found", a->vault_name, vname);
    if (st == KP_OK)
        st = akv_resp_value(a, &r, S_MAX_BACKUP, "backup", blob);
    pthread_mutex_unlock(&a->lock);
    return st;
}

kp_status akv_ks_restore(void *inst, const kp_secret *blob, char name[KP_NAME_MAX])
{
    akv_inst *a = inst;
    if (a == NULL || blob == NULL || name == NULL || a->up->secret_len(blob) == 0)
        return KP_ERR_INVALID_ARG;
    size_t n = a->up->secret_len(blob);
    if (n > S_MAX_BACKUP)
        return akv_err(a, KP_ERR_INVALID_ARG, "backup blob of %zu bytes is too large", n);
    char err[KP_AKV_ERR];
    size_t cap = kpk_b64_encoded_size(n) + 16;
    char *body = malloc(cap);
    if (body == NULL)
        return akv_err(a, KP_ERR_NOMEM, "out of memory");
    memcpy(body, "{\"value\":\"", 10);
    size_t m = kpk_b64url_encode(a->up->secret_cdata(blob), n, body + 10);
    memcpy(body + 10 + m, "\"}", 3);
    akv_resp r;
    akv_bundle b;
    memset(&b, 0, sizeof(b));
    pthread_mutex_lock(&a->lock);
    kp_status st = akv_call(a, "POST", "/keys/restore", (const uint8_t *)body, 12 + m, AKV_UNSAFE,
                            "restore", &r);
    if (st == KP_ERR_NOT_FOUND)
        st = akv_err(a, st, "%s: restore: HTTP 404", a->vault_name);
    if (st == KP_OK) {
        st = akv_parse_bundle(r.http.body, r.http.len, &b, err, sizeof(err));
        akv_resp_free(&r);
        size_t pl = strlen(a->key_prefix);
        if (st != KP_OK)
            st = akv_err(a, st, "%s: restore: %s", a->vault_name, err);
        else if (b.tag_chain[0] != '\0' && strncmp(b.name, a->key_prefix, pl) == 0)
            snprintf(name, KP_NAME_MAX, "%s", b.name + pl);
        else
            snprintf(name, KP_NAME_MAX, "%s", b.name);
        if (st == KP_OK)
            akv_key_forget(a, name);
    }
    akv_bundle_clear(&b);
    pthread_mutex_unlock(&a->lock);
    free(body);
    return st;
}
