/*
 * kp_secret: the one type that holds key material, passphrases and DEKs.
 *
 * Memory is page-aligned, locked (mlock) and excluded from core dumps (MADV_DONTDUMP) where the
 * system allows it; freeing always wipes. There is no accessor that returns a NUL-terminated
 * string, and nothing in keyplane logs or prints a secret's bytes.
 */
#ifndef KEYPLANE_SECRET_H
#define KEYPLANE_SECRET_H

#include <stddef.h>

#include <keyplane/error.h>
#include <keyplane/provider.h> /* typedef struct kp_secret kp_secret */

#ifdef __cplusplus
extern "C" {
#endif

/** A new zero-filled secret of len bytes (len may be 0). NULL when out of memory. */
KP_API kp_secret *kp_secret_new(size_t len);

/** A new secret holding a copy of len bytes at data. NULL when out of memory. */
KP_API kp_secret *kp_secret_new_copy(const void *data, size_t len);

/** Wipes and frees. NULL is a no-op. */
KP_API void kp_secret_free(kp_secret *s);

/** Borrowed writable bytes (get0). */
KP_API unsigned char *kp_secret_data(kp_secret *s);

/** Borrowed bytes of a read-only secret (get0). */
KP_API const unsigned char *kp_secret_cdata(const kp_secret *s);

KP_API size_t kp_secret_len(const kp_secret *s);

/** Shrinks to len bytes, wiping the tail. KP_ERR_INVALID_ARG when len > current length. */
KP_API KP_WARN_UNUSED kp_status kp_secret_shrink(kp_secret *s, size_t len);

/** Appends len bytes. Grows by allocate-copy-wipe-free, never realloc; *s is replaced. */
KP_API KP_WARN_UNUSED kp_status kp_secret_append(kp_secret **s, const void *data, size_t len);

/** Constant-time equality of length and bytes (the length itself is not hidden). */
KP_API int kp_secret_equal(const kp_secret *a, const kp_secret *b);

/** Wipes len bytes at p so the compiler cannot drop it. */
KP_API void kp_memwipe(void *p, size_t len);

/**
 * Reads a secret from a source reference, never from the reference itself:
 *   "env:NAME"  the environment variable NAME (read with secure_getenv)
 *   "file:PATH" the whole file PATH
 *   "fd:N"      everything readable from file descriptor N
 *   "stdin" or "-"  standard input
 * One trailing newline ("\n" or "\r\n") is dropped when strip_newline is set (passphrases);
 * DEKs are read as raw bytes. At most max bytes are accepted (KP_ERR_INVALID_ARG beyond).
 * On error, err (if not NULL) receives a one-line reason naming the source but never its
 * content.
 */
KP_API KP_WARN_UNUSED kp_status kp_secret_read_source(const char *ref, size_t max,
                                                      int strip_newline, kp_secret **out, char *err,
                                                      size_t errlen);

/** True when ref has the syntax of a source reference (env:, file:, fd:, stdin, -). */
KP_API int kp_secret_source_valid(const char *ref);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_SECRET_H */
