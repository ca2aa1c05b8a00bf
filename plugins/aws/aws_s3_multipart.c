/*
 * S3 multipart upload (the S3 API reference: CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload, AbortMultipartUpload) for objects past KP_AWS_S3_MULTIPART_MIN: the
 * object's headers (SSE-KMS, metadata) go with the create; each part is an idempotent PUT the
 * transport may repeat alone; the complete carries If-None-Match: *, so a multipart object is
 * created only when absent, like a single PUT. S3 may answer the complete with 200 and an
 * <Error> body: that is a failure too. A failed upload is aborted, so no parts are left billed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_internal.h"

#define S_ETAG_MAX 80
#define S_PARTS_MAX 10000 /* S3's bound on the parts of one upload */

typedef struct s_upload {
    char id[1024];
    bool error; /* the answer is an <Error> document */
    char code[128];
} s_upload;

static kp_status s_upload_leaf(void *arg, const char *path, const char *text)
{
    s_upload *u = arg;
    if (strcmp(path, "InitiateMultipartUploadResult/UploadId") == 0)
        snprintf(u->id, sizeof(u->id), "%s", text);
    else if (strncmp(path, "Error/", 6) == 0) {
        u->error = true;
        if (strcmp(path, "Error/Code") == 0)
            snprintf(u->code, sizeof(u->code), "%s", text);
    }
    return KP_OK;
}

/* The query of a part or of the upload: "partNumber=N&uploadId=ID" or "uploadId=ID". */
static kp_status s_query(kp_aws_inst *a, const char *id, unsigned part, char **out)
{
    char num[16];
    snprintf(num, sizeof(num), "%u", part);
    kpk_query_param q[2] = {{"uploadId", id}, {"partNumber", num}};
    if (kpk_sigv4_query(q, part > 0 ? 2 : 1, out) != KP_OK)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    return KP_OK;
}

static kp_status s_create(kp_aws_inst *a, kp_aws_mpu *m, const kp_meta *meta, size_t nmeta)
{
    kp_aws_s3_headers h;
    KP_GUARD(kp_aws_s3_put_headers(a, &m->at, meta, nmeta, &h));
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    /* not repeated after it may have reached S3: an upload made twice is one left unfinished,
     * which the bucket's lifecycle rule (or AbortMultipartUpload) clears, never an object */
    kp_aws_s3_req req = {.method = "POST",
                         .key = m->key,
                         .query = "uploads=",
                         .headers = h.list,
                         .flags = KPK_HTTP_UNSAFE};
    kp_status st = kp_aws_s3_call(a, &m->at, &req, &r);
    kp_aws_s3_headers_free(&h);
    KP_GUARD(st);
    s_upload u;
    memset(&u, 0, sizeof(u));
    char why[KP_AWS_ERR];
    if (r.status / 100 != 2)
        st = kp_aws_fail(a, &r, m->what, NULL, 0);
    else if ((st = kp_aws_xml_walk(r.body, r.len, s_upload_leaf, &u, why, sizeof(why))) != KP_OK)
        st = kp_aws_err(a, st, "%s: %s", m->what, why);
    else if (u.id[0] == '\0' || strpbrk(u.id, "\r\n") != NULL)
        st = kp_aws_err(a, KP_ERR_BACKEND, "%s: no UploadId in the answer", m->what);
    else
        snprintf(m->id, sizeof(m->id), "%s", u.id);
    kpk_http_response_free(&r);
    return st;
}

kp_status kp_aws_mpu_begin(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                           const kp_meta *meta, size_t nmeta, kp_aws_mpu *m)
{
    memset(m, 0, sizeof(*m));
    if (at != NULL)
        m->at = *at;
    else
        kp_aws_s3_at_own(a, &m->at);
    if (strlen(key) >= sizeof(m->key))
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "s3 %s: key too long", m->at.bucket);
    snprintf(m->key, sizeof(m->key), "%s", key);
    snprintf(m->what, sizeof(m->what), "s3 %s: multipart put %.300s", m->at.bucket, key);
    return s_create(a, m, meta, nmeta);
}

kp_status kp_aws_mpu_part(kp_aws_inst *a, kp_aws_mpu *m, const uint8_t *body, size_t len)
{
    if (m->parts == S_PARTS_MAX)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "%s: more than S3's %d parts", m->what,
                          S_PARTS_MAX);
    if (m->parts == m->cap) {
        unsigned cap = m->cap > 0 ? 2 * m->cap : 64;
        char(*e)[S_ETAG_MAX] = calloc(cap, S_ETAG_MAX);
        if (e == NULL)
            return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
        if (m->parts > 0)
            memcpy(e, m->etags, (size_t)m->parts * S_ETAG_MAX);
        free(m->etags);
        m->etags = e;
        m->cap = cap;
    }
    unsigned part = m->parts + 1;
    char *query = NULL;
    KP_GUARD(s_query(a, m->id, part, &query));
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    /* a part may be sent again: the last one with its number is the part */
    kp_aws_s3_req req = {.method = "PUT",
                         .key = m->key,
                         .query = query,
                         .body = body,
                         .len = len,
                         .flags = KPK_HTTP_KEEP_HEADERS,
                         .unsigned_payload = !m->at.sse};
    kp_status st = kp_aws_s3_call(a, &m->at, &req, &r);
    free(query);
    KP_GUARD(st);
    const char *v;
    size_t vl;
    if (r.status / 100 != 2)
        st = kp_aws_fail(a, &r, m->what, NULL, 0);
    else if (kpk_http_header(&r, "ETag", &v, &vl, NULL) == NULL || vl == 0 || vl >= S_ETAG_MAX ||
             memchr(v, '<', vl) != NULL || memchr(v, '&', vl) != NULL)
        st = kp_aws_err(a, KP_ERR_BACKEND, "%s: part %u: no usable ETag", m->what, part);
    else {
        snprintf(m->etags[m->parts], S_ETAG_MAX, "%.*s", (int)vl, v);
        m->parts = part;
    }
    kpk_http_response_free(&r);
    return st;
}

static void s_free(kp_aws_mpu *m)
{
    free(m->etags);
    m->etags = NULL;
    m->parts = m->cap = 0;
}

/* *answered: S3 answered (an error it sent says the object was not made; no answer says
 * nothing). */
static kp_status s_complete(kp_aws_inst *a, kp_aws_mpu *m, bool *answered)
{
    *answered = false;
    size_t cap = 128 + (size_t)m->parts * (S_ETAG_MAX + 64);
    char *xml = malloc(cap), *query = NULL;
    if (xml == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    size_t n = (size_t)snprintf(xml, cap, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < m->parts; i++)
        n += (size_t)snprintf(xml + n, cap - n,
                              "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1,
                              m->etags[i]);
    n += (size_t)snprintf(xml + n, cap - n, "</CompleteMultipartUpload>");
    static const char *const headers[] = {"Content-Type: application/xml", "If-None-Match: *",
                                          NULL};
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_status st = s_query(a, m->id, 0, &query);
    kp_aws_s3_req req = {.method = "POST",
                         .key = m->key,
                         .query = query,
                         .headers = headers,
                         .body = (const uint8_t *)xml,
                         .len = n,
                         .flags = KPK_HTTP_UNSAFE};
    if (st == KP_OK)
        st = kp_aws_s3_call(a, &m->at, &req, &r);
    free(query);
    free(xml);
    KP_GUARD(st);
    *answered = true;
    st = kp_aws_s3_put_result(a, &r, m->what);
    s_upload u;
    memset(&u, 0, sizeof(u));
    char why[KP_AWS_ERR];
    /* a 200 whose body is an <Error> (S3 may fail a complete after answering 200) */
    kp_status parsed = KP_ERR_BACKEND;
    if (st == KP_OK)
        parsed = kp_aws_xml_walk(r.body, r.len, s_upload_leaf, &u, why, sizeof(why));
    if (parsed == KP_OK && u.error)
        st = strcmp(u.code, "PreconditionFailed") == 0
                 ? KP_ERR_EXISTS
                 : kp_aws_err(a, KP_ERR_UNAVAILABLE, "%s: %s after 200", m->what,
                              u.code[0] != '\0' ? u.code : "an error");
    kpk_http_response_free(&r);
    return st;
}

void kp_aws_mpu_abort(kp_aws_inst *a, kp_aws_mpu *m)
{
    char *query = NULL;
    if (m->id[0] != '\0' && s_query(a, m->id, 0, &query) == KP_OK) {
        kpk_http_response r;
        memset(&r, 0, sizeof(r));
        /* best effort: the error text of the upload's failure is what the caller sees */
        char keep[KP_ERROR_MAX];
        snprintf(keep, sizeof(keep), "%s", a->up->get_error(a->h));
        kp_aws_s3_req req = {.method = "DELETE", .key = m->key, .query = query};
        kp_status st = kp_aws_s3_call(a, &m->at, &req, &r);
        (void)st;
        kpk_http_response_free(&r);
        free(query);
        if (keep[0] != '\0')
            a->up->set_error(a->h, KP_ERR_BACKEND, keep);
    }
    s_free(m);
}

kp_status kp_aws_mpu_complete(kp_aws_inst *a, kp_aws_mpu *m)
{
    bool answered = false;
    kp_status st = s_complete(a, m, &answered);
    /* S3 answering 500 or 503 (or 200 with an <Error>) made nothing, and asks for the complete
     * again: twice more, a second apart, before the upload is given up */
    for (int again = 0; again < 2 && answered && st == KP_ERR_UNAVAILABLE; again++) {
        struct timespec pause = {1, 0};
        nanosleep(&pause, NULL);
        st = s_complete(a, m, &answered);
    }
    /* a complete without an answer may have made the object: the caller looks; anything else
     * that failed is aborted (an answered 5xx too: it was left billed) */
    bool ambiguous = !answered && (st == KP_ERR_TIMEOUT || st == KP_ERR_UNAVAILABLE);
    if (st != KP_OK && !ambiguous) {
        kp_aws_mpu_abort(a, m);
        return st;
    }
    s_free(m);
    return st;
}

kp_status kp_aws_s3_multipart(kp_aws_inst *a, const kp_aws_s3_at *at, const char *key,
                              const uint8_t *body, size_t len, const kp_meta *meta, size_t nmeta)
{
    kp_aws_mpu m;
    if ((len + KP_AWS_S3_PART - 1) / KP_AWS_S3_PART > S_PARTS_MAX)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "s3: %zu bytes is more than S3's %d parts", len,
                          S_PARTS_MAX);
    KP_GUARD(kp_aws_mpu_begin(a, at, key, meta, nmeta, &m));
    kp_status st = KP_OK;
    for (size_t off = 0; st == KP_OK && off < len; off += KP_AWS_S3_PART)
        st = kp_aws_mpu_part(a, &m, body + off,
                             len - off < KP_AWS_S3_PART ? len - off : KP_AWS_S3_PART);
    if (st != KP_OK) {
        kp_aws_mpu_abort(a, &m);
        return st;
    }
    return kp_aws_mpu_complete(a, &m);
}
