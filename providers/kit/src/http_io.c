/*
 * What libcurl hands back for one attempt: the body, into a buffer bounded by max_response
 * that is wiped whenever it moves (it may hold key material), and the few response headers
 * the plugins need. Each new status line starts a new response, so only the last one counts.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "http_internal.h"

/* Longest header value kept; longer ones are ignored (no service sends them). */
#define S_MAX_VALUE 8192
#define S_FIRST_CAP 4096
#define S_LINES_MAX (64 * 1024)

size_t kpk__http_on_body(char *data, size_t size, size_t n, void *userdata)
{
    kpk__http_rx *rx = userdata;
    size_t total = size * n;
    if (rx->too_large || rx->oom)
        return 0;
    if (rx->into != NULL && rx->status / 100 == 2) { /* the caller's buffer, no copy kept */
        if (total > rx->into_cap - rx->into_len) {
            rx->too_large = true;
            return 0;
        }
        memcpy(rx->into + rx->into_len, data, total);
        rx->into_len += total;
        return total;
    }
    if (total > rx->max - rx->len) {
        rx->too_large = true;
        return 0; /* libcurl stops the transfer with CURLE_WRITE_ERROR */
    }
    size_t need = rx->len + total + 1;
    if (need > rx->cap) {
        size_t cap = rx->cap > 0 ? rx->cap : S_FIRST_CAP;
        while (cap < need && cap <= (rx->max + 1) / 2)
            cap *= 2;
        if (cap < need)
            cap = rx->max + 1;
        /* grow by copying, never realloc: the old block is wiped before it goes back */
        uint8_t *nb = malloc(cap);
        if (nb == NULL) {
            rx->oom = true;
            return 0;
        }
        if (rx->body != NULL) {
            memcpy(nb, rx->body, rx->len);
            OPENSSL_cleanse(rx->body, rx->cap);
            free(rx->body);
        }
        rx->body = nb;
        rx->cap = cap;
    }
    memcpy(rx->body + rx->len, data, total);
    rx->len += total;
    rx->body[rx->len] = '\0';
    return total;
}

static void s_free_headers(kpk__http_rx *rx)
{
    free(rx->www_authenticate);
    free(rx->request_id);
    free(rx->retry_after);
    free(rx->lines);
    rx->www_authenticate = rx->request_id = rx->retry_after = rx->lines = NULL;
    rx->lines_len = 0;
}

/* Appends "name: value\n" to the kept lines (KPK_HTTP_KEEP_HEADERS), at most S_LINES_MAX in
 * all: what a hostile server sends beyond it is dropped, not an error. */
static bool s_keep_line(kpk__http_rx *rx, const char *name, size_t namelen, const char *v,
                        size_t vlen)
{
    size_t add = namelen + 2 + vlen + 1;
    if (rx->lines_len + add + 1 > S_LINES_MAX)
        return true;
    char *nl = realloc(rx->lines, rx->lines_len + add + 1);
    if (nl == NULL)
        return false;
    rx->lines = nl;
    char *o = nl + rx->lines_len;
    memcpy(o, name, namelen);
    o[namelen] = ':';
    o[namelen + 1] = ' ';
    memcpy(o + namelen + 2, v, vlen);
    o[namelen + 2 + vlen] = '\n';
    rx->lines_len += add;
    rx->lines[rx->lines_len] = '\0';
    return true;
}

static bool s_name_is(const char *line, size_t namelen, const char *name)
{
    return namelen == strlen(name) && strncasecmp(line, name, namelen) == 0;
}

/* Replaces *slot with value/len, or appends it after ", " (repeated WWW-Authenticate headers
 * combine as one list, RFC 9110 5.3). */
static bool s_store(char **slot, const char *value, size_t len, bool append)
{
    size_t old = append && *slot != NULL ? strlen(*slot) : 0;
    if (old + len > 2 * S_MAX_VALUE)
        return true; /* ignored, not an error */
    char *s = malloc(old + (old > 0 ? 2 : 0) + len + 1);
    if (s == NULL)
        return false;
    size_t o = 0;
    if (old > 0) {
        memcpy(s, *slot, old);
        memcpy(s + old, ", ", 2);
        o = old + 2;
    }
    memcpy(s + o, value, len);
    s[o + len] = '\0';
    free(*slot);
    *slot = s;
    return true;
}

size_t kpk__http_on_header(char *data, size_t size, size_t n, void *userdata)
{
    kpk__http_rx *rx = userdata;
    size_t total = size * n;
    size_t len = total;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        s_free_headers(rx); /* a new response (after an interim 1xx) */
        rx->in_header = true;
        const char *sp = memchr(data, ' ', len);
        rx->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
        return total;
    }
    if (len == 0) {
        rx->in_header = false; /* the blank line: the header is complete */
        return total;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL)
        return total;
    size_t namelen = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vlen = len - namelen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (vlen > S_MAX_VALUE)
        return total;

    /* a value with a control character (an obs-fold or a hostile server) is not kept */
    bool clean = memchr(v, '\0', vlen) == NULL && memchr(v, '\n', vlen) == NULL &&
                 memchr(v, '\r', vlen) == NULL;
    bool ok = !rx->keep || !clean || s_keep_line(rx, data, namelen, v, vlen);
    if (!ok) {
        rx->oom = true;
        return 0;
    }
    if (!rx->head && s_name_is(data, namelen, "Content-Length")) {
        /* refuse an announced oversize body before reading it */
        char num[32];
        if (vlen > 0 && vlen < sizeof num) {
            memcpy(num, v, vlen);
            num[vlen] = '\0';
            errno = 0;
            char *end = NULL;
            unsigned long long cl = strtoull(num, &end, 10);
            if (errno == 0 && end != NULL && *end == '\0' && isdigit((unsigned char)num[0]) &&
                cl > (rx->into != NULL && rx->status / 100 == 2 ? rx->into_cap : rx->max)) {
                rx->too_large = true;
                return 0;
            }
        }
    } else if (s_name_is(data, namelen, "WWW-Authenticate")) {
        ok = s_store(&rx->www_authenticate, v, vlen, true);
    } else if (s_name_is(data, namelen, "Retry-After")) {
        ok = s_store(&rx->retry_after, v, vlen, false);
    } else if (s_name_is(data, namelen, "x-ms-request-id") ||
               s_name_is(data, namelen, "x-amzn-RequestId") ||
               s_name_is(data, namelen, "x-amz-request-id")) {
        ok = s_store(&rx->request_id, v, vlen, false);
    }
    if (!ok) {
        rx->oom = true;
        return 0;
    }
    return total;
}

/* Empties rx for the next attempt, keeping what the request set: the bound, whether headers are
 * kept, the caller's buffer. */
static void s_clear_keeping(kpk__http_rx *rx)
{
    size_t max = rx->max, into_cap = rx->into_cap;
    bool keep = rx->keep, head = rx->head;
    uint8_t *into = rx->into;
    memset(rx, 0, sizeof *rx);
    rx->max = max;
    rx->keep = keep;
    rx->into = into;
    rx->into_cap = into_cap;
    rx->head = head;
}

void kpk__http_rx_reset(kpk__http_rx *rx)
{
    if (rx->body != NULL) {
        OPENSSL_cleanse(rx->body, rx->cap);
        free(rx->body);
    }
    s_free_headers(rx);
    s_clear_keeping(rx);
}

kp_status kpk__http_rx_take(kpk__http_rx *rx, kpk_http_response *resp)
{
    if (rx->body == NULL) {
        rx->body = calloc(1, 1);
        if (rx->body == NULL)
            return KP_ERR_NOMEM;
        rx->cap = 1;
    }
    resp->body = rx->body;
    resp->len = rx->len;
    resp->www_authenticate = rx->www_authenticate;
    resp->request_id = rx->request_id;
    resp->headers = rx->lines;
    resp->into_len = rx->into_len;
    free(rx->retry_after);
    s_clear_keeping(rx);
    return KP_OK;
}

void kpk_http_response_free(kpk_http_response *resp)
{
    if (resp == NULL)
        return;
    if (resp->body != NULL) {
        OPENSSL_cleanse(resp->body, resp->len + 1);
        free(resp->body);
    }
    free(resp->www_authenticate);
    free(resp->request_id);
    free(resp->headers);
    memset(resp, 0, sizeof *resp);
}

const char *kpk_http_header(const kpk_http_response *resp, const char *name, const char **value,
                            size_t *len, const char **cursor)
{
    size_t nl = strlen(name);
    const char *p = cursor != NULL && *cursor != NULL ? *cursor : resp->headers;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, '\n');
        const char *colon = strchr(p, ':');
        if (end == NULL || colon == NULL || colon > end)
            break;
        size_t have = (size_t)(colon - p);
        bool match = nl > 0 && name[nl - 1] == '*'
                         ? have >= nl - 1 && strncasecmp(p, name, nl - 1) == 0
                         : have == nl && strncasecmp(p, name, nl) == 0;
        if (match) {
            if (cursor != NULL)
                *cursor = end + 1;
            if (value != NULL)
                *value = colon + 2;
            if (len != NULL)
                *len = (size_t)(end - colon - 2);
            return p;
        }
        p = end + 1;
    }
    if (cursor != NULL)
        *cursor = NULL;
    return NULL;
}
