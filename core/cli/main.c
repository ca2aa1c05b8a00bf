/*
 * keyplane: the command-line front end of libkeyplane.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "harden.h"
#include "state_dir.h"

static const kp_cli_cmd s_cmds[] = {
    {"plugins", "list loadable plugins: name, version, ABI, capabilities, path", kp_cmd_plugins},
    {"policy", "validate a policy file (policy validate [FILE])", kp_cmd_policy},
    {"init", "create the new, empty stores of provider instances (nothing else does)", kp_cmd_init},
    {"check", "check that provider instances are reachable and usable", kp_cmd_check},
    {"plan", "show what apply would create and copy", kp_cmd_plan},
    {"apply", "create and replicate protectors until every keystore holds every version",
     kp_cmd_apply},
    {"verify", "prove every replica holds the same usable key (versions x replicas)",
     kp_cmd_verify},
    {"status", "versions x replicas by fingerprint, rotation warnings", kp_cmd_status},
    {"restore", "rebuild a lost keystore of a chain from escrow or a replica", kp_cmd_restore},
    {"rotate", "stage a new protector version everywhere, then activate it", kp_cmd_rotate},
    {"retire", "mark a previous version retired once the retention window allows", kp_cmd_retire},
    {"rewrap", "move envelopes to the chain's active version", kp_cmd_rewrap},
    {"key",
     "one instance's keys: create, generate, import, list, replicate, export (public, PKCS#8, "
     "BYOK), backup and restore-backup",
     kp_cmd_key},
    {"wrap", "wrap a DEK with a chain's protector into an envelope", kp_cmd_wrap},
    {"unwrap", "unwrap an envelope, failing over across the chain's replicas", kp_cmd_unwrap},
    {"azure-sql",
     "print the commands that make a chain's key the TDE protector of its Azure SQL servers "
     "(azure-sql script CHAIN)",
     kp_cmd_azure_sql},
    {"secret", "secrets of the key hierarchy that are not keys: put, get, list", kp_cmd_secret},
    {"datakey",
     "data keys of a KMS-like store: generate, decrypt, reencrypt (to another key or context)",
     kp_cmd_datakey},
    {"backup",
     "database backups under S3 client-side encryption (KMS data keys), as RDS restores them: "
     "encrypt, decrypt",
     kp_cmd_backup},
    {"sqlserver",
     "SQL Server TDE certificates: import and export .cer/.pvk, restore and rotation T-SQL, "
     "the database inventory",
     kp_cmd_sqlserver},
};

static void s_usage(FILE *out)
{
    fprintf(out, "Usage: keyplane [OPTIONS] COMMAND [ARGS]\n"
                 "\n"
                 "Keeps the key chains of encrypted databases declared, replicated and verified.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(s_cmds) / sizeof(s_cmds[0]); i++)
        fprintf(out, "  %-9s %s\n", s_cmds[i].name, s_cmds[i].summary);
    fprintf(out,
            "\n"
            "Options:\n"
            "  -p, --policy FILE     policy file (default: $KEYPLANE_POLICY, else keyplane.yaml)\n"
            "  -P, --plugin-dir DIR  search DIR for plugins first (repeatable)\n"
            "      --json[=BOOL]     print results as JSON (one document on stdout, also for an\n"
            "                        error: {\"error\": {status, category, message, exit_code}})\n"
            "      --audit FILE      append audit events (JSON lines) to FILE ('-' = stderr)\n"
            "      --state-dir DIR   journals and locks (default: $KEYPLANE_STATE_DIR, else\n"
            "                        $XDG_STATE_HOME/keyplane, else ~/.local/state/keyplane)\n"
            "  -v, --verbose         more log output (repeat for debug)\n"
            "  -q, --quiet           only errors, problems and data: no progress or info\n"
            "  -V, --version         print the version\n"
            "  -h, --help            this help; 'keyplane COMMAND --help' for a command\n"
            "\n"
            "Secrets (DEKs, passphrases, private keys) are never taken from the command line:\n"
            "options that need one take a source: env:NAME, file:PATH, fd:N or stdin.\n"
            "\n"
            "Exit status: 0 success, 1 check or verification failed, 2 usage, 3 policy or\n"
            "plugin error (or an operation the plugin does not offer), 4 authentication,\n"
            "permission or refused by policy, 5 not found, already exists or nothing staged,\n"
            "6 transient (retry later), 7 integrity, 8 backend or I/O, 9 internal error;\n"
            "'plan --detailed-exitcode': 0 no changes, 2 changes, 1 findings or error.\n");
}

/* Plugin search order: --plugin-dir, KEYPLANE_PLUGIN_PATH, the plugins beside this binary
 * (the install layout's bin-to-libdir path, so a moved prefix with lib64 or a multiarch libdir
 * still finds its own plugins; else ../lib/keyplane/plugins, the build tree's layout), the
 * install directory. */
static kp_status s_plugin_dirs(kp_cli *cli, char **dirs, size_t ndirs)
{
    for (size_t i = 0; i < ndirs; i++) {
        char *abs = realpath(dirs[i], NULL);
        if (abs == NULL) {
            kp_cli_info(cli, stderr, "keyplane: warning: plugin directory %s does not exist\n",
                        dirs[i]);
            continue;
        }
        kp_status st = kp_ctx_add_plugin_dir(cli->ctx, abs);
        free(abs);
        if (st != KP_OK)
            return st;
    }
    kp_status st = kp_ctx_add_plugin_path(cli->ctx, secure_getenv("KEYPLANE_PLUGIN_PATH"));
    if (st != KP_OK)
        return st;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash != NULL) {
        *slash = '\0';
        char rel[PATH_MAX + 64];
        snprintf(rel, sizeof(rel), "%s/%s", exe, KEYPLANE_BIN_TO_PLUGINS);
        char *abs = realpath(rel, NULL);
        if (abs == NULL) {
            snprintf(rel, sizeof(rel), "%s/../lib/keyplane/plugins", exe);
            abs = realpath(rel, NULL);
        }
        if (abs != NULL) {
            st = kp_ctx_add_plugin_dir(cli->ctx, abs);
            free(abs);
            if (st != KP_OK)
                return st;
        }
    }
    return kp_ctx_add_plugin_dir(cli->ctx, kp_install_plugin_dir());
}

/*
 * Long global options may also follow the command ("keyplane plugins --plugin-dir D"), as
 * users type them. They are taken out of argv before the command parses its own options; short
 * forms are only global before the command, where they cannot clash with a command's own.
 * Returns the new argc, or -1 on a usage error.
 */
static int s_take_globals(kp_cli *cli, int argc, char **argv, int from, char **dirs, size_t *ndirs,
                          const char **audit_path, int *quiet)
{
    static const char *with_value[] = {"--policy", "--plugin-dir", "--audit", "--state-dir"};
    int out = from;
    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < argc)
                argv[out++] = argv[i++];
            break;
        }
        const char *value = NULL;
        int which = -1;
        for (int k = 0; k < 4; k++) {
            size_t n = strlen(with_value[k]);
            if (strncmp(a, with_value[k], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                which = k;
                value = a[n] == '=' ? a + n + 1 : NULL;
            }
        }
        if (which >= 0) {
            if (value == NULL) {
                if (i + 1 >= argc) {
                    kp_cli_usage_error("", "option '%s' needs a value", a);
                    return -1;
                }
                value = argv[++i];
            }
            if (which == 0)
                cli->policy_path = value;
            else if (which == 2)
                *audit_path = value;
            else if (which == 3)
                kp_cli_set_state_dir(value);
            else if (*ndirs < 16)
                dirs[(*ndirs)++] = (char *)value;
            continue;
        }
        if (strcmp(a, "--verbose") == 0) {
            cli->verbose++;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            *quiet = 1;
            continue;
        }
        /* -q and -v (also -vv, -qv) mean the same after the command: no command has its own. */
        if (a[0] == '-' && a[1] != '\0' && strspn(a + 1, "qv") == strlen(a + 1)) {
            for (const char *f = a + 1; *f != '\0'; f++) {
                if (*f == 'q')
                    *quiet = 1;
                else
                    cli->verbose++;
            }
            continue;
        }
        if (strncmp(a, "--json", 6) == 0 && (a[6] == '\0' || a[6] == '=')) {
            if (kp_cli_flag("", "json", a[6] == '=' ? a + 7 : NULL, &cli->json) != KP_EXIT_OK)
                return -1;
            continue;
        }
        argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

/* The audit events' command and policy (docs/cli.md, "Audit output"): the command, the
 * subcommand of key, policy, azure-sql, datakey and backup, and the option names as given (after
 * the global options were taken out), without their values or the arguments; the policy's canonical
 * path. */
static kp_status s_audit_command(kp_cli *cli, int argc, char **argv)
{
    char command[512] = "";
    size_t n = 0;
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        bool opt = a[0] == '-' && a[1] != '\0'; /* "-" is stdin, an argument */
        bool sub = i == 1 && !opt &&
                   (strcmp(argv[0], "key") == 0 || strcmp(argv[0], "policy") == 0 ||
                    strcmp(argv[0], "azure-sql") == 0 || strcmp(argv[0], "datakey") == 0 ||
                    strcmp(argv[0], "backup") == 0);
        if (i > 0 && !opt && !sub)
            continue;
        /* --name=VALUE gives --name; -xVALUE gives -x */
        size_t len = !opt ? strlen(a) : a[1] == '-' ? strcspn(a, "=") : 2;
        if (n + len + 2 > sizeof(command))
            break;
        if (n > 0)
            command[n++] = ' ';
        memcpy(command + n, a, len);
        n += len;
        command[n] = '\0';
    }
    char *canon = realpath(cli->policy_path, NULL);
    kp_status st =
        kp_ctx_set_audit_context(cli->ctx, command, canon != NULL ? canon : cli->policy_path);
    free(canon);
    return st;
}

/* Whether --json (or --json=BOOL, the last one) is anywhere before "--", before or after the
 * command: set before anything is parsed, so that even a usage error answers with a JSON error
 * object (kp_cli_finish). A value that is no boolean asks for JSON too: its usage error comes
 * later. */
static bool s_json_requested(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--json", 6) != 0 || (a[6] != '\0' && a[6] != '='))
            continue;
        bool value = true;
        if (a[6] == '=' && !kpk_param_bool(a + 7, &value))
            value = true;
        json = value;
    }
    return json;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"plugin-dir", required_argument, NULL, 'P'},
        {"json", optional_argument, NULL, 'j'},
        {"audit", required_argument, NULL, 'a'},
        {"state-dir", required_argument, NULL, 's'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    kp_cli cli = {0};
    opterr = 0; /* kp_cli_bad_option says what is wrong, in one line (and in --json) */
    /* Reports and progress interleave on stdout and stderr: keep them in order. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *dirs[16];
    size_t ndirs = 0;
    const char *audit_path = NULL;
    int quiet = 0;
    int c;
    cli.json = s_json_requested(argc, argv);
    /* '+': stop at the command; options after it belong to the command. */
    while ((c = getopt_long(argc, argv, "+p:P:vqVh", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            cli.policy_path = optarg;
            break;
        case 'P':
            if (ndirs == 16)
                return kp_cli_finish(&cli, kp_cli_usage_error("", "too many --plugin-dir options"));
            dirs[ndirs++] = optarg;
            break;
        case 'j':
            if (kp_cli_flag("", "json", optarg, &cli.json) != KP_EXIT_OK)
                return kp_cli_finish(&cli, KP_EXIT_USAGE);
            break;
        case 'a':
            audit_path = optarg;
            break;
        case 's':
            kp_cli_set_state_dir(optarg);
            break;
        case 'v':
            cli.verbose++;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'V':
            printf("keyplane %s (provider ABI %d.%d)\n", kp_version(), KP_ABI_MAJOR, KP_ABI_MINOR);
            return KP_EXIT_OK;
        case 'h':
            s_usage(stdout);
            return KP_EXIT_OK;
        default: /* getopt said why on stderr; the usage line names the option, not a value */
            return kp_cli_finish(&cli, kp_cli_bad_option("", argv));
        }
    }
    if (optind >= argc) {
        s_usage(stderr);
        kp_cli_note_error(KP_ERR_INVALID_ARG, "no command given (see 'keyplane --help')");
        return kp_cli_finish(&cli, KP_EXIT_USAGE);
    }
    const kp_cli_cmd *cmd = NULL;
    for (size_t i = 0; i < sizeof(s_cmds) / sizeof(s_cmds[0]); i++)
        if (strcmp(argv[optind], s_cmds[i].name) == 0)
            cmd = &s_cmds[i];
    if (cmd == NULL)
        return kp_cli_finish(&cli, kp_cli_usage_error("", "unknown command '%s'", argv[optind]));
    cli.command = cmd->name;
    argc = s_take_globals(&cli, argc, argv, optind + 1, dirs, &ndirs, &audit_path, &quiet);
    if (argc < 0)
        return kp_cli_finish(&cli, KP_EXIT_USAGE);
    if (cli.policy_path == NULL)
        cli.policy_path = getenv("KEYPLANE_POLICY");
    if (cli.policy_path == NULL)
        cli.policy_path = "keyplane.yaml";

    cli.quiet = quiet != 0;
    if (kp_ctx_new(&cli.ctx) != KP_OK)
        return kp_cli_finish(&cli, kp_cli_error(KP_ERR_NOMEM, "out of memory"));
    kp_log_level level = quiet              ? KP_LOG_ERROR
                         : cli.verbose >= 2 ? KP_LOG_DEBUG
                         : cli.verbose == 1 ? KP_LOG_INFO
                                            : KP_LOG_WARN;
    kp_ctx_set_log(cli.ctx, level, stderr);
    kp_cli_harden_warn(cli.quiet);
    int rc = KP_EXIT_OK;
    if (audit_path != NULL) {
        if (strcmp(audit_path, "-") == 0) {
            cli.audit = stderr;
        } else {
            /* Audit logs hold no secrets, but who did what is still nobody else's business. */
            mode_t old = umask(077);
            cli.audit = fopen(audit_path, "a");
            umask(old);
            if (cli.audit == NULL)
                rc = kp_cli_error(KP_ERR_IO, "cannot open the audit file %s: %s", audit_path,
                                  strerror(errno));
        }
        kp_ctx_set_audit(cli.ctx, cli.audit);
        if (rc == KP_EXIT_OK && s_audit_command(&cli, argc - optind, argv + optind) != KP_OK)
            rc = kp_cli_fail(&cli, KP_ERR_INTERNAL, "audit");
    }
    if (rc == KP_EXIT_OK) {
        kp_status st = s_plugin_dirs(&cli, dirs, ndirs);
        if (st != KP_OK)
            rc = kp_cli_fail(&cli, st, "plugin directories");
    }
    if (rc == KP_EXIT_OK) {
        optind++;
        int sub_argc = argc - optind + 1;
        char **sub_argv = argv + optind - 1; /* sub_argv[0] is the command name */
        optind = 0;                          /* reset getopt for the subcommand */
        rc = cmd->run(&cli, sub_argc, sub_argv);
    }
    kp_policy_free(cli.policy);
    kp_ctx_free(cli.ctx);
    if (cli.audit != NULL && cli.audit != stderr)
        fclose(cli.audit);
    return kp_cli_finish(&cli, rc);
}
