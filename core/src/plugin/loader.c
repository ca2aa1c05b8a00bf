/*
 * Plugin loader: finds <name>.so in the configured absolute directories, dlopens it, runs the
 * versioned handshake and refuses, with one line naming the file and the reason, anything that
 * does not keep the ABI (cryptsetup's luks2_token.c and p11-kit's modules.c do the same kind of
 * gatekeeping), and before that any file that someone else could have changed: a plugin, or its
 * directory, writable by group or others, or owned by a user who is neither root nor the one
 * running keyplane (the rule ld.so keeps for trusted directories and p11-kit for its modules).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <keyplane/kit/codec.h>

#include "base/context.h"
#include "base/error.h"
#include "base/log.h"
#include "base/util.h"
#include "plugin/plugin.h"

struct s_required {
    uint32_t id;
    const char *name;
};

static const struct s_required s_plugin_required[] = {
    {KP_FN_PLUGIN_PARAMS, "PLUGIN_PARAMS"},   {KP_FN_INSTANCE_OPEN, "INSTANCE_OPEN"},
    {KP_FN_INSTANCE_CLOSE, "INSTANCE_CLOSE"}, {KP_FN_INSTANCE_CHECK, "INSTANCE_CHECK"},
    {KP_FN_INSTANCE_INFO, "INSTANCE_INFO"},   {0, NULL},
};
static const struct s_required s_keystore_required[] = {
    {KP_FN_KS_GET_PUBLIC, "KS_GET_PUBLIC"}, {KP_FN_KS_LIST, "KS_LIST"}, {KP_FN_KS_WRAP, "KS_WRAP"},
    {KP_FN_KS_UNWRAP, "KS_UNWRAP"},         {KP_FN_KS_GET, "KS_GET"},   {0, NULL},
};
static const struct s_required s_secretstore_required[] = {
    {KP_FN_SS_PUT, "SS_PUT"},
    {KP_FN_SS_GET, "SS_GET"},
    {KP_FN_SS_LIST, "SS_LIST"},
    {0, NULL},
};
static const struct s_required s_datakey_required[] = {
    {KP_FN_DK_GENERATE, "DK_GENERATE"},
    {KP_FN_DK_DECRYPT, "DK_DECRYPT"},
    {0, NULL},
};

/* Optional functions that come in pairs: a plugin offering one half only is refused, so the
 * chain layer never starts what it cannot finish. */
static const struct s_required s_pairs[][2] = {
    {{KP_FN_KS_IMPORT_OFFER, "KS_IMPORT_OFFER"}, {KP_FN_KS_IMPORT_WRAPPED, "KS_IMPORT_WRAPPED"}},
    {{KP_FN_KS_STATE_GET, "KS_STATE_GET"}, {KP_FN_KS_STATE_PUT, "KS_STATE_PUT"}},
    {{KP_FN_KS_BACKUP, "KS_BACKUP"}, {KP_FN_KS_RESTORE, "KS_RESTORE"}},
    {{KP_FN_KS_CERT_PUT, "KS_CERT_PUT"}, {KP_FN_KS_CERT_GET, "KS_CERT_GET"}},
};

const kp_dispatch *kp__plugin_fn(const kp_plugin *plugin, uint32_t id)
{
    return kp_dispatch_find(plugin->table, id);
}

static void s_plugin_free(kp_plugin *p)
{
    if (p == NULL)
        return;
    if (p->dl != NULL)
        dlclose(p->dl);
    free(p->path);
    free(p->name);
    free(p);
}

void kp__plugin_unload(kp_plugin *p)
{
    if (p == NULL)
        return;
    const kp_dispatch *td = kp__plugin_fn(p, KP_FN_PLUGIN_TEARDOWN);
    if (td != NULL)
        kp_dispatch_plugin_teardown(td)(p->plugin_ctx);
    s_plugin_free(p);
}

/* Refuses with one line: "plugin PATH refused: REASON". */
static kp_status s_refuse(kp_ctx *ctx, const char *path, kp_status st, const char *reason)
{
    return kp__set_error(ctx, st, "plugin %s refused: %s", path, reason);
}

static kp_status s_check_required(kp_ctx *ctx, kp_plugin *p, const struct s_required *req,
                                  const char *cap)
{
    for (; req->id != 0; req++) {
        if (kp__plugin_fn(p, req->id) == NULL) {
            char why[160];
            if (cap != NULL)
                snprintf(why, sizeof(why), "declares %s but lacks mandatory function %s (id %u)",
                         cap, req->name, req->id);
            else
                snprintf(why, sizeof(why), "lacks mandatory function %s (id %u)", req->name,
                         req->id);
            return s_refuse(ctx, p->path, KP_ERR_PLUGIN, why);
        }
    }
    return KP_OK;
}

/* True when the file starts with the ELF magic; gives a clear reason before dlopen's. */
static bool s_is_elf(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    unsigned char magic[4] = {0};
    ssize_t n = read(fd, magic, sizeof(magic));
    close(fd);
    return n == 4 && memcmp(magic, "\177ELF", 4) == 0;
}

static kp_status s_handshake(kp_ctx *ctx, kp_plugin *p)
{
    /* The version node names the ABI the entry point speaks (cryptsetup's token plugins do the
     * same): a later incompatible ABI gets a new node, and an object that merely happens to
     * export a function of that name is not taken for a plugin. */
    dlerror();
    void *sym = dlvsym(p->dl, KP_PLUGIN_INIT_SYMBOL, KP_PLUGIN_SYMBOL_VERSION);
    if (sym == NULL) {
        dlerror();
        return s_refuse(ctx, p->path, KP_ERR_PLUGIN,
                        dlsym(p->dl, KP_PLUGIN_INIT_SYMBOL) != NULL ? KP_PLUGIN_INIT_SYMBOL
                            " is not exported under the version node "
                            "" KP_PLUGIN_SYMBOL_VERSION " (link with the SDK's plugin.map)"
                                                                    : "no " KP_PLUGIN_INIT_SYMBOL
                                                                      " symbol");
    }
    kp_plugin_init_fn *init;
    /* POSIX guarantees object and function pointers convert through dlsym's void *. */
    memcpy(&init, &sym, sizeof(init));

    static const kp_core_info proto = {sizeof(kp_core_info), KP_ABI_MAJOR, KP_ABI_MINOR, NULL,
                                       NULL};
    p->core = proto;
    p->core.upcalls = kp__upcalls();
    p->core.handle = &p->handle;

    kp__clear_error(ctx);
    const kp_dispatch *table = NULL;
    kp_status st = init(&p->core, &table, &p->plugin_ctx);
    if (st != KP_OK) {
        char why[KP_ERRBUF + 64];
        const char *detail = kp_ctx_last_error(ctx);
        snprintf(why, sizeof(why), "%s failed with %s%s%s", KP_PLUGIN_INIT_SYMBOL,
                 kp_status_name(st), detail[0] != '\0' ? " (" : "", detail);
        if (detail[0] != '\0')
            strncat(why, ")", sizeof(why) - strlen(why) - 1);
        return s_refuse(ctx, p->path, st == KP_ERR_ABI ? KP_ERR_ABI : KP_ERR_PLUGIN, why);
    }
    if (table == NULL)
        return s_refuse(ctx, p->path, KP_ERR_PLUGIN, "init returned no dispatch table");
    p->table = table;
    return KP_OK;
}

static kp_status s_validate(kp_ctx *ctx, kp_plugin *p)
{
    const kp_dispatch *d = kp__plugin_fn(p, KP_FN_PLUGIN_INFO);
    if (d == NULL)
        return s_refuse(ctx, p->path, KP_ERR_PLUGIN,
                        "lacks mandatory function PLUGIN_INFO (id 100)");
    const kp_plugin_info *info = kp_dispatch_plugin_info(d)(p->plugin_ctx);
    if (info == NULL || info->struct_size < KP_PLUGIN_INFO_V1_SIZE)
        return s_refuse(ctx, p->path, KP_ERR_PLUGIN, "PLUGIN_INFO returned no or a short info");
    char why[200];
    if (info->abi_major != KP_ABI_MAJOR || info->abi_minor > KP_ABI_MINOR) {
        snprintf(why, sizeof(why), "built for ABI %u.%u, this keyplane offers ABI %u.%u",
                 info->abi_major, info->abi_minor, (unsigned)KP_ABI_MAJOR, (unsigned)KP_ABI_MINOR);
        return s_refuse(ctx, p->path, KP_ERR_ABI, why);
    }
    if (info->name == NULL || strcmp(info->name, p->name) != 0) {
        snprintf(why, sizeof(why), "calls itself '%.64s' but the file is named '%s'",
                 info->name != NULL ? info->name : "(null)", p->name);
        return s_refuse(ctx, p->path, KP_ERR_PLUGIN, why);
    }
    if (info->version == NULL || info->description == NULL)
        return s_refuse(ctx, p->path, KP_ERR_PLUGIN, "info lacks a version or description");
    for (const char *const *t = (const char *const[]){info->version, info->description, NULL};
         *t != NULL; t++)
        for (const unsigned char *c = (const unsigned char *)*t; *c != '\0'; c++)
            if (*c < 0x20 || *c == 0x7f)
                return s_refuse(ctx, p->path, KP_ERR_PLUGIN,
                                "info has a control character in its version or description");
    uint32_t caps = info->capabilities;
    if (caps == 0 || (caps & ~KP_CAP_ALL_) != 0) {
        snprintf(why, sizeof(why), "declares no or unknown capabilities (0x%x)", caps);
        return s_refuse(ctx, p->path, KP_ERR_PLUGIN, why);
    }
    KP_GUARD(s_check_required(ctx, p, s_plugin_required, NULL));
    if (caps & KP_CAP_KEYSTORE)
        KP_GUARD(s_check_required(ctx, p, s_keystore_required, "keystore"));
    if (caps & KP_CAP_SECRETSTORE)
        KP_GUARD(s_check_required(ctx, p, s_secretstore_required, "secretstore"));
    if (caps & KP_CAP_DATAKEY)
        KP_GUARD(s_check_required(ctx, p, s_datakey_required, "datakey"));
    for (size_t i = 0; i < sizeof(s_pairs) / sizeof(s_pairs[0]); i++) {
        bool a = kp__plugin_fn(p, s_pairs[i][0].id) != NULL;
        bool b = kp__plugin_fn(p, s_pairs[i][1].id) != NULL;
        if (a != b) {
            const struct s_required *has = a ? &s_pairs[i][0] : &s_pairs[i][1];
            const struct s_required *lacks = a ? &s_pairs[i][1] : &s_pairs[i][0];
            snprintf(why, sizeof(why), "offers %s (id %u) without %s (id %u)", has->name, has->id,
                     lacks->name, lacks->id);
            return s_refuse(ctx, p->path, KP_ERR_PLUGIN, why);
        }
    }
    p->params = kp_dispatch_plugin_params(kp__plugin_fn(p, KP_FN_PLUGIN_PARAMS))(p->plugin_ctx);
    if (p->params == NULL)
        return s_refuse(ctx, p->path, KP_ERR_PLUGIN, "PLUGIN_PARAMS returned NULL");
    p->info = info;
    return KP_OK;
}

/* Name from ".../NAME.so"; NULL when the file name is not NAME.so with a valid NAME. */
static char *s_name_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t len = strlen(base);
    if (len <= 3 || strcmp(base + len - 3, ".so") != 0)
        return NULL;
    char *name = kp__strdup(base);
    if (name != NULL)
        name[len - 3] = '\0';
    if (name != NULL && !kpk_plugin_name_valid(name)) {
        free(name);
        name = NULL;
    }
    return name;
}

static kp_plugin *s_find_loaded(kp_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->nplugins; i++)
        if (strcmp(ctx->plugins[i]->name, name) == 0)
            return ctx->plugins[i];
    return NULL;
}

/* Refuses path (the plugin) when what (the plugin itself, what_path NULL, or the directory
 * what_path) could be changed by someone other than root and the user running keyplane. */
static kp_status s_check_trust(kp_ctx *ctx, const char *path, const char *what_path,
                               const struct stat *sb)
{
    char why[PATH_MAX + 160], what[PATH_MAX + 32];
    uid_t me = geteuid();

    if (what_path == NULL)
        snprintf(what, sizeof(what), "the file");
    else
        snprintf(what, sizeof(what), "its directory %s", what_path);
    if (sb->st_uid != 0 && sb->st_uid != me) {
        snprintf(why, sizeof(why),
                 "%s is owned by uid %u, neither root nor the user running keyplane (uid %u)", what,
                 (unsigned)sb->st_uid, (unsigned)me);
        return s_refuse(ctx, path, KP_ERR_PERMISSION, why);
    }
    if ((sb->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        snprintf(why, sizeof(why),
                 "%s is writable by %s (mode %04o): only its owner may change code keyplane loads",
                 what, (sb->st_mode & S_IWOTH) != 0 ? "others" : "its group",
                 (unsigned)(sb->st_mode & 07777));
        return s_refuse(ctx, path, KP_ERR_PERMISSION, why);
    }
    return KP_OK;
}

/* The directory that holds file (a path), checked by s_check_trust. */
static kp_status s_check_dir_of(kp_ctx *ctx, const char *path, const char *file)
{
    char dir[PATH_MAX];
    struct stat sb;

    snprintf(dir, sizeof(dir), "%s", file);
    const char *d = dirname(dir);
    if (stat(d, &sb) != 0)
        return s_refuse(ctx, path, KP_ERR_IO, strerror(errno));
    return s_check_trust(ctx, path, d, &sb);
}

/* Whether path is a file the loader may open: a regular file with an ELF header that only root
 * or the user running keyplane can change, in a directory the same holds for (both as named and,
 * through symbolic links, where the file really is), with room for one more plugin in the
 * context. */
static kp_status s_check_file(kp_ctx *ctx, const char *path)
{
    char real[PATH_MAX];
    struct stat sb;
    if (stat(path, &sb) != 0)
        return s_refuse(ctx, path, errno == ENOENT ? KP_ERR_NOT_FOUND : KP_ERR_IO, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return s_refuse(ctx, path, KP_ERR_PLUGIN, "not a regular file");
    KP_GUARD(s_check_trust(ctx, path, NULL, &sb));
    KP_GUARD(s_check_dir_of(ctx, path, path));
    if (realpath(path, real) == NULL)
        return s_refuse(ctx, path, KP_ERR_IO, strerror(errno));
    if (strcmp(real, path) != 0)
        KP_GUARD(s_check_dir_of(ctx, path, real));
    if (!s_is_elf(path))
        return s_refuse(ctx, path, KP_ERR_PLUGIN, "not a shared object (no ELF header)");
    if (ctx->nplugins == KP_MAX_PLUGINS)
        return s_refuse(ctx, path, KP_ERR_PLUGIN, "too many plugins loaded");
    return KP_OK;
}

/* Opens path, runs the handshake and the checks, and adds the plugin to the context. */
static kp_status s_open(kp_ctx *ctx, const char *path, const char *name, kp_plugin **out)
{
    kp_plugin *p = calloc(1, sizeof(*p));
    KP_ENSURE(p != NULL, KP_ERR_NOMEM);
    p->ctx = ctx;
    p->name = kp__strdup(name);
    p->path = kp__strdup(path);
    p->handle.ctx = ctx;
    p->handle.who = p->name;
    kp_status st = p->name != NULL && p->path != NULL ? KP_OK : KP_ERR_NOMEM;
    /* RTLD_LOCAL: plugins must not see each other's symbols; RTLD_NOW: fail here, not later. */
    if (st == KP_OK)
        p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (st == KP_OK && p->dl == NULL) {
        const char *e = dlerror();
        st = s_refuse(ctx, path, KP_ERR_PLUGIN, e != NULL ? e : "dlopen failed");
    }
    if (st == KP_OK)
        st = s_handshake(ctx, p);
    bool initialised = st == KP_OK;
    if (st == KP_OK)
        st = s_validate(ctx, p);
    if (st == KP_OK) {
        ctx->plugins[ctx->nplugins++] = p;
        kp__log(ctx, KP_LOG_DEBUG, "loaded plugin %s %s from %s", p->name, p->info->version, path);
        *out = p;
    } else if (initialised) {
        kp__plugin_unload(p); /* init succeeded: let the plugin tear down */
    } else {
        s_plugin_free(p);
    }
    return st;
}

kp_status kp_plugin_load_path(kp_ctx *ctx, const char *path, kp_plugin **out)
{
    KP_ENSURE(ctx != NULL && path != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    if (path[0] != '/')
        return s_refuse(ctx, path, KP_ERR_INVALID_ARG, "not an absolute path");
    char *name = s_name_from_path(path);
    if (name == NULL)
        return s_refuse(ctx, path, KP_ERR_PLUGIN,
                        "file name is not NAME.so with NAME made of [a-z0-9_-] (at most 64)");
    kp_plugin *p = s_find_loaded(ctx, name);
    kp_status st = KP_OK;
    if (p != NULL && strcmp(p->path, path) != 0)
        st = s_refuse(ctx, path, KP_ERR_EXISTS, "a plugin of that name is already loaded");
    if (st == KP_OK && p == NULL)
        st = s_check_file(ctx, path);
    if (st == KP_OK && p == NULL)
        st = s_open(ctx, path, name, &p);
    free(name);
    if (st == KP_OK)
        *out = p;
    return st;
}

kp_status kp_plugin_load(kp_ctx *ctx, const char *name, kp_plugin **out)
{
    KP_ENSURE(ctx != NULL && name != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    kp_plugin *loaded = s_find_loaded(ctx, name);
    if (loaded != NULL) {
        *out = loaded;
        return KP_OK;
    }
    if (!kpk_plugin_name_valid(name))
        return kp__set_error(ctx, KP_ERR_INVALID_ARG,
                             "invalid plugin name '%.64s': use [a-z0-9_-], at most 64", name);
    for (size_t i = 0; i < ctx->ndirs; i++) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s/%s.so", ctx->dirs[i], name);
        if (n < 0 || (size_t)n >= sizeof(path))
            continue;
        if (access(path, F_OK) == 0)
            return kp_plugin_load_path(ctx, path, out);
    }
    return kp__set_error(ctx, KP_ERR_NOT_FOUND, "plugin '%s' not found in %zu plugin director%s",
                         name, ctx->ndirs, ctx->ndirs == 1 ? "y" : "ies");
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True when NAME.so exists in a directory searched before dirs[upto]. */
static bool s_hidden(const kp_ctx *ctx, size_t upto, const char *file)
{
    for (size_t i = 0; i < upto; i++) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s/%s", ctx->dirs[i], file);
        if (n > 0 && (size_t)n < sizeof(path) && access(path, F_OK) == 0)
            return true;
    }
    return false;
}

kp_status kp_plugin_scan(kp_ctx *ctx, kp_plugin_scan_fn visit, void *arg)
{
    KP_ENSURE(ctx != NULL && visit != NULL, KP_ERR_INVALID_ARG);
    for (size_t i = 0; i < ctx->ndirs; i++) {
        DIR *dir = opendir(ctx->dirs[i]);
        if (dir == NULL)
            continue;
        char *names[KP_MAX_PLUGINS] = {NULL};
        size_t n = 0;
        for (struct dirent *e = readdir(dir); e != NULL && n < KP_MAX_PLUGINS; e = readdir(dir)) {
            size_t len = strlen(e->d_name);
            if (len > 3 && strcmp(e->d_name + len - 3, ".so") == 0 && e->d_name[0] != '.') {
                names[n] = kp__strdup(e->d_name);
                if (names[n] != NULL)
                    n++;
            }
        }
        closedir(dir);
        qsort(names, n, sizeof(names[0]), s_cmp);
        for (size_t j = 0; j < n; j++) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", ctx->dirs[i], names[j]);
            /* kp_plugin_load takes the first NAME.so on the path, refused or not: so does the
             * listing, or it would show plugins a policy cannot use. */
            bool hidden = s_hidden(ctx, i, names[j]);
            free(names[j]);
            if (hidden)
                continue;
            kp_plugin *p = NULL;
            kp_status st = kp_plugin_load_path(ctx, path, &p);
            visit(arg, path, p, st, st == KP_OK ? "" : kp_ctx_last_error(ctx));
        }
    }
    return KP_OK;
}

const kp_plugin_info *kp_plugin_get0_info(const kp_plugin *plugin)
{
    return plugin != NULL ? plugin->info : NULL;
}

const char *kp_plugin_get0_path(const kp_plugin *plugin)
{
    return plugin != NULL ? plugin->path : NULL;
}

const kp_param_desc *kp_plugin_get0_params(const kp_plugin *plugin)
{
    return plugin != NULL ? plugin->params : NULL;
}
