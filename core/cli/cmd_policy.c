/*
 * keyplane policy validate [FILE]: full validation, every problem with file:line:column.
 */
#include <getopt.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char s_usage[] =
    "Usage: keyplane policy validate [--json] [FILE]\n"
    "\n"
    "Validates a policy: YAML syntax, the schema (unknown keys are errors unless they\n"
    "start with x-), names, references between chains and provider instances, and\n"
    "each instance's parameters against what its plugin declares. Every problem is\n"
    "printed as FILE:LINE:COLUMN: error: REASON. FILE defaults to --policy.\n"
    "\n"
    "  --json  {\"policy\", \"valid\", \"errors\": [{file, line, column, message}]}\n"
    "\n"
    "Exit status: 0 valid, 3 invalid, 5 file not found.\n";

int kp_cmd_policy(kp_cli *cli, int argc, char **argv)
{
    static const char *const subs[] = {"validate", NULL};
    size_t which = 0;
    int rc = kp_cli_subcommand(cli, "policy", s_usage, subs, &argc, &argv, &which);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    rc = kp_cli_simple_opts(cli, "policy validate", s_usage, false, argc, argv);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    if (optind + 1 < argc)
        return kp_cli_usage_error("policy validate", "expects at most one FILE");
    if (optind < argc)
        cli->policy_path = argv[optind];

    if (!cli->json) {
        rc = kp_cli_load_policy(cli);
        if (rc == KP_EXIT_OK)
            kp_cli_info(cli, stdout, "%s: valid (%zu provider instance%s, %zu chain%s)\n",
                        cli->policy_path, kp_policy_instance_count(cli->policy),
                        kp_policy_instance_count(cli->policy) == 1 ? "" : "s",
                        kp_policy_chain_count(cli->policy),
                        kp_policy_chain_count(cli->policy) == 1 ? "" : "s");
        return rc;
    }
    kp_diag_list *diags = NULL;
    kp_status st = kp_policy_load(cli->ctx, cli->policy_path, &cli->policy, &diags);
    json_t *errors = json_array();
    if (st != KP_OK && st != KP_ERR_CONFIG) /* unreadable: one error without a position */
        json_array_append_new(
            errors, json_pack("{s:o, s:i, s:i, s:o}", "file", kp_cli_jstr(cli->policy_path), "line",
                              0, "column", 0, "message", kp_cli_jstr(kp_ctx_last_error(cli->ctx))));
    for (size_t i = 0; i < kp_diag_count(diags); i++) {
        const kp_diag *d = kp_diag_get0(diags, i);
        json_array_append_new(errors,
                              json_pack("{s:o, s:i, s:i, s:o}", "file", kp_cli_jstr(d->file),
                                        "line", (int)d->line, "column", (int)d->column, "message",
                                        kp_cli_jstr(d->message)));
    }
    kp_diag_list_free(diags);
    kp_cli_print_json(json_pack("{s:o, s:b, s:o}", "policy", kp_cli_jstr(cli->policy_path), "valid",
                                st == KP_OK, "errors", errors));
    return st == KP_OK ? KP_EXIT_OK : st == KP_ERR_CONFIG ? KP_EXIT_CONFIG : kp_cli_exit_code(st);
}
