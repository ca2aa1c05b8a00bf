/*
 * The chain-state document of a key (KS_STATE_GET / KS_STATE_PUT): keys/<name>/state.json,
 * replaced atomically (rename), so readers need no lock. Its content belongs to the core; this
 * file only keeps it.
 *
 * Writers serialise on an exclusive flock() of keys/<name>/state.lock, held from reading the
 * current document to renaming the new one into place. flock() excludes other processes (and
 * other threads, each opening its own descriptor); on NFS Linux maps it to the server's byte-range
 * locks, so it holds against other hosts too. That is why the instance declares
 * KP_INST_STATE_CAS. The lock file stays (empty); nothing else in the store reads it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "file_internal.h"

static kp_status s_path(kp_file_inst *fi, const char *name, const char *file, char *buf,
                        size_t size)
{
    char dir[KP_FILE_PATH_MAX];

    KP_GUARD(kp_file_object_dir(fi, "key", name, dir, sizeof(dir)));
    return kp_file_path(fi, buf, size, "%s/%s", dir, file);
}

kp_status kp_file_ks_state_get(void *inst, const char *name, uint8_t *doc, size_t *len)
{
    kp_file_inst *fi = inst;
    char path[KP_FILE_PATH_MAX];
    uint8_t *data = NULL;
    size_t n = 0;

    if (len == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "state_get: len is NULL");
    KP_GUARD(kp_file_ready(fi));
    KP_GUARD(s_path(fi, name, "state.json", path, sizeof(path)));
    KP_GUARD(kp_file_read(fi, path, KP_STATE_MAX, &data, &n));
    return kp_buffer_take(fi->up, fi->h, data, n, doc, len, "state document");
}

/* Takes the exclusive writer lock of name's state; *fd receives the descriptor to close. */
static kp_status s_lock(kp_file_inst *fi, const char *path, int *fd)
{
    kp_status st = KP_OK;
    struct stat sb;
    size_t bad;
    int e;

    /* Beneath the store, no link followed (kp_file_openat): a symbolic link planted as the lock,
     * or as the key's directory, would make this process create (or lock) a file elsewhere, and
     * the document written under the lock would follow it; O_NONBLOCK: a FIFO would block the
     * open. */
    e = kp_file_openat(fi, path, O_RDWR | O_CREAT | O_NONBLOCK, 0600, fd, &bad);
    if (e == ELOOP && bad >= strlen(path))
        return kp_file_err(fi, KP_ERR_INTEGRITY, "lock file %s is a symbolic link", path);
    if (e != 0)
        return kp_file_open_err(fi, e, bad, false, "cannot open lock file", path);
    if (fstat(*fd, &sb) != 0)
        st = kp_file_errno(fi, errno, "cannot stat lock file", path);
    else if (!S_ISREG(sb.st_mode))
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "lock file %s is not a regular file", path);
    while (st == KP_OK && flock(*fd, LOCK_EX) != 0) {
        if ((e = errno) != EINTR)
            st = kp_file_errno(fi, e, "cannot lock", path);
    }
    if (st != KP_OK) {
        close(*fd);
        *fd = -1;
    }
    return st;
}

/* Compares the stored document with expect/expect_len (expect_len 0: none may be stored).
 * Caller holds the lock. */
static kp_status s_compare(kp_file_inst *fi, const char *name, const char *path,
                           const uint8_t *expect, size_t expect_len)
{
    uint8_t *data = NULL;
    size_t n = 0;
    struct stat sb;
    bool same;

    if (stat(path, &sb) != 0) {
        if (errno != ENOENT)
            return kp_file_errno(fi, errno, "cannot stat", path);
        if (expect_len == 0)
            return KP_OK;
        return kp_file_err(fi, KP_ERR_CONFLICT,
                           "state of key %s: none is stored, the writer expected one", name);
    }
    if (expect_len == 0)
        return kp_file_err(fi, KP_ERR_CONFLICT,
                           "state of key %s: one is stored, the writer expected none", name);
    KP_GUARD(kp_file_read(fi, path, KP_STATE_MAX, &data, &n));
    same = n == expect_len && CRYPTO_memcmp(data, expect, n) == 0;
    free(data);
    if (!same)
        return kp_file_err(fi, KP_ERR_CONFLICT, "state of key %s changed since the writer read it",
                           name);
    return KP_OK;
}

kp_status kp_file_ks_state_put(void *inst, const char *name, const uint8_t *doc, size_t len,
                               const uint8_t *expect, size_t expect_len)
{
    kp_file_inst *fi = inst;
    char path[KP_FILE_PATH_MAX], lock[KP_FILE_PATH_MAX], dir[KP_FILE_PATH_MAX];
    kp_status st = KP_OK;
    int fd;

    if (doc == NULL || len == 0 || len > KP_STATE_MAX)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "state document of %zu bytes", len);
    if (expect_len > KP_STATE_MAX || (expect == NULL && expect_len > 0))
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "expected state document of %zu bytes",
                           expect_len);
    KP_GUARD(kp_file_ready(fi)); /* a state document never creates a store */
    KP_GUARD(s_path(fi, name, "state.json", path, sizeof(path)));
    KP_GUARD(s_path(fi, name, "state.lock", lock, sizeof(lock)));
    KP_GUARD(kp_file_object_dir(fi, "key", name, dir, sizeof(dir)));
    KP_GUARD(kp_file_mkdirs(fi, dir));
    KP_GUARD(s_lock(fi, lock, &fd));
    /* Unconditional writes take the lock too, so they never land between a CAS's read and its
     * rename. */
    if (expect != NULL)
        st = s_compare(fi, name, path, expect, expect_len);
    if (st == KP_OK)
        st = kp_file_write_atomic(fi, path, doc, len, false);
    close(fd); /* releases the lock */
    return st;
}
