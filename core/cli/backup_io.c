/*
 * Where a backup's bytes come from and go to: a local file or an object (kp_object_*, ABI 1.6).
 *
 * A local output is written where no one can see it half done: an unnamed file (O_TMPFILE) in
 * the target's directory, linked under its name only once whole and synced, so a failure, a
 * refused input or a kill -9 leaves nothing under the name; where the file system has no
 * O_TMPFILE, a hidden temporary name, removed on failure. It never replaces a file unless asked
 * (and then by an atomic rename).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_io.h"

static kp_status s_errno(char *err, size_t errlen, const char *what, const char *path)
{
    int e = errno;
    snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    return e == ENOENT                 ? KP_ERR_NOT_FOUND
           : e == EACCES || e == EPERM ? KP_ERR_PERMISSION
                                       : KP_ERR_IO;
}

/* ---- a local file in ---------------------------------------------------------------------- */

kp_status kp_cli_bk_file_in_open(const char *path, kp_cli_bk_file_in *in, char *err, size_t errlen)
{
    memset(in, 0, sizeof(*in));
    /* O_NONBLOCK: a FIFO is refused below, not waited on for a writer that may never come */
    in->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (in->fd < 0)
        return s_errno(err, errlen, "cannot open", path);
    struct stat st;
    if (fstat(in->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(in->fd);
        in->fd = -1;
        snprintf(err, errlen, "%s is not a regular file", path);
        return KP_ERR_INVALID_ARG;
    }
    int fl = fcntl(in->fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(in->fd, F_SETFL, fl & ~O_NONBLOCK);
    in->size = (uint64_t)st.st_size;
    in->mtime = st.st_mtim;
    in->path = path;
    (void)posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return KP_OK;
}

kp_status kp_cli_bk_file_read(void *ctx, uint8_t *buf, size_t cap, size_t *got, char *err,
                              size_t errlen)
{
    kp_cli_bk_file_in *in = ctx;
    ssize_t n;
    do
        n = read(in->fd, buf, cap);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return s_errno(err, errlen, "cannot read", in->path);
    *got = (size_t)n;
    return KP_OK;
}

kp_status kp_cli_bk_file_in_unchanged(const kp_cli_bk_file_in *in, char *err, size_t errlen)
{
    /* a .bak still being written (or rewritten) reads as a shorter or mixed file that would
     * encrypt and decrypt cleanly and fail only at the restore */
    struct stat st;
    if (fstat(in->fd, &st) != 0)
        return s_errno(err, errlen, "cannot stat", in->path);
    if ((uint64_t)st.st_size == in->size && st.st_mtim.tv_sec == in->mtime.tv_sec &&
        st.st_mtim.tv_nsec == in->mtime.tv_nsec)
        return KP_OK;
    snprintf(err, errlen,
             "%s changed while it was read (%llu bytes at the start, %llu now): nothing was "
             "written; run again once it is complete",
             in->path, (unsigned long long)in->size, (unsigned long long)st.st_size);
    return KP_ERR_CONFLICT;
}

void kp_cli_bk_file_in_close(kp_cli_bk_file_in *in)
{
    if (in->fd >= 0)
        close(in->fd);
    in->fd = -1;
}

/* ---- a local file out --------------------------------------------------------------------- */

kp_status kp_cli_bk_file_out_open(const char *path, bool replace, kp_cli_bk_file_out *o, char *err,
                                  size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->fd = -1;
    o->replace = replace;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is a directory: --out names the file to write", path);
        return KP_ERR_INVALID_ARG;
    }
    if (!replace && lstat(path, &st) == 0) {
        snprintf(err, errlen, "%s exists: it is never replaced", path);
        return KP_ERR_EXISTS;
    }
    if (strlen(path) >= sizeof(o->path) - 16) {
        snprintf(err, errlen, "%.200s: the path is too long", path);
        return KP_ERR_INVALID_ARG;
    }
    snprintf(o->path, sizeof(o->path), "%s", path);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    const char *d = dirname(dir);
    o->fd = open(d, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (o->fd >= 0)
        return KP_OK;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return s_errno(err, errlen, "cannot write in", d);
    /* no unnamed files here: a hidden name beside the target, removed on failure */
    char base[PATH_MAX];
    snprintf(base, sizeof(base), "%s", path);
    int n = snprintf(o->tmp, sizeof(o->tmp), "%s/.%s.kp-XXXXXX", d, basename(base));
    o->fd = n > 0 && (size_t)n < sizeof(o->tmp) ? mkostemp(o->tmp, O_CLOEXEC) : -1;
    if (o->fd < 0) {
        o->tmp[0] = '\0';
        return s_errno(err, errlen, "cannot write in", d);
    }
    return KP_OK;
}

kp_status kp_cli_bk_file_write(void *ctx, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    kp_cli_bk_file_out *o = ctx;
    while (len > 0) {
        ssize_t n = write(o->fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return s_errno(err, errlen, "cannot write", o->path);
        buf += n;
        len -= (size_t)n;
    }
    return KP_OK;
}

/* Syncs the directory holding path, so the new name survives a crash. */
static void s_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Links the unnamed file at a new random name beside the target, for the rename over it: a
 * name no one else holds (a fixed one, PATH.kp-PID, was unlinked first: another run's file in
 * flight under the same pid of another PID namespace, or anyone's, went, and the rename could
 * then put that run's bytes in place). */
static kp_status s_link_temp(kp_cli_bk_file_out *o, const char *proc, char *err, size_t errlen)
{
    for (int tries = 0; tries < 16; tries++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
            r = (uint64_t)getpid() * 0x9e3779b97f4a7c15u + (uint64_t)tries;
        int n = snprintf(o->tmp, sizeof(o->tmp), "%s.kp-%012llx", o->path,
                         (unsigned long long)(r & 0xffffffffffffu));
        if (n < 0 || (size_t)n >= sizeof(o->tmp)) {
            o->tmp[0] = '\0';
            snprintf(err, errlen, "%.200s: the path is too long", o->path);
            return KP_ERR_INVALID_ARG;
        }
        if (linkat(AT_FDCWD, proc, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) == 0)
            return KP_OK;
        if (errno != EEXIST) {
            o->tmp[0] = '\0';
            return s_errno(err, errlen, "cannot create", o->path);
        }
    }
    o->tmp[0] = '\0';
    snprintf(err, errlen, "%.200s: no free temporary name beside it", o->path);
    return KP_ERR_IO;
}

kp_status kp_cli_bk_file_out_sync(kp_cli_bk_file_out *o, char *err, size_t errlen)
{
    return fsync(o->fd) == 0 ? KP_OK : s_errno(err, errlen, "cannot sync", o->path);
}

kp_status kp_cli_bk_file_out_commit(kp_cli_bk_file_out *o, char *err, size_t errlen)
{
    kp_status st = kp_cli_bk_file_out_sync(o, err, errlen);
    if (st == KP_OK && o->tmp[0] == '\0') {
        /* the unnamed file gets a name: a temporary one first when it replaces a file */
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
        if (o->replace)
            st = s_link_temp(o, proc, err, errlen);
        else if (linkat(AT_FDCWD, proc, AT_FDCWD, o->path, AT_SYMLINK_FOLLOW) != 0) {
            st = errno == EEXIST ? KP_ERR_EXISTS : s_errno(err, errlen, "cannot create", o->path);
            if (st == KP_ERR_EXISTS)
                snprintf(err, errlen, "%s appeared while it was written: nothing was replaced",
                         o->path);
            o->tmp[0] = '\0';
        }
    }
    if (st == KP_OK && o->tmp[0] != '\0') {
        if (o->replace ? rename(o->tmp, o->path) != 0 : link(o->tmp, o->path) != 0) {
            st = errno == EEXIST ? KP_ERR_EXISTS : s_errno(err, errlen, "cannot create", o->path);
            if (st == KP_ERR_EXISTS)
                snprintf(err, errlen, "%s appeared while it was written: nothing was replaced",
                         o->path);
        } else if (o->replace)
            o->tmp[0] = '\0'; /* renamed: nothing left to remove */
    }
    if (st == KP_OK)
        s_sync_dir(o->path);
    kp_cli_bk_file_out_drop(o);
    return st;
}

void kp_cli_bk_file_out_drop(kp_cli_bk_file_out *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->tmp[0] != '\0')
        (void)unlink(o->tmp);
    o->tmp[0] = '\0';
}

/* ---- objects ------------------------------------------------------------------------------ */

kp_status kp_cli_bk_object_read(void *ctx, uint8_t *buf, size_t cap, size_t *got, char *err,
                                size_t errlen)
{
    kp_cli_bk_object_in *in = ctx;
    bool ahead = in->ahead != NULL && cap < in->ahead_cap;
    if (ahead && in->ahead_pos < in->ahead_len) {
        size_t k = in->ahead_len - in->ahead_pos < cap ? in->ahead_len - in->ahead_pos : cap;
        memcpy(buf, in->ahead + in->ahead_pos, k);
        in->ahead_pos += k;
        *got = k;
        return KP_OK;
    }
    size_t n = ahead ? in->ahead_cap : cap;
    kp_status st =
        kp_object_read(in->inst, in->where, in->tag, in->offset, ahead ? in->ahead : buf, &n);
    if (st != KP_OK) {
        snprintf(err, errlen, "%s", kp_ctx_last_error(in->ctx));
        return st;
    }
    in->offset += n;
    if (!ahead || n == 0) {
        *got = n;
        return KP_OK;
    }
    in->ahead_len = n;
    in->ahead_pos = 0;
    return kp_cli_bk_object_read(ctx, buf, cap, got, err, errlen);
}

kp_status kp_cli_bk_object_write(void *ctx, const uint8_t *buf, size_t len, char *err,
                                 size_t errlen)
{
    kp_cli_bk_object_out *o = ctx;
    kp_status st = kp_object_write(o->w, buf, len);
    if (st != KP_OK)
        snprintf(err, errlen, "%s", kp_ctx_last_error(o->ctx));
    return st;
}
