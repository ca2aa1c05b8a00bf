/*
 * Envelope: keyplane's self-describing wrapped DEK. It names the chain and, for each
 * protector that wrapped the DEK, the protector's fingerprint and version, the algorithm and
 * the wrapped bytes. Encoded as one line of JSON (docs/envelope.md).
 */
#ifndef KEYPLANE_ENVELOPE_H
#define KEYPLANE_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <keyplane/error.h>
#include <keyplane/provider.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kp_envelope kp_envelope;

/** One wrapping of the DEK inside an envelope. Strings and bytes are borrowed. */
typedef struct kp_envelope_wrap {
    const char *fingerprint; /**< hex SHA-256 of the protector's SPKI */
    uint32_t version;        /**< protector version */
    uint32_t alg;            /**< kp_wrap_alg */
    const uint8_t *wrapped;
    size_t wrapped_len;
} kp_envelope_wrap;

#define KP_ENVELOPE_MAX (64 * 1024) /**< largest encoded envelope accepted */

KP_API KP_WARN_UNUSED kp_status kp_envelope_new(const char *chain, kp_envelope **out);
KP_API void kp_envelope_free(kp_envelope *env);
/** Adds a wrapping (bytes copied). */
KP_API KP_WARN_UNUSED kp_status kp_envelope_add(kp_envelope *env, const kp_envelope_wrap *w);
KP_API const char *kp_envelope_chain(const kp_envelope *env);
KP_API size_t kp_envelope_count(const kp_envelope *env);
KP_API const kp_envelope_wrap *kp_envelope_get0(const kp_envelope *env, size_t i);

/** Encodes as a NUL-terminated JSON line (no newline); caller frees *out with kp_free(). */
KP_API KP_WARN_UNUSED kp_status kp_envelope_encode(const kp_envelope *env, char **out);
/** Decodes; KP_ERR_INTEGRITY with a reason in err (if given) when the text is not a
 *  well-formed envelope, KP_ERR_INVALID_ARG for NULL arguments. */
KP_API KP_WARN_UNUSED kp_status kp_envelope_decode(const char *buf, size_t len, kp_envelope **out,
                                                   char *err, size_t errlen);

/** "RSA-OAEP", "RSA-OAEP-256", "RSA1_5", "A256KW"-style names; NULL for an unknown alg. */
KP_API const char *kp_wrap_alg_name(uint32_t alg);
/** 0 when name is unknown. */
KP_API uint32_t kp_wrap_alg_from_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_ENVELOPE_H */
