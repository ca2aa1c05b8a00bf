/*
 * keyplane provider kit: HTTPS transport for cloud plugins (Azure Key Vault, AWS).
 *
 * One kpk_http per plugin instance owns one libcurl easy handle, so consecutive requests reuse
 * the TLS connection (keep-alive). A kpk_http is used by one thread at a time; the caller locks.
 *
 * Retries follow one rule for every cloud plugin: a request is repeated, with capped exponential
 * backoff and full jitter, only when the failure is transient:
 *   - HTTP 429 (honouring Retry-After in seconds or as an HTTP date, capped), 500, 502, 503, 504;
 *   - connection reset, empty reply, receive/send errors, timeouts.
 * Everything else (4xx, TLS verification failures, refused connections, unresolvable hosts)
 * comes back at once. Every send has a deadline: the transport's deadline_ms from its start, or
 * the request's own (kpk_http_request.deadline, when sooner). No attempt runs past it and no
 * wait is begun that would end past it: a Retry-After longer than what is left returns the
 * answer (the 429 or 503) at once, so a caller with replicas elsewhere fails over instead of
 * waiting for a region that asked for an hour. A request marked KPK_HTTP_UNSAFE (one that creates
 * something) is retried only when the service cannot have acted on it: 429 and 503 answers, and
 * failures before the request was sent; a reset or timeout after sending comes back as a transient
 * error so the caller can look before it repeats.
 *
 * "Before the request was sent" is exact: libcurl calls back right before it writes a request on
 * a connection (CURLOPT_PREREQFUNCTION). Until then (DNS, connect, TLS handshake) nothing was
 * sent, so a connect timeout or a reset during the handshake is repeated even for an UNSAFE
 * request; after it, a reset, an empty reply or a timeout is not. libcurl's own habit of
 * sending a request again on a new connection when a kept-alive one closes without an answer
 * is switched off, so every attempt sends the request at most once and is counted.
 *
 * TLS peer and host verification are always on; there is no switch to turn them off.
 * libcurl is initialised lazily (curl_global_init(CURL_GLOBAL_DEFAULT), once per process) by
 * the first kpk_http_new.
 */
#ifndef KEYPLANE_KIT_HTTP_H
#define KEYPLANE_KIT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keyplane/provider.h>
#include <keyplane/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Transport settings; zero members take the defaults noted. */
typedef struct kpk_http_config {
    const char *ca_bundle;   /**< PEM file of trusted CAs; NULL = the system store */
    long connect_timeout_ms; /**< default 5000 */
    long timeout_ms;         /**< whole request including the body, default 30000 */
    unsigned max_attempts;   /**< first try included, default 4 (1..10) */
    long backoff_base_ms;    /**< first backoff, doubled per attempt, default 100 */
    long backoff_cap_ms;     /**< ceiling of one backoff, default 4000 */
    long retry_after_cap_ms; /**< ceiling of an honoured Retry-After, default 30000 */
    long deadline_ms;        /**< one whole send: attempts, backoffs and Retry-After waits;
                                  default 45000, and never less than timeout_ms */
    size_t max_response;     /**< largest body accepted, default 1 MiB */
    const char *user_agent;  /**< default "keyplane-kit/1" */
} kpk_http_config;

typedef struct kpk_http kpk_http;

/** Request flags. */
#define KPK_HTTP_UNSAFE 0x1u       /**< not idempotent: see the retry rule above */
#define KPK_HTTP_KEEP_HEADERS 0x2u /**< keep every response header (kpk_http_header) */

typedef struct kpk_http_request {
    const char *method;         /**< "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;            /**< absolute https:// URL (http:// only for loopback/link-local) */
    const char *const *headers; /**< "Name: value" strings ending with NULL; may be NULL */
    const uint8_t *body;        /**< NULL = no body (POST/PUT/PATCH then send Content-Length: 0) */
    size_t body_len;
    unsigned flags;   /**< KPK_HTTP_UNSAFE */
    int64_t deadline; /**< kpk_http_clock_ms() by which the send must be over (a caller's budget
                           spanning several sends); 0 = the transport's deadline_ms only */
    /** A service's throttling answer that is not a 429 (AWS's JSON services answer 400
     *  ThrottlingException): called with each 4xx answer's status and body (NUL-terminated);
     *  true makes it a throttled answer, counted and repeated as a 429 is (with backoff, also
     *  for an UNSAFE request: the service did not act on it). NULL: the status alone decides. */
    bool (*throttle)(void *arg, long status, const uint8_t *body, size_t len);
    void *throttle_arg;
    /** Where the body of a 2xx answer goes, into_cap bytes at most (a longer one fails as a
     *  body over max_response does), instead of resp->body: a large read lands in the caller's
     *  memory once, without copies. resp->into_len says how much; other answers' bodies (an
     *  error's text) still go to resp->body. NULL: every body goes to resp->body. */
    uint8_t *into;
    size_t into_cap;
} kpk_http_request;

/** Milliseconds of CLOCK_MONOTONIC, the clock of kpk_http_request.deadline. */
int64_t kpk_http_clock_ms(void);

/** A response. Owned by the caller; release with kpk_http_response_free, which wipes the body
 *  (it may hold key material, e.g. an unwrapped DEK). */
typedef struct kpk_http_response {
    long status;   /**< HTTP status of the last attempt */
    uint8_t *body; /**< NUL-terminated (not counted in len); never NULL after KP_OK */
    size_t len;
    char *www_authenticate; /**< value of WWW-Authenticate, NULL when absent */
    char *request_id;       /**< x-ms-request-id, x-amzn-RequestId or x-amz-request-id (S3);
                                 NULL when absent */
    unsigned attempts;      /**< attempts made; also set when kpk_http_send fails */
    size_t into_len;        /**< bytes of a 2xx body written to kpk_http_request.into */
    long retry_after_ms;    /**< > 0 when this answer (a 429 or 503) comes back unrepeated
                                 because its Retry-After, this many ms, ends past the
                                 deadline; 0 otherwise */
    unsigned throttled;     /**< 429 answers among the attempts (waited out or the last one):
                                 what a client-side pacer learns from; also set on failure */
    char *headers; /**< with KPK_HTTP_KEEP_HEADERS: every header of the answer as "name: value\n"
                        lines (values trimmed; lines with control characters and what passes
                        64 KiB dropped); read with kpk_http_header. NULL otherwise */
} kpk_http_response;

/**
 * A header of an answer sent with KPK_HTTP_KEEP_HEADERS: the line ("Name: value\n", not
 * NUL-terminated) of the first header named name (case-insensitive; a name ending in '*'
 * matches every header it prefixes, such as "x-amz-meta-" followed by it), its value in value
 * and len (each may be NULL). With cursor (start with a NULL cursor) the search begins at the
 * cursor, which is then moved past the line returned, so repeated calls visit every match.
 * NULL when no (further) header matches.
 */
const char *kpk_http_header(const kpk_http_response *resp, const char *name, const char **value,
                            size_t *len, const char **cursor);

/**
 * Makes a transport. cfg may be NULL (all defaults); its strings are copied. err receives a
 * one-line reason on failure.
 * @return KP_OK, KP_ERR_INVALID_ARG (bad config), KP_ERR_NOMEM.
 */
kp_status kpk_http_new(const kpk_http_config *cfg, kpk_http **out, char *err, size_t errlen);

/** Frees a transport and closes its connection. NULL is a no-op. */
void kpk_http_free(kpk_http *h);

/**
 * Sends a request, retrying transient failures as described above. resp is overwritten: free
 * an earlier response first. Request headers must be single "Name: value" lines; without a
 * Content-Type header none is sent. err never holds a URL path or query, a header or a body.
 *
 * @return KP_OK when the server answered: any status, including a final 429 or 5xx once the
 *         attempts are spent (resp->status says which; the caller maps it).
 *         Otherwise resp is empty (but for attempts) and err says why, naming host and port:
 *         KP_ERR_UNAVAILABLE  connection refused, reset, empty reply, host not found;
 *         KP_ERR_TIMEOUT      connect or transfer timeout, or the deadline reached;
 *         KP_ERR_INTEGRITY    TLS verification failed (certificate, host name);
 *         KP_ERR_BACKEND      body larger than max_response, a header line larger than
 *                             libcurl takes (CURL_MAX_HTTP_HEADER), or another protocol
 *                             failure;
 *         KP_ERR_INVALID_ARG  bad URL or method; KP_ERR_NOMEM.
 */
kp_status kpk_http_send(kpk_http *h, const kpk_http_request *req, kpk_http_response *resp,
                        char *err, size_t errlen);

/** Wipes and frees what a response holds, leaving it empty. NULL is a no-op. */
void kpk_http_response_free(kpk_http_response *resp);

/** Statistics since kpk_http_new: requests sent (attempts), retries, connections opened. */
typedef struct kpk_http_stats {
    uint64_t attempts, retries, connects;
} kpk_http_stats;
void kpk_http_stats_get(const kpk_http *h, kpk_http_stats *out);

/**
 * The kp_status of a non-2xx HTTP answer, the one map every cloud plugin uses: 401 AUTH,
 * 403 PERMISSION, 404 NOT_FOUND, 408 TIMEOUT, 409 EXISTS, 412 CONFLICT (a conditional write
 * lost), 429 THROTTLED, 5xx UNAVAILABLE, anything else BACKEND. A plugin refines a code its
 * service gives more meaning (Key Vault's 409 for a deleted key) and keeps the rest.
 */
kp_status kpk_http_status(long http_status);

/** An endpoint URL taken apart by kpk_http_url_parse. */
typedef struct kpk_http_url {
    char base[512]; /**< scheme://host[:port], no trailing slash */
    char host[256]; /**< the host name or address, lower-cased, without the port */
    unsigned port;  /**< 0 when the URL names none */
    int https;      /**< 1 for https://, 0 for http:// (only with allow_http) */
} kpk_http_url;

/**
 * Checks an endpoint URL given as a param (name, for the message): https://HOST[:PORT] with an
 * optional trailing '/', and nothing else (no path, query, fragment or user info); HOST of
 * letters, digits, '-' and '.'; PORT 1..65535. allow_http also takes http:// (a local emulator
 * or metadata endpoint, never a default). KP_ERR_CONFIG with a one-line reason in err.
 */
kp_status kpk_http_url_parse(const char *name, const char *url, int allow_http, kpk_http_url *out,
                             char *err, size_t errlen);

/**
 * The transport params every cloud plugin declares, the same names, bounds and help: rows of a
 * kp_param_desc table (provider.h), to be placed in the plugin's list.
 */
#define KPK_HTTP_PARAM_ROWS                                                                        \
    {.name = "ca_bundle",                                                                          \
     .type = KP_PARAM_PATH,                                                                        \
     .help = "PEM file of trusted CAs (default: the system store)"},                               \
        {.name = "timeout_ms",                                                                     \
         .type = KP_PARAM_INT,                                                                     \
         .min = 100,                                                                               \
         .max = 600000,                                                                            \
         .help = "time limit of one request (default 30000)"},                                     \
        {.name = "connect_timeout_ms",                                                             \
         .type = KP_PARAM_INT,                                                                     \
         .min = 100,                                                                               \
         .max = 600000,                                                                            \
         .help = "connect time limit (default 5000)"},                                             \
        {.name = "max_attempts",                                                                   \
         .type = KP_PARAM_INT,                                                                     \
         .min = 1,                                                                                 \
         .max = 10,                                                                                \
         .help = "tries of a request failing transiently (429, 5xx, reset, timeout); default 4"},  \
    {                                                                                              \
        .name = "request_deadline_ms", .type = KP_PARAM_INT, .min = 100, .max = 3600000,           \
        .help = "time limit of any one request with its retries and waits (default 45000, at "     \
                "least timeout_ms)"                                                                \
    }

/** Reads the params of KPK_HTTP_PARAM_ROWS into cfg (members of absent params are left as they
 *  are). ca_bundle points into params: copy it when cfg outlives them. */
void kpk_http_config_params(const kp_param *params, kpk_http_config *cfg);

/** A test hook: when set, called instead of sleeping before a retry (ms = the backoff). */
void kpk_http_set_sleep_hook(kpk_http *h, void (*hook)(void *arg, long ms), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_KIT_HTTP_H */
