/*
 * The plugin's parameters: what it declares (PLUGIN_PARAMS, `keyplane plugins --params`) and how
 * they are read, for an instance being opened (everything, secrets included) and for the
 * plugin-level calls that decide from the params alone (DESCRIBE, CHECK_KEY: where keys live and
 * how tokens are had, no secret read). Opening contacts nothing: the first operation learns the
 * vault's challenge and gets a token, so a policy naming a vault that is down still loads and
 * `keyplane check` can say what is wrong.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akv_internal.h"

/* Rows of the table: an optional parameter of a type, and one of KP_PARAM_INT within bounds. */
#define S_OPT(n, t, h)                                                                             \
    {                                                                                              \
        .name = (n), .type = (t), .help = (h)                                                      \
    }
#define S_INT(n, lo, hi, h)                                                                        \
    {                                                                                              \
        .name = (n), .type = KP_PARAM_INT, .min = (lo), .max = (hi), .help = (h)                   \
    }

const kp_param_desc kp_akv_param_list[] = {
    {.name = "vault_url",
     .type = KP_PARAM_STRING,
     .flags = KP_PARAM_REQUIRED,
     .help = "https://NAME.vault.azure.net (or NAME.managedhsm.azure.net)"},
    S_OPT("auth", KP_PARAM_STRING,
          "client_secret or managed_identity (default: client_secret when one is given)"),
    S_OPT("tenant", KP_PARAM_STRING, "Entra ID tenant (default: the one the vault names)"),
    S_OPT("client_id", KP_PARAM_STRING, "application (client) id, for client_secret"),
    S_OPT("client_secret", KP_PARAM_SECRET, "client secret, env:NAME or file:PATH"),
    S_OPT("authority", KP_PARAM_STRING,
          "token authority host (default https://login.microsoftonline.com; sovereign clouds "
          "differ)"),
    S_OPT("imds_endpoint", KP_PARAM_STRING,
          "managed identity token endpoint (default the IMDS at 169.254.169.254)"),
    S_OPT("managed_identity_client_id", KP_PARAM_STRING,
          "client id of a user-assigned managed identity"),
    S_OPT("scope", KP_PARAM_STRING,
          "token scope (default: learnt from the vault's challenge, e.g. "
          "https://vault.azure.net/.default)"),
    S_OPT("api_version", KP_PARAM_STRING, "Key Vault api-version (default " KP_AKV_DEFAULT_API ")"),
    S_OPT("key_prefix", KP_PARAM_STRING, "prefix of the vault key names (letters, digits, -)"),
    S_OPT("hsm", KP_PARAM_BOOL, "create keys as RSA-HSM (premium vaults, Managed HSM)"),
    S_OPT("pace", KP_PARAM_BOOL,
          "pace creates to Key Vault's documented limit per vault (10 or 20 per 10 s), lowered by "
          "the vault's 429s (default true; false: only its 429s slow them down)"),
    S_OPT("role", KP_PARAM_STRING,
          "what the identity is for, which `keyplane check` probes: manage (default; apply: "
          "get, list, create, import, update, wrapKey, unwrapKey) or dek (wrap and unwrap "
          "only: get, wrapKey, unwrapKey)"),
    S_OPT("verify_challenge_resource", KP_PARAM_BOOL,
          "require every host the challenge names (resource and scope) to be the vault's or a "
          "parent domain of it (default true)"),
    KPK_HTTP_PARAM_ROWS,
    S_INT("deadline_ms", 100, 600000,
          "time limit of one key lookup, listing, wrap or unwrap, its retries, waits and token "
          "included: past it the core fails over to another replica (default 10000)"),
    {.name = NULL},
};

static const char *s_str(const kp_param *params, const char *name)
{
    const kp_param *p = kp_param_find(params, name);
    return p != NULL && p->str != NULL ? p->str : NULL;
}

/* https://host[:port][/] only (the kit's endpoint rule); the vault's name is the host's first
 * DNS label, or the whole address of an emulator. */
static kp_status s_vault_url(kp_akv_sink to, const char *url, kp_akv_place *out)
{
    kpk_http_url u;
    char why[160];
    if (kpk_http_url_parse("vault_url", url, 0, &u, why, sizeof(why)) != KP_OK)
        return kp_akv_err(&to, KP_ERR_CONFIG, "%s", why);
    if (strlen(u.base) >= sizeof(out->vault_url) || strlen(u.host) >= sizeof(out->vault_host))
        return kp_akv_err(&to, KP_ERR_CONFIG, "vault_url is longer than %zu characters",
                          sizeof(out->vault_url) - 1);
    snprintf(out->vault_url, sizeof(out->vault_url), "%s", u.base);
    snprintf(out->vault_host, sizeof(out->vault_host), "%s", u.host);
    size_t hl = strlen(u.host), ll = strcspn(u.host, ".");
    if (strspn(u.host, "0123456789.") == hl)
        snprintf(out->vault_name, sizeof(out->vault_name), "%.*s",
                 (int)(sizeof(out->vault_name) - 1), u.base + 8);
    else
        snprintf(out->vault_name, sizeof(out->vault_name), "%.*s", (int)ll, u.host);
    return KP_OK;
}

kp_status kp_akv_place_read(kp_akv_sink to, const kp_param *params, kp_akv_place *out)
{
    memset(out, 0, sizeof(*out));
    KP_GUARD(s_vault_url(to, s_str(params, "vault_url"), out));
    const char *p = s_str(params, "key_prefix");
    if (p == NULL)
        p = "";
    if (strlen(p) >= sizeof(out->key_prefix))
        return kp_akv_err(&to, KP_ERR_CONFIG, "key_prefix is longer than %zu characters",
                          sizeof(out->key_prefix) - 1);
    for (const char *c = p; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '-')
            return kp_akv_err(&to, KP_ERR_CONFIG, "key_prefix allows only letters, digits and '-'");
    snprintf(out->key_prefix, sizeof(out->key_prefix), "%s", p);
    return KP_OK;
}

kp_status kp_akv_auth_read(kp_akv_sink to, const kp_param *params, kp_akv_auth_mode *mode)
{
    /* the secret's presence, not its bytes: DESCRIBE does not read secrets */
    bool has_secret = kp_param_find(params, "client_secret") != NULL;
    const char *auth = s_str(params, "auth"), *id = s_str(params, "client_id");
    if (auth == NULL)
        *mode = has_secret ? KP_AKV_AUTH_CLIENT_SECRET : KP_AKV_AUTH_MANAGED_IDENTITY;
    else if (strcmp(auth, "client_secret") == 0)
        *mode = KP_AKV_AUTH_CLIENT_SECRET;
    else if (strcmp(auth, "managed_identity") == 0)
        *mode = KP_AKV_AUTH_MANAGED_IDENTITY;
    else
        return kp_akv_err(&to, KP_ERR_CONFIG, "auth must be client_secret or managed_identity");
    if (*mode == KP_AKV_AUTH_CLIENT_SECRET && (!has_secret || id == NULL || id[0] == '\0'))
        return kp_akv_err(&to, KP_ERR_CONFIG,
                          "auth client_secret needs client_id and client_secret");
    return KP_OK;
}

/* Copies a string param (dflt when absent, NULL: "") into out; KP_ERR_CONFIG when too long or
 * holding spaces or control characters. */
static kp_status s_copy(kp_akv_inst *a, const kp_param *params, const char *name, char *out,
                        size_t outlen, const char *dflt)
{
    const char *v = s_str(params, name);
    if (v == NULL)
        v = dflt != NULL ? dflt : "";
    if (strlen(v) >= outlen)
        return kp_akv_err(a, KP_ERR_CONFIG, "%s is longer than %zu characters", name, outlen - 1);
    for (const char *c = v; *c != '\0'; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return kp_akv_err(a, KP_ERR_CONFIG, "%s holds a space or control character", name);
    memcpy(out, v, strlen(v) + 1);
    return KP_OK;
}

/* A URL param must be https:// (or http:// when allow_http: the IMDS). */
static kp_status s_https(kp_akv_inst *a, const char *name, const char *v, bool allow_http)
{
    if (strncmp(v, "https://", 8) == 0 || (allow_http && strncmp(v, "http://", 7) == 0))
        return KP_OK;
    return kp_akv_err(a, KP_ERR_CONFIG, "%s must be an https:// URL", name);
}

static kp_status s_api_version(kp_akv_inst *a, const kp_param *params)
{
    KP_GUARD(s_copy(a, params, "api_version", a->api_version, sizeof(a->api_version),
                    KP_AKV_DEFAULT_API));
    for (const char *c = a->api_version; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-')
            return kp_akv_err(a, KP_ERR_CONFIG, "api_version '%s' is malformed", a->api_version);
    if (a->api_version[0] == '\0')
        return kp_akv_err(a, KP_ERR_CONFIG, "api_version is empty");
    return KP_OK;
}

/* Who asks for tokens, and where: tenant, client id, the token endpoints, the scope. */
static kp_status s_identity(kp_akv_inst *a, const kp_param *params)
{
    KP_GUARD(s_copy(a, params, "tenant", a->tenant, sizeof(a->tenant), NULL));
    KP_GUARD(s_copy(a, params, "client_id", a->client_id, sizeof(a->client_id), NULL));
    KP_GUARD(s_copy(a, params, "authority", a->authority, sizeof(a->authority),
                    KP_AKV_DEFAULT_AUTHORITY));
    KP_GUARD(s_https(a, "authority", a->authority, false));
    size_t al = strlen(a->authority);
    if (al > 8 && a->authority[al - 1] == '/')
        a->authority[al - 1] = '\0';
    KP_GUARD(s_copy(a, params, "imds_endpoint", a->imds, sizeof(a->imds), KP_AKV_DEFAULT_IMDS));
    KP_GUARD(s_https(a, "imds_endpoint", a->imds, true));
    KP_GUARD(s_copy(a, params, "managed_identity_client_id", a->mi_client_id,
                    sizeof(a->mi_client_id), NULL));
    KP_GUARD(s_copy(a, params, "scope", a->scope_param, sizeof(a->scope_param), NULL));
    if (a->scope_param[0] != '\0')
        KP_GUARD(s_https(a, "scope", a->scope_param, false));
    return KP_OK;
}

/* The client secret (a copy of the core's), then how tokens are had. */
static kp_status s_secret(kp_akv_inst *a, const kp_param *params)
{
    const kp_param *secret = kp_param_find(params, "client_secret");
    if (secret != NULL && secret->secret != NULL) {
        size_t len = a->up->secret_len(secret->secret);
        if (len == 0)
            return kp_akv_err(a, KP_ERR_CONFIG, "client_secret is empty");
        a->client_secret = kp_secret_dup(a->up, a->up->secret_cdata(secret->secret), len);
        if (a->client_secret == NULL)
            return kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    }
    return kp_akv_auth_read(KP_AKV_SINK(a), params, &a->auth);
}

/* The transport's settings. */
static void s_http(kp_akv_inst *a, const kp_param *params)
{
    memset(&a->http_cfg, 0, sizeof(a->http_cfg));
    kpk_http_config_params(params, &a->http_cfg);
    a->http_cfg.ca_bundle = a->ca_bundle[0] != '\0' ? a->ca_bundle : NULL;
    a->http_cfg.max_response = KP_AKV_MAX_BODY * 8; /* backups of many versions */
    a->http_cfg.user_agent = "keyplane-azure-keyvault/0.1.0";
    const kp_param *p = kp_param_find(params, "deadline_ms");
    a->deadline_ms = p != NULL ? (long)p->num : KP_AKV_DEFAULT_DEADLINE_MS;
}

kp_status kp_akv_params_take(kp_akv_inst *a, const kp_param *params)
{
    KP_GUARD(kp_akv_place_read(KP_AKV_SINK(a), params, &a->place));
    KP_GUARD(s_api_version(a, params));
    KP_GUARD(s_identity(a, params));
    KP_GUARD(s_copy(a, params, "ca_bundle", a->ca_bundle, sizeof(a->ca_bundle), NULL));
    KP_GUARD(s_secret(a, params));
    const kp_param *p;
    a->hsm = (p = kp_param_find(params, "hsm")) != NULL && p->num != 0;
    const char *role = s_str(params, "role");
    if (role != NULL && strcmp(role, "dek") != 0 && strcmp(role, "manage") != 0)
        return kp_akv_err(a, KP_ERR_CONFIG, "role must be manage or dek");
    a->role_dek = role != NULL && strcmp(role, "dek") == 0;
    a->pace = (p = kp_param_find(params, "pace")) == NULL || p->num != 0;
    a->verify_challenge_resource =
        (p = kp_param_find(params, "verify_challenge_resource")) == NULL || p->num != 0;
    s_http(a, params);
    return KP_OK;
}
