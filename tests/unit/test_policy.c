/* Policy loading: the model, path resolution, and diagnostics with line and column. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test.h"
#include "policy/policy.h"

static void test_valid_policy(void **state)
{
    (void)state;
    char *dir = kp_test_tmpdir();
    char *path =
        kp_test_write(dir, "p.yaml",
                      "version: 1\n"
                      "x-owner: dba-team\n"
                      "providers:\n"
                      "  west:\n"
                      "    plugin: file\n"
                      "    path: stores/west\n"
                      "    passphrase: env:KP_P\n"
                      "    x-note: ignored\n"
                      "  east: {plugin: file, path: /abs/east, passphrase: file:/k}\n"
                      "chains:\n"
                      "  tde:\n"
                      "    protector: {type: rsa, bits: 4096, origin: west, exportable: true}\n"
                      "    replicas: [west, east]\n"
                      "    escrow: [east]\n"
                      "    algorithm: RSA-OAEP\n"
                      "    rotation: {every: 365d, warn_before: 30d}\n"
                      "    retention: 35d\n");
    kp_ctx *ctx = kp_test_ctx(NULL);
    kp_policy *pol = NULL;
    kp_diag_list *diags = NULL;
    kp_status st = kp_policy_load(ctx, path, &pol, &diags);
    if (st != KP_OK)
        fail_msg("%s", kp_ctx_last_error(ctx));
    assert_int_equal(kp_diag_count(diags), 0);
    assert_int_equal(kp_policy_instance_count(pol), 2);
    assert_string_equal(kp_policy_instance_name(pol, 0), "west");
    assert_string_equal(kp_policy_instance_plugin(pol, "east"), "file");
    assert_null(kp_policy_instance_plugin(pol, "north"));
    const kp_chain_policy *c = kp_policy_chain(pol, "tde");
    assert_non_null(c);
    assert_int_equal(c->bits, 4096);
    assert_string_equal(c->origin, "west");
    assert_int_equal(c->nreplicas, 2);
    assert_string_equal(c->replicas[1], "east");
    assert_int_equal(c->nescrow, 1);
    assert_int_equal(c->wrap_alg, KP_WRAP_RSA_OAEP_SHA1);
    assert_int_equal(c->rotation_every, 365 * 86400);
    assert_int_equal(c->rotation_warn, 30 * 86400);
    assert_int_equal(c->retention, 35 * 86400);
    assert_null(kp_policy_chain(pol, "other"));
    assert_ptr_equal(kp_policy_chain_at(pol, 0), c);
    kp_policy_free(pol);
    kp_diag_list_free(diags);
    kp_ctx_free(ctx);
    free(path);
    kp_test_rmtree(dir);
    free(dir);
}

/* Loads text and returns the diagnostics joined as "L:C: msg\n". */
static char *s_diags(const char *text, kp_status *st)
{
    char *dir = kp_test_tmpdir();
    char *path = kp_test_write(dir, "bad.yaml", text);
    kp_ctx *ctx = kp_test_ctx(NULL);
    kp_policy *pol = NULL;
    kp_diag_list *diags = NULL;
    *st = kp_policy_load(ctx, path, &pol, &diags);
    assert_null(pol);
    char *out = calloc(1, 8192);
    for (size_t i = 0; i < kp_diag_count(diags); i++) {
        const kp_diag *d = kp_diag_get0(diags, i);
        assert_string_equal(d->file, path);
        size_t n = strlen(out);
        snprintf(out + n, 8192 - n, "%u:%u: %s\n", d->line, d->column, d->message);
    }
    /* The context's error names the first problem with file:line:col. */
    assert_non_null(strstr(kp_ctx_last_error(ctx), path));
    kp_diag_list_free(diags);
    kp_ctx_free(ctx);
    free(path);
    kp_test_rmtree(dir);
    free(dir);
    return out;
}

static void s_expect(const char *text, const char *want)
{
    kp_status st = KP_OK;
    char *got = s_diags(text, &st);
    assert_int_equal(st, KP_ERR_CONFIG);
    if (strstr(got, want) == NULL)
        fail_msg("want '%s' in:\n%s", want, got);
    free(got);
}

static void test_diagnostics(void **state)
{
    (void)state;
    s_expect("version: 1\nproviders:\n  a: {plugin: file, path: /x, passphrase: env:P}\n"
             "chains:\n  c:\n    protector: {type: rsa, origin: a}\n    replicas: [a, zz]\n",
             "7:19: chain 'c': replicas 'zz' is not a provider instance");
    s_expect("version: 1\nproviders:\n  a: {plugin: file, path: /x, passphrase: env:P,"
             " verify_tls: false}\n",
             "3:50: instance 'a': unknown parameter 'verify_tls' for plugin 'file'");
    s_expect("version: 1\nproviders:\n  a: {plugin: file, path: /x}\n",
             "instance 'a': missing required parameter 'passphrase'");
    s_expect("version: [1\n", "YAML syntax error");
    s_expect("", "1:1: the policy is empty");
}

static void test_secret_value_not_echoed(void **state)
{
    (void)state;
    kp_status st;
    char *got = s_diags("version: 1\nproviders:\n  a: {plugin: file, path: /x,"
                        " passphrase: SuperSecretValue42}\n",
                        &st);
    assert_int_equal(st, KP_ERR_CONFIG);
    assert_non_null(strstr(got, "not the secret itself"));
    assert_null(strstr(got, "SuperSecretValue42"));
    free(got);
}

static void test_paths_are_absolute_and_clean(void **state)
{
    (void)state;
    char *dir = kp_test_tmpdir();
    char *path = kp_test_write(dir, "p.yaml",
                               "version: 1\nproviders:\n"
                               "  a: {plugin: file, path: ./x/../stores//a/., passphrase: "
                               "file:keys/../pass.txt}\n"
                               "  b: {plugin: file, path: ../../../../../../../../../../b,"
                               " passphrase: env:P}\n");
    kp_ctx *ctx = kp_test_ctx(NULL);
    kp_policy *pol = NULL;
    assert_int_equal(kp_policy_load(ctx, path, &pol, NULL), KP_OK);
    const kp_pol_instance *a = kp__policy_instance(pol, "a");
    char want[1024];
    snprintf(want, sizeof(want), "%s/stores/a", dir);
    assert_string_equal(a->params[0].value, want);
    snprintf(want, sizeof(want), "file:%s/pass.txt", dir); /* secrets too, with the prefix */
    assert_string_equal(a->params[1].value, want);
    assert_string_equal(kp__policy_instance(pol, "b")->params[0].value, "/b");
    kp_policy_free(pol);
    kp_ctx_free(ctx);
    free(path);
    kp_test_rmtree(dir);
    free(dir);
}

static void test_missing_file(void **state)
{
    (void)state;
    kp_ctx *ctx = kp_test_ctx(NULL);
    kp_policy *pol = NULL;
    assert_int_equal(kp_policy_load(ctx, "/nonexistent/policy.yaml", &pol, NULL), KP_ERR_NOT_FOUND);
    assert_non_null(strstr(kp_ctx_last_error(ctx), "/nonexistent/policy.yaml"));
    kp_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_policy),
        cmocka_unit_test(test_diagnostics),
        cmocka_unit_test(test_secret_value_not_echoed),
        cmocka_unit_test(test_paths_are_absolute_and_clean),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
