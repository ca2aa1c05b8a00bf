/*
 * keyplane provider ABI 1.6: ABI 1.0, frozen, KP_FN_INSTANCE_INIT, which 1.1 added,
 * kp_key_info.gap, which 1.2 appended, KP_FN_KS_CERT_PUT/GET with KP_INST_CERTS, which 1.3
 * added, the store's own metadata (KP_META_STORE, KP_META_GAP), which 1.4 named,
 * KP_FN_DK_REENCRYPT, which 1.5 added, and objects (KP_INST_OBJECTS, KP_FN_OB_*), which 1.6
 * added.
 *
 * This is the only header a plugin must include. A plugin is a shared object that exports one
 * symbol, kp_plugin_init, under the ELF version node KEYPLANE_PROVIDER_1 (the export map
 * installed with the SDK does that). The core and the plugin exchange dispatch tables: arrays of
 * {function id, function pointer} ending with {0, NULL}. The core hands the plugin its upcalls
 * (log, audit, error text, secret memory); the plugin hands the core its functions.
 *
 * Rules (docs/abi.md explains them at length):
 *  - Function ids are never reused or renumbered. New behaviour gets a new id and raises
 *    KP_ABI_MINOR; every id below says the minor it appeared in. Unknown ids in a table are
 *    ignored by both sides.
 *  - kp_plugin_info.abi_minor is the lowest minor the plugin needs (0 unless it uses something
 *    marked "since 1.N"), not the minor of the headers it was built with. A core refuses a
 *    plugin that needs a newer minor; a plugin must accept any core of its major.
 *  - A plugin declares in kp_plugin_info the capabilities its instances may have; each instance
 *    says which of them it has (KP_FN_INSTANCE_INFO). For each capability a plugin declares, the
 *    mandatory ids below must be present, or the loader refuses the plugin.
 *  - Structs that may grow carry struct_size as their first member. The side that owns the
 *    storage sets it; the other side reads or writes only members inside it (KP_HAS_MEMBER).
 *  - Memory crossing the boundary is freed by the side that allocated it. Secrets (kp_secret)
 *    are always allocated and freed by the core, through the upcalls.
 *  - Output buffers follow one convention ("the buffer convention"): on entry *len is the
 *    capacity of the buffer (the buffer may be NULL when *len is 0); on KP_OK *len is the number
 *    of bytes written, never more than the capacity; when the result does not fit, the plugin
 *    writes nothing, sets *len to the size it needs and returns KP_ERR_BUFFER_TOO_SMALL. The core
 *    treats a KP_OK whose *len exceeds the capacity as a broken plugin (KP_ERR_PLUGIN).
 *  - Every function returns a kp_status. On failure the plugin calls the SET_ERROR upcall (or
 *    kp_errorf below) with a one-line reason (no secrets in it) and returns the same status.
 *    On failure an out-parameter is NULL or holds what the plugin hands over: the core frees a
 *    secret left there, so never leave a pointer to one the plugin already freed.
 *  - A visitor (and its arg) given to a LIST or GET is valid only during that call.
 *  - Every function may be called from several threads at once, on one instance or on several:
 *    a plugin protects what its instances share.
 *
 * Each function type below is declared with KP_ABI_FUNC(), which makes a typedef
 * kp_<name>_fn and a typed extractor kp_dispatch_<name>() so both sides keep type checking
 * (the shape of OpenSSL's OSSL_CORE_MAKE_FUNC).
 */
#ifndef KEYPLANE_PROVIDER_H
#define KEYPLANE_PROVIDER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** ABI version of these headers. A plugin built for another major is refused; a plugin that
 *  needs a newer minor than the core offers is refused. */
#define KP_ABI_MAJOR 1
#define KP_ABI_MINOR 6

/** The symbol every plugin exports, and the ELF version node it is exported under. */
#define KP_PLUGIN_INIT_SYMBOL "kp_plugin_init"
#define KP_PLUGIN_SYMBOL_VERSION "KEYPLANE_PROVIDER_1"

#if defined(__GNUC__)
#define KP_PLUGIN_EXPORT __attribute__((visibility("default")))
#define KP_PRINTF_(f, a) __attribute__((format(printf, f, a)))
#else
#define KP_PLUGIN_EXPORT
#define KP_PRINTF_(f, a)
#endif

/** True when a struct whose first member is struct_size holds member (it was appended before
 *  the struct's owner was built). */
#define KP_HAS_MEMBER(ptr, type, member)                                                           \
    ((ptr)->struct_size >= offsetof(type, member) + sizeof(((type *)0)->member))

/** The error-path idiom of the core, the kit and the in-tree plugins (docs/conventions.md), here
 *  so that a plugin can use it too. KP_GUARD returns expr's status when it is not KP_OK;
 *  KP_ENSURE returns status when cond is false. For early exits with nothing to undo; a
 *  function that must release something threads its status to one cleanup instead. */
#define KP_GUARD(expr)                                                                             \
    do {                                                                                           \
        kp_status kp_guard_st_ = (expr);                                                           \
        if (kp_guard_st_ != KP_OK)                                                                 \
            return kp_guard_st_;                                                                   \
    } while (0)
#define KP_ENSURE(cond, status)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return (status);                                                                       \
    } while (0)

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

/* NOLINTBEGIN(bugprone-macro-parentheses): a type and a parameter list cannot be parenthesised */
#define KP_ABI_FUNC(type, name, args)                                                              \
    typedef type(kp_##name##_fn) args;                                                             \
    static inline kp_##name##_fn *kp_dispatch_##name(const kp_dispatch *d)                         \
    {                                                                                              \
        return (kp_##name##_fn *)d->fn;                                                            \
    }
/* NOLINTEND(bugprone-macro-parentheses) */

/** Finds id in a table; NULL when absent (an entry whose fn is NULL counts as absent). */
static inline const kp_dispatch *kp_dispatch_find(const kp_dispatch *table, uint32_t id)
{
    for (; table != NULL && table->id != 0; table++)
        if (table->id == id)
            return table->fn != NULL ? table : NULL;
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Handshake                                                                                 */

/** What the core tells a plugin in kp_plugin_init(). */
typedef struct kp_core_info {
    uint32_t struct_size;       /**< sizeof(kp_core_info) of the core; grows by appending */
    uint16_t abi_major;         /**< KP_ABI_MAJOR of the core */
    uint16_t abi_minor;         /**< KP_ABI_MINOR of the core (may be newer than the plugin's) */
    const kp_dispatch *upcalls; /**< services of the core (KP_UP_* ids); valid while loaded */
    kp_core_handle *handle;     /**< plugin-level handle for upcalls made outside an instance */
} kp_core_info;

/** Capabilities a plugin's instances may offer. */
#define KP_CAP_KEYSTORE 0x1u    /**< holds keys it will not hand out; wraps and unwraps */
#define KP_CAP_SECRETSTORE 0x2u /**< stores versioned opaque blobs with metadata */
#define KP_CAP_DATAKEY 0x4u     /**< generates data keys and decrypts them (KMS-like) */
#define KP_CAP_ALL_ (KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE | KP_CAP_DATAKEY)

/** What a plugin tells about itself (KP_FN_PLUGIN_INFO). Static storage in the plugin. */
typedef struct kp_plugin_info {
    uint32_t struct_size;    /**< sizeof(kp_plugin_info) as the plugin was built */
    uint16_t abi_major;      /**< KP_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor;      /**< lowest KP_ABI_MINOR the plugin needs (0 for ABI 1.0) */
    const char *name;        /**< 1..64 of [a-z0-9_-], equal to the file name without .so */
    const char *version;     /**< the plugin's own version, e.g. "1.2.0" */
    const char *description; /**< one line */
    uint32_t capabilities;   /**< KP_CAP_* bits any of its instances may have */
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

/** Longest detail text the core keeps (bytes, without the NUL); longer text is cut. */
#define KP_ERROR_MAX 1023

#define KP_UP_LOG 1 /* since 1.0 */
/** Logs one line (no newline needed). Never pass secrets. */
KP_ABI_FUNC(void, up_log, (kp_core_handle * h, kp_log_level level, const char *msg))

#define KP_UP_SET_ERROR 2 /* since 1.0 */
/** Sets the detail text of the current operation on the calling thread (cut at KP_ERROR_MAX
 *  bytes) and returns status, so a plugin can write `return set_error(h, KP_ERR_IO, "...")`.
 *  Never pass secrets. */
KP_ABI_FUNC(kp_status, up_set_error, (kp_core_handle * h, kp_status status, const char *msg))

#define KP_UP_AUDIT 3 /* since 1.0 */
/** Adds a plugin-specific audit event (the core already audits every key operation).
 *  event is a short name ("login"), detail one line; neither may hold secrets. */
KP_ABI_FUNC(void, up_audit, (kp_core_handle * h, const char *event, const char *detail))

#define KP_UP_SECRET_NEW 4 /* since 1.0 */
/** Allocates a zero-filled secret of len bytes (len may be 0). NULL on out-of-memory.
 *  The caller owns it; ownership passes to the core when returned through an out-parameter. */
KP_ABI_FUNC(kp_secret *, up_secret_new, (size_t len))

#define KP_UP_SECRET_FREE 5 /* since 1.0 */
/** Wipes and frees a secret. NULL is a no-op. */
KP_ABI_FUNC(void, up_secret_free, (kp_secret * s))

#define KP_UP_SECRET_DATA 6 /* since 1.0 */
/** Borrows the writable bytes of a secret (get0). */
KP_ABI_FUNC(unsigned char *, up_secret_data, (kp_secret * s))

#define KP_UP_SECRET_CDATA 7 /* since 1.0 */
/** Borrows the bytes of a read-only secret (get0). */
KP_ABI_FUNC(const unsigned char *, up_secret_cdata, (const kp_secret *s))

#define KP_UP_SECRET_LEN 8 /* since 1.0 */
KP_ABI_FUNC(size_t, up_secret_len, (const kp_secret *s))

#define KP_UP_SECRET_SHRINK 9 /* since 1.0 */
/** Shrinks a secret to len bytes, wiping the tail. KP_ERR_INVALID_ARG if len is larger. */
KP_ABI_FUNC(kp_status, up_secret_shrink, (kp_secret * s, size_t len))

#define KP_UP_GET_ERROR 10 /* since 1.0 */
/** The detail text set on the calling thread by the last SET_ERROR (through any handle of this
 *  core), "" when none: a plugin reads back what a helper said before adding its own context.
 *  Borrowed until the next SET_ERROR on this thread. Never NULL. */
KP_ABI_FUNC(const char *, up_get_error, (kp_core_handle * h))

/** The upcalls as typed function pointers, for plugins: fill with kp_upcalls_get. Members are
 *  appended as minors add upcalls; an upcall newer than 1.0 may be NULL (an older core). */
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
    kp_up_get_error_fn *get_error;
} kp_upcalls;

/** Fills up from the core's table (the typed extractors check each against its typedef).
 *  Returns 1 when every upcall of ABI 1.0 is there, 0 when the core lacks one (refuse with
 *  KP_ERR_PLUGIN). Upcalls added by later minors are filled when present, else left NULL, so a
 *  plugin recompiled against newer headers still loads into a 1.0 core unless it needs them. */
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
    KP_UPCALL_(get_error, KP_UP_GET_ERROR, up_get_error);
#undef KP_UPCALL_
    /* the upcalls of ABI 1.0: every 1.x core has them */
    return up->log != NULL && up->set_error != NULL && up->audit != NULL &&
           up->secret_new != NULL && up->secret_free != NULL && up->secret_data != NULL &&
           up->secret_cdata != NULL && up->secret_len != NULL && up->secret_shrink != NULL &&
           up->get_error != NULL;
}

/**
 * The checks every kp_plugin_init starts with: arguments present, a core of this ABI major, all
 * upcalls of ABI 1.0 there (filled into up). Returns KP_OK, or the status to return, having told
 * the core why when it can: msg is the whole error text for a core that lacks an upcall
 * (e.g. "myplugin: the core lacks an upcall of ABI 1.0"); NULL gives a generic one.
 */
static inline kp_status kp_plugin_accept(const kp_core_info *core, const kp_dispatch **out,
                                         void **plugin_ctx, kp_upcalls *up, const char *msg)
{
    if (core == NULL || out == NULL || plugin_ctx == NULL || up == NULL)
        return KP_ERR_INVALID_ARG;
    if (core->struct_size < offsetof(kp_core_info, handle) + sizeof(core->handle) ||
        core->abi_major != KP_ABI_MAJOR)
        return KP_ERR_ABI;
    if (!kp_upcalls_get(core, up)) {
        if (up->set_error != NULL)
            up->set_error(core->handle, KP_ERR_PLUGIN,
                          msg != NULL ? msg : "plugin: the core lacks an upcall");
        return KP_ERR_PLUGIN;
    }
    return KP_OK;
}

/** printf-style SET_ERROR: formats into a KP_ERROR_MAX buffer and returns status. */
static inline KP_PRINTF_(4, 5) kp_status
    kp_errorf(const kp_upcalls *up, kp_core_handle *h, kp_status status, const char *fmt, ...)
{
    char msg[KP_ERROR_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return up->set_error(h, status, msg);
}

/** set, then st: what KP_ERRORF is. Static analyzers do not follow kp_errorf's variadic call to
 *  see that it returns its status; through this they see st. */
static inline kp_status kp_error_is(kp_status set, kp_status st)
{
    (void)set;
    return st;
}
/** kp_errorf whose value the static analyzer knows to be status (a plugin's error macro is best
 *  built on it): sets the error text and is status. */
#define KP_ERRORF(up, h, status, ...)                                                              \
    kp_error_is(kp_errorf((up), (h), (status), __VA_ARGS__), (status))

/** printf-style LOG: formats one line into a KP_ERROR_MAX buffer (longer text is cut) and logs
 *  it at level. Never pass secrets. */
static inline KP_PRINTF_(4, 5) void kp_logf(const kp_upcalls *up, kp_core_handle *h,
                                            kp_log_level level, const char *fmt, ...)
{
    char msg[KP_ERROR_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    up->log(h, level, msg);
}

/** The buffer convention (abi.md) for an answer the plugin built in malloc'd memory: sets
 *  *len = n, copies data into buf when buf holds n bytes, else answers KP_ERR_BUFFER_TOO_SMALL
 *  with "WHAT needs N bytes"; frees data either way. */
static inline kp_status kp_buffer_take(const kp_upcalls *up, kp_core_handle *h, void *data,
                                       size_t n, uint8_t *buf, size_t *len, const char *what)
{
    kp_status st = KP_OK;
    if (buf == NULL || *len < n)
        st = kp_errorf(up, h, KP_ERR_BUFFER_TOO_SMALL, "%s needs %zu bytes", what, n);
    else if (n > 0)
        memcpy(buf, data, n);
    *len = n;
    free(data);
    return st;
}

/** A new secret holding a copy of len bytes at p (len may be 0); NULL on out-of-memory. */
static inline kp_secret *kp_secret_dup(const kp_upcalls *up, const void *p, size_t len)
{
    kp_secret *s = up->secret_new(len);
    if (s != NULL && len > 0)
        memcpy(up->secret_data(s), p, len);
    return s;
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

/** One parameter value; the array ends with name == NULL. All pointers are borrowed from the
 *  core and valid only during the call that receives them: copy what you keep (a secret: copy
 *  its bytes into a secret of your own, kp_secret_dup). */
typedef struct kp_param {
    const char *name;
    uint32_t type;           /**< kp_param_type */
    const char *str;         /**< STRING, PATH: the value; SECRET: the reference (not secret) */
    int64_t num;             /**< INT; BOOL as 0/1 */
    const kp_secret *secret; /**< SECRET: the resolved bytes; NULL where secrets are not read
                                  (PLUGIN_DESCRIBE and PLUGIN_CHECK_KEY) */
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
#define KPK_FPR_HEX 65  /**< SHA-256 hex fingerprint (64 lower-case hex digits), with the NUL */
#define KP_BACKEND_ID_MAX 256
#define KP_GAP_MAX 256 /**< kp_key_info.gap, NUL included */

typedef enum kp_key_type { KP_KEY_RSA = 1, KP_KEY_AES = 2 } kp_key_type;

#define KP_KEY_EXPORTABLE 0x1u /**< the key may leave the store (escrow, BYOK, replication) */

typedef enum kp_key_state { KP_KEY_ENABLED = 1, KP_KEY_DISABLED = 2 } kp_key_state;

/** Wrapping algorithms (KS_WRAP/KS_UNWRAP). KP_ALG_BIT(alg) is its bit in kp_instance_info. */
typedef enum kp_wrap_alg {
    KP_WRAP_RSA_OAEP_SHA1 = 1,   /**< RSAES-OAEP, SHA-1, MGF1-SHA-1, no label */
    KP_WRAP_RSA_OAEP_SHA256 = 2, /**< RSAES-OAEP, SHA-256, MGF1-SHA-256, no label */
    KP_WRAP_RSA_PKCS1 = 3,       /**< RSAES-PKCS1-v1_5: unwrap of old data only */
    KP_WRAP_AES_KW = 4,          /**< RFC 3394 */
    KP_WRAP_AES_KWP = 5          /**< RFC 5649 */
} kp_wrap_alg;
#define KP_ALG_BIT(alg) (1u << (alg))

/**
 * Key transfer methods: how a private key travels wrapped from one store to another
 * (KS_IMPORT_OFFER, KS_EXPORT_WRAPPED, KS_IMPORT_WRAPPED). The target names a wrapping RSA public
 * key; the source wraps its key under it. KP_KEYX_BIT(m) is its bit in kp_instance_info.
 */
typedef enum kp_keyx_method {
    /** CKM_RSA_AES_KEY_WRAP (PKCS#11 v2.40 2.1.21) with OAEP SHA-1/MGF1-SHA-1: a fresh AES-256 key
     *  wraps the PKCS#8 PrivateKeyInfo with AES key wrap with padding (RFC 5649), the AES key is
     *  wrapped with RSA-OAEP under the wrapping key; the blob is the RSA part then the AES part.
     *  Azure Key Vault BYOK (RSA-HSM), AWS KMS RSA_AES_KEY_WRAP_SHA_1, GCP import jobs. */
    KP_KEYX_RSA_AES_KWP_SHA1 = 1,
    /** The same with OAEP SHA-256/MGF1-SHA-256 (AWS KMS RSA_AES_KEY_WRAP_SHA_256, Vault
     *  transit import, GCP RSA_OAEP_3072_SHA256_AES_256). */
    KP_KEYX_RSA_AES_KWP_SHA256 = 2,
    /** RSA-OAEP SHA-1 directly over the key bytes: symmetric keys only (KMS RSAES_OAEP_SHA_1). */
    KP_KEYX_RSA_OAEP_SHA1 = 3,
    /** RSA-OAEP SHA-256 directly over the key bytes: symmetric keys only. */
    KP_KEYX_RSA_OAEP_SHA256 = 4
} kp_keyx_method;
#define KP_KEYX_BIT(m) (1u << (m))

/** What to create or import. Owned by the core; a plugin reads it with kp_key_spec_read. */
typedef struct kp_key_spec {
    uint32_t struct_size; /**< sizeof(kp_key_spec) of the core */
    const char *name;     /**< key name, [A-Za-z0-9._-]{1,127} */
    uint32_t type;        /**< kp_key_type */
    uint32_t bits;        /**< RSA 2048/3072/4096, AES 128/192/256; 0 = taken from the import */
    uint32_t flags;       /**< KP_KEY_EXPORTABLE */
    uint32_t version;     /**< 0 = the next free version; else exactly this version
                               (KP_ERR_EXISTS if taken), so replicas keep one numbering */
    /** Imports: the SHA-256 hex fingerprint the imported key's SPKI must have. The plugin checks
     *  it before the key becomes visible to any reader (KS_GET, KS_LIST, KS_WRAP) and returns
     *  KP_ERR_INTEGRITY, leaving nothing behind, when it differs. NULL: no expectation (create,
     *  and imports by hand). */
    const char *fingerprint;
} kp_key_spec;

/** Copies the caller's spec into a local one of this header's size: members the caller's core
 *  did not have read as 0/NULL. Returns 0 when in is NULL or too short to be a spec. */
static inline int kp_key_spec_read(const kp_key_spec *in, kp_key_spec *out)
{
    memset(out, 0, sizeof(*out));
    if (in == NULL || in->struct_size < offsetof(kp_key_spec, version) + sizeof(uint32_t))
        return 0;
    memcpy(out, in, in->struct_size < sizeof(*out) ? in->struct_size : sizeof(*out));
    out->struct_size = sizeof(*out);
    return 1;
}

/** One key version as a keystore sees it. The storage's owner sets struct_size: the core for
 *  the info it passes to CREATE/IMPORT/GET (fill it with kp_key_info_put), the plugin for the
 *  infos it hands to a LIST visitor. */
typedef struct kp_key_info {
    uint32_t struct_size;
    char name[KP_NAME_MAX];
    uint32_t version; /**< 1, 2, ... */
    uint32_t type;    /**< kp_key_type */
    uint32_t bits;
    uint32_t flags;                /**< KP_KEY_EXPORTABLE */
    uint32_t state;                /**< kp_key_state */
    int64_t created;               /**< Unix time; 0 unknown */
    int64_t expires;               /**< Unix time after which the store refuses the key; 0 never */
    char fingerprint[KPK_FPR_HEX]; /**< lower-case hex SHA-256 of the SPKI DER (RSA) */
    char backend_id[KP_BACKEND_ID_MAX]; /**< the store's own id (Key Vault kid, KMS key ARN,
                                             PKCS#11 CKA_ID, a path) */
    char gap[KP_GAP_MAX]; /**< since 1.2: "" or one line saying why this copy, though it holds
                               the key, would fail its purpose in a disaster by the store's own
                               rules, and the fix (a Key Vault without purge protection, which
                               Azure SQL requires of a TDE protector's vault). verify counts it
                               as a gap. A 1.0/1.1 plugin leaves it empty. */
} kp_key_info;

/** Writes src (a full info of this header's size) into the caller's dst, as far as dst's
 *  struct_size reaches. */
static inline void kp_key_info_put(kp_key_info *dst, const kp_key_info *src)
{
    if (dst == NULL || src == NULL)
        return;
    uint32_t keep = dst->struct_size;
    size_t n = keep < sizeof(*src) ? keep : sizeof(*src);
    memcpy(dst, src, n);
    dst->struct_size = keep;
}

/** Visitor for key listings; a non-KP_OK return stops the listing and is returned by it. */
typedef kp_status (*kp_key_visit_fn)(void *arg, const kp_key_info *info);

/* ---------------------------------------------------------------------------------------- */
/* Instances                                                                                 */

/** What one instance is and can do (KP_FN_INSTANCE_INFO; the static guess of
 *  KP_FN_PLUGIN_DESCRIBE). Owned by the core, which sets struct_size and zeroes the rest. */
typedef struct kp_instance_info {
    uint32_t struct_size;
    uint32_t capabilities; /**< KP_CAP_* bits, a subset of the plugin's */
    uint32_t wrap_algs;    /**< KP_ALG_BIT()s KS_WRAP and KS_UNWRAP both accept */
    uint32_t unwrap_algs;  /**< KP_ALG_BIT()s KS_UNWRAP accepts (a superset of wrap_algs) */
    uint32_t key_bits;     /**< RSA sizes the store holds: 0x1 2048, 0x2 3072, 0x4 4096 */
    uint32_t export_keyx;  /**< KP_KEYX_BIT()s KS_EXPORT_WRAPPED can produce */
    uint32_t import_keyx;  /**< KP_KEYX_BIT()s KS_IMPORT_WRAPPED accepts */
    uint32_t flags;        /**< KP_INST_* */
    uint64_t secret_max;   /**< SECRETSTORE: largest value SS_PUT takes, bytes; 0 no limit */
} kp_instance_info;

#define KP_RSA_2048 0x1u
#define KP_RSA_3072 0x2u
#define KP_RSA_4096 0x4u

/** KS_STATE_PUT's compare-and-swap holds against other processes and hosts. */
#define KP_INST_STATE_CAS 0x1u
/** Keys created in the store never leave it (no KS_EXPORT or KS_EXPORT_WRAPPED of them). */
#define KP_INST_NO_EXPORT 0x2u
/** Since 1.3: the instance keeps certificates with key versions (KS_CERT_PUT/GET work). */
#define KP_INST_CERTS 0x4u
/** Since 1.6: the instance reads and writes objects (KP_FN_OB_*: all five are present). */
#define KP_INST_OBJECTS 0x8u

/* ---------------------------------------------------------------------------------------- */
/* Secrets in a secret store                                                                 */

/** A metadata pair. Keys [a-z0-9_.-]+, values printable text; never secret. */
typedef struct kp_meta {
    const char *key;
    const char *value;
} kp_meta;

/** Since 1.4: metadata keys starting with KP_META_STORE are the store's own. SS_PUT never gets
 *  one (the core refuses them); a store may add them to what SS_GET and SS_LIST visitors see.
 *  KP_META_GAP is the secret store's kp_key_info.gap: one line saying why this version, though
 *  the store holds it, would fail in a disaster (an object under another region's KMS key, a
 *  replica region out of sync), and the fix. verify counts it as a gap. */
#define KP_META_STORE "store."
#define KP_META_GAP "store.gap"

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

#define KP_FN_PLUGIN_INFO 100 /* mandatory; since 1.0 */
/** Returns the plugin's static description. Never NULL. */
KP_ABI_FUNC(const kp_plugin_info *, plugin_info, (void *plugin_ctx))

#define KP_FN_PLUGIN_TEARDOWN 101 /* optional; since 1.0 */
/** Releases plugin_ctx. Called once, after every instance is closed, before dlclose. */
KP_ABI_FUNC(void, plugin_teardown, (void *plugin_ctx))

#define KP_FN_PLUGIN_PARAMS 102 /* mandatory; since 1.0 */
/** Returns the parameters an instance accepts (static, ends with name == NULL). The core
 *  rejects a policy that sets an unknown parameter (unless it starts with "x-"), misses a
 *  required one, or gives the wrong type, before the plugin sees it. */
KP_ABI_FUNC(const kp_param_desc *, plugin_params, (void *plugin_ctx))

#define KP_FN_PLUGIN_DESCRIBE 103 /* optional; since 1.0 */
/**
 * What an instance with these params will be, decided from the params alone (no I/O, secrets
 * not read: kp_param.secret is NULL), so `policy validate` can check roles and algorithms
 * before anything is opened. Fill what is known; KP_FN_INSTANCE_INFO may narrow it after open.
 * KP_ERR_CONFIG with a reason when the params contradict each other. Without this function the
 * core assumes the plugin's capabilities and checks algorithms only after open.
 */
KP_ABI_FUNC(kp_status, plugin_describe,
            (void *plugin_ctx, const kp_param *params, kp_instance_info *info))

#define KP_FN_PLUGIN_CHECK_KEY 104 /* optional; since 1.0 */
/**
 * The store's domain rules, checked before anything is created: would an instance with these
 * params (secrets not read) hold a key of this spec under this name? KP_ERR_UNSUPPORTED with a
 * one-line reason naming the rule ("Key Vault keys for Azure SQL TDE are RSA 2048 or 3072"),
 * KP_ERR_INVALID_ARG for a name the store cannot hold. No I/O.
 */
KP_ABI_FUNC(kp_status, plugin_check_key,
            (void *plugin_ctx, const kp_param *params, const kp_key_spec *spec))

/* Instance lifecycle ---------------------------------------------------------------------- */

#define KP_FN_INSTANCE_OPEN 110 /* mandatory; since 1.0 */
/**
 * Opens an instance. params are validated against KP_FN_PLUGIN_PARAMS already; the plugin
 * checks their meaning. h stays valid until close returns: keep it for upcalls.
 * Opening should be cheap and not contact a remote service (check does that).
 * @param inst receives the instance context (owned by the plugin, released by close).
 */
KP_ABI_FUNC(kp_status, instance_open,
            (void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst))

#define KP_FN_INSTANCE_CLOSE 111 /* mandatory; since 1.0 */
/** Closes an instance and frees it, wiping any secret it holds. NULL is a no-op. */
KP_ABI_FUNC(void, instance_close, (void *inst))

#define KP_FN_INSTANCE_CHECK 112 /* mandatory; since 1.0 */
/** Checks reachability, credentials and permissions, calling report once per item.
 *  Returns KP_OK when every item passed, else the first failing item's status. */
KP_ABI_FUNC(kp_status, instance_check, (void *inst, kp_check_report_fn report, void *arg))

#define KP_FN_INSTANCE_INFO 113 /* mandatory; since 1.0 */
/** Fills what this instance is and can do (its capabilities, a subset of the plugin's, and
 *  algorithms). The core calls it once, right after open, and keeps the answer. No remote I/O. */
KP_ABI_FUNC(kp_status, instance_info, (void *inst, kp_instance_info *info))

#define KP_FN_INSTANCE_INIT 114 /* optional; since 1.1 */
/**
 * Initialises a new, empty store where the instance's params say (a directory, a database):
 * the one explicit act that creates it. KP_ERR_EXISTS with a reason when the store is already
 * initialised (nothing is changed). A plugin with INIT never creates its store implicitly: every
 * other call on a store that is not initialised (never created, or moved away, its disk not
 * mounted) fails with KP_ERR_UNAVAILABLE and one line saying so, never KP_ERR_NOT_FOUND, so a
 * missing store reads as unreachable, not as an empty one. Stores that exist by themselves (a
 * token, a vault) have no INIT.
 */
KP_ABI_FUNC(kp_status, instance_init, (void *inst))

/* Keystore (KP_CAP_KEYSTORE) -------------------------------------------------------------- */

#define KP_FN_KS_CREATE 200 /* optional; since 1.0 */
/** Generates a new key version inside the store. info receives what was created. */
KP_ABI_FUNC(kp_status, ks_create, (void *inst, const kp_key_spec *spec, kp_key_info *info))

#define KP_FN_KS_IMPORT 201 /* optional; since 1.0 */
/** Imports a private key given as PKCS#8 PrivateKeyInfo DER (borrowed). spec->bits may be 0;
 *  spec->fingerprint, when set, is checked before the key becomes visible. */
KP_ABI_FUNC(kp_status, ks_import,
            (void *inst, const kp_key_spec *spec, const kp_secret *pkcs8_der, kp_key_info *info))

#define KP_FN_KS_GET_PUBLIC 202 /* mandatory; since 1.0 */
/** Writes the SubjectPublicKeyInfo DER of name/version (0 = the latest) into spki (the buffer
 *  convention). */
KP_ABI_FUNC(kp_status, ks_get_public,
            (void *inst, const char *name, uint32_t version, uint8_t *spki, size_t *len))

#define KP_FN_KS_LIST 203 /* mandatory; since 1.0 */
/** Calls visit for every version of name (every key when name is NULL), in ascending
 *  version order per key. KP_ERR_NOT_FOUND when name is given and has no version. */
KP_ABI_FUNC(kp_status, ks_list, (void *inst, const char *name, kp_key_visit_fn visit, void *arg))

#define KP_FN_KS_WRAP 204 /* mandatory; since 1.0 */
/** Wraps dek under name/version (0 = latest) with alg (the buffer convention).
 *  KP_ERR_UNSUPPORTED for an alg the instance did not declare. */
KP_ABI_FUNC(kp_status, ks_wrap,
            (void *inst, const char *name, uint32_t version, uint32_t alg, const kp_secret *dek,
             uint8_t *out, size_t *outlen))

#define KP_FN_KS_UNWRAP 205 /* mandatory; since 1.0 */
/** Unwraps in/inlen under name/version with alg. *dek receives a non-empty secret from
 *  KP_UP_SECRET_NEW; ownership passes to the caller. KP_ERR_CRYPTO when the bytes do not
 *  unwrap under this key (never garbage bytes); KP_ERR_UNSUPPORTED for an undeclared alg. */
KP_ABI_FUNC(kp_status, ks_unwrap,
            (void *inst, const char *name, uint32_t version, uint32_t alg, const uint8_t *in,
             size_t inlen, kp_secret **dek))

#define KP_FN_KS_EXPORT 206 /* optional; since 1.0 */
/** Hands out the private key of name/version as PKCS#8 PrivateKeyInfo DER in a new secret
 *  (caller owns). KP_ERR_DENIED when the key was not created KP_KEY_EXPORTABLE. */
KP_ABI_FUNC(kp_status, ks_export,
            (void *inst, const char *name, uint32_t version, kp_secret **pkcs8_der))

#define KP_FN_KS_EXPORT_WRAPPED 207 /* optional; since 1.0 */
/**
 * Exports the private key of name/version (0 = latest) wrapped by method (a kp_keyx_method the
 * instance declared in export_keyx) under the RSA public key wrapping_spki (SubjectPublicKeyInfo
 * DER), the buffer convention for out. The key is never in plaintext outside the store where the
 * store can do the wrapping itself (an HSM). KP_ERR_DENIED when the key is not exportable;
 * KP_ERR_UNSUPPORTED for another method; KP_ERR_INVALID_ARG when wrapping_spki is not RSA.
 */
KP_ABI_FUNC(kp_status, ks_export_wrapped,
            (void *inst, const char *name, uint32_t version, uint32_t method,
             const uint8_t *wrapping_spki, size_t spki_len, uint8_t *out, size_t *outlen))

#define KP_FN_KS_STATE_GET 208 /* optional; with KS_STATE_PUT; since 1.0 */
/** Reads the chain-state document kept with key name (an opaque blob of at most KP_STATE_MAX
 *  bytes that the core writes), the buffer convention. KP_ERR_NOT_FOUND when none was stored. */
KP_ABI_FUNC(kp_status, ks_state_get, (void *inst, const char *name, uint8_t *doc, size_t *len))

#define KP_FN_KS_STATE_PUT 209 /* optional; with KS_STATE_GET; since 1.0 */
/**
 * Replaces the chain-state document of key name, atomically (a reader sees the old or the new
 * document, never a mix). A compare-and-swap when expect is not NULL: the document is replaced
 * only if the stored one is byte for byte expect/expect_len (expect_len 0: only if none is
 * stored), else KP_ERR_CONFLICT and nothing changes. The instance sets KP_INST_STATE_CAS when
 * that holds against other processes and hosts, not only other threads.
 */
KP_ABI_FUNC(kp_status, ks_state_put,
            (void *inst, const char *name, const uint8_t *doc, size_t len, const uint8_t *expect,
             size_t expect_len))

#define KP_STATE_MAX (64 * 1024)

/** A target store's offer for a wrapped import (KS_IMPORT_OFFER): owned by the core, which
 *  sets struct_size and the two buffers with their capacities. */
typedef struct kp_import_offer {
    uint32_t struct_size;
    uint32_t methods;         /**< out: KP_KEYX_BIT()s this offer accepts */
    int64_t expires;          /**< out: Unix time the offer (token) lapses; 0 never */
    uint8_t *wrapping_spki;   /**< in: buffer; out: the wrapping key's SPKI DER */
    size_t wrapping_spki_len; /**< in: capacity; out: bytes written or needed */
    uint8_t *token;           /**< in: buffer; out: opaque bytes for KS_IMPORT_WRAPPED (a
                                   key-exchange key id, a KMS import token); not secret */
    size_t token_len;         /**< in: capacity; out: bytes written or needed */
} kp_import_offer;

#define KP_FN_KS_IMPORT_OFFER 210 /* optional; with KS_IMPORT_WRAPPED; since 1.0 */
/**
 * Offers a wrapping key for importing spec->name (spec->version, spec->bits): the store creates
 * or finds its key-exchange key or asks its service for import parameters. Both buffers follow
 * the buffer convention together: when either is too small the plugin sets both lengths to what
 * it needs and returns KP_ERR_BUFFER_TOO_SMALL.
 */
KP_ABI_FUNC(kp_status, ks_import_offer,
            (void *inst, const kp_key_spec *spec, kp_import_offer *offer))

#define KP_FN_KS_IMPORT_WRAPPED 211 /* optional; with KS_IMPORT_OFFER; since 1.0 */
/**
 * Imports a private key wrapped by KS_EXPORT_WRAPPED with method under the wrapping key of the
 * offer whose token is given. spec->fingerprint is required: the plugin checks the imported
 * key's SPKI against it before the key becomes visible (KP_ERR_INTEGRITY, nothing left behind).
 * Version numbering as KS_IMPORT (spec->version). KP_ERR_CONFLICT when the offer lapsed.
 */
KP_ABI_FUNC(kp_status, ks_import_wrapped,
            (void *inst, const kp_key_spec *spec, uint32_t method, const uint8_t *token,
             size_t token_len, const uint8_t *blob, size_t bloblen, kp_key_info *info))

#define KP_FN_KS_BACKUP 212 /* optional; with KS_RESTORE; since 1.0 */
/** Writes the store's own opaque backup of every version of key name (e.g. a Key Vault backup
 *  blob, restorable only into the same provider) into a new secret (caller owns). */
KP_ABI_FUNC(kp_status, ks_backup, (void *inst, const char *name, kp_secret **blob))

#define KP_FN_KS_RESTORE 213 /* optional; with KS_BACKUP; since 1.0 */
/** Restores a blob made by KS_BACKUP of the same provider. KP_ERR_EXISTS when the key already
 *  exists in the store (nothing is overwritten). name receives the restored key's name. */
KP_ABI_FUNC(kp_status, ks_restore, (void *inst, const kp_secret *blob, char name[KP_NAME_MAX]))

#define KP_FN_KS_GET 214 /* mandatory; since 1.0 */
/** Fills info (caller storage, kp_key_info_put) for name/version, 0 = the latest, without
 *  listing unrelated keys or versions where the backend allows. KP_ERR_NOT_FOUND when absent. */
KP_ABI_FUNC(kp_status, ks_get, (void *inst, const char *name, uint32_t version, kp_key_info *info))

/** Largest certificate a keystore is handed (KS_CERT_PUT), DER bytes. */
#define KP_CERT_DER_MAX (16 * 1024)

#define KP_FN_KS_CERT_PUT 215 /* optional; with KS_CERT_GET; since 1.3 */
/**
 * Keeps the X.509 certificate der/len (DER, borrowed) with version `version` (never 0) of key
 * name, as a SQL Server TDE protector's certificate travels with its key. The certificate's
 * public key must be the version's: KP_ERR_INTEGRITY otherwise, nothing stored. Idempotent:
 * KP_OK when the version holds these very bytes already; KP_ERR_EXISTS when it holds another
 * certificate (never replaced). KP_ERR_NOT_FOUND when the version does not exist.
 */
KP_ABI_FUNC(kp_status, ks_cert_put,
            (void *inst, const char *name, uint32_t version, const uint8_t *der, size_t len))

#define KP_FN_KS_CERT_GET 216 /* optional; with KS_CERT_PUT; since 1.3 */
/** Writes the certificate kept with name/version (never 0) into der (the buffer convention).
 *  KP_ERR_NOT_FOUND when the version does not exist or keeps no certificate. */
KP_ABI_FUNC(kp_status, ks_cert_get,
            (void *inst, const char *name, uint32_t version, uint8_t *der, size_t *len))

/* Secret store (KP_CAP_SECRETSTORE) ------------------------------------------------------- */

#define KP_FN_SS_PUT 300 /* mandatory; since 1.0 */
/** Stores value as a new version of name, with nmeta metadata pairs. *version receives the
 *  version number created (1, 2, ...). */
KP_ABI_FUNC(kp_status, ss_put,
            (void *inst, const char *name, const kp_secret *value, const kp_meta *meta,
             size_t nmeta, uint32_t *version))

#define KP_FN_SS_GET 301 /* mandatory; since 1.0 */
/** Fetches name/version (0 = latest). *value receives a new secret (caller owns); visit, if
 *  not NULL, is called once with the version's info and metadata. */
KP_ABI_FUNC(kp_status, ss_get,
            (void *inst, const char *name, uint32_t version, kp_secret **value,
             kp_secret_visit_fn visit, void *arg))

#define KP_FN_SS_LIST 302 /* mandatory; since 1.0 */
/** Calls visit for every version of name (every secret when NULL), ascending; for a name with
 *  no version, KP_ERR_NOT_FOUND or no visit. */
KP_ABI_FUNC(kp_status, ss_list, (void *inst, const char *name, kp_secret_visit_fn visit, void *arg))

/* Data keys (KP_CAP_DATAKEY) -------------------------------------------------------------- */

#define KP_FN_DK_GENERATE 400 /* mandatory; since 1.0 */
/** Generates nbytes of data key under the store's key key_id, bound to the encryption context
 *  (ncontext pairs, may be 0; the same pairs must be given to decrypt): *plain receives it
 *  (caller owns) and ct the encrypted form (the buffer convention). */
KP_ABI_FUNC(kp_status, dk_generate,
            (void *inst, const char *key_id, size_t nbytes, const kp_meta *context, size_t ncontext,
             kp_secret **plain, uint8_t *ct, size_t *ctlen))

#define KP_FN_DK_DECRYPT 401 /* mandatory; since 1.0 */
/** Decrypts a data key made by DK_GENERATE with the same context. *plain receives it (caller
 *  owns). KP_ERR_CRYPTO when ct or the context does not match. */
KP_ABI_FUNC(kp_status, dk_decrypt,
            (void *inst, const char *key_id, const uint8_t *ct, size_t ctlen,
             const kp_meta *context, size_t ncontext, kp_secret **plain))

#define KP_FN_DK_REENCRYPT 402 /* optional; since 1.5 */
/**
 * Re-encrypts a data key made by DK_GENERATE under src_key_id with src_context (nsrc pairs) to
 * dst_key_id with dst_context (ndst pairs, may be 0), inside the store: the plaintext never
 * leaves it. out receives the new ciphertext (the buffer convention), which DK_DECRYPT of
 * dst_key_id opens with dst_context. KP_ERR_CRYPTO when ct or src_context does not match
 * src_key_id. dst_key_id may be src_key_id (a new context under the same key).
 */
KP_ABI_FUNC(kp_status, dk_reencrypt,
            (void *inst, const char *src_key_id, const uint8_t *ct, size_t ctlen,
             const kp_meta *src_context, size_t nsrc, const char *dst_key_id,
             const kp_meta *dst_context, size_t ndst, uint8_t *out, size_t *outlen))

/* Objects (KP_INST_OBJECTS, since 1.6) --------------------------------------------------- */
/*
 * An object is a large byte stream with metadata at a location the plugin names (the aws
 * plugin: "s3://BUCKET/KEY"), written once, in order, and read by ranges: an encrypted backup.
 * The calls hold no more than a part of it in memory. Metadata follows kp_meta's rules (keys
 * [a-z0-9_.-], values printable ASCII); a store may refuse more than it keeps (S3: 2 KB).
 */

/** What OB_STAT says of an object. Owned by the core, which sets struct_size. */
#define KP_OBJECT_TAG_MAX 128
typedef struct kp_object_info {
    uint32_t struct_size;
    uint64_t size;               /**< bytes */
    char tag[KP_OBJECT_TAG_MAX]; /**< the store's tag of these bytes (S3: the ETag), or "" */
} kp_object_info;

/** Visitor of an object's metadata (borrowed for the call). */
typedef kp_status (*kp_meta_visit_fn)(void *arg, const kp_meta *meta, size_t nmeta);

/** An object being written: the plugin's, opaque to the core. */
typedef struct kp_object_writer kp_object_writer;

#define KP_FN_OB_CREATE 500 /* with KP_INST_OBJECTS; since 1.6 */
/**
 * Starts writing a new object at where with nmeta metadata pairs; *w receives the writer.
 * Nothing is visible at where before OB_CLOSE commits. KP_ERR_EXISTS when where holds an object
 * already (the store may find out only at the commit); KP_ERR_INVALID_ARG for a location the
 * plugin does not take.
 */
KP_ABI_FUNC(kp_status, ob_create,
            (void *inst, const char *where, const kp_meta *meta, size_t nmeta,
             kp_object_writer **w))

#define KP_FN_OB_WRITE 501 /* with KP_INST_OBJECTS; since 1.6 */
/** Appends len bytes (any size) to the object. After a failure only OB_CLOSE is called. */
KP_ABI_FUNC(kp_status, ob_write, (void *inst, kp_object_writer *w, const uint8_t *data, size_t len))

#define KP_FN_OB_CLOSE 502 /* with KP_INST_OBJECTS; since 1.6 */
/**
 * Ends a write and frees w. commit != 0: the object becomes visible whole, or not at all
 * (KP_ERR_EXISTS when another object appeared at where meanwhile: nothing is replaced).
 * commit == 0: abandons it, leaving nothing behind that the store bills or shows (best effort:
 * KP_OK unless the plugin knows something is left).
 */
KP_ABI_FUNC(kp_status, ob_close, (void *inst, kp_object_writer *w, int commit))

#define KP_FN_OB_STAT 503 /* with KP_INST_OBJECTS; since 1.6 */
/** Fills info (caller storage) for the object at where and, when visit is not NULL, calls it
 *  once with its metadata. KP_ERR_NOT_FOUND when there is none. */
KP_ABI_FUNC(kp_status, ob_stat,
            (void *inst, const char *where, kp_object_info *info, kp_meta_visit_fn visit,
             void *arg))

#define KP_FN_OB_READ 504 /* with KP_INST_OBJECTS; since 1.6 */
/**
 * Reads up to *len bytes of the object at where from offset into buf; *len receives the count,
 * less than asked only at the object's end (0 at or past it). tag, when not NULL or "", is
 * OB_STAT's: KP_ERR_CONFLICT when the object is no longer those bytes.
 */
KP_ABI_FUNC(kp_status, ob_read,
            (void *inst, const char *where, const char *tag, uint64_t offset, uint8_t *buf,
             size_t *len))

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_PROVIDER_H */
