/* The azure-keyvault plugin's authentication and transport rules, through libkeyplane, against
 * one emulated vault over real TLS (run_with_vault.sh --name kit starts it and exports KV_CA,
 * KV_KIT_URL and KP_VAULT_DIR; tests/support/kp_test_vault.h reads them): one token per instance
 * however many requests, a refresh after the vault revoked it, managed identity through the IMDS
 * endpoint, and the failures: a challenge for a foreign resource, an unknown managed identity, an
 * untrusted certificate, an unknown api-version, a vault that is down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kp_test_vault.h"

typedef kp_test_fx fx;

static kp_test_vault *s_vault;

/* An azure instance called name with extra YAML lines. */
static char *s_instance(const char *name, const char *url, const char *extra)
{
    char *out = NULL;
    assert_true(asprintf(&out,
                         "  %s:\n    plugin: azure-keyvault\n    vault_url: %s\n"
                         "    ca_bundle: %s\n    max_attempts: 2\n%s",
                         name, url, kp_test_vault_ca(), extra) > 0);
    return out;
}

static int setup(void **state)
{
    const char *url = kp_test_vault_url(s_vault);
    setenv("KP_TEST_AZ_SECRET", "kp-secret", 1);
    char *cs = NULL, *mi = NULL, *mi_bad = NULL, *strict = NULL, *api = NULL, *policy = NULL;
    char *creds = NULL, *imds = NULL, *imds_bad = NULL;
    assert_true(asprintf(&creds,
                         "    tenant: 00000000-0000-0000-0000-000000000001\n"
                         "    client_id: kp-client\n    client_secret: env:KP_TEST_AZ_SECRET\n"
                         "    authority: %s\n",
                         url) > 0);
    assert_true(asprintf(&imds,
                         "    auth: managed_identity\n    verify_challenge_resource: false\n"
                         "    imds_endpoint: %s/metadata/identity/oauth2/token\n",
                         url) > 0);
    assert_true(asprintf(&imds_bad,
                         "%s    managed_identity_client_id: 11111111-2222-3333-4444-555555555555\n",
                         imds) > 0);
    char *cs_extra = NULL, *api_extra = NULL;
    assert_true(asprintf(&cs_extra, "%s    verify_challenge_resource: false\n", creds) > 0);
    assert_true(asprintf(&api_extra,
                         "%s    verify_challenge_resource: false\n    api_version: 1.0\n",
                         creds) > 0);
    cs = s_instance("cs", url, cs_extra);
    mi = s_instance("mi", url, imds);
    mi_bad = s_instance("mibad", url, imds_bad);
    strict = s_instance("strict", url, creds); /* verify_challenge_resource defaults to true */
    api = s_instance("oldapi", url, api_extra);
    char *badca = NULL, *down = NULL;
    char *badca_extra = NULL;
    assert_true(asprintf(&badca_extra, "%s    verify_challenge_resource: false\n", creds) > 0);
    /* a certificate from another CA: /etc/ssl/certs has public roots only */
    assert_true(asprintf(&badca,
                         "  badca:\n    plugin: azure-keyvault\n    vault_url: %s\n"
                         "    ca_bundle: /etc/ssl/certs/ca-certificates.crt\n%s",
                         url, badca_extra) > 0);
    down = s_instance("down", "https://127.0.0.1:9", cs_extra);
    assert_true(asprintf(&policy, "version: 1\nproviders:\n%s%s%s%s%s%s%s", cs, mi, mi_bad, strict,
                         api, badca, down) > 0);
    fx *f = kp_test_fx_new(sizeof(fx), NULL, 0);
    kp_test_fx_load(f, policy);
    free(policy);
    free(cs);
    free(mi);
    free(mi_bad);
    free(strict);
    free(api);
    free(badca);
    free(down);
    free(creds);
    free(imds);
    free(imds_bad);
    free(cs_extra);
    free(api_extra);
    free(badca_extra);
    *state = f;
    return 0;
}

/* Live tokens the vault has issued (its persisted tokens.json). */
static size_t s_tokens(void)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/kit.state/tokens.json", kp_test_vault_dir()) > 0);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    free(p);
    size_t n = json_is_object(j) ? json_object_size(j) : 0;
    json_decref(j);
    return n;
}

static kp_secret *s_dek(void)
{
    kp_secret *dek = kp_secret_new(32);
    for (size_t i = 0; i < 32; i++)
        kp_secret_data(dek)[i] = (unsigned char)(i * 7 + 1);
    return dek;
}

static void s_roundtrip(fx *f, kp_instance *inst, const char *name, size_t modulus)
{
    kp_secret *dek = s_dek(), *back = NULL;
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    if (kp_key_wrap(inst, name, 0, KP_WRAP_RSA_OAEP_SHA256, dek, &ct, &ctlen) != KP_OK)
        fail_msg("wrap: %s", kp_ctx_last_error(f->ctx));
    assert_int_equal(ctlen, modulus);
    if (kp_key_unwrap(inst, name, 0, KP_WRAP_RSA_OAEP_SHA256, ct, ctlen, &back) != KP_OK)
        fail_msg("unwrap: %s", kp_ctx_last_error(f->ctx));
    assert_int_equal(kp_secret_len(back), 32);
    assert_memory_equal(kp_secret_data(back), kp_secret_data(dek), 32);
    kp_secret_free(back);
    kp_secret_free(dek);
    kp_free(ct);
}

/* An RSA key of bits made in the vault through inst. */
static kp_key_info s_create(fx *f, kp_instance *inst, const char *name, uint32_t bits)
{
    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = name, .type = KP_KEY_RSA, .bits = bits};
    kp_key_info info;
    if (kp_key_create(inst, &spec, &info) != KP_OK)
        fail_msg("create %s: %s", name, kp_ctx_last_error(f->ctx));
    return info;
}

static void test_token_cached_and_refreshed(void **state)
{
    fx *f = *state;
    kp_instance *cs = NULL;
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "cs", &cs), KP_OK);
    size_t before = s_tokens();
    kp_key_info info = s_create(f, cs, "auth1", 2048);
    assert_int_equal(info.version, 1);
    assert_int_equal(strlen(info.fingerprint), 64);
    for (int i = 0; i < 3; i++)
        s_roundtrip(f, cs, "auth1", 256);
    assert_int_equal(s_tokens(), before + 1); /* eight requests, one token */

    /* the cached token is now refused with 401: refreshed once, transparently */
    kp_test_vault_revoke_tokens(s_vault);
    assert_int_equal(s_tokens(), 0);
    s_roundtrip(f, cs, "auth1", 256);
    assert_int_equal(s_tokens(), 1);
    kp_instance_close(cs);
}

static void test_managed_identity(void **state)
{
    fx *f = *state;
    kp_instance *mi = NULL;
    assert_int_equal(kp_instance_open(f->ctx, f->pol, "mi", &mi), KP_OK);
    kp_key_info info = s_create(f, mi, "auth-mi", 3072);
    assert_int_equal(info.bits, 3072);
    s_roundtrip(f, mi, "auth-mi", 384);
    kp_instance_close(mi);

    assert_int_equal(kp_instance_open(f->ctx, f->pol, "mibad", &mi), KP_OK);
    kp_key_info got;
    assert_int_equal(kp_key_info_get(mi, "auth-mi", 0, &got), KP_ERR_AUTH);
    const char *e = kp_ctx_last_error(f->ctx);
    if (strstr(e, "token request to") == NULL || strstr(e, "HTTP 400") == NULL)
        fail_msg("unexpected error: %s", e);
    kp_instance_close(mi);
}

static void s_expect(fx *f, const char *instance, kp_status want, const char *text)
{
    kp_instance *inst = NULL;
    assert_int_equal(kp_instance_open(f->ctx, f->pol, instance, &inst), KP_OK);
    kp_key_info got;
    kp_status st = kp_key_info_get(inst, "auth1", 0, &got);
    const char *e = kp_ctx_last_error(f->ctx);
    if (st != want || strstr(e, text) == NULL)
        fail_msg("%s: got %s '%s', want %s '%s'", instance, kp_status_name(st), e,
                 kp_status_name(want), text);
    kp_instance_close(inst);
}

static void test_failures(void **state)
{
    fx *f = *state;
    /* the emulator's challenge names https://vault.azure.net, not a parent of 127.0.0.1 */
    s_expect(f, "strict", KP_ERR_AUTH, "not a parent domain of 127.0.0.1");
    s_expect(f, "badca", KP_ERR_INTEGRITY, "127.0.0.1");
    s_expect(f, "oldapi", KP_ERR_BACKEND, "BadParameter");
    s_expect(f, "down", KP_ERR_UNAVAILABLE, "127.0.0.1:9");
    /* a vault failing the very first (challenge) request is unavailable, not an auth problem */
    kp_test_vault_faults(s_vault, "{\"sequence\":[\"503\",\"503\"],\"retry_after\":0}");
    s_expect(f, "cs", KP_ERR_UNAVAILABLE, "(after 2 attempts)");
    kp_test_vault_faults(s_vault, "{}");
}

static int s_group_setup(void **state)
{
    (void)state;
    s_vault = kp_test_vault_open("kit");
    return 0;
}

static int s_group_teardown(void **state)
{
    (void)state;
    kp_test_vault_close(s_vault);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        KP_TEST_FX(test_token_cached_and_refreshed, setup),
        KP_TEST_FX(test_managed_identity, setup),
        KP_TEST_FX(test_failures, setup),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
