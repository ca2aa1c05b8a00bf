/*
 * The envelope of an S3 client-side-encrypted backup (backup_meta.c): its metadata fields, the
 * plan of its decryption, and the JSON sidecar of a local backup.
 */
#ifndef KP_CLI_BACKUP_META_H
#define KP_CLI_BACKUP_META_H

#include <jansson.h>

#include "backup.h"

#define KP_BK_CBC "AES/CBC/PKCS5Padding"
#define KP_BK_GCM "AES/GCM/NoPadding"
#define KP_BK_CEK_CONTEXT "aws:x-amz-cek-alg" /* kms+context: the matdesc holds x-amz-cek-alg */
#define KP_BK_SIDECAR "s3-cse"                /* the sidecar's "format" */
#define KP_BK_CONTEXT_MAX 16
#define KP_BK_RECORD ".keyplane.json" /* the integrity record beside an object: KEY + this */

typedef enum kp_cli_bk_field {
    KP_BK_F_KEY,
    KP_BK_F_KEY_V2,
    KP_BK_F_IV,
    KP_BK_F_MATDESC,
    KP_BK_F_WRAP,
    KP_BK_F_CEK,
    KP_BK_F_TAG_LEN,
    KP_BK_F_PLAIN_LEN,
    KP_BK_F_ENVELOPE,
    KP_BK_F_MAC,
    KP_BK_F_COUNT
} kp_cli_bk_field;

/* The envelope's fields by name (the metadata key without x-amz-meta-); NULL when absent. */
typedef struct kp_cli_bk_fields {
    char *v[KP_BK_F_COUNT];
} kp_cli_bk_fields;

const char *kp_cli_bk_field_name(kp_cli_bk_field f);
void kp_cli_bk_fields_free(kp_cli_bk_fields *f);
/* Keeps value when name is one of the fields (others are ignored). */
kp_status kp_cli_bk_fields_set(kp_cli_bk_fields *f, const char *name, const char *value);
/* A kp_meta_visit_fn filling the kp_cli_bk_fields at arg. */
kp_status kp_cli_bk_fields_visit(void *arg, const kp_meta *meta, size_t nmeta);
/* The fields of a new backup: blob (KMS's CiphertextBlob) under both key names, iv, matdesc
 * {"kms_cmk_id": kms_key}, kms, CBC, the plaintext's length, envelope (may be NULL). */
kp_status kp_cli_bk_fields_make(kp_cli_bk_fields *f, const uint8_t *blob, size_t bloblen,
                                const uint8_t iv[16], const char *kms_key, uint64_t plain_len,
                                const char *envelope);
/* The fields present as metadata pairs into meta (KP_BK_F_COUNT of room, borrowing f's
 * strings); returns how many. */
size_t kp_cli_bk_fields_meta(const kp_cli_bk_fields *f, kp_meta *meta);

/* How to open a backup, from its fields. */
typedef struct kp_cli_bk_plan {
    kp_cli_bk_mode mode;
    uint8_t *blob; /* the KMS ciphertext of the data key */
    size_t bloblen;
    uint8_t iv[16];
    size_t ivlen;
    json_t *matdesc; /* owns the context's strings */
    kp_meta context[KP_BK_CONTEXT_MAX];
    size_t ncontext;
    char *key_id;         /* matdesc's kms_cmk_id, "" when it names none (shown, not asked:
                             KMS finds the key a ciphertext names) */
    long long plain_len;  /* x-amz-unencrypted-content-length, -1 when absent */
    const char *envelope; /* keyplane-envelope, borrowed from the fields; NULL when absent */
    bool has_mac;         /* keyplane-mac: the GMAC of the IV and the ciphertext */
    uint8_t mac[KP_BK_MAC];
} kp_cli_bk_plan;

/* The key of a backup's GMAC: HKDF-SHA256 of the data key ("keyplane backup mac v1"). */
kp_status kp_cli_bk_mac_key(const kp_secret *dek, uint8_t key[32]);
/* Sets the keyplane-mac field to the base64 of mac. */
kp_status kp_cli_bk_fields_set_mac(kp_cli_bk_fields *f, const uint8_t mac[KP_BK_MAC]);
/* KP_OK when the record's fields (a sidecar) describe the same encryption as the object's:
 * the same data key ciphertext and IV; else KP_ERR_INTEGRITY with err. */
kp_status kp_cli_bk_fields_same(const kp_cli_bk_fields *obj, const kp_cli_bk_fields *rec, char *err,
                                size_t errlen);

/* KP_OK, or KP_ERR_INTEGRITY (KP_ERR_NOMEM) with err saying what the fields lack. */
kp_status kp_cli_bk_plan_make(const kp_cli_bk_fields *f, kp_cli_bk_plan *p, char *err,
                              size_t errlen);
void kp_cli_bk_plan_free(kp_cli_bk_plan *p);

/* The sidecar {"format": "s3-cse", "metadata": {...}} of f (caller frees *text), and back. */
kp_status kp_cli_bk_sidecar_text(const kp_cli_bk_fields *f, char **text);
kp_status kp_cli_bk_sidecar_read(const char *text, size_t len, kp_cli_bk_fields *f, char *err,
                                 size_t errlen);

#endif
