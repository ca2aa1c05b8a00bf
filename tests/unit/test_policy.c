/* Policy loading: the model, path resolution, diagnostics with line and column (at most
 * KP__DIAG_MAX, no cascade from one bad instance, "did you mean"), the bounds that keep hostile
 * YAML (alias bombs, tags) cheap, and the one spelling of a boolean. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/params.h>

#include "kp_test.h"
#include "policy/diag.h"
#include "policy/parser.h"
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

/* A chain's azure_sql list, as the policy hands it out: every entry in order, its strings as
 * written (a resource group with parentheses, an upper-case GUID), x- keys ignored. */
static void test_azure_sql(void **state)
{
    (void)state;
    char *dir = kp_test_tmpdir();
    char *path = kp_test_write(
        dir, "p.yaml",
        "version: 1\n"
        "providers:\n"
        "  hsm: {plugin: file, path: hsm, passphrase: env:KP_P}\n"
        "  kv-east: {plugin: azure-keyvault, vault_url: https://kv-east.vault.azure.net}\n"
        "  kv-west: {plugin: azure-keyvault, vault_url: https://kv-west.vault.azure.net}\n"
        "chains:\n"
        "  tde:\n"
        "    protector: {type: rsa, bits: 3072, origin: hsm, exportable: true}\n"
        "    replicas: [kv-east, kv-west]\n"
        "    azure_sql:\n"
        "      - server: sql-east\n"
        "        resource_group: rg-prod(eu)\n"
        "        subscription: 0A0A0A0A-0000-4000-8000-00000000000A\n"
        "        vault: kv-east\n"
        "        x-note: primary\n"
        "      - {server: sql-west, resource_group: rg.w, subscription: "
        "00000000-0000-0000-0000-000000000000, vault: kv-west}\n"
        "  other:\n"
        "    protector: {type: rsa, bits: 2048, origin: hsm}\n"
        "    replicas: [hsm]\n");
    kp_ctx *ctx = kp_test_ctx(NULL);
    kp_policy *pol = NULL;
    kp_status st = kp_policy_load(ctx, path, &pol, NULL);
    if (st != KP_OK)
        fail_msg("%s", kp_ctx_last_error(ctx));
    const kp_chain_policy *c = kp_policy_chain(pol, "tde");
    assert_int_equal(c->nazure_sql, 2);
    assert_string_equal(c->azure_sql[0].server, "sql-east");
    assert_string_equal(c->azure_sql[0].resource_group, "rg-prod(eu)");
    assert_string_equal(c->azure_sql[0].subscription, "0A0A0A0A-0000-4000-8000-00000000000A");
    assert_string_equal(c->azure_sql[0].vault, "kv-east");
    assert_string_equal(c->azure_sql[1].server, "sql-west");
    assert_string_equal(c->azure_sql[1].vault, "kv-west");
    assert_int_equal(kp_policy_chain(pol, "other")->nazure_sql, 0);
    assert_null(kp_policy_chain(pol, "other")->azure_sql);
    kp_policy_free(pol);
    kp_ctx_free(ctx);
    free(path);
    kp_test_rmtree(dir);
    free(dir);
}

/* diags joined as "L:C: msg\n" (caller frees), each one about file. */
static char *s_diag_text(const kp_diag_list *diags, const char *file)
{
    size_t cap = 64 * 1024, n = 0;
    char *out = calloc(1, cap);
    assert_non_null(out);
    for (size_t i = 0; i < kp_diag_count(diags); i++) {
        const kp_diag *d = kp_diag_get0(diags, i);
        assert_string_equal(d->file, file);
        n += (size_t)snprintf(out + n, cap - n, "%u:%u: %s\n", d->line, d->column, d->message);
        assert_true(n < cap);
    }
    return out;
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
    char *out = s_diag_text(diags, path);
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

/* Loads text from memory (kp__policy_load_buffer, the fuzz target's entry) with the plugins of
 * plugin_dir (NULL: the build's) and returns every diagnostic as "L:C: msg\n"; *st the status. */
static char *s_buf_diags(const char *text, const char *plugin_dir, kp_status *st)
{
    kp_ctx *ctx = kp_test_ctx(plugin_dir);
    assert_non_null(ctx);
    kp_policy *pol = NULL;
    kp_diag_list *diags = NULL;
    *st = kp__policy_load_buffer(ctx, "<mem>", text, strlen(text), &pol, &diags);
    char *out = s_diag_text(diags, "<mem>");
    kp_policy_free(pol);
    kp_diag_list_free(diags);
    kp_ctx_free(ctx);
    return out;
}

/* The diagnostics of text are exactly want (every line, in order). */
static void s_exactly(const char *text, const char *want)
{
    kp_status st = KP_OK;
    char *got = s_buf_diags(text, NULL, &st);
    assert_int_equal(st, want[0] != '\0' ? KP_ERR_CONFIG : KP_OK);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "want:\n%sgot:\n%s", want, got); /* cmocka cuts long messages */
        fail();
    }
    free(got);
}

#define S_HEAD                                                                                     \
    "version: 1\n"                                                                                 \
    "providers:\n"                                                                                 \
    "  a: {plugin: file, path: /x, passphrase: env:P}\n"

/* Aliases are counted where they are used: one alias that repeats a big list, or nested
 * aliases that multiply, stop the load at the alias that passes the bound, with one error. */
static void test_alias_bombs(void **state)
{
    (void)state;
    /* billion laughs: 10^9 nodes once expanded */
    char text[4096];
    size_t n =
        (size_t)snprintf(text, sizeof(text), S_HEAD "x-l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
    for (int i = 1; i < 9; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "x-l%d: &l%d [", i, i);
        for (int j = 0; j < 10; j++)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s*l%d", j > 0 ? ", " : "", i - 1);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "]\n");
    }
    /* x-l5's 8th alias passes 1000000: 13 + 5 keys + 11 + ... + 111111 + 1 + 8 * 111111 */
    s_exactly(text, "9:47: more than 1000000 YAML nodes once aliases are expanded (an alias "
                    "counts as every node it repeats)\n");
    /* one list of 3000 entries, repeated by chains: the 334th use (c333) passes the bound */
    size_t cap = 64 * 1024;
    char *big = malloc(cap);
    n = (size_t)snprintf(big, cap, S_HEAD "x-r: &r [");
    for (int i = 0; i < 3000; i++)
        n += (size_t)snprintf(big + n, cap - n, "%sa", i > 0 ? "," : "");
    n += (size_t)snprintf(big + n, cap - n, "]\nchains:\n");
    for (int i = 0; i < 400; i++)
        n += (size_t)snprintf(big + n, cap - n, "  c%d: {replicas: *r}\n", i);
    assert_true(n < cap);
    s_exactly(big,
              "337:20: more than 1000000 YAML nodes once aliases are expanded (an alias counts "
              "as every node it repeats)\n");
    free(big);
    s_exactly(S_HEAD "x-loop: &l {a: [*l]}\n",
              "4:17: an alias refers to a collection that contains it\n");
}

/* An alias within the bounds is read like the text it repeats. */
static void test_alias_within_bounds(void **state)
{
    (void)state;
    s_exactly("version: 1\n"
              "providers:\n"
              "  a: &store {plugin: file, path: /x, passphrase: env:P}\n"
              "  b: *store\n"
              "chains:\n"
              "  c1:\n"
              "    protector: &p {type: rsa, origin: a, exportable: true}\n"
              "    replicas: &r [a, b]\n"
              "  c2: {protector: *p, replicas: *r}\n",
              "");
}

/* Explicit tags are errors, on a value or on a collection, never ignored. */
static void test_tags_refused(void **state)
{
    (void)state;
    s_exactly("version: 1\nproviders:\n  a: {plugin: file, path: !!str /x, passphrase: env:P}\n",
              "3:27: explicit YAML tags (such as !!binary or !foo) are not allowed in a policy: "
              "write the value without one\n");
    s_exactly("version: !!int 1\nproviders: {}\n",
              "1:10: explicit YAML tags (such as !!binary or !foo) are not allowed in a policy: "
              "write the value without one\n");
    s_exactly("version: 1\nproviders: !local\n  a: {plugin: file}\n",
              "2:12: explicit YAML tags (such as !!binary or !foo) are not allowed in a policy: "
              "write the value without one\n");
}

/* At most KP__DIAG_MAX diagnostics, then one line counting the rest, where the first of them
 * was. */
static void test_diagnostics_capped(void **state)
{
    (void)state;
    size_t cap = 16 * 1024;
    char *text = malloc(cap);
    size_t n = (size_t)snprintf(text, cap, S_HEAD "chains:\n");
    for (int i = 0; i < KP__DIAG_MAX + 30; i++)
        n += (size_t)snprintf(text + n, cap - n, "  c%d: []\n", i);
    kp_status st;
    char *got = s_buf_diags(text, NULL, &st);
    assert_int_equal(st, KP_ERR_CONFIG);
    size_t lines = 0;
    for (const char *c = got; *c != '\0'; c++)
        lines += *c == '\n';
    assert_int_equal(lines, KP__DIAG_MAX + 1);
    char want[128];
    snprintf(want, sizeof(want), "%d:8: ... and 30 more errors\n", 5 + KP__DIAG_MAX);
    size_t lw = strlen(want), lg = strlen(got);
    if (lg < lw || strcmp(got + lg - lw, want) != 0)
        fail_msg("want last line '%s' in:\n%s", want, got);
    assert_non_null(strstr(got, "5:7: chain 'c0' must be a mapping\n"));
    free(got);
    free(text);
}

/* One bad instance is one error: the chains that name it do not each report it unknown. */
static void test_no_cascade(void **state)
{
    (void)state;
    s_exactly("version: 1\n"
              "providers:\n"
              "  a: {plugin: file, path: /x, passphrase: env:P}\n"
              "  b: {path: /y}\n"
              "  C: {plugin: file, path: /z, passphrase: env:P}\n"
              "chains:\n"
              "  c1: {protector: {type: rsa, origin: a, exportable: true}, replicas: [a, b, C]}\n"
              "  c2: {protector: {type: rsa, origin: b}, replicas: [b], escrow: [C]}\n",
              "4:6: instance 'b': missing required key 'plugin'\n"
              "5:3: invalid instance name 'C': use [a-z0-9_-], starting with a letter or digit, "
              "at most 63\n");
    /* a 'providers' that is not read at all: only its own error */
    s_exactly("version: 1\n"
              "providers:\n"
              "  a: {plugin: file, path: /x, passphrase: env:P}\n"
              "  a: {plugin: file, path: /y, passphrase: env:P}\n"
              "chains:\n"
              "  c: {protector: {type: rsa, origin: a}, replicas: [a]}\n",
              "4:3: duplicate key 'a' in 'providers' (first at line 3)\n");
    s_exactly("version: 1\nproviders: [a]\nchains:\n  c: {protector: {type: rsa, origin: a}, "
              "replicas: [a]}\n",
              "2:12: 'providers' must be a mapping\n");
}

/* Copies the build's file plugin into dir: a plugin directory whose plugins are known. */
static void s_copy_file_plugin(const char *dir)
{
    char from[1024], to[1024];
    snprintf(from, sizeof(from), "%s/file.so", KP_TEST_PLUGIN_DIR);
    snprintf(to, sizeof(to), "%s/file.so", dir);
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* A misspelt key, parameter, instance or plugin is named with what was probably meant. */
static void test_did_you_mean(void **state)
{
    (void)state;
    static const char *const regions[] = {"region-a", "region-b", "escrow"};
    assert_string_equal(kp__diag_suggest("regoin-a", regions, 3), "region-a");  /* swapped */
    assert_string_equal(kp__diag_suggest("escrw", regions, 3), "escrow");       /* left out */
    assert_string_equal(kp__diag_suggest("region-bb", regions, 3), "region-b"); /* added */
    assert_null(kp__diag_suggest("region-c", regions, 3)); /* as close to a as to b */
    assert_null(kp__diag_suggest("zzz", regions, 3));
    assert_null(kp__diag_suggest("", regions, 3));
    s_exactly(S_HEAD "chians: {}\n",
              "4:1: unknown key 'chians' (expected version, providers, chains); did you mean "
              "'chains'?\n");
    s_exactly("version: 1\nproviders:\n  a: {plugin: file, path: /x, pasphrase: env:P}\n",
              "3:31: instance 'a': unknown parameter 'pasphrase' for plugin 'file' (accepted: "
              "path, passphrase, kdf_iterations); did you mean 'passphrase'?\n"
              "3:6: instance 'a': missing required parameter 'passphrase' (encrypts private keys "
              "and secret values at rest)\n");
    s_exactly(S_HEAD "chains:\n  c:\n    protector: {type: rsa, orgin: a}\n    replica: [a]\n"
                     "    rotation: {evry: 1y}\n",
              "6:28: chain 'c': unknown key 'orgin' in protector (expected type, bits, origin, "
              "exportable); did you mean 'origin'?\n"
              "6:16: chain 'c': protector lacks required key 'origin'\n"
              "7:5: chain 'c': unknown key 'replica' (expected protector, replicas, escrow, "
              "restore_only, secret_replicas, secrets, algorithm, rotation, retention, "
              "azure_sql, certificate, sqlserver); did you mean 'replicas'?\n"
              "8:16: chain 'c': unknown key 'evry' in rotation (expected every, warn_before); did "
              "you mean 'every'?\n"
              "8:15: chain 'c': rotation needs 'every'\n"
              "6:5: chain 'c': missing required key 'replicas'\n");
    s_exactly("version: 1\nproviders:\n  region-a: {plugin: file, path: /x, passphrase: env:P}\n"
              "chains:\n  c: {protector: {type: rsa, origin: region-a}, replicas: [regoin-a, "
              "zzz]}\n",
              "5:60: chain 'c': replicas 'regoin-a' is not a provider instance of this policy; "
              "did you mean 'region-a'?\n"
              "5:70: chain 'c': replicas 'zzz' is not a provider instance of this policy\n");
    /* an unknown plugin: the nearest one, and every plugin the directories offer */
    char *dir = kp_test_tmpdir();
    s_copy_file_plugin(dir);
    kp_status st;
    char *got = s_buf_diags("version: 1\nproviders:\n  a: {plugin: fiel, path: /x}\n"
                            "  b: {plugin: nosuch}\n",
                            dir, &st);
    char want[2048];
    snprintf(want, sizeof(want),
             "3:15: instance 'a': unknown plugin 'fiel'; did you mean 'file'? available: file "
             "(plugin 'fiel' not found in 1 plugin directory)\n"
             "4:15: instance 'b': unknown plugin 'nosuch'; available: file (plugin 'nosuch' "
             "not found in 1 plugin directory)\n");
    if (strcmp(got, want) != 0)
        fail_msg("want:\n%sgot:\n%s", want, got);
    free(got);
    kp_test_rmtree(dir);
    free(dir);
}

/* One spelling of a boolean everywhere: true/yes/on and false/no/off in any letter case. */
static void test_booleans(void **state)
{
    (void)state;
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "NO", "off", "Off"};
    static const char *const neither[] = {"", "1", "0", "y", "n", "tru", "truee", "enabled"};
    bool b = false;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_true(kpk_param_bool(yes[i], &b));
        assert_true(b);
        assert_true(kpk_param_bool(no[i], &b));
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof(neither) / sizeof(neither[0]); i++)
        assert_false(kpk_param_bool(neither[i], &b));
    /* protector.exportable reads them the same */
    for (size_t i = 0; i < 2 * sizeof(yes) / sizeof(yes[0]); i++) {
        const char *v = i % 2 == 0 ? yes[i / 2] : no[i / 2];
        char text[512];
        snprintf(text, sizeof(text),
                 S_HEAD "chains:\n  c: {protector: {type: rsa, origin: a, exportable: %s}, "
                        "replicas: [a]}\n",
                 v);
        kp_ctx *ctx = kp_test_ctx(NULL);
        kp_policy *pol = NULL;
        assert_int_equal(kp__policy_load_buffer(ctx, "<mem>", text, strlen(text), &pol, NULL),
                         KP_OK);
        assert_int_equal(kp_policy_chain(pol, "c")->exportable, i % 2 == 0);
        kp_policy_free(pol);
        kp_ctx_free(ctx);
    }
    s_exactly(S_HEAD "chains:\n  c: {protector: {type: rsa, origin: a, exportable: 1}, "
                     "replicas: [a]}\n",
              "5:53: chain 'c': protector exportable must be true or false (or yes/no, "
              "on/off)\n");
}

/* A syntax error gives libyaml's fixed words and a position, never the text around it; a tab
 * in the indentation is named as such; an encoding error has its real position. */
static void test_syntax_errors_quote_nothing(void **state)
{
    (void)state;
    s_exactly(
        "version: 1\nproviders:\n  a: {plugin: file, passphrase: TopSecret: x}\n",
        "3:42: YAML syntax error: did not find expected ',' or '}' while parsing a flow mapping\n");
    s_exactly("version: 1\nproviders: [TopSecret\n",
              "3:1: YAML syntax error: did not find expected ',' or ']' while parsing a flow "
              "sequence\n");
    s_exactly("version: 1\nproviders:\n  a:\n  \t  plugin: file\n",
              "4:3: tabs are not allowed for indentation in YAML: indent with spaces\n");
    s_exactly("version: 1\nproviders:\n  a: {plugin: file, path: \"Top\xffSecret\"}\n",
              "3:31: YAML syntax error: invalid leading UTF-8 octet\n");
    s_exactly("version: 1\nx: &a 1\ny: &a 2\n",
              "3:4: YAML syntax error: second occurrence found duplicate anchor; first "
              "occurrence\n");
}

/* Duplicate keys are found by sorting: every later copy names the line of the first. */
static void test_duplicate_keys(void **state)
{
    (void)state;
    s_exactly("version: 1\nproviders:\n  b: {plugin: file}\n  a: {plugin: file}\n"
              "  b: {plugin: file}\n  [x]: {}\n  b: {plugin: file}\n",
              "5:3: duplicate key 'b' in 'providers' (first at line 3)\n"
              "6:3: keys of 'providers' must be plain names\n"
              "7:3: duplicate key 'b' in 'providers' (first at line 3)\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_policy),
        cmocka_unit_test(test_azure_sql),
        cmocka_unit_test(test_diagnostics),
        cmocka_unit_test(test_secret_value_not_echoed),
        cmocka_unit_test(test_paths_are_absolute_and_clean),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_alias_bombs),
        cmocka_unit_test(test_alias_within_bounds),
        cmocka_unit_test(test_tags_refused),
        cmocka_unit_test(test_diagnostics_capped),
        cmocka_unit_test(test_no_cascade),
        cmocka_unit_test(test_did_you_mean),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_syntax_errors_quote_nothing),
        cmocka_unit_test(test_duplicate_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
