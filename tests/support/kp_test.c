/* The test support library's small helpers: temporary directories and files, a
 * context on the build's plugins, the mock plugins' directories, the benchmarks' argument
 * parsing and instance opening (kp_test.h). */
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kp_test.h"

char *kp_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/kp-test-XXXXXX", base != NULL ? base : "/tmp") < 0)
        return NULL;
    if (mkdtemp(path) == NULL) {
        free(path);
        return NULL;
    }
    return path;
}

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void kp_test_rmtree(const char *path)
{
    if (path != NULL)
        nftw(path, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

char *kp_test_write(const char *dir, const char *name, const char *text)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        return NULL;
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        free(path);
        return NULL;
    }
    fputs(text, f);
    fclose(f);
    return path;
}

kp_ctx *kp_test_ctx(const char *dir)
{
    kp_ctx *ctx = NULL;
    if (kp_ctx_new(&ctx) != KP_OK)
        return NULL;
    kp_ctx_set_log(ctx, KP_LOG_ERROR, NULL);
    if (kp_ctx_add_plugin_dir(ctx, dir != NULL ? dir : KP_TEST_PLUGIN_DIR) != KP_OK) {
        kp_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

char *kp_test_two_region_policy(const char *dir)
{
    setenv("KP_TEST_PASSPHRASE", "correct horse battery staple", 1);
    char *text = NULL;
    if (asprintf(&text,
                 "version: 1\n"
                 "providers:\n"
                 "  a: {plugin: file, path: %s/a, passphrase: env:KP_TEST_PASSPHRASE,"
                 " kdf_iterations: 10000}\n"
                 "  b: {plugin: file, path: %s/b, passphrase: env:KP_TEST_PASSPHRASE,"
                 " kdf_iterations: 10000}\n"
                 "chains:\n"
                 "  c:\n"
                 "    protector: {type: rsa, bits: 2048, origin: a, exportable: true}\n"
                 "    replicas: [a, b]\n",
                 dir, dir) < 0)
        return NULL;
    char *path = kp_test_write(dir, "policy.yaml", text);
    free(text);
    return path;
}

char *kp_test_mock_dir(const char *name)
{
    char *dir = NULL;
    assert_true(asprintf(&dir, "%s/%s", KP_TEST_MOCK_DIR, name) > 0);
    return dir;
}

void kp_test_expect_refused(const char *name, kp_status want, const char *reason)
{
    char *dir = kp_test_mock_dir(name);
    kp_ctx *ctx = kp_test_ctx(dir);
    assert_non_null(ctx);
    kp_plugin *p = NULL;
    kp_status st = kp_plugin_load(ctx, name, &p);
    assert_int_equal(st, want);
    assert_null(p);
    const char *err = kp_ctx_last_error(ctx);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.so", dir, name);
    if (strstr(err, path) == NULL || strstr(err, reason) == NULL || strchr(err, '\n') != NULL)
        fail_msg("refusal of %s: got '%s', want path '%s' and '%s'", name, err, path, reason);
    kp_ctx_free(ctx);
    free(dir);
}

int kp_test_arg(int argc, char **argv, int i, long def, long min, long max, long *out)
{
    char *end = NULL;
    if (argc <= i) {
        *out = def;
        return 0;
    }
    *out = strtol(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0' || *out < min || *out > max) {
        fprintf(stderr, "%s: argument %d must be %ld to %ld\n", basename(argv[0]), i, min, max);
        return -1;
    }
    return 0;
}

kp_status kp_test_open_instance(const char *plugin_dir, const char *policy_path, const char *name,
                                kp_ctx **ctx, kp_policy **pol, kp_instance **inst)
{
    *ctx = NULL;
    *pol = NULL;
    *inst = NULL;
    kp_status st = kp_ctx_new(ctx);
    if (st == KP_OK)
        st = kp_ctx_add_plugin_dir(*ctx, plugin_dir);
    if (st == KP_OK)
        st = kp_policy_load(*ctx, policy_path, pol, NULL);
    if (st == KP_OK)
        st = kp_instance_open(*ctx, *pol, name, inst);
    return st;
}
