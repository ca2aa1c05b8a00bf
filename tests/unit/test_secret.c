/* kp_secret: wiping, growth, comparison, and reading from sources. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/secret_hook.h"
#include "kp_test.h"

static size_t s_frees, s_nonzero;

static void s_hook(const unsigned char *data, size_t len)
{
    s_frees++;
    for (size_t i = 0; i < len; i++)
        if (data[i] != 0)
            s_nonzero++;
}

static void test_new_copy_free_wipes(void **state)
{
    (void)state;
    kp__secret_set_free_hook(s_hook);
    s_frees = s_nonzero = 0;
    kp_secret *s = kp_secret_new_copy("top secret bytes", 16);
    assert_non_null(s);
    assert_int_equal(kp_secret_len(s), 16);
    assert_memory_equal(kp_secret_cdata(s), "top secret bytes", 16);
    kp_secret_free(s);
    assert_int_equal(s_frees, 1);
    assert_int_equal(s_nonzero, 0);
    kp_secret_free(NULL);
    kp__secret_set_free_hook(NULL);
}

static void test_shrink_and_append(void **state)
{
    (void)state;
    kp__secret_set_free_hook(s_hook);
    s_frees = s_nonzero = 0;
    kp_secret *s = kp_secret_new_copy("abcdef", 6);
    assert_int_equal(kp_secret_shrink(s, 3), KP_OK);
    assert_int_equal(kp_secret_len(s), 3);
    assert_int_equal(kp_secret_data(s)[3], 0); /* the tail is wiped */
    assert_int_equal(kp_secret_shrink(s, 4), KP_ERR_INVALID_ARG);
    /* Grow well past one page: every old block must be wiped when replaced. */
    unsigned char chunk[1000];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 20; i++)
        assert_int_equal(kp_secret_append(&s, chunk, sizeof(chunk)), KP_OK);
    assert_int_equal(kp_secret_len(s), 3 + 20 * 1000);
    assert_memory_equal(kp_secret_cdata(s), "abc", 3);
    assert_int_equal(kp_secret_cdata(s)[3 + 19999], 'x');
    kp_secret_free(s);
    assert_true(s_frees >= 2);
    assert_int_equal(s_nonzero, 0);
    kp__secret_set_free_hook(NULL);
}

static void test_equal(void **state)
{
    (void)state;
    kp_secret *a = kp_secret_new_copy("same", 4), *b = kp_secret_new_copy("same", 4);
    kp_secret *c = kp_secret_new_copy("diff", 4), *d = kp_secret_new_copy("same!", 5);
    assert_true(kp_secret_equal(a, b));
    assert_false(kp_secret_equal(a, c));
    assert_false(kp_secret_equal(a, d));
    assert_false(kp_secret_equal(a, NULL));
    kp_secret_free(a);
    kp_secret_free(b);
    kp_secret_free(c);
    kp_secret_free(d);
}

static void test_source_syntax(void **state)
{
    (void)state;
    assert_true(kp_secret_source_valid("env:KP_X"));
    assert_true(kp_secret_source_valid("file:/x"));
    assert_true(kp_secret_source_valid("fd:3"));
    assert_true(kp_secret_source_valid("stdin"));
    assert_true(kp_secret_source_valid("-"));
    assert_false(kp_secret_source_valid("hunter2"));
    assert_false(kp_secret_source_valid("env:"));
    assert_false(kp_secret_source_valid("env:1X"));
    assert_false(kp_secret_source_valid("env:A-B"));
    assert_false(kp_secret_source_valid("file:"));
    assert_false(kp_secret_source_valid("fd:x"));
    assert_false(kp_secret_source_valid(NULL));
}

static void test_read_env_and_errors(void **state)
{
    (void)state;
    char err[256];
    kp_secret *s = NULL;
    setenv("KP_TEST_SECRET", "passphrase\n", 1);
    assert_int_equal(kp_secret_read_source("env:KP_TEST_SECRET", 100, 1, &s, err, sizeof(err)),
                     KP_OK);
    assert_int_equal(kp_secret_len(s), 10);
    kp_secret_free(s);
    assert_int_equal(kp_secret_read_source("env:KP_TEST_SECRET", 100, 0, &s, err, sizeof(err)),
                     KP_OK);
    assert_int_equal(kp_secret_len(s), 11);
    kp_secret_free(s);
    assert_int_equal(kp_secret_read_source("env:KP_TEST_SECRET", 5, 1, &s, err, sizeof(err)),
                     KP_ERR_INVALID_ARG);
    assert_null(s);
    assert_null(strstr(err, "passphrase")); /* the value never shows up in the reason */
    unsetenv("KP_TEST_UNSET");
    assert_int_equal(kp_secret_read_source("env:KP_TEST_UNSET", 100, 1, &s, err, sizeof(err)),
                     KP_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "KP_TEST_UNSET"));
    assert_int_equal(kp_secret_read_source("hunter2", 100, 1, &s, err, sizeof(err)),
                     KP_ERR_INVALID_ARG);
    assert_int_equal(kp_secret_read_source("fd:987", 100, 1, &s, err, sizeof(err)),
                     KP_ERR_INVALID_ARG);
    assert_int_equal(kp_secret_read_source("file:/nonexistent/kp", 100, 1, &s, err, sizeof(err)),
                     KP_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "/nonexistent/kp"));
}

static void test_read_file_and_fd(void **state)
{
    (void)state;
    char *dir = kp_test_tmpdir();
    char *path = kp_test_write(dir, "s", "line1\r\n");
    char ref[512], err[256];
    snprintf(ref, sizeof(ref), "file:%s", path);
    kp_secret *s = NULL;
    assert_int_equal(kp_secret_read_source(ref, 100, 1, &s, err, sizeof(err)), KP_OK);
    assert_int_equal(kp_secret_len(s), 5);
    assert_memory_equal(kp_secret_cdata(s), "line1", 5);
    kp_secret_free(s);

    int fd = open(path, O_RDONLY);
    snprintf(ref, sizeof(ref), "fd:%d", fd);
    assert_int_equal(kp_secret_read_source(ref, 100, 0, &s, err, sizeof(err)), KP_OK);
    assert_int_equal(kp_secret_len(s), 7);
    kp_secret_free(s);
    close(fd);

    /* A file over the limit is refused, not truncated. */
    char big[9000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char *bigpath = kp_test_write(dir, "big", big);
    snprintf(ref, sizeof(ref), "file:%s", bigpath);
    assert_int_equal(kp_secret_read_source(ref, 8192, 0, &s, err, sizeof(err)), KP_ERR_INVALID_ARG);
    assert_null(s);
    free(bigpath);
    free(path);
    kp_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_copy_free_wipes),
        cmocka_unit_test(test_shrink_and_append),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_source_syntax),
        cmocka_unit_test(test_read_env_and_errors),
        cmocka_unit_test(test_read_file_and_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
