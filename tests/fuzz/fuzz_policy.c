/*
 * Fuzz target of the policy loader (core/src/policy, kp_policy_load): YAML the operator writes,
 * or a file someone else could change. The input goes through the public entry point, read
 * from an in-memory file (memfd) so nothing touches the disk, with the build's plugins (an
 * instance of `file` or `pkcs11` gets its params checked by the plugin itself).
 *
 * Besides memory errors it checks what policy.h promises: KP_OK with a policy, or KP_ERR_CONFIG
 * with at least one diagnostic and a one-line error text; nothing else. And it bounds the work of
 * one load: a policy is small, so a load that takes more than 2 s of CPU time
 * (KP_FUZZ_POLICY_CPU_MS in the environment changes it) is an amplification (YAML aliases walked
 * once per use, a quadratic check, unbounded diagnostics) and aborts from a SIGPROF timer. The
 * timer is the process's CPU time, so a busy machine does not trip it; libFuzzer's -rss_limit_mb
 * bounds the memory the same input may take.
 *
 * Built as a libFuzzer target (fuzz_policy, Clang) and as a replay program over its corpus
 * (fuzz_policy_replay; ctest fuzz.policy.replay). See README.md.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include <keyplane/keyplane.h>
#include <keyplane/policy.h>

#include "fuzz_check.h"

#define T "fuzz_policy"

static kp_ctx *s_ctx;
static int s_fd = -1;
static char s_path[64];
static long s_cpu_ms = 2000;

static void s_over_budget(int sig)
{
    (void)sig;
    static const char msg[] = "fuzz_policy: kp_policy_load: one load took more than its CPU "
                              "budget (KP_FUZZ_POLICY_CPU_MS): unbounded work\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    abort();
}

static void s_setup(void)
{
    const char *dir = getenv("KP_FUZZ_PLUGIN_DIR");
    const char *ms = getenv("KP_FUZZ_POLICY_CPU_MS");
    if (ms != NULL && atol(ms) > 0)
        s_cpu_ms = atol(ms);
    /* Secret params name variables the loader does not read; set them anyway, as a user would. */
    setenv("KP_FUZZ_PASSPHRASE", "fuzz passphrase", 0);
    if (kp_ctx_new(&s_ctx) != KP_OK)
        kp_test_fuzz_die(T, "setup", "kp_ctx_new failed");
    kp_ctx_set_log(s_ctx, KP_LOG_ERROR, NULL);
    if (kp_ctx_add_plugin_dir(s_ctx, dir != NULL ? dir : KP_TEST_PLUGIN_DIR) != KP_OK)
        kp_test_fuzz_die(T, "setup", "no plugin directory");
    s_fd = memfd_create("fuzz-policy", MFD_CLOEXEC);
    if (s_fd < 0)
        kp_test_fuzz_die(T, "setup", "memfd_create failed");
    snprintf(s_path, sizeof(s_path), "/proc/self/fd/%d", s_fd);
    struct sigaction sa = {.sa_handler = s_over_budget};
    sigaction(SIGPROF, &sa, NULL);
}

static void s_budget(long ms)
{
    struct itimerval it = {.it_value = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000}};
    setitimer(ITIMER_PROF, &it, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (s_ctx == NULL)
        s_setup();
    if (ftruncate(s_fd, 0) != 0 || pwrite(s_fd, data, size, 0) != (ssize_t)size)
        kp_test_fuzz_die(T, "setup", "cannot write the memfd");
    kp_policy *pol = NULL;
    kp_diag_list *diags = NULL;
    s_budget(s_cpu_ms);
    kp_status st = kp_policy_load(s_ctx, s_path, &pol, &diags);
    s_budget(0);
    if (st == KP_OK) {
        if (pol == NULL || diags == NULL || kp_diag_count(diags) != 0)
            kp_test_fuzz_die(T, "kp_policy_load", "KP_OK without a policy, or with diagnostics");
    } else if (st == KP_ERR_CONFIG) {
        if (pol != NULL || diags == NULL || kp_diag_count(diags) == 0)
            kp_test_fuzz_die(T, "kp_policy_load", "KP_ERR_CONFIG without a diagnostic");
        const char *text = kp_ctx_last_error(s_ctx);
        if (text == NULL || text[0] == '\0' || strchr(text, '\n') != NULL)
            kp_test_fuzz_die(T, "kp_policy_load", "KP_ERR_CONFIG without a one-line reason");
    } else if (st != KP_ERR_NOMEM) {
        fprintf(stderr, "%s: kp_policy_load: status %d: %s\n", T, (int)st,
                kp_ctx_last_error(s_ctx));
        abort();
    }
    kp_diag_list_free(diags);
    kp_policy_free(pol);
    return 0;
}
