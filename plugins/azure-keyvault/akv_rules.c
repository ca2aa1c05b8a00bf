/*
 * The store's domain rules, decided from the params alone so that `policy validate` can refuse
 * a chain before anything is created (PLUGIN_CHECK_KEY, PLUGIN_DESCRIBE), and applied again by
 * the operations of an open instance through the same functions: one piece of code per rule.
 *
 *  - Azure SQL TDE protectors in Key Vault are RSA 2048 or 3072
 * (learn.microsoft.com/azure/azure-sql/database/transparent-data-encryption-byok-overview).
 *  - Key Vault key names are letters, digits and '-' (so a chain name with '_' or '.' cannot be
 *    a vault key), at most 127 characters with the prefix, and Azure SQL TDE accepts a vault
 *    name plus key name of at most 94 characters.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akv_internal.h"

/* https://host[:port][/] only (the kit's endpoint rule); the vault's name is the host's first
 * DNS label, or the whole address of an emulator. */
static kp_status s_vault_url(const kp_upcalls *up, kp_core_handle *h, const char *url,
                             akv_place *out)
{
    kpk_http_url u;
    char why[160];
    if (kpk_http_url_parse("vault_url", url, 0, &u, why, sizeof(why)) != KP_OK)
        return kp_errorf(up, h, KP_ERR_CONFIG, "%s", why);
    if (strlen(u.base) >= sizeof(out->vault_url) || strlen(u.host) >= sizeof(out->vault_host))
        return kp_errorf(up, h, KP_ERR_CONFIG, "vault_url is longer than %zu characters",
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

kp_status akv_place_read(const kp_upcalls *up, kp_core_handle *h, const kp_param *params,
                         akv_place *out)
{
    memset(out, 0, sizeof(*out));
    const kp_param *url = kp_param_find(params, "vault_url");
    KP_AKV_GUARD(s_vault_url(up, h, url != NULL ? url->str : NULL, out));
    const kp_param *prefix = kp_param_find(params, "key_prefix");
    const char *p = prefix != NULL && prefix->str != NULL ? prefix->str : "";
    if (strlen(p) >= sizeof(out->key_prefix))
        return kp_errorf(up, h, KP_ERR_CONFIG, "key_prefix is longer than %zu characters",
                         sizeof(out->key_prefix) - 1);
    for (const char *c = p; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '-')
            return kp_errorf(up, h, KP_ERR_CONFIG,
                             "key_prefix allows only letters, digits and '-'");
    snprintf(out->key_prefix, sizeof(out->key_prefix), "%s", p);
    return KP_OK;
}

kp_status akv_rule_key(const kp_upcalls *up, kp_core_handle *h, const char *vault_name,
                       uint32_t type, uint32_t bits)
{
    if (type != KP_KEY_RSA)
        return kp_errorf(up, h, KP_ERR_UNSUPPORTED,
                         "%s: only RSA keys: Azure SQL TDE protectors in Key Vault are RSA 2048 "
                         "or 3072",
                         vault_name);
    if (bits != 0 && bits != 2048 && bits != 3072)
        return kp_errorf(up, h, KP_ERR_UNSUPPORTED,
                         "%s: RSA-%u: Azure SQL TDE protectors in Key Vault are RSA 2048 or 3072",
                         vault_name, bits);
    return KP_OK;
}

kp_status akv_rule_name(const kp_upcalls *up, kp_core_handle *h, const char *vault_name,
                        const char *key_prefix, const char *name, char vname[KP_NAME_MAX])
{
    char local[KP_NAME_MAX];
    if (vname == NULL)
        vname = local;
    if (name == NULL || name[0] == '\0')
        return kp_errorf(up, h, KP_ERR_INVALID_ARG, "empty key name");
    for (const char *c = name; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '-')
            return kp_errorf(up, h, KP_ERR_INVALID_ARG,
                             "key name '%.127s': Key Vault names allow only letters, digits and "
                             "'-'",
                             name);
    int n = snprintf(vname, KP_NAME_MAX, "%s%s", key_prefix, name);
    if (n < 0 || n >= KP_NAME_MAX)
        return kp_errorf(up, h, KP_ERR_INVALID_ARG,
                         "key name '%s%.127s' is longer than 127 characters", key_prefix, name);
    /* This also keeps the key-exchange key's name "<vault key name>-kek" within 127. */
    if (strlen(vault_name) + (size_t)n > KP_AKV_NAME_SUM_MAX)
        return kp_errorf(up, h, KP_ERR_INVALID_ARG,
                         "vault name '%s' plus key name '%s' is %zu characters; Azure SQL TDE "
                         "accepts at most %d",
                         vault_name, vname, strlen(vault_name) + (size_t)n, KP_AKV_NAME_SUM_MAX);
    return KP_OK;
}

void akv_instance_info_put(kp_instance_info *info)
{
    const kp_instance_info full = {
        .struct_size = sizeof(kp_instance_info),
        .capabilities = KP_CAP_KEYSTORE,
        .wrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256),
        /* RSA1_5 only unwraps (old data) */
        .unwrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256) |
                       KP_ALG_BIT(KP_WRAP_RSA_PKCS1),
        .key_bits = KP_RSA_2048 | KP_RSA_3072, /* akv_rule_key */
        .export_keyx = 0,
        .import_keyx = KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1), /* BYOK key_hsm */
        /* a key leaves a vault only through a release policy, which keyplane does not use */
        .flags = KP_INST_NO_EXPORT,
        .secret_max = 0,
    };
    uint32_t keep = info->struct_size;
    memcpy(info, &full, keep < sizeof(full) ? keep : sizeof(full));
    info->struct_size = keep;
}

kp_status akv_instance_info(void *inst, kp_instance_info *info)
{
    if (inst == NULL || info == NULL)
        return KP_ERR_INVALID_ARG;
    akv_instance_info_put(info);
    return KP_OK;
}

kp_status akv_plugin_describe(void *plugin_ctx, const kp_param *params, kp_instance_info *info)
{
    akv_plugin *pl = plugin_ctx;
    akv_place place;
    akv_auth_mode mode;
    if (pl == NULL || info == NULL)
        return KP_ERR_INVALID_ARG;
    KP_AKV_GUARD(akv_place_read(&pl->up, pl->h, params, &place));
    KP_AKV_GUARD(akv_auth_read(&pl->up, pl->h, params, &mode));
    akv_instance_info_put(info);
    return KP_OK;
}

kp_status akv_plugin_check_key(void *plugin_ctx, const kp_param *params, const kp_key_spec *in)
{
    akv_plugin *pl = plugin_ctx;
    akv_place place;
    kp_key_spec spec;
    if (pl == NULL || !kp_key_spec_read(in, &spec))
        return KP_ERR_INVALID_ARG;
    KP_AKV_GUARD(akv_place_read(&pl->up, pl->h, params, &place));
    KP_AKV_GUARD(akv_rule_key(&pl->up, pl->h, place.vault_name, spec.type, spec.bits));
    return akv_rule_name(&pl->up, pl->h, place.vault_name, place.key_prefix, spec.name, NULL);
}
