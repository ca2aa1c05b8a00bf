/*
 * The per-instance cache of key versions: what meta.json says of a version (kp_key_info) once
 * read and checked, and its private key once decrypted and matched against its public key, found
 * by name and version in a hash table. keyplane never changes a version's files once written (a
 * new key is a new version), but a store can be damaged, restored or replaced under a process
 * that lives for days: so an entry answers only while the files it was read from are the same
 * (an lstat of each, and of the directories keys/ and keys/NAME/ on the way, matches the stamp
 * taken before they were read: device, inode, size, mtime, ctime), and is read again otherwise.
 * An unwrap costs six lstat calls, no open, no KDF, no parse. Private keys are kept for the
 * KP_FILE_PKEYS_MAX versions used last: what a database engine unwraps under (the active version
 * and a few older ones) stays, while a verify that goes through thousands of keys once each
 * does not fill OpenSSL's secure heap with them.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_internal.h"

#define S_BUCKETS0 64

static uint64_t s_hash(const char *name, uint32_t version)
{
    uint64_t h = 0xcbf29ce484222325ull ^ version; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

/* Doubles the table (lock held); stays as it is when memory is short. */
static void s_grow(kp_file_inst *fi)
{
    size_t nb = fi->cache_nb == 0 ? S_BUCKETS0 : fi->cache_nb * 2;
    kp_file_cached_key **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < fi->cache_nb; i++)
        for (kp_file_cached_key *c = fi->cache[i], *next; c != NULL; c = next) {
            next = c->next;
            c->next = b[c->hash & (nb - 1)];
            b[c->hash & (nb - 1)] = c;
        }
    free(fi->cache);
    fi->cache = b;
    fi->cache_nb = nb;
}

/* The entry of name/version (lock held); made when create and memory allows, else NULL. */
static kp_file_cached_key *s_slot(kp_file_inst *fi, const char *name, uint32_t version, bool create)
{
    uint64_t h = s_hash(name, version);
    for (kp_file_cached_key *c = fi->cache_nb > 0 ? fi->cache[h & (fi->cache_nb - 1)] : NULL;
         c != NULL; c = c->next)
        if (c->hash == h && c->version == version && strcmp(c->name, name) == 0)
            return c;
    if (!create)
        return NULL;
    if (fi->cache_n >= fi->cache_nb * 2)
        s_grow(fi);
    kp_file_cached_key *c = fi->cache_nb > 0 ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL)
        return NULL;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->version = version;
    c->hash = h;
    c->next = fi->cache[h & (fi->cache_nb - 1)];
    fi->cache[h & (fi->cache_nb - 1)] = c;
    fi->cache_n++;
    return c;
}

void kp_file_cache_stamp(kp_file_inst *fi, const char *name, uint32_t version, size_t n,
                         kp_file_stamp *stamps)
{
    static const char *const files[KP_FILE_STAMPS - 2] = {"", "/meta.json", "/public.der",
                                                          "/private.p8"};
    char path[KP_FILE_PATH_MAX];
    for (size_t i = 0; i < n && i < KP_FILE_STAMPS; i++) {
        struct stat sb;
        kp_status st;
        memset(&stamps[i], 0, sizeof(stamps[i]));
        if (i == 0)
            st = kp_file_path(fi, path, sizeof(path), "%s/keys", fi->dir);
        else if (i == 1)
            st = kp_file_path(fi, path, sizeof(path), "%s/keys/%s", fi->dir, name);
        else
            st = kp_file_path(fi, path, sizeof(path), "%s/keys/%s/%u%s", fi->dir, name, version,
                              files[i - 2]);
        /* lstat: a directory on the way replaced by a link (even to the same place) is
         * another file, and sends the lookup back through the no-follow walk that refuses it. */
        if (st != KP_OK || lstat(path, &sb) != 0)
            continue; /* all zero: never equal to a stamp of a file that was there */
        stamps[i].dev = (uint64_t)sb.st_dev;
        stamps[i].ino = (uint64_t)sb.st_ino;
        stamps[i].size = (int64_t)sb.st_size;
        stamps[i].mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        stamps[i].ctime_ns = (int64_t)sb.st_ctim.tv_sec * 1000000000 + sb.st_ctim.tv_nsec;
    }
}

/* Whether the first n files of name/version are still those of then (stamps taken before they
 * were read), looked at now. */
static bool s_same(kp_file_inst *fi, const char *name, uint32_t version, size_t n,
                   const kp_file_stamp *then)
{
    kp_file_stamp now[KP_FILE_STAMPS];
    kp_file_cache_stamp(fi, name, version, n, now);
    return now[KP_FILE_INFO_STAMPS - 1].ino != 0 && memcmp(now, then, n * sizeof(now[0])) == 0;
}

/* Takes c out of the list of entries holding a private key (lock held). */
static void s_unlink(kp_file_inst *fi, kp_file_cached_key *c)
{
    if (c->newer != NULL)
        c->newer->older = c->older;
    else
        fi->newest = c->older;
    if (c->older != NULL)
        c->older->newer = c->newer;
    else
        fi->oldest = c->newer;
    c->older = c->newer = NULL;
}

/* Puts c, which holds a private key, first in the list (lock held). */
static void s_push(kp_file_inst *fi, kp_file_cached_key *c)
{
    c->newer = NULL;
    c->older = fi->newest;
    if (fi->newest != NULL)
        fi->newest->newer = c;
    else
        fi->oldest = c;
    fi->newest = c;
}

/* Gives up the private key of c (lock held). Its info stays: it was kept under the same first
 * stamps as the key (kp_file_cache_keep_info), and is still checked against them. */
static void s_drop_pkey(kp_file_inst *fi, kp_file_cached_key *c)
{
    s_unlink(fi, c);
    EVP_PKEY_free(c->pkey); /* a caller still holding it keeps its own reference */
    c->pkey = NULL;
    fi->cache_npkeys--;
}

size_t kp_file_cache_drop_pkeys(kp_file_inst *fi)
{
    size_t n = 0;
    pthread_mutex_lock(&fi->lock);
    while (fi->oldest != NULL) {
        s_drop_pkey(fi, fi->oldest);
        n++;
    }
    pthread_mutex_unlock(&fi->lock);
    return n;
}

EVP_PKEY *kp_file_cache_pkey(kp_file_inst *fi, const char *name, uint32_t version)
{
    kp_file_stamp then[KP_FILE_STAMPS];
    pthread_mutex_lock(&fi->lock);
    kp_file_cached_key *c = s_slot(fi, name, version, false);
    EVP_PKEY *pkey = c != NULL ? c->pkey : NULL;
    if (pkey != NULL) {
        EVP_PKEY_up_ref(pkey);
        memcpy(then, c->stamp, sizeof(then));
        if (fi->newest != c) {
            s_unlink(fi, c);
            s_push(fi, c);
        }
    }
    pthread_mutex_unlock(&fi->lock);
    /* The files are looked at outside the lock: other versions need not wait. */
    if (pkey != NULL && !s_same(fi, name, version, KP_FILE_STAMPS, then)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

EVP_PKEY *kp_file_cache_keep_pkey(kp_file_inst *fi, const char *name, uint32_t version,
                                  EVP_PKEY *mine, const kp_file_stamp *stamps)
{
    pthread_mutex_lock(&fi->lock);
    kp_file_cached_key *c = s_slot(fi, name, version, true);
    if (c != NULL) {
        /* The newest read wins: an older copy (another thread's, or one read before the files
         * changed) goes. Stamps taken before reading: a change after them shows next time. */
        if (c->pkey != NULL) {
            EVP_PKEY_free(c->pkey);
            s_unlink(fi, c);
        } else {
            fi->cache_npkeys++;
        }
        c->pkey = mine;
        EVP_PKEY_up_ref(mine);
        s_push(fi, c);
        memcpy(c->stamp, stamps, sizeof(c->stamp));
        c->have_info = false; /* read again beside the key, under the same stamps */
        /* Over the bound: the key used longest ago goes; its meta.json stays cached. */
        if (fi->cache_npkeys > KP_FILE_PKEYS_MAX)
            s_drop_pkey(fi, fi->oldest);
    }
    pthread_mutex_unlock(&fi->lock);
    return mine;
}

bool kp_file_cache_info(kp_file_inst *fi, const char *name, uint32_t version, kp_key_info *info)
{
    kp_file_stamp then[KP_FILE_INFO_STAMPS];
    pthread_mutex_lock(&fi->lock);
    kp_file_cached_key *c = s_slot(fi, name, version, false);
    bool hit = c != NULL && c->have_info;
    if (hit) {
        *info = c->info;
        memcpy(then, c->stamp, sizeof(then));
    }
    pthread_mutex_unlock(&fi->lock);
    return hit && s_same(fi, name, version, KP_FILE_INFO_STAMPS, then);
}

void kp_file_cache_keep_info(kp_file_inst *fi, const kp_key_info *info, const kp_file_stamp *stamps)
{
    pthread_mutex_lock(&fi->lock);
    kp_file_cached_key *c = s_slot(fi, info->name, info->version, true);
    if (c != NULL &&
        (c->pkey == NULL || memcmp(c->stamp, stamps, KP_FILE_INFO_STAMPS * sizeof(*stamps)) == 0)) {
        c->info = *info;
        c->have_info = true;
        if (c->pkey == NULL)
            memcpy(c->stamp, stamps, KP_FILE_INFO_STAMPS * sizeof(*stamps));
    }
    pthread_mutex_unlock(&fi->lock);
}

void kp_file_cache_free(kp_file_inst *fi)
{
    for (size_t i = 0; i < fi->cache_nb; i++)
        for (kp_file_cached_key *c = fi->cache[i], *next; c != NULL; c = next) {
            next = c->next;
            EVP_PKEY_free(c->pkey); /* OpenSSL cleanses the key material */
            free(c);
        }
    free(fi->cache);
    fi->cache = NULL;
    fi->cache_nb = fi->cache_n = 0;
    fi->newest = fi->oldest = NULL;
    fi->cache_npkeys = 0;
}
