/*
 * Helpers shared by the subcommands: exit codes, error printing and the --json error object,
 * boolean, version and secret-source options, policy loading, files.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

void kp_cli_info(const kp_cli *cli, FILE *out, const char *fmt, ...)
{
    if (cli->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
}

/*
 * Status to exit code (docs/cli.md, "Exit status"). Mostly the status's category, with three
 * exceptions for what the category does not say about a command line: KP_ERR_UNSUPPORTED is a
 * plugin or its backend not offering what was asked (a token without the mechanism), never the
 * caller's syntax, so 3; KP_ERR_CONFLICT is a conditional write that lost to another writer, so
 * running the command again may succeed: 6; KP_ERR_BUFFER_TOO_SMALL never reaches a user but
 * through a bug: 9. Exit 2 stays what the command line got wrong, KP_ERR_INVALID_ARG.
 */
int kp_cli_exit_code(kp_status st)
{
    switch (st) {
    case KP_ERR_UNSUPPORTED:
        return KP_EXIT_CONFIG;
    case KP_ERR_CONFLICT:
        return KP_EXIT_TRANSIENT;
    case KP_ERR_BUFFER_TOO_SMALL:
        return KP_EXIT_INTERNAL;
    default:
        break;
    }
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

/*
 * The run's error, for --json: the first error any path reported (kp_cli_error, kp_cli_fail,
 * kp_cli_usage_error, kp_cli_not_in_policy, a policy diagnostic), and whether a JSON document
 * is on stdout already. One process is one run, so this is the process's, not a kp_cli's: the
 * usage-error path has no kp_cli to hand.
 */
static struct {
    bool document; /* kp_cli_print_json printed one */
    bool set;
    kp_status st;
    char message[1024];
} s_run;

static void s_record(kp_status st, const char *fmt, va_list ap)
{
    if (s_run.set)
        return;
    s_run.set = true;
    s_run.st = st;
    vsnprintf(s_run.message, sizeof(s_run.message), fmt, ap);
}

void kp_cli_note_error(kp_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_record(st, fmt, ap);
    va_end(ap);
}

int kp_cli_error(kp_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("keyplane: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    va_start(ap, fmt);
    s_record(st, fmt, ap);
    va_end(ap);
    return kp_cli_exit_code(st);
}

const char *kp_cli_detail(kp_cli *cli, kp_status st, const char *what)
{
    const char *detail = kp_ctx_last_error(cli->ctx);
    size_t wl = strlen(what);
    /* the library's text names the instance already ("s3-west: ..."): not twice */
    if (strncmp(detail, what, wl) == 0 && detail[wl] == ':' && detail[wl + 1] == ' ')
        detail += wl + 2;
    return detail[0] != '\0' ? detail : kp_strerror(st);
}

int kp_cli_fail(kp_cli *cli, kp_status st, const char *what)
{
    return kp_cli_error(st, "%s: %s", what, kp_cli_detail(cli, st, what));
}

int kp_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "keyplane%s%s: ", cmd[0] != '\0' ? " " : "", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'keyplane%s%s --help'.\n", cmd[0] != '\0' ? " " : "", cmd);
    va_end(ap);
    if (!s_run.set) {
        char msg[sizeof(s_run.message)];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        kp_cli_note_error(KP_ERR_INVALID_ARG, "%s%s%s", cmd, cmd[0] != '\0' ? ": " : "", msg);
    }
    return KP_EXIT_USAGE;
}

int kp_cli_flag(const char *cmd, const char *name, const char *value, bool *out)
{
    if (value == NULL) {
        *out = true;
        return KP_EXIT_OK;
    }
    if (kpk_param_bool(value, out))
        return KP_EXIT_OK;
    return kp_cli_usage_error(cmd, "--%s=%s: the value must be true or false (or yes/no, on/off)",
                              name, value);
}

int kp_cli_workers(const char *cmd, const char *value, unsigned *out)
{
    char *end;
    unsigned long n = value[0] >= '1' && value[0] <= '9' ? strtoul(value, &end, 10) : 0;
    if (n == 0 || *end != '\0' || n > 256)
        return kp_cli_usage_error(cmd, "--workers must be 1 to 256");
    *out = (unsigned)n;
    return KP_EXIT_OK;
}

int kp_cli_version_opt(const char *cmd, const char *value, bool digits_only, const char *why,
                       uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    bool lead = digits_only ? isdigit((unsigned char)value[0]) : value[0] != '-';
    if (!lead || errno != 0 || end == value || *end != '\0' || v == 0 || v > UINT32_MAX)
        return kp_cli_usage_error(cmd, "%s", why);
    *out = (uint32_t)v;
    return KP_EXIT_OK;
}

#define S_SOURCES "env:NAME, file:PATH, fd:N or stdin"

int kp_cli_source_opt(const char *cmd, const char *name, const char *value, bool never_itself)
{
    if (kp_secret_source_valid(value))
        return KP_EXIT_OK;
    if (never_itself)
        return kp_cli_usage_error(cmd, "--%s takes a source (" S_SOURCES "), never the %s itself",
                                  name, name);
    return kp_cli_usage_error(cmd, "--%s takes " S_SOURCES, name);
}

int kp_cli_bad_option(const char *cmd, char **argv)
{
    /* getopt_long is silent (opterr is 0: main), so this line says why. The option is named
     * without any value given with it ("--passphrase=..." may hold what should never be
     * echoed): a long one up to its '=', a short one by optopt (its argv element may be a
     * cluster, or hold the value). For a long option, optopt is 0 when there is no such
     * option, else it is one that needs a value, or takes none and was given one. */
    const char *a = argv[optind > 0 ? optind - 1 : 0];
    if (strncmp(a, "--", 2) == 0) {
        int n = (int)strcspn(a, "=");
        const char *why = optopt == 0   ? "no such option"
                          : a[n] == '=' ? "it takes no value"
                                        : "it needs a value";
        return kp_cli_usage_error(cmd, "bad option '%.*s': %s", n, a, why);
    }
    if (optopt > ' ' && optopt < 127)
        return kp_cli_usage_error(cmd, "bad option '-%c' (no such option, or its value is missing)",
                                  optopt);
    return kp_cli_usage_error(cmd, "bad option");
}

/* What each exit code is called in a --json error object: the category of the statuses that
 * exit with it (docs/cli.md). */
static const char *s_exit_category(int rc)
{
    static const kp_category cats[] = {
        [KP_EXIT_USAGE] = KP_CAT_USAGE,         [KP_EXIT_CONFIG] = KP_CAT_CONFIG,
        [KP_EXIT_AUTH] = KP_CAT_AUTH,           [KP_EXIT_NOT_FOUND] = KP_CAT_NOT_FOUND,
        [KP_EXIT_TRANSIENT] = KP_CAT_TRANSIENT, [KP_EXIT_INTEGRITY] = KP_CAT_INTEGRITY,
        [KP_EXIT_BACKEND] = KP_CAT_BACKEND,     [KP_EXIT_INTERNAL] = KP_CAT_INTERNAL};
    if (rc == KP_EXIT_FAIL)
        return "failed";
    if (rc >= KP_EXIT_USAGE && rc <= KP_EXIT_INTERNAL)
        return kp_category_name(cats[rc]);
    return "internal";
}

/* The status an exit code stands for when no error was recorded (a path that only printed). */
static kp_status s_exit_status(int rc)
{
    static const kp_status sts[] = {
        [KP_EXIT_FAIL] = KP_ERR_INTERNAL,       [KP_EXIT_USAGE] = KP_ERR_INVALID_ARG,
        [KP_EXIT_CONFIG] = KP_ERR_CONFIG,       [KP_EXIT_AUTH] = KP_ERR_DENIED,
        [KP_EXIT_NOT_FOUND] = KP_ERR_NOT_FOUND, [KP_EXIT_TRANSIENT] = KP_ERR_UNAVAILABLE,
        [KP_EXIT_INTEGRITY] = KP_ERR_INTEGRITY, [KP_EXIT_BACKEND] = KP_ERR_BACKEND,
        [KP_EXIT_INTERNAL] = KP_ERR_INTERNAL};
    return rc >= KP_EXIT_FAIL && rc <= KP_EXIT_INTERNAL ? sts[rc] : KP_ERR_INTERNAL;
}

int kp_cli_finish(const kp_cli *cli, int rc)
{
    if (!cli->json || rc == KP_EXIT_OK || s_run.document)
        return rc;
    kp_status st = s_run.set ? s_run.st : s_exit_status(rc);
    /* the status's own exit code names it, also where the command exits otherwise (plan
     * --detailed-exitcode exits 1 for every error) */
    int code = s_run.set ? kp_cli_exit_code(st) : rc;
    if (!s_run.set) /* a path that printed its error itself: stderr has the words */
        snprintf(s_run.message, sizeof(s_run.message),
                 "keyplane%s%s failed with exit status %d; standard error says why",
                 cli->command != NULL ? " " : "", cli->command != NULL ? cli->command : "", rc);
    kp_cli_print_json(json_pack("{s:{s:s, s:s, s:o, s:i}}", "error", "status", kp_status_name(st),
                                "category", s_exit_category(code), "message",
                                kp_cli_jstr(s_run.message), "exit_code", rc));
    return rc;
}

int kp_cli_load_policy(kp_cli *cli)
{
    if (cli->policy != NULL)
        return KP_EXIT_OK;
    kp_diag_list *diags = NULL;
    kp_status st = kp_policy_load(cli->ctx, cli->policy_path, &cli->policy, &diags);
    if (st == KP_ERR_CONFIG) {
        size_t n = kp_diag_count(diags);
        for (size_t i = 0; i < n; i++) {
            const kp_diag *d = kp_diag_get0(diags, i);
            fprintf(stderr, "%s:%u:%u: error: %s\n", d->file, d->line, d->column, d->message);
            if (i == 0)
                kp_cli_note_error(KP_ERR_CONFIG, "%s:%u:%u: %s%s", d->file, d->line, d->column,
                                  d->message, n > 1 ? " (and more: see standard error)" : "");
        }
        if (n == 0)
            kp_cli_note_error(KP_ERR_CONFIG, "%s: %s", cli->policy_path,
                              kp_ctx_last_error(cli->ctx));
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

/* Writes into what path names when it is no regular file (a pipe, a device): never replaces it
 * with a file, and never writes to a terminal. */
static kp_status s_write_into(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    kp_status st = fd >= 0 ? KP_OK : KP_ERR_IO;
    if (st == KP_OK && isatty(fd)) {
        kp_cli_error(KP_ERR_INVALID_ARG, "refusing to write to the terminal %s", path);
        st = KP_ERR_INVALID_ARG;
    } else {
        if (st == KP_OK)
            st = s_write_all(fd, data, len);
        if (st != KP_OK)
            kp_cli_error(st, "cannot write %s: %s", path, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    return st;
}

/* The owner, group and mode the file at path has, given to the temporary file fd that takes its
 * place, so a replaced file keeps them (a new file is the user's, 0600) and is never, even for a
 * moment, readable by anyone the old one was not. When they cannot be kept (keyplane is not root
 * and the file is someone else's, or in a group its user is not in) the command refuses, saying so,
 * before anything is written (*told). */
static kp_status s_keep_owner(int fd, const char *path, bool secret, bool *told)
{
    struct stat old, now;
    if (lstat(path, &old) != 0)
        return errno == ENOENT && fchmod(fd, 0600) == 0 ? KP_OK : KP_ERR_IO;
    if (secret && (old.st_mode & 077) != 0) {
        /* keeping the mode would hand a DEK or a key to everybody the old file was open to */
        *told = true;
        kp_cli_error(KP_ERR_PERMISSION,
                     "refusing to write a secret into %s: others may read it (mode %04o); "
                     "nothing was written",
                     path, (unsigned)(old.st_mode & 07777));
        return KP_ERR_PERMISSION;
    }
    if (fstat(fd, &now) != 0)
        return KP_ERR_IO;
    if ((now.st_uid != old.st_uid || now.st_gid != old.st_gid) &&
        fchown(fd, old.st_uid, old.st_gid) != 0) {
        int e = errno;
        *told = true;
        kp_cli_error(KP_ERR_PERMISSION,
                     "refusing to replace %s: it belongs to uid %u, gid %u, and keyplane (uid %u) "
                     "cannot give the new file the same owner (%s); nothing was written",
                     path, (unsigned)old.st_uid, (unsigned)old.st_gid, (unsigned)geteuid(),
                     strerror(e));
        return KP_ERR_PERMISSION;
    }
    return fchmod(fd, old.st_mode & 0777) == 0 ? KP_OK : KP_ERR_IO;
}

/* Makes the directory entry of path durable (best effort: a file whose data is synced). */
static void s_sync_dir(const char *path)
{
    char *copy = strdup(path);
    int dfd = copy != NULL ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(copy);
}

/* Writes a temporary file beside path, then renames it: a crash leaves the old file or the
 * new one. */
static kp_status s_write_replace(const char *path, const void *data, size_t len, bool secret)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    kp_status st = tmp != NULL ? KP_OK : KP_ERR_NOMEM;
    int fd = -1, saved = 0;
    bool told = false;
    if (st == KP_OK) {
        snprintf(tmp, n, "%s.tmp-XXXXXX", path);
        fd = mkstemp(tmp);
        st = fd >= 0 ? KP_OK : KP_ERR_IO;
    }
    if (st == KP_OK)
        st = s_keep_owner(fd, path, secret, &told);
    if (st == KP_OK)
        st = s_write_all(fd, data, len);
    if (st == KP_OK && fsync(fd) != 0)
        st = KP_ERR_IO;
    saved = errno;
    if (fd >= 0)
        close(fd);
    if (st == KP_OK && rename(tmp, path) != 0) {
        saved = errno;
        st = KP_ERR_IO;
    }
    if (st == KP_OK) {
        s_sync_dir(path);
    } else if (st != KP_ERR_NOMEM) {
        if (fd >= 0)
            unlink(tmp);
        if (!told)
            kp_cli_error(st, "cannot write %s: %s", path, strerror(saved));
    }
    free(tmp);
    return st;
}

static kp_status s_write(const char *path, const void *data, size_t len, bool secret)
{
    if (strcmp(path, "-") == 0) {
        kp_status st = s_write_all(STDOUT_FILENO, data, len);
        if (st != KP_OK)
            kp_cli_error(st, "cannot write to standard output: %s", strerror(errno));
        return st;
    }
    struct stat sb;
    bool exists = lstat(path, &sb) == 0;
    if (exists && S_ISLNK(sb.st_mode)) {
        kp_cli_error(KP_ERR_INVALID_ARG, "%s is a symbolic link; give the file itself", path);
        return KP_ERR_INVALID_ARG;
    }
    /* A secret goes into nothing another user made: a FIFO they read from, or a file that would
     * keep their ownership. */
    if (secret && exists && sb.st_uid != geteuid()) {
        kp_cli_error(KP_ERR_PERMISSION,
                     "refusing to write a secret into %s: it belongs to uid %u, not to keyplane's "
                     "uid %u; nothing was written",
                     path, (unsigned)sb.st_uid, (unsigned)geteuid());
        return KP_ERR_PERMISSION;
    }
    if (exists && !S_ISREG(sb.st_mode))
        return s_write_into(path, data, len);
    return s_write_replace(path, data, len, secret);
}

kp_status kp_cli_write_file(kp_cli *cli, const char *path, const void *data, size_t len)
{
    (void)cli;
    return s_write(path, data, len, false);
}

kp_status kp_cli_write_secret(kp_cli *cli, const char *path, const void *data, size_t len)
{
    (void)cli;
    return s_write(path, data, len, true);
}

kp_status kp_cli_new_secret_ok(kp_cli *cli, const char *path, bool *fifo)
{
    (void)cli;
    struct stat sb;
    *fifo = false;
    if (strcmp(path, "-") == 0)
        return KP_OK;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT)
            return KP_OK;
        int e = errno;
        kp_cli_error(KP_ERR_IO, "cannot use %s: %s", path, strerror(e));
        return KP_ERR_IO;
    }
    if (S_ISFIFO(sb.st_mode) && sb.st_uid == geteuid()) {
        *fifo = true;
        return KP_OK;
    }
    kp_cli_error(KP_ERR_EXISTS,
                 "%s exists: a secret is written only to a new file, never over another; "
                 "nothing was written",
                 path);
    return KP_ERR_EXISTS;
}

kp_status kp_cli_write_new_secret(kp_cli *cli, const char *path, const void *data, size_t len)
{
    bool fifo = false;
    KP_GUARD(kp_cli_new_secret_ok(cli, path, &fifo));
    if (fifo || strcmp(path, "-") == 0)
        return s_write(path, data, len, true);
    /* O_EXCL: created here or not at all, whatever appeared since the check */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        int e = errno;
        kp_status st = e == EEXIST   ? KP_ERR_EXISTS
                       : e == ENOENT ? KP_ERR_NOT_FOUND
                       : e == EACCES ? KP_ERR_PERMISSION
                                     : KP_ERR_IO;
        kp_cli_error(st, "cannot create %s: %s; nothing was written", path, strerror(e));
        return st;
    }
    /* exactly 0600, whatever the umask made of it */
    kp_status st = fchmod(fd, 0600) == 0 ? KP_OK : KP_ERR_IO;
    if (st == KP_OK)
        st = s_write_all(fd, data, len);
    if (st == KP_OK && fsync(fd) != 0)
        st = KP_ERR_IO;
    int e = errno;
    if (close(fd) != 0 && st == KP_OK) {
        e = errno;
        st = KP_ERR_IO;
    }
    if (st != KP_OK) {
        unlink(path);
        kp_cli_error(st, "cannot write %s: %s; it was removed", path, strerror(e));
        return st;
    }
    s_sync_dir(path);
    return KP_OK;
}

/* kp_cli_read_file, a file over max bytes failing with too_large. */
static kp_status s_read(const char *path, size_t max, kp_status too_large, char **data, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        int saved = errno;
        kp_status st = saved == ENOENT ? KP_ERR_NOT_FOUND : KP_ERR_IO;
        kp_cli_error(st, "cannot open %s: %s", path, strerror(saved));
        return st;
    }
    char *buf = malloc(max + 1);
    kp_status st = buf != NULL ? KP_OK : KP_ERR_NOMEM;
    size_t n = st == KP_OK ? fread(buf, 1, max + 1, f) : 0;
    bool err = ferror(f) != 0;
    if (f != stdin)
        fclose(f);
    if (st == KP_OK && (err || n > max)) {
        st = err ? KP_ERR_IO : too_large;
        kp_cli_error(st, "cannot read %s: %s", path, err ? "read error" : "file too large");
    }
    if (st == KP_OK) {
        buf[n] = '\0';
        *data = buf;
        *len = n;
    } else {
        free(buf);
    }
    return st;
}

kp_status kp_cli_read_file(kp_cli *cli, const char *path, size_t max, char **data, size_t *len)
{
    (void)cli;
    return s_read(path, max, KP_ERR_INVALID_ARG, data, len);
}

void *kp_cli_jstr(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");
    if (j != NULL || s == NULL)
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
    /* reals are measurements (backup's "seconds", rounded to the millisecond): 15 digits
     * print 0.005 as 0.005, where jansson's default 17 print 0.0050000000000000001 */
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    if (s != NULL) {
        puts(s);
        free(s);
        s_run.document = true;
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

int kp_cli_simple_opts(kp_cli *cli, const char *cmd, const char *usage, bool stop_at_arg, int argc,
                       char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, stop_at_arg ? "+jh" : "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            cli->json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return kp_cli_bad_option(cmd, argv);
        }
    }
    return KP_EXIT_OK;
}

int kp_cli_subcommand(kp_cli *cli, const char *cmd, const char *usage, const char *const *subs,
                      int *argc, char ***argv, size_t *which)
{
    int rc = kp_cli_simple_opts(cli, cmd, usage, true, *argc, *argv);
    if (rc != KP_EXIT_OK)
        return rc;
    char list[160] = "";
    for (size_t i = 0; subs[i] != NULL; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i > 0 ? ", " : "",
                 subs[i]);
    if (optind >= *argc)
        return kp_cli_usage_error(cmd, "missing subcommand (%s)", list);
    const char *sub = (*argv)[optind];
    for (*which = 0; subs[*which] != NULL && strcmp(subs[*which], sub) != 0; (*which)++)
        ;
    if (subs[*which] == NULL)
        return kp_cli_usage_error(cmd, "unknown subcommand '%s' (expected %s)", sub, list);
    /* the subcommand's own options, anywhere after it: getopt starts afresh there */
    *argc -= optind;
    *argv += optind;
    optind = 0;
    return KP_EXIT_OK;
}

int kp_cli_not_in_policy(kp_cli *cli, const char *what, const char *name)
{
    return kp_cli_error(KP_ERR_NOT_FOUND, "no %s '%s' in %s", what, name, cli->policy_path);
}

int kp_cli_open_datakey(kp_cli *cli, const char *name, const char *need, kp_instance **inst)
{
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    const char *plugin = kp_policy_instance_plugin(cli->policy, name);
    if (plugin == NULL)
        return kp_cli_not_in_policy(cli, "provider instance", name);
    uint32_t caps = kp_policy_instance_capabilities(cli->policy, name);
    char have[64];
    if (!(caps & KP_CAP_DATAKEY))
        return kp_cli_error(KP_ERR_UNSUPPORTED,
                            "%s (plugin %s) makes no data keys (its capabilities: %s): %s", name,
                            plugin, kp_cli_caps(caps, have, sizeof(have)), need);
    kp_status st = kp_instance_open(cli->ctx, cli->policy, name, inst);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, name);
}

bool kp_cli_chain_holds(const kp_chain_policy *ch, const char *name, bool secret_copies)
{
    bool holds = ch->origin != NULL && strcmp(ch->origin, name) == 0;
    for (size_t i = 0; i < ch->nreplicas && !holds; i++)
        holds = strcmp(ch->replicas[i], name) == 0;
    for (size_t i = 0; i < ch->nescrow && !holds; i++)
        holds = strcmp(ch->escrow[i], name) == 0;
    for (size_t i = 0; secret_copies && i < ch->nsecret_replicas && !holds; i++)
        holds = strcmp(ch->secret_replicas[i], name) == 0;
    return holds;
}

kp_status kp_cli_read_envelope(kp_cli *cli, const char *path, kp_envelope **env)
{
    char *text = NULL, err[256];
    size_t len = 0;
    (void)cli;
    /* Larger than any envelope: not an envelope, so malformed (7), as the decoder would say. */
    KP_GUARD(s_read(path, KP_ENVELOPE_MAX, KP_ERR_INTEGRITY, &text, &len));
    kp_status st = kp_envelope_decode(text, len, env, err, sizeof(err));
    if (st != KP_OK)
        kp_cli_error(st, "%s: %s", path, err);
    free(text);
    return st;
}

kp_status kp_cli_write_envelope(kp_cli *cli, const char *path, const kp_envelope *env, char **text)
{
    char *out = NULL;
    kp_status st = kp_envelope_encode(env, &out);
    if (st == KP_OK) {
        size_t len = strlen(out);
        out[len] = '\n'; /* replaces the NUL for writing; restored below */
        st = kp_cli_write_file(cli, path, out, len + 1);
        out[len] = '\0';
    }
    if (st == KP_OK && text != NULL) {
        *text = out;
        out = NULL;
    }
    kp_free(out);
    return st;
}

int kp_cli_instance_args(kp_cli *cli, const char *cmd, const char *usage, int argc, char **argv)
{
    int rc = kp_cli_simple_opts(cli, cmd, usage, false, argc, argv);
    if (rc == KP_EXIT_OK)
        rc = kp_cli_load_policy(cli);
    for (int i = optind; rc == KP_EXIT_OK && i < argc; i++)
        if (kp_policy_instance_plugin(cli->policy, argv[i]) == NULL)
            rc = kp_cli_not_in_policy(cli, "provider instance", argv[i]);
    return rc;
}

int kp_cli_pair_opt(const char *cmd, const char *name, const char *value, kp_cli_pairs *p)
{
    const char *eq = strchr(value, '=');
    size_t klen = eq != NULL ? (size_t)(eq - value) : 0;
    if (p->n == KP_CLI_PAIRS_MAX || klen == 0)
        return kp_cli_usage_error(cmd, "--%s takes KEY=VALUE, at most %d times", name,
                                  KP_CLI_PAIRS_MAX);
    if (klen >= sizeof(p->keys[0]) ||
        strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789_.-") < klen)
        return kp_cli_usage_error(cmd, "--%s %.*s=...: a key is made of [a-z0-9_.-], at most %zu",
                                  name, (int)(klen < 64 ? klen : 64), value,
                                  sizeof(p->keys[0]) - 1);
    char *key = p->keys[p->n];
    memcpy(key, value, klen);
    key[klen] = '\0';
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->meta[i].key, key) == 0)
            return kp_cli_usage_error(cmd, "--%s %s=...: %s given twice", name, key, key);
    p->meta[p->n++] = (kp_meta){key, eq + 1};
    return KP_EXIT_OK;
}

void *kp_cli_pairs_json(const kp_cli_pairs *p)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < p->n; i++)
        json_object_set_new(o, p->meta[i].key, kp_cli_jstr(p->meta[i].value));
    return o;
}
