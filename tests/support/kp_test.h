/*
 * The test support library (tests/support, prefix kp_test_): what the unit and integration tests
 * share instead of each keeping a copy. Temporary directories and files, a context on the
 * build's plugins, the single-fault mock plugins' directories, one failure routine, and the
 * fixture most tests start from: a fresh directory, a context, a policy written there and
 * loaded, the instances opened from it, and the context's audit lines captured in memory.
 * Time is measured with the kit's clock (kpk_clock_ns, kpk_clock_ms), included here; the
 * benchmarks share their argument parsing and instance opening here too.
 * A minimal core's upcalls for calling a plugin directly. The emulator's control client is
 * kp_test_vault.h; the kit transport helpers kp_test_http.h.
 */
#ifndef KP_TEST_H
#define KP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/clock.h>

/* Fails the running cmocka test with the message; outside a test (a driver's main) prints it and
 * ends the program with a failing status. */
void kp_test_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A fresh directory under $TMPDIR (or /tmp); caller frees the string, kp_test_rmtree removes. */
char *kp_test_tmpdir(void);
void kp_test_rmtree(const char *path);
/* Writes text to dir/name and returns the malloc'd path. */
char *kp_test_write(const char *dir, const char *name, const char *text);
/* A context whose only plugin directory is dir (the build's plugin dir when NULL). */
kp_ctx *kp_test_ctx(const char *dir);
/* The directory of single-fault mock plugin name (tests/mock-plugins); caller frees. */
char *kp_test_mock_dir(const char *name);
/* Loading mock name is refused with want, in one line naming its path and reason. */
void kp_test_expect_refused(const char *name, kp_status want, const char *reason);
/* A policy with two file instances "a" and "b" under dir and a chain "c" over both. */
char *kp_test_two_region_policy(const char *dir);

/* ---- for programs that report instead of asserting (the benchmarks) ---------------------- */

/* argv[i] as a number from min to max, or def when argc <= i; on a bad one prints
 * "PROGRAM: argument I must be MIN to MAX" and returns -1. */
int kp_test_arg(int argc, char **argv, int i, long def, long min, long max, long *out);
/* A new context on plugin_dir, policy_path loaded into *pol and its instance name opened into
 * *inst; on a failure returns the status and keeps *ctx (when made) for kp_ctx_last_error. */
kp_status kp_test_open_instance(const char *plugin_dir, const char *policy_path, const char *name,
                                kp_ctx **ctx, kp_policy **pol, kp_instance **inst);

/* ---- a plugin called directly, without libkeyplane's loader (unit.abi, azure.abi) ---------- */

#define KP_TEST_UPCALLS 10
/* The upcalls of a minimal core: LOG and AUDIT discard, SET_ERROR keeps the text for
 * kp_test_upcall_error, the secret upcalls are libkeyplane's. KP_TEST_UPCALLS entries and the
 * {0, NULL} end. */
extern const kp_dispatch kp_test_upcalls[KP_TEST_UPCALLS + 1];
/* The text the plugin last set through SET_ERROR; "" after kp_test_upcall_error_clear. */
const char *kp_test_upcall_error(void);
void kp_test_upcall_error_clear(void);
/* dlopen()s path (RTLD_LOCAL) into *so and returns its kp_plugin_init under the version node;
 * fails the test when either is missing. */
kp_plugin_init_fn *kp_test_plugin_init(const char *path, void **so);

/* ---- the fixture ------------------------------------------------------------------------- */

#define KP_TEST_FX_AUDIT 0x1u   /* capture the context's audit lines in audit_buf */
#define KP_TEST_FX_NO_INIT 0x2u /* leave the policy's stores uninitialised (no init) */
#define KP_TEST_FX_MAX_OPEN 8

typedef struct kp_test_fx {
    char *dir;         /* a fresh directory, removed with the fixture */
    char *policy_path; /* dir/policy.yaml once a policy is loaded */
    kp_ctx *ctx;       /* plugins from the directory the fixture was made with */
    kp_policy *pol;    /* the loaded policy */
    FILE *audit;       /* with KP_TEST_FX_AUDIT: the context's audit stream */
    char *audit_buf;   /* what it holds after fflush(audit) */
    size_t audit_len;
    kp_instance *opened[KP_TEST_FX_MAX_OPEN]; /* by kp_test_fx_open, closed with the fixture */
    size_t nopened;
    unsigned flags; /* KP_TEST_FX_* */
} kp_test_fx;

/* Makes the directory and the context (plugins from plugin_dir, the build's when NULL); flags
 * are KP_TEST_FX_*. Fails the test when it cannot. */
void kp_test_fx_init(kp_test_fx *f, const char *plugin_dir, unsigned flags);
/* Writes policy as dir/policy.yaml and loads it; fails the test with the reason otherwise. Then,
 * unless KP_TEST_FX_NO_INIT, initialises the store of every instance whose plugin makes its
 * stores (kp_instance_init, as 'keyplane init' does): a file store is not created by a write.
 * An instance that does not open is left for the test to find. */
void kp_test_fx_load(kp_test_fx *f, const char *policy);
/* Loads kp_test_two_region_policy's policy of instances "a", "b" and chain "c". */
void kp_test_fx_load_two_region(kp_test_fx *f);
/* Opens the policy's instance name; fails the test with the reason when it does not open. */
kp_instance *kp_test_fx_open(kp_test_fx *f, const char *name);
/* Closes the opened instances, frees the policy and the context, removes the directory. */
void kp_test_fx_fini(kp_test_fx *f);

/* kp_test_fx_init on a new zeroed block of size bytes: a kp_test_fx (sizeof(kp_test_fx)) or a
 * test's own fixture struct whose first member is one. kp_test_fx_free finis and frees it. */
void *kp_test_fx_new(size_t size, const char *plugin_dir, unsigned flags);
void kp_test_fx_free(kp_test_fx *f);
/* A cmocka teardown for a *state made with kp_test_fx_new. */
int kp_test_fx_teardown(void **state);
/* A cmocka test of fn whose setup makes *state with kp_test_fx_new. */
#define KP_TEST_FX(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, kp_test_fx_teardown)

#endif
