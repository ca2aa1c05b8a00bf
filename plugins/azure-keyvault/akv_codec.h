/*
 * The azure-keyvault plugin's pure layer: what it reads from bytes (the service's and the token
 * endpoints' answers, akv_json.c) and the RSA key conversions of JSON Web Keys (akv_jwk.c). It
 * exists apart from akv_internal.h so that whatever links only these two files (the fuzz target
 * tests/fuzz/fuzz_akv.c) sees only what they define.
 *
 * Nothing here takes an instance or calls the core: a function that can fail returns a kp_status
 * and, where it says more, writes one line of reason into the caller's err buffer (never a secret,
 * never the input quoted). The caller adds where it was and sets the text (kp_akv_err).
 */
#ifndef KP_AKV_CODEC_H
#define KP_AKV_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include <keyplane/kit/codec.h>
#include <keyplane/provider.h>

#define KP_AKV_URL_MAX 512
#define KP_AKV_VERSION_LEN 32 /* hex digits of a vault key version */
#define KP_AKV_ERR 256        /* a parser's reason (err buffers) */

/* akv_json.c: parsers of service answers. */

/** The error body {"error":{"code","message","innererror":{"code"}}} (any part may miss). */
typedef struct kp_akv_error_body {
    char code[64];
    char inner[64];
    char message[768]; /* a 403 names the missing permission after a long identity */
} kp_akv_error_body;
void kp_akv_parse_error(const uint8_t *body, size_t len, kp_akv_error_body *out);

/** A key bundle's key part and attributes. */
typedef struct kp_akv_bundle {
    char name[KP_NAME_MAX];             /* vault key name from the kid */
    char azver[KP_AKV_VERSION_LEN + 1]; /* version from the kid */
    char kid[KP_BACKEND_ID_MAX];
    bool hsm;
    bool enabled;
    int64_t created, exp;
    uint32_t kp_version; /* 0 when untagged */
    char tag_chain[KP_NAME_MAX];
    char tag_fpr[KPK_FPR_HEX];
    uint32_t kp_pending; /* the kp-pending tag: made, not yet checked and labelled; 0 none */
    char tag_prev[KP_AKV_VERSION_LEN + 1]; /* kp-prev: the key's newest version before this one
                                              was made ("" none; akv_keys.c) */
    char recovery[48];                     /* attributes.recoveryLevel, "" when absent */
    uint8_t *spki; /* malloc'd SubjectPublicKeyInfo DER (NULL for list items) */
    size_t spki_len;
    uint32_t bits;
    char fpr[KPK_FPR_HEX];
    bool import_only; /* key_ops is exactly ["import"] (a BYOK KEK) */
} kp_akv_bundle;
void kp_akv_bundle_clear(kp_akv_bundle *b);

/** Parses a KeyBundle (create, import, get, restore): kid, kty RSA/RSA-HSM, n, e, attributes,
 *  tags. KP_ERR_BACKEND with err set when anything required is missing or malformed. */
kp_status kp_akv_parse_bundle(const uint8_t *body, size_t len, kp_akv_bundle *out, char *err,
                              size_t errlen);

/** What a listing calls for each item (a list item: no key material, spki NULL); a status other
 *  than KP_OK stops the listing and is returned. */
typedef kp_status kp_akv_item_fn(void *arg, const kp_akv_bundle *b);

/** Parses one page of a list: calls item for each element of value[] and copies nextLink (or ""
 *  when null/absent). */
kp_status kp_akv_parse_page(const uint8_t *body, size_t len, kp_akv_item_fn *item, void *arg,
                            char *next, size_t nextlen, char *err, size_t errlen);

/** Parses {"value": base64url} (wrap, unwrap, backup) into out (at most *outlen bytes). */
kp_status kp_akv_parse_value(const uint8_t *body, size_t len, uint8_t *out, size_t *outlen,
                             char *err, size_t errlen);

/** Parses a token answer (AAD v2, v1 or IMDS): access_token into tok (a NUL-terminated copy of
 *  at most toklen-1 bytes) and the lifetime in seconds from expires_in, or expires_on - now,
 *  each a number or a string of digits. */
kp_status kp_akv_parse_token(const uint8_t *body, size_t len, time_t now, char *tok, size_t toklen,
                             int64_t *lifetime, char *err, size_t errlen);
/** The AAD error body {"error","error_description"} as "error: first line of description". */
void kp_akv_parse_token_error(const uint8_t *body, size_t len, char *out, size_t outlen);

/** A parsed WWW-Authenticate Bearer challenge. */
typedef struct kp_akv_challenge {
    char authorization[KP_AKV_URL_MAX]; /* authorization or authorization_uri */
    char resource[KP_AKV_URL_MAX];      /* resource, or scope without /.default */
    char scope[KP_AKV_URL_MAX];         /* scope, or resource + /.default */
    char tenant[128];                   /* first path segment of authorization */
} kp_akv_challenge;
kp_status kp_akv_parse_challenge(const char *header, kp_akv_challenge *out, char *err,
                                 size_t errlen);

/* akv_jwk.c: RSA keys as JSON Web Keys. The status is the whole answer (the caller words it):
 * KP_ERR_NOMEM, or the one named for malformed input. */

/** SubjectPublicKeyInfo DER (malloc'd) and its fingerprint from base64url n and e.
 *  KP_ERR_BACKEND when they are not an RSA public key of 1024 to 8192 bits. */
kp_status kp_akv_spki_from_ne(const char *n, size_t nlen, const char *e, size_t elen,
                              uint8_t **spki, size_t *spki_len, uint32_t *bits,
                              char fpr[KPK_FPR_HEX]);
/** The JWK members n, e, d, p, q, dp, dq, qi of a PKCS#8 RSA key, set into jwk (wipe it with
 *  kp_akv_json_wipe before it is freed). Also returns bits and fingerprint. KP_ERR_INVALID_ARG
 *  when der is not an RSA PKCS#8 key. */
kp_status kp_akv_jwk_from_pkcs8(const uint8_t *der, size_t len, json_t *jwk, uint32_t *bits,
                                char fpr[KPK_FPR_HEX]);
/** Wipes every string value in a JSON tree (key material in jansson's memory); the caller frees
 *  it after. */
void kp_akv_json_wipe(json_t *j);

#endif
