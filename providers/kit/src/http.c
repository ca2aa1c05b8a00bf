/*
 * The kit's HTTPS transport: one libcurl easy handle per kpk_http (so its connection is kept
 * alive between requests) and the send loop that applies the retry rule of http.h.
 *
 * libcurl is initialised lazily, once per process (pthread_once), by the first kpk_http_new:
 * plugins cannot know whether the program already did it, and curl_global_init is not safe to
 * race with itself.
 *
 * One attempt is one curl_easy_perform that sends the request at most once. libcurl by itself
 * sends a request again on a fresh connection when a kept-alive one closes before any answer
 * (for every method); s_prereq stops that, so the retry rule here sees the failure and decides,
 * and a request marked KPK_HTTP_UNSAFE is never sent twice behind the caller's back.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "http_internal.h"

#define S_DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define S_DEFAULT_TIMEOUT_MS 30000L
#define S_DEFAULT_ATTEMPTS 4u
#define S_MAX_ATTEMPTS 10u
#define S_DEFAULT_BACKOFF_BASE_MS 100L
#define S_DEFAULT_BACKOFF_CAP_MS 4000L
#define S_DEFAULT_RETRY_AFTER_CAP_MS 30000L
#define S_DEFAULT_DEADLINE_MS 45000L
#define S_DEFAULT_MAX_RESPONSE ((size_t)1 << 20)
#define S_DEFAULT_USER_AGENT "keyplane-kit/1"
/* Hosts reached over plain http: loopback, the instance metadata address (Azure's and EC2's
 * IMDS) and the container credential endpoints of ECS (169.254.170.2) and EKS Pod Identity
 * (169.254.170.23), all plain http by design and link-local, never routed off the host. */
#define S_NO_PROXY "127.0.0.1,localhost,::1,169.254.169.254,169.254.170.2,169.254.170.23"

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static CURLcode s_global_rc = CURLE_FAILED_INIT;

static void s_global_init(void)
{
    s_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

__attribute__((format(printf, 3, 4))) static void s_err(char *err, size_t errlen, const char *fmt,
                                                        ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    }
}

static char *s_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* Refuses libcurl's own second sending of a request within one attempt (see the top). Its
 * fresh connection is refused in s_open, before it is made; this is the backstop for a resend
 * over another cached connection. */
/* NOLINTNEXTLINE(readability-non-const-parameter): libcurl's CURLOPT_PREREQFUNCTION type */
static int s_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                    int local_port)
{
    kpk_http *h = clientp;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (h->prereqs++ > 0) {
        h->resend_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* libcurl's socket, plus close-on-exec; and no new connection for a resend (see s_prereq). */
static curl_socket_t s_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    kpk_http *h = clientp;
    if (purpose == CURLSOCKTYPE_IPCXN && h->prereqs > 0) {
        h->resend_refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static CURLcode s_setup(kpk_http *h)
{
    CURL *c = h->curl;
    CURLcode rc = CURLE_OK;
#define S_SET(opt, val)                                                                            \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    S_SET(CURLOPT_NOSIGNAL, 1L);
    S_SET(CURLOPT_TCP_KEEPALIVE, 1L);
    S_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    S_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    S_SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (h->ca_bundle != NULL) {
        S_SET(CURLOPT_CAINFO, h->ca_bundle);
        S_SET(CURLOPT_CAPATH, (char *)NULL); /* the bundle alone, not the system store too */
    }
    S_SET(CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
    S_SET(CURLOPT_TIMEOUT_MS, h->timeout_ms);
    S_SET(CURLOPT_FOLLOWLOCATION, 0L);
    S_SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    S_SET(CURLOPT_NOPROXY, S_NO_PROXY);
    /* one request at a time per handle: HTTP/1.1 keep-alive is all the reuse there is */
    S_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    S_SET(CURLOPT_USERAGENT, h->user_agent);
    S_SET(CURLOPT_ERRORBUFFER, h->errbuf);
    S_SET(CURLOPT_WRITEFUNCTION, kpk__http_on_body);
    S_SET(CURLOPT_WRITEDATA, &h->rx);
    S_SET(CURLOPT_HEADERFUNCTION, kpk__http_on_header);
    S_SET(CURLOPT_HEADERDATA, &h->rx);
    S_SET(CURLOPT_PREREQFUNCTION, s_prereq);
    S_SET(CURLOPT_PREREQDATA, h);
    S_SET(CURLOPT_OPENSOCKETFUNCTION, s_open);
    S_SET(CURLOPT_OPENSOCKETDATA, h);
#undef S_SET
    return rc;
}

/* The configuration with its defaults into h, which owns copies of its strings. */
static kp_status s_fill(kpk_http *h, const kpk_http_config *cfg, char *err, size_t errlen)
{
    h->connect_timeout_ms =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : S_DEFAULT_CONNECT_TIMEOUT_MS;
    h->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : S_DEFAULT_TIMEOUT_MS;
    h->max_attempts = cfg->max_attempts ? cfg->max_attempts : S_DEFAULT_ATTEMPTS;
    h->backoff_base_ms = cfg->backoff_base_ms ? cfg->backoff_base_ms : S_DEFAULT_BACKOFF_BASE_MS;
    h->backoff_cap_ms = cfg->backoff_cap_ms ? cfg->backoff_cap_ms : S_DEFAULT_BACKOFF_CAP_MS;
    h->retry_after_cap_ms =
        cfg->retry_after_cap_ms ? cfg->retry_after_cap_ms : S_DEFAULT_RETRY_AFTER_CAP_MS;
    h->deadline_ms = cfg->deadline_ms ? cfg->deadline_ms : S_DEFAULT_DEADLINE_MS;
    if (h->deadline_ms < h->timeout_ms)
        h->deadline_ms = h->timeout_ms;
    h->max_response = cfg->max_response ? cfg->max_response : S_DEFAULT_MAX_RESPONSE;
    h->rx.max = h->max_response;
    h->user_agent = s_strdup(cfg->user_agent ? cfg->user_agent : S_DEFAULT_USER_AGENT);
    bool ok = h->user_agent != NULL;
    if (ok && cfg->ca_bundle != NULL)
        ok = (h->ca_bundle = s_strdup(cfg->ca_bundle)) != NULL;
    if (ok)
        ok = (h->curl = curl_easy_init()) != NULL;
    if (!ok) {
        s_err(err, errlen, "http: out of memory");
        return KP_ERR_NOMEM;
    }
    return KP_OK;
}

kp_status kpk_http_new(const kpk_http_config *cfg, kpk_http **out, char *err, size_t errlen)
{
    static const kpk_http_config none;
    if (out == NULL) {
        s_err(err, errlen, "kpk_http_new: out is NULL");
        return KP_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (cfg == NULL)
        cfg = &none;
    if (cfg->connect_timeout_ms < 0 || cfg->timeout_ms < 0 || cfg->backoff_base_ms < 0 ||
        cfg->backoff_cap_ms < 0 || cfg->retry_after_cap_ms < 0 || cfg->deadline_ms < 0) {
        s_err(err, errlen, "http: timeouts and backoffs must not be negative");
        return KP_ERR_INVALID_ARG;
    }
    if (cfg->max_attempts > S_MAX_ATTEMPTS) {
        s_err(err, errlen, "http: max_attempts %u is out of range 1..%u", cfg->max_attempts,
              S_MAX_ATTEMPTS);
        return KP_ERR_INVALID_ARG;
    }
    if (cfg->ca_bundle != NULL && access(cfg->ca_bundle, R_OK) != 0) {
        s_err(err, errlen, "http: CA bundle %s cannot be read", cfg->ca_bundle);
        return KP_ERR_INVALID_ARG;
    }
    pthread_once(&s_once, s_global_init);
    if (s_global_rc != CURLE_OK) {
        s_err(err, errlen, "http: curl_global_init failed: %s", curl_easy_strerror(s_global_rc));
        return KP_ERR_INTERNAL;
    }

    kpk_http *h = calloc(1, sizeof *h);
    kp_status st = KP_OK;
    if (h == NULL) {
        s_err(err, errlen, "http: out of memory");
        st = KP_ERR_NOMEM;
    }
    if (st == KP_OK)
        st = s_fill(h, cfg, err, errlen);
    if (st == KP_OK) {
        CURLcode rc = s_setup(h);
        if (rc != CURLE_OK) {
            s_err(err, errlen, "http: libcurl refused an option: %s", curl_easy_strerror(rc));
            st = rc == CURLE_OUT_OF_MEMORY ? KP_ERR_NOMEM : KP_ERR_INTERNAL;
        }
    }
    if (st == KP_OK) {
        *out = h;
        h = NULL;
    }
    kpk_http_free(h);
    return st;
}

void kpk_http_free(kpk_http *h)
{
    if (h == NULL)
        return;
    if (h->curl != NULL)
        curl_easy_cleanup(h->curl);
    kpk__http_rx_reset(&h->rx);
    free(h->ca_bundle);
    free(h->user_agent);
    free(h);
}

void kpk_http_stats_get(const kpk_http *h, kpk_http_stats *out)
{
    if (out == NULL)
        return;
    if (h == NULL)
        memset(out, 0, sizeof *out);
    else
        *out = h->stats;
}

void kpk_http_set_sleep_hook(kpk_http *h, void (*hook)(void *arg, long ms), void *arg)
{
    if (h == NULL)
        return;
    h->sleep_hook = hook;
    h->sleep_arg = arg;
}

static bool s_plain_http_ok(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0 ||
           strcasecmp(host, "localhost") == 0 || strcmp(host, "169.254.169.254") == 0 ||
           strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0;
}

/* Parses url into u (which the transfer then uses as is, so the checks below see what libcurl
 * connects to) and writes "scheme://host:port" into origin; the path and query never appear
 * in messages. */
static kp_status s_target(CURLU *u, const char *url, char *origin, size_t olen, bool *plain,
                          char *err, size_t errlen)
{
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
    kp_status st = KP_OK;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (uc == CURLUE_OUT_OF_MEMORY) {
        s_err(err, errlen, "http: out of memory");
        st = KP_ERR_NOMEM;
    } else if (uc != CURLUE_OK) {
        s_err(err, errlen, "http: bad URL (%s)", curl_url_strerror(uc));
        st = KP_ERR_INVALID_ARG;
    }
    if (st == KP_OK) {
        snprintf(origin, olen, "%s://%s:%s", scheme, host, port);
        if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
            s_err(err, errlen, "%s: credentials in the URL are not accepted", origin);
            st = KP_ERR_INVALID_ARG;
        }
    }
    if (st == KP_OK) {
        *plain = strcmp(scheme, "http") == 0;
        if (strcmp(scheme, "https") != 0 && !(*plain && s_plain_http_ok(host))) {
            s_err(err, errlen,
                  "%s: only https:// is allowed (http:// only to loopback, 169.254.169.254 and the "
                  "container endpoints 169.254.170.2 and .23)",
                  origin);
            st = KP_ERR_INVALID_ARG;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    return st;
}

/* Frees a header list after wiping it: it held the Authorization value. */
static void s_headers_free(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p != NULL; p = p->next)
        OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

/* Appends one line to *l; on out-of-memory *l is left as it was. */
static kp_status s_header_add(struct curl_slist **l, const char *line, char *err, size_t errlen)
{
    struct curl_slist *t = curl_slist_append(*l, line);
    if (t == NULL) {
        s_err(err, errlen, "http: out of memory");
        return KP_ERR_NOMEM;
    }
    *l = t;
    return KP_OK;
}

static kp_status s_headers(const kpk_http_request *req, struct curl_slist **out, char *err,
                           size_t errlen)
{
    struct curl_slist *l = NULL;
    bool has_type = false;
    kp_status st = KP_OK;
    *out = NULL;
    for (size_t i = 0; st == KP_OK && req->headers != NULL && req->headers[i] != NULL; i++) {
        const char *hd = req->headers[i];
        const char *colon = strchr(hd, ':');
        if (colon == NULL || colon == hd || strpbrk(hd, "\r\n") != NULL) {
            s_err(err, errlen, "http: request header %zu is not one \"Name: value\" line", i);
            st = KP_ERR_INVALID_ARG;
        } else {
            if ((size_t)(colon - hd) == strlen("Content-Type") &&
                strncasecmp(hd, "Content-Type", (size_t)(colon - hd)) == 0)
                has_type = true;
            st = s_header_add(&l, hd, err, errlen);
        }
    }
    /* no "Expect: 100-continue" round trip, and no form Content-Type the caller did not ask for */
    if (st == KP_OK)
        st = s_header_add(&l, "Expect:", err, errlen);
    if (st == KP_OK && !has_type)
        st = s_header_add(&l, "Content-Type:", err, errlen);
    if (st == KP_OK) {
        *out = l;
        l = NULL;
    }
    s_headers_free(l);
    return st;
}

/* Sets the method and body on the reused handle; every call sets all of them. */
static CURLcode s_method(CURL *c, const kpk_http_request *req)
{
    const char *m = req->method;
    bool has_body = req->body != NULL;
    if (strcmp(m, "HEAD") == 0) { /* no body expected: libcurl must not wait for one */
        CURLcode rc = curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        return rc == CURLE_OK ? curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL) : rc;
    }
    CURLcode rc = curl_easy_setopt(c, CURLOPT_NOBODY, 0L); /* after a HEAD on the handle */
    if (rc != CURLE_OK)
        return rc;
    if (strcmp(m, "GET") == 0 || (strcmp(m, "DELETE") == 0 && !has_body)) {
        rc = curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        /* a POST, PUT or PATCH without a body still says Content-Length: 0 */
        rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, has_body ? (const char *)req->body : "");
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                                  (curl_off_t)(has_body ? req->body_len : 0));
    }
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
                              strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0 ? NULL : m);
    return rc;
}

static bool s_method_known(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(m, known[i]) == 0)
            return true;
    }
    return false;
}

/* The text of curl's error buffer (or of the code), on one line. */
static const char *s_detail(kpk_http *h, CURLcode rc)
{
    size_t n = strnlen(h->errbuf, sizeof h->errbuf);
    while (n > 0 && (h->errbuf[n - 1] == '\n' || h->errbuf[n - 1] == ' '))
        h->errbuf[--n] = '\0';
    return n > 0 ? h->errbuf : curl_easy_strerror(rc);
}

static void s_fail_text(kpk_http *h, const char *origin, const kpk__http_failure *f, CURLcode rc,
                        unsigned attempts, bool held_back, bool out_of_time, char *err,
                        size_t errlen)
{
    if (f->status == KP_ERR_BACKEND && h->rx.too_large) {
        s_err(err, errlen, "%s: response body larger than %zu bytes", origin, h->max_response);
        return;
    }
    if (f->status == KP_ERR_BACKEND && rc == CURLE_OUT_OF_MEMORY) {
        /* libcurl's own words would be "Out of memory" */
        s_err(err, errlen, "%s: %s (a line over %d bytes)", origin, f->what, CURL_MAX_HTTP_HEADER);
        return;
    }
    char after[48] = "";
    if (attempts > 1)
        snprintf(after, sizeof after, " after %u attempts", attempts);
    s_err(err, errlen, "%s: %s%s%s%s (%s)", origin, f->what, after,
          held_back ? "; not repeated: the request was sent and may have been acted on" : "",
          out_of_time ? "; no time left before the request's deadline" : "", s_detail(h, rc));
}

/* One attempt's wait before the next, for an answer that is to be repeated. */
static long s_wait_for_status(const kpk_http *h, long status, unsigned retry)
{
    if (status == 429 || status == 503) {
        long ra = kpk__http_retry_after_ms(h->rx.retry_after, time(NULL));
        if (ra >= 0)
            return ra < h->retry_after_cap_ms ? ra : h->retry_after_cap_ms;
    }
    return kpk__http_backoff_ms(h->backoff_base_ms, h->backoff_cap_ms, retry);
}

/* The request's target, headers, method and body on the reused handle. */
static kp_status s_request(kpk_http *h, const kpk_http_request *req, CURLU *u, bool plain,
                           struct curl_slist *headers, const char *origin, char *err, size_t errlen)
{
    CURLcode rc = curl_easy_setopt(h->curl, CURLOPT_CURLU, u);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, plain ? "http" : "https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, headers);
    if (rc == CURLE_OK)
        rc = s_method(h->curl, req);
    if (rc != CURLE_OK) {
        s_err(err, errlen, "%s: libcurl refused the request: %s", origin, curl_easy_strerror(rc));
        return rc == CURLE_OUT_OF_MEMORY ? KP_ERR_NOMEM : KP_ERR_INTERNAL;
    }
    return KP_OK;
}

/* Whether a wait of ms still leaves time for an attempt before end. */
static bool s_time_for(int64_t end, long ms)
{
    return kpk_http_clock_ms() + ms < end;
}

/* Bounds the next attempt by what is left before end (at least 1 ms: libcurl's 0 is "none").
 * Returns whether the attempt's own timeout was cut short by the deadline. */
static bool s_bound_attempt(kpk_http *h, int64_t end)
{
    int64_t left = end - kpk_http_clock_ms();
    long t = left < h->timeout_ms ? (long)(left > 1 ? left : 1) : h->timeout_ms;
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, t);
    return t < h->timeout_ms;
}

/* The attempts, all over before end (kpk_http_clock_ms): returns KP_OK with the answer in
 * resp, or the failure with err set. */
static kp_status s_attempts(kpk_http *h, const kpk_http_request *req, int64_t end,
                            const char *origin, kpk_http_response *resp, char *err, size_t errlen)
{
    bool unsafe = (req->flags & KPK_HTTP_UNSAFE) != 0;
    if (!s_time_for(end, 0)) { /* a caller's budget spent by its earlier requests */
        s_err(err, errlen, "%s: not sent: no time left before the request's deadline", origin);
        return KP_ERR_TIMEOUT;
    }
    for (unsigned attempt = 1;; attempt++) {
        bool cut = s_bound_attempt(h, end);
        h->rx.keep = (req->flags & KPK_HTTP_KEEP_HEADERS) != 0;
        h->rx.into = req->into;
        h->rx.into_cap = req->into != NULL ? req->into_cap : 0;
        h->rx.head = strcmp(req->method, "HEAD") == 0;
        kpk__http_rx_reset(&h->rx);
        h->prereqs = 0;
        h->resend_refused = false;
        h->errbuf[0] = '\0';
        h->stats.attempts++;
        if (attempt > 1)
            h->stats.retries++;
        CURLcode rc = curl_easy_perform(h->curl);
        long conns = 0;
        if (curl_easy_getinfo(h->curl, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK && conns > 0)
            h->stats.connects += (uint64_t)conns;
        bool more = attempt < h->max_attempts;
        resp->attempts = attempt;

        if (rc == CURLE_OK && !h->rx.too_large && !h->rx.oom) {
            long status = 0;
            curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
            /* a service's own throttling answer (AWS's 400 ThrottlingException) is a 429 */
            bool throttled =
                status == 429 ||
                (req->throttle != NULL && status >= 400 && status < 500 &&
                 req->throttle(req->throttle_arg, status,
                               h->rx.body != NULL ? h->rx.body : (const uint8_t *)"", h->rx.len));
            if (throttled)
                resp->throttled++;
            long wait = more && (throttled || kpk__http_status_retryable(status, unsafe))
                            ? s_wait_for_status(h, status, attempt - 1)
                            : -1;
            /* a wait that would end past the deadline is not begun: the answer goes back */
            if (wait >= 0 && s_time_for(end, wait)) {
                kpk__http_sleep(h, wait);
                continue;
            }
            long asked = wait >= 0 ? kpk__http_retry_after_ms(h->rx.retry_after, time(NULL)) : 0;
            if (kpk__http_rx_take(&h->rx, resp) != KP_OK) {
                s_err(err, errlen, "%s: out of memory", origin);
                return KP_ERR_NOMEM;
            }
            resp->status = status;
            resp->retry_after_ms = asked > 0 ? asked : 0;
            return KP_OK;
        }

        kpk__http_outcome o = {.rc = rc,
                               .too_large = h->rx.too_large,
                               .oom = h->rx.oom,
                               .resend_refused = h->resend_refused,
                               .in_header = h->rx.in_header};
        curl_easy_getinfo(h->curl, CURLINFO_OS_ERRNO, &o.os_errno);
        curl_easy_getinfo(h->curl, CURLINFO_SSL_VERIFYRESULT, &o.verify_result);
        kpk__http_failure f;
        kpk__http_classify(&o, &f);
        /* Once libcurl was about to write the request (prereqs > 0) it may have reached the
         * service; an unsafe request then comes back instead of being repeated. */
        bool held_back = f.transient && unsafe && h->prereqs > 0;
        bool out_of_time = cut && rc == CURLE_OPERATION_TIMEDOUT;
        if (f.transient && !held_back && more && !out_of_time) {
            long wait = kpk__http_backoff_ms(h->backoff_base_ms, h->backoff_cap_ms, attempt - 1);
            if (s_time_for(end, wait)) {
                kpk__http_sleep(h, wait);
                continue;
            }
            out_of_time = true;
        }
        s_fail_text(h, origin, &f, rc, attempt, held_back, out_of_time, err, errlen);
        return f.status;
    }
}

kp_status kpk_http_send(kpk_http *h, const kpk_http_request *req, kpk_http_response *resp,
                        char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (resp != NULL)
        memset(resp, 0, sizeof *resp);
    if (h == NULL || req == NULL || resp == NULL || req->url == NULL || req->method == NULL) {
        s_err(err, errlen, "kpk_http_send: NULL argument");
        return KP_ERR_INVALID_ARG;
    }
    if (!s_method_known(req->method)) {
        s_err(err, errlen, "http: method %.16s is not one of GET HEAD POST PUT PATCH DELETE",
              req->method);
        return KP_ERR_INVALID_ARG;
    }
    if ((req->body == NULL && req->body_len > 0) ||
        (req->body != NULL && strcmp(req->method, "GET") == 0)) {
        s_err(err, errlen, "http: %s with an inconsistent body", req->method);
        return KP_ERR_INVALID_ARG;
    }

    int64_t end = kpk_http_clock_ms() + h->deadline_ms;
    if (req->deadline != 0 && req->deadline < end)
        end = req->deadline;
    CURLU *u = curl_url();
    if (u == NULL) {
        s_err(err, errlen, "http: out of memory");
        return KP_ERR_NOMEM;
    }
    struct curl_slist *headers = NULL;
    char origin[512];
    bool plain = false;
    kp_status st = s_target(u, req->url, origin, sizeof origin, &plain, err, errlen);
    if (st == KP_OK)
        st = s_headers(req, &headers, err, errlen);
    if (st == KP_OK)
        st = s_request(h, req, u, plain, headers, origin, err, errlen);
    if (st == KP_OK)
        st = s_attempts(h, req, end, origin, resp, err, errlen);
    /* the handle outlives this call: it must not point at the caller's body or our lists */
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_easy_setopt(h->curl, CURLOPT_CURLU, (CURLU *)NULL);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, (char *)NULL);
    kpk__http_rx_reset(&h->rx);
    h->rx.into = NULL; /* nor at the caller's buffer */
    h->rx.into_cap = 0;
    s_headers_free(headers);
    curl_url_cleanup(u);
    return st;
}
