/*
 * Helpers shared by the subcommands: exit codes, error printing, policy loading, files.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

/* Writes into what path names when it is no regular file (a pipe, a device): never replaces it
 * with a file, and never writes to a terminal. */
static kp_status s_write_into(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    kp_status st = fd >= 0 ? KP_OK : KP_ERR_IO;
    if (st == KP_OK && isatty(fd)) {
        fprintf(stderr, "keyplane: error: refusing to write to the terminal %s\n", path);
        st = KP_ERR_INVALID_ARG;
    } else {
        if (st == KP_OK)
            st = s_write_all(fd, data, len);
        if (st != KP_OK)
            fprintf(stderr, "keyplane: error: cannot write %s: %s\n", path, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    return st;
}

/* Writes a temporary file beside path, then renames it: a crash leaves the old file or the
 * new one. */
static kp_status s_write_replace(const char *path, const void *data, size_t len)
{
    char *copy = strdup(path);
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    kp_status st = copy != NULL && tmp != NULL ? KP_OK : KP_ERR_NOMEM;
    int fd = -1, saved = 0;
    if (st == KP_OK) {
        snprintf(tmp, n, "%s.tmp-XXXXXX", path);
        fd = mkstemp(tmp);
        st = fd >= 0 ? KP_OK : KP_ERR_IO;
    }
    if (st == KP_OK && fchmod(fd, 0600) != 0)
        st = KP_ERR_IO;
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
        int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    } else if (st != KP_ERR_NOMEM) {
        if (fd >= 0)
            unlink(tmp);
        fprintf(stderr, "keyplane: error: cannot write %s: %s\n", path, strerror(saved));
    }
    free(tmp);
    free(copy);
    return st;
}

kp_status kp_cli_write_file(kp_cli *cli, const char *path, const void *data, size_t len)
{
    (void)cli;
    if (strcmp(path, "-") == 0) {
        kp_status st = s_write_all(STDOUT_FILENO, data, len);
        if (st != KP_OK)
            fprintf(stderr, "keyplane: error: cannot write to standard output: %s\n",
                    strerror(errno));
        return st;
    }
    struct stat sb;
    bool exists = lstat(path, &sb) == 0;
    if (exists && S_ISLNK(sb.st_mode)) {
        fprintf(stderr, "keyplane: error: %s is a symbolic link; give the file itself\n", path);
        return KP_ERR_INVALID_ARG;
    }
    if (exists && !S_ISREG(sb.st_mode))
        return s_write_into(path, data, len);
    return s_write_replace(path, data, len);
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
    kp_status st = buf != NULL ? KP_OK : KP_ERR_NOMEM;
    size_t n = st == KP_OK ? fread(buf, 1, max + 1, f) : 0;
    bool err = ferror(f) != 0;
    if (f != stdin)
        fclose(f);
    if (st == KP_OK && (err || n > max)) {
        fprintf(stderr, "keyplane: error: cannot read %s: %s\n", path,
                err ? "read error" : "file too large");
        st = err ? KP_ERR_IO : KP_ERR_INVALID_ARG;
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
    /* The policy file's own path, symbolic links and "." or ".." resolved: runs that reach one
     * file through different paths find one lock. A copy of the file is another policy. */
    char path[4096], *canon = realpath(cli->policy_path, NULL);
    snprintf(path, sizeof(path), "%s.lock", canon != NULL ? canon : cli->policy_path);
    free(canon);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        kp_cli_info(cli, stderr,
                    "keyplane: warning: cannot take the lock %s (%s); running unlocked\n", path,
                    strerror(errno));
        return;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        kp_cli_info(cli, stderr, "keyplane: waiting for another keyplane run on this policy (%s)\n",
                    path);
        if (flock(fd, LOCK_EX) != 0)
            kp_cli_info(cli, stderr, "keyplane: warning: cannot lock %s: %s\n", path,
                        strerror(errno));
    }
    /* fd stays open: the lock goes with the process. */
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
            return kp_cli_usage_error(cmd, "unknown option");
        }
    }
    return KP_EXIT_OK;
}

int kp_cli_not_in_policy(kp_cli *cli, const char *what, const char *name)
{
    fprintf(stderr, "keyplane: error: no %s '%s' in %s\n", what, name, cli->policy_path);
    return KP_EXIT_NOT_FOUND;
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
    KP_GUARD(kp_cli_read_file(cli, path, KP_ENVELOPE_MAX, &text, &len));
    kp_status st = kp_envelope_decode(text, len, env, err, sizeof(err));
    if (st != KP_OK)
        fprintf(stderr, "keyplane: error: %s: %s\n", path, err);
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
