/*
 * Versioned objects on disk: <dir>/keys/<name>/<N>/ and <dir>/secrets/<name>/<N>/, found,
 * resolved, listed and committed the same way for both kinds.
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

kp_status kp_file_object_dir(kp_file_inst *fi, const char *kind, const char *name, char *buf,
                             size_t size)
{
    KP_GUARD(kp_file_check_name(fi, kind, name));
    return kp_file_path(fi, buf, size, "%s/%ss/%s", fi->dir, kind, name);
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

static bool s_is_version(const char *s)
{
    uint32_t v;
    return s_parse_version(s, &v);
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

/* True when dir/entry is a directory, or a symbolic link in the place of one: listed, so that
 * reading it fails with a line that names it, rather than passed over as if nothing were there
 * (d_type may be DT_UNKNOWN on some file systems). */
static bool s_is_dir(DIR *d, const struct dirent *de)
{
    struct stat st;

    if (de->d_type == DT_DIR || de->d_type == DT_LNK)
        return true;
    if (de->d_type != DT_UNKNOWN)
        return false;
    return fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           (S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode));
}

static void s_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The subdirectories of dir whose names keep accepts, sorted by name; a missing dir has none.
 * Dot entries are ours (temp dirs) or not ours at all: no keep accepts them. */
static kp_status s_subdirs(kp_file_inst *fi, const char *dir, bool (*keep)(const char *name),
                           char ***names, size_t *n)
{
    char **list = NULL;
    size_t count = 0, cap = 0;
    bool nomem = false;
    struct dirent *de;
    DIR *d = NULL;
    size_t bad;
    int fd, e;

    *names = NULL;
    *n = 0;
    if ((e = kp_file_openat(fi, dir, O_RDONLY | O_DIRECTORY, 0, &fd, &bad)) != 0)
        return e == ENOENT ? KP_OK
                           : kp_file_open_err(fi, e, bad, true, "cannot read directory", dir);
    if ((d = fdopendir(fd)) == NULL) {
        e = errno;
        close(fd);
        return kp_file_errno(fi, e, "cannot read directory", dir);
    }
    while (!nomem && (de = readdir(d)) != NULL) {
        if (!keep(de->d_name) || !s_is_dir(d, de))
            continue;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nl = realloc(list, ncap * sizeof(*nl));
            if ((nomem = nl == NULL))
                continue;
            list = nl;
            cap = ncap;
        }
        if (!(nomem = (list[count] = strdup(de->d_name)) == NULL))
            count++;
    }
    closedir(d);
    kp_status st = nomem ? kp_file_err(fi, KP_ERR_NOMEM, "out of memory listing %s", dir) : KP_OK;
    if (st == KP_OK) {
        if (count > 1)
            qsort(list, count, sizeof(*list), s_cmp_str);
        *names = list;
        *n = count;
        list = NULL;
        count = 0;
    }
    s_names_free(list, count);
    return st;
}

/* The version directories under objdir, ascending; a missing objdir has none. */
static kp_status s_versions(kp_file_inst *fi, const char *objdir, uint32_t **vers, size_t *n)
{
    uint32_t *list = NULL;
    char **names;
    size_t count;
    kp_status st = KP_OK;

    *vers = NULL;
    *n = 0;
    KP_GUARD(s_subdirs(fi, objdir, s_is_version, &names, &count));
    if (count > 0 && (list = malloc(count * sizeof(*list))) == NULL)
        st = kp_file_err(fi, KP_ERR_NOMEM, "out of memory listing %s", objdir);
    for (size_t i = 0; st == KP_OK && i < count; i++)
        s_parse_version(names[i], &list[i]);
    s_names_free(names, count);
    if (st == KP_OK) {
        if (count > 1)
            qsort(list, count, sizeof(*list), s_cmp_u32);
        *vers = list;
        *n = count;
    }
    return st;
}

kp_status kp_file_object(kp_file_inst *fi, const char *kind, const char *name, uint32_t *version,
                         char *objdir, size_t size)
{
    char path[KP_FILE_PATH_MAX];
    struct stat st;
    bool missing;

    KP_GUARD(kp_file_object_dir(fi, kind, name, objdir, size));
    if (*version == 0) {
        uint32_t *vers;
        size_t n;
        KP_GUARD(s_versions(fi, objdir, &vers, &n));
        if (n > 0)
            *version = vers[n - 1];
        free(vers);
        KP_ENSURE(n > 0,
                  kp_file_err(fi, KP_ERR_NOT_FOUND, "%s %s not found in %s", kind, name, fi->dir));
        return KP_OK;
    }
    KP_GUARD(kp_file_path(fi, path, sizeof(path), "%s/%u", objdir, *version));
    KP_GUARD(kp_file_lstat(fi, path, &st, &missing));
    if (!missing && S_ISLNK(st.st_mode))
        return kp_file_open_err(fi, ELOOP, strlen(path), true, "", path);
    if (missing || !S_ISDIR(st.st_mode))
        return kp_file_err(fi, KP_ERR_NOT_FOUND, "%s %s v%u not found in %s", kind, name, *version,
                           fi->dir);
    return KP_OK;
}

/* What one listing passed over: versions (or, listing every object, objects) that could not be
 * read, and the first reason, for a listing that could read none. */
typedef struct s_skips {
    size_t listed, skipped;
    kp_status first;
    char why[512];
} s_skips;

/* A failure to read one version (or object): passed over with a warning that names it, so that
 * one broken file leaves the store's other versions listed (the version itself answers its own
 * lookups with the reason). Out of memory is no broken file: it stops the listing. */
static kp_status s_skip(kp_file_inst *fi, const char *kind, const char *name, uint32_t version,
                        kp_status st, s_skips *sk)
{
    const char *why = fi->up->get_error(fi->h);
    char ver[16] = "";

    if (st == KP_ERR_NOMEM)
        return st;
    if (sk->skipped++ == 0) {
        sk->first = st;
        snprintf(sk->why, sizeof(sk->why), "%s", why);
    }
    if (version != 0)
        snprintf(ver, sizeof(ver), " v%u", version);
    kp_logf(fi->up, fi->h, KP_LOG_WARN,
            "file store %s: %s %s%s cannot be read, listed without it: %s", fi->dir, kind, name,
            ver, why);
    return KP_OK;
}

/* Every version of one object, ascending; with must_exist, none is KP_ERR_NOT_FOUND. */
static kp_status s_list_one(kp_file_inst *fi, const char *kind, const char *name, bool must_exist,
                            kp_file_version_fn fn, void *arg, s_skips *sk)
{
    char objdir[KP_FILE_PATH_MAX];
    uint32_t *vers;
    size_t n;
    kp_status st = KP_OK;

    KP_GUARD(kp_file_object_dir(fi, kind, name, objdir, sizeof(objdir)));
    st = s_versions(fi, objdir, &vers, &n);
    if (st != KP_OK) /* the object's directory itself: one object when every one is listed */
        return must_exist ? st : s_skip(fi, kind, name, 0, st, sk);
    if (n == 0 && must_exist)
        st = kp_file_err(fi, KP_ERR_NOT_FOUND, "%s %s not found in %s", kind, name, fi->dir);
    for (size_t i = 0; i < n && st == KP_OK; i++) {
        bool broken = false;
        st = fn(fi, name, objdir, vers[i], arg, &broken);
        if (st != KP_OK && broken)
            st = s_skip(fi, kind, name, vers[i], st, sk);
        else if (st == KP_OK)
            sk->listed++;
    }
    free(vers);
    return st;
}

kp_status kp_file_list(kp_file_inst *fi, const char *kind, const char *name, kp_file_version_fn fn,
                       void *arg)
{
    char dir[KP_FILE_PATH_MAX];
    char **names = NULL;
    size_t n = 0;
    s_skips sk = {.listed = 0};
    kp_status st = KP_OK;

    if (name != NULL) {
        st = s_list_one(fi, kind, name, true, fn, arg, &sk);
    } else {
        KP_GUARD(kp_file_path(fi, dir, sizeof(dir), "%s/%ss", fi->dir, kind));
        KP_GUARD(s_subdirs(fi, dir, kpk_key_name_valid, &names, &n));
        for (size_t i = 0; i < n && st == KP_OK; i++)
            st = s_list_one(fi, kind, names[i], false, fn, arg, &sk);
        s_names_free(names, n);
    }
    /* Nothing readable at all: the store cannot answer, it does not hold nothing. */
    if (st == KP_OK && sk.listed == 0 && sk.skipped > 0)
        st = kp_file_err(fi, sk.first, "%s", sk.why);
    return st;
}

static kp_status s_next_version(kp_file_inst *fi, const char *parent, uint32_t *next)
{
    uint32_t *vers;
    size_t n;
    kp_status st = KP_OK;

    KP_GUARD(s_versions(fi, parent, &vers, &n));
    *next = n == 0 ? 1 : vers[n - 1] + 1;
    if (n > 0 && vers[n - 1] == UINT32_MAX)
        st = kp_file_err(fi, KP_ERR_INVALID_ARG, "no version numbers left under %s", parent);
    free(vers);
    return st;
}

kp_status kp_file_commit_version(kp_file_inst *fi, const char *parent, uint32_t want,
                                 kp_file_fill_fn fill, void *arg, uint32_t *version)
{
    char tmp[KP_FILE_PATH_MAX];
    char dst[KP_FILE_PATH_MAX];

    struct stat sb;
    bool missing;

    KP_GUARD(kp_file_mkdirs(fi, parent));
    /* Written beneath the store only: parent (and every directory on the way) is no link. */
    KP_GUARD(kp_file_lstat(fi, parent, &sb, &missing));
    if (missing || !S_ISDIR(sb.st_mode))
        return kp_file_open_err(fi,
                                missing               ? ENOENT
                                : S_ISLNK(sb.st_mode) ? ELOOP
                                                      : ENOTDIR,
                                strlen(parent), true, "cannot create directory", parent);
    for (int attempt = 0; attempt < S_COMMIT_ATTEMPTS; attempt++) {
        uint32_t v = want;
        kp_status st;

        if (v == 0)
            KP_GUARD(s_next_version(fi, parent, &v));
        KP_GUARD(kp_file_path(fi, tmp, sizeof(tmp), "%s/.tmp-XXXXXX", parent));
        KP_GUARD(kp_file_path(fi, dst, sizeof(dst), "%s/%u", parent, v));
        if (mkdtemp(tmp) == NULL) /* mode 0700 */
            return kp_file_errno(fi, errno, "cannot create temporary directory in", parent);
        /* The contents depend on v (meta.json, the AAD of a secret), so a lost race means
         * filling a fresh temp dir for the next number. */
        st = fill(fi, tmp, v, arg);
        if (st == KP_OK)
            st = kp_file_fsync_dir(fi, tmp);
        if (st == KP_OK && kp_file_rename_noreplace(tmp, dst, true) != 0) {
            int e = errno;
            kp_file_remove_flat(tmp);
            if (e != EEXIST && e != ENOTEMPTY)
                return kp_file_errno(fi, e, "cannot rename into", dst);
            if (want != 0)
                return kp_file_err(fi, KP_ERR_EXISTS, "%s already exists", dst);
            continue;
        }
        if (st != KP_OK) {
            kp_file_remove_flat(tmp);
            return st;
        }
        *version = v;
        return kp_file_fsync_dir(fi, parent);
    }
    return kp_file_err(fi, KP_ERR_UNAVAILABLE, "too many concurrent writers under %s", parent);
}
