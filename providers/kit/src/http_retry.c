/*
 * The kit's retry rule (http.h): which failures and answers are transient, and how long to wait
 * before the next attempt (full-jitter exponential backoff, or the server's Retry-After).
 *
 * Refused connections and unresolvable hosts are not transient here on purpose: they fail at
 * once so a caller holding replicas in other regions fails over instead of waiting. The clock
 * of the deadlines (kpk_http_clock_ms) lives here with the waits it bounds.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/rand.h>

#include "http_internal.h"

static void s_set(kpk__http_failure *out, kp_status st, bool transient, const char *what)
{
    out->status = st;
    out->transient = transient;
    out->what = what;
}

static bool s_reset(long e)
{
    return e == ECONNRESET || e == EPIPE || e == ECONNABORTED;
}

void kpk__http_classify(const kpk__http_outcome *o, kpk__http_failure *out)
{
    if (o->oom) {
        s_set(out, KP_ERR_NOMEM, false, "out of memory");
        return;
    }
    if (o->too_large) {
        s_set(out, KP_ERR_BACKEND, false, "response body too large");
        return;
    }
    if (o->resend_refused) {
        /* libcurl wanted to send the request again on a new connection (the kept-alive one
         * closed without an answer); http.c stopped it so the rule below decides instead */
        s_set(out, KP_ERR_UNAVAILABLE, true, "connection closed without an answer");
        return;
    }
    if (o->rc == CURLE_OUT_OF_MEMORY && o->in_header) {
        /* libcurl 7.x reports a header line over CURL_MAX_HTTP_HEADER (100 KiB) as out of
         * memory: a server's fault, not this process's */
        s_set(out, KP_ERR_BACKEND, false, "response header too large");
        return;
    }
    switch (o->rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        s_set(out, KP_ERR_UNAVAILABLE, false, "host not found");
        break;
    case CURLE_COULDNT_CONNECT:
        /* a listener that took the connection and reset it at once is a hiccup, not a host
         * that is down (libcurl reports that as a failed connect when the reset wins the race) */
        if (s_reset(o->os_errno))
            s_set(out, KP_ERR_UNAVAILABLE, true, "connection reset");
        else
            s_set(out, KP_ERR_UNAVAILABLE, false,
                  o->os_errno == ECONNREFUSED ? "connection refused" : "cannot connect");
        break;
    case CURLE_OPERATION_TIMEDOUT:
        s_set(out, KP_ERR_TIMEOUT, true, "timed out");
        break;
    case CURLE_RECV_ERROR:
        s_set(out, KP_ERR_UNAVAILABLE, true,
              s_reset(o->os_errno) ? "connection reset" : "receive failed");
        break;
    case CURLE_SEND_ERROR:
        s_set(out, KP_ERR_UNAVAILABLE, true,
              s_reset(o->os_errno) ? "connection reset" : "send failed");
        break;
    case CURLE_GOT_NOTHING:
        s_set(out, KP_ERR_UNAVAILABLE, true, "empty reply");
        break;
    case CURLE_PARTIAL_FILE:
        s_set(out, KP_ERR_UNAVAILABLE, true, "response cut short");
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        s_set(out, KP_ERR_INTEGRITY, false, "TLS verification failed");
        break;
    case CURLE_SSL_CACERT_BADFILE:
        s_set(out, KP_ERR_INTEGRITY, false, "CA bundle unusable");
        break;
    case CURLE_SSL_CONNECT_ERROR:
        /* A peer that hung up mid-handshake (transient) comes first: until a certificate was
         * checked libcurl's verify result reads "not verified" (1), not X509_V_OK. Then OpenSSL
         * reports some verification failures as handshake errors, told apart by the verify
         * result, from a peer that speaks no usable TLS. */
        if (s_reset(o->os_errno))
            s_set(out, KP_ERR_UNAVAILABLE, true, "connection reset during the TLS handshake");
        else if (o->verify_result != 0)
            s_set(out, KP_ERR_INTEGRITY, false, "TLS verification failed");
        else
            s_set(out, KP_ERR_UNAVAILABLE, false, "TLS handshake failed");
        break;
    case CURLE_OUT_OF_MEMORY:
        s_set(out, KP_ERR_NOMEM, false, "out of memory");
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        s_set(out, KP_ERR_INVALID_ARG, false, "bad URL");
        break;
    default:
        s_set(out, KP_ERR_BACKEND, false, "transfer failed");
        break;
    }
}

bool kpk__http_status_retryable(long status, bool unsafe)
{
    if (unsafe)
        return status == 429 || status == 503; /* the service did not act on the request */
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

long kpk__http_retry_after_ms(const char *value, time_t now)
{
    if (value == NULL)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)value[0])) {
        long long s = 0;
        const char *p = value;
        for (; isdigit((unsigned char)*p); p++) {
            s = s * 10 + (*p - '0');
            if (s > LONG_MAX / 1000)
                return LONG_MAX; /* absurdly long; the caller caps it */
        }
        while (*p == ' ' || *p == '\t')
            p++;
        return *p == '\0' ? (long)(s * 1000) : -1;
    }
    if (value[0] == '\0' || value[0] == '-' || value[0] == '+')
        return -1;
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    if (t <= now)
        return 0;
    if ((long long)(t - now) > LONG_MAX / 1000)
        return LONG_MAX;
    return (long)(t - now) * 1000;
}

long kpk__http_backoff_ms(long base, long cap, unsigned retry)
{
    long ceiling = cap;
    if (retry < 31 && base <= (cap >> retry))
        ceiling = base << retry;
    if (ceiling <= 0)
        return 0;
    uint64_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        return ceiling; /* no randomness: still bounded, just not spread */
    return (long)(r % ((uint64_t)ceiling + 1));
}

int64_t kpk_http_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kpk__http_sleep(const kpk_http *h, long ms)
{
    if (h->sleep_hook != NULL) {
        h->sleep_hook(h->sleep_arg, ms);
        return;
    }
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
