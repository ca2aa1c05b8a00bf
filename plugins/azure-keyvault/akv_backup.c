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

kp_status kp_akv_ks_backup(void *inst, const char *name, kp_secret **blob)
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && blob != NULL, KP_ERR_INVALID_ARG);
    char vname[KP_NAME_MAX], path[KP_AKV_URL_MAX];
    kp_akv_resp r;
    kp_akv_begin(a, false);
    kp_status st = kp_akv_vault_name(a, name, vname);
    if (st == KP_OK) {
        snprintf(path, sizeof(path), "/keys/%s/backup", vname);
        st = kp_akv_call(a, "POST", path, NULL, 0, 0, "backup", &r);
    }
    if (st == KP_ERR_NOT_FOUND)
        st = kp_akv_err(a, st, "%s: backup: key %s not found", a->place.vault_name, vname);
    if (st == KP_OK)
        st = kp_akv_resp_value(a, &r, S_MAX_BACKUP, "backup", blob);
    pthread_mutex_unlock(&a->lock);
    return st;
}

/* {"value":"<blob in base64url>"}, the body of a restore (malloc'd; NULL when out of memory). */
static char *s_restore_body(kp_akv_inst *a, const kp_secret *blob, size_t *len)
{
    size_t n = a->up->secret_len(blob);
    char *body = malloc(kpk_b64_encoded_size(n) + 16);
    if (body == NULL)
        return NULL;
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): the value and "}\0 follow */
    memcpy(body, "{\"value\":\"", 10);
    size_t m = kpk_b64url_encode(a->up->secret_cdata(blob), n, body + 10);
    memcpy(body + 10 + m, "\"}", 3);
    *len = 12 + m;
    return body;
}

/* The keyplane name of a restored vault key: without the prefix when it is a keyplane key of
 * this prefix. */
static void s_restored_name(const kp_akv_inst *a, const kp_akv_bundle *b, char name[KP_NAME_MAX])
{
    size_t pl = strlen(a->place.key_prefix);
    if (b->tag_chain[0] != '\0' && strncmp(b->name, a->place.key_prefix, pl) == 0)
        snprintf(name, KP_NAME_MAX, "%s", b->name + pl);
    else
        snprintf(name, KP_NAME_MAX, "%s", b->name);
}

kp_status kp_akv_ks_restore(void *inst, const kp_secret *blob, char name[KP_NAME_MAX])
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && blob != NULL && name != NULL && a->up->secret_len(blob) != 0,
              KP_ERR_INVALID_ARG);
    size_t n = a->up->secret_len(blob), len = 0;
    if (n > S_MAX_BACKUP)
        return kp_akv_err(a, KP_ERR_INVALID_ARG, "backup blob of %zu bytes is too large", n);
    char *body = s_restore_body(a, blob, &len);
    if (body == NULL)
        return kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    kp_akv_bundle b;
    memset(&b, 0, sizeof(b));
    kp_akv_begin(a, false);
    kp_status st =
        kp_akv_make_bundle(a, "POST", "/keys/restore", (const uint8_t *)body, len, "restore", &b);
    if (st == KP_OK) {
        s_restored_name(a, &b, name);
        kp_akv_key_forget(a, name);
    }
    kp_akv_bundle_clear(&b);
    pthread_mutex_unlock(&a->lock);
    free(body);
    return st;
}
