/*
 * Amazon S3 object calls (the S3 API reference): a conditional PutObject, GetObject and
 * HeadObject with what S3 reports about the object (size, time, its server-side encryption and
 * user metadata), and ListObjectsV2 with its continuation tokens. Keys are percent-encoded once,
 * '/' kept, and the path is signed exactly as sent (S3's SigV4 rule). Addressing is path style
 * (https://host/BUCKET/KEY) or virtual host (https://BUCKET.host/KEY), per the instance.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "aws_internal.h"

#define S_KEY_MAX 1024 /* S3's longest key, in UTF-8 bytes */
#define S_PATH_MAX (3 * S_KEY_MAX + 80)
#define S_LIST_PAGE "1000"

void kp_aws_object_clear(kp_aws_object *o)
{
    free(o->strings);
    memset(o, 0, sizeof(*o));
}

void kp_aws_s3_at_own(const kp_aws_inst *a, kp_aws_s3_at *at)
{
    memset(at, 0, sizeof(*at));
    snprintf(at->bucket, sizeof(at->bucket), "%s", a->bucket);
    snprintf(at->endpoint, sizeof(at->endpoint), "%s", a->endpoint);
    at->virtual_host = a->virtual_host;
    at->sse = true;
}

/* The endpoint and path of key ("" for the bucket itself) under at's addressing. */
static kp_status s_where(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                         char endpoint[KP_AWS_URL_MAX], char path[S_PATH_MAX])
{
    char enc[3 * S_KEY_MAX + 1];
    size_t kl = strlen(key);
    if (kl > S_KEY_MAX || kpk_aws_uri_encode(key, kl, 1, enc, sizeof(enc)) == (size_t)-1)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "s3 %s: key too long", at->bucket);
    if (at->virtual_host) {
        const char *host = strstr(at->endpoint, "://") + 3;
        snprintf(endpoint, KP_AWS_URL_MAX, "%.*s%s.%s", (int)(host - at->endpoint), at->endpoint,
                 at->bucket, host);
        snprintf(path, S_PATH_MAX, "/%s", enc);
    } else {
        snprintf(endpoint, KP_AWS_URL_MAX, "%s", at->endpoint);
        snprintf(path, S_PATH_MAX, "/%s%s%s", at->bucket, kl > 0 ? "/" : "", enc);
    }
    return KP_OK;
}

kp_status kp_aws_s3_call(kp_aws_inst *a, const kp_aws_s3_at *at, const kp_aws_s3_req *r,
                         kpk_http_response *resp)
{
    kp_aws_s3_at own;
    if (at == NULL) {
        kp_aws_s3_at_own(a, &own);
        at = &own;
    }
    char endpoint[KP_AWS_URL_MAX], path[S_PATH_MAX];
    KP_GUARD(s_where(a, at, r->key, endpoint, path));
    kp_aws_req req = {.service = "s3",
                      .region = a->region,
                      .endpoint = endpoint,
                      .method = r->method,
                      .path = path,
                      .query = r->query,
                      .headers = r->headers,
                      .body = r->body,
                      .body_len = r->len,
                      .flags = r->flags,
                      .unsigned_payload = r->unsigned_payload,
                      .into = r->into,
                      .into_cap = r->into_cap};
    return kp_aws_send(a, &req, resp);
}

kp_status kp_aws_s3_send(kp_aws_inst *a, const char *method, const char *key, const char *query,
                         const char *const *headers, const uint8_t *body, size_t len,
                         unsigned flags, kpk_http_response *resp)
{
    kp_aws_s3_req r = {.method = method,
                       .key = key,
                       .query = query,
                       .headers = headers,
                       .body = body,
                       .len = len,
                       .flags = flags};
    return kp_aws_s3_call(a, NULL, &r, resp);
}

/* A metadata pair as an x-amz-meta- header; S3 takes printable ASCII only, with no leading or
 * trailing space (it would not come back as sent). */
static kp_status s_meta_line(kp_aws_inst *a, const char *bucket, const kp_meta *m, char **line)
{
    size_t vl = strlen(m->value);
    for (const char *c = m->value; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            return kp_aws_err(a, KP_ERR_INVALID_ARG,
                              "s3 %s: metadata %s: S3 keeps printable ASCII only", bucket, m->key);
    if (vl > 0 && (m->value[0] == ' ' || m->value[vl - 1] == ' '))
        return kp_aws_err(a, KP_ERR_INVALID_ARG,
                          "s3 %s: metadata %s: a value starting or ending with a space", bucket,
                          m->key);
    size_t n = strlen("x-amz-meta-: ") + strlen(m->key) + vl + 1;
    *line = malloc(n);
    if (*line == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    snprintf(*line, n, "x-amz-meta-%s: %s", m->key, m->value);
    return KP_OK;
}

kp_status kp_aws_s3_put_headers(kp_aws_inst *a, const kp_aws_s3_at *at, const kp_meta *meta,
                                size_t nmeta, kp_aws_s3_headers *h)
{
    kp_aws_s3_at own;
    if (at == NULL) {
        kp_aws_s3_at_own(a, &own);
        at = &own;
    }
    memset(h, 0, sizeof(*h));
    if (nmeta > KP_AWS_META_MAX + 1)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "s3 %s: more than %d metadata pairs", at->bucket,
                          KP_AWS_META_MAX);
    size_t total = 0;
    for (size_t i = 0; i < nmeta; i++)
        total += strlen(meta[i].key) + strlen(meta[i].value);
    if (total > KP_AWS_S3_META_MAX)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "s3 %s: %zu bytes of metadata, over S3's %d",
                          at->bucket, total, KP_AWS_S3_META_MAX);
    size_t n = 0;
    h->list[n++] = "Content-Type: application/octet-stream";
    if (at->sse) {
        snprintf(h->kms, sizeof(h->kms), "x-amz-server-side-encryption-aws-kms-key-id: %s",
                 a->kms_key);
        h->list[n++] = "x-amz-server-side-encryption: aws:kms";
        h->list[n++] = h->kms;
    }
    kp_status st = KP_OK;
    for (size_t i = 0; st == KP_OK && i < nmeta; i++)
        if ((st = s_meta_line(a, at->bucket, &meta[i], &h->lines[i])) == KP_OK)
            h->list[n++] = h->lines[i];
    h->list[n] = NULL;
    if (st != KP_OK)
        kp_aws_s3_headers_free(h);
    return st;
}

void kp_aws_s3_headers_free(kp_aws_s3_headers *h)
{
    for (size_t i = 0; i < sizeof(h->lines) / sizeof(h->lines[0]); i++)
        free(h->lines[i]);
    memset(h, 0, sizeof(*h));
}

kp_status kp_aws_s3_put_result(kp_aws_inst *a, const kpk_http_response *r, const char *what)
{
    if (r->status == 412)
        return KP_ERR_EXISTS; /* the key exists: If-None-Match held */
    if (r->status == 409) {   /* ConditionalRequestConflict: another write of the key in flight */
        (void)kp_aws_fail(a, r, what, NULL, 0);
        return KP_ERR_CONFLICT;
    }
    return r->status / 100 == 2 ? KP_OK : kp_aws_fail(a, r, what, NULL, 0);
}

kp_status kp_aws_s3_create_at(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                              const uint8_t *body, size_t len, const kp_meta *meta, size_t nmeta)
{
    kp_aws_s3_at own;
    if (at == NULL) {
        kp_aws_s3_at_own(a, &own);
        at = &own;
    }
    if (len > KP_AWS_S3_MULTIPART_MIN)
        return kp_aws_s3_multipart(a, at, key, body, len, meta, nmeta);
    kp_aws_s3_headers h;
    KP_GUARD(kp_aws_s3_put_headers(a, at, meta, nmeta, &h));
    /* only when absent: two writers of one version cannot both succeed */
    size_t n = 0;
    while (h.list[n] != NULL)
        n++;
    h.list[n] = "If-None-Match: *";
    h.list[n + 1] = NULL;
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_aws_s3_req req = {.method = "PUT",
                         .key = key,
                         .headers = h.list,
                         .body = body,
                         .len = len,
                         .flags = KPK_HTTP_UNSAFE,
                         .unsigned_payload = !at->sse};
    kp_status st = kp_aws_s3_call(a, at, &req, &r);
    kp_aws_s3_headers_free(&h);
    KP_GUARD(st);
    char what[KP_AWS_PREFIX_MAX + 200];
    snprintf(what, sizeof(what), "s3 %s: put %.300s", at->bucket, key);
    st = kp_aws_s3_put_result(a, &r, what);
    kpk_http_response_free(&r);
    return st;
}

kp_status kp_aws_s3_create(kp_aws_inst *a, const char *key, const uint8_t *body, size_t len,
                           const kp_meta *meta, size_t nmeta)
{
    return kp_aws_s3_create_at(a, NULL, key, body, len, meta, nmeta);
}

/* Copies the header's value (len bytes) into a NUL-terminated buffer of cap. */
static void s_value(const char *v, size_t len, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), v);
}

/* What S3 says of the object: its headers into o. */
/* A user metadata pair that kp_meta allows (a key of 1 to 64 of [a-z0-9_.-] once lowered, a value
 * of printable ASCII): S3 takes more (a tab in a value, '+' or '!' in a name), and an object
 * another tool tagged so must not fail as a plugin that "broke the ABI". */
static bool s_meta_fits(const char *k, size_t kl, const char *v, size_t vl)
{
    if (kl == 0 || kl > 64)
        return false;
    for (size_t i = 0; i < kl; i++) {
        int c = tolower((unsigned char)k[i]);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    for (size_t i = 0; i < vl; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
            return false;
    return true;
}

static kp_status s_head(kp_aws_inst *a, const kpk_http_response *r, kp_aws_object *o)
{
    const char *v;
    size_t len;
    char buf[64];
    if (kpk_http_header(r, "Content-Length", &v, &len, NULL) != NULL) {
        s_value(v, len, buf, sizeof(buf));
        o->size = strtoull(buf, NULL, 10);
    }
    if (kpk_http_header(r, "Last-Modified", &v, &len, NULL) != NULL) {
        char date[96];
        s_value(v, len, date, sizeof(date));
        time_t t = curl_getdate(date, NULL);
        o->created = t > 0 ? (int64_t)t : 0;
    }
    if (kpk_http_header(r, "ETag", &v, &len, NULL) != NULL)
        s_value(v, len, o->etag, sizeof(o->etag));
    if (kpk_http_header(r, "x-amz-server-side-encryption", &v, &len, NULL) != NULL)
        s_value(v, len, o->sse, sizeof(o->sse));
    if (kpk_http_header(r, "x-amz-server-side-encryption-aws-kms-key-id", &v, &len, NULL) != NULL)
        s_value(v, len, o->kms_key, sizeof(o->kms_key));
    /* the user metadata, all of it (another tool's pairs never push out the ones a reader
     * needs): one block of the pairs, then the "key\0value\0" strings they point into */
    size_t need = 0, pairs = 0;
    const char *cur = NULL, *line;
    while ((line = kpk_http_header(r, "x-amz-meta-*", &v, &len, &cur)) != NULL) {
        need += (size_t)(v - line) + len + 2;
        pairs++;
    }
    if (pairs == 0)
        return KP_OK;
    o->strings = malloc(pairs * sizeof(kp_meta) + need);
    if (o->strings == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    o->meta = (kp_meta *)(void *)o->strings;
    char *p = o->strings + pairs * sizeof(kp_meta);
    cur = NULL;
    while ((line = kpk_http_header(r, "x-amz-meta-*", &v, &len, &cur)) != NULL &&
           o->nmeta < pairs) {
        size_t kl = (size_t)(v - line) - 2 - strlen("x-amz-meta-");
        const char *k = line + strlen("x-amz-meta-");
        if (!s_meta_fits(k, kl, v, len))
            continue; /* another tool's pair kp_meta cannot carry: not one of ours, skipped */
        o->meta[o->nmeta].key = p;
        for (size_t i = 0; i < kl; i++) /* S3 gives the keys back in lower case */
            p[i] = (char)tolower((unsigned char)k[i]);
        p[kl] = '\0';
        p += kl + 1;
        o->meta[o->nmeta].value = p;
        memcpy(p, v, len);
        p[len] = '\0';
        p += len + 1;
        o->nmeta++;
    }
    return KP_OK;
}

kp_status kp_aws_s3_get_at(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                           kp_aws_object *o, kp_secret **body)
{
    if (o != NULL)
        memset(o, 0, sizeof(*o));
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    const char *method = body != NULL ? "GET" : "HEAD";
    /* the headers are read only for what S3 says of the object (o) */
    kp_aws_s3_req req = {
        .method = method, .key = key, .flags = o != NULL ? KPK_HTTP_KEEP_HEADERS : 0};
    KP_GUARD(kp_aws_s3_call(a, at, &req, &r));
    char what[KP_AWS_PREFIX_MAX + 200];
    snprintf(what, sizeof(what), "s3 %s: %s %.300s", at != NULL ? at->bucket : a->bucket,
             body != NULL ? "get" : "head", key);
    kp_status st = KP_OK;
    if (r.status == 404)
        st = KP_ERR_NOT_FOUND;
    else if (r.status / 100 != 2)
        st = kp_aws_fail(a, &r, what, NULL, 0);
    if (st == KP_OK && o != NULL)
        st = s_head(a, &r, o);
    if (st == KP_OK && body != NULL) {
        if (o != NULL)
            o->size = r.len;
        *body = kp_secret_dup(a->up, r.body, r.len);
        if (*body == NULL)
            st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    }
    if (st != KP_OK && o != NULL)
        kp_aws_object_clear(o);
    kpk_http_response_free(&r);
    return st;
}

kp_status kp_aws_s3_get(kp_aws_inst *a, const char *key, kp_aws_object *o, kp_secret **body)
{
    return kp_aws_s3_get_at(a, NULL, key, o, body);
}

/* One page of a listing: its keys (copied) and where the next page starts. */
typedef struct s_page {
    char **keys;
    size_t n, cap;
    bool truncated;
    char next[1024];
    bool nomem;
} s_page;

static kp_status s_page_leaf(void *arg, const char *path, const char *text)
{
    s_page *p = arg;
    if (strcmp(path, "ListBucketResult/Contents/Key") == 0) {
        if (p->n == p->cap) {
            size_t cap = p->cap > 0 ? p->cap * 2 : 64;
            char **nk = realloc(p->keys, cap * sizeof(*nk));
            if (nk == NULL)
                return KP_ERR_NOMEM;
            p->keys = nk;
            p->cap = cap;
        }
        if ((p->keys[p->n] = strdup(text)) == NULL)
            return KP_ERR_NOMEM;
        p->n++;
    } else if (strcmp(path, "ListBucketResult/IsTruncated") == 0) {
        p->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(path, "ListBucketResult/NextContinuationToken") == 0) {
        snprintf(p->next, sizeof(p->next), "%s", text);
    }
    return KP_OK;
}

static void s_page_free(s_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->keys[i]);
    free(p->keys);
    memset(p, 0, sizeof(*p));
}

/* One ListObjectsV2 page after token ("" for the first). */
static kp_status s_list_page(kp_aws_inst *a, const char *prefix, const char *token, s_page *page)
{
    kpk_query_param q[4] = {{"list-type", "2"}, {"max-keys", S_LIST_PAGE}, {"prefix", prefix}};
    size_t nq = 3;
    if (token[0] != '\0')
        q[nq++] = (kpk_query_param){"continuation-token", token};
    char *query = NULL;
    if (kpk_sigv4_query(q, nq, &query) != KP_OK)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_status st = kp_aws_s3_send(a, "GET", "", query, NULL, NULL, 0, 0, &r);
    free(query);
    KP_GUARD(st);
    char what[KP_AWS_PREFIX_MAX + 100], why[KP_AWS_ERR];
    snprintf(what, sizeof(what), "s3 %s: list %s", a->bucket, prefix);
    if (r.status / 100 != 2)
        st = kp_aws_fail(a, &r, what, NULL, 0);
    else if ((st = kp_aws_xml_walk(r.body, r.len, s_page_leaf, page, why, sizeof(why))) != KP_OK)
        st = st == KP_ERR_NOMEM ? kp_aws_err(a, st, "out of memory")
                                : kp_aws_err(a, st, "%s: %s", what, why);
    else if (page->truncated && page->next[0] == '\0')
        st = kp_aws_err(a, KP_ERR_BACKEND, "%s: a truncated page without a continuation token",
                        what);
    kpk_http_response_free(&r);
    return st;
}

static kp_status s_list_all(kp_aws_inst *a, const char *prefix,
                            kp_status (*fn)(void *arg, const char *key), void *arg)
{
    char token[1024] = "";
    for (unsigned pages = 0;; pages++) {
        s_page page;
        memset(&page, 0, sizeof(page));
        kp_status st = s_list_page(a, prefix, token, &page);
        for (size_t i = 0; st == KP_OK && i < page.n; i++)
            st = fn(arg, page.keys[i]);
        bool more = page.truncated;
        if (st == KP_OK && more && strcmp(page.next, token) == 0)
            st = kp_aws_err(a, KP_ERR_BACKEND, "s3 %s: the listing repeats a continuation token",
                            a->bucket);
        if (st == KP_OK && more && strlen(page.next) >= sizeof(token))
            st = kp_aws_err(a, KP_ERR_BACKEND, "s3 %s: a continuation token over %zu bytes",
                            a->bucket, sizeof(token) - 1);
        snprintf(token, sizeof(token), "%s", page.next);
        s_page_free(&page);
        if (st != KP_OK || !more)
            return st;
        if (pages > 100000)
            return kp_aws_err(a, KP_ERR_BACKEND, "s3 %s: the listing does not end", a->bucket);
    }
}

kp_status kp_aws_s3_head_bucket_at(kp_aws_inst *a, const kp_aws_s3_at *at, char *region, size_t cap)
{
    kp_aws_s3_at own;
    if (at == NULL) {
        kp_aws_s3_at_own(a, &own);
        at = &own;
    }
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_aws_s3_req req = {.method = "HEAD", .key = "", .flags = KPK_HTTP_KEEP_HEADERS};
    KP_GUARD(kp_aws_s3_call(a, at, &req, &r));
    const char *v;
    size_t len;
    region[0] = '\0';
    if (kpk_http_header(&r, "x-amz-bucket-region", &v, &len, NULL) != NULL)
        s_value(v, len, region, cap);
    char what[128];
    snprintf(what, sizeof(what), "s3 %s: head bucket", at->bucket);
    kp_status st = KP_OK;
    if (r.status == 404)
        st = kp_aws_err(a, KP_ERR_NOT_FOUND, "s3: bucket %s does not exist", at->bucket);
    else if (r.status == 301 || (region[0] != '\0' && strcmp(region, a->region) != 0))
        st = kp_aws_err(a, KP_ERR_CONFIG, "s3: bucket %s is in region %s, not %s", at->bucket,
                        region[0] != '\0' ? region : "(another)", a->region);
    else if (r.status / 100 != 2)
        st = kp_aws_fail(a, &r, what, NULL, 0);
    kpk_http_response_free(&r);
    return st;
}

kp_status kp_aws_s3_head_bucket(kp_aws_inst *a, char *region, size_t cap)
{
    return kp_aws_s3_head_bucket_at(a, NULL, region, cap);
}

kp_status kp_aws_s3_list(kp_aws_inst *a, const char *prefix,
                         kp_status (*fn)(void *arg, const char *key), void *arg)
{
    /* a listing is bounded even inside an operation that is not (a put): a service that never
     * ends its pages costs deadline_ms, not a hang */
    int64_t outer = a->deadline;
    if (outer == 0)
        a->deadline = kpk_http_clock_ms() + a->deadline_ms;
    kp_status st = s_list_all(a, prefix, fn, arg);
    a->deadline = outer;
    return st;
}
