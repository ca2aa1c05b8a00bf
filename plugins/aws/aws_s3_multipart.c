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

static kp_status s_create(kp_aws_inst *a, const char *key, const kp_meta *meta, size_t nmeta,
                          const char *what, s_upload *u)
{
    kp_aws_s3_headers h;
    KP_GUARD(kp_aws_s3_put_headers(a, meta, nmeta, &h));
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    /* not repeated after it may have reached S3: an upload made twice is one left unfinished,
     * which the bucket's lifecycle rule (or AbortMultipartUpload) clears, never an object */
    kp_status st = kp_aws_s3_send(a, "POST", key, "uploads=", h.list, NULL, 0, KPK_HTTP_UNSAFE, &r);
    kp_aws_s3_headers_free(&h);
    KP_GUARD(st);
    char why[KP_AWS_ERR];
    if (r.status / 100 != 2)
        st = kp_aws_fail(a, &r, what, NULL, 0);
    else if ((st = kp_aws_xml_walk(r.body, r.len, s_upload_leaf, u, why, sizeof(why))) != KP_OK)
        st = kp_aws_err(a, st, "%s: %s", what, why);
    else if (u->id[0] == '\0' || strpbrk(u->id, "\r\n") != NULL)
        st = kp_aws_err(a, KP_ERR_BACKEND, "%s: no UploadId in the answer", what);
    kpk_http_response_free(&r);
    return st;
}

static kp_status s_part(kp_aws_inst *a, const char *key, const char *id, unsigned part,
                        const uint8_t *body, size_t len, const char *what, char etag[S_ETAG_MAX])
{
    char *query = NULL;
    KP_GUARD(s_query(a, id, part, &query));
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    /* a part may be sent again: the last one with its number is the part */
    kp_status st = kp_aws_s3_send(a, "PUT", key, query, NULL, body, len, KPK_HTTP_KEEP_HEADERS, &r);
    free(query);
    KP_GUARD(st);
    const char *v;
    size_t vl;
    if (r.status / 100 != 2)
        st = kp_aws_fail(a, &r, what, NULL, 0);
    else if (kpk_http_header(&r, "ETag", &v, &vl, NULL) == NULL || vl == 0 || vl >= S_ETAG_MAX ||
             memchr(v, '<', vl) != NULL || memchr(v, '&', vl) != NULL)
        st = kp_aws_err(a, KP_ERR_BACKEND, "%s: part %u: no usable ETag", what, part);
    else
        snprintf(etag, S_ETAG_MAX, "%.*s", (int)vl, v);
    kpk_http_response_free(&r);
    return st;
}

static kp_status s_complete(kp_aws_inst *a, const char *key, const char *id, char (*etags)[80],
                            unsigned parts, const char *what)
{
    size_t cap = 128 + (size_t)parts * (S_ETAG_MAX + 64);
    char *xml = malloc(cap), *query = NULL;
    if (xml == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    size_t n = (size_t)snprintf(xml, cap, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < parts; i++)
        n += (size_t)snprintf(xml + n, cap - n,
                              "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1,
                              etags[i]);
    n += (size_t)snprintf(xml + n, cap - n, "</CompleteMultipartUpload>");
    static const char *const headers[] = {"Content-Type: application/xml", "If-None-Match: *",
                                          NULL};
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_status st = s_query(a, id, 0, &query);
    if (st == KP_OK)
        st = kp_aws_s3_send(a, "POST", key, query, headers, (const uint8_t *)xml, n,
                            KPK_HTTP_UNSAFE, &r);
    free(query);
    free(xml);
    KP_GUARD(st);
    st = kp_aws_s3_put_result(a, &r, what);
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
                 : kp_aws_err(a, KP_ERR_UNAVAILABLE, "%s: %s after 200", what,
                              u.code[0] != '\0' ? u.code : "an error");
    kpk_http_response_free(&r);
    return st;
}

static void s_abort(kp_aws_inst *a, const char *key, const char *id, kp_status why)
{
    char *query = NULL;
    if (s_query(a, id, 0, &query) != KP_OK)
        return;
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    /* best effort: the error text of the upload's failure is what the caller sees */
    char keep[KP_ERROR_MAX];
    snprintf(keep, sizeof(keep), "%s", a->up->get_error(a->h));
    kp_status st = kp_aws_s3_send(a, "DELETE", key, query, NULL, NULL, 0, 0, &r);
    (void)st;
    kpk_http_response_free(&r);
    free(query);
    a->up->set_error(a->h, why, keep);
}

kp_status kp_aws_s3_multipart(kp_aws_inst *a, const char *key, const uint8_t *body, size_t len,
                              const kp_meta *meta, size_t nmeta)
{
    char what[KP_AWS_PREFIX_MAX + 200];
    snprintf(what, sizeof(what), "s3 %s: multipart put %.300s", a->bucket, key);
    unsigned parts = (unsigned)((len + KP_AWS_S3_PART - 1) / KP_AWS_S3_PART);
    if (parts > 10000)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "%s: more than S3's 10,000 parts", what);
    char(*etags)[S_ETAG_MAX] = calloc(parts, S_ETAG_MAX);
    if (etags == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    s_upload u;
    memset(&u, 0, sizeof(u));
    kp_status st = s_create(a, key, meta, nmeta, what, &u);
    for (unsigned i = 0; st == KP_OK && i < parts; i++) {
        size_t off = (size_t)i * KP_AWS_S3_PART;
        size_t n = len - off < KP_AWS_S3_PART ? len - off : KP_AWS_S3_PART;
        st = s_part(a, key, u.id, i + 1, body + off, n, what, etags[i]);
    }
    bool completing = st == KP_OK;
    if (st == KP_OK)
        st = s_complete(a, key, u.id, etags, parts, what);
    /* a complete without an answer may have made the object: the caller looks; anything else
     * that failed is aborted */
    bool ambiguous = completing && (st == KP_ERR_TIMEOUT || st == KP_ERR_UNAVAILABLE);
    if (st != KP_OK && !ambiguous && u.id[0] != '\0')
        s_abort(a, key, u.id, st);
    free(etags);
    return st;
}
