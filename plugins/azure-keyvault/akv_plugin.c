/*
 * The `azure-keyvault` plugin: entry point, description, parameters and instance lifecycle.
 *
 * Opening an instance checks and copies its parameters and contacts nothing; the first
 * operation learns the vault's challenge and gets a token, so a policy naming a vault that is
 * down still loads and `keyplane check` can say what is wrong.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akv_internal.h"

static kp_plugin_info_fn s_info;
static kp_plugin_teardown_fn s_teardown;
static kp_plugin_params_fn s_params;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;

static const kp_plugin_info s_plugin_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    .abi_minor = 0, /* the lowest minor this plugin needs: ABI 1.0 */
    .name = "azure-keyvault",
    .version = "0.1.0",
    .description = "keys in Azure Key Vault or Managed HSM (BYOK import, wrapKey/unwrapKey)",
    .capabilities = KP_CAP_KEYSTORE,
};

static const kp_param_desc s_param_list[] = {
    {"vault_url", KP_PARAM_STRING, KP_PARAM_REQUIRED, 0, 0,
     "https://NAME.vault.azure.net (or NAME.managedhsm.azure.net)"},
    {"auth", KP_PARAM_STRING, 0, 0, 0,
     "client_secret or managed_identity (default: client_secret when one is given)"},
    {"tenant", KP_PARAM_STRING, 0, 0, 0, "Entra ID tenant (default: the one the vault names)"},
    {"client_id", KP_PARAM_STRING, 0, 0, 0, "application (client) id, for client_secret"},
    {"client_secret", KP_PARAM_SECRET, 0, 0, 0, "client secret, env:NAME or file:PATH"},
    {"authority", KP_PARAM_STRING, 0, 0, 0,
     "token authority host (default https://login.microsoftonline.com; sovereign clouds differ)"},
    {"imds_endpoint", KP_PARAM_STRING, 0, 0, 0,
     "managed identity token endpoint (default the IMDS at 169.254.169.254)"},
    {"managed_identity_client_id", KP_PARAM_STRING, 0, 0, 0,
     "client id of a user-assigned managed identity"},
    {"scope", KP_PARAM_STRING, 0, 0, 0,
     "token scope (default: learnt from the vault's challenge, e.g. "
     "https://vault.azure.net/.default)"},
    {"api_version", KP_PARAM_STRING, 0, 0, 0,
     "Key Vault api-version (default " KP_AKV_DEFAULT_API ")"},
    {"key_prefix", KP_PARAM_STRING, 0, 0, 0, "prefix of the vault key names (letters, digits, -)"},
    {"hsm", KP_PARAM_BOOL, 0, 0, 0, "create keys as RSA-HSM (premium vaults, Managed HSM)"},
    {"verify_challenge_resource", KP_PARAM_BOOL, 0, 0, 0,
     "require the challenge's resource to be a parent domain of the vault (default true)"},
    {"ca_bundle", KP_PARAM_PATH, 0, 0, 0, "PEM file of trusted CAs (default: the system store)"},
    {"timeout_ms", KP_PARAM_INT, 0, 100, 600000, "time limit of one request (default 30000)"},
    {"connect_timeout_ms", KP_PARAM_INT, 0, 100, 600000, "connect time limit (default 5000)"},
    {"max_attempts", KP_PARAM_INT, 0, 1, 10,
     "tries of a request failing transiently (429, 5xx, reset, timeout); default 4"},
    {NULL, 0, 0, 0, 0, NULL},
};

static const kp_dispatch s_dispatch[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_params},
    {KP_FN_PLUGIN_DESCRIBE, (kp_fn)akv_plugin_describe},
    {KP_FN_PLUGIN_CHECK_KEY, (kp_fn)akv_plugin_check_key},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)akv_instance_check},
    {KP_FN_INSTANCE_INFO, (kp_fn)akv_instance_info},
    {KP_FN_KS_CREATE, (kp_fn)akv_ks_create},
    {KP_FN_KS_IMPORT, (kp_fn)akv_ks_import},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)akv_ks_get_public},
    {KP_FN_KS_LIST, (kp_fn)akv_ks_list},
    {KP_FN_KS_GET, (kp_fn)akv_ks_get},
    {KP_FN_KS_WRAP, (kp_fn)akv_ks_wrap},
    {KP_FN_KS_UNWRAP, (kp_fn)akv_ks_unwrap},
    {KP_FN_KS_IMPORT_OFFER, (kp_fn)akv_ks_import_offer},
    {KP_FN_KS_IMPORT_WRAPPED, (kp_fn)akv_ks_import_wrapped},
    {KP_FN_KS_BACKUP, (kp_fn)akv_ks_backup},
    {KP_FN_KS_RESTORE, (kp_fn)akv_ks_restore},
    {0, NULL},
};

static const kp_plugin_info *s_info(void *plugin_ctx)
{
    (void)plugin_ctx;
    return &s_plugin_info;
}

static void s_teardown(void *plugin_ctx)
{
    free(plugin_ctx);
}

static const kp_param_desc *s_params(void *plugin_ctx)
{
    (void)plugin_ctx;
    return s_param_list;
}

static void s_close(void *inst)
{
    akv_inst *a = inst;
    if (a == NULL)
        return;
    kpk_http_free(a->http);
    akv_keys_free(a);
    a->up->secret_free(a->token);
    a->up->secret_free(a->client_secret);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static const char *s_str(const kp_param *params, const char *name)
{
    const kp_param *p = kp_param_find(params, name);
    return p != NULL && p->str != NULL ? p->str : NULL;
}

/* Copies a param's value; CONFIG error when too long or holding spaces or control characters. */
static kp_status s_copy_value(akv_inst *a, const char *name, const char *v, char *out,
                              size_t outlen)
{
    if (strlen(v) >= outlen)
        return akv_err(a, KP_ERR_CONFIG, "%s is longer than %zu characters", name, outlen - 1);
    for (const char *c = v; *c != '\0'; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return akv_err(a, KP_ERR_CONFIG, "%s holds a space or control character", name);
    memcpy(out, v, strlen(v) + 1);
    return KP_OK;
}

static kp_status s_copy(akv_inst *a, const kp_param *params, const char *name, char *out,
                        size_t outlen, const char *dflt)
{
    const char *v = s_str(params, name);
    return s_copy_value(a, name, v != NULL ? v : dflt != NULL ? dflt : "", out, outlen);
}

static kp_status s_https(akv_inst *a, const char *name, const char *v, bool allow_http)
{
    if (strncmp(v, "https://", 8) == 0 || (allow_http && strncmp(v, "http://", 7) == 0))
        return KP_OK;
    return akv_err(a, KP_ERR_CONFIG, "%s must be an https:// URL", name);
}

kp_status akv_auth_read(const kp_upcalls *up, kp_core_handle *h, const kp_param *params,
                        akv_auth_mode *mode)
{
    /* the secret's presence, not its bytes: DESCRIBE does not read secrets */
    bool has_secret = kp_param_find(params, "client_secret") != NULL;
    const char *auth = s_str(params, "auth"), *id = s_str(params, "client_id");
    if (auth == NULL)
        *mode = has_secret ? AKV_AUTH_CLIENT_SECRET : AKV_AUTH_MANAGED_IDENTITY;
    else if (strcmp(auth, "client_secret") == 0)
        *mode = AKV_AUTH_CLIENT_SECRET;
    else if (strcmp(auth, "managed_identity") == 0)
        *mode = AKV_AUTH_MANAGED_IDENTITY;
    else
        return kp_errorf(up, h, KP_ERR_CONFIG, "auth must be client_secret or managed_identity");
    if (*mode == AKV_AUTH_CLIENT_SECRET && (!has_secret || id == NULL || id[0] == '\0'))
        return kp_errorf(up, h, KP_ERR_CONFIG,
                         "auth client_secret needs client_id and client_secret");
    return KP_OK;
}

static kp_status s_take_params(akv_inst *a, const kp_param *params)
{
    akv_place place;
    KP_AKV_GUARD(akv_place_read(a->up, a->h, params, &place));
    memcpy(a->vault_url, place.vault_url, sizeof(a->vault_url));
    memcpy(a->vault_host, place.vault_host, sizeof(a->vault_host));
    memcpy(a->vault_name, place.vault_name, sizeof(a->vault_name));
    memcpy(a->key_prefix, place.key_prefix, sizeof(a->key_prefix));
    KP_AKV_GUARD(s_copy(a, params, "api_version", a->api_version, sizeof(a->api_version),
                        KP_AKV_DEFAULT_API));
    for (const char *c = a->api_version; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-')
            return akv_err(a, KP_ERR_CONFIG, "api_version '%s' is malformed", a->api_version);
    if (a->api_version[0] == '\0')
        return akv_err(a, KP_ERR_CONFIG, "api_version is empty");
    KP_AKV_GUARD(s_copy(a, params, "tenant", a->tenant, sizeof(a->tenant), NULL));
    KP_AKV_GUARD(s_copy(a, params, "client_id", a->client_id, sizeof(a->client_id), NULL));
    KP_AKV_GUARD(s_copy(a, params, "authority", a->authority, sizeof(a->authority),
                        KP_AKV_DEFAULT_AUTHORITY));
    KP_AKV_GUARD(s_https(a, "authority", a->authority, false));
    size_t al = strlen(a->authority);
    if (al > 8 && a->authority[al - 1] == '/')
        a->authority[al - 1] = '\0';
    KP_AKV_GUARD(s_copy(a, params, "imds_endpoint", a->imds, sizeof(a->imds), KP_AKV_DEFAULT_IMDS));
    KP_AKV_GUARD(s_https(a, "imds_endpoint", a->imds, true));
    KP_AKV_GUARD(s_copy(a, params, "managed_identity_client_id", a->mi_client_id,
                        sizeof(a->mi_client_id), NULL));
    KP_AKV_GUARD(s_copy(a, params, "scope", a->scope_param, sizeof(a->scope_param), NULL));
    if (a->scope_param[0] != '\0')
        KP_AKV_GUARD(s_https(a, "scope", a->scope_param, false));
    KP_AKV_GUARD(s_copy(a, params, "ca_bundle", a->ca_bundle, sizeof(a->ca_bundle), NULL));

    const kp_param *secret = kp_param_find(params, "client_secret");
    if (secret != NULL && secret->secret != NULL) {
        size_t len = a->up->secret_len(secret->secret);
        if (len == 0)
            return akv_err(a, KP_ERR_CONFIG, "client_secret is empty");
        a->client_secret = kp_secret_dup(a->up, a->up->secret_cdata(secret->secret), len);
        if (a->client_secret == NULL)
            return akv_err(a, KP_ERR_NOMEM, "out of memory");
    }
    KP_AKV_GUARD(akv_auth_read(a->up, a->h, params, &a->auth));

    const kp_param *p;
    a->hsm = (p = kp_param_find(params, "hsm")) != NULL && p->num != 0;
    a->verify_challenge_resource =
        (p = kp_param_find(params, "verify_challenge_resource")) == NULL || p->num != 0;
    memset(&a->http_cfg, 0, sizeof(a->http_cfg));
    a->http_cfg.ca_bundle = a->ca_bundle[0] != '\0' ? a->ca_bundle : NULL;
    a->http_cfg.max_response = KP_AKV_MAX_BODY * 8; /* backups of many versions */
    a->http_cfg.user_agent = "keyplane-azure-keyvault/0.1.0";
    if ((p = kp_param_find(params, "timeout_ms")) != NULL)
        a->http_cfg.timeout_ms = (long)p->num;
    if ((p = kp_param_find(params, "connect_timeout_ms")) != NULL)
        a->http_cfg.connect_timeout_ms = (long)p->num;
    if ((p = kp_param_find(params, "max_attempts")) != NULL)
        a->http_cfg.max_attempts = (unsigned)p->num;
    return KP_OK;
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    akv_plugin *pl = plugin_ctx;
    if (pl == NULL || inst == NULL)
        return KP_ERR_INVALID_ARG;
    *inst = NULL;
    akv_inst *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return pl->up.set_error(h, KP_ERR_NOMEM, "out of memory");
    a->up = &pl->up;
    a->h = h;
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        return pl->up.set_error(h, KP_ERR_INTERNAL, "cannot create mutex");
    }
    kp_status st = s_take_params(a, params);
    if (st != KP_OK) {
        s_close(a);
        return st;
    }
    *inst = a;
    return KP_OK;
}

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx);

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx)
{
    kp_upcalls up;
    kp_status st = kp_plugin_accept(core, out, plugin_ctx, &up,
                                    "azure-keyvault plugin: the core lacks an upcall");
    if (st != KP_OK)
        return st;
    akv_plugin *pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        return KP_ERR_NOMEM;
    pl->up = up;
    pl->h = core->handle;
    *out = s_dispatch;
    *plugin_ctx = pl;
    return KP_OK;
}
