/*
 * The keyplane command's state directory: the journal and the lock of each policy, named by
 * the policy's canonical path, so that they never land beside the policy (a source tree, a
 * read-only configuration directory) or beside a device (--policy /dev/stdin). docs/cli.md,
 * "The state directory", says where it is and how the names are made. The policy lock
 * (kp_cli_lock) is taken here too.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "state_dir.h"

static const char *s_dir_option;

void kp_cli_set_state_dir(const char *dir)
{
    s_dir_option = dir;
}

/* The state directory's path, by the documented order; false when none can be named. */
static bool s_dir(char *buf, size_t len)
{
    const char *v = s_dir_option;
    if (v == NULL || v[0] == '\0')
        v = secure_getenv("KEYPLANE_STATE_DIR");
    if (v != NULL && v[0] != '\0')
        return (size_t)snprintf(buf, len, "%s", v) < len;
    v = secure_getenv("XDG_STATE_HOME");
    if (v != NULL && v[0] == '/') /* the XDG rule: a relative value is ignored */
        return (size_t)snprintf(buf, len, "%s/keyplane", v) < len;
    v = secure_getenv("HOME");
    struct passwd pw, *found = NULL;
    char pwbuf[4096];
    if ((v == NULL || v[0] != '/') &&
        getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &found) == 0 && found != NULL)
        v = pw.pw_dir;
    return v != NULL && v[0] == '/' &&
           (size_t)snprintf(buf, len, "%s/.local/state/keyplane", v) < len;
}

/* mkdir -p with mode 0700 for every directory it makes; then the directory must be ours and
 * closed to others. */
static kp_status s_make_dir(const char *dir, char *why, size_t len)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s", dir) >= sizeof(path)) {
        snprintf(why, len, "path too long");
        return KP_ERR_INVALID_ARG;
    }
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            snprintf(why, len, "cannot create %s: %s", path, strerror(errno));
            return KP_ERR_IO;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        snprintf(why, len, "%s", strerror(errno));
        return KP_ERR_IO;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(why, len, "not a directory");
        return KP_ERR_IO;
    }
    if (sb.st_uid != geteuid()) {
        snprintf(why, len, "owned by uid %u, not by the user running keyplane (uid %u)",
                 (unsigned)sb.st_uid, (unsigned)geteuid());
        return KP_ERR_DENIED;
    }
    if ((sb.st_mode & 022) != 0) {
        snprintf(why, len, "writable by %s (mode %04o): only its owner may write there",
                 (sb.st_mode & 002) != 0 ? "others" : "its group", (unsigned)(sb.st_mode & 07777));
        return KP_ERR_DENIED;
    }
    return KP_OK;
}

/* The policy's key: its canonical path when it is a regular file (links, "." and ".."
 * resolved: every path to one file finds one journal and one lock); else (a pipe, a device:
 * /dev/stdin) the path as given, made absolute but not resolved, since what it resolves to
 * (pipe:[N], a terminal) names no policy. */
static bool s_key(const char *policy, char *buf, size_t len)
{
    struct stat sb;
    if (stat(policy, &sb) == 0 && S_ISREG(sb.st_mode)) {
        char *canon = realpath(policy, NULL);
        bool ok = canon != NULL && (size_t)snprintf(buf, len, "%s", canon) < len;
        free(canon);
        return ok;
    }
    if (policy[0] == '/')
        return (size_t)snprintf(buf, len, "%s", policy) < len;
    char cwd[PATH_MAX];
    return getcwd(cwd, sizeof(cwd)) != NULL &&
           (size_t)snprintf(buf, len, "%s/%s", cwd, policy) < len;
}

kp_status kp_cli_state_path(kp_cli *cli, const char *ext, char *buf, size_t len)
{
    char dir[PATH_MAX], key[PATH_MAX];
    if (!s_dir(dir, sizeof(dir))) {
        (void)kp_cli_error(KP_ERR_INVALID_ARG, "no state directory: set HOME, XDG_STATE_HOME or "
                                               "KEYPLANE_STATE_DIR, or give --state-dir");
        return KP_ERR_INVALID_ARG;
    }
    if (!s_key(cli->policy_path, key, sizeof(key))) {
        (void)kp_cli_error(KP_ERR_IO, "cannot resolve the policy path %s: %s", cli->policy_path,
                           strerror(errno));
        return KP_ERR_IO;
    }
    char why[PATH_MAX + 128];
    kp_status st = s_make_dir(dir, why, sizeof(why));
    if (st != KP_OK) {
        (void)kp_cli_error(st, "state directory %s: %s", dir, why);
        return st;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL) != 1)
        return KP_ERR_INTERNAL;
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    /* The base name, for people listing the directory: at most 64 bytes of [A-Za-z0-9._-]. */
    const char *slash = strrchr(key, '/');
    char base[65];
    size_t n = 0;
    for (const char *p = slash != NULL ? slash + 1 : key; *p != '\0' && n < 64; p++) {
        bool keep = strchr("._-", *p) != NULL || (*p >= 'a' && *p <= 'z') ||
                    (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        base[n++] = *p;
        if (!keep)
            base[n - 1] = '_';
    }
    base[n] = '\0';
    if ((size_t)snprintf(buf, len, "%s/%s-%s.%s", dir, hex, base, ext) >= len) {
        (void)kp_cli_error(KP_ERR_INVALID_ARG, "state directory path too long: %s", dir);
        return KP_ERR_INVALID_ARG;
    }
    /* Nothing is migrated: a journal an older keyplane left beside the policy is named once,
     * so that its operator can read it and remove it. */
    char old[PATH_MAX + 16];
    struct stat sb;
    snprintf(old, sizeof(old), "%s.journal", cli->policy_path);
    if (strcmp(ext, "journal") == 0 && lstat(old, &sb) == 0 && S_ISREG(sb.st_mode))
        kp_cli_info(cli, stderr,
                    "keyplane: note: %s is no longer written: journals are kept in %s\n", old, dir);
    return KP_OK;
}

/* kp_cli_lock (cli.h) lives here, beside the path of the lock it takes. */
int kp_cli_lock(kp_cli *cli)
{
    /* In the state directory, named by the policy file's canonical path (state_dir.c): runs
     * that reach one file through different paths find one lock. A copy is another policy.
     * No lock, no run: a state directory somebody else can change, or a lock that cannot be
     * taken, must not turn the exclusion of two writers off. */
    char path[4096];
    kp_status st = kp_cli_state_path(cli, "lock", path, sizeof(path));
    if (st != KP_OK)
        return kp_cli_exit_code(st); /* kp_cli_state_path said why */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return kp_cli_error(KP_ERR_IO, "cannot take the lock %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        kp_cli_info(cli, stderr, "keyplane: waiting for another keyplane run on this policy (%s)\n",
                    path);
        if (flock(fd, LOCK_EX) != 0) {
            int e = errno;
            close(fd);
            return kp_cli_error(KP_ERR_IO, "cannot lock %s: %s", path, strerror(e));
        }
    }
    /* fd stays open: the lock goes with the process (closing it would release the lock). */
    /* cppcheck-suppress resourceLeak */
    return KP_EXIT_OK;
}
