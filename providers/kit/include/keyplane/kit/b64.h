/*
 * keyplane provider kit: base64 as cloud services send it.
 *
 * Decoding accepts both alphabets (standard and URL-safe), padded or not, because real services
 * and tools mix them (protocols.md A, G: Key Vault examples use standard base64, the service
 * sends unpadded base64url, a vendor .byok file sends padded base64url). Encoding writes unpadded
 * base64url or padded standard base64. Built on OpenSSL's EVP_Encode/Decode.
 */
#ifndef KEYPLANE_KIT_B64_H
#define KEYPLANE_KIT_B64_H

#include <stddef.h>
#include <stdint.h>

#include <keyplane/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes needed to decode inlen characters (an upper bound). */
size_t kp_b64_decoded_max(size_t inlen);

/** Decodes in/inlen (either alphabet, padding optional, no whitespace) into out (at least
 *  kp_b64_decoded_max(inlen) bytes). *outlen receives the length.
 *  KP_ERR_INVALID_ARG when the text is not base64 (bad character, impossible length, a mix of
 *  '-'/'_' with '+'/'/', padding in the middle, non-zero bits after the last byte). */
kp_status kp_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen);

/** Characters needed to encode inlen bytes, plus the NUL. */
size_t kp_b64_encoded_size(size_t inlen);

/** Unpadded base64url of in/inlen into out (kp_b64_encoded_size(inlen) bytes), NUL-terminated;
 *  returns the length written (without the NUL). */
size_t kp_b64url_encode(const uint8_t *in, size_t inlen, char *out);

/** Padded standard base64, otherwise as kp_b64url_encode. */
size_t kp_b64_encode(const uint8_t *in, size_t inlen, char *out);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_KIT_B64_H */
