/* The loader accepts a good plugin and refuses each single-fault mock with one line that
 * names the file and the fault, and any plugin that someone else could have changed: the file or
 * its directory writable by group or others, or owned by another user than root and the one
 * running the test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kp_test.h"

static void test_good_mock_loads(void **state)
{
    (void)state;
    char *dir = kp_test_mock_dir("good");
    kp_ctx *ctx = kp_test_ctx(dir);
    kp_plugin *p = NULL, *again = NULL;
    assert_int_equal(kp_plugin_load(ctx, "good", &p), KP_OK);
    assert_string_equal(kp_plugin_get0_info(p)->name, "good");
    assert_int_equal(kp_plugin_get0_info(p)->capabilities, KP_CAP_KEYSTORE);
    assert_int_equal(kp_plugin_load(ctx, "good", &again), KP_OK);
    assert_ptr_equal(p, again); /* loaded once per context */
    kp_ctx_free(ctx);
    free(dir);
}

static void test_wrong_abi_major(void **state)
{
    (void)state;
    char want[96];
    snprintf(want, sizeof(want), "built for ABI 2.0, this keyplane offers ABI 1.%d", KP_ABI_MINOR);
    kp_test_expect_refused("abi-major", KP_ERR_ABI, want);
}

static void test_missing_mandatory_function(void **state)
{
    (void)state;
    kp_test_expect_refused("missing-wrap", KP_ERR_PLUGIN,
                           "declares keystore but lacks mandatory function KS_WRAP (id 204)");
}

static void test_init_fails(void **state)
{
    (void)state;
    kp_test_expect_refused("init-fails", KP_ERR_PLUGIN,
                           "kp_plugin_init failed with KP_ERR_BACKEND (init-fails: mock backend is "
                           "unavailable by design)");
}

static void test_no_init_symbol(void **state)
{
    (void)state;
    kp_test_expect_refused("no-init", KP_ERR_PLUGIN, "no kp_plugin_init symbol");
}

static void test_not_a_shared_object(void **state)
{
    (void)state;
    kp_test_expect_refused("not-elf", KP_ERR_PLUGIN, "not a shared object");
}

static void test_names_and_dirs(void **state)
{
    (void)state;
    kp_ctx *ctx = kp_test_ctx(NULL);
    kp_plugin *p = NULL;
    assert_int_equal(kp_plugin_load(ctx, "../etc/evil", &p), KP_ERR_INVALID_ARG);
    assert_non_null(strstr(kp_ctx_last_error(ctx), "invalid plugin name"));
    assert_int_equal(kp_plugin_load(ctx, "File", &p), KP_ERR_INVALID_ARG);
    assert_int_equal(kp_plugin_load(ctx, "nonexistent", &p), KP_ERR_NOT_FOUND);
    assert_non_null(strstr(kp_ctx_last_error(ctx), "'nonexistent' not found"));
    assert_int_equal(kp_ctx_add_plugin_dir(ctx, "relative/dir"), KP_ERR_INVALID_ARG);
    assert_int_equal(kp_plugin_load_path(ctx, "relative.so", &p), KP_ERR_INVALID_ARG);
    assert_int_equal(kp_plugin_load_path(ctx, "/nonexistent/x.so", &p), KP_ERR_NOT_FOUND);
    assert_int_equal(kp_plugin_load(ctx, "file", &p), KP_OK);
    assert_string_equal(kp_plugin_get0_info(p)->name, "file");
    assert_int_equal(kp_plugin_get0_info(p)->abi_major, KP_ABI_MAJOR);
    assert_int_equal(kp_plugin_get0_info(p)->capabilities, KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE);
    kp_ctx_free(ctx);
}

typedef struct {
    int loaded, refused;
    char reasons[4096];
} s_scan;

static void s_visit(void *arg, const char *path, const kp_plugin *plugin, kp_status st,
                    const char *reason)
{
    s_scan *s = arg;
    (void)path;
    if (plugin != NULL) {
        assert_int_equal(st, KP_OK);
        s->loaded++;
    } else {
        assert_int_not_equal(st, KP_OK);
        s->refused++;
        strncat(s->reasons, reason, sizeof(s->reasons) - strlen(s->reasons) - 2);
        strcat(s->reasons, "\n");
    }
}

static void test_scan_reports_each(void **state)
{
    (void)state;
    kp_ctx *ctx = NULL;
    assert_int_equal(kp_ctx_new(&ctx), KP_OK);
    const char *mocks[] = {"good", "abi-major", "missing-wrap", "init-fails", "no-init", "not-elf"};
    for (size_t i = 0; i < 6; i++) {
        char *dir = kp_test_mock_dir(mocks[i]);
        assert_int_equal(kp_ctx_add_plugin_dir(ctx, dir), KP_OK);
        free(dir);
    }
    assert_int_equal(kp_ctx_plugin_dir_count(ctx), 6);
    s_scan s = {0};
    assert_int_equal(kp_plugin_scan(ctx, s_visit, &s), KP_OK);
    assert_int_equal(s.loaded, 1);
    assert_int_equal(s.refused, 5);
    assert_non_null(strstr(s.reasons, "no kp_plugin_init symbol"));
    kp_ctx_free(ctx);
}

/* dir/good.so, a copy of the good mock (mode 0755). */
static void s_copy_good(const char *dir)
{
    char *src = kp_test_mock_dir("good"), from[1024], to[1024], buf[65536];
    snprintf(from, sizeof(from), "%s/good.so", src);
    snprintf(to, sizeof(to), "%s/good.so", dir);
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    for (size_t n; (n = fread(buf, 1, sizeof(buf), in)) > 0;)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(to, 0755), 0);
    free(src);
}

/* Loading "good" from dir gives want, and, when refused, exactly the line
 * "plugin DIR/good.so refused: REASON". */
static void s_expect_load(const char *dir, kp_status want, const char *reason)
{
    kp_ctx *ctx = kp_test_ctx(dir);
    kp_plugin *p = NULL;
    assert_non_null(ctx);
    assert_int_equal(kp_plugin_load(ctx, "good", &p), want);
    if (want != KP_OK) {
        char line[2048];
        snprintf(line, sizeof(line), "plugin %s/good.so refused: %s", dir, reason);
        assert_null(p);
        assert_string_equal(kp_ctx_last_error(ctx), line);
    }
    kp_ctx_free(ctx);
}

/* path (the plugin file or its directory, named subject in the refusal) given mode: the plugin in
 * dir is refused, naming who besides the owner could change it. */
static void s_expect_mode(const char *dir, const char *path, mode_t mode, const char *subject)
{
    char why[1400];
    assert_int_equal(chmod(path, mode), 0);
    snprintf(why, sizeof(why),
             "%s is writable by %s (mode %04o): only its owner may change code keyplane loads",
             subject, (mode & S_IWOTH) != 0 ? "others" : "its group", (unsigned)mode);
    s_expect_load(dir, KP_ERR_PERMISSION, why);
}

static void test_loose_permissions(void **state)
{
    (void)state;
    char *dir = kp_test_tmpdir(), file[600], why[1400], link_dir[600], other[700];
    assert_non_null(dir);
    s_copy_good(dir);
    snprintf(file, sizeof(file), "%s/good.so", dir);
    assert_int_equal(chmod(dir, 0755), 0);
    s_expect_load(dir, KP_OK, NULL);

    /* The directory writable by others, by its group: anyone there could drop in a NAME.so
     * (sticky protects files, not the names to load). */
    char subject[700];
    snprintf(subject, sizeof(subject), "its directory %s", dir);
    static const mode_t dir_modes[] = {0777, 01777, 0775};
    for (size_t i = 0; i < sizeof(dir_modes) / sizeof(dir_modes[0]); i++)
        s_expect_mode(dir, dir, dir_modes[i], subject);
    assert_int_equal(chmod(dir, 0755), 0);

    /* The file itself writable by others, by its group. */
    static const mode_t file_modes[] = {0757, 0775};
    for (size_t i = 0; i < sizeof(file_modes) / sizeof(file_modes[0]); i++)
        s_expect_mode(dir, file, file_modes[i], "the file");
    assert_int_equal(chmod(file, 0755), 0);

    /* Through a symbolic link: the directory the file really is in counts too. */
    snprintf(link_dir, sizeof(link_dir), "%s/links", dir);
    assert_int_equal(mkdir(link_dir, 0755), 0);
    snprintf(other, sizeof(other), "%s/good.so", link_dir);
    assert_int_equal(symlink(file, other), 0);
    s_expect_load(link_dir, KP_OK, NULL);
    assert_int_equal(chmod(dir, 0777), 0);
    snprintf(why, sizeof(why),
             "its directory %s is writable by others (mode 0777): only its owner may change code "
             "keyplane loads",
             dir);
    s_expect_load(link_dir, KP_ERR_PERMISSION, why);
    assert_int_equal(chmod(dir, 0755), 0);

    /* Owned by another user who is not root: only root can give a file away, so a run as an
     * ordinary user skips this part (saying so); the mode cases above always run. */
    if (geteuid() != 0) {
        print_message("skipped: owned-by-another-user cases need root (chown); running as uid %u\n",
                      (unsigned)geteuid());
    } else {
        assert_int_equal(chown(file, 65534, 65534), 0);
        s_expect_load(dir, KP_ERR_PERMISSION,
                      "the file is owned by uid 65534, neither root nor the user running keyplane "
                      "(uid 0)");
        assert_int_equal(chown(file, 0, 0), 0);
        assert_int_equal(chown(dir, 65534, 65534), 0);
        snprintf(why, sizeof(why),
                 "its directory %s is owned by uid 65534, neither root nor the user running "
                 "keyplane (uid 0)",
                 dir);
        s_expect_load(dir, KP_ERR_PERMISSION, why);
        assert_int_equal(chown(dir, 0, 0), 0);
        s_expect_load(dir, KP_OK, NULL);
    }
    unlink(other);
    rmdir(link_dir);
    unlink(file);
    rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_mock_loads),
        cmocka_unit_test(test_wrong_abi_major),
        cmocka_unit_test(test_missing_mandatory_function),
        cmocka_unit_test(test_init_fails),
        cmocka_unit_test(test_no_init_symbol),
        cmocka_unit_test(test_not_a_shared_object),
        cmocka_unit_test(test_names_and_dirs),
        cmocka_unit_test(test_scan_reports_each),
        cmocka_unit_test(test_loose_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
