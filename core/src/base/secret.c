/*
 * kp_secret: locked, dump-excluded, always-wiped memory for key material.
 *
 * Layout: one block holding the header and the bytes, so one lock covers both. A secret of up
 * to 8 KiB with its header (a DEK, an RSA decryption's output, a password, a PEM key, a value
 * read from a secret store) takes a slot of a pool of locked, dump-excluded pages kept for the
 * process's life, so making one costs no system call (an unwrap makes one or two; a DEK cache
 * hit one; a secret-store read one). A larger one is its own page-aligned block, locked and
 * excluded when made and released when freed. Growing allocates a new block,
 * copies, and wipes and frees the old one; realloc would leave an unwiped copy behind
 * (cryptsetup's lib/utils_safe_memory.c does the same for the same reason).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <keyplane/keyplane.h>

#include "base/secret_hook.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define S_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define S_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define S_POISON(p, n) ((void)(p), (void)(n))
#define S_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct kp_secret {
    size_t len;   /* bytes in use */
    size_t total; /* bytes of the whole block (or slot), header included */
    int locked;
    int pool; /* the slot class + 1 when from the pool, 0 for an own block */
    unsigned char data[];
};

/* The pool: three slot sizes, each carved out of 64 KiB chunks taken (and locked) as needed. A
 * free slot is wiped and, under ASan, poisoned, so a use after free is still caught. */
#define S_CHUNK (64 * 1024)
#define S_CLASSES 3
static const size_t s_slot[S_CLASSES] = {128, 1024, 8192};
typedef struct s_free {
    struct s_free *next;
} s_free;
static s_free *s_free_list[S_CLASSES];
static pthread_mutex_t s_pool_lock = PTHREAD_MUTEX_INITIALIZER;

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

/* Takes a new chunk for class c (pool lock held): its slots go on the free list. */
static int s_pool_grow(int c)
{
    void *chunk = NULL;
    if (posix_memalign(&chunk, s_page(), S_CHUNK) != 0)
        return -1;
    memset(chunk, 0, S_CHUNK);
    int locked = mlock(chunk, S_CHUNK) == 0;
#ifdef MADV_DONTDUMP
    (void)madvise(chunk, S_CHUNK, MADV_DONTDUMP);
#endif
    for (size_t off = S_CHUNK; off >= s_slot[c]; off -= s_slot[c]) {
        s_free *f = (s_free *)((unsigned char *)chunk + off - s_slot[c]);
        f->next = s_free_list[c];
        s_free_list[c] = f;
        ((kp_secret *)(void *)f)->locked = locked; /* kept: read again when the slot is taken */
        S_POISON((unsigned char *)f + sizeof(s_free), s_slot[c] - sizeof(s_free));
    }
    return 0;
}

static kp_secret *s_pool_new(int c, size_t len)
{
    pthread_mutex_lock(&s_pool_lock);
    s_free *f = s_free_list[c];
    if (f == NULL && s_pool_grow(c) == 0)
        f = s_free_list[c];
    if (f != NULL)
        s_free_list[c] = f->next;
    pthread_mutex_unlock(&s_pool_lock);
    if (f == NULL)
        return NULL;
    S_UNPOISON(f, s_slot[c]);
    kp_secret *s = (kp_secret *)(void *)f;
    int locked = s->locked;
    memset(s, 0, s_slot[c]);
    s->len = len;
    s->total = s_slot[c];
    s->locked = locked;
    s->pool = c + 1;
    return s;
}

static void s_pool_free(kp_secret *s)
{
    int c = s->pool - 1, locked = s->locked;
    memset(s, 0, sizeof(*s));
    s->locked = locked;
    s_free *f = (s_free *)(void *)s;
    S_POISON((unsigned char *)f + sizeof(s_free), s_slot[c] - sizeof(s_free));
    pthread_mutex_lock(&s_pool_lock);
    f->next = s_free_list[c];
    s_free_list[c] = f;
    pthread_mutex_unlock(&s_pool_lock);
}

kp_secret *kp_secret_new(size_t len)
{
    for (int c = 0; c < S_CLASSES; c++)
        if (len <= s_slot[c] - sizeof(kp_secret)) {
            kp_secret *s = s_pool_new(c, len);
            if (s != NULL)
                return s;
            break; /* no chunk to be had: an own block may still be */
        }
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
    if (s->pool != 0) {
        s_pool_free(s);
        return;
    }
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
