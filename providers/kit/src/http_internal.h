/*
 * Internals of the kit's HTTP transport, shared by http.c (the send loop), http_io.c (what
 * libcurl hands back: body and headers) and http_retry.c (the retry rule and its waits).
 */
#ifndef KEYPLANE_KIT_HTTP_INTERNAL_H
#define KEYPLANE_KIT_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include <keyplane/kit/http.h>

/* What one attempt received; reset before every attempt, so only the last response counts. */
typedef struct kpk__http_rx {
    uint8_t *body; /* cap bytes; body[len] is kept NUL */
    size_t len, cap, max;
    bool too_large; /* the body (or its Content-Length) exceeded max: the transfer was stopped */
    bool oom;       /* an allocation failed in a callback: the transfer was stopped */
    bool in_header; /* between a status line and the blank line that ends its header */
    char *www_authenticate, *request_id, *retry_after;
    bool keep;   /* KPK_HTTP_KEEP_HEADERS: every header line is kept in lines */
    char *lines; /* "name: value\n" per header, the value trimmed; NUL-terminated */
    size_t lines_len;
    long status;   /* of the status line last seen */
    uint8_t *into; /* kpk_http_request.into: a 2xx body goes there, into_cap at most */
    size_t into_cap, into_len;
    bool head; /* a HEAD: its Content-Length announces no body */
} kpk__http_rx;

struct kpk_http {
    CURL *curl;
    char *ca_bundle, *user_agent;
    long connect_timeout_ms, timeout_ms, backoff_base_ms, backoff_cap_ms, retry_after_cap_ms;
    long deadline_ms;
    unsigned max_attempts;
    size_t max_response;
    char errbuf[CURL_ERROR_SIZE];
    kpk__http_rx rx;
    /* How often libcurl was about to send the current attempt's request (CURLOPT_PREREQFUNCTION).
     * 0 after a failure = nothing was sent; a second call is libcurl repeating the request by
     * itself on a new connection, which http.c refuses (see s_prereq). */
    unsigned prereqs;
    bool resend_refused;
    kpk_http_stats stats;
    void (*sleep_hook)(void *arg, long ms);
    void *sleep_arg;
};

/* http_io.c: libcurl callbacks (userdata = the kpk__http_rx) and the receive state. */
size_t kpk__http_on_body(char *data, size_t size, size_t n, void *userdata);
size_t kpk__http_on_header(char *data, size_t size, size_t n, void *userdata);
/* Wipes and frees what rx holds and empties it; max survives. */
void kpk__http_rx_reset(kpk__http_rx *rx);
/* Moves rx into resp (body never NULL afterwards). KP_ERR_NOMEM leaves rx as it was. */
kp_status kpk__http_rx_take(kpk__http_rx *rx, kpk_http_response *resp);

/* http_retry.c: the retry rule (see http.h) as functions of what an attempt saw. */

/* How one failed transfer (curl_easy_perform != CURLE_OK) comes back to the caller. */
typedef struct kpk__http_failure {
    kp_status status; /* KP_ERR_UNAVAILABLE, _TIMEOUT, _INTEGRITY, _BACKEND, ... */
    bool transient;   /* worth another attempt (before the UNSAFE rule applies) */
    const char *what; /* a few words: "connection reset", "TLS verification failed" */
} kpk__http_failure;

typedef struct kpk__http_outcome {
    CURLcode rc;
    long os_errno;      /* CURLINFO_OS_ERRNO */
    long verify_result; /* CURLINFO_SSL_VERIFYRESULT: an X509_V_ERR_* or 0 */
    bool too_large;     /* the body limit stopped the transfer */
    bool oom;           /* a callback ran out of memory */
    bool resend_refused;
    bool in_header; /* the transfer stopped inside a response header */
} kpk__http_outcome;

void kpk__http_classify(const kpk__http_outcome *o, kpk__http_failure *out);

/* Whether an answer with this status is repeated (429, 500, 502, 503, 504; UNSAFE: 429, 503). */
bool kpk__http_status_retryable(long status, bool unsafe);

/* Retry-After as milliseconds: delta-seconds or an HTTP date (relative to now; a past date is
 * 0). -1 when value is NULL or neither form. Not capped: the caller caps. */
long kpk__http_retry_after_ms(const char *value, time_t now);

/* A full-jitter backoff before retry number retry (0 = the first): uniform in
 * [0, min(cap, base * 2^retry)]. */
long kpk__http_backoff_ms(long base, long cap, unsigned retry);

/* Sleeps ms milliseconds (through the hook when one is set). */
void kpk__http_sleep(const kpk_http *h, long ms);

#endif /* KEYPLANE_KIT_HTTP_INTERNAL_H */
