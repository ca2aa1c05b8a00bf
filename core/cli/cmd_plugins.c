/*
 * keyplane plugins: what can be loaded, and what was refused and why.
 */
#include <getopt.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

typedef struct s_scan {
    kp_cli *cli;
    bool params;
    json_t *plugins;
    json_t *refused;
    int nrefused;
} s_scan;

static const char *s_type_name(uint32_t t)
{
    switch ((kp_param_type)t) {
    case KP_PARAM_STRING:
        return "string";
    case KP_PARAM_INT:
        return "integer";
    case KP_PARAM_BOOL:
        return "boolean";
    case KP_PARAM_SECRET:
        return "secret";
    case KP_PARAM_PATH:
        return "path";
    }
    return "unknown";
}

static json_t *s_caps_json(uint32_t caps)
{
    json_t *a = json_array();
    if (caps & KP_CAP_KEYSTORE)
        json_array_append_new(a, json_string("keystore"));
    if (caps & KP_CAP_SECRETSTORE)
        json_array_append_new(a, json_string("secretstore"));
    if (caps & KP_CAP_DATAKEY)
        json_array_append_new(a, json_string("datakey"));
    return a;
}

static void s_visit(void *arg, const char *path, const kp_plugin *plugin, kp_status status,
                    const char *reason)
{
    s_scan *s = arg;
    if (plugin == NULL) {
        s->nrefused++;
        if (s->cli->json)
            json_array_append_new(s->refused,
                                  json_pack("{s:o, s:s, s:o}", "path", kp_cli_jstr(path), "status",
                                            kp_status_name(status), "reason", kp_cli_jstr(reason)));
        else
            fprintf(stderr, "keyplane: warning: %s\n", reason);
        return;
    }
    const kp_plugin_info *info = kp_plugin_get0_info(plugin);
    const kp_param_desc *params = kp_plugin_get0_params(plugin);
    if (s->cli->json) {
        char abi[16];
        snprintf(abi, sizeof(abi), "%u.%u", info->abi_major, info->abi_minor);
        json_t *p =
            json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}", "name", info->name, "version",
                      info->version, "abi", abi, "capabilities", s_caps_json(info->capabilities),
                      "path", path, "description", info->description);
        json_t *pa = json_array();
        for (const kp_param_desc *d = params; d->name != NULL; d++)
            json_array_append_new(pa, json_pack("{s:s, s:s, s:b, s:s}", "name", d->name, "type",
                                                s_type_name(d->type), "required",
                                                (d->flags & KP_PARAM_REQUIRED) != 0, "help",
                                                d->help != NULL ? d->help : ""));
        json_object_set_new(p, "params", pa);
        json_array_append_new(s->plugins, p);
        return;
    }
    char caps[64];
    printf("%-16s %-8s %u.%-4u %-22s %s\n", info->name, info->version, info->abi_major,
           info->abi_minor, kp_cli_caps(info->capabilities, caps, sizeof(caps)), path);
    if (s->params) {
        for (const kp_param_desc *d = params; d->name != NULL; d++)
            printf("    %-18s %-8s %-9s %s\n", d->name, s_type_name(d->type),
                   d->flags & KP_PARAM_REQUIRED ? "required" : "optional",
                   d->help != NULL ? d->help : "");
    }
}

int kp_cmd_plugins(kp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"params", optional_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    s_scan s = {.cli = cli};
    int c;
    while ((c = getopt_long(argc, argv, "jph", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            cli->json = true;
            break;
        case 'p':
            if (kp_cli_flag("plugins", "params", optarg, &s.params) != KP_EXIT_OK)
                return KP_EXIT_USAGE;
            break;
        case 'h':
            printf("Usage: keyplane plugins [--params] [--json]\n"
                   "\n"
                   "Loads every plugin found in the plugin directories and lists it: name,\n"
                   "version, provider ABI version, capabilities and path. A file that cannot\n"
                   "be loaded is reported with the reason, and the exit status is then 1.\n"
                   "\n"
                   "  --params  also list the parameters each plugin accepts in a policy\n"
                   "  --json    one JSON document: plugins, refused, plugin_dirs\n"
                   "\n"
                   "Plugin directories, in search order: --plugin-dir, KEYPLANE_PLUGIN_PATH,\n"
                   "LIBDIR/keyplane/plugins beside the keyplane binary, the install directory.\n");
            return KP_EXIT_OK;
        default:
            return kp_cli_bad_option("plugins", argv);
        }
    }
    if (optind < argc)
        return kp_cli_usage_error("plugins", "unexpected argument '%s'", argv[optind]);
    if (cli->json) {
        s.plugins = json_array();
        s.refused = json_array();
    } else {
        printf("%-16s %-8s %-6s %-22s %s\n", "NAME", "VERSION", "ABI", "CAPABILITIES", "PATH");
    }
    kp_status st = kp_plugin_scan(cli->ctx, s_visit, &s);
    if (st == KP_OK && cli->json) {
        json_t *dirs = json_array();
        for (size_t i = 0; i < kp_ctx_plugin_dir_count(cli->ctx); i++)
            json_array_append_new(dirs, json_string(kp_ctx_plugin_dir(cli->ctx, i)));
        kp_cli_print_json(json_pack("{s:o, s:o, s:o}", "plugins", s.plugins, "refused", s.refused,
                                    "plugin_dirs", dirs));
    } else {
        json_decref(s.plugins);
        json_decref(s.refused);
    }
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "plugin scan");
    return s.nrefused > 0 ? KP_EXIT_FAIL : KP_EXIT_OK;
}
