/*
 * keyplane provider kit: AWS Signature Version 4 (header-based signing).
 *
 * Written here rather than taken from libcurl: Debian 12's libcurl 7.88.1 (CURLOPT_AWS_SIGV4)
 * signs S3 requests wrongly (the query is not canonicalised, paths are not encoded, headers are
 * sorted as "name:value" so SSE-KMS's two headers come out of order, and no payload hash is
 * added). The algorithm is AWS's ("Create a signed AWS API request", AWS General Reference);
 * the HMACs and hashes are OpenSSL's. The kit checks itself against AWS's published SigV4 test
 * suite and against botocore's signer (tests/unit/test_sigv4.c, tests/unit/sigv4_botocore.py).
 *
 * What a caller does: build the request's path and query with kpk_aws_uri_encode (the canonical
 * query with kpk_sigv4_query, which is also what to send), list the headers to sign, call
 * kpk_sigv4_sign, and send the headers it returns with the request unchanged.
 */
#ifndef KEYPLANE_KIT_SIGV4_H
#define KEYPLANE_KIT_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <keyplane/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The payload hash S3 accepts in place of the body's SHA-256 (over TLS). */
#define KPK_SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"

/** Longest Authorization header value kpk_sigv4_sign writes, NUL included. */
#define KPK_SIGV4_AUTH_MAX 2048

/** Credentials to sign with. Borrowed for the call; the secret is wiped from every buffer the
 *  kit derives from it. */
typedef struct kpk_sigv4_creds {
    const char *access_key_id;     /**< AKIA... / ASIA... */
    const char *secret_access_key; /**< not NUL-terminated necessarily: secret_len bytes */
    size_t secret_len;
    const char *session_token; /**< NULL or "": long-term credentials */
} kpk_sigv4_creds;

/** One request to sign. Every member is borrowed for the call. */
typedef struct kpk_sigv4_request {
    const char *method;  /**< "GET", "PUT", "POST", "HEAD", "DELETE" */
    const char *host;    /**< the Host header as sent: "s3.us-east-1.amazonaws.com",
                              "127.0.0.1:8443" (with the port when it is not the scheme's) */
    const char *path;    /**< the path as sent, already percent-encoded; "" means "/" */
    const char *query;   /**< the query as sent, without '?'; NULL or "" for none. The signer
                              canonicalises it as AWS does (split on '&', each name and value
                              percent-decoded then encoded again, sorted); a query made by
                              kpk_sigv4_query is canonical already */
    const char *region;  /**< "us-east-1" */
    const char *service; /**< signing name: "s3", "secretsmanager", "kms", "sts" */
    /** Further headers to sign, "Name: value" each, ending with NULL; may be NULL. Names are
     *  matched case-insensitively; a name given twice is signed once with the values joined
     *  by ','. Never include Host, X-Amz-Date, X-Amz-Content-SHA256, X-Amz-Security-Token or
     *  Authorization: the signer adds them. Headers the signer must not sign (User-Agent,
     *  Expect, Content-Length is fine to sign but need not be) are left out by the caller. */
    const char *const *headers;
    /** The body's SHA-256 in lower-case hex, KPK_SIGV4_UNSIGNED (S3 only), or NULL: the signer
     *  hashes body/body_len itself (NULL body = empty). */
    const char *payload_hash;
    const uint8_t *body;
    size_t body_len;
    /** S3 rules: the path is signed exactly as given (encoded once, not normalised) and
     *  X-Amz-Content-SHA256 is signed and sent. Otherwise the path is normalised (dot segments,
     *  repeated '/') and encoded a second time, and the payload hash is only in the canonical
     *  request. */
    int s3;
    time_t when; /**< signing time (UTC seconds); 0 = now */
} kpk_sigv4_request;

/** What to send: each member is a complete "Name: value" line for the request's headers. */
typedef struct kpk_sigv4_out {
    char authorization[KPK_SIGV4_AUTH_MAX + 16]; /**< "Authorization: AWS4-HMAC-SHA256 ..." */
    char amz_date[32];                           /**< "X-Amz-Date: 20150830T123600Z" */
    char content_sha256[96]; /**< "X-Amz-Content-SHA256: <hex>" for S3; "" otherwise */
    char *security_token;    /**< "X-Amz-Security-Token: ..." (malloc'd, the caller frees it
                                  with kpk_sigv4_out_free) or NULL without a session token */
    char signature[65];      /**< the hex signature alone (tests, logs of nothing secret) */
} kpk_sigv4_out;

/**
 * Signs req with creds. out is overwritten (free an earlier one first); on failure it is left
 * empty (all "" and NULL). err gets one line on failure, never holding a credential or header
 * value.
 * @return KP_OK; KP_ERR_INVALID_ARG for a missing member, a region or service outside
 *         [a-z0-9-], a header line without ':', a query with a bad %-escape, a header value
 *         with a control character; also for a method that is not upper-case letters, a host
 *         with a space or control character, a path neither "" nor starting with '/', a path or
 *         query with a control character, a header name that is no HTTP token or is one the
 *         signer adds itself, a payload_hash that is neither 64 lower-case hex digits nor (S3)
 *         KPK_SIGV4_UNSIGNED, body NULL with body_len > 0, an access key id with a space, '/',
 *         ',' or control character, a session token with a control character, a signing time
 *         before 1970 or after 9999, and signed header names too long for KPK_SIGV4_AUTH_MAX;
 *         KP_ERR_NOMEM; KP_ERR_CRYPTO when OpenSSL fails.
 */
kp_status kpk_sigv4_sign(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds,
                         kpk_sigv4_out *out, char *err, size_t errlen);

/** Frees what out holds (the session-token line) and wipes it. NULL is a no-op. */
void kpk_sigv4_out_free(kpk_sigv4_out *out);

/** The canonical request and the string to sign of req (tests and SignatureDoesNotMatch
 *  diagnostics), malloc'd; the caller frees both. Give req->when the time the signature used
 *  (0 is now). Of creds only the session token is read (it is a signed header; NULL creds: no
 *  token), never the secret; with a token the canonical request holds it, so it is a
 *  credential: never log it as it is. On failure both are NULL; the statuses are
 *  kpk_sigv4_sign's. */
kp_status kpk_sigv4_debug(const kpk_sigv4_request *req, const kpk_sigv4_creds *creds,
                          char **canonical_request, char **string_to_sign);

/**
 * Percent-encodes in/len the way SigV4 wants (RFC 3986 unreserved characters A-Z a-z 0-9 - _ . ~
 * kept, everything else %XX with upper-case hex), keeping '/' when keep_slash (an S3 key in a
 * path). Writes at most cap bytes including the NUL.
 * @return the length written (without the NUL); (size_t)-1 when it does not fit (out is then "",
 *         unless out is NULL or cap 0) or in is NULL with len > 0.
 */
size_t kpk_aws_uri_encode(const char *in, size_t len, int keep_slash, char *out, size_t cap);

/** One query parameter for kpk_sigv4_query: raw (unencoded) name and value; value NULL is a
 *  parameter without a value ("?uploads"), which is written "uploads=". */
typedef struct kpk_query_param {
    const char *name;
    const char *value;
} kpk_query_param;

/**
 * The canonical query string of n params (sorted by encoded name, then encoded value; each
 * encoded with kpk_aws_uri_encode, '/' encoded too), malloc'd into *out ("" for n == 0). Send
 * exactly this string as the URL's query, so what is signed is what is sent.
 * @return KP_OK; KP_ERR_INVALID_ARG for out NULL, params NULL with n > 0 or a NULL name (*out is
 *         then NULL); KP_ERR_NOMEM.
 */
kp_status kpk_sigv4_query(const kpk_query_param *params, size_t n, char **out);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_KIT_SIGV4_H */
