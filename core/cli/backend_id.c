/*
 * The store's own id of a key version (kp_key_info's backend_id) as the commands show it: the
 * generic "backend_id", and for a Key Vault also "kid", the name Azure gives the key id with its
 * version, which is what Azure SQL asks for (az sql server key create --kid).
 */
#include <string.h>

#include <jansson.h>

#include "cli.h"

bool kp_cli_backend_is_kid(const kp_cli *cli, const char *instance)
{
    const char *plugin = kp_policy_instance_plugin(cli->policy, instance);
    return plugin != NULL && strcmp(plugin, "azure-keyvault") == 0;
}

void kp_cli_backend_id_json(const kp_cli *cli, void *obj, const char *instance,
                            const char *backend_id)
{
    if (obj == NULL || backend_id == NULL || backend_id[0] == '\0')
        return;
    json_object_set_new(obj, "backend_id", kp_cli_jstr(backend_id));
    if (kp_cli_backend_is_kid(cli, instance))
        json_object_set_new(obj, "kid", kp_cli_jstr(backend_id));
}
