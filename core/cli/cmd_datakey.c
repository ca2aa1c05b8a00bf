/*
 * keyplane datakey: the data keys of a KMS-like store (an instance with KP_CAP_DATAKEY, the aws
 * plugin's service: kms), bound to a key id and an encryption context. generate makes one,
 * decrypt opens a ciphertext, reencrypt moves one to another key or context inside the store
 * (ABI 1.5, DK_REENCRYPT). The plaintext goes only to a new file (0600, never over another), a
 * FIFO of the user's or, for decrypt, a stdout that is no terminal; ciphertexts are base64.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <keyplane/kit/codec.h>

#include "cli.h"

#define S_CT_FILE_MAX (64 * 1024) /* far above a KMS ciphertext (6144 bytes) */

static const char s_generate_help[] =
    "Usage: keyplane datakey generate --instance INSTANCE --key-id KEY\n"
    "                                 [--context K=V]... [--bytes N]\n"
    "                                 --plaintext-out FILE [--json]\n"
    "\n"
    "Makes a data key of N bytes (default 32: AES-256) under KEY, bound to the encryption\n"
    "context. The plaintext goes to FILE, the ciphertext (base64) to stdout: keep it, it\n"
    "is what 'datakey decrypt' opens, with the same context.\n"
    "\n"
    "  --instance INSTANCE     an instance with data keys (the aws plugin's service: kms)\n"
    "  --key-id KEY            the store's key: a KMS key id, ARN or alias\n"
    "  --context K=V           a pair of the encryption context (repeatable, at most 16;\n"
    "                          K of [a-z0-9_.-]); decrypt needs the same pairs\n"
    "  --bytes N               1 to 1024 (default 32)\n"
    "  --plaintext-out FILE    a new file, created 0600; an existing one is never\n"
    "                          replaced (a FIFO of yours is written into); not '-': stdout\n"
    "                          has the ciphertext\n"
    "  --json                  print {instance, key_id, ciphertext, context, bytes,\n"
    "                          plaintext_out}\n";

static const char s_decrypt_help[] =
    "Usage: keyplane datakey decrypt --instance INSTANCE --key-id KEY [--context K=V]...\n"
    "                                (--ciphertext B64 | --ciphertext-file FILE)\n"
    "                                --plaintext-out FILE [--json]\n"
    "\n"
    "Opens a ciphertext made under KEY with the same encryption context (any order) and\n"
    "writes the data key to FILE.\n"
    "\n"
    "  --instance INSTANCE     an instance with data keys\n"
    "  --key-id KEY            the key the ciphertext was made under\n"
    "  --context K=V           a pair of its encryption context (repeatable)\n"
    "  --ciphertext B64        the ciphertext in base64 (standard or URL-safe)\n"
    "  --ciphertext-file FILE  a file of it ('-' stdin): base64 text (line breaks allowed)\n"
    "                          or the raw bytes, as aws kms takes them with fileb://\n"
    "  --plaintext-out FILE    a new file, created 0600; an existing one is never\n"
    "                          replaced; '-' is stdout when it is no terminal\n"
    "  --json                  print {instance, key_id, context, bytes, plaintext_out};\n"
    "                          needs a FILE\n";

static const char s_reencrypt_help[] =
    "Usage: keyplane datakey reencrypt --instance INSTANCE --key-id KEY --to-key-id KEY\n"
    "                                  [--context K=V]... [--to-context K=V]...\n"
    "                                  (--ciphertext B64 | --ciphertext-file FILE)\n"
    "                                  [--json]\n"
    "\n"
    "Moves a ciphertext made under --key-id with --context to --to-key-id (the same key\n"
    "or another) with --to-context, inside the store: the plaintext never leaves it.\n"
    "Prints the new ciphertext (base64). Without --to-context the new one has no context.\n"
    "\n"
    "  --instance INSTANCE     an instance whose plugin re-encrypts (ABI 1.5)\n"
    "  --key-id KEY            the key the ciphertext was made under\n"
    "  --context K=V           a pair of its encryption context (repeatable)\n"
    "  --to-key-id KEY         the key to re-encrypt to\n"
    "  --to-context K=V        a pair of the new encryption context (repeatable)\n"
    "  --ciphertext B64        the ciphertext in base64\n"
    "  --ciphertext-file FILE  a file of it, base64 or raw bytes ('-' stdin)\n"
    "  --json                  print {instance, source_key_id, key_id, ciphertext,\n"
    "                          context}\n";

static const char s_usage[] =
    "Usage: keyplane datakey generate --instance INSTANCE --key-id KEY [--context K=V]...\n"
    "                                 [--bytes N] --plaintext-out FILE\n"
    "       keyplane datakey decrypt --instance INSTANCE --key-id KEY [--context K=V]...\n"
    "                                (--ciphertext B64 | --ciphertext-file FILE)\n"
    "                                --plaintext-out FILE\n"
    "       keyplane datakey reencrypt --instance INSTANCE --key-id KEY --to-key-id KEY\n"
    "                                  [--context K=V]... [--to-context K=V]...\n"
    "                                  (--ciphertext B64 | --ciphertext-file FILE)\n"
    "\n"
    "Data keys of a KMS-like store (an instance with data keys: the aws plugin's\n"
    "service: kms), each bound to a key and an encryption context.\n"
    "  generate   a new data key: the plaintext to a new file (0600), the ciphertext\n"
    "             (base64) to stdout\n"
    "  decrypt    a ciphertext's data key to a new file (or a stdout that is no terminal)\n"
    "  reencrypt  a ciphertext moved to another key or context inside the store\n"
    "Every subcommand takes --json; 'keyplane datakey SUBCOMMAND --help' for its options.\n"
    "\n"
    "Exit status: 0 done; 2 usage (a bad pair, bad base64); 3 the instance makes no\n"
    "data keys, or its plugin does not re-encrypt; 4 the store refused (credentials,\n"
    "permissions, a disabled key); 5 no such instance or key, or the plaintext file\n"
    "exists; 7 the ciphertext does not open with that key and context; 6, 8 store\n"
    "failures.\n";

static const struct option s_options[] = {{"instance", required_argument, NULL, 'i'},
                                          {"key-id", required_argument, NULL, 'k'},
                                          {"context", required_argument, NULL, 'c'},
                                          {"bytes", required_argument, NULL, 'b'},
                                          {"ciphertext", required_argument, NULL, 'C'},
                                          {"ciphertext-file", required_argument, NULL, 'F'},
                                          {"plaintext-out", required_argument, NULL, 'o'},
                                          {"to-key-id", required_argument, NULL, 'K'},
                                          {"to-context", required_argument, NULL, 'T'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};

typedef enum s_kind { S_GENERATE, S_DECRYPT, S_REENCRYPT } s_kind;

/* Each subcommand's options (by their s_options values) and help, by s_kind. */
static const struct {
    const char *takes;
    const char *help;
} s_subs[] = {[S_GENERATE] = {"ikcbojh", s_generate_help},
              [S_DECRYPT] = {"ikcCFojh", s_decrypt_help},
              [S_REENCRYPT] = {"ikcCFKTjh", s_reencrypt_help}};

typedef struct s_opts {
    s_kind kind;
    char cmd[32]; /* "datakey SUBCOMMAND", for usage errors */
    const char *instance, *key_id, *to_key_id, *ct_b64, *ct_file, *out;
    bool out_fifo; /* out names a FIFO of the user's, not a file made here */
    kp_cli_pairs context, to_context;
    size_t bytes;
} s_opts;

/* What the options say together: KP_EXIT_OK, or the usage error. */
static int s_check(const kp_cli *cli, const s_opts *o)
{
    bool gen = o->kind == S_GENERATE, dec = o->kind == S_DECRYPT;
    const char *missing = o->instance == NULL              ? "--instance INSTANCE"
                          : o->key_id == NULL              ? "--key-id KEY"
                          : !gen && !dec && !o->to_key_id  ? "--to-key-id KEY"
                          : (gen || dec) && o->out == NULL ? "--plaintext-out FILE"
                                                           : NULL;
    if (missing != NULL)
        return kp_cli_usage_error(o->cmd, "%s is required", missing);
    if (!gen && (o->ct_b64 == NULL) == (o->ct_file == NULL))
        return kp_cli_usage_error(o->cmd, "give --ciphertext B64 or --ciphertext-file FILE (one)");
    bool to_stdout = o->out != NULL && strcmp(o->out, "-") == 0;
    if (gen && to_stdout)
        return kp_cli_usage_error(o->cmd, "--plaintext-out needs a file: stdout carries the "
                                          "ciphertext");
    if (to_stdout && cli->json)
        return kp_cli_usage_error(o->cmd, "--json needs --plaintext-out FILE: the data key and "
                                          "the JSON report cannot share stdout");
    if (to_stdout && isatty(STDOUT_FILENO))
        return kp_cli_usage_error(o->cmd, "refusing to write a data key to a terminal: use "
                                          "--plaintext-out FILE or redirect stdout");
    return KP_EXIT_OK;
}

/* KP_EXIT_OK to go on, -1 once help is printed, else a usage error's exit code. */
static int s_parse(kp_cli *cli, int argc, char **argv, s_opts *o)
{
    int c, rc = KP_EXIT_OK, at = -1;
    while (rc == KP_EXIT_OK && (c = getopt_long(argc, argv, "jh", s_options, &at)) != -1) {
        /* an option of another subcommand: only long ones exist (at names it) */
        if (c != '?' && c != ':' && strchr(s_subs[o->kind].takes, c) == NULL && at >= 0)
            return kp_cli_usage_error(o->cmd, "bad option '--%s'", s_options[at].name);
        switch (c) {
        case 'i':
            o->instance = optarg;
            break;
        case 'k':
            o->key_id = optarg;
            break;
        case 'K':
            o->to_key_id = optarg;
            break;
        case 'c':
            rc = kp_cli_pair_opt(o->cmd, "context", optarg, &o->context);
            break;
        case 'T':
            rc = kp_cli_pair_opt(o->cmd, "to-context", optarg, &o->to_context);
            break;
        case 'C':
            o->ct_b64 = optarg;
            break;
        case 'F':
            o->ct_file = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'b': {
            char *end = NULL;
            unsigned long v = optarg[0] >= '1' && optarg[0] <= '9' ? strtoul(optarg, &end, 10) : 0;
            if (v == 0 || v > 1024 || *end != '\0')
                return kp_cli_usage_error(o->cmd, "--bytes must be 1 to 1024");
            o->bytes = v;
            break;
        }
        case 'j':
            cli->json = true;
            break;
        case 'h':
            fputs(s_subs[o->kind].help, stdout);
            return -1;
        default:
            return kp_cli_bad_option(o->cmd, argv);
        }
    }
    if (rc == KP_EXIT_OK && optind < argc)
        rc = kp_cli_usage_error(o->cmd, "unexpected argument '%s'", argv[optind]);
    return rc == KP_EXIT_OK ? s_check(cli, o) : rc;
}

/* Base64 text with its line breaks and blanks dropped (`base64` wraps at 76), decoded into *ct;
 * KP_ERR_INVALID_ARG when it is no base64 (nothing said). */
static kp_status s_b64(const char *text, size_t len, uint8_t **ct, size_t *ctlen)
{
    char *clean = malloc(len + 1);
    KP_ENSURE(clean != NULL, KP_ERR_NOMEM);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (strchr(" \t\r\n", text[i]) == NULL)
            clean[n++] = text[i];
    clean[n] = '\0';
    kp_status st = kpk_b64_decode_alloc(clean, n, ct, ctlen);
    free(clean);
    return st;
}

/* The ciphertext of --ciphertext or --ciphertext-file: base64, or a file's raw bytes (a file
 * with any byte that is no base64 character or blank). KP_EXIT_OK or the exit code, said. */
static int s_ciphertext(kp_cli *cli, const s_opts *o, uint8_t **ct, size_t *ctlen)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_"
                              " \t\r\n";
    const char *opt = o->ct_b64 != NULL ? "--ciphertext" : "--ciphertext-file";
    char *data = NULL;
    size_t len = 0;
    if (o->ct_file != NULL) {
        kp_status rst = kp_cli_read_file(cli, o->ct_file, S_CT_FILE_MAX, &data, &len);
        if (rst != KP_OK)
            return kp_cli_exit_code(rst);
    }
    const char *text = o->ct_b64 != NULL ? o->ct_b64 : data != NULL ? data : "";
    if (o->ct_b64 != NULL)
        len = strlen(text);
    kp_status st = KP_OK;
    if (o->ct_b64 != NULL || strspn(text, b64) == len) {
        st = s_b64(text, len, ct, ctlen);
    } else { /* raw, as fileb:// takes it: the file's bytes are the ciphertext */
        *ct = (uint8_t *)data;
        *ctlen = len;
        data = NULL;
    }
    free(data);
    if (st == KP_OK && *ctlen == 0) {
        free(*ct);
        *ct = NULL;
        return kp_cli_usage_error(o->cmd, "%s: the ciphertext is empty", opt);
    }
    if (st == KP_ERR_INVALID_ARG)
        return kp_cli_usage_error(o->cmd, "%s: not base64 (standard or URL-safe)", opt);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_error(st, "%s: %s", opt, kp_strerror(st));
}

/* The ciphertext as base64 on stdout, or the JSON report holding it. */
static int s_print_ct(kp_cli *cli, const s_opts *o, const uint8_t *ct, size_t ctlen, size_t bytes)
{
    char *b64 = NULL;
    kp_status st = kpk_b64_encode_alloc(ct, ctlen, false, &b64);
    if (st != KP_OK)
        return kp_cli_error(st, "out of memory");
    if (cli->json && o->kind == S_GENERATE)
        kp_cli_print_json(json_pack("{s:s, s:s, s:s, s:o, s:i, s:s}", "instance", o->instance,
                                    "key_id", o->key_id, "ciphertext", b64, "context",
                                    kp_cli_pairs_json(&o->context), "bytes", (int)bytes,
                                    "plaintext_out", o->out));
    else if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:s, s:s, s:o}", "instance", o->instance,
                                    "source_key_id", o->key_id, "key_id", o->to_key_id,
                                    "ciphertext", b64, "context",
                                    kp_cli_pairs_json(&o->to_context)));
    else
        printf("%s\n", b64);
    free(b64);
    if (fflush(stdout) != 0 || ferror(stdout))
        return kp_cli_error(KP_ERR_IO, "cannot write the ciphertext to standard output");
    return KP_EXIT_OK;
}

static int s_generate(kp_cli *cli, const s_opts *o, kp_instance *inst)
{
    kp_secret *plain = NULL;
    uint8_t *ct = NULL;
    size_t ctlen = 0, bytes = o->bytes != 0 ? o->bytes : 32;
    kp_status st = kp_datakey_generate(inst, o->key_id, bytes, o->context.meta, o->context.n,
                                       &plain, &ct, &ctlen);
    int rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, o->instance);
    if (rc == KP_EXIT_OK) {
        st = kp_cli_write_new_secret(cli, o->out, kp_secret_cdata(plain), kp_secret_len(plain));
        rc = kp_cli_exit_code(st);
    }
    kp_secret_free(plain);
    if (rc == KP_EXIT_OK)
        rc = s_print_ct(cli, o, ct, ctlen, bytes);
    /* a key whose ciphertext is lost opens nothing: not left behind */
    if (rc != KP_EXIT_OK && st == KP_OK && !o->out_fifo && o->out != NULL)
        unlink(o->out);
    if (rc == KP_EXIT_OK && !cli->json)
        kp_cli_info(cli, stderr, "keyplane: generated a %zu-byte data key under %s in %s -> %s\n",
                    bytes, o->key_id, o->instance, o->out);
    kp_free(ct);
    return rc;
}

static int s_decrypt(kp_cli *cli, const s_opts *o, kp_instance *inst, const uint8_t *ct,
                     size_t ctlen)
{
    kp_secret *plain = NULL;
    kp_status st =
        kp_datakey_decrypt(inst, o->key_id, ct, ctlen, o->context.meta, o->context.n, &plain);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, o->instance);
    st = kp_cli_write_new_secret(cli, o->out, kp_secret_cdata(plain), kp_secret_len(plain));
    size_t bytes = kp_secret_len(plain);
    kp_secret_free(plain);
    if (st != KP_OK)
        return kp_cli_exit_code(st);
    if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:o, s:i, s:s}", "instance", o->instance, "key_id",
                                    o->key_id, "context", kp_cli_pairs_json(&o->context), "bytes",
                                    (int)bytes, "plaintext_out", o->out));
    else if (o->out != NULL && strcmp(o->out, "-") != 0)
        kp_cli_info(cli, stderr, "keyplane: decrypted a %zu-byte data key under %s in %s -> %s\n",
                    bytes, o->key_id, o->instance, o->out);
    return KP_EXIT_OK;
}

static int s_reencrypt(kp_cli *cli, const s_opts *o, kp_instance *inst, const uint8_t *ct,
                       size_t ctlen)
{
    uint8_t *out = NULL;
    size_t outlen = 0;
    kp_status st =
        kp_datakey_reencrypt(inst, o->key_id, ct, ctlen, o->context.meta, o->context.n,
                             o->to_key_id, o->to_context.meta, o->to_context.n, &out, &outlen);
    int rc = st == KP_OK ? s_print_ct(cli, o, out, outlen, 0) : kp_cli_fail(cli, st, o->instance);
    if (rc == KP_EXIT_OK && !cli->json)
        kp_cli_info(cli, stderr, "keyplane: re-encrypted a data key from %s to %s in %s%s\n",
                    o->key_id, o->to_key_id, o->instance,
                    o->to_context.n == 0 ? " (no encryption context)" : "");
    kp_free(out);
    return rc;
}

int kp_cmd_datakey(kp_cli *cli, int argc, char **argv)
{
    static const char *const subs[] = {
        [S_GENERATE] = "generate", [S_DECRYPT] = "decrypt", [S_REENCRYPT] = "reencrypt", NULL};
    size_t which = 0;
    int rc = kp_cli_subcommand(cli, "datakey", s_usage, subs, &argc, &argv, &which);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    s_opts o = {.kind = (s_kind)which};
    snprintf(o.cmd, sizeof(o.cmd), "datakey %s", subs[which]);
    if ((rc = s_parse(cli, argc, argv, &o)) != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    if (o.kind != S_GENERATE)
        rc = s_ciphertext(cli, &o, &ct, &ctlen);
    /* a plaintext file that could not be written is refused before the store is asked */
    if (rc == KP_EXIT_OK && o.out != NULL)
        rc = kp_cli_exit_code(kp_cli_new_secret_ok(cli, o.out, &o.out_fifo));
    kp_instance *inst = NULL;
    if (rc == KP_EXIT_OK)
        rc = kp_cli_open_datakey(cli, o.instance,
                                 "data keys need an instance with the datakey capability (the aws "
                                 "plugin's service: kms)",
                                 &inst);
    if (rc == KP_EXIT_OK)
        rc = o.kind == S_GENERATE  ? s_generate(cli, &o, inst)
             : o.kind == S_DECRYPT ? s_decrypt(cli, &o, inst, ct, ctlen)
                                   : s_reencrypt(cli, &o, inst, ct, ctlen);
    kp_instance_close(inst);
    free(ct);
    return rc;
}
