/*
 * Objects (ABI 1.6, KP_INST_OBJECTS) at "s3://BUCKET/KEY": what `keyplane backup` writes and
 * reads, through an s3 instance (its endpoint and addressing) or a kms instance (its
 * s3_endpoint), in the instance's region and with its credentials.
 *
 * A write holds one part in memory. Below a part it is one PutObject at the commit; past it, a
 * multipart upload begun with the first full part, every part an idempotent PUT the transport
 * repeats alone. Either way the object appears only at the commit and only where no object is
 * (If-None-Match: *), so a backup never replaces another, and an abandoned or failed write is
 * aborted: no parts are left billed. Parts are 8 MiB for the first 2,000 (16 GiB), then twice
 * that per 2,000 more, within S3's 10,000 parts and 5 GiB a part. Reads are ranged GETs with
 * If-Match on the ETag that STAT saw, landing in the caller's buffer without a copy.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_internal.h"

#define S_KEY_MAX 1024
#define S_PARTS_STEP 2000 /* parts of one size before the size doubles */

struct kp_object_writer {
    kp_aws_s3_at at;
    char key[S_KEY_MAX + 1];
    kp_meta meta[KP_AWS_META_MAX];
    size_t nmeta;
    char *strings; /* owns meta's keys and values */
    uint8_t *buf;  /* the part being filled: cap bytes */
    size_t fill, cap;
    bool started; /* the multipart upload exists */
    kp_aws_mpu mpu;
};

/* "s3://BUCKET/KEY" into at (the instance's endpoint and addressing) and key. */
static kp_status s_parse(kp_aws_inst *a, const char *where, kp_aws_s3_at *at,
                         char key[S_KEY_MAX + 1])
{
    if (!a->objects)
        return kp_aws_err(a, KP_ERR_UNSUPPORTED, "a secretsmanager instance keeps no objects");
    if (strncmp(where, "s3://", 5) != 0)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "%.200s: not s3://BUCKET/KEY (a bucket, /, a key)",
                          where);
    const char *b = where + 5, *slash = strchr(b, '/');
    size_t bl = slash != NULL ? (size_t)(slash - b) : strlen(b);
    memset(at, 0, sizeof(*at));
    if (bl < 3 || bl >= sizeof(at->bucket) || slash == NULL || slash[1] == '\0')
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "%.200s: not s3://BUCKET/KEY (a bucket, /, a key)",
                          where);
    memcpy(at->bucket, b, bl);
    if (strspn(at->bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-") != bl)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "%.200s: a bucket name is 3-63 of a-z 0-9 . -",
                          where);
    const char *k = slash + 1;
    if (strlen(k) > S_KEY_MAX)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "%.200s: an S3 key is 1024 bytes at most", where);
    memcpy(key, k, strlen(k) + 1);
    snprintf(at->endpoint, sizeof(at->endpoint), "%s", a->s3_endpoint);
    /* a bucket with '.' fails TLS host name checks as a virtual host: path style then */
    at->virtual_host = a->s3_virtual && strchr(at->bucket, '.') == NULL;
    at->sse = false;
    return KP_OK;
}

/* After a 404 for a key: KP_ERR_CONFIG when its bucket is missing or in another region (a
 * missing object and a mistyped bucket read the same to a HEAD, which has no body to say
 * which); KP_OK when it is there, or when S3 will not say (no s3:ListBucket: the request that
 * follows tells). */
static kp_status s_bucket_there(kp_aws_inst *a, const kp_aws_s3_at *at)
{
    char region[64];
    kp_aws_begin(a, true);
    kp_status st = kp_aws_s3_head_bucket_at(a, at, region, sizeof(region));
    kp_aws_end(a);
    if (st == KP_ERR_NOT_FOUND) /* the text is head_bucket's: "bucket B does not exist" */
        return kp_aws_err(a, KP_ERR_CONFIG, "s3: bucket %s does not exist in %s", at->bucket,
                          a->region);
    return st == KP_ERR_CONFIG ? st : KP_OK;
}

/* Keeps a copy of the metadata for the request that creates the object. */
static kp_status s_keep_meta(kp_aws_inst *a, kp_object_writer *w, const kp_meta *meta, size_t nmeta)
{
    size_t need = 0;
    for (size_t i = 0; i < nmeta; i++)
        need += strlen(meta[i].key) + strlen(meta[i].value) + 2;
    w->strings = malloc(need > 0 ? need : 1);
    if (w->strings == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    char *p = w->strings;
    for (size_t i = 0; i < nmeta; i++) {
        size_t kl = strlen(meta[i].key) + 1, vl = strlen(meta[i].value) + 1;
        w->meta[i].key = memcpy(p, meta[i].key, kl);
        p += kl;
        w->meta[i].value = memcpy(p, meta[i].value, vl);
        p += vl;
    }
    w->nmeta = nmeta;
    return KP_OK;
}

static void s_writer_free(kp_object_writer *w)
{
    if (w == NULL)
        return;
    free(w->buf);
    free(w->strings);
    free(w);
}

kp_status kp_aws_ob_create(void *inst, const char *where, const kp_meta *meta, size_t nmeta,
                           kp_object_writer **out)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && where != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    KP_GUARD(kp_aws_meta_check(a, meta, nmeta));
    kp_object_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kp_status st = s_parse(a, where, &w->at, w->key);
    if (st == KP_OK)
        st = s_keep_meta(a, w, meta, nmeta);
    if (st == KP_OK) {
        /* the headers now, so that metadata S3 would refuse fails before any byte is read */
        kp_aws_s3_headers h;
        st = kp_aws_s3_put_headers(a, &w->at, w->meta, w->nmeta, &h);
        kp_aws_s3_headers_free(&h);
    }
    if (st == KP_OK) {
        /* an object there already: say so before the caller spends an hour on its bytes (the
         * commit checks again) */
        kp_aws_begin(a, true);
        kp_aws_object o;
        st = kp_aws_s3_get_at(a, &w->at, w->key, &o, NULL);
        kp_aws_end(a);
        if (st == KP_OK) {
            kp_aws_object_clear(&o);
            st = kp_aws_err(a, KP_ERR_EXISTS, "%.300s exists: a backup never replaces an object",
                            where);
        } else if (st == KP_ERR_NOT_FOUND)
            st = s_bucket_there(a, &w->at);
    }
    w->cap = KP_AWS_S3_PART;
    if (st == KP_OK && (w->buf = malloc(w->cap)) == NULL)
        st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    if (st != KP_OK) {
        s_writer_free(w);
        return st;
    }
    *out = w;
    return KP_OK;
}

/* Sends the full part in w->buf (beginning the upload with the first). */
static kp_status s_flush(kp_aws_inst *a, kp_object_writer *w)
{
    kp_status st = KP_OK;
    kp_aws_begin(a, false);
    if (!w->started) {
        st = kp_aws_mpu_begin(a, &w->at, w->key, w->meta, w->nmeta, &w->mpu);
        w->started = st == KP_OK;
    }
    if (st == KP_OK)
        st = kp_aws_mpu_part(a, &w->mpu, w->buf, w->fill);
    kp_aws_end(a);
    if (st != KP_OK)
        return st;
    w->fill = 0;
    /* bigger parts as the object grows: S3 takes 10,000 of them */
    if (w->mpu.parts % S_PARTS_STEP == 0 && w->cap < 512u * 1024 * 1024) {
        uint8_t *nb = malloc(2 * w->cap);
        if (nb == NULL)
            return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
        free(w->buf);
        w->buf = nb;
        w->cap *= 2;
    }
    return KP_OK;
}

kp_status kp_aws_ob_write(void *inst, kp_object_writer *w, const uint8_t *data, size_t len)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && w != NULL && (len == 0 || data != NULL), KP_ERR_INVALID_ARG);
    while (len > 0) {
        size_t n = w->cap - w->fill < len ? w->cap - w->fill : len;
        memcpy(w->buf + w->fill, data, n);
        w->fill += n;
        data += n;
        len -= n;
        if (w->fill == w->cap)
            KP_GUARD(s_flush(a, w));
    }
    return KP_OK;
}

kp_status kp_aws_ob_close(void *inst, kp_object_writer *w, int commit)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL, KP_ERR_INVALID_ARG);
    if (w == NULL)
        return KP_OK;
    kp_status st = KP_OK;
    kp_aws_begin(a, false);
    if (!commit) {
        if (w->started)
            kp_aws_mpu_abort(a, &w->mpu);
    } else if (!w->started) {
        st = kp_aws_s3_create_at(a, &w->at, w->key, w->buf, w->fill, w->meta, w->nmeta);
    } else {
        if (w->fill > 0)
            st = kp_aws_mpu_part(a, &w->mpu, w->buf, w->fill);
        if (st == KP_OK)
            st = kp_aws_mpu_complete(a, &w->mpu);
        else
            kp_aws_mpu_abort(a, &w->mpu);
    }
    kp_aws_end(a);
    if (st == KP_ERR_EXISTS)
        st = kp_aws_err(a, KP_ERR_EXISTS,
                        "s3://%s/%.300s appeared while it was written: nothing was replaced",
                        w->at.bucket, w->key);
    s_writer_free(w);
    return st;
}

typedef struct s_stat_meta {
    kp_meta_visit_fn visit;
    void *arg;
} s_stat_meta;

kp_status kp_aws_ob_stat(void *inst, const char *where, kp_object_info *info,
                         kp_meta_visit_fn visit, void *arg)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && where != NULL && info != NULL, KP_ERR_INVALID_ARG);
    kp_aws_s3_at at;
    char key[S_KEY_MAX + 1];
    KP_GUARD(s_parse(a, where, &at, key));
    kp_aws_object o;
    kp_aws_begin(a, true);
    kp_status st = kp_aws_s3_get_at(a, &at, key, &o, NULL);
    kp_aws_end(a);
    if (st == KP_ERR_NOT_FOUND) {
        KP_GUARD(s_bucket_there(a, &at));
        return kp_aws_err(a, KP_ERR_NOT_FOUND, "%.300s: no such object", where);
    }
    KP_GUARD(st);
    info->size = o.size;
    snprintf(info->tag, sizeof(info->tag), "%s", o.etag);
    if (visit != NULL)
        st = visit(arg, o.meta, o.nmeta);
    kp_aws_object_clear(&o);
    return st;
}

/* True when a 206's Content-Range ("bytes FIRST-LAST/TOTAL") says its len bytes are those from
 * offset on: a store (or a proxy) that answered other bytes than asked would otherwise shift the
 * stream silently, and AES-CBC without keyplane's record has nothing else to notice it. */
static bool s_range_is(const kpk_http_response *r, uint64_t offset, size_t len)
{
    const char *v;
    size_t vl;
    char text[96];
    if (kpk_http_header(r, "Content-Range", &v, &vl, NULL) == NULL || vl >= sizeof(text))
        return false;
    memcpy(text, v, vl);
    text[vl] = '\0';
    if (strncmp(text, "bytes ", 6) != 0 || !isdigit((unsigned char)text[6]))
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long first = strtoull(text + 6, &end, 10);
    if (errno != 0 || *end != '-' || !isdigit((unsigned char)end[1]))
        return false;
    unsigned long long last = strtoull(end + 1, &end, 10);
    if (errno != 0 || *end != '/')
        return false;
    return first == offset && last >= first && last - first + 1 == len;
}

/* buf is written by the transport (kpk_http_request.into), which the linter does not see */
kp_status kp_aws_ob_read(void *inst, const char *where, const char *tag, uint64_t offset,
                         uint8_t *buf, // NOLINT(readability-non-const-parameter)
                         size_t *len)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && where != NULL && len != NULL && (*len == 0 || buf != NULL),
              KP_ERR_INVALID_ARG);
    kp_aws_s3_at at;
    char key[S_KEY_MAX + 1];
    KP_GUARD(s_parse(a, where, &at, key));
    if (tag != NULL && (strpbrk(tag, "\r\n") != NULL || strlen(tag) >= 200))
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "%.300s: a malformed tag", where);
    size_t cap = *len;
    *len = 0;
    if (cap == 0)
        return KP_OK;
    char range[96], match[256];
    snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)offset,
             (unsigned long long)(offset + cap - 1));
    const char *headers[3] = {range, NULL, NULL};
    if (tag != NULL && tag[0] != '\0') {
        snprintf(match, sizeof(match), "If-Match: %s", tag);
        headers[1] = match;
    }
    kp_aws_s3_req req = {.method = "GET",
                         .key = key,
                         .headers = headers,
                         .flags = KPK_HTTP_KEEP_HEADERS,
                         .into = buf,
                         .into_cap = cap};
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_aws_begin(a, true);
    kp_status st = kp_aws_s3_call(a, &at, &req, &r);
    kp_aws_end(a);
    KP_GUARD(st);
    char what[KP_AWS_PREFIX_MAX + 200];
    snprintf(what, sizeof(what), "s3 %s: get %.300s", at.bucket, key);
    if (r.status == 416) /* at or past the end */
        st = KP_OK;
    else if (r.status == 412)
        st = kp_aws_err(a, KP_ERR_CONFLICT,
                        "%.300s changed while it was read (its ETag is no longer %s)", where, tag);
    else if (r.status == 404)
        st = kp_aws_err(a, KP_ERR_NOT_FOUND, "%.300s: no such object", where);
    else if (r.status == 200 && offset > 0)
        /* a store that ignored the range answered the whole object: not these bytes */
        st = kp_aws_err(a, KP_ERR_BACKEND, "%s: the answer ignored the range", what);
    else if (r.status / 100 != 2)
        st = kp_aws_fail(a, &r, what, NULL, 0);
    else if (r.status == 206 && !s_range_is(&r, offset, r.into_len))
        st = kp_aws_err(a, KP_ERR_BACKEND,
                        "%s: the answer is not the bytes asked for (from %llu: its Content-Range "
                        "says otherwise)",
                        what, (unsigned long long)offset);
    else
        *len = r.into_len;
    kpk_http_response_free(&r);
    return st;
}
