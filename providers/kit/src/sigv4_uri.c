/*
 * SigV4's text rules for the request line: RFC 3986 percent-encoding with upper-case hex, the
 * canonical query (what is signed, and, made by kpk_sigv4_query, what is sent), and the
 * canonical path, normalised for every service but S3. The growing buffer the signer builds
 * its canonical request in lives here too, so that sigv4.c calls down into this file only.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>
#include <keyplane/provider.h>

#include "sigv4_internal.h"

#define S_FIRST_CAP 1024

static const char s_hex[] = "0123456789ABCDEF";

static bool s_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* ---- the buffer ------------------------------------------------------------------------- */

static bool s_reserve(kpk__sigv4_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (more < b->cap - b->len)
        return true;
    size_t cap = b->cap > 0 ? b->cap : S_FIRST_CAP;
    while (cap - b->len <= more) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *np = malloc(cap);
    if (np == NULL) {
        b->oom = true;
        return false;
    }
    np[0] = '\0';
    if (b->p != NULL) {
        memcpy(np, b->p, b->len + 1);
        OPENSSL_cleanse(b->p, b->len + 1);
        free(b->p);
    }
    b->p = np;
    b->cap = cap;
    return true;
}

void kpk__sigv4_buf_add(kpk__sigv4_buf *b, const void *s, size_t n)
{
    if (!s_reserve(b, n))
        return;
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void kpk__sigv4_buf_str(kpk__sigv4_buf *b, const char *s)
{
    kpk__sigv4_buf_add(b, s, strlen(s));
}

void kpk__sigv4_buf_addc(kpk__sigv4_buf *b, char c)
{
    if (b->len + 1 < b->cap && !b->oom) {
        b->p[b->len++] = c;
        b->p[b->len] = '\0';
        return;
    }
    kpk__sigv4_buf_add(b, &c, 1);
}

void kpk__sigv4_buf_lower(kpk__sigv4_buf *b, const char *s, size_t n)
{
    if (!s_reserve(b, n))
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        b->p[b->len + i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    b->len += n;
    b->p[b->len] = '\0';
}

void kpk__sigv4_buf_free(kpk__sigv4_buf *b)
{
    if (b->p != NULL) {
        OPENSSL_cleanse(b->p, b->len + 1);
        free(b->p);
    }
    memset(b, 0, sizeof(*b));
}

char *kpk__sigv4_buf_take(kpk__sigv4_buf *b)
{
    if (!b->oom && b->p == NULL)
        s_reserve(b, 0);
    if (b->oom) {
        kpk__sigv4_buf_free(b);
        return NULL;
    }
    char *s = b->p;
    memset(b, 0, sizeof(*b));
    return s;
}

/* ---- percent-encoding ------------------------------------------------------------------- */

static void s_encode_byte(kpk__sigv4_buf *b, unsigned char c, bool keep_slash)
{
    if (s_unreserved(c) || (keep_slash && c == '/')) {
        kpk__sigv4_buf_addc(b, (char)c);
        return;
    }
    char e[3] = {'%', s_hex[c >> 4], s_hex[c & 0xf]};
    kpk__sigv4_buf_add(b, e, sizeof(e));
}

static void s_encode(kpk__sigv4_buf *b, const char *s, size_t n, bool keep_slash)
{
    for (size_t i = 0; i < n; i++)
        s_encode_byte(b, (unsigned char)s[i], keep_slash);
}

size_t kpk_aws_uri_encode(const char *in, size_t len, int keep_slash, char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return (size_t)-1;
    out[0] = '\0';
    if (in == NULL && len > 0)
        return (size_t)-1;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        bool keep = s_unreserved(c) || (keep_slash && c == '/');
        size_t need = keep ? 1 : 3;
        if (cap - o <= need) {
            out[0] = '\0';
            return (size_t)-1;
        }
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = s_hex[c >> 4];
            out[o++] = s_hex[c & 0xf];
        }
    }
    out[o] = '\0';
    return o;
}

/* ---- the canonical query ---------------------------------------------------------------- */

/* Appends s/n %-decoded and encoded again. false: a bad escape or a control character. */
static bool s_recode(kpk__sigv4_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c == '%') { /* two hex digits, read by the kit's hex decoder */
            char xx[3] = {0};
            uint8_t byte = 0;
            if (i + 2 >= n)
                return false;
            memcpy(xx, s + i + 1, 2);
            if (kpk_hex_decode(xx, &byte, 1) != KP_OK)
                return false;
            c = byte;
            i += 2;
        }
        s_encode_byte(b, c, false);
    }
    return true;
}

/* One parameter: its encoded name and value, as offsets into the scratch buffer while it
 * grows, then as pointers for the sort. */
typedef struct s_param {
    size_t name_off, name_len, value_off, value_len;
    const char *name, *value;
} s_param;

static int s_slice_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int s_param_cmp(const void *x, const void *y)
{
    const s_param *a = x, *b = y;
    int c = s_slice_cmp(a->name, a->name_len, b->name, b->name_len);
    return c != 0 ? c : s_slice_cmp(a->value, a->value_len, b->value, b->value_len);
}

/* Sorts the n params (encoded in scratch) and appends them joined by '&' to out. */
static void s_emit_sorted(s_param *ps, size_t n, const kpk__sigv4_buf *scratch, kpk__sigv4_buf *out)
{
    const char *base = scratch->p != NULL ? scratch->p : ""; /* all names and values empty */
    for (size_t i = 0; i < n; i++) {
        ps[i].name = base + ps[i].name_off;
        ps[i].value = base + ps[i].value_off;
    }
    if (n > 1)
        qsort(ps, n, sizeof(*ps), s_param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            kpk__sigv4_buf_addc(out, '&');
        kpk__sigv4_buf_add(out, ps[i].name, ps[i].name_len);
        kpk__sigv4_buf_addc(out, '=');
        kpk__sigv4_buf_add(out, ps[i].value, ps[i].value_len);
    }
}

kp_status kpk__sigv4_canon_query(const char *query, kpk__sigv4_buf *out)
{
    if (query == NULL || query[0] == '\0')
        return KP_OK;
    size_t qlen = strlen(query), n = 1;
    for (size_t i = 0; i < qlen; i++)
        n += query[i] == '&';
    s_param *ps = calloc(n, sizeof(*ps));
    kpk__sigv4_buf scratch = {0};
    kp_status st = ps != NULL ? KP_OK : KP_ERR_NOMEM;
    size_t k = 0;
    for (const char *p = query; st == KP_OK && *p != '\0';) {
        size_t part = strcspn(p, "&");
        if (part > 0) {
            const char *eq = memchr(p, '=', part);
            size_t nlen = eq != NULL ? (size_t)(eq - p) : part;
            ps[k].name_off = scratch.len;
            if (!s_recode(&scratch, p, nlen))
                st = KP_ERR_INVALID_ARG;
            ps[k].name_len = scratch.len - ps[k].name_off;
            ps[k].value_off = scratch.len;
            if (eq != NULL && !s_recode(&scratch, eq + 1, part - nlen - 1))
                st = KP_ERR_INVALID_ARG;
            ps[k].value_len = scratch.len - ps[k].value_off;
            k++;
        }
        p += part;
        if (*p == '&')
            p++;
    }
    if (st == KP_OK && scratch.oom)
        st = KP_ERR_NOMEM;
    if (st == KP_OK && k > 0)
        s_emit_sorted(ps, k, &scratch, out);
    if (st == KP_OK && out->oom)
        st = KP_ERR_NOMEM;
    kpk__sigv4_buf_free(&scratch);
    free(ps);
    return st;
}

kp_status kpk_sigv4_query(const kpk_query_param *params, size_t n, char **out)
{
    KP_ENSURE(out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    KP_ENSURE(n == 0 || params != NULL, KP_ERR_INVALID_ARG);
    for (size_t i = 0; i < n; i++)
        KP_ENSURE(params[i].name != NULL, KP_ERR_INVALID_ARG);
    s_param *ps = n > 0 ? calloc(n, sizeof(*ps)) : NULL;
    kpk__sigv4_buf scratch = {0}, res = {0};
    kp_status st = n == 0 || ps != NULL ? KP_OK : KP_ERR_NOMEM;
    for (size_t i = 0; st == KP_OK && i < n; i++) {
        const char *v = params[i].value != NULL ? params[i].value : "";
        ps[i].name_off = scratch.len;
        s_encode(&scratch, params[i].name, strlen(params[i].name), false);
        ps[i].name_len = scratch.len - ps[i].name_off;
        ps[i].value_off = scratch.len;
        s_encode(&scratch, v, strlen(v), false);
        ps[i].value_len = scratch.len - ps[i].value_off;
    }
    if (st == KP_OK && scratch.oom)
        st = KP_ERR_NOMEM;
    if (st == KP_OK && n > 0)
        s_emit_sorted(ps, n, &scratch, &res);
    if (st == KP_OK) {
        *out = kpk__sigv4_buf_take(&res);
        if (*out == NULL)
            st = KP_ERR_NOMEM;
    }
    kpk__sigv4_buf_free(&res);
    kpk__sigv4_buf_free(&scratch);
    free(ps);
    return st;
}

/* ---- the canonical path ----------------------------------------------------------------- */

void kpk__sigv4_canon_path(const char *path, int s3, kpk__sigv4_buf *out)
{
    size_t len = strlen(path);
    if (len == 0) {
        kpk__sigv4_buf_addc(out, '/');
        return;
    }
    if (s3) {
        kpk__sigv4_buf_add(out, path, len);
        return;
    }
    /* The kept segments, as (start, length) pairs on a stack; ".." pops one. At most one
     * segment per two bytes of path survives ("/a/b"), so len / 2 + 1 slots are enough. */
    size_t slots = len / 2 + 1, depth = 0;
    size_t *seg = malloc(2 * slots * sizeof(*seg));
    if (seg == NULL) {
        out->oom = true;
        return;
    }
    for (size_t i = 0; i < len;) {
        size_t n = strcspn(path + i, "/");
        if (n == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (depth > 0)
                depth--;
        } else if (n > 0 && !(n == 1 && path[i] == '.')) {
            seg[2 * depth] = i;
            seg[2 * depth + 1] = n;
            depth++;
        }
        i += n + 1;
    }
    kpk__sigv4_buf_addc(out, '/');
    for (size_t d = 0; d < depth; d++) {
        if (d > 0)
            kpk__sigv4_buf_addc(out, '/');
        s_encode(out, path + seg[2 * d], seg[2 * d + 1], false);
    }
    if (depth > 0 && path[len - 1] == '/')
        kpk__sigv4_buf_addc(out, '/');
    free(seg);
}
