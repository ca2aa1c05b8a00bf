/*
 * Internals of the kit's SigV4 signer shared by sigv4.c (the canonical request, the keys and the
 * signature) and sigv4_uri.c (percent-encoding, the canonical query and the canonical path).
 */
#ifndef KEYPLANE_KIT_SIGV4_INTERNAL_H
#define KEYPLANE_KIT_SIGV4_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <keyplane/kit/sigv4.h>

/* A growing string. It may hold a session token, so it grows by copying and wiping the old
 * block (never realloc) and is wiped when freed (its first len + 1 bytes: all it ever wrote). oom:
 * an allocation failed; later appends do nothing, and the owner reports KP_ERR_NOMEM once at the
 * end. */
typedef struct kpk__sigv4_buf {
    char *p; /* NUL-terminated when not NULL */
    size_t len, cap;
    bool oom;
} kpk__sigv4_buf;

void kpk__sigv4_buf_add(kpk__sigv4_buf *b, const void *s, size_t n);
void kpk__sigv4_buf_str(kpk__sigv4_buf *b, const char *s);
void kpk__sigv4_buf_addc(kpk__sigv4_buf *b, char c);
/* s/n with ASCII upper-case letters made lower-case (a header name) */
void kpk__sigv4_buf_lower(kpk__sigv4_buf *b, const char *s, size_t n);
/* Wipes and frees b's block and empties b. */
void kpk__sigv4_buf_free(kpk__sigv4_buf *b);
/* b's string, handed over (malloc'd; "" for an empty b), or NULL on oom; b is emptied. */
char *kpk__sigv4_buf_take(kpk__sigv4_buf *b);

/* Appends the canonical form of query (the query as sent, without '?'; NULL or "" for none):
 * split on '&' (empty parts dropped), each name and value %-decoded and encoded again, sorted
 * by name then value, a part without '=' written "name=". KP_ERR_INVALID_ARG for a '%' not
 * followed by two hex digits or a control character; KP_ERR_NOMEM. */
kp_status kpk__sigv4_canon_query(const char *query, kpk__sigv4_buf *out);

/* Appends the canonical URI of path ("" = "/"): for S3 the path as given; otherwise with empty
 * and "." segments dropped, ".." removing the segment before it (botocore's rule: a trailing
 * '/' is kept when something is left), and each byte but the unreserved ones and '/' encoded
 * again. The caller has checked path (it starts with '/' or is empty). */
void kpk__sigv4_canon_path(const char *path, int s3, kpk__sigv4_buf *out);

#endif /* KEYPLANE_KIT_SIGV4_INTERNAL_H */
