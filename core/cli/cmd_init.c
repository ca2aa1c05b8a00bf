/*
 * keyplane init [INSTANCE...]: creates new, empty stores. Creating a store is an explicit act:
 * a plugin with KP_FN_INSTANCE_INIT (the file plugin) never creates one on a write, and a store
 * that is not initialised reads as unreachable, never as empty, so a disk that is not mounted
 * cannot make apply start a chain over. This command, and restore for the store it names, are
 * the only callers of kp_instance_init.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <keyplane/kit/codec.h>

#include "cli.h"

kp_status kp_cli_init_instance(kp_cli *cli, const char *name)
{
    kp_instance *inst = NULL;
    kp_status st = kp_instance_open(cli->ctx, cli->policy, name, &inst);
    if (st == KP_OK)
        st = kp_instance_init(inst);
    kp_instance_close(inst);
    return st;
}

/* Initialises one instance and says how it went; false when it did not end initialised. */
static bool s_init_one(kp_cli *cli, const char *name, json_t *out, int *rc)
{
    const char *plugin = kp_policy_instance_plugin(cli->policy, name);
    kp_status st = kp_cli_init_instance(cli, name);
    const char *result = st == KP_OK                ? "initialised"
                         : st == KP_ERR_EXISTS      ? "already initialised"
                         : st == KP_ERR_UNSUPPORTED ? "nothing to initialise"
                                                    : "failed";
    bool ok = st == KP_OK || st == KP_ERR_EXISTS || st == KP_ERR_UNSUPPORTED;
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "instance", name, "plugin", plugin, "result",
                              result, "ok", ok);
        if (st != KP_OK) {
            json_object_set_new(o, "status", json_string(kp_status_name(st)));
            json_object_set_new(o, "detail",
                                kp_cli_jstr(kpk_after_name(kp_ctx_last_error(cli->ctx), name)));
        }
        json_array_append_new(out, o);
    } else if (st == KP_ERR_UNSUPPORTED) {
        kp_cli_info(cli, stdout,
                    "%s: nothing to initialise (plugin %s: its stores exist by "
                    "themselves)\n",
                    name, plugin);
    } else if (ok) {
        kp_cli_info(cli, stdout, "%s: %s\n", name, result);
    } else {
        kp_cli_error(st, "init %s: %s", name, kpk_after_name(kp_ctx_last_error(cli->ctx), name));
    }
    if (!ok && *rc == KP_EXIT_OK)
        *rc = kp_cli_exit_code(st);
    return ok;
}

int kp_cmd_init(kp_cli *cli, int argc, char **argv)
{
    int rc = kp_cli_instance_args(
        cli, "init",
        "Usage: keyplane init [--json] [INSTANCE...]\n"
        "\n"
        "Creates a new, empty store for each provider instance named, or for every\n"
        "instance of the policy whose plugin makes its stores (the file plugin: the\n"
        "directory, 0700, and its header with the passphrase check). Nothing else\n"
        "creates one: a store that is not initialised (never created, or moved away,\n"
        "its disk not mounted) is unreachable for every other command, never empty.\n"
        "A store that is initialised already is left as it is. Stores that exist by\n"
        "themselves (a token, a vault) have nothing to initialise.\n"
        "One line per instance: initialised, already initialised, or the error; exit\n"
        "status 0 when every instance ends initialised.\n"
        "\n"
        "  --json  {\"ok\", \"instances\": [{instance, plugin, result, ok, status?, detail?}]}\n",
        argc, argv);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    rc = kp_cli_lock(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    json_t *out = cli->json ? json_array() : NULL;
    bool all_ok = true;
    size_t n = 0;
    if (optind < argc) {
        for (int i = optind; i < argc; i++, n++)
            all_ok = s_init_one(cli, argv[i], out, &rc) && all_ok;
    } else {
        for (size_t i = 0; i < kp_policy_instance_count(cli->policy); i++) {
            const char *name = kp_policy_instance_name(cli->policy, i);
            if (!kp_instance_can_init(cli->policy, name))
                continue; /* a token, a vault: nothing to make */
            all_ok = s_init_one(cli, name, out, &rc) && all_ok;
            n++;
        }
        if (n == 0 && !cli->json)
            kp_cli_info(cli, stdout, "no instance of %s has a store to initialise\n",
                        cli->policy_path);
    }
    if (cli->json)
        kp_cli_print_json(json_pack("{s:b, s:o}", "ok", all_ok, "instances", out));
    return rc;
}
