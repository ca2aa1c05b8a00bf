/*
 * keyplane rotate (stage, activate, abandon) / retire / rewrap.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "sqlserver.h"

/* rotate CHAIN --abandon N: marks a version that never wrapped abandoned. */
static int s_abandon(kp_cli *cli, const char *chain, uint32_t version)
{
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    if (kp_policy_chain(cli->policy, chain) == NULL)
        return kp_cli_not_in_policy(cli, "chain", chain);
    rc = kp_cli_lock(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_status st = kp_chain_abandon(cli->ctx, cli->policy, chain, version);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "rotate --abandon");
    if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:i, s:s}", "chain", chain, "step", "abandon",
                                    "version", (int)version, "state", "abandoned"));
    else
        kp_cli_info(cli, stdout,
                    "abandoned %s v%u: no longer copied or counted as a gap, never used to wrap; "
                    "its keys stay where they are, and the next staged version takes a new "
                    "number\n",
                    chain, version);
    return KP_EXIT_OK;
}

int kp_cmd_rotate(kp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"stage", no_argument, NULL, 's'},
                                         {"activate", no_argument, NULL, 'a'},
                                         {"abandon", required_argument, NULL, 'A'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int stage = 0, activate = 0, c;
    unsigned long abandon = 0;
    unsigned workers = 0;
    char *end = NULL;
    while ((c = getopt_long(argc, argv, "saA:w:jh", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            stage = 1;
            break;
        case 'a':
            activate = 1;
            break;
        case 'A':
            abandon = strtoul(optarg, &end, 10);
            if (*end != '\0' || optarg[0] < '1' || optarg[0] > '9' || abandon > UINT32_MAX)
                return kp_cli_usage_error("rotate",
                                          "--abandon must be an integer from 1 to 4294967295");
            break;
        case 'w':
            if (kp_cli_workers("rotate", optarg, &workers) != KP_EXIT_OK)
                return KP_EXIT_USAGE;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            printf("Usage: keyplane rotate CHAIN --stage | --activate | --abandon N "
                   "[--workers N] [--json]\n\n"
                   "Two-phase rotation of a chain's protector; nothing is ever deleted.\n"
                   "  --stage     create vN+1 in the origin (or continue a staged one), replicate\n"
                   "              it to every keystore and prove it usable in each. Exit 1 when\n"
                   "              the proof fails somewhere; run it again once that is fixed.\n"
                   "  --activate  make the staged version the one wrap uses, only if it is proved\n"
                   "              usable in every keystore now (exit 4 naming the gap otherwise;\n"
                   "              exit 5 when no version is staged).\n"
                   "              The version active before stays, as previous.\n"
                   "  --abandon N give up vN, a version that never wrapped (staged, or made\n"
                   "              outside the lifecycle; exit 4 for any other): apply stops\n"
                   "              copying it, verify and status stop counting its gaps, wrap\n"
                   "              never uses it, the next stage takes a new number. Its keys\n"
                   "              stay where they are.\n");
            return KP_EXIT_OK;
        default:
            return kp_cli_bad_option("rotate", argv);
        }
    }
    if (optind + 1 != argc || stage + activate + (abandon > 0) != 1)
        return kp_cli_usage_error("rotate",
                                  "needs CHAIN and one of --stage, --activate or --abandon N");
    const char *chain = argv[optind];
    if (abandon > 0)
        return s_abandon(cli, chain, (uint32_t)abandon);
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    rc = kp_cli_lock(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    uint32_t version = 0;
    int verified = 1;
    kp_apply_opts aopts = {sizeof(aopts), workers, NULL, NULL, NULL};
    kp_status st = stage ? kp_chain_stage(cli->ctx, cli->policy, chain, &aopts, &version, &verified)
                         : kp_chain_activate(cli->ctx, cli->policy, chain, &version);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, stage ? "rotate --stage" : "rotate --activate");
    if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:i, s:b}", "chain", chain, "step",
                                    stage ? "stage" : "activate", "version", (int)version,
                                    "verified", verified));
    else if (stage && verified)
        kp_cli_info(cli, stdout,
                    "staged %s v%u: replicated and proved usable in every keystore; activate it "
                    "with 'keyplane rotate %s --activate'\n",
                    chain, version, chain);
    else if (stage)
        printf("staged %s v%u, NOT verified everywhere: %s\n", chain, version,
               kp_ctx_last_error(cli->ctx));
    else
        kp_cli_info(cli, stdout,
                    "activated %s v%u: wrap uses it from now on; older versions stay for old "
                    "envelopes and backups\n",
                    chain, version);
    return verified ? KP_EXIT_OK : KP_EXIT_FAIL;
}

int kp_cmd_retire(kp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"version", required_argument, NULL, 'V'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    unsigned long version = 0;
    char *end = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "V:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'V':
            version = strtoul(optarg, &end, 10);
            if (*end != '\0' || version == 0 || version > UINT32_MAX)
                return kp_cli_usage_error("retire", "--version must be a positive integer");
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            printf("Usage: keyplane retire CHAIN --version N [--json]\n\n"
                   "Marks a previous protector version retired. It stays in every keystore; it\n"
                   "is refused for the active or staged version and while the chain's retention\n"
                   "window still needs it (a backup taken while it was active may be restored).\n");
            return KP_EXIT_OK;
        default:
            return kp_cli_bad_option("retire", argv);
        }
    }
    if (optind + 1 != argc || version == 0)
        return kp_cli_usage_error("retire", "needs CHAIN and --version N");
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    rc = kp_cli_lock(cli);
    if (rc == KP_EXIT_OK) /* a SQL Server database that still needs it */
        rc = kp_cli_sql_retire_check(cli, argv[optind], (uint32_t)version);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_status st = kp_chain_retire(cli->ctx, cli->policy, argv[optind], (uint32_t)version);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "retire");
    if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:i, s:s}", "chain", argv[optind], "version",
                                    (int)version, "state", "retired"));
    else
        kp_cli_info(cli, stdout, "retired %s v%lu (kept in every keystore)\n", argv[optind],
                    version);
    return KP_EXIT_OK;
}

/* Moves one envelope file to the chain's active version. 1 rewrapped, 0 already there. */
static int s_rewrap_one(kp_cli *cli, const char *path, kp_status *st)
{
    kp_envelope *env = NULL, *fresh = NULL;
    *st = kp_cli_read_envelope(cli, path, &env);
    if (*st != KP_OK)
        return 0;
    kp_secret *dek = NULL;
    int moved = 0;
    *st = kp_chain_unwrap(cli->ctx, cli->policy, env, NULL, &dek, NULL);
    if (*st == KP_OK)
        *st = kp_chain_wrap(cli->ctx, cli->policy, kp_envelope_chain(env), NULL, dek, &fresh, NULL);
    kp_secret_free(dek);
    const kp_envelope_wrap *was = kp_envelope_get0(env, 0), *now = kp_envelope_get0(fresh, 0);
    if (*st == KP_OK &&
        (was->version != now->version || strcmp(was->fingerprint, now->fingerprint) != 0)) {
        *st = kp_cli_write_envelope(cli, path, fresh, NULL);
        moved = *st == KP_OK;
        if (moved && !cli->json) /* each file changed, by name: the operator's record */
            kp_cli_info(cli, stdout, "rewrapped %s: %s v%u -> v%u\n", path, kp_envelope_chain(env),
                        was->version, now->version);
    }
    if (*st != KP_OK && kp_ctx_last_error(cli->ctx)[0] != '\0')
        fprintf(stderr, "keyplane: error: %s: %s\n", path, kp_ctx_last_error(cli->ctx));
    kp_envelope_free(fresh);
    kp_envelope_free(env);
    return moved;
}

int kp_cmd_rewrap(kp_cli *cli, int argc, char **argv)
{
    int rc = kp_cli_simple_opts(
        cli, "rewrap",
        "Usage: keyplane rewrap [--json] FILE...\n\n"
        "Moves envelope files to their chain's active protector version: each DEK is\n"
        "unwrapped (with failover) and wrapped again, and the file replaced\n"
        "atomically, keeping its owner and mode (refused when they cannot be kept). One\n"
        "line names each file changed. The data the DEK encrypts is not touched.\n"
        "Envelopes already on the active version are left alone. Exit status 1 when\n"
        "any file failed.\n",
        false, argc, argv);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    if (optind >= argc)
        return kp_cli_usage_error("rewrap", "needs at least one envelope FILE");
    rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    size_t moved = 0, kept = 0, failed = 0;
    bool tty = isatty(STDERR_FILENO) != 0 && !cli->json;
    size_t total = (size_t)(argc - optind);
    for (int i = optind; i < argc; i++) {
        kp_status st = KP_OK;
        int m = s_rewrap_one(cli, argv[i], &st);
        moved += st == KP_OK && m;
        kept += st == KP_OK && !m;
        failed += st != KP_OK;
        if (tty && (i - optind + 1) % 50 == 0)
            kp_cli_info(cli, stderr, "\r[%d/%zu] rewrapping", i - optind + 1, total);
    }
    if (tty && total >= 50)
        kp_cli_info(cli, stderr, "\n");
    if (cli->json)
        kp_cli_print_json(json_pack("{s:I, s:I, s:I}", "rewrapped", (json_int_t)moved, "unchanged",
                                    (json_int_t)kept, "failed", (json_int_t)failed));
    else
        kp_cli_info(cli, stdout, "%zu rewrapped, %zu already on the active version, %zu failed\n",
                    moved, kept, failed);
    return failed == 0 ? KP_EXIT_OK : KP_EXIT_FAIL;
}
