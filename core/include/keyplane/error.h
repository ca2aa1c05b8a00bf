/*
 * keyplane error model: kp_status codes (<keyplane/status.h>), their categories and text.
 * Detail text for the last failure lives on the context: kp_ctx_last_error().
 */
#ifndef KEYPLANE_ERROR_H
#define KEYPLANE_ERROR_H

#include <keyplane/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KP_WARN_UNUSED __attribute__((warn_unused_result))
#define KP_API __attribute__((visibility("default")))
#else
#define KP_WARN_UNUSED
#define KP_API
#endif

/** What kind of failure a status is; decides retries and exit codes without strings. */
typedef enum kp_category {
    KP_CAT_OK = 0,
    KP_CAT_USAGE = 1,     /**< the caller's request is malformed */
    KP_CAT_CONFIG = 2,    /**< policy, parameter or plugin problem */
    KP_CAT_AUTH = 3,      /**< credentials or permissions */
    KP_CAT_NOT_FOUND = 4, /**< missing, or already existing, object */
    KP_CAT_TRANSIENT = 5, /**< worth retrying later */
    KP_CAT_BACKEND = 6,   /**< the provider or the local system failed */
    KP_CAT_INTEGRITY = 7, /**< data or key did not verify */
    KP_CAT_INTERNAL = 8   /**< out of memory or a bug */
} kp_category;

/** A static, one-line English description of status. Never NULL. */
KP_API const char *kp_strerror(kp_status status);

/** The symbolic name of status ("KP_ERR_AUTH"). Never NULL. */
KP_API const char *kp_status_name(kp_status status);

/** The category of status. Unknown codes are KP_CAT_INTERNAL. */
KP_API kp_category kp_status_category(kp_status status);

/** "usage", "config", ...; never NULL. */
KP_API const char *kp_category_name(kp_category category);

/** True when retrying the same call later may succeed. */
KP_API int kp_status_is_transient(kp_status status);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_ERROR_H */
