/*
 * Versioned objects on disk: <store>/keys/<name>/<N>/ and <store>/secrets/<name>/<N>/.
 *
 * A version directory only ever appears through rename() of a complete, fsynced temp
 * directory, so readers never see half a version, and the rename doubles as the lock that
 * decides which of two concurrent writers gets a version number.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_internal.h"

/* Bounded so a pathological race cannot spin forever. */
#define S_COMMIT_ATTEMPTS 64

kp_status kp_file_check_name(kp_file_inst *fi, const char *kind, const char *name)
{
    if (name == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "%s name is missing", kind);
    if (kpk_key_name_valid(name))
        return KP_OK;
    /* The name itself may be garbage; do not echo it. */
    return kp_file_err(fi, KP_ERR_INVALID_ARG,
                       "invalid %s name: use 1-127 of [A-Za-z0-9._-], not starting with '.'", kind);
}

/* Canonical decimal 1..UINT32_MAX only, so "01" and "1" can never both name version 1. */
static bool s_parse_version(const char *s, uint32_t *v)
{
    uint64_t n = 0;

    if (s[0] < '1' || s[0] > '9')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        n = n * 10 + (uint64_t)(*s - '0');
        if (n > UINT32_MAX)
            return false;
    }
    *v = (uint32_t)n;
    return true;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True when dir/entry is a directory (d_type may be DT_UNKNOWN on some file systems). */
static bool s_is_dir(DIR *d, const struct dirent *de)
{
    struct stat st;

    if (de->d_type == DT_DIR)
        return true;
    if (de->d_type != DT_UNKNOWN)
        return false;
    return fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

kp_status kp_file_versions(kp_file_inst *fi, const char *dir, uint32_t **vers, size_t *n)
{
    uint32_t *list = NULL;
    size_t count = 0, cap = 0;
    struct dirent *de;
    DIR *d;

    *vers = NULL;
    *n = 0;
    d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? KP_OK : kp_file_errno(fi, errno, "cannot read directory", dir);
    while ((de = readdir(d)) != NULL) {
        uint32_t v;
        if (!s_parse_version(de->d_name, &v) || !s_is_dir(d, de))
            continue;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            uint32_t *nl = realloc(list, ncap * sizeof(*nl));
            if (nl == NULL) {
                closedir(d);
                free(list);
                return kp_file_err(fi, KP_ERR_NOMEM, "out of memory listing %s", dir);
            }
            list = nl;
            cap = ncap;
        }
        list[count++] = v;
    }
    closedir(d);
    if (count > 1)
        qsort(list, count, sizeof(*list), s_cmp_u32);
    *vers = list;
    *n = count;
    return KP_OK;
}

void kp_file_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

kp_status kp_file_names(kp_file_inst *fi, const char *dir, char ***names, size_t *n)
{
    char **list = NULL;
    size_t count = 0, cap = 0;
    struct dirent *de;
    DIR *d;

    *names = NULL;
    *n = 0;
    d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? KP_OK : kp_file_errno(fi, errno, "cannot read directory", dir);
    while ((de = readdir(d)) != NULL) {
        /* Dot entries are ours (temp dirs) or not ours at all. */
        if (!kpk_key_name_valid(de->d_name) || !s_is_dir(d, de))
            continue;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nl = realloc(list, ncap * sizeof(*nl));
            if (nl == NULL)
                goto nomem;
            list = nl;
            cap = ncap;
        }
        list[count] = strdup(de->d_name);
        if (list[count] == NULL)
            goto nomem;
        count++;
    }
    closedir(d);
    if (count > 1)
        qsort(list, count, sizeof(*list), s_cmp_str);
    *names = list;
    *n = count;
    return KP_OK;
nomem:
    closedir(d);
    kp_file_names_free(list, count);
    return kp_file_err(fi, KP_ERR_NOMEM, "out of memory listing %s", dir);
}

kp_status kp_file_resolve(kp_file_inst *fi, const char *kind, const char *name, const char *objdir,
                          uint32_t version, uint32_t *out)
{
    char path[KP_FILE_PATH_MAX];
    struct stat st;
    kp_status rc;

    if (version == 0) {
        uint32_t *vers;
        size_t n;
        rc = kp_file_versions(fi, objdir, &vers, &n);
        if (rc != KP_OK)
            return rc;
        if (n == 0) {
            free(vers);
            return kp_file_err(fi, KP_ERR_NOT_FOUND, "%s %s not found in %s", kind, name, fi->path);
        }
        *out = vers[n - 1];
        free(vers);
        return KP_OK;
    }
    rc = kp_file_path(fi, path, sizeof(path), "%s/%u", objdir, version);
    if (rc != KP_OK)
        return rc;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            return kp_file_errno(fi, errno, "cannot stat", path);
        st.st_mode = 0;
    }
    if (!S_ISDIR(st.st_mode))
        return kp_file_err(fi, KP_ERR_NOT_FOUND, "%s %s v%u not found in %s", kind, name, version,
                           fi->path);
    *out = version;
    return KP_OK;
}

/* rename() that never replaces: RENAME_NOREPLACE where the file system has it. Without it,
 * plain rename() still refuses a non-empty target (ENOTEMPTY), and version directories are
 * never empty because they only appear fully written. */
static int s_rename_noreplace(const char *from, const char *to)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -1;
#endif
    return rename(from, to);
}

static kp_status s_next_version(kp_file_inst *fi, const char *parent, uint32_t *next)
{
    uint32_t *vers;
    size_t n;
    kp_status rc = kp_file_versions(fi, parent, &vers, &n);

    if (rc != KP_OK)
        return rc;
    *next = n == 0 ? 1 : vers[n - 1] + 1;
    if (n > 0 && vers[n - 1] == UINT32_MAX)
        rc = kp_file_err(fi, KP_ERR_INVALID_ARG, "no version numbers left under %s", parent);
    free(vers);
    return rc;
}

kp_status kp_file_commit_version(kp_file_inst *fi, const char *parent, uint32_t want,
                                 kp_file_fill_fn fill, void *arg, uint32_t *version)
{
    char tmp[KP_FILE_PATH_MAX];
    char dst[KP_FILE_PATH_MAX];
    kp_status rc = kp_file_mkdirs(fi, parent);

    if (rc != KP_OK)
        return rc;
    for (int attempt = 0; attempt < S_COMMIT_ATTEMPTS; attempt++) {
        uint32_t v = want;
        if (v == 0 && (rc = s_next_version(fi, parent, &v)) != KP_OK)
            return rc;
        if ((rc = kp_file_path(fi, tmp, sizeof(tmp), "%s/.tmp-XXXXXX", parent)) != KP_OK ||
            (rc = kp_file_path(fi, dst, sizeof(dst), "%s/%u", parent, v)) != KP_OK)
            return rc;
        if (mkdtemp(tmp) == NULL) /* mode 0700 */
            return kp_file_errno(fi, errno, "cannot create temporary directory in", parent);
        /* The contents depend on v (meta.json, the AAD of a secret), so a lost race means
         * filling a fresh temp dir for the next number. */
        rc = fill(fi, tmp, v, arg);
        if (rc == KP_OK)
            rc = kp_file_fsync_dir(fi, tmp);
        if (rc == KP_OK && s_rename_noreplace(tmp, dst) != 0) {
            int e = errno;
            kp_file_remove_flat(tmp);
            if (e != EEXIST && e != ENOTEMPTY)
                return kp_file_errno(fi, e, "cannot rename into", dst);
            if (want != 0)
                return kp_file_err(fi, KP_ERR_EXISTS, "%s already exists", dst);
            continue;
        }
        if (rc != KP_OK) {
            kp_file_remove_flat(tmp);
            return rc;
        }
        *version = v;
        return kp_file_fsync_dir(fi, parent);
    }
    return kp_file_err(fi, KP_ERR_UNAVAILABLE, "too many concurrent writers under %s", parent);
}

kp_status kp_file_each_name(kp_file_inst *fi, const char *subdir, kp_file_name_fn fn, void *arg)
{
    char dir[KP_FILE_PATH_MAX];
    char **names;
    size_t n;
    kp_status st;

    if ((st = kp_file_path(fi, dir, sizeof(dir), "%s/%s", fi->path, subdir)) != KP_OK ||
        (st = kp_file_names(fi, dir, &names, &n)) != KP_OK)
        return st;
    for (size_t i = 0; i < n && st == KP_OK; i++)
        st = fn(fi, names[i], arg);
    kp_file_names_free(names, n);
    return st;
}
