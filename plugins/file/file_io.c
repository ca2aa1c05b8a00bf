/*
 * Error text and file primitives of the file plugin. Everything that lands on disk goes
 * through here: directories 0700, files 0600, data fsynced before it becomes visible; and every
 * file read from a store is opened beneath the store directory, one component at a time without
 * following a symbolic link (a link planted anywhere below the directory is refused, never
 * followed out of it), and as a regular file only (never a FIFO). An error names the file and
 * where it is broken, never what it holds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "file_internal.h"

/* strerror() may use a shared buffer; instances are used from several threads. */
const char *kp_file_strerror(int e, char *buf, size_t size)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, size);
#else
    if (strerror_r(e, buf, size) != 0)
        snprintf(buf, size, "error %d", e);
    return buf;
#endif
}

kp_status kp_file_errno_status(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return KP_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
    case EROFS:
        return KP_ERR_PERMISSION;
    case ENOMEM:
        return KP_ERR_NOMEM;
    default:
        return KP_ERR_IO;
    }
}

kp_status kp_file_errno(kp_file_inst *fi, int e, const char *what, const char *path)
{
    char buf[128];

    return kp_file_err(fi, kp_file_errno_status(e), "%s %s: %s", what, path,
                       kp_file_strerror(e, buf, sizeof(buf)));
}

kp_status kp_file_path(kp_file_inst *fi, char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "path too long under %s", fi->dir);
    return KP_OK;
}

kp_status kp_file_mkdirs(kp_file_inst *fi, const char *path)
{
    char buf[KP_FILE_PATH_MAX];
    struct stat st;
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf))
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "bad directory path");
    memcpy(buf, path, len + 1);
    /* Walk the components left to right so every missing parent gets 0700 too. */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return kp_file_errno(fi, errno, "cannot create directory", buf);
        *p = saved;
        if (saved == '\0')
            break;
    }
    if (stat(path, &st) != 0)
        return kp_file_errno(fi, errno, "cannot stat", path);
    if (!S_ISDIR(st.st_mode))
        return kp_file_err(fi, KP_ERR_IO, "%s is not a directory", path);
    return KP_OK;
}

/* The part of path below the store directory, or NULL when path is not below it. */
static const char *s_below(const kp_file_inst *fi, const char *path)
{
    size_t n = strlen(fi->dir);

    if (strncmp(path, fi->dir, n) != 0 || (path[n] != '/' && n > 1))
        return NULL;
    while (path[n] == '/')
        n++;
    return path + n;
}

/* Opens component comp (len bytes) of a path in directory dfd without following a link, with
 * flags; -1 with errno, ELOOP when it is a symbolic link whatever flags made open() say (but
 * O_PATH without O_DIRECTORY opens the link itself: kp_file_lstat describes it). */
static int s_open_comp(int dfd, const char *comp, size_t len, int flags, mode_t mode)
{
    char name[NAME_MAX + 1];
    struct stat sb;
    int fd;

    if (len == 0 || len > NAME_MAX ||
        (comp[0] == '.' && (len == 1 || (len == 2 && comp[1] == '.')))) {
        errno = EINVAL; /* an empty, "." or ".." component never names a store file */
        return -1;
    }
    memcpy(name, comp, len);
    name[len] = '\0';
    fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && (errno == ENOTDIR || errno == ELOOP) &&
        fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
        errno = ELOOP; /* O_DIRECTORY answers ENOTDIR for a link */
    return fd;
}

/* Whether every component of rel is a plain name (not empty, "." or ".."): only then may
 * openat2 stand in for the walk, which refuses those. */
static bool s_plain_rel(const char *rel)
{
    for (const char *p = rel, *end;; p = end + 1) {
        end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == 0 || (p[0] == '.' && (len == 1 || (len == 2 && p[1] == '.'))))
            return false;
        if (end == NULL)
            return true;
    }
}

#ifdef SYS_openat2
/* The walk in one system call: openat2 (Linux 5.6) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
 * refuses a link in any component as the walk does (O_PATH | O_NOFOLLOW still opens a final
 * link itself). -1 when it is not there (ENOSYS, a seccomp filter) or failed: the walk then
 * runs and says exactly which component was wrong. */
static int s_openat2(const kp_file_inst *fi, const char *rel, int flags, mode_t mode)
{
    static int s_missing; /* set once openat2 is known to be unavailable */
    if (__atomic_load_n(&s_missing, __ATOMIC_RELAXED)) {
        errno = ENOSYS;
        return -1;
    }
    int dfd = open(fi->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1; /* errno as the walk's own open of the directory would say */
    /* O_TMPFILE holds O_DIRECTORY's bit: only the whole of it takes a mode */
    bool takes_mode = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
    struct open_how how = {.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
                           .mode = takes_mode ? mode : 0,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
    int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
    int e = errno;
    /* ENOSYS: an old kernel. EPERM may be a seccomp filter refusing the call, or this open
     * refused: the directory itself, opened the same way, tells them apart. */
    if (fd < 0 && e == EPERM) {
        struct open_how dir = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
        int probe = (int)syscall(SYS_openat2, dfd, ".", &dir, sizeof(dir));
        if (probe >= 0)
            close(probe);
        else
            e = ENOSYS;
    }
    if (fd < 0 && e == ENOSYS)
        __atomic_store_n(&s_missing, 1, __ATOMIC_RELAXED);
    close(dfd);
    errno = e;
    return fd;
}
#endif

int kp_file_openat(const kp_file_inst *fi, const char *path, int flags, mode_t mode, int *fd,
                   size_t *bad)
{
    const char *rel = s_below(fi, path), *p, *slash;
    int dfd, next, e;

    *fd = -1;
    *bad = 0;
    if (rel == NULL || *rel == '\0')
        return EINVAL;
#ifdef SYS_openat2
    if (s_plain_rel(rel)) {
        if ((*fd = s_openat2(fi, rel, flags, mode)) >= 0)
            return 0;
        /* Not there is an answer (a link on the way is ELOOP; a final link opened with
         * O_DIRECTORY is ENOTDIR, which the walk tells from a file): the walk is for what
         * needs the component named. */
        if (errno == ENOENT) {
            *bad = strlen(path);
            return errno;
        }
    }
    *fd = -1;
#else
    (void)s_plain_rel;
#endif
    /* The store directory itself is the operator's path and is opened as named; below it, no
     * component is a link (as openat2's RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, on every kernel). */
    if ((dfd = open(fi->dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno;
    for (p = rel; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
        next = s_open_comp(dfd, p, (size_t)(slash - p), O_PATH | O_DIRECTORY, 0);
        e = errno;
        close(dfd);
        if (next < 0) {
            *bad = (size_t)(slash - path);
            return e;
        }
        dfd = next;
    }
    *fd = s_open_comp(dfd, p, strlen(p), flags, mode);
    e = errno;
    close(dfd);
    if (*fd < 0) {
        *bad = strlen(path);
        return e;
    }
    return 0;
}

kp_status kp_file_open_err(kp_file_inst *fi, int e, size_t bad, bool dir, const char *what,
                           const char *path)
{
    if (e == ELOOP && (bad < strlen(path) || dir))
        return kp_file_err(fi, KP_ERR_INTEGRITY,
                           "%.*s is a symbolic link, not a directory: files of store %s are not "
                           "read through links",
                           (int)bad, path, fi->dir);
    if (e == ELOOP)
        return kp_file_err(fi, KP_ERR_INTEGRITY, "%s is a symbolic link, not a regular file", path);
    return kp_file_errno(fi, e, what, path);
}

kp_status kp_file_lstat(kp_file_inst *fi, const char *path, struct stat *sb, bool *missing)
{
    kp_status st = KP_OK;
    size_t bad;
    int fd, e = kp_file_openat(fi, path, O_PATH, 0, &fd, &bad);

    *missing = e == ENOENT || e == ENOTDIR;
    if (*missing)
        return KP_OK;
    if (e != 0)
        return kp_file_open_err(fi, e, bad, false, "cannot stat", path);
    if (fstat(fd, sb) != 0)
        st = kp_file_errno(fi, errno, "cannot stat", path);
    close(fd);
    return st;
}

kp_status kp_file_read(kp_file_inst *fi, const char *path, size_t cap, uint8_t **data, size_t *len)
{
    struct stat sb;
    uint8_t *buf = NULL;
    size_t got = 0, size = 0, bad;
    kp_status st = KP_OK;
    int fd, e;

    *data = NULL;
    *len = 0;
    /* Anything planted in a store opens without waiting (O_NONBLOCK: a FIFO would block the
     * open until a writer came) and without leaving it (no link followed, kp_file_openat); the
     * descriptor's own type is checked before a byte is read. */
    if ((e = kp_file_openat(fi, path, O_RDONLY | O_NONBLOCK, 0, &fd, &bad)) != 0)
        return kp_file_open_err(fi, e, bad, false, "cannot open", path);
    if (fstat(fd, &sb) != 0)
        st = kp_file_errno(fi, errno, "cannot stat", path);
    else if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > cap)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s is not a regular file of at most %zu bytes",
                         path, cap);
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
        st = kp_file_errno(fi, errno, "cannot read", path);
    else if ((buf = malloc((size = (size_t)sb.st_size) + 1)) == NULL) /* +1: read as text too */
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory reading %s", path);
    while (st == KP_OK && got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) /* 0: the file shrank under us */
            st = kp_file_errno(fi, r < 0 ? errno : EIO, "cannot read", path);
        else
            got += (size_t)r;
    }
    close(fd);
    if (st == KP_OK) {
        buf[got] = '\0';
        *data = buf;
        *len = got;
        buf = NULL;
    }
    free(buf);
    return st;
}

static kp_status s_write_fd(kp_file_inst *fi, int fd, const char *path, const void *data,
                            size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return kp_file_errno(fi, errno, "cannot write", path);
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0)
        return kp_file_errno(fi, errno, "cannot fsync", path);
    return KP_OK;
}

kp_status kp_file_write_new(kp_file_inst *fi, const char *path, const void *data, size_t len)
{
    kp_status st = KP_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd < 0)
        return kp_file_errno(fi, errno, "cannot create", path);
    st = s_write_fd(fi, fd, path, data, len);
    if (close(fd) != 0 && st == KP_OK)
        st = kp_file_errno(fi, errno, "cannot close", path);
    if (st != KP_OK)
        unlink(path);
    return st;
}

kp_status kp_file_fsync_dir(kp_file_inst *fi, const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    kp_status st = KP_OK;

    if (fd < 0)
        return kp_file_errno(fi, errno, "cannot open directory", path);
    /* Some file systems refuse fsync on directories; the data itself is already synced. */
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        st = kp_file_errno(fi, errno, "cannot fsync directory", path);
    close(fd);
    return st;
}

/* Directory part of path into buf ("." when there is none). */
static void s_dirname(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL) {
        snprintf(buf, size, ".");
        return;
    }
    n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= size)
        n = size - 1;
    memcpy(buf, path, n);
    buf[n] = '\0';
}

int kp_file_rename_noreplace(const char *from, const char *to, bool dir)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -1;
#endif
    /* Version directories are never empty (they only appear fully written), so rename()
     * refuses to replace one. */
    if (dir)
        return rename(from, to);
    if (link(from, to) != 0)
        return -1;
    unlink(from);
    return 0;
}

kp_status kp_file_write_atomic(kp_file_inst *fi, const char *path, const void *data, size_t len,
                               bool noreplace)
{
    char tmp[KP_FILE_PATH_MAX];
    char dir[KP_FILE_PATH_MAX];
    kp_status st = KP_OK;
    int fd;

    KP_GUARD(kp_file_path(fi, tmp, sizeof(tmp), "%s.tmp-XXXXXX", path));
    /* mkostemp opens with O_CREAT|O_EXCL and mode 0600. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return kp_file_errno(fi, errno, "cannot create temporary file for", path);
    st = s_write_fd(fi, fd, tmp, data, len);
    if (close(fd) != 0 && st == KP_OK)
        st = kp_file_errno(fi, errno, "cannot close", tmp);
    if (st == KP_OK && noreplace) {
        /* Fails with EEXIST instead of replacing: two writers cannot clobber each other, and
         * readers never see a partial file. */
        if (kp_file_rename_noreplace(tmp, path, false) != 0) {
            int e = errno;
            st = e == EEXIST ? KP_ERR_EXISTS : kp_file_errno(fi, e, "cannot create", path);
        }
    } else if (st == KP_OK) {
        if (rename(tmp, path) != 0)
            st = kp_file_errno(fi, errno, "cannot rename into", path);
    }
    if (st != KP_OK) {
        unlink(tmp);
        return st;
    }
    s_dirname(path, dir, sizeof(dir));
    return kp_file_fsync_dir(fi, dir);
}

void kp_file_remove_flat(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
    }
    rmdir(dir);
}

kp_status kp_file_json_read(kp_file_inst *fi, const char *path, json_t **out)
{
    json_error_t jerr;
    uint8_t *data;
    size_t len;

    *out = NULL;
    KP_GUARD(kp_file_read(fi, path, KP_FILE_JSON_MAX, &data, &len));
    *out = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    free(data);
    kp_status st = KP_OK;
    /* Where, never what: jansson's text quotes the bytes near the error ("near '...'"), and a
     * store file may hold anything, someone else's secret included. */
    if (*out == NULL)
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s: not valid JSON (line %d, column %d)", path,
                         jerr.line, jerr.column);
    else if (!json_is_object(*out))
        st = kp_file_err(fi, KP_ERR_INTEGRITY, "%s: not a JSON object", path);
    if (st != KP_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return st;
}

kp_status kp_file_json_write_new(kp_file_inst *fi, const char *path, const json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    kp_status st = KP_OK;
    size_t len;

    if (text == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory writing %s", path);
    len = strlen(text);
    text[len] = '\n'; /* json_dumps leaves room only for the NUL, which we overwrite */
    st = kp_file_write_new(fi, path, text, len + 1);
    free(text);
    return st;
}
