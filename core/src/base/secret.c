/*
 * kp_secret: locked, dump-excluded, always-wiped memory for key material.
 *
 * Layout: one page-aligned block holding the header and the bytes, so a single mlock and
 * madvise cover both. Growing allocates a new block, copies, and wipes and frees the old one;
 * realloc would leave an unwiped copy behind (cryptsetup's lib/utils_safe_memory.c does the
 * same for the same reason).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <keyplane/keyplane.h>

#include "base/secret_hook.h"

struct kp_secret {
    size_t len;   /* bytes in use */
    size_t total; /* bytes of the whole block, header included */
    int locked;
    unsigned char data[];
};

static kp_secret_free_hook s_free_hook;

void kp__secret_set_free_hook(kp_secret_free_hook hook)
{
    s_free_hook = hook;
}

void kp_memwipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

static size_t s_page(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

kp_secret *kp_secret_new(size_t len)
{
    size_t page = s_page();
    if (len > SIZE_MAX - sizeof(kp_secret) - page)
        return NULL;
    size_t total = (sizeof(kp_secret) + len + page - 1) / page * page;
    void *block = NULL;
    if (posix_memalign(&block, page, total) != 0)
        return NULL;
    memset(block, 0, total);
    kp_secret *s = block;
    s->len = len;
    s->total = total;
    /* Best effort: RLIMIT_MEMLOCK may be small, and a secret is still usable unlocked. */
    s->locked = mlock(block, total) == 0;
#ifdef MADV_DONTDUMP
    (void)madvise(block, total, MADV_DONTDUMP);
#endif
    return s;
}

kp_secret *kp_secret_new_copy(const void *data, size_t len)
{
    kp_secret *s = kp_secret_new(len);
    if (s != NULL && len > 0)
        memcpy(s->data, data, len);
    return s;
}

void kp_secret_free(kp_secret *s)
{
    if (s == NULL)
        return;
    size_t total = s->total;
    int locked = s->locked;
    kp_memwipe(s->data, total - sizeof(kp_secret));
    if (s_free_hook != NULL)
        s_free_hook(s->data, total - sizeof(kp_secret));
    kp_memwipe(s, sizeof(*s));
    if (locked)
        (void)munlock(s, total);
#ifdef MADV_DODUMP
    (void)madvise(s, total, MADV_DODUMP);
#endif
    free(s);
}

unsigned char *kp_secret_data(kp_secret *s)
{
    return s != NULL ? s->data : NULL;
}

const unsigned char *kp_secret_cdata(const kp_secret *s)
{
    return s != NULL ? s->data : NULL;
}

size_t kp_secret_len(const kp_secret *s)
{
    return s != NULL ? s->len : 0;
}

kp_status kp_secret_shrink(kp_secret *s, size_t len)
{
    KP_ENSURE(s != NULL && len <= s->len, KP_ERR_INVALID_ARG);
    kp_memwipe(s->data + len, s->len - len);
    s->len = len;
    return KP_OK;
}

kp_status kp_secret_append(kp_secret **s, const void *data, size_t len)
{
    KP_ENSURE(s != NULL && *s != NULL && (data != NULL || len == 0), KP_ERR_INVALID_ARG);
    kp_secret *old = *s;
    if (len > SIZE_MAX / 2 - old->len)
        return KP_ERR_NOMEM;
    size_t room = old->total - sizeof(kp_secret);
    if (old->len + len <= room) {
        memcpy(old->data + old->len, data, len);
        old->len += len;
        return KP_OK;
    }
    /* Double the capacity so reading a stream stays linear. */
    size_t cap = room * 2 > old->len + len ? room * 2 : old->len + len;
    kp_secret *grown = kp_secret_new(cap);
    if (grown == NULL)
        return KP_ERR_NOMEM;
    memcpy(grown->data, old->data, old->len);
    memcpy(grown->data + old->len, data, len);
    grown->len = old->len + len;
    kp_secret_free(old);
    *s = grown;
    return KP_OK;
}

int kp_secret_equal(const kp_secret *a, const kp_secret *b)
{
    if (a == NULL || b == NULL || a->len != b->len)
        return 0;
    return CRYPTO_memcmp(a->data, b->data, a->len) == 0;
}
