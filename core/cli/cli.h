/*
 * The keyplane command: shared state and helpers of the subcommands. The command is thin: it
 * parses arguments, calls libkeyplane and prints.
 */
#ifndef KP_CLI_H
#define KP_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/params.h>

/* Exit codes (docs/cli.md). */
enum {
    KP_EXIT_OK = 0,
    KP_EXIT_FAIL = 1,      /* the operation ran and found a problem (check failed, ...) */
    KP_EXIT_USAGE = 2,     /* bad command line */
    KP_EXIT_CONFIG = 3,    /* policy invalid, plugin refused, operation the plugin does not offer */
    KP_EXIT_AUTH = 4,      /* credentials, permissions, refused by policy */
    KP_EXIT_NOT_FOUND = 5, /* key, chain, instance, file missing (or already there), nothing in
                              the state a command needs (no staged version to activate) */
    KP_EXIT_TRANSIENT = 6, /* unavailable, timeout, throttled, lost to a concurrent writer */
    KP_EXIT_INTEGRITY = 7, /* data or key did not verify */
    KP_EXIT_BACKEND = 8,   /* provider or local I/O error */
    KP_EXIT_INTERNAL = 9   /* out of memory or a bug */
};

typedef struct kp_cli {
    const char *command; /* the command run ("key"), NULL before it is known */
    kp_ctx *ctx;
    const char *policy_path;
    kp_policy *policy;
    bool json;
    bool quiet; /* -q: errors, problems and data only (kp_cli_info) */
    int verbose;
    FILE *audit;
} kp_cli;

typedef struct kp_cli_cmd {
    const char *name;
    const char *summary;
    int (*run)(kp_cli *cli, int argc, char **argv);
} kp_cli_cmd;

/* cli_util.c */
/* What -q drops, in one place: informational text (what a command did or is about to do,
 * progress, warnings that change nothing) is printed to out through here, and not at all when
 * cli->quiet. Errors, problems the user must act on (failed steps, findings, gaps, a result that
 * is NOT what was asked) and the data a command exists to produce are printed directly. */
void kp_cli_info(const kp_cli *cli, FILE *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int kp_cli_exit_code(kp_status st);
/* Every error goes through one of the four below, so --json can print it: "keyplane: error:
 * MESSAGE" on stderr, the message kept as the run's error (the first one reported), the exit
 * code for st returned. */
int kp_cli_error(kp_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* kp_cli_error with "WHAT: " and the context's detail (else the status's text). */
int kp_cli_fail(kp_cli *cli, kp_status st, const char *what);
/* The library's last error text (else st's) without the "WHAT: " it may begin with. */
const char *kp_cli_detail(kp_cli *cli, kp_status st, const char *what);
/* "keyplane CMD: MESSAGE" and "Try 'keyplane CMD --help'." on stderr; KP_ERR_INVALID_ARG as the
 * run's error; returns KP_EXIT_USAGE. */
int kp_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A flag given bare (--force: value NULL, true) or with a boolean (--force=no): KP_EXIT_OK with
 * *out set, else the usage error's exit code ("--NAME=VALUE: the value must be true or ..."). */
int kp_cli_flag(const char *cmd, const char *name, const char *value, bool *out);
/* The value of --workers (1 to 256, the library's bound): KP_EXIT_OK, or the usage error. */
int kp_cli_workers(const char *cmd, const char *value, unsigned *out);
/* The value of a --version option, a version number from 1 to UINT32_MAX in decimal: KP_EXIT_OK
 * with *out set, else the usage error "WHY" (each command words its own). digits_only: nothing
 * before the digits; without it, blanks and a '+' may lead them as strtoul reads them (never a
 * '-'). */
int kp_cli_version_opt(const char *cmd, const char *value, bool digits_only, const char *why,
                       uint32_t *out);
/* The value of option --NAME, a secret's source (env:NAME, file:PATH, fd:N or stdin;
 * kp_secret_source_valid): KP_EXIT_OK, else the usage error "--NAME takes env:NAME, file:PATH,
 * fd:N or stdin" or, with never_itself, "--NAME takes a source (env:NAME, file:PATH, fd:N or
 * stdin), never the NAME itself". */
int kp_cli_source_opt(const char *cmd, const char *name, const char *value, bool never_itself);
/* The usage error of an option getopt_long refused (unknown, or missing its value): "bad option
 * 'OPT'". */
int kp_cli_bad_option(const char *cmd, char **argv);
/* Keeps the run's error without printing it (the path printed it in its own form). */
void kp_cli_note_error(kp_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The end of every run: with --json, a run that failed (rc not 0) and printed no document
 * prints the error object {"error": {status, category, message, exit_code}} on stdout, so
 * stdout holds exactly one JSON document. Returns rc. */
int kp_cli_finish(const kp_cli *cli, int rc);
/* Loads and validates cli->policy_path into cli->policy; prints diagnostics on failure. */
int kp_cli_load_policy(kp_cli *cli);
/* Takes the policy's lock (a .lock file in the state directory named by the policy file's
 * canonical path, symbolic links resolved: state_dir.c; flock) for commands that change keystores,
 * so two runs on one machine through any path to one policy file never interleave their writes;
 * waits, saying so, while another run holds it. Held until the process exits. Returns
 * KP_EXIT_OK, or an exit code once it has said why there is no lock (no lock, no run). */
int kp_cli_lock(kp_cli *cli);
/* Writes data to path atomically ("-" = stdout): a new file is 0600, a replaced one keeps its
 * owner, group and mode, or nothing is written. */
kp_status kp_cli_write_file(kp_cli *cli, const char *path, const void *data, size_t len);
/* kp_cli_write_file for a secret (a DEK, a key backup): a file it would replace that group or
 * others may read is refused, not kept so, and so is anything at path another user owns (a FIFO
 * planted to read from, a file whose owner the new one would keep). */
kp_status kp_cli_write_secret(kp_cli *cli, const char *path, const void *data, size_t len);
/* Whether a secret that must replace nothing can go to path ("-": stdout, the caller's to judge),
 * checked before a store is asked for it: KP_OK when nothing is there, or a FIFO the user owns
 * (*fifo); else KP_ERR_EXISTS ("PATH exists: ...") or the error, said on stderr. */
kp_status kp_cli_new_secret_ok(kp_cli *cli, const char *path, bool *fifo);
/* Writes a secret (a data key's plaintext) to a new file, created with O_EXCL and mode 0600,
 * synced, removed again when it cannot be written whole; into a FIFO the user owns, or to
 * stdout for "-"; anything else at path is refused (kp_cli_new_secret_ok). Says why on stderr. */
kp_status kp_cli_write_new_secret(kp_cli *cli, const char *path, const void *data, size_t len);
/* Reads a whole file ("-" = stdin), at most max bytes; caller frees. */
kp_status kp_cli_read_file(kp_cli *cli, const char *path, size_t max, char **data, size_t *len);
/* Reads and decodes an envelope file ("-" = stdin), saying on stderr what is wrong with it. */
kp_status kp_cli_read_envelope(kp_cli *cli, const char *path, kp_envelope **env);
/* Writes env as one line to path ("-" = stdout); *text, when text is not NULL, receives the
 * encoded envelope (without the line end; free it with kp_free). */
kp_status kp_cli_write_envelope(kp_cli *cli, const char *path, const kp_envelope *env, char **text);
/* A JSON string of s; bytes that are not valid UTF-8 (a cut name, a Latin-1 path) become '?',
 * so a report is never lost to one odd byte. */
void *kp_cli_jstr(const char *s);
/* Prints a jansson value as one line on stdout and frees it. */
void kp_cli_print_json(void *json);
/* True when argv has -h/--help before "--". */
bool kp_cli_wants_help(int argc, char **argv);
const char *kp_cli_caps(uint32_t caps, char *buf, size_t len);
/* Parses the options of a command that takes only --json and --help (stop_at_arg: stop at the
 * first argument, a subcommand whose own options follow): KP_EXIT_OK to go on, -1 once usage
 * is printed for --help, else the exit code of a usage error. */
int kp_cli_simple_opts(kp_cli *cli, const char *cmd, const char *usage, bool stop_at_arg, int argc,
                       char **argv);
/* The subcommand of a command that has them (policy, secret, datakey, ...): the command's own
 * options (kp_cli_simple_opts with usage), then one of subs (NULL-ended). KP_EXIT_OK with *which
 * its index, *argc and *argv shifted to start at it and getopt reset for its own options; -1
 * once usage is printed; else the usage error's exit code ("missing subcommand (A, B)",
 * "unknown subcommand 'X' (expected A, B)"). */
int kp_cli_subcommand(kp_cli *cli, const char *cmd, const char *usage, const char *const *subs,
                      int *argc, char ***argv, size_t *which);
/* For a command whose arguments are provider instances (init, check): kp_cli_simple_opts, the
 * policy, then every INSTANCE argument (from optind) checked to be one of its instances.
 * KP_EXIT_OK to go on, -1 once usage is printed, else the exit code. */
int kp_cli_instance_args(kp_cli *cli, const char *cmd, const char *usage, int argc, char **argv);
/* Prints "no WHAT 'NAME' in POLICY" and returns KP_EXIT_NOT_FOUND. */
int kp_cli_not_in_policy(kp_cli *cli, const char *what, const char *name);
/* The policy loaded and instance NAME opened into *inst, after checking that it makes data keys
 * (else "NAME (plugin P) makes no data keys (its capabilities: ...): NEED", exit 3). */
int kp_cli_open_datakey(kp_cli *cli, const char *name, const char *need, kp_instance **inst);
/* KEY=VALUE options (secret --meta, datakey --context): kp_meta pairs whose keys are copies and
 * whose values point into the argument. */
#define KP_CLI_PAIRS_MAX 16
typedef struct kp_cli_pairs {
    kp_meta meta[KP_CLI_PAIRS_MAX];
    char keys[KP_CLI_PAIRS_MAX][128];
    size_t n;
} kp_cli_pairs;
/* Adds the value of --NAME to p: KP_EXIT_OK, else the usage error of cmd: "--NAME takes
 * KEY=VALUE, at most 16 times", a key not of [a-z0-9_.-] (the ABI's rule for metadata and
 * context keys), or a key given twice. The value is never echoed. */
int kp_cli_pair_opt(const char *cmd, const char *name, const char *value, kp_cli_pairs *p);
/* The pairs as a JSON object (a json_t *). */
void *kp_cli_pairs_json(const kp_cli_pairs *p);
/* True when chain ch keeps its protector in instance name (origin, replica or escrow), or with
 * secret_copies also an encrypted copy of it (a secret replica). */
bool kp_cli_chain_holds(const kp_chain_policy *ch, const char *name, bool secret_copies);

/* backend_id.c: whether instance's plugin is azure-keyvault, whose backend id is a Key Vault
 * key id (kid) with its version; and the backend id of a key version in the JSON object obj:
 * "backend_id" when the store reports one, and "kid" too for a Key Vault. */
bool kp_cli_backend_is_kid(const kp_cli *cli, const char *instance);
void kp_cli_backend_id_json(const kp_cli *cli, void *obj, const char *instance,
                            const char *backend_id);

/* cmd_init.c: opens instance name and initialises its store (kp_instance_init): KP_OK,
 * KP_ERR_EXISTS when it was initialised already, KP_ERR_UNSUPPORTED when its plugin makes no
 * stores; the context's error text says why otherwise. */
kp_status kp_cli_init_instance(kp_cli *cli, const char *name);

/* Subcommands. */
int kp_cmd_plugins(kp_cli *cli, int argc, char **argv);
int kp_cmd_policy(kp_cli *cli, int argc, char **argv);
int kp_cmd_check(kp_cli *cli, int argc, char **argv);
int kp_cmd_init(kp_cli *cli, int argc, char **argv);
int kp_cmd_key(kp_cli *cli, int argc, char **argv);
int kp_cmd_wrap(kp_cli *cli, int argc, char **argv);
int kp_cmd_unwrap(kp_cli *cli, int argc, char **argv);
int kp_cmd_plan(kp_cli *cli, int argc, char **argv);
int kp_cmd_apply(kp_cli *cli, int argc, char **argv);
int kp_cmd_verify(kp_cli *cli, int argc, char **argv);
int kp_cmd_status(kp_cli *cli, int argc, char **argv);
int kp_cmd_restore(kp_cli *cli, int argc, char **argv);
int kp_cmd_rotate(kp_cli *cli, int argc, char **argv);
int kp_cmd_retire(kp_cli *cli, int argc, char **argv);
int kp_cmd_rewrap(kp_cli *cli, int argc, char **argv);
int kp_cmd_azure_sql(kp_cli *cli, int argc, char **argv);
int kp_cmd_sqlserver(kp_cli *cli, int argc, char **argv);
int kp_cmd_secret(kp_cli *cli, int argc, char **argv);
int kp_cmd_datakey(kp_cli *cli, int argc, char **argv);
int kp_cmd_backup(kp_cli *cli, int argc, char **argv);

#endif
