/*
 * The `file` plugin: entry point, description, parameters, instance lifecycle, and the checks
 * (`keyplane check`: the directory, its permissions and owners, the passphrase).
 *
 * It is the provider that works with nothing but a directory, so it is the default keystore
 * and secret store, and the format of its files is chosen so an operator can recover keys
 * with the openssl command alone (see file_crypto.c). A store is created only by INSTANCE_INIT
 * (ABI 1.1, `keyplane init`); a directory that is not initialised is unreachable, never empty.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_internal.h"

static kp_plugin_info_fn s_info;
static kp_plugin_teardown_fn s_teardown;
static kp_plugin_params_fn s_params;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;
static kp_instance_check_fn s_check;
static kp_instance_info_fn s_instance_info;
static kp_plugin_describe_fn s_describe;

static const kp_plugin_info s_plugin_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    /* ABI 1.1: its stores are created only by INSTANCE_INIT, which a 1.0 core never calls */
    .abi_minor = 1,
    .name = "file",
    .version = "0.1.0",
    .description = "keys and secrets in a local directory, encrypted under a passphrase",
    .capabilities = KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE,
};

static const kp_param_desc s_param_list[] = {
    {"path", KP_PARAM_PATH, KP_PARAM_REQUIRED, 0, 0,
     "store directory; made (0700) by 'keyplane init', never by a write"},
    {"passphrase", KP_PARAM_SECRET, KP_PARAM_REQUIRED, 0, 0,
     "encrypts private keys and secret values at rest"},
    {"kdf_iterations", KP_PARAM_INT, 0, KP_FILE_KDF_MIN, KP_FILE_KDF_MAX,
     "PBKDF2-HMAC-SHA256 iterations 'keyplane init' gives a new store (default 100000)"},
    {NULL, 0, 0, 0, 0, NULL},
};

static const kp_dispatch s_dispatch[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_params},
    {KP_FN_PLUGIN_DESCRIBE, (kp_fn)s_describe},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)s_check},
    {KP_FN_INSTANCE_INFO, (kp_fn)s_instance_info},
    {KP_FN_INSTANCE_INIT, (kp_fn)kp_file_init},
    {KP_FN_KS_CREATE, (kp_fn)kp_file_ks_create},
    {KP_FN_KS_IMPORT, (kp_fn)kp_file_ks_import},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)kp_file_ks_get_public},
    {KP_FN_KS_LIST, (kp_fn)kp_file_ks_list},
    {KP_FN_KS_WRAP, (kp_fn)kp_file_ks_wrap},
    {KP_FN_KS_UNWRAP, (kp_fn)kp_file_ks_unwrap},
    {KP_FN_KS_EXPORT, (kp_fn)kp_file_ks_export},
    {KP_FN_KS_EXPORT_WRAPPED, (kp_fn)kp_file_ks_export_wrapped},
    {KP_FN_KS_GET, (kp_fn)kp_file_ks_get},
    {KP_FN_KS_STATE_GET, (kp_fn)kp_file_ks_state_get},
    {KP_FN_KS_STATE_PUT, (kp_fn)kp_file_ks_state_put},
    {KP_FN_KS_CERT_PUT, (kp_fn)kp_file_ks_cert_put},
    {KP_FN_KS_CERT_GET, (kp_fn)kp_file_ks_cert_get},
    {KP_FN_SS_PUT, (kp_fn)kp_file_ss_put},
    {KP_FN_SS_GET, (kp_fn)kp_file_ss_get},
    {KP_FN_SS_LIST, (kp_fn)kp_file_ss_list},
    {0, NULL},
};

/* What every instance is and does; nothing depends on the params or the directory. */
static const kp_instance_info s_inst_info = {
    .struct_size = sizeof(kp_instance_info),
    .capabilities = KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE,
    /* file_wrap.c: KS_WRAP takes OAEP SHA-1/SHA-256; KS_UNWRAP also PKCS#1 v1.5 (old data) */
    .wrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256),
    .unwrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256) |
                   KP_ALG_BIT(KP_WRAP_RSA_PKCS1),
    .key_bits = KP_RSA_2048 | KP_RSA_3072 | KP_RSA_4096,
    .export_keyx = KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1) | KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256),
    .import_keyx = 0,
    /* file_state.c: the compare-and-swap runs under an flock() of keys/<name>/state.lock */
    .flags = KP_INST_STATE_CAS | KP_INST_CERTS,
    .secret_max = KP_FILE_SECRET_MAX,
};

/* Copies s_inst_info into the core's storage, as far as its struct_size reaches. */
static kp_status s_put_info(kp_instance_info *info)
{
    uint32_t keep;

    if (info == NULL ||
        info->struct_size < offsetof(kp_instance_info, capabilities) + sizeof(info->capabilities))
        return KP_ERR_INVALID_ARG;
    keep = info->struct_size;
    memcpy(info, &s_inst_info, keep < sizeof(s_inst_info) ? keep : sizeof(s_inst_info));
    info->struct_size = keep;
    return KP_OK;
}

static kp_status s_describe(void *plugin_ctx, const kp_param *params, kp_instance_info *info)
{
    kp_file_plugin *pl = plugin_ctx;

    (void)params; /* every instance is the same; open checks the params' meaning */
    if (s_put_info(info) != KP_OK)
        return pl->up.set_error(pl->h, KP_ERR_INVALID_ARG, "describe: info missing or too small");
    return KP_OK;
}

static kp_status s_instance_info(void *inst, kp_instance_info *info)
{
    kp_file_inst *fi = inst;

    if (s_put_info(info) != KP_OK)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "instance info missing or too small");
    return KP_OK;
}

static const kp_plugin_info *s_info(void *plugin_ctx)
{
    (void)plugin_ctx;
    return &s_plugin_info;
}

static void s_teardown(void *plugin_ctx)
{
    free(plugin_ctx);
}

static const kp_param_desc *s_params(void *plugin_ctx)
{
    (void)plugin_ctx;
    return s_param_list;
}

static void s_close(void *inst)
{
    kp_file_inst *fi = inst;

    if (fi == NULL)
        return;
    kp_file_cache_free(fi);
    kpk_p8_decoder_free(fi->p8dec);
    kp_file_keys_free(fi, fi->keys);
    fi->up->secret_free(fi->pass);
    free(fi->dir);
    pthread_mutex_destroy(&fi->lock);
    free(fi);
}

/* Checks the meaning of the params (the core checked names and types) and copies them. */
static kp_status s_take_params(kp_file_inst *fi, const kp_param *params)
{
    const kp_param *path = kp_param_find(params, "path");
    const kp_param *pass = kp_param_find(params, "passphrase");
    const kp_param *iter = kp_param_find(params, "kdf_iterations");
    struct stat sb;
    size_t len;

    if (path == NULL || path->str == NULL || path->str[0] == '\0')
        return kp_file_err(fi, KP_ERR_CONFIG, "path is required");
    len = strlen(path->str);
    while (len > 1 && path->str[len - 1] == '/')
        len--;
    /* Leave room for the longest name we append (keys/<127>/<10 digits>/.tmp-XXXXXX...). */
    if (len > KP_FILE_PATH_MAX - 512)
        return kp_file_err(fi, KP_ERR_CONFIG, "path is too long");
    if ((fi->dir = strndup(path->str, len)) == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory");
    /* A missing directory is fine at open (INIT makes it; every other call says the store is not
     * initialised); a file in its place is not. */
    if (stat(fi->dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return kp_file_err(fi, KP_ERR_CONFIG, "path %s is not a directory", fi->dir);

    if (pass == NULL || pass->secret == NULL || fi->up->secret_len(pass->secret) == 0)
        return kp_file_err(fi, KP_ERR_CONFIG, "passphrase for file store %s is empty", fi->dir);
    fi->pass =
        kp_secret_dup(fi->up, fi->up->secret_cdata(pass->secret), fi->up->secret_len(pass->secret));
    if (fi->pass == NULL)
        return kp_file_err(fi, KP_ERR_NOMEM, "out of memory");

    fi->kdf_iter = KP_FILE_KDF_DEFAULT;
    if (iter != NULL) {
        if (iter->num < KP_FILE_KDF_MIN || iter->num > KP_FILE_KDF_MAX)
            return kp_file_err(fi, KP_ERR_CONFIG, "kdf_iterations must be %d to %d",
                               KP_FILE_KDF_MIN, KP_FILE_KDF_MAX);
        fi->kdf_iter = (uint32_t)iter->num;
    }
    return KP_OK;
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    kp_file_plugin *pl = plugin_ctx;
    kp_file_inst *fi;

    if (pl == NULL || inst == NULL)
        return KP_ERR_INVALID_ARG;
    *inst = NULL;
    if ((fi = calloc(1, sizeof(*fi))) == NULL)
        return pl->up.set_error(h, KP_ERR_NOMEM, "out of memory");
    fi->up = &pl->up;
    fi->h = h;
    bool lock = pthread_mutex_init(&fi->lock, NULL) == 0;
    kp_status st = lock ? KP_OK : pl->up.set_error(h, KP_ERR_INTERNAL, "cannot create mutex");
    if (st == KP_OK)
        st = s_take_params(fi, params);
    if (st == KP_OK)
        *inst = fi;
    else if (lock)
        s_close(fi); /* frees what s_take_params copied */
    else
        free(fi);
    return st;
}

/* A failed check item: its detail is the error text just set (read back with GET_ERROR). */
static kp_status s_failed(kp_file_inst *fi, kp_status st, char *detail, size_t size)
{
    snprintf(detail, size, "%s", fi->up->get_error(fi->h));
    return st;
}

/* The directory is an initialised store (KP_ERR_UNAVAILABLE, saying so, when it or its header is
 * missing) and a file can be created in it. */
static kp_status s_check_dir(kp_file_inst *fi, char *detail, size_t size)
{
    char tmp[KP_FILE_PATH_MAX];
    struct stat sb;
    kp_status st = KP_OK;
    int fd;

    if (stat(fi->dir, &sb) != 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            return s_failed(fi, kp_file_errno(fi, errno, "cannot stat", fi->dir), detail, size);
        return s_failed(fi, kp_file_ready(fi), detail, size);
    }
    if (!S_ISDIR(sb.st_mode))
        return s_failed(fi, kp_file_err(fi, KP_ERR_CONFIG, "path %s is not a directory", fi->dir),
                        detail, size);
    if ((st = kp_file_ready(fi)) != KP_OK)
        return s_failed(fi, st, detail, size);
    /* access() can lie (read-only mounts, ACLs, root); creating a file cannot. */
    if ((st = kp_file_path(fi, tmp, sizeof(tmp), "%s/.check-XXXXXX", fi->dir)) != KP_OK)
        return s_failed(fi, st, detail, size);
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        int e = errno;
        char ebuf[128];
        return s_failed(fi,
                        kp_file_err(fi, kp_file_errno_status(e), "%s is not writable: %s", fi->dir,
                                    kp_file_strerror(e, ebuf, sizeof(ebuf))),
                        detail, size);
    }
    close(fd);
    unlink(tmp);
    snprintf(detail, size, "%s is writable", fi->dir);
    return KP_OK;
}

/* What the permissions item found: the problems, the first few of them described. */
typedef struct s_perm {
    uid_t me;
    size_t problems;
    char *detail;
    size_t size;
} s_perm;

#define S_PERM_SHOWN 3 /* problems described in the item's line; the rest are counted */
#define S_PERM_DEPTH 6 /* the deepest a store goes is 4: keys/<name>/<version>/<file> */

static void s_problem(s_perm *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_problem(s_perm *p, const char *fmt, ...)
{
    size_t used = strlen(p->detail);
    va_list ap;

    if (p->problems++ >= S_PERM_SHOWN || used + 3 >= p->size)
        return;
    if (used > 0) {
        memcpy(p->detail + used, "; ", 3);
        used += 2;
    }
    va_start(ap, fmt);
    vsnprintf(p->detail + used, p->size - used, fmt, ap);
    va_end(ap);
}

/* The files that hold (encrypted) keys and secrets, and the header, whose check value lets
 * anyone who reads it try passphrases offline: owner-only. */
static bool s_secret_file(const char *name)
{
    return strcmp(name, "private.p8") == 0 || strcmp(name, "value.enc") == 0 ||
           strcmp(name, KP_FILE_HEADER) == 0;
}

/* One file or directory of the store: owned by root or the user running keyplane, writable by its
 * owner only, and (a secret file) readable by its owner only; no symbolic links. */
static void s_perm_one(s_perm *p, const char *path, const struct stat *sb, bool secret)
{
    mode_t mode = sb->st_mode & 07777;

    if (S_ISLNK(sb->st_mode)) {
        s_problem(p, "%s is a symbolic link", path);
        return;
    }
    if (sb->st_uid != 0 && sb->st_uid != p->me)
        s_problem(p, "%s is owned by uid %u, neither root nor the user running keyplane (uid %u)",
                  path, (unsigned)sb->st_uid, (unsigned)p->me);
    if ((mode & (S_IWGRP | S_IWOTH)) != 0)
        s_problem(p, "%s is writable by %s (mode %04o)", path,
                  (mode & S_IWOTH) != 0 ? "others" : "its group", (unsigned)mode);
    else if (secret && (mode & (S_IRGRP | S_IROTH)) != 0)
        s_problem(p, "%s is readable by %s (mode %04o)", path,
                  (mode & S_IROTH) != 0 ? "others" : "its group", (unsigned)mode);
}

/* Everything below the directory path (open as dfd, which this closes), never through a link. */
static void s_perm_walk(s_perm *p, int dfd, const char *path, int depth)
{
    char child[KP_FILE_PATH_MAX];
    struct dirent *de;
    struct stat sb;
    DIR *d = fdopendir(dfd);

    if (d == NULL) {
        s_problem(p, "cannot read directory %s", path);
        close(dfd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int n = snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(child) ||
            fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* gone meanwhile, or a name no store file has */
        s_perm_one(p, child, &sb, S_ISREG(sb.st_mode) && s_secret_file(de->d_name));
        if (!S_ISDIR(sb.st_mode) || depth >= S_PERM_DEPTH)
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            s_problem(p, "cannot read directory %s", child);
        else
            s_perm_walk(p, fd, child, depth + 1);
    }
    closedir(d);
}

/* The permissions item: the directory and everything in it can be changed only by root and the
 * user running keyplane, and its secret files read by their owner only. Anyone else who could
 * would be able to swap a key (and take over a chain) or try the passphrase offline. */
static kp_status s_check_perms(kp_file_inst *fi, char *detail, size_t size)
{
    s_perm p = {.me = geteuid(), .detail = detail, .size = size};
    struct stat sb;
    int fd;

    detail[0] = '\0';
    if ((fd = open(fi->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return s_failed(fi, kp_file_errno(fi, e, "cannot read directory", fi->dir), detail, size);
    }
    s_perm_one(&p, fi->dir, &sb, false);
    s_perm_walk(&p, fd, fi->dir, 1);
    if (p.problems == 0) {
        snprintf(detail, size,
                 "%s and its files: owned by root or uid %u, writable by their owner only, secret "
                 "files readable by their owner only",
                 fi->dir, (unsigned)p.me);
        return KP_OK;
    }
    if (p.problems > S_PERM_SHOWN) {
        size_t used = strlen(detail);
        snprintf(detail + used, size - used, "; and %zu more", p.problems - S_PERM_SHOWN);
    }
    return KP_ERR_PERMISSION;
}

static kp_status s_check_pass(kp_file_inst *fi, char *detail, size_t size)
{
    const kp_file_keys *keys;
    kp_status st = kp_file_unlock(fi, &keys);

    if (st == KP_OK)
        snprintf(detail, size, "passphrase opens %s/%s", fi->dir, KP_FILE_HEADER);
    else if (st == KP_ERR_AUTH)
        snprintf(detail, size, "wrong passphrase for file store %s", fi->dir);
    else
        snprintf(detail, size, "cannot read %s/%s", fi->dir, KP_FILE_HEADER);
    return st;
}

static kp_status s_check(void *inst, kp_check_report_fn report, void *arg)
{
    kp_file_inst *fi = inst;
    char detail[2 * KP_FILE_PATH_MAX + 128]; /* two paths and some words */
    kp_status first, st;

    first = s_check_dir(fi, detail, sizeof(detail));
    if (report != NULL)
        report(arg, "directory", first, detail);
    if (first == KP_ERR_UNAVAILABLE) /* not initialised: no header to open */
        return first;
    st = s_check_perms(fi, detail, sizeof(detail));
    if (report != NULL)
        report(arg, "permissions", st, detail);
    if (first == KP_OK)
        first = st;
    st = s_check_pass(fi, detail, sizeof(detail));
    if (report != NULL)
        report(arg, "passphrase", st, detail);
    return first != KP_OK ? first : st;
}

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx);

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx)
{
    kp_file_plugin *pl;
    kp_file_up up;

    kp_status st =
        kp_plugin_accept(core, out, plugin_ctx, &up, "file plugin: the core lacks an upcall");
    if (st != KP_OK)
        return st;
    if ((pl = calloc(1, sizeof(*pl))) == NULL)
        return KP_ERR_NOMEM;
    pl->up = up;
    pl->h = core->handle;
    *out = s_dispatch;
    *plugin_ctx = pl;
    return KP_OK;
}
