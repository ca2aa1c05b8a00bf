/*
 * The two tests that close a run. secrets-wiped tears the plugin down and then requires that no
 * secret it allocated is left (secrets kept for the plugin's lifetime included), reporting the
 * totals. valgrind runs the whole kit again under valgrind (--valgrind), because an invalid read
 * in a plugin may pass every functional test.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf_tests.h"

static int s_argc;
static char **s_argv;
static bool s_on;

void conf_valgrind_set_argv(int argc, char **argv)
{
    s_argc = argc;
    s_argv = argv;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--valgrind") == 0)
            s_on = true;
}

void conf_t_secrets_wiped(conf_run *r)
{
    conf_unload(r->kit);
    conf_secret_sweep(0, true);
    char **orphans = NULL;
    size_t n = conf_orphan_faults(&orphans);
    for (size_t i = 0; i < n; i++)
        conf_fail(r, "outside any test (init, open, teardown): %s", orphans[i]);
    conf_secret_stats st;
    conf_secret_stats_get(&st);
    snprintf(r->note, sizeof(r->note),
             "the plugin allocated %llu secrets: %llu freed by it, %llu handed to the kit; "
             "%llu left",
             (unsigned long long)st.plugin_new, (unsigned long long)st.plugin_freed,
             (unsigned long long)st.adopted, (unsigned long long)st.live_plugin);
}

static bool s_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

static bool s_have_valgrind(void)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        return false;
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(copy, ":", &save); d != NULL && !found;
         d = strtok_r(NULL, ":", &save)) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/valgrind", d);
        found = access(p, X_OK) == 0;
    }
    free(copy);
    return found;
}

const char *conf_valgrind_applies(const conf_kit *k)
{
    (void)k;
    if (!s_on)
        return "not asked for (--valgrind)";
    if (s_asan())
        return "this kit is built with AddressSanitizer, which valgrind cannot run";
    if (!s_have_valgrind())
        return "valgrind is not installed";
    return NULL;
}

/* The first line of out that starts with prefix (after valgrind's "==pid== "), or "". */
static void s_line(const char *out, const char *needle, char *line, size_t len)
{
    const char *p = strstr(out, needle);
    line[0] = '\0';
    if (p == NULL)
        return;
    while (p > out && p[-1] != '\n')
        p--;
    size_t n = strcspn(p, "\n");
    snprintf(line, len, "%.*s", (int)(n < len ? n : len - 1), p);
}

static char *s_slurp(int fd)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t got;
    lseek(fd, 0, SEEK_SET);
    while (buf != NULL && (got = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)got;
        if (n == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (b == NULL)
                break;
            buf = b;
            cap *= 2;
        }
    }
    if (buf != NULL)
        buf[n] = '\0';
    return buf;
}

void conf_t_valgrind(conf_run *r)
{
    char self[4096], tmo[32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        conf_fail(r, "cannot find the kit's own executable");
        return;
    }
    self[n] = '\0';
    char **argv = calloc((size_t)s_argc + 16, sizeof(*argv));
    if (argv == NULL)
        return;
    size_t a = 0;
    argv[a++] = "valgrind";
    argv[a++] = "--error-exitcode=99";
    argv[a++] = "--leak-check=full";
    argv[a++] = "--errors-for-leak-kinds=definite";
    argv[a++] = "--show-leak-kinds=definite";
    argv[a++] = "-q";
    argv[a++] = self;
    for (int i = 1; i < s_argc; i++)
        if (strcmp(s_argv[i], "--valgrind") != 0 && strcmp(s_argv[i], "--json") != 0)
            argv[a++] = s_argv[i];
    snprintf(tmo, sizeof(tmo), "%u", r->kit->timeout_s * 20);
    argv[a++] = "--timeout";
    argv[a++] = tmo;
    char path[] = "/tmp/kp-conf-valgrind.XXXXXX";
    int fd = mkstemp(path);
    int status = 0;
    char *out = NULL;
    bool ran = false;
    if (fd < 0) {
        conf_fail(r, "cannot make a temporary file");
    } else {
        unlink(path);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fd, 1);
        posix_spawn_file_actions_adddup2(&fa, fd, 2);
        pid_t pid;
        int rc = posix_spawnp(&pid, "valgrind", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        ran = rc == 0 && waitpid(pid, &status, 0) >= 0;
        if (ran)
            out = s_slurp(fd);
        else
            conf_fail(r, "cannot run valgrind");
        close(fd);
    }
    free(argv);
    char line[300];
    if (!ran) {
        /* reported above */
    } else if (!WIFEXITED(status)) {
        conf_fail(r, "the kit under valgrind died with signal %d", WTERMSIG(status));
    } else if (WEXITSTATUS(status) == 99) {
        s_line(out != NULL ? out : "", "== ", line, sizeof(line));
        conf_fail(r, "valgrind found memory errors: %s", line);
    } else if (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 1) {
        s_line(out != NULL ? out : "", "keyplane-conformance: ", line, sizeof(line));
        conf_fail(r, "the kit under valgrind exited with %d: %s", WEXITSTATUS(status), line);
    } else {
        /* exit 1: tests failed under valgrind too; they are reported by this run itself */
        s_line(out != NULL ? out : "", " passed, ", line, sizeof(line));
        snprintf(r->note, sizeof(r->note), "under valgrind: %.200s", line);
    }
    if (conf_verbose && out != NULL)
        fputs(out, stderr);
    free(out);
}
