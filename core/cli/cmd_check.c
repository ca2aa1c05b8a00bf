/*
 * keyplane check [INSTANCE...]: reachability, credentials and permissions of instances.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

typedef struct s_check {
    kp_cli *cli;
    json_t *items;
    int failed;
    const char *name, *plugin;
    bool headed; /* the "INSTANCE (PLUGIN)" line is out */
} s_check;

static void s_report(void *arg, const char *item, kp_status status, const char *detail)
{
    s_check *c = arg;
    if (status != KP_OK)
        c->failed++;
    /* An instance's line heads its items; with -q only failed items are shown, so it comes
     * with the first one. */
    if (!c->cli->json && !c->headed && (status != KP_OK || !c->cli->quiet)) {
        printf("%s (%s)\n", c->name, c->plugin);
        c->headed = true;
    }
    if (c->cli->json) {
        json_t *o = json_pack("{s:s, s:b}", "item", item, "ok", status == KP_OK);
        if (status != KP_OK)
            json_object_set_new(o, "status", json_string(kp_status_name(status)));
        json_object_set_new(o, "detail", kp_cli_jstr(detail != NULL ? detail : ""));
        json_array_append_new(c->items, o);
    } else if (status == KP_OK) {
        kp_cli_info(c->cli, stdout, "  %-4s  %-14s %s\n", "ok", item, detail != NULL ? detail : "");
    } else {
        printf("  %-4s  %-14s %s\n", "FAIL", item, detail != NULL ? detail : "");
    }
}

/* The store's own word on the chain's newest version there (kp_key_info.gap: a vault without
 * purge protection): KP_ERR_UNSUPPORTED with it in why. A version it does not hold, or cannot
 * be asked about, is no finding here (the other items say why). */
static kp_status s_gap(kp_instance *inst, const kp_chain_policy *ch, char *why, size_t whylen)
{
    kp_key_info info;
    info.struct_size = sizeof(info);
    kp_status st = kp_key_info_get(inst, ch->name, 0, &info);
    if (st != KP_OK || info.gap[0] == '\0')
        return KP_OK;
    snprintf(why, whylen, "v%u: %s", info.version, info.gap);
    return KP_ERR_UNSUPPORTED;
}

static int s_check_one(kp_cli *cli, const char *name, json_t *out, int *failed)
{
    const char *plugin = kp_policy_instance_plugin(cli->policy, name);
    s_check c = {cli, cli->json ? json_array() : NULL, 0, name, plugin, false};
    kp_instance *inst = NULL;
    kp_status st = kp_instance_open(cli->ctx, cli->policy, name, &inst);
    if (st != KP_OK)
        s_report(&c, "open", st, kp_ctx_last_error(cli->ctx));
    else
        st = kp_instance_check(inst, s_report, &c);
    /* What the instance said it can do at open, held against every chain that keeps its
     * protector there: an HSM that cannot do the chain's OAEP hash is a gap before any disaster
     * shows it. */
    for (size_t i = 0; inst != NULL && i < kp_policy_chain_count(cli->policy); i++) {
        const kp_chain_policy *ch = kp_policy_chain_at(cli->policy, i);
        if (!kp_cli_chain_holds(ch, name, false))
            continue;
        char why[KP_GAP_MAX + 32], item[KP_NAME_MAX + 8];
        snprintf(item, sizeof(item), "chain %s", ch->name);
        kp_status fit = kp_instance_fits_chain(inst, ch, why, sizeof(why));
        if (fit == KP_OK && kp_instance_get0_info(inst)->capabilities & KP_CAP_KEYSTORE)
            fit = s_gap(inst, ch, why, sizeof(why));
        s_report(&c, item, fit,
                 fit == KP_OK && why[0] == '\0' ? "can hold and use its protector" : why);
        if (st == KP_OK)
            st = fit;
    }
    kp_instance_close(inst);
    if (st != KP_OK && c.failed == 0)
        s_report(&c, "check", st, kp_ctx_last_error(cli->ctx));
    if (!cli->json && !c.headed) /* no item: the instance is still named, but is no news */
        kp_cli_info(cli, stdout, "%s (%s)\n", name, plugin);
    *failed += c.failed;
    if (cli->json)
        json_array_append_new(out, json_pack("{s:s, s:s, s:b, s:o}", "instance", name, "plugin",
                                             plugin, "ok", c.failed == 0, "items", c.items));
    return KP_EXIT_OK;
}

int kp_cmd_check(kp_cli *cli, int argc, char **argv)
{
    int rc = kp_cli_instance_args(
        cli, "check",
        "Usage: keyplane check [--json] [INSTANCE...]\n"
        "\n"
        "Opens each provider instance of the policy (all, or those named) and runs\n"
        "its plugin's checks: reachability, credentials, permissions; then, for every\n"
        "chain keeping its protector there, whether the instance can hold it and\n"
        "unwrap with the chain's algorithm, as the instance declares. One line per\n"
        "checked item; exit status 1 when any item failed.\n"
        "\n"
        "  --json  {\"ok\", \"instances\": [{instance, plugin, ok, items}]}\n",
        argc, argv);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    json_t *out = cli->json ? json_array() : NULL;
    int failed = 0;
    if (optind < argc)
        for (int i = optind; i < argc; i++)
            s_check_one(cli, argv[i], out, &failed);
    else
        for (size_t i = 0; i < kp_policy_instance_count(cli->policy); i++)
            s_check_one(cli, kp_policy_instance_name(cli->policy, i), out, &failed);
    if (cli->json)
        kp_cli_print_json(json_pack("{s:b, s:o}", "ok", failed == 0, "instances", out));
    return failed == 0 ? KP_EXIT_OK : KP_EXIT_FAIL;
}
