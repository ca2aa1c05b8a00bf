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
#include <string.h>

#include "akv_internal.h"

kp_status kp_akv_rule_key(kp_akv_sink to, const char *vault_name, uint32_t type, uint32_t bits)
{
    if (type != KP_KEY_RSA)
        return kp_akv_err(&to, KP_ERR_UNSUPPORTED,
                          "%s: only RSA keys: Azure SQL TDE protectors in Key Vault are RSA 2048 "
                          "or 3072",
                          vault_name);
    if (bits != 0 && bits != 2048 && bits != 3072)
        return kp_akv_err(&to, KP_ERR_UNSUPPORTED,
                          "%s: RSA-%u: Azure SQL TDE protectors in Key Vault are RSA 2048 or 3072",
                          vault_name, bits);
    return KP_OK;
}

/* The name rule: letters, digits and '-' only; prefix + name at most 127 characters, and vault
 * name + vault key name at most KP_AKV_NAME_SUM_MAX. vname (may be NULL) receives the vault key
 * name. KP_ERR_INVALID_ARG naming the rule. */
static kp_status s_rule_name(kp_akv_sink to, const kp_akv_place *place, const char *name,
                             char vname[KP_NAME_MAX])
{
    char local[KP_NAME_MAX];
    if (vname == NULL)
        vname = local;
    if (name == NULL || name[0] == '\0')
        return kp_akv_err(&to, KP_ERR_INVALID_ARG, "empty key name");
    for (const char *c = name; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && *c != '-')
            return kp_akv_err(&to, KP_ERR_INVALID_ARG,
                              "key name '%.127s': Key Vault names allow only letters, digits and "
                              "'-'",
                              name);
    int n = snprintf(vname, KP_NAME_MAX, "%s%s", place->key_prefix, name);
    if (n < 0 || n >= KP_NAME_MAX)
        return kp_akv_err(&to, KP_ERR_INVALID_ARG,
                          "key name '%s%.127s' is longer than 127 characters", place->key_prefix,
                          name);
    /* This also keeps the key-exchange key's name "<vault key name>-kek" within 127. */
    size_t sum = strlen(place->vault_name) + (size_t)n;
    if (sum > KP_AKV_NAME_SUM_MAX)
        return kp_akv_err(&to, KP_ERR_INVALID_ARG,
                          "vault name '%s' plus key name '%s' is %zu characters; Azure SQL TDE "
                          "accepts at most %d",
                          place->vault_name, vname, sum, KP_AKV_NAME_SUM_MAX);
    return KP_OK;
}

kp_status kp_akv_vault_name(kp_akv_inst *a, const char *name, char out[KP_NAME_MAX])
{
    return s_rule_name(KP_AKV_SINK(a), &a->place, name, out);
}

kp_status kp_akv_rule_spec(kp_akv_inst *a, const char *name, uint32_t type, uint32_t bits,
                           char vname[KP_NAME_MAX])
{
    KP_GUARD(kp_akv_vault_name(a, name, vname));
    return kp_akv_rule_key(KP_AKV_SINK(a), a->place.vault_name, type, bits);
}

/* What every instance is and can do (INSTANCE_INFO, PLUGIN_DESCRIBE), into the caller's storage
 * as far as its struct_size reaches. */
static void s_instance_info_put(kp_instance_info *info)
{
    const kp_instance_info full = {
        .struct_size = sizeof(kp_instance_info),
        .capabilities = KP_CAP_KEYSTORE,
        .wrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256),
        /* RSA1_5 only unwraps (old data) */
        .unwrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256) |
                       KP_ALG_BIT(KP_WRAP_RSA_PKCS1),
        .key_bits = KP_RSA_2048 | KP_RSA_3072, /* kp_akv_rule_key */
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

kp_status kp_akv_instance_info(void *inst, kp_instance_info *info)
{
    KP_ENSURE(inst != NULL && info != NULL, KP_ERR_INVALID_ARG);
    s_instance_info_put(info);
    return KP_OK;
}

kp_status kp_akv_plugin_describe(void *plugin_ctx, const kp_param *params, kp_instance_info *info)
{
    kp_akv_plugin *pl = plugin_ctx;
    kp_akv_place place;
    kp_akv_auth_mode mode;
    KP_ENSURE(pl != NULL && info != NULL, KP_ERR_INVALID_ARG);
    kp_akv_sink to = {.up = &pl->up, .h = pl->h};
    KP_GUARD(kp_akv_place_read(to, params, &place));
    KP_GUARD(kp_akv_auth_read(to, params, &mode));
    s_instance_info_put(info);
    return KP_OK;
}

kp_status kp_akv_plugin_check_key(void *plugin_ctx, const kp_param *params, const kp_key_spec *in)
{
    kp_akv_plugin *pl = plugin_ctx;
    kp_akv_place place;
    kp_key_spec spec;
    KP_ENSURE(pl != NULL && kp_key_spec_read(in, &spec), KP_ERR_INVALID_ARG);
    kp_akv_sink to = {.up = &pl->up, .h = pl->h};
    KP_GUARD(kp_akv_place_read(to, params, &place));
    KP_GUARD(kp_akv_rule_key(to, place.vault_name, spec.type, spec.bits));
    return s_rule_name(to, &place, spec.name, NULL);
}

void kp_akv_rule_recovery(const char *vault_name, const char *level, char *gap, size_t gaplen)
{
    gap[0] = '\0';
    if (level[0] == '\0' || strstr(level, "Purgeable") == NULL)
        return; /* purge protection on (or not said) */
    bool soft = strstr(level, "Recoverable") != NULL;
    snprintf(gap, gaplen,
             "vault '%s' has no %spurge protection (recoveryLevel %.48s); Azure SQL requires it "
             "of a TDE protector's vault: az keyvault update --name %s --enable-purge-protection "
             "true",
             vault_name, soft ? "" : "soft delete or ", level, vault_name);
}
