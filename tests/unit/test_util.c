/* Durations, base64, names. */
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "base/util.h"
#include "kp_test.h"

static void test_durations(void **state)
{
    (void)state;
    int64_t s = 0;
    assert_int_equal(kp__parse_duration("35d", &s), KP_OK);
    assert_int_equal(s, 35 * 86400);
    assert_int_equal(kp__parse_duration("12h", &s), KP_OK);
    assert_int_equal(s, 12 * 3600);
    assert_int_equal(kp__parse_duration("1y", &s), KP_OK);
    assert_int_equal(s, 365 * 86400);
    assert_int_equal(kp__parse_duration("2w", &s), KP_OK);
    assert_int_equal(s, 14 * 86400);
    assert_int_equal(kp__parse_duration("0s", &s), KP_OK);
    assert_int_equal(s, 0);
    const char *bad[] = {
        "", "d", "35", "35x", "-1d", "35dd", " 35d", "3.5d", "99999999999999999999y",
        /* longer than 1000y: 292471208677y fits int64_t seconds, but a time plus it wraps */
        "1001y", "292471208677y", "52144w", "365001d", NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        assert_int_equal(kp__parse_duration(bad[i], &s), KP_ERR_INVALID_ARG);
    assert_int_equal(kp__parse_duration(NULL, &s), KP_ERR_INVALID_ARG);
    assert_int_equal(kp__parse_duration("1000y", &s), KP_OK);
    assert_int_equal(s, KP__DURATION_MAX);
}

static void test_base64(void **state)
{
    (void)state;
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *e = NULL;
        assert_int_equal(
            kpk_b64_encode_alloc((const uint8_t *)plain[i], strlen(plain[i]), false, &e), KP_OK);
        assert_string_equal(e, enc[i]); /* RFC 4648 section 10 vectors */
        uint8_t *d = NULL;
        size_t len = 0;
        assert_int_equal(kp__b64_decode(enc[i], &d, &len), KP_OK);
        assert_int_equal(len, strlen(plain[i]));
        assert_memory_equal(d, plain[i], len);
        free(d);
        free(e);
    }
    uint8_t *d = NULL;
    size_t len = 0;
    assert_int_equal(kp__b64_decode("Zm9", &d, &len), KP_ERR_INVALID_ARG);
    assert_int_equal(kp__b64_decode("Zm9*", &d, &len), KP_ERR_INVALID_ARG);
    assert_int_equal(kp__b64_decode("====", &d, &len), KP_ERR_INVALID_ARG);
    assert_int_equal(kp__b64_decode("Zg==Zm9v", &d, &len), KP_ERR_INVALID_ARG);
    assert_int_equal(kp__b64_decode("Zh==", &d, &len), KP_ERR_INVALID_ARG); /* padding bits */
}

static void test_names(void **state)
{
    (void)state;
    assert_true(kp__name_valid("region-a", 63));
    assert_true(kp__name_valid("a_1", 63));
    assert_false(kp__name_valid("Region", 63));
    assert_false(kp__name_valid("-a", 63));
    assert_false(kp__name_valid("a/b", 63));
    assert_false(kp__name_valid("", 63));
    assert_false(kp__name_valid("abcd", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
