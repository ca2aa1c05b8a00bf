/*
 * keyplane status codes, shared by libkeyplane and provider plugins.
 *
 * Codes are only ever appended; a retired code keeps its number (the curl rule). Each code
 * belongs to one category (kp_status_category() in <keyplane/error.h>), so callers and retry
 * loops decide what to do without matching strings.
 */
#ifndef KEYPLANE_STATUS_H
#define KEYPLANE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/** Result of every public keyplane function and every provider ABI function. 0 is success. */
typedef enum kp_status {
    KP_OK = 0,
    /* usage: the caller asked for something malformed */
    KP_ERR_INVALID_ARG = 1,      /**< an argument is NULL, out of range or malformed */
    KP_ERR_BUFFER_TOO_SMALL = 2, /**< an output buffer is too small; the needed size is returned */
    KP_ERR_UNSUPPORTED = 3,      /**< the operation or algorithm is not offered by this provider */
    /* config: the policy or a parameter is wrong */
    KP_ERR_CONFIG = 4, /**< policy or parameter error */
    KP_ERR_PLUGIN = 5, /**< a plugin could not be loaded or violates the ABI */
    KP_ERR_ABI = 6,    /**< ABI version mismatch between core and plugin */
    /* auth */
    KP_ERR_AUTH = 7,       /**< credentials missing or rejected (wrong passphrase, PIN, token) */
    KP_ERR_PERMISSION = 8, /**< authenticated but not allowed */
    /* not found / conflict */
    KP_ERR_NOT_FOUND = 9, /**< key, version, secret, instance or file does not exist */
    KP_ERR_EXISTS = 10,   /**< the object already exists */
    /* transient: worth retrying */
    KP_ERR_UNAVAILABLE = 11, /**< service unreachable or temporarily failing */
    KP_ERR_TIMEOUT = 12,     /**< operation timed out */
    KP_ERR_THROTTLED = 13,   /**< rate limited */
    /* backend */
    KP_ERR_BACKEND = 14, /**< the provider's backend reported an error */
    KP_ERR_IO = 15,      /**< local I/O failure */
    /* integrity */
    KP_ERR_INTEGRITY = 16, /**< data failed an authenticity or consistency check */
    KP_ERR_CRYPTO = 17,    /**< a cryptographic operation failed (bad padding, wrong key) */
    /* internal */
    KP_ERR_NOMEM = 18,    /**< out of memory */
    KP_ERR_INTERNAL = 19, /**< a bug: an invariant does not hold */
    /* auth (appended after the others, hence out of place) */
    KP_ERR_DENIED = 20, /**< refused by policy (export of a non-exportable key, ...) */
    /* not found / conflict (appended) */
    KP_ERR_CONFLICT = 21, /**< a conditional write lost: the object changed since it was read */
    /* Append new codes above this line, never renumber. */
    KP_STATUS_COUNT_ = 22
} kp_status;

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_STATUS_H */
