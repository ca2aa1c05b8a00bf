/*
 * azure.abi: the azure-keyvault plugin's ABI 1.0 functions, against one emulated vault
 * (run_with_vault.sh starts it).
 *
 * 1. Loaded directly (dlopen, the support library's minimal core): PLUGIN_INFO needs ABI 1.0;
 *    PLUGIN_DESCRIBE says what INSTANCE_INFO says, from the params (refusing contradicting ones
 *    without reading secrets); PLUGIN_CHECK_KEY applies the domain rules with no vault:
 *    RSA-4096, AES, a name with '_', a vault name plus key name over 94 characters are refused
 *    with one line naming the rule; a bad vault_url is a config error.
 * 2. Through libkeyplane: INSTANCE_INFO; KS_GET by version and latest (fingerprint = the public
 *    key's, backend_id = the versioned kid, expires from attributes.exp); KS_LIST in order; a
 *    version whose kp-fpr tag does not match its key is seen by no reader.
 * 3. The negotiated import (Key Vault BYOK): an offer (KEK SPKI + its kid as token); a blob
 *    holding another key than spec.fingerprint is refused with KP_ERR_INTEGRITY, left disabled
 *    and unlabelled in the vault, and KS_GET/KS_LIST never show it; the right key then imports
 *    as that version and unwraps what its public key wrapped; another method, a foreign token
 *    and a taken version are refused. A JWK import of the wrong key sends nothing.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "azure_vault.h"

#define S_NOT(x) ((x) ? (void)0 : kp_test_fail("%s:%d: %s", __FILE__, __LINE__, #x))
#define S_OK(st)                                                                                   \
    do {                                                                                           \
        kp_status s_ = (st);                                                                       \
        if (s_ != KP_OK)                                                                           \
            kp_test_fail("%s:%d: %s: %s: %s", __FILE__, __LINE__, #st, kp_status_name(s_),         \
                         kp_ctx_last_error(kp_test_akv_ctx()));                                    \
    } while (0)
#define S_IS(st, want)                                                                             \
    do {                                                                                           \
        kp_status s_ = (st);                                                                       \
        if (s_ != (want))                                                                          \
            kp_test_fail("%s:%d: %s: %s, want %s: %s", __FILE__, __LINE__, #st,                    \
                         kp_status_name(s_), kp_status_name(want),                                 \
                         kp_ctx_last_error(kp_test_akv_ctx()));                                    \
    } while (0)

/* ---- 1. the plugin on its own ------------------------------------------------------------ */

typedef struct s_direct {
    void *so, *ctx;
    const kp_dispatch *table;
} s_direct;

static kp_fn s_fn(const s_direct *d, uint32_t id)
{
    const kp_dispatch *e = kp_dispatch_find(d->table, id);
    if (e == NULL)
        kp_test_fail("the plugin has no function %u", id);
    return e->fn;
}

/* st must be want with one line holding text. */
static void s_refused(kp_status st, kp_status want, const char *text, const char *what)
{
    const char *err = kp_test_upcall_error();
    printf("  check_key %-24s %s: %s\n", what, kp_status_name(st), err);
    if (st != want)
        kp_test_fail("check_key %s: %s, want %s", what, kp_status_name(st), kp_status_name(want));
    if (strstr(err, text) == NULL || strchr(err, '\n') != NULL)
        kp_test_fail("check_key %s: the reason is not one line saying \"%s\": %s", what, text, err);
}

static kp_status s_check(const s_direct *d, const kp_param *params, const char *name, uint32_t type,
                         uint32_t bits)
{
    kp_key_spec spec = {.struct_size = sizeof(spec), .name = name, .type = type, .bits = bits};
    kp_test_upcall_error_clear();
    return ((kp_plugin_check_key_fn *)s_fn(d, KP_FN_PLUGIN_CHECK_KEY))(d->ctx, params, &spec);
}

static void s_expect_info(const kp_instance_info *i, const char *who)
{
    uint32_t oaep = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256);
    if (i->capabilities != KP_CAP_KEYSTORE || i->wrap_algs != oaep ||
        i->unwrap_algs != (oaep | KP_ALG_BIT(KP_WRAP_RSA_PKCS1)) ||
        i->key_bits != (KP_RSA_2048 | KP_RSA_3072) || i->export_keyx != 0 ||
        i->import_keyx != KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1) || i->flags != KP_INST_NO_EXPORT ||
        i->secret_max != 0)
        kp_test_fail("%s: caps 0x%x wrap 0x%x unwrap 0x%x bits 0x%x export 0x%x import 0x%x "
                     "flags 0x%x",
                     who, i->capabilities, i->wrap_algs, i->unwrap_algs, i->key_bits,
                     i->export_keyx, i->import_keyx, i->flags);
}

static void s_plugin_alone(void)
{
    s_direct d = {0};
    kp_plugin_init_fn *init = kp_test_plugin_init(KP_TEST_PLUGIN_DIR "/azure-keyvault.so", &d.so);
    kp_core_info core = {.struct_size = sizeof(core),
                         .abi_major = KP_ABI_MAJOR,
                         .abi_minor = KP_ABI_MINOR,
                         .upcalls = kp_test_upcalls,
                         .handle = NULL};
    S_NOT(init(&core, &d.table, &d.ctx) == KP_OK);
    const kp_plugin_info *pi = ((kp_plugin_info_fn *)s_fn(&d, KP_FN_PLUGIN_INFO))(d.ctx);
    S_NOT(pi->abi_major == 1 && pi->abi_minor == 0 && pi->capabilities == KP_CAP_KEYSTORE);

    /* tde-east (8 characters) leaves 86 for the key name */
    const kp_param params[] = {
        {.name = "vault_url", .type = KP_PARAM_STRING, .str = "https://tde-east.vault.azure.net"},
        {.name = NULL}};
    const kp_param prefixed[] = {
        {.name = "vault_url", .type = KP_PARAM_STRING, .str = "https://tde-east.vault.azure.net"},
        {.name = "key_prefix", .type = KP_PARAM_STRING, .str = "kp-"},
        {.name = NULL}};
    const kp_param half_auth[] = {
        {.name = "vault_url", .type = KP_PARAM_STRING, .str = "https://tde-east.vault.azure.net"},
        {.name = "auth", .type = KP_PARAM_STRING, .str = "client_secret"},
        {.name = "client_secret", .type = KP_PARAM_SECRET, .str = "env:X"}, /* not read */
        {.name = NULL}};
    const kp_param broken[] = {
        {.name = "vault_url", .type = KP_PARAM_STRING, .str = "http://tde-east.vault.azure.net"},
        {.name = NULL}};

    kp_instance_info info = {.struct_size = sizeof(info)};
    kp_plugin_describe_fn *describe = (kp_plugin_describe_fn *)s_fn(&d, KP_FN_PLUGIN_DESCRIBE);
    S_NOT(describe(d.ctx, params, &info) == KP_OK);
    s_expect_info(&info, "PLUGIN_DESCRIBE");
    S_NOT(info.struct_size == sizeof(info));
    /* a shorter caller struct is written only as far as it reaches */
    kp_instance_info small;
    memset(&small, 0xee, sizeof small);
    small.struct_size = offsetof(kp_instance_info, key_bits);
    S_NOT(describe(d.ctx, params, &small) == KP_OK);
    S_NOT(small.unwrap_algs != 0 && small.key_bits == 0xeeeeeeeeu);
    S_NOT(describe(d.ctx, broken, &info) == KP_ERR_CONFIG &&
          strstr(kp_test_upcall_error(), "https://") != NULL);
    S_NOT(describe(d.ctx, half_auth, &info) == KP_ERR_CONFIG &&
          strstr(kp_test_upcall_error(), "client_id") != NULL);

    char longest[128];
    memset(longest, 'k', 86);
    longest[86] = '\0';
    S_NOT(s_check(&d, params, "tde", KP_KEY_RSA, 2048) == KP_OK);
    S_NOT(s_check(&d, params, "tde", KP_KEY_RSA, 3072) == KP_OK);
    S_NOT(s_check(&d, params, "tde", KP_KEY_RSA, 0) == KP_OK); /* size from the import */
    S_NOT(s_check(&d, params, longest, KP_KEY_RSA, 2048) == KP_OK);
    s_refused(s_check(&d, params, "tde", KP_KEY_RSA, 4096), KP_ERR_UNSUPPORTED,
              "Azure SQL TDE protectors in Key Vault are RSA 2048 or 3072", "RSA-4096");
    s_refused(s_check(&d, params, "tde", KP_KEY_AES, 256), KP_ERR_UNSUPPORTED, "only RSA keys",
              "AES-256");
    s_refused(s_check(&d, params, "bad_name", KP_KEY_RSA, 2048), KP_ERR_INVALID_ARG,
              "only letters, digits and '-'", "name bad_name");
    s_refused(s_check(&d, params, "tde.1", KP_KEY_RSA, 2048), KP_ERR_INVALID_ARG,
              "only letters, digits and '-'", "name tde.1");
    s_refused(s_check(&d, prefixed, longest, KP_KEY_RSA, 2048), KP_ERR_INVALID_ARG, "at most 94",
              "86 + prefix kp-");
    strcat(longest, "k");
    s_refused(s_check(&d, params, longest, KP_KEY_RSA, 2048), KP_ERR_INVALID_ARG, "at most 94",
              "name of 87");
    s_refused(s_check(&d, broken, "tde", KP_KEY_RSA, 2048), KP_ERR_CONFIG, "https://",
              "http:// vault");
    kp_key_spec tiny = {.struct_size = 8, .name = "tde"}; /* not a spec */
    S_NOT(((kp_plugin_check_key_fn *)s_fn(&d, KP_FN_PLUGIN_CHECK_KEY))(d.ctx, params, &tiny) ==
          KP_ERR_INVALID_ARG);

    ((kp_plugin_teardown_fn *)s_fn(&d, KP_FN_PLUGIN_TEARDOWN))(d.ctx);
    dlclose(d.so);
    printf("azure.abi: plugin alone: info, describe and check_key rules hold\n");
}

/* ---- 2. INSTANCE_INFO, KS_GET, KS_LIST ------------------------------------------------- */

typedef struct s_seen {
    uint32_t versions[16];
    size_t n;
} s_seen;

static kp_status s_visit(void *arg, const kp_key_info *info)
{
    s_seen *s = arg;
    if (info->struct_size != sizeof(kp_key_info))
        kp_test_fail("a listed info has struct_size %u", info->struct_size);
    if (s->n < 16)
        s->versions[s->n++] = info->version;
    return KP_OK;
}

/* The versions KS_LIST shows for name ("" when none: KP_ERR_NOT_FOUND). */
static void s_listed(kp_instance *inst, const char *name, char *out, size_t outlen)
{
    s_seen seen = {{0}, 0};
    kp_status st = kp_key_list(inst, name, s_visit, &seen);
    out[0] = '\0';
    if (st == KP_ERR_NOT_FOUND)
        return;
    S_OK(st);
    for (size_t i = 0; i < seen.n; i++)
        snprintf(out + strlen(out), outlen - strlen(out), "%sv%u", i > 0 ? "," : "",
                 seen.versions[i]);
}

/* The vault's version id of name/version (from the backend id, a versioned kid). */
static const char *s_azver(const kp_key_info *info)
{
    const char *slash = strrchr(info->backend_id, '/');
    S_NOT(slash != NULL && strlen(slash + 1) == 32);
    return slash + 1;
}

static void s_get_and_list(kp_instance *inst)
{
    const kp_instance_info *ii = kp_instance_get0_info(inst);
    S_NOT(ii != NULL);
    s_expect_info(ii, "INSTANCE_INFO");
    S_NOT(kp_instance_capabilities(inst) == KP_CAP_KEYSTORE);
    S_NOT(kp_key_transfer_method(inst, inst) == 0); /* a vault exports nothing */

    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = "abi", .type = KP_KEY_RSA, .bits = 2048};
    kp_key_info v1, v2, got;
    S_OK(kp_key_create(inst, &spec, &v1));
    spec.bits = 3072;
    S_OK(kp_key_create(inst, &spec, &v2));
    S_NOT(v1.version == 1 && v2.version == 2 && v2.bits == 3072);
    spec.bits = 4096;
    S_IS(kp_key_create(inst, &spec, &got), KP_ERR_UNSUPPORTED);
    S_NOT(strstr(kp_ctx_last_error(kp_test_akv_ctx()), "RSA 2048 or 3072") != NULL);

    kp_instance *fresh = kp_test_akv_open("vault1"); /* nothing cached */
    S_OK(kp_key_info_get(fresh, "abi", 1, &got));
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    char fpr[KPK_FPR_HEX], kid[512];
    S_OK(kp_key_get_public(fresh, "abi", 1, &spki, &spki_len));
    S_OK(kp_fingerprint_spki(spki, spki_len, fpr));
    kp_free(spki);
    snprintf(kid, sizeof kid, "%s/keys/abi/", getenv("KV_VAULT1_URL"));
    S_NOT(got.version == 1 && got.bits == 2048 && got.type == KP_KEY_RSA &&
          got.state == KP_KEY_ENABLED && got.created > 0 && got.expires == 0);
    S_NOT(strcmp(got.fingerprint, fpr) == 0 && strcmp(got.fingerprint, v1.fingerprint) == 0);
    S_NOT(strncmp(got.backend_id, kid, strlen(kid)) == 0 &&
          strlen(got.backend_id) == strlen(kid) + 32);
    S_OK(kp_key_info_get(fresh, "abi", 0, &got)); /* the latest */
    S_NOT(got.version == 2 && got.bits == 3072 && strcmp(got.fingerprint, v2.fingerprint) == 0);
    S_IS(kp_key_info_get(fresh, "abi", 9, &got), KP_ERR_NOT_FOUND);
    S_IS(kp_key_info_get(fresh, "nothing-here", 0, &got), KP_ERR_NOT_FOUND);
    char listed[128];
    s_listed(fresh, "abi", listed, sizeof listed);
    S_NOT(strcmp(listed, "v1,v2") == 0);
    kp_instance_close(fresh);

    /* an expiry set in the vault shows as expires */
    char path[256], body[128];
    long exp = (long)time(NULL) + 86400;
    snprintf(path, sizeof path, "/keys/abi/%s", s_azver(&v1));
    snprintf(body, sizeof body, "{\"attributes\":{\"exp\":%ld}}", exp);
    S_NOT(kp_test_vault_rest(kp_test_akv_vault(), "PATCH", path, body, NULL) == 200);
    /* a kp-fpr label that is not the key's own: that version is seen by no reader */
    snprintf(path, sizeof path, "/keys/abi/%s", s_azver(&v2));
    snprintf(body, sizeof body,
             "{\"tags\":{\"kp-chain\":\"abi\",\"kp-version\":\"2\","
             "\"kp-fpr\":\"%.64s\"}}",
             v1.fingerprint);
    S_NOT(kp_test_vault_rest(kp_test_akv_vault(), "PATCH", path, body, NULL) == 200);
    fresh = kp_test_akv_open("vault1");
    S_OK(kp_key_info_get(fresh, "abi", 1, &got));
    S_NOT(got.expires == exp);
    S_IS(kp_key_info_get(fresh, "abi", 2, &got), KP_ERR_NOT_FOUND);
    S_OK(kp_key_info_get(fresh, "abi", 0, &got));
    S_NOT(got.version == 1);
    s_listed(fresh, "abi", listed, sizeof listed);
    S_NOT(strcmp(listed, "v1") == 0);
    kp_instance_close(fresh);
    printf("azure.abi: instance info, KS_GET (by version, latest, expiry) and KS_LIST hold; a "
           "mislabelled version is invisible\n");
}

/* ---- 3. negotiated import --------------------------------------------------------------- */

/* The versions of the vault key name behind keyplane's back: count, and how many are enabled
 * and labelled (kp-version) or rejected (kp-rejected, disabled). */
static void s_vault_versions(const char *name, int *n, int *labelled, int *rejected)
{
    char path[256];
    json_t *j = NULL, *it;
    size_t i;
    snprintf(path, sizeof path, "/keys/%s/versions", name);
    long status = kp_test_vault_rest(kp_test_akv_vault(), "GET", path, NULL, &j);
    *n = *labelled = *rejected = 0;
    if (status == 404) {
        json_decref(j);
        return;
    }
    S_NOT(status == 200 && json_is_array(json_object_get(j, "value")));
    S_NOT(json_object_get(j, "nextLink") == NULL || json_is_null(json_object_get(j, "nextLink")));
    json_array_foreach(json_object_get(j, "value"), i, it)
    {
        const json_t *tags = json_object_get(it, "tags");
        bool enabled = json_is_true(json_object_get(json_object_get(it, "attributes"), "enabled"));
        (*n)++;
        if (json_object_get(tags, "kp-version") != NULL && enabled)
            (*labelled)++;
        if (json_object_get(tags, "kp-rejected") != NULL && !enabled &&
            json_object_get(tags, "kp-version") == NULL)
            (*rejected)++;
    }
    json_decref(j);
}

static void s_wrapped_import(kp_instance *inst)
{
    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = "byok", .type = KP_KEY_RSA, .bits = 2048};
    uint32_t methods = 0;
    int64_t expires = -1;
    uint8_t *wspki = NULL, *token = NULL;
    size_t wspki_len = 0, token_len = 0;
    S_OK(kp_key_import_offer(inst, &spec, &methods, &expires, &wspki, &wspki_len, &token,
                             &token_len));
    char tok[512], want[512];
    S_NOT(token_len > 0 && token_len < sizeof tok);
    memcpy(tok, token, token_len);
    tok[token_len] = '\0';
    snprintf(want, sizeof want, "%s/keys/byok-kek/", getenv("KV_VAULT1_URL"));
    S_NOT(methods == KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1) && expires == 0);
    S_NOT(strncmp(tok, want, strlen(want)) == 0 && strlen(tok) == strlen(want) + 32);
    /* a second offer reuses the key-exchange key */
    uint8_t *wspki2 = NULL, *token2 = NULL;
    size_t wspki2_len = 0, token2_len = 0;
    S_OK(kp_key_import_offer(inst, &spec, &methods, &expires, &wspki2, &wspki2_len, &token2,
                             &token2_len));
    S_NOT(wspki2_len == wspki_len && memcmp(wspki2, wspki, wspki_len) == 0 &&
          token2_len == token_len && memcmp(token2, token, token_len) == 0);
    kp_free(wspki2);
    kp_free(token2);

    EVP_PKEY *k1 = kp_test_akv_rsa(2048), *k2 = kp_test_akv_rsa(2048);
    uint8_t *k1_spki = NULL, *k2_spki = NULL, *blob = NULL;
    size_t k1_len = 0, k2_len = 0, bloblen = 0;
    char fpr1[KPK_FPR_HEX], fpr2[KPK_FPR_HEX], listed[128];
    kp_test_akv_spki(k1, &k1_spki, &k1_len, fpr1);
    kp_test_akv_spki(k2, &k2_spki, &k2_len, fpr2);
    kp_test_akv_keyx_blob(wspki, wspki_len, k1, &blob, &bloblen);
    kp_key_info info;

    /* the blob holds k1, the caller expects k2 */
    spec.fingerprint = fpr2;
    S_IS(kp_key_import_wrapped(inst, &spec, KP_KEYX_RSA_AES_KWP_SHA1, token, token_len, blob,
                               bloblen, &info),
         KP_ERR_INTEGRITY);
    printf("  mismatching import: %s\n", kp_ctx_last_error(kp_test_akv_ctx()));
    kp_instance *fresh = kp_test_akv_open("vault1");
    kp_instance *views[] = {inst, fresh};
    for (size_t i = 0; i < 2; i++) {
        S_IS(kp_key_info_get(views[i], "byok", 1, &info), KP_ERR_NOT_FOUND);
        S_IS(kp_key_info_get(views[i], "byok", 0, &info), KP_ERR_NOT_FOUND);
        s_listed(views[i], "byok", listed, sizeof listed);
        S_NOT(listed[0] == '\0');
    }
    int n, labelled, rejected;
    s_vault_versions("byok", &n, &labelled, &rejected);
    S_NOT(n == 1 && labelled == 0 && rejected == 1); /* left there, disabled, never deleted */

    /* refusals before anything is sent */
    spec.fingerprint = fpr1;
    S_IS(kp_key_import_wrapped(inst, &spec, KP_KEYX_RSA_AES_KWP_SHA256, token, token_len, blob,
                               bloblen, &info),
         KP_ERR_UNSUPPORTED);
    const char *foreign = "https://127.0.0.1/keys/other-kek/0123456789abcdef0123456789abcdef";
    S_IS(kp_key_import_wrapped(inst, &spec, KP_KEYX_RSA_AES_KWP_SHA1, (const uint8_t *)foreign,
                               strlen(foreign), blob, bloblen, &info),
         KP_ERR_INVALID_ARG);
    S_IS(kp_key_import_wrapped(inst, &spec, KP_KEYX_RSA_AES_KWP_SHA1, token, token_len - 1, blob,
                               bloblen, &info),
         KP_ERR_INVALID_ARG);
    spec.fingerprint = NULL;
    S_IS(kp_key_import_wrapped(inst, &spec, KP_KEYX_RSA_AES_KWP_SHA1, token, token_len, blob,
                               bloblen, &info),
         KP_ERR_INVALID_ARG);
    s_vault_versions("byok", &n, &labelled, &rejected);
    S_NOT(n == 1);

    /* the right key takes the number the refused one could not */
    spec.fingerprint = fpr1;
    S_OK(kp_key_import_wrapped(inst, &spec, KP_KEYX_RSA_AES_KWP_SHA1, token, token_len, blob,
                               bloblen, &info));
    S_NOT(info.version == 1 && strcmp(info.fingerprint, fpr1) == 0 && info.bits == 2048);
    S_OK(kp_key_info_get(fresh, "byok", 0, &info));
    S_NOT(info.version == 1 && strcmp(info.fingerprint, fpr1) == 0);
    s_listed(fresh, "byok", listed, sizeof listed);
    S_NOT(strcmp(listed, "v1") == 0);
    s_vault_versions("byok", &n, &labelled, &rejected);
    S_NOT(n == 2 && labelled == 1 && rejected == 1);
    /* it is k1: the vault unwraps what k1's public key wrapped */
    kp_secret *dek = kp_test_akv_random_dek(32), *back = NULL;
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    kp_test_akv_local_wrap(k1_spki, k1_len, dek, &ct, &ctlen);
    S_OK(kp_key_unwrap(fresh, "byok", 1, KP_WRAP_RSA_OAEP_SHA256, ct, ctlen, &back));
    S_NOT(kp_secret_equal(back, dek));
    /* the number is taken now */
    spec.version = 1;
    S_IS(kp_key_import_wrapped(inst, &spec, KP_KEYX_RSA_AES_KWP_SHA1, token, token_len, blob,
                               bloblen, &info),
         KP_ERR_EXISTS);
    kp_instance_close(fresh);

    /* a plain (JWK) import of k1 expected to be k2 sends nothing at all */
    kp_secret *p8 = kp_test_akv_pkcs8(k1);
    kp_key_spec jspec = {
        .struct_size = sizeof(jspec), .name = "jwk", .type = KP_KEY_RSA, .fingerprint = fpr2};
    S_IS(kp_key_import(inst, &jspec, p8, &info), KP_ERR_INTEGRITY);
    s_vault_versions("jwk", &n, &labelled, &rejected);
    S_NOT(n == 0);
    jspec.fingerprint = fpr1;
    S_OK(kp_key_import(inst, &jspec, p8, &info));
    S_NOT(info.version == 1 && strcmp(info.fingerprint, fpr1) == 0);
    s_vault_versions("jwk", &n, &labelled, &rejected);
    S_NOT(n == 1 && labelled == 1);

    kp_secret_free(p8);
    kp_secret_free(dek);
    kp_secret_free(back);
    free(ct);
    free(blob);
    free(k1_spki);
    free(k2_spki);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    kp_free(wspki);
    kp_free(token);
    printf("azure.abi: negotiated import: a wrong key is refused, disabled and invisible; the "
           "right one imports as that version\n");
}

int main(void)
{
    s_plugin_alone();
    kp_test_akv_init();
    kp_test_vault_faults(kp_test_akv_vault(), "{}");
    kp_instance *inst = kp_test_akv_open("vault1");
    s_get_and_list(inst);
    s_wrapped_import(inst);
    kp_instance_close(inst);
    kp_test_akv_done();
    printf("azure.abi: PASS\n");
    return 0;
}
