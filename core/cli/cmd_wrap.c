/*
 * keyplane wrap / unwrap: DEK <-> envelope with a chain's protector, failing over across the
 * chain's replicas. DEKs are read from a source (never argv) and written only to a file (a new
 * one 0600, a replaced one keeping its owner and mode) or a non-terminal stdout.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

#define KP_DEK_MAX 512

static void s_wrap_help(void)
{
    printf("Usage: keyplane wrap --chain CHAIN [--dek SOURCE] [--replica INSTANCE]\n"
           "                     [--out FILE] [--json]\n"
           "\n"
           "Wraps a DEK with the chain's active protector version (the newest every keystore\n"
           "holds, for a chain never rotated) and writes the envelope\n"
           "(one line of JSON: chain, protector fingerprint and version, algorithm, wrapped\n"
           "bytes). The first replica of the chain that answers wraps, unless --replica.\n"
           "\n"
           "  --chain CHAIN       chain of the policy\n"
           "  --dek SOURCE        where the DEK's raw bytes come from: env:NAME, file:PATH,\n"
           "                      fd:N or stdin (default stdin); at most 512 bytes\n"
           "  --replica INSTANCE  wrap in this instance only\n"
           "  --out FILE          write the envelope to FILE, not stdout (a new file 0600;\n"
           "                      one replaced keeps its owner and mode)\n"
           "  --json              print {chain, instance, version, fingerprint, alg, out,\n"
           "                      envelope}; needs --out\n");
}

static void s_unwrap_help(void)
{
    printf("Usage: keyplane unwrap [--in FILE] [--replica INSTANCE] [--out FILE] [--json]\n"
           "\n"
           "Unwraps an envelope made by 'keyplane wrap'. The chain's replicas, then its\n"
           "escrow instances, then its origin are tried in policy order (restore_only ones\n"
           "only when named with --replica); a failing or unreachable one is\n"
           "skipped with a warning, and so is one whose key fingerprint differs from the\n"
           "envelope's. The DEK is written raw to --out (a new file 0600; one replaced keeps\n"
           "its owner and mode) or to stdout, which must not be a terminal.\n"
           "\n"
           "  --in FILE           the envelope (default stdin)\n"
           "  --replica INSTANCE  use this instance only, no failover\n"
           "  --out FILE          write the DEK to FILE\n"
           "  --json              print {chain, instance, version, bytes, out}; needs --out\n");
}

/* The options of wrap and unwrap; each command's table names only its own. */
typedef struct s_opts {
    const char *chain, *dek, *in, *replica, *out;
} s_opts;

/* KP_EXIT_OK to go on, -1 once help is printed, else a usage error's exit code. */
static int s_parse(kp_cli *cli, const char *cmd, const struct option *table, const char *optstring,
                   void (*help)(void), int argc, char **argv, s_opts *o)
{
    int c;
    while ((c = getopt_long(argc, argv, optstring, table, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->chain = optarg;
            break;
        case 'd':
            o->dek = optarg;
            break;
        case 'i':
            o->in = optarg;
            break;
        case 'r':
            o->replica = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            help();
            return -1;
        default:
            return kp_cli_bad_option(cmd, argv);
        }
    }
    return KP_EXIT_OK;
}

/* The DEK from source: at most KP_DEK_MAX bytes, not empty. */
static int s_read_dek(const char *source, kp_secret **dek)
{
    char err[256];
    kp_status st = kp_secret_read_source(source, KP_DEK_MAX, 0, dek, err, sizeof(err));
    if (st != KP_OK) {
        fprintf(stderr, "keyplane: error: %s\n", err);
        return kp_cli_exit_code(st);
    }
    if (kp_secret_len(*dek) == 0) {
        kp_secret_free(*dek);
        *dek = NULL;
        fprintf(stderr, "keyplane: error: the DEK from %s is empty\n", source);
        return KP_EXIT_USAGE;
    }
    return KP_EXIT_OK;
}

int kp_cmd_wrap(kp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"chain", required_argument, NULL, 'c'},
                                         {"dek", required_argument, NULL, 'd'},
                                         {"replica", required_argument, NULL, 'r'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    s_opts o = {.dek = "stdin", .out = "-"};
    int rc = s_parse(cli, "wrap", opts, "c:d:r:o:jh", s_wrap_help, argc, argv, &o);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    if (optind < argc)
        return kp_cli_usage_error("wrap",
                                  "unexpected argument '%s' (a DEK is never taken from "
                                  "the command line: use --dek)",
                                  argv[optind]);
    if (o.chain == NULL)
        return kp_cli_usage_error("wrap", "--chain is required");
    if (!kp_secret_source_valid(o.dek))
        return kp_cli_usage_error("wrap", "--dek takes env:NAME, file:PATH, fd:N or stdin");
    if (cli->json && strcmp(o.out, "-") == 0)
        return kp_cli_usage_error("wrap", "--json needs --out for the envelope");
    rc = kp_cli_load_policy(cli);
    kp_secret *dek = NULL;
    if (rc == KP_EXIT_OK)
        rc = s_read_dek(o.dek, &dek);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_envelope *env = NULL;
    char used[KP_NAME_MAX] = "";
    char *text = NULL;
    kp_status st = kp_chain_wrap(cli->ctx, cli->policy, o.chain, o.replica, dek, &env, used);
    kp_secret_free(dek);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "wrap");
    st = kp_cli_write_envelope(cli, o.out, env, &text);
    const kp_envelope_wrap *w = kp_envelope_get0(env, 0);
    if (st == KP_OK && cli->json) {
        json_t *envj = json_loads(text, 0, NULL);
        kp_cli_print_json(json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:o}", "chain", o.chain,
                                    "instance", used, "version", (int)w->version, "fingerprint",
                                    w->fingerprint, "alg", kp_wrap_alg_name(w->alg), "out", o.out,
                                    "envelope", envj));
    } else if (st == KP_OK && strcmp(o.out, "-") != 0) {
        kp_cli_info(cli, stderr,
                    "keyplane: wrapped with %s v%u (%s, fingerprint %.16s...) in %s -> %s\n",
                    o.chain, w->version, kp_wrap_alg_name(w->alg), w->fingerprint, used, o.out);
    }
    kp_free(text);
    kp_envelope_free(env);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_exit_code(st);
}

int kp_cmd_unwrap(kp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"in", required_argument, NULL, 'i'},  {"replica", required_argument, NULL, 'r'},
        {"out", required_argument, NULL, 'o'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0}};
    s_opts o = {.in = "-", .out = "-"};
    int rc = s_parse(cli, "unwrap", opts, "i:r:o:jh", s_unwrap_help, argc, argv, &o);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    if (optind < argc)
        return kp_cli_usage_error("unwrap", "unexpected argument '%s'", argv[optind]);
    if (strcmp(o.out, "-") == 0 && cli->json)
        return kp_cli_usage_error("unwrap", "--json needs --out: the DEK and the JSON report "
                                            "cannot share stdout");
    if (strcmp(o.out, "-") == 0 && isatty(STDOUT_FILENO))
        return kp_cli_usage_error("unwrap", "refusing to write a DEK to a terminal: use --out "
                                            "FILE or redirect stdout");
    rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_envelope *env = NULL;
    kp_secret *dek = NULL;
    char used[KP_NAME_MAX] = "";
    kp_status st = kp_cli_read_envelope(cli, o.in, &env);
    if (st != KP_OK)
        return kp_cli_exit_code(st);
    size_t wrap = 0;
    st = kp_chain_unwrap_used(cli->ctx, cli->policy, env, o.replica, &dek, used, &wrap);
    if (st != KP_OK)
        rc = kp_cli_fail(cli, st, "unwrap");
    if (st == KP_OK)
        st = kp_cli_write_secret(cli, o.out, kp_secret_cdata(dek), kp_secret_len(dek));
    if (st == KP_OK && cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:i, s:i, s:s}", "chain", kp_envelope_chain(env),
                                    "instance", used, "version",
                                    (int)kp_envelope_get0(env, wrap)->version, "bytes",
                                    (int)kp_secret_len(dek), "out", o.out));
    else if (st == KP_OK && strcmp(o.out, "-") != 0)
        kp_cli_info(cli, stderr, "keyplane: unwrapped %zu-byte DEK of chain %s in %s -> %s\n",
                    kp_secret_len(dek), kp_envelope_chain(env), used, o.out);
    if (rc == KP_EXIT_OK)
        rc = st == KP_OK ? KP_EXIT_OK : kp_cli_exit_code(st);
    kp_secret_free(dek);
    kp_envelope_free(env);
    return rc;
}
