/*
 * keyplane wrap / unwrap: DEK <-> envelope with a chain's protector, failing over across the
 * chain's replicas. DEKs are read from a source (never argv) and written only to a 0600 file or
 * a non-terminal stdout.
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
           "  --out FILE          write the envelope to FILE (mode 0600), not stdout\n"
           "  --json              print {chain, instance, version, fingerprint, alg, out,\n"
           "                      envelope}; needs --out\n");
}

static void s_unwrap_help(void)
{
    printf("Usage: keyplane unwrap [--in FILE] [--replica INSTANCE] [--out FILE] [--json]\n"
           "\n"
           "Unwraps an envelope made by 'keyplane wrap'. The chain's replicas (then its\n"
           "escrow instances) are tried in policy order; a failing or unreachable one is\n"
           "skipped with a warning, and so is one whose key fingerprint differs from the\n"
           "envelope's. The DEK is written raw to --out (mode 0600) or to stdout, which must\n"
           "not be a terminal.\n"
           "\n"
           "  --in FILE           the envelope (default stdin)\n"
           "  --replica INSTANCE  use this instance only, no failover\n"
           "  --out FILE          write the DEK to FILE\n"
           "  --json              print {chain, instance, version, bytes, out}; needs --out\n");
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
    const char *chain = NULL, *dek_src = "stdin", *replica = NULL, *out = "-";
    int c;
    while ((c = getopt_long(argc, argv, "c:d:r:o:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            chain = optarg;
            break;
        case 'd':
            dek_src = optarg;
            break;
        case 'r':
            replica = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            s_wrap_help();
            return KP_EXIT_OK;
        default:
            return kp_cli_usage_error("wrap", "unknown option");
        }
    }
    if (optind < argc)
        return kp_cli_usage_error("wrap",
                                  "unexpected argument '%s' (a DEK is never taken from "
                                  "the command line: use --dek)",
                                  argv[optind]);
    if (chain == NULL)
        return kp_cli_usage_error("wrap", "--chain is required");
    if (!kp_secret_source_valid(dek_src))
        return kp_cli_usage_error("wrap", "--dek takes env:NAME, file:PATH, fd:N or stdin");
    if (cli->json && strcmp(out, "-") == 0)
        return kp_cli_usage_error("wrap", "--json needs --out for the envelope");
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;

    char err[256];
    kp_secret *dek = NULL;
    kp_status st = kp_secret_read_source(dek_src, KP_DEK_MAX, 0, &dek, err, sizeof(err));
    if (st != KP_OK) {
        fprintf(stderr, "keyplane: error: %s\n", err);
        return kp_cli_exit_code(st);
    }
    if (kp_secret_len(dek) == 0) {
        kp_secret_free(dek);
        fprintf(stderr, "keyplane: error: the DEK from %s is empty\n", dek_src);
        return KP_EXIT_USAGE;
    }
    kp_envelope *env = NULL;
    char used[KP_NAME_MAX] = "";
    st = kp_chain_wrap(cli->ctx, cli->policy, chain, replica, dek, &env, used);
    kp_secret_free(dek);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "wrap");
    char *text = NULL;
    st = kp_envelope_encode(env, &text);
    if (st == KP_OK) {
        size_t len = strlen(text);
        text[len] = '\n'; /* replaces the NUL for writing; restored below */
        st = kp_cli_write_file(cli, out, text, len + 1);
        text[len] = '\0';
    }
    const kp_envelope_wrap *w = kp_envelope_get0(env, 0);
    if (st == KP_OK && cli->json) {
        json_t *envj = json_loads(text, 0, NULL);
        kp_cli_print_json(json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:o}", "chain", chain,
                                    "instance", used, "version", (int)w->version, "fingerprint",
                                    w->fingerprint, "alg", kp_wrap_alg_name(w->alg), "out", out,
                                    "envelope", envj));
    } else if (st == KP_OK && strcmp(out, "-") != 0) {
        fprintf(stderr, "keyplane: wrapped with %s v%u (%s, fingerprint %.16s...) in %s -> %s\n",
                chain, w->version, kp_wrap_alg_name(w->alg), w->fingerprint, used, out);
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
    const char *in = "-", *replica = NULL, *out = "-";
    int c;
    while ((c = getopt_long(argc, argv, "i:r:o:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            in = optarg;
            break;
        case 'r':
            replica = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            s_unwrap_help();
            return KP_EXIT_OK;
        default:
            return kp_cli_usage_error("unwrap", "unknown option");
        }
    }
    if (optind < argc)
        return kp_cli_usage_error("unwrap", "unexpected argument '%s'", argv[optind]);
    if (strcmp(out, "-") == 0 && cli->json)
        return kp_cli_usage_error("unwrap", "--json needs --out: the DEK and the JSON report "
                                            "cannot share stdout");
    if (strcmp(out, "-") == 0 && isatty(STDOUT_FILENO))
        return kp_cli_usage_error("unwrap", "refusing to write a DEK to a terminal: use --out "
                                            "FILE or redirect stdout");
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    char *text = NULL;
    size_t len = 0;
    kp_status st = kp_cli_read_file(cli, in, KP_ENVELOPE_MAX, &text, &len);
    if (st != KP_OK)
        return kp_cli_exit_code(st);
    kp_envelope *env = NULL;
    char err[256];
    st = kp_envelope_decode(text, len, &env, err, sizeof(err));
    free(text);
    if (st != KP_OK) {
        fprintf(stderr, "keyplane: error: %s: %s\n", in, err);
        return kp_cli_exit_code(st);
    }
    kp_secret *dek = NULL;
    char used[KP_NAME_MAX] = "";
    st = kp_chain_unwrap(cli->ctx, cli->policy, env, replica, &dek, used);
    if (st != KP_OK) {
        kp_envelope_free(env);
        return kp_cli_fail(cli, st, "unwrap");
    }
    st = kp_cli_write_file(cli, out, kp_secret_cdata(dek), kp_secret_len(dek));
    if (st == KP_OK && cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:i, s:i, s:s}", "chain", kp_envelope_chain(env),
                                    "instance", used, "version",
                                    (int)kp_envelope_get0(env, 0)->version, "bytes",
                                    (int)kp_secret_len(dek), "out", out));
    else if (st == KP_OK && strcmp(out, "-") != 0)
        fprintf(stderr, "keyplane: unwrapped %zu-byte DEK of chain %s in %s -> %s\n",
                kp_secret_len(dek), kp_envelope_chain(env), used, out);
    kp_secret_free(dek);
    kp_envelope_free(env);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_exit_code(st);
}
