/*
 * keyplane provider ABI, version 1.
 *
 * This is the only header a plugin must include. A plugin is a shared object that exports one
 * symbol, kp_plugin_init(). The core and the plugin exchange dispatch tables: arrays of
 * {function id, function pointer} ending with {0, NULL}. The core hands the plugin its upcalls
 * (log, audit, error, secret memory); the plugin hands the core its functions.
 *
 * Rules (docs/abi.md explains them at length):
 *  - Function ids are never reused or renumbered. New behaviour gets a new id. Unknown ids in a
 *    table are ignored by both sides.
 *  - A plugin declares capabilities in its kp_plugin_info. For each declared capability the
 *    mandatory ids below must be present, or the loader refuses the plugin.
 *  - Structs that may grow carry struct_size as their first member; readers check it before
 *    touching a member appended later.
 *  - Memory crossing the boundary is freed by the side that allocated it. Secrets (kp_secret)
 *    are always allocated and freed by the core, through the upcalls.
 *  - Every function returns a kp_status. On failure the plugin should call the SET_ERROR upcall
 *    with a one-line reason (no secrets in it) and return the same status.
 *
 * Each function type below is declared with KP_ABI_FUNC(), which makes a typedef
 * kp_<name>_fn and a typed extractor kp_dispatch_<name>() so both sides keep type checking
 * (the shape of OpenSSL's OSSL_CORE_MAKE_FUNC).
 */
#ifndef KEYPLANE_PROVIDER_H
#define KEYPLANE_PROVIDER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <keyplane/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** ABI version. A plugin built for another major is refused; a plugin that needs a newer
 *  minor than the core offers is refused. */
#define KP_ABI_MAJOR 1
#define KP_ABI_MINOR 0

/** The symbol every plugin exports. */
#define KP_PLUGIN_INIT_SYMBOL "kp_plugin_init"

#if defined(__GNUC__)
#define KP_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define KP_PLUGIN_EXPORT
#endif

/* ---------------------------------------------------------------------------------------- */
/* Opaque core types                                                                         */

/** A handle the core gives to a plugin (one per plugin, one per instance). It identifies
 *  whose log lines, audit events and error text an upcall produces. Owned by the core; valid
 *  until the matching teardown/close returns. */
typedef struct kp_core_handle kp_core_handle;

/** Secret bytes. Allocated and freed only by the core (upcalls below); wiped when freed. */
typedef struct kp_secret kp_secret;

/* ---------------------------------------------------------------------------------------- */
/* Dispatch tables                                                                           */

typedef void (*kp_fn)(void);

/** One entry of a dispatch table. A table ends with {0, NULL}. */
typedef struct kp_dispatch {
    uint32_t id;
    kp_fn fn;
} kp_dispatch;

#define KP_ABI_FUNC(type, name, args)                                                              \
    typedef type(kp_##name##_fn) args;                                                             \
    static inline kp_##name##_fn *kp_dispatch_##name(const kp_dispatch *d)                         \
    {                                                                                              \
        return (kp_##name##_fn *)d->fn;                                                            \
    }

/** Finds id in a table; NULL when absent. */
static inline const kp_dispatch *kp_dispatch_find(const kp_dispatch *table, uint32_t id)
{
    for (; table != NULL && table->id != 0; table++)
        if (table->id == id)
            return table;
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Handshake                                                                                 */

/** What the core tells a plugin in kp_plugin_init(). */
typedef struct kp_core_info {
    uint32_t struct_size;       /**< sizeof(kp_core_info) of the core; grows by appending */
    uint16_t abi_major;         /**< KP_ABI_MAJOR of the core */
    uint16_t abi_minor;         /**< KP_ABI_MINOR of the core */
    const kp_dispatch *upcalls; /**< services of the core (KP_UP_* ids); valid while loaded */
    kp_core_handle *handle;     /**< plugin-level handle for upcalls made outside an instance */
} kp_core_info;

/** Capabilities a plugin (and each of its instances) may offer. */
#define KP_CAP_KEYSTORE 0x1u    /**< holds keys it will not hand out; wraps and unwraps */
#define KP_CAP_SECRETSTORE 0x2u /**< stores versioned opaque blobs with metadata */
#define KP_CAP_DATAKEY 0x4u     /**< generates data keys and decrypts them (KMS-like) */

/** What a plugin tells about itself (KP_FN_PLUGIN_INFO). Static storage in the plugin. */
typedef struct kp_plugin_info {
    uint32_t struct_size;    /**< sizeof(kp_plugin_info) as the plugin was built */
    uint16_t abi_major;      /**< KP_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor;      /**< lowest KP_ABI_MINOR the plugin needs */
    const char *name;        /**< [a-z0-9_-]+, equal to the file name without .so */
    const char *version;     /**< the plugin's own version, e.g. "1.2.0" */
    const char *description; /**< one line */
    uint32_t capabilities;   /**< KP_CAP_* bits */
} kp_plugin_info;

/** Size of the first version of kp_plugin_info: the least the core accepts, so that members
 *  appended later do not lock out plugins built before them. */
#define KP_PLUGIN_INFO_V1_SIZE (offsetof(kp_plugin_info, capabilities) + sizeof(uint32_t))

/**
 * The plugin's entry point.
 *
 * @param core        the core's info and upcalls; valid until the plugin is unloaded.
 * @param out         receives the plugin's dispatch table (static storage in the plugin).
 * @param plugin_ctx  receives the plugin's context, passed back to plugin-level functions.
 * @return KP_OK, or an error (KP_ERR_ABI when core->abi_major is not the plugin's major). On
 *         error the core unloads the plugin without calling any other function.
 */
typedef kp_status(kp_plugin_init_fn)(const kp_core_info *core, const kp_dispatch **out,
                                     void **plugin_ctx);

/* ---------------------------------------------------------------------------------------- */
/* Upcalls: functions the core offers (ids 1..99)                                            */

/** Log levels for KP_UP_LOG. */
typedef enum kp_log_level {
    KP_LOG_ERROR = 0,
    KP_LOG_WARN = 1,
    KP_LOG_INFO = 2,
    KP_LOG_DEBUG = 3
} kp_log_level;

#define KP_UP_LOG 1
/** Logs one line (no newline needed). Never pass secrets. */
KP_ABI_FUNC(void, up_log, (kp_core_handle * h, kp_log_level level, const char *msg))

#define KP_UP_SET_ERROR 2
/** Sets the detail text of the current operation (truncated to 255 bytes) and returns
 *  status, so a plugin can write `return set_error(h, KP_ERR_IO, "...")`. Never pass secrets. */
KP_ABI_FUNC(kp_status, up_set_error, (kp_core_handle * h, kp_status status, const char *msg))

#define KP_UP_AUDIT 3
/** Adds a plugin-specific audit event (the core already audits every key operation).
 *  event is a short name ("login"), detail one line; neither may hold secrets. */
KP_ABI_FUNC(void, up_audit, (kp_core_handle * h, const char *event, const char *detail))

#define KP_UP_SECRET_NEW 4
/** Allocates a zero-filled secret of len bytes (len may be 0). NULL on out-of-memory.
 *  The caller owns it; ownership passes to the core when returned through an out-parameter. */
KP_ABI_FUNC(kp_secret *, up_secret_new, (size_t len))

#define KP_UP_SECRET_FREE 5
/** Wipes and frees a secret. NULL is a no-op. */
KP_ABI_FUNC(void, up_secret_free, (kp_secret * s))

#define KP_UP_SECRET_DATA 6
/** Borrows the writable bytes of a secret (get0). */
KP_ABI_FUNC(unsigned char *, up_secret_data, (kp_secret * s))

#define KP_UP_SECRET_CDATA 7
/** Borrows the bytes of a read-only secret (get0). */
KP_ABI_FUNC(const unsigned char *, up_secret_cdata, (const kp_secret *s))

#define KP_UP_SECRET_LEN 8
KP_ABI_FUNC(size_t, up_secret_len, (const kp_secret *s))

#define KP_UP_SECRET_SHRINK 9
/** Shrinks a secret to len bytes, wiping the tail. KP_ERR_INVALID_ARG if len is larger. */
KP_ABI_FUNC(kp_status, up_secret_shrink, (kp_secret * s, size_t len))

/** The upcalls of ABI 1.0 as typed function pointers, for plugins: fill with kp_upcalls_get. */
typedef struct kp_upcalls {
    kp_up_log_fn *log;
    kp_up_set_error_fn *set_error;
    kp_up_secret_new_fn *secret_new;
    kp_up_secret_free_fn *secret_free;
    kp_up_secret_data_fn *secret_data;
    kp_up_secret_cdata_fn *secret_cdata;
    kp_up_secret_len_fn *secret_len;
    kp_up_secret_shrink_fn *secret_shrink;
    kp_up_audit_fn *audit;
} kp_upcalls;

/** Fills up from the core's table (the typed extractors check each against its typedef).
 *  Returns 1 when every upcall is there, 0 when the core lacks one (refuse with KP_ERR_PLUGIN). */
static inline int kp_upcalls_get(const kp_core_info *core, kp_upcalls *up)
{
    const kp_dispatch *t = core != NULL ? core->upcalls : NULL, *d;
#define KP_UPCALL_(field, id, name)                                                                \
    up->field = (d = kp_dispatch_find(t, id)) != NULL ? kp_dispatch_##name(d) : NULL
    KP_UPCALL_(log, KP_UP_LOG, up_log);
    KP_UPCALL_(set_error, KP_UP_SET_ERROR, up_set_error);
    KP_UPCALL_(audit, KP_UP_AUDIT, up_audit);
    KP_UPCALL_(secret_new, KP_UP_SECRET_NEW, up_secret_new);
    KP_UPCALL_(secret_free, KP_UP_SECRET_FREE, up_secret_free);
    KP_UPCALL_(secret_data, KP_UP_SECRET_DATA, up_secret_data);
    KP_UPCALL_(secret_cdata, KP_UP_SECRET_CDATA, up_secret_cdata);
    KP_UPCALL_(secret_len, KP_UP_SECRET_LEN, up_secret_len);
    KP_UPCALL_(secret_shrink, KP_UP_SECRET_SHRINK, up_secret_shrink);
#undef KP_UPCALL_
    return up->log != NULL && up->set_error != NULL && up->audit != NULL &&
           up->secret_new != NULL && up->secret_free != NULL && up->secret_data != NULL &&
           up->secret_cdata != NULL && up->secret_len != NULL && up->secret_shrink != NULL;
}

/**
 * The checks every kp_plugin_init starts with: arguments present, a core of this ABI major, all
 * upcalls there (filled into up). Returns KP_OK, or the status to return, having told the core
 * why when it can (name is the plugin's, for that message).
 */
static inline kp_status kp_plugin_accept(const kp_core_info *core, const kp_dispatch **out,
                                         void **plugin_ctx, kp_upcalls *up, const char *name)
{
    if (core == NULL || out == NULL || plugin_ctx == NULL || up == NULL)
        return KP_ERR_INVALID_ARG;
    if (core->struct_size < offsetof(kp_core_info, handle) + sizeof(core->handle) ||
        core->abi_major != KP_ABI_MAJOR)
        return KP_ERR_ABI;
    if (!kp_upcalls_get(core, up)) {
        if (up->set_error != NULL)
            up->set_error(core->handle, KP_ERR_PLUGIN,
                          name != NULL ? name : "plugin: the core lacks an upcall");
        return KP_ERR_PLUGIN;
    }
    return KP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Parameters                                                                                */

/** Parameter types. */
typedef enum kp_param_type {
    KP_PARAM_STRING = 1, /**< any scalar */
    KP_PARAM_INT = 2,    /**< decimal integer within [min, max] */
    KP_PARAM_BOOL = 3,   /**< true/false */
    KP_PARAM_SECRET = 4, /**< a reference "env:NAME" or "file:PATH"; the core resolves it */
    KP_PARAM_PATH = 5    /**< a path; the core makes it absolute, relative to the policy */
} kp_param_type;

#define KP_PARAM_REQUIRED 0x1u

/** A parameter the plugin accepts (KP_FN_PLUGIN_PARAMS); the list ends with name == NULL. */
typedef struct kp_param_desc {
    const char *name; /**< [a-z0-9_]+ */
    uint32_t type;    /**< kp_param_type */
    uint32_t flags;   /**< KP_PARAM_REQUIRED */
    int64_t min, max; /**< bounds for KP_PARAM_INT (ignored otherwise) */
    const char *help; /**< one line, shown by `keyplane plugins --params` */
} kp_param_desc;

/** One parameter value handed to KP_FN_INSTANCE_OPEN; the array ends with name == NULL.
 *  All pointers are borrowed from the core and valid only during the open call: copy what
 *  you keep (a secret: copy its bytes into a secret of your own from KP_UP_SECRET_NEW). */
typedef struct kp_param {
    const char *name;
    uint32_t type;           /**< kp_param_type */
    const char *str;         /**< STRING, PATH: the value; SECRET: the reference (not secret) */
    int64_t num;             /**< INT; BOOL as 0/1 */
    const kp_secret *secret; /**< SECRET: the resolved bytes */
} kp_param;

/** Finds a parameter by name; NULL when the policy did not set it. */
static inline const kp_param *kp_param_find(const kp_param *params, const char *name)
{
    for (; params != NULL && params->name != NULL; params++)
        if (strcmp(params->name, name) == 0)
            return params;
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Keys                                                                                      */

#define KP_NAME_MAX 128 /**< key and secret names, including the NUL */
#define KP_FPR_HEX 65   /**< SHA-256 hex fingerprint, including the NUL */
#define KP_BACKEND_ID_MAX 256

typedef enum kp_key_type { KP_KEY_RSA = 1, KP_KEY_AES = 2 } kp_key_type;

#define KP_KEY_EXPORTABLE 0x1u /**< the key may leave the store (escrow, BYOK, replication) */

typedef enum kp_key_state { KP_KEY_ENABLED = 1, KP_KEY_DISABLED = 2 } kp_key_state;

/** Wrapping algorithms. */
typedef enum kp_wrap_alg {
    KP_WRAP_RSA_OAEP_SHA1 = 1,   /**< RSAES-OAEP, SHA-1, MGF1-SHA-1, no label */
    KP_WRAP_RSA_OAEP_SHA256 = 2, /**< RSAES-OAEP, SHA-256, MGF1-SHA-256, no label */
    KP_WRAP_RSA_PKCS1 = 3,       /**< RSAES-PKCS1-v1_5: unwrap of old data only */
    KP_WRAP_AES_KW = 4,          /**< RFC 3394 */
    KP_WRAP_AES_KWP = 5          /**< RFC 5649 */
} kp_wrap_alg;

/** What to create or import. */
typedef struct kp_key_spec {
    uint32_t struct_size; /**< sizeof(kp_key_spec) of the core */
    const char *name;     /**< key name, [A-Za-z0-9._-]{1,127} */
    uint32_t type;        /**< kp_key_type */
    uint32_t bits;        /**< RSA 2048/3072/4096, AES 128/192/256; 0 = taken from the import */
    uint32_t flags;       /**< KP_KEY_EXPORTABLE */
    uint32_t version;     /**< 0 = the next free version; else exactly this version
                               (KP_ERR_EXISTS if taken), so replicas keep one numbering */
} kp_key_spec;

/** One key version as a keystore sees it. Filled by the plugin into caller storage. */
typedef struct kp_key_info {
    char name[KP_NAME_MAX];
    uint32_t version; /**< 1, 2, ... */
    uint32_t type;    /**< kp_key_type */
    uint32_t bits;
    uint32_t flags;                     /**< KP_KEY_EXPORTABLE */
    uint32_t state;                     /**< kp_key_state */
    int64_t created;                    /**< Unix time */
    char fingerprint[KP_FPR_HEX];       /**< hex SHA-256 of the SubjectPublicKeyInfo DER (RSA) */
    char backend_id[KP_BACKEND_ID_MAX]; /**< the provider's own id (path, kid, CKA_ID) */
} kp_key_info;

/** Visitor for key listings; a non-KP_OK return stops the listing and is returned by it. */
typedef kp_status (*kp_key_visit_fn)(void *arg, const kp_key_info *info);

/* ---------------------------------------------------------------------------------------- */
/* Secrets in a secret store                                                                 */

/** A metadata pair. Keys [a-z0-9_.-]+, values printable text; never secret. */
typedef struct kp_meta {
    const char *key;
    const char *value;
} kp_meta;

typedef struct kp_secret_info {
    char name[KP_NAME_MAX];
    uint32_t version;
    int64_t created;
    uint64_t size; /**< bytes of the value */
} kp_secret_info;

/** Visitor for secret versions, with that version's metadata (borrowed for the call). */
typedef kp_status (*kp_secret_visit_fn)(void *arg, const kp_secret_info *info, const kp_meta *meta,
                                        size_t nmeta);

/** Reporter for KP_FN_INSTANCE_CHECK: one call per checked item ("directory", "login"). */
typedef void (*kp_check_report_fn)(void *arg, const char *item, kp_status status,
                                   const char *detail);

/* ---------------------------------------------------------------------------------------- */
/* Plugin functions (ids 100 and up)                                                         */

/* Plugin level --------------------------------------------------------------------------- */

#define KP_FN_PLUGIN_INFO 100 /* mandatory */
/** Returns the plugin's static description. Never NULL. */
KP_ABI_FUNC(const kp_plugin_info *, plugin_info, (void *plugin_ctx))

#define KP_FN_PLUGIN_TEARDOWN 101 /* optional */
/** Releases plugin_ctx. Called once, after every instance is closed, before dlclose. */
KP_ABI_FUNC(void, plugin_teardown, (void *plugin_ctx))

#define KP_FN_PLUGIN_PARAMS 102 /* mandatory */
/** Returns the parameters an instance accepts (static, ends with name == NULL). The core
 *  rejects a policy that sets an unknown parameter (unless it starts with "x-"), misses a
 *  required one, or gives the wrong type, before the plugin sees it. */
KP_ABI_FUNC(const kp_param_desc *, plugin_params, (void *plugin_ctx))

/* Instance lifecycle ---------------------------------------------------------------------- */

#define KP_FN_INSTANCE_OPEN 110 /* mandatory */
/**
 * Opens an instance. params are validated against KP_FN_PLUGIN_PARAMS already; the plugin
 * checks their meaning. h stays valid until close returns: keep it for upcalls.
 * Opening should be cheap and not contact a remote service (check does that).
 * @param inst receives the instance context (owned by the plugin, released by close).
 */
KP_ABI_FUNC(kp_status, instance_open,
            (void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst))

#define KP_FN_INSTANCE_CLOSE 111 /* mandatory */
/** Closes an instance and frees it, wiping any secret it holds. NULL is a no-op. */
KP_ABI_FUNC(void, instance_close, (void *inst))

#define KP_FN_INSTANCE_CHECK 112 /* mandatory */
/** Checks reachability, credentials and permissions, calling report once per item.
 *  Returns KP_OK when every item passed, else the first failing item's status. */
KP_ABI_FUNC(kp_status, instance_check, (void *inst, kp_check_report_fn report, void *arg))

/* Keystore (KP_CAP_KEYSTORE) -------------------------------------------------------------- */

#define KP_FN_KS_CREATE 200 /* optional */
/** Generates a new key version inside the store. info receives what was created. */
KP_ABI_FUNC(kp_status, ks_create, (void *inst, const kp_key_spec *spec, kp_key_info *info))

#define KP_FN_KS_IMPORT 201 /* optional */
/** Imports a private key given as PKCS#8 PrivateKeyInfo DER (borrowed). spec->bits may be 0. */
KP_ABI_FUNC(kp_status, ks_import,
            (void *inst, const kp_key_spec *spec, const kp_secret *pkcs8_der, kp_key_info *info))

#define KP_FN_KS_GET_PUBLIC 202 /* mandatory */
/** Writes the SubjectPublicKeyInfo DER of name/version into spki. On entry *len is the size
 *  of spki; on return the bytes written, or the size needed with KP_ERR_BUFFER_TOO_SMALL
 *  (spki may be NULL to ask). version 0 means the latest. */
KP_ABI_FUNC(kp_status, ks_get_public,
            (void *inst, const char *name, uint32_t version, uint8_t *spki, size_t *len))

#define KP_FN_KS_LIST 203 /* mandatory */
/** Calls visit for every version of name (every key when name is NULL), in ascending
 *  version order per key. KP_ERR_NOT_FOUND when name is given and has no version. */
KP_ABI_FUNC(kp_status, ks_list, (void *inst, const char *name, kp_key_visit_fn visit, void *arg))

#define KP_FN_KS_WRAP 204 /* mandatory */
/** Wraps dek under name/version (0 = latest) with alg. Buffer convention as GET_PUBLIC. */
KP_ABI_FUNC(kp_status, ks_wrap,
            (void *inst, const char *name, uint32_t version, uint32_t alg, const kp_secret *dek,
             uint8_t *out, size_t *outlen))

#define KP_FN_KS_UNWRAP 205 /* mandatory */
/** Unwraps in/inlen under name/version with alg. *dek receives a secret from
 *  KP_UP_SECRET_NEW; ownership passes to the caller. KP_ERR_CRYPTO when the bytes do not
 *  unwrap under this key. */
KP_ABI_FUNC(kp_status, ks_unwrap,
            (void *inst, const char *name, uint32_t version, uint32_t alg, const uint8_t *in,
             size_t inlen, kp_secret **dek))

#define KP_FN_KS_EXPORT 206 /* optional */
/** Hands out the private key of name/version as PKCS#8 PrivateKeyInfo DER in a new secret
 *  (caller owns). KP_ERR_DENIED when the key was not created KP_KEY_EXPORTABLE. */
KP_ABI_FUNC(kp_status, ks_export,
            (void *inst, const char *name, uint32_t version, kp_secret **pkcs8_der))

#define KP_FN_KS_EXPORT_BYOK 207 /* optional */
/**
 * Exports the private key of name/version (0 = latest) as an Azure Key Vault BYOK transfer blob
 * aimed at a key-exchange key (CKM_RSA_AES_KEY_WRAP semantics, PKCS#11 v2.40 2.1.21): a fresh
 * 256-bit AES key wraps the PKCS#8 PrivateKeyInfo with AES key wrap with padding (RFC 5649),
 * the AES key itself is wrapped with RSA-OAEP (SHA-1, MGF1-SHA-1, no label) under the KEK
 * public key given as SubjectPublicKeyInfo DER, and the blob is the RSA part followed by the AES
 * part. The AES key is destroyed afterwards. Buffer convention as GET_PUBLIC.
 * KP_ERR_DENIED when the key is not exportable; KP_ERR_INVALID_ARG when kek_spki is not an RSA
 * public key.
 */
KP_ABI_FUNC(kp_status, ks_export_byok,
            (void *inst, const char *name, uint32_t version, const uint8_t *kek_spki,
             size_t kek_len, uint8_t *out, size_t *outlen))

#define KP_FN_KS_STATE_GET 208 /* optional */
/** Reads the chain-state document kept with key name (an opaque blob of at most
 *  KP_STATE_MAX bytes that the core writes: versions' states and activity windows). Buffer
 *  convention as GET_PUBLIC. KP_ERR_NOT_FOUND when none was ever stored. */
KP_ABI_FUNC(kp_status, ks_state_get, (void *inst, const char *name, uint8_t *doc, size_t *len))

#define KP_FN_KS_STATE_PUT 209 /* optional */
/** Replaces the chain-state document of key name, atomically (a reader sees the old or the new
 *  document, never a mix). */
KP_ABI_FUNC(kp_status, ks_state_put, (void *inst, const char *name, const uint8_t *doc, size_t len))

#define KP_STATE_MAX (64 * 1024)

#define KP_FN_KS_BYOK_KEK 210 /* optional; with KS_IMPORT_BYOK */
/**
 * Returns the key-exchange key (KEK) this store wants BYOK transfer blobs for key name to be
 * wrapped under: its SubjectPublicKeyInfo DER (buffer convention as GET_PUBLIC) and its id in
 * kek_id (passed back to KS_IMPORT_BYOK). The store creates the KEK when it has none usable.
 */
KP_ABI_FUNC(kp_status, ks_byok_kek,
            (void *inst, const char *name, uint8_t *kek_spki, size_t *len,
             char kek_id[KP_BACKEND_ID_MAX]))

#define KP_FN_KS_IMPORT_BYOK 211 /* optional; with KS_BYOK_KEK */
/**
 * Imports a private key from a BYOK transfer blob made by KS_EXPORT_BYOK for the KEK kek_id.
 * fingerprint is the SHA-256 hex of the SPKI of the key inside the blob, as the source store
 * reports it: the store records it and returns KP_ERR_INTEGRITY when the imported key's public
 * key does not match. Version numbering as KS_IMPORT (spec->version).
 */
KP_ABI_FUNC(kp_status, ks_import_byok,
            (void *inst, const kp_key_spec *spec, const char *kek_id, const uint8_t *blob,
             size_t bloblen, const char *fingerprint, kp_key_info *info))

#define KP_FN_KS_BACKUP 212 /* optional */
/** Writes the store's own opaque backup of every version of key name (e.g. a Key Vault backup
 *  blob, restorable only into the same provider) into a new secret (caller owns). */
KP_ABI_FUNC(kp_status, ks_backup, (void *inst, const char *name, kp_secret **blob))

#define KP_FN_KS_RESTORE 213 /* optional */
/** Restores a blob made by KS_BACKUP of the same provider. KP_ERR_EXISTS when the key already
 *  exists in the store (nothing is overwritten). name receives the restored key's name. */
KP_ABI_FUNC(kp_status, ks_restore, (void *inst, const kp_secret *blob, char name[KP_NAME_MAX]))

/* Secret store (KP_CAP_SECRETSTORE) ------------------------------------------------------- */

#define KP_FN_SS_PUT 300 /* mandatory */
/** Stores value as a new version of name, with nmeta metadata pairs. *version receives the
 *  version number created (1, 2, ...). */
KP_ABI_FUNC(kp_status, ss_put,
            (void *inst, const char *name, const kp_secret *value, const kp_meta *meta,
             size_t nmeta, uint32_t *version))

#define KP_FN_SS_GET 301 /* mandatory */
/** Fetches name/version (0 = latest). *value receives a new secret (caller owns); visit, if
 *  not NULL, is called once with the version's info and metadata. */
KP_ABI_FUNC(kp_status, ss_get,
            (void *inst, const char *name, uint32_t version, kp_secret **value,
             kp_secret_visit_fn visit, void *arg))

#define KP_FN_SS_LIST 302 /* mandatory */
/** Calls visit for every version of name (every secret when NULL), ascending. */
KP_ABI_FUNC(kp_status, ss_list, (void *inst, const char *name, kp_secret_visit_fn visit, void *arg))

/* Data keys (KP_CAP_DATAKEY) -------------------------------------------------------------- */

#define KP_FN_DK_GENERATE 400 /* mandatory */
/** Generates nbytes of data key under key_id: *plain receives it (caller owns) and ct the
 *  encrypted form (buffer convention as GET_PUBLIC). */
KP_ABI_FUNC(kp_status, dk_generate,
            (void *inst, const char *key_id, size_t nbytes, kp_secret **plain, uint8_t *ct,
             size_t *ctlen))

#define KP_FN_DK_DECRYPT 401 /* mandatory */
/** Decrypts a data key made by DK_GENERATE. *plain receives it (caller owns). */
KP_ABI_FUNC(kp_status, dk_decrypt,
            (void *inst, const char *key_id, const uint8_t *ct, size_t ctlen, kp_secret **plain))

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_PROVIDER_H */
