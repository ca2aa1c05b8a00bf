/* kp_strerror, kp_status_name and categories cover every code. */
#include <string.h>

#include "kp_test.h"

static void test_every_code_has_text(void **state)
{
    (void)state;
    for (int s = 0; s < KP_STATUS_COUNT_; s++) {
        assert_string_not_equal(kp_strerror((kp_status)s), "unknown status");
        assert_string_not_equal(kp_status_name((kp_status)s), "KP_ERR_UNKNOWN");
        assert_true(strncmp(kp_status_name((kp_status)s), "KP_", 3) == 0);
    }
    assert_string_equal(kp_strerror((kp_status)12345), "unknown status");
    assert_int_equal(kp_status_category((kp_status)12345), KP_CAT_INTERNAL);
}

static void test_categories(void **state)
{
    (void)state;
    assert_int_equal(kp_status_category(KP_OK), KP_CAT_OK);
    assert_int_equal(kp_status_category(KP_ERR_INVALID_ARG), KP_CAT_USAGE);
    assert_int_equal(kp_status_category(KP_ERR_CONFIG), KP_CAT_CONFIG);
    assert_int_equal(kp_status_category(KP_ERR_ABI), KP_CAT_CONFIG);
    assert_int_equal(kp_status_category(KP_ERR_AUTH), KP_CAT_AUTH);
    assert_int_equal(kp_status_category(KP_ERR_DENIED), KP_CAT_AUTH);
    assert_int_equal(kp_status_category(KP_ERR_NOT_FOUND), KP_CAT_NOT_FOUND);
    assert_int_equal(kp_status_category(KP_ERR_IO), KP_CAT_BACKEND);
    assert_int_equal(kp_status_category(KP_ERR_CRYPTO), KP_CAT_INTEGRITY);
    assert_int_equal(kp_status_category(KP_ERR_NOMEM), KP_CAT_INTERNAL);
    assert_true(kp_status_is_transient(KP_ERR_UNAVAILABLE));
    assert_true(kp_status_is_transient(KP_ERR_TIMEOUT));
    assert_true(kp_status_is_transient(KP_ERR_THROTTLED));
    assert_false(kp_status_is_transient(KP_ERR_AUTH));
    assert_false(kp_status_is_transient(KP_ERR_PERMISSION));
    assert_string_equal(kp_category_name(KP_CAT_TRANSIENT), "transient");
}

static void test_codes_are_stable(void **state)
{
    (void)state;
    /* Codes are ABI: a renumbering breaks every plugin built before it. */
    assert_int_equal(KP_ERR_INVALID_ARG, 1);
    assert_int_equal(KP_ERR_CONFIG, 4);
    assert_int_equal(KP_ERR_NOT_FOUND, 9);
    assert_int_equal(KP_ERR_CRYPTO, 17);
    assert_int_equal(KP_ERR_DENIED, 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_text),
        cmocka_unit_test(test_categories),
        cmocka_unit_test(test_codes_are_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
