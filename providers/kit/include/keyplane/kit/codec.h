/*
 * keyplane provider kit, codec part: the encodings every store and the core share, on OpenSSL
 * only (no libcurl), so libkeyplane and every plugin use one implementation of each.
 *
 * - base64 as cloud services send it. Decoding accepts both alphabets (standard and URL-safe),
 *   padded or not, because real services and tools mix them (RFC 4648 sections 4 and 5; Key
 *   Vault's documentation shows standard base64 while the service sends unpadded base64url, and
 *   a vendor .byok file carries padded base64url). The strictness rule is one for every caller:
 *   no whitespace, no mix of the two alphabets, padding only at the end and only in whole
 *   groups, no non-zero bits after the last byte. Encoding writes unpadded base64url or padded
 *   standard base64.
 * - lower-case hex.
 * - the key fingerprint: lower-case hex SHA-256 of the SubjectPublicKeyInfo DER, the one form a
 *   version's identity takes everywhere (kp_key_info.fingerprint, envelopes, state documents).
 * - name checks: the key/secret name rule of the provider ABI, and the plugin name rule of the
 *   loader (docs/abi.md), so the loader and the conformance kit hold a plugin to one rule; and a
 *   message's leading "NAME: " taken off where the line names NAME already.
 */
#ifndef KEYPLANE_KIT_CODEC_H
#define KEYPLANE_KIT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keyplane/provider.h>
#include <keyplane/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes needed to decode inlen characters (an upper bound). */
size_t kpk_b64_decoded_max(size_t inlen);

/** Decodes in/inlen (either alphabet, padding optional) into out (at least
 *  kpk_b64_decoded_max(inlen) bytes). *outlen receives the length.
 *  KP_ERR_INVALID_ARG when the text is not base64 by the rule above. */
kp_status kpk_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen);

/** Characters needed to encode inlen bytes, plus the NUL. */
size_t kpk_b64_encoded_size(size_t inlen);

/** Unpadded base64url of in/inlen into out (kpk_b64_encoded_size(inlen) bytes), NUL-terminated;
 *  returns the length written (without the NUL). */
size_t kpk_b64url_encode(const uint8_t *in, size_t inlen, char *out);

/** Padded standard base64, otherwise as kpk_b64url_encode. */
size_t kpk_b64_encode(const uint8_t *in, size_t inlen, char *out);

/** The encoding of in/inlen in a malloc'd NUL-terminated string (the caller frees it): unpadded
 *  base64url when url, else padded standard base64. *out is NULL on failure: KP_ERR_NOMEM, or
 *  KP_ERR_INVALID_ARG for a NULL out or a NULL in with inlen > 0. */
kp_status kpk_b64_encode_alloc(const uint8_t *in, size_t inlen, bool url, char **out);

/** kpk_b64_decode into a malloc'd buffer (the caller frees it; never NULL on KP_OK, even for
 *  no bytes). *out is NULL and *outlen 0 on failure: KP_ERR_INVALID_ARG when the text is not
 *  base64 by the rule above, KP_ERR_NOMEM. */
kp_status kpk_b64_decode_alloc(const char *in, size_t inlen, uint8_t **out, size_t *outlen);

/** Lower-case hex of in/inlen into out (2 * inlen + 1 bytes), NUL-terminated. */
void kpk_hex_encode(const uint8_t *in, size_t inlen, char *out);

/** Whether kid can head a BYOK transfer file: a versioned Key Vault key id,
 *  https://HOST/keys/NAME/VERSION with a version of 32 hex digits, of letters, digits and
 *  : / . - _ only (at most 1024 characters). */
bool kpk_byok_kid_valid(const char *kid);
/** The BYOK transfer file (.byok JSON) of blob, the key RSA-AES-wrapped under the key-exchange
 *  key kek_kid, into a malloc'd NUL-terminated *out of *outlen bytes (the caller frees it).
 *  KP_ERR_INVALID_ARG for a kid kpk_byok_kid_valid refuses, an empty blob, or a generator with
 *  quotes, backslashes or control characters; KP_ERR_NOMEM. */
kp_status kpk_byok_file(const char *kek_kid, const uint8_t *blob, size_t bloblen,
                        const char *generator, char **out, size_t *outlen);

/** A random (version 4) UUID, lower-case with hyphens, into out: a request id (RFC 9562 5.4).
 *  false when the random generator fails (out is then all zeros, still a valid string). */
bool kpk_uuid4(char out[37]);

/** Decodes exactly outlen bytes from hex text (either case, exactly 2 * outlen digits).
 *  KP_ERR_INVALID_ARG otherwise. */
kp_status kpk_hex_decode(const char *in, uint8_t *out, size_t outlen);

/** Characters of a fingerprint, without the NUL (KPK_FPR_HEX - 1 of provider.h). */
#define KPK_FPR_CHARS 64

/** The fingerprint of a SubjectPublicKeyInfo DER into hex (KPK_FPR_CHARS + 1 bytes).
 *  KP_ERR_INVALID_ARG when spki is empty, KP_ERR_CRYPTO when hashing fails. */
kp_status kpk_fpr_spki(const uint8_t *spki, size_t len, char *hex);

/** The fingerprint of the public half of pkey (an EVP_PKEY *, given as void * so that this
 *  header needs no OpenSSL header). KP_ERR_INVALID_ARG when it has no public key. */
kp_status kpk_fpr_pkey(const void *pkey, char *hex);

/** The fingerprint of the public key of the DER X.509 certificate that is exactly der/len
 *  (at most KP_CERT_DER_MAX bytes) into hex (KPK_FPR_CHARS + 1 bytes): a certificate belongs to
 *  a key version when this equals the version's fingerprint. KP_ERR_INVALID_ARG when the bytes
 *  are not one certificate and nothing else, or its key has no public part OpenSSL reads. */
kp_status kpk_cert_fpr(const uint8_t *der, size_t len, char *hex);

/** True when s is a well-formed fingerprint: exactly 64 lower-case hex digits. */
bool kpk_fpr_valid(const char *s);

/** True when the RSA private key pkey (an EVP_PKEY *) holds together: n = p*q, d*e = 1 modulo
 *  p-1 and q-1, its CRT values are those of d, p and q (0 < qInv < p), e is odd and above 1,
 *  and a random value encrypted with e comes back through the CRT halves. A key that fails
 *  would wrap DEKs that some implementation cannot unwrap. The primality of p and q is not
 *  tested (EVP_PKEY_pairwise_check's cost, tens of milliseconds per key); the round trip
 *  catches a composite factor, at one RSA decryption's cost. False for a key without its
 *  private parts. */
bool kpk_rsa_consistent(const void *pkey);

/** The public key (an EVP_PKEY *, the caller frees it) of a DER SubjectPublicKeyInfo that is
 *  exactly der/len; NULL when it is not one. A plain rsaEncryption key is read without OpenSSL's
 *  decoder framework (microseconds instead of a fifth of a millisecond), any other through
 *  d2i_PUBKEY. */
void *kpk_pkey_spki(const uint8_t *der, size_t len);

/** The wrapped key transfer KP_KEYX_RSA_AES_KWP_SHA1/_SHA256 (kp_keyx_method): pkcs8 (a PKCS#8
 *  PrivateKeyInfo) wrapped under the RSA SubjectPublicKeyInfo spki (at least 2048 bits), the RSA
 *  part then the RFC 5649 part, into out by the buffer convention (the size is known before
 *  anything is computed). KP_ERR_UNSUPPORTED for another method, KP_ERR_INVALID_ARG for a
 *  wrapping key that is not RSA or too weak; the error text through up/h, starting "key wrap:".
 *  A failure leaves nothing in out. */
kp_status kpk_keyx_wrap(const kp_upcalls *up, kp_core_handle *h, uint32_t method,
                        const uint8_t *spki, size_t spki_len, const kp_secret *pkcs8, uint8_t *out,
                        size_t *outlen);

/** RSA-OAEP (KP_WRAP_RSA_OAEP_SHA1/_SHA256: MGF1 with the same hash, no label) of dek under the
 *  RSA SubjectPublicKeyInfo spki, into out by the buffer convention: a keystore that wraps with
 *  a public key it holds (a cloud KMS whose service only decrypts). KP_ERR_UNSUPPORTED for
 *  another algorithm, KP_ERR_INVALID_ARG for a key that is not RSA or a dek that does not fit. */
kp_status kpk_oaep_wrap(const kp_upcalls *up, kp_core_handle *h, uint32_t alg, const uint8_t *spki,
                        size_t spki_len, const kp_secret *dek, uint8_t *out, size_t *outlen);

/** A reusable reader of RSA private keys (kpk_p8_decode), safe to share between threads. */
typedef struct kpk_p8_decoder kpk_p8_decoder;

/** A new decoder (the caller frees it with kpk_p8_decoder_free), or NULL when memory is short
 *  (kpk_p8_decode then still works, the slow way). */
kpk_p8_decoder *kpk_p8_decoder_new(void);
void kpk_p8_decoder_free(kpk_p8_decoder *d);

/** The private key (an EVP_PKEY *, the caller frees it) of a PKCS8_PRIV_KEY_INFO *, as
 *  EVP_PKCS82PKEY_ex makes it; NULL when it is not one. An rsaEncryption key goes
 *  through d's decoder context, made once (0.02 ms instead of 0.8 per key), its private
 *  numbers into OpenSSL's secure heap as the general decoder puts them; any other key, or any
 *  key when d is NULL, through EVP_PKCS82PKEY_ex. */
void *kpk_p8_decode(kpk_p8_decoder *d, const void *p8inf);

/** True when name is a key or secret name of the provider ABI: 1..127 of [A-Za-z0-9._-], not
 *  starting with '.' (so no name is "." or ".." or a hidden file). */
bool kpk_key_name_valid(const char *name);

/** Longest plugin name, in characters. */
#define KPK_PLUGIN_NAME_MAX 64

/** True when name is a plugin name: 1..KPK_PLUGIN_NAME_MAX of [a-z0-9_-] (the NAME of the
 *  plugin file NAME.so and of kp_plugin_info.name). */
bool kpk_plugin_name_valid(const char *name);

/** text without a leading "NAME: " (an instance's message about itself, on a line that names
 *  the instance already), else text itself. */
const char *kpk_after_name(const char *text, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_KIT_CODEC_H */
