/*
 * Helpers shared by the subcommands: exit codes, error printing, policy loading, files.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

int kp_cli_exit_code(kp_status st)
{
    switch (kp_status_category(st)) {
    case KP_CAT_OK:
        return KP_EXIT_OK;
    case KP_CAT_USAGE:
        return KP_EXIT_USAGE;
    case KP_CAT_CONFIG:
        return KP_EXIT_CONFIG;
    case KP_CAT_AUTH:
        return KP_EXIT_AUTH;
    case KP_CAT_NOT_FOUND:
        return KP_EXIT_NOT_FOUND;
    case KP_CAT_TRANSIENT:
        return KP_EXIT_TRANSIENT;
    case KP_CAT_INTEGRITY:
        return KP_EXIT_INTEGRITY;
    case KP_CAT_BACKEND:
        return KP_EXIT_BACKEND;
    case KP_CAT_INTERNAL:
        break;
    }
    return KP_EXIT_INTERNAL;
}

int kp_cli_fail(kp_cli *cli, kp_status st, const char *what)
{
    const char *detail = kp_ctx_last_error(cli->ctx);
    if (detail[0] != '\0')
        fprintf(stderr, "keyplane: error: %s: %s\n", what, detail);
    else
        fprintf(stderr, "keyplane: error: %s: %s\n", what, kp_strerror(st));
    return kp_cli_exit_code(st);
}

int kp_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "keyplane %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'keyplane %s --help'.\n", cmd);
    va_end(ap);
    return KP_EXIT_USAGE;
}

int kp_cli_load_policy(kp_cli *cli)
{
    if (cli->policy != NULL)
        return KP_EXIT_OK;
    kp_diag_list *diags = NULL;
    kp_status st = kp_policy_load(cli->ctx, cli->policy_path, &cli->policy, &diags);
    if (st == KP_ERR_CONFIG) {
        for (size_t i = 0; i < kp_diag_count(diags); i++) {
            const kp_diag *d = kp_diag_get0(diags, i);
            fprintf(stderr, "%s:%u:%u: error: %s\n", d->file, d->line, d->column, d->message);
        }
        kp_diag_list_free(diags);
        return KP_EXIT_CONFIG;
    }
    kp_diag_list_free(diags);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "cannot load policy");
    return KP_EXIT_OK;
}

static kp_status s_write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return KP_ERR_IO;
        p += n;
        len -= (size_t)n;
    }
    return KP_OK;
}

kp_status kp_cli_write_file(kp_cli *cli, const char *path, const void *data, size_t len)
{
    if (strcmp(path, "-") == 0) {
        kp_status st = s_write_all(STDOUT_FILENO, data, len);
        if (st != KP_OK)
            fprintf(stderr, "keyplane: error: cannot write to standard output: %s\n",
                    strerror(errno));
        return st;
    }
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        fprintf(stderr, "keyplane: error: %s is a symbolic link; give the file itself\n", path);
        return KP_ERR_INVALID_ARG;
    }
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        /* A pipe, a terminal, a device: write into it; never replace it with a file. */
        int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0 && isatty(fd)) {
            close(fd);
            fprintf(stderr, "keyplane: error: refusing to write to the terminal %s\n", path);
            return KP_ERR_INVALID_ARG;
        }
        kp_status st = fd >= 0 ? s_write_all(fd, data, len) : KP_ERR_IO;
        if (st != KP_OK)
            fprintf(stderr, "keyplane: error: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return st;
    }
    /* Temp file beside the target, then rename: a crash leaves the old file or the new one. */
    char *copy = strdup(path);
    if (copy == NULL)
        return KP_ERR_NOMEM;
    const char *dir = dirname(copy);
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (tmp == NULL) {
        free(copy);
        return KP_ERR_NOMEM;
    }
    snprintf(tmp, n, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    kp_status st = fd >= 0 ? KP_OK : KP_ERR_IO;
    if (st == KP_OK && fchmod(fd, 0600) != 0)
        st = KP_ERR_IO;
    if (st == KP_OK)
        st = s_write_all(fd, data, len);
    if (st == KP_OK && fsync(fd) != 0)
        st = KP_ERR_IO;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (st == KP_OK && rename(tmp, path) != 0) {
        saved = errno;
        st = KP_ERR_IO;
    }
    if (st == KP_OK) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    } else {
        if (fd >= 0)
            unlink(tmp);
        fprintf(stderr, "keyplane: error: cannot write %s: %s\n", path, strerror(saved));
    }
    (void)cli;
    free(tmp);
    free(copy);
    return st;
}

kp_status kp_cli_read_file(kp_cli *cli, const char *path, size_t max, char **data, size_t *len)
{
    (void)cli;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "keyplane: error: cannot open %s: %s\n", path, strerror(errno));
        return errno == ENOENT ? KP_ERR_NOT_FOUND : KP_ERR_IO;
    }
    char *buf = malloc(max + 1);
    if (buf == NULL) {
        if (f != stdin)
            fclose(f);
        return KP_ERR_NOMEM;
    }
    size_t n = fread(buf, 1, max + 1, f);
    bool err = ferror(f) != 0;
    if (f != stdin)
        fclose(f);
    if (err || n > max) {
        fprintf(stderr, "keyplane: error: cannot read %s: %s\n", path,
                err ? "read error" : "file too large");
        free(buf);
        return err ? KP_ERR_IO : KP_ERR_INVALID_ARG;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return KP_OK;
}

void *kp_cli_jstr(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");
    if (j != NULL)
        return j;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

void kp_cli_print_json(void *json)
{
    json_t *j = json;
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

bool kp_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

const char *kp_cli_caps(uint32_t caps, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s%s", caps & KP_CAP_KEYSTORE ? "keystore" : "",
             (caps & KP_CAP_KEYSTORE) && (caps & ~KP_CAP_KEYSTORE) ? "," : "",
             caps & KP_CAP_SECRETSTORE ? "secretstore" : "",
             (caps & KP_CAP_DATAKEY) && (caps & (KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE)) ? "," : "",
             caps & KP_CAP_DATAKEY ? "datakey" : "");
    return buf;
}

void kp_cli_lock(kp_cli *cli)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s.lock", cli->policy_path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "keyplane: warning: cannot take the lock %s (%s); running unlocked\n", path,
                strerror(errno));
        return;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "keyplane: waiting for another keyplane run on this policy (%s)\n", path);
        if (flock(fd, LOCK_EX) != 0)
            fprintf(stderr, "keyplane: warning: cannot lock %s: %s\n", path, strerror(errno));
    }
    /* fd stays open: the lock goes with the process. */
}
