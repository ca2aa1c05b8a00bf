/* Envelope encoding and strict decoding. */
#include <stdlib.h>
#include <string.h>

#include "kp_test.h"

#define FPR "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_roundtrip(void **state)
{
    (void)state;
    kp_envelope *env = NULL;
    assert_int_equal(kp_envelope_new("tde-prod", &env), KP_OK);
    uint8_t bytes[256];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (uint8_t)i;
    kp_envelope_wrap w = {FPR, 3, KP_WRAP_RSA_OAEP_SHA256, bytes, sizeof(bytes)};
    assert_int_equal(kp_envelope_add(env, &w), KP_OK);
    w.version = 2;
    w.alg = KP_WRAP_RSA_OAEP_SHA1;
    w.wrapped_len = 17;
    assert_int_equal(kp_envelope_add(env, &w), KP_OK);
    char *text = NULL;
    assert_int_equal(kp_envelope_encode(env, &text), KP_OK);
    assert_null(strchr(text, '\n'));
    kp_envelope *back = NULL;
    char err[128];
    assert_int_equal(kp_envelope_decode(text, strlen(text), &back, err, sizeof(err)), KP_OK);
    assert_string_equal(kp_envelope_chain(back), "tde-prod");
    assert_int_equal(kp_envelope_count(back), 2);
    const kp_envelope_wrap *b0 = kp_envelope_get0(back, 0), *b1 = kp_envelope_get0(back, 1);
    assert_string_equal(b0->fingerprint, FPR);
    assert_int_equal(b0->version, 3);
    assert_int_equal(b0->alg, KP_WRAP_RSA_OAEP_SHA256);
    assert_int_equal(b0->wrapped_len, 256);
    assert_memory_equal(b0->wrapped, bytes, 256);
    assert_int_equal(b1->version, 2);
    assert_int_equal(b1->wrapped_len, 17);
    assert_null(kp_envelope_get0(back, 2));
    free(text);
    kp_envelope_free(back);
    kp_envelope_free(env);
}

static void test_add_rejects_bad_entries(void **state)
{
    (void)state;
    kp_envelope *env = NULL;
    assert_int_equal(kp_envelope_new("Bad Name", &env), KP_ERR_INVALID_ARG);
    assert_int_equal(kp_envelope_new("c", &env), KP_OK);
    uint8_t b[4] = {1, 2, 3, 4};
    kp_envelope_wrap w = {"abc", 1, KP_WRAP_RSA_OAEP_SHA1, b, 4};
    assert_int_equal(kp_envelope_add(env, &w), KP_ERR_INVALID_ARG); /* short fingerprint */
    w.fingerprint = FPR;
    w.version = 0;
    assert_int_equal(kp_envelope_add(env, &w), KP_ERR_INVALID_ARG);
    w.version = 1;
    w.alg = 77;
    assert_int_equal(kp_envelope_add(env, &w), KP_ERR_INVALID_ARG);
    w.alg = KP_WRAP_RSA_OAEP_SHA1;
    w.wrapped_len = 0;
    assert_int_equal(kp_envelope_add(env, &w), KP_ERR_INVALID_ARG);
    char *text = NULL;
    assert_int_equal(kp_envelope_encode(env, &text), KP_ERR_INVALID_ARG); /* empty envelope */
    kp_envelope_free(env);
}

static void test_decode_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "not json",
        "[]",
        "{\"kp\":1,\"chain\":\"c\"}",
        "{\"kp\":2,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AAAA\"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[]}",
        "{\"kp\":1,\"chain\":\"C C\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AAAA\"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"xyz\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AAAA\"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":0,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AAAA\"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"ROT13\","
        "\"w\":\"AAAA\"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"A!AA\"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AAAA\",\"extra\":1}]}",
        "{\"kp\":1,\"chain\":\"c\",\"chain\":\"d\",\"wraps\":[]}",
        /* non-canonical base64: padding inside, blanks, bits set in the padding */
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AA==AAAA\"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AA==    \"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AB==\"}]}",
        "{\"kp\":1,\"chain\":\"c\",\"wraps\":[{\"fpr\":\"" FPR "\",\"v\":1,\"alg\":\"RSA-OAEP\","
        "\"w\":\"AAAA\"}],\"more\":true}",
        NULL,
    };
    for (size_t i = 0; bad[i] != NULL; i++) {
        kp_envelope *env = NULL;
        char err[128] = "";
        assert_int_equal(kp_envelope_decode(bad[i], strlen(bad[i]), &env, err, sizeof(err)),
                         KP_ERR_INTEGRITY);
        assert_null(env);
        assert_non_null(strstr(err, "malformed envelope"));
    }
    /* Over the size limit without parsing. */
    size_t big = KP_ENVELOPE_MAX + 1;
    char *huge = calloc(1, big + 1);
    memset(huge, ' ', big);
    kp_envelope *env = NULL;
    assert_int_equal(kp_envelope_decode(huge, big, &env, NULL, 0), KP_ERR_INTEGRITY);
    free(huge);
}

static void test_alg_names(void **state)
{
    (void)state;
    assert_string_equal(kp_wrap_alg_name(KP_WRAP_RSA_OAEP_SHA1), "RSA-OAEP");
    assert_string_equal(kp_wrap_alg_name(KP_WRAP_RSA_OAEP_SHA256), "RSA-OAEP-256");
    assert_int_equal(kp_wrap_alg_from_name("RSA1_5"), KP_WRAP_RSA_PKCS1);
    assert_int_equal(kp_wrap_alg_from_name("rsa-oaep"), 0);
    assert_null(kp_wrap_alg_name(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_add_rejects_bad_entries),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_alg_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
