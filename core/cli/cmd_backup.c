/*
 * keyplane backup: database backups encrypted the way Amazon RDS for SQL Server restores them
 * (S3 client-side encryption: AES-256-CBC under a KMS data key, the envelope in the object's
 * metadata), and opened from RDS exports, the AWS SDKs' encryption clients or keyplane's own,
 * through KMS or, with a chain's envelope beside the data key, through any of the chain's
 * keystores when KMS is out of reach (docs/backup.md).
 *
 * The data key lives in a kp_secret from KMS's answer to the cipher and is wiped after it; the
 * output appears whole or not at all (an object committed at the end, a file linked under its
 * name once synced).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "backup_io.h"
#include "backup_meta.h"

static const char s_encrypt_help[] =
    "Usage: keyplane backup encrypt FILE --kms-key KEY --instance INSTANCE\n"
    "                               (--to s3://BUCKET/KEY | --out PATH)\n"
    "                               [--chain CHAIN [--replica INSTANCE]] [--db NAME]\n"
    "                               [--json] [--no-progress]\n"
    "\n"
    "Encrypts FILE (a .bak) with AES-256-CBC under a new KMS data key, as RDS for SQL\n"
    "Server restores it: the object's metadata carries the encrypted data key, the IV and\n"
    "the material description, for RDS and for the AWS SDKs' decryption clients. With\n"
    "--to, prints the rds_restore_database call that restores it. FILE is a regular\n"
    "file, not a pipe or stdin: its size goes into the metadata before the first byte.\n"
    "\n"
    "  --kms-key KEY          the KMS key of the data key (id, ARN or alias; a key ARN\n"
    "                         lets the printed call name it), in the instance's region,\n"
    "                         which must be the restoring RDS instance's\n"
    "  --instance INSTANCE    an aws instance of service: kms (its region and credentials;\n"
    "                         S3 at its s3_endpoint)\n"
    "  --to s3://BUCKET/KEY   the object to create (never replaced: exit 5 if it exists)\n"
    "  --out PATH             a local file instead, and PATH.json with the metadata\n"
    "  --chain CHAIN          also wrap the data key under CHAIN's protector, kept beside\n"
    "                         it (keyplane-envelope): decrypt can then open the backup\n"
    "                         through the chain's keystores, without KMS\n"
    "  --replica INSTANCE     with --chain: the keystore of the chain that wraps (default:\n"
    "                         the chain's choice; name one while the origin is down)\n"
    "  --db NAME              with --to: the database name in the printed call (default:\n"
    "                         FILE's name without .bak)\n"
    "  --json                 print one JSON object: what was written, bytes, seconds\n"
    "  --no-progress          no progress line (it shows on a terminal only)\n";

static const char s_decrypt_help[] =
    "Usage: keyplane backup decrypt (s3://BUCKET/KEY | PATH) --out FILE\n"
    "                               [--instance INSTANCE] [--kms-key KEY]\n"
    "                               [--via-chain [--chain CHAIN] [--replica INSTANCE]]\n"
    "                               [--force] [--require-integrity] [--json]\n"
    "                               [--no-progress]\n"
    "\n"
    "Decrypts a backup made by 'backup encrypt', by RDS (rds_backup_database with a KMS\n"
    "key) or by the AWS SDKs' S3 encryption clients (kms or kms+context, AES-CBC or\n"
    "AES-GCM): an object's metadata, or a local PATH with its PATH.json. FILE appears\n"
    "only when the whole input decrypted and verified.\n"
    "\n"
    "  --out FILE             the plaintext (a new file; --force replaces one)\n"
    "  --instance INSTANCE    an aws instance of service: kms: reads the object, and asks\n"
    "                         KMS for the data key (needed for s3://, and for a local\n"
    "                         PATH without --via-chain)\n"
    "  --kms-key KEY          the KMS key the data key must be under (default: the one\n"
    "                         its ciphertext names)\n"
    "  --via-chain            open the data key through the chain's envelope kept with the\n"
    "                         backup (keyplane-envelope), not KMS: any keystore of the\n"
    "                         chain, failing over in the chain's order\n"
    "  --chain CHAIN          the chain the envelope must name (default: the envelope's)\n"
    "  --replica INSTANCE     that keystore of the chain only\n"
    "  --force                replace an existing FILE (atomically)\n"
    "  --require-integrity    refuse a CBC backup without a GMAC (keyplane's record) before\n"
    "                         any key is asked for: RDS's and the SDKs' CBC objects, and a\n"
    "                         keyplane backup whose record was removed, can be checked by\n"
    "                         their length and padding only\n"
    "  --json                 print one JSON object: what was read, bytes, seconds\n"
    "  --no-progress          no progress line\n";

static const char s_usage[] =
    "Usage: keyplane backup encrypt FILE --kms-key KEY --instance INSTANCE\n"
    "                               (--to s3://BUCKET/KEY | --out PATH) [--chain CHAIN]\n"
    "       keyplane backup decrypt (s3://BUCKET/KEY | PATH) --out FILE\n"
    "                               [--instance INSTANCE] [--via-chain]\n"
    "\n"
    "Database backups under S3 client-side encryption, as Amazon RDS for SQL Server\n"
    "restores and exports them.\n"
    "  encrypt  a .bak under a new KMS data key, to S3 (or a local file and its .json)\n"
    "  decrypt  an encrypted backup (keyplane's, RDS's, the AWS SDKs') to a file\n"
    "'keyplane backup SUBCOMMAND --help' for its options.\n"
    "\n"
    "Exit status: 0 done; 2 usage; 3 the instance makes no data keys or keeps no\n"
    "objects; 4 refused (credentials, permissions); 5 no such instance, object or file,\n"
    "or the target exists; 6 a service unreachable; 7 the backup does not verify (cut,\n"
    "changed, a wrong key or context); 8 store or I/O failures.\n";

static const struct option s_options[] = {
    {"kms-key", required_argument, NULL, 'k'}, {"instance", required_argument, NULL, 'i'},
    {"to", required_argument, NULL, 't'},      {"out", required_argument, NULL, 'o'},
    {"chain", required_argument, NULL, 'c'},   {"db", required_argument, NULL, 'd'},
    {"via-chain", no_argument, NULL, 'v'},     {"replica", required_argument, NULL, 'r'},
    {"force", no_argument, NULL, 'f'},         {"require-integrity", no_argument, NULL, 'I'},
    {"no-progress", no_argument, NULL, 'P'},   {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};

/* decrypt s3://: the object is read in ranged GETs of this size (each costs a round trip), four
 * of the ring's buffers each */
#define S_AHEAD (8u * 1024 * 1024)

typedef enum s_kind { S_ENCRYPT, S_DECRYPT } s_kind;

static const struct {
    const char *takes;
    const char *help;
} s_subs[] = {
    [S_ENCRYPT] = {"kitocdrPjh", s_encrypt_help}, [S_DECRYPT] = {"kiocvrfIPjh", s_decrypt_help}};

typedef struct s_opts {
    s_kind kind;
    char cmd[32];
    const char *input, *kms_key, *instance, *to, *out, *chain, *db, *replica;
    bool via_chain, force, no_progress, require_integrity;
} s_opts;

static int s_parse(kp_cli *cli, int argc, char **argv, s_opts *o)
{
    int c, at = -1;
    while ((c = getopt_long(argc, argv, "jh", s_options, &at)) != -1) {
        if (c != '?' && c != ':' && strchr(s_subs[o->kind].takes, c) == NULL && at >= 0)
            return kp_cli_usage_error(o->cmd, "bad option '--%s'", s_options[at].name);
        switch (c) {
        case 'k':
            o->kms_key = optarg;
            break;
        case 'i':
            o->instance = optarg;
            break;
        case 't':
            o->to = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'c':
            o->chain = optarg;
            break;
        case 'd':
            o->db = optarg;
            break;
        case 'v':
            o->via_chain = true;
            break;
        case 'r':
            o->replica = optarg;
            break;
        case 'f':
            o->force = true;
            break;
        case 'I':
            o->require_integrity = true;
            break;
        case 'P':
            o->no_progress = true;
            break;
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
    if (optind + 1 != argc)
        return kp_cli_usage_error(o->cmd, optind == argc ? "missing %s" : "one %s only",
                                  o->kind == S_ENCRYPT ? "FILE"
                                                       : "backup (s3://BUCKET/KEY or PATH)");
    o->input = argv[optind];
    bool s3in = strncmp(o->input, "s3://", 5) == 0;
    const char *missing = NULL;
    if (o->kind == S_ENCRYPT)
        missing = o->kms_key == NULL                    ? "--kms-key KEY"
                  : o->instance == NULL                 ? "--instance INSTANCE"
                  : (o->to == NULL) == (o->out == NULL) ? "--to s3://BUCKET/KEY or --out PATH (one)"
                                                        : NULL;
    else
        missing = o->out == NULL                         ? "--out FILE"
                  : o->instance == NULL && s3in          ? "--instance INSTANCE (to read s3://)"
                  : o->instance == NULL && !o->via_chain ? "--instance INSTANCE (or --via-chain)"
                                                         : NULL;
    if (missing != NULL)
        return kp_cli_usage_error(o->cmd, "%s is required", missing);
    if (o->to != NULL && strncmp(o->to, "s3://", 5) != 0)
        return kp_cli_usage_error(o->cmd, "--to takes s3://BUCKET/KEY");
    if (o->kind == S_DECRYPT && !o->via_chain && (o->chain != NULL || o->replica != NULL))
        return kp_cli_usage_error(o->cmd, "--chain and --replica go with --via-chain");
    if (o->kind == S_ENCRYPT && o->replica != NULL && o->chain == NULL)
        return kp_cli_usage_error(o->cmd, "--replica goes with --chain");
    if (o->kind == S_ENCRYPT && o->db != NULL && o->to == NULL)
        return kp_cli_usage_error(o->cmd,
                                  "--db goes with --to (it names the database in the printed "
                                  "rds_restore_database call; --out prints none)");
    if (o->kind == S_ENCRYPT && strcmp(o->input, "-") == 0)
        return kp_cli_usage_error(o->cmd, "FILE cannot be '-': encrypt reads a regular file, "
                                          "whose size goes into the metadata before its first "
                                          "byte");
    if (o->kind == S_DECRYPT && o->via_chain && o->kms_key != NULL)
        return kp_cli_usage_error(o->cmd, "--kms-key and --via-chain exclude each other");
    if (o->kind == S_DECRYPT && strcmp(o->out, "-") == 0)
        return kp_cli_usage_error(o->cmd, "--out needs a file: a backup is never streamed to "
                                          "stdout before it verifies");
    return KP_EXIT_OK;
}

/* ---- progress ------------------------------------------------------------------------------ */

typedef struct s_progress {
    bool on;
    struct timespec start;
    double last;
    const char *what;
} s_progress;

static double s_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void s_size(char *buf, size_t len, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
}

/* "  encrypt  412.0 MiB of 1.0 GiB  40%  980.3 MiB/s  ETA 0:01", at most 5 times a second. */
static void s_progress_fn(void *arg, uint64_t done, uint64_t total)
{
    s_progress *p = arg;
    double now = s_now();
    if (!p->on || (now - p->last < 0.2 && done < total))
        return;
    p->last = now;
    double secs = now - ((double)p->start.tv_sec + (double)p->start.tv_nsec / 1e9);
    double rate = secs > 0 ? (double)done / secs : 0;
    long eta = rate > 0 ? (long)((double)(total - done) / rate) : 0;
    char d[32], t[32], r[32];
    s_size(d, sizeof(d), (double)done);
    s_size(t, sizeof(t), (double)total);
    s_size(r, sizeof(r), rate);
    fprintf(stderr, "\r  %s  %s of %s  %3d%%  %s/s  ETA %ld:%02ld \033[K", p->what, d, t,
            total > 0 ? (int)(100 * done / total) : 100, r, eta / 60, eta % 60);
    if (done >= total)
        fputc('\n', stderr);
}

static void s_progress_init(const kp_cli *cli, const s_opts *o, s_progress *p, const char *what)
{
    memset(p, 0, sizeof(*p));
    p->on = !o->no_progress && !cli->json && !cli->quiet && isatty(STDERR_FILENO);
    p->what = what;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
}

static double s_elapsed(const s_progress *p)
{
    return s_now() - ((double)p->start.tv_sec + (double)p->start.tv_nsec / 1e9);
}

/* ---- encrypt ------------------------------------------------------------------------------- */

/* An instance of the policy with the data keys (and objects, for s3://) the command needs. */
static int s_open(kp_cli *cli, const char *name, bool objects, kp_instance **inst)
{
    int rc = kp_cli_open_datakey(cli, name, "backups need an aws instance of service: kms", inst);
    if (rc == KP_EXIT_OK && objects && !kp_instance_has_objects(*inst))
        return kp_cli_error(KP_ERR_UNSUPPORTED,
                            "%s (plugin %s) keeps no objects: s3:// needs an aws instance of "
                            "service: kms or s3",
                            name, kp_policy_instance_plugin(cli->policy, name));
    return rc;
}

/* The database name of the printed call: --db, else FILE's base name without .bak. */
static void s_db_name(const s_opts *o, char *out, size_t len)
{
    const char *base = strrchr(o->input, '/');
    base = o->db != NULL ? o->db : base != NULL ? base + 1 : o->input;
    snprintf(out, len, "%s", base);
    size_t n = strlen(out);
    if (o->db == NULL && n > 4 && strcasecmp(out + n - 4, ".bak") == 0)
        out[n - 4] = '\0';
}

/* S inside a T-SQL string literal: each ' doubled. */
static void s_print_sql_str(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\'')
            putchar('\'');
        putchar(*s);
    }
}

static void s_print_rds(const s_opts *o)
{
    char db[256];
    s_db_name(o, db, sizeof(db));
    /* RDS takes a key's ARN; an alias (or an alias ARN) is named as a placeholder */
    bool arn = strncmp(o->kms_key, "arn:", 4) == 0 && strstr(o->kms_key, ":key/") != NULL;
    printf("RDS for SQL Server restores it (in the KMS key's region) with:\n"
           "  exec msdb.dbo.rds_restore_database\n"
           "    @restore_db_name='");
    s_print_sql_str(db);
    printf("',\n    @s3_arn_to_restore_from='arn:aws:s3:::");
    s_print_sql_str(o->to + 5);
    printf("',\n    @kms_master_key_arn='%s", arn ? "" : "<the ARN of ");
    s_print_sql_str(o->kms_key);
    printf("%s';\n", arn ? "" : ">");
    if (!arn)
        printf("(aws kms describe-key --key-id %s --query KeyMetadata.Arn --output text gives "
               "the ARN, in the KMS key's region)\n",
               o->kms_key);
}

typedef struct s_enc {
    kp_secret *dek;
    uint8_t *blob;
    size_t bloblen;
    char *envelope;
    char used[KP_NAME_MAX];
    kp_cli_bk_fields fields;
} s_enc;

/* The data key from KMS, and its envelope under the chain when one is asked for. */
static int s_data_key(kp_cli *cli, const s_opts *o, kp_instance *inst, s_enc *e)
{
    kp_meta ctx = {"kms_cmk_id", o->kms_key};
    kp_status st =
        kp_datakey_generate(inst, o->kms_key, 32, &ctx, 1, &e->dek, &e->blob, &e->bloblen);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, o->instance);
    if (o->chain == NULL)
        return KP_EXIT_OK;
    kp_envelope *env = NULL;
    st = kp_chain_wrap(cli->ctx, cli->policy, o->chain, o->replica, e->dek, &env, e->used);
    if (st == KP_OK)
        st = kp_envelope_encode(env, &e->envelope);
    kp_envelope_free(env);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, o->chain);
}

/* All len bytes of the object at where into buf: a store may answer a range in pieces. */
static kp_status s_read_all(kp_instance *inst, const char *where, const char *tag, uint8_t *buf,
                            size_t len)
{
    for (size_t got = 0; got < len;) {
        size_t n = len - got;
        KP_GUARD(kp_object_read(inst, where, tag, got, buf + got, &n));
        if (n == 0)
            return KP_ERR_CONFLICT; /* shorter than its STAT said: changed meanwhile */
        got += n;
    }
    return KP_OK;
}

/* True when the object at where holds exactly text: a commit whose answer was lost may have
 * been carried out. */
static bool s_holds(kp_instance *inst, const char *where, const char *text)
{
    kp_object_info oi;
    size_t len = strlen(text);
    if (kp_object_stat(inst, where, &oi, NULL, NULL) != KP_OK || oi.size != len)
        return false;
    uint8_t *buf = malloc(len + 1);
    bool same = buf != NULL && s_read_all(inst, where, oi.tag, buf, len) == KP_OK &&
                memcmp(buf, text, len) == 0;
    free(buf);
    return same;
}

/* The integrity record beside an object (KEY.keyplane.json): the envelope's fields again, with
 * the GMAC of the IV and the ciphertext that the object's metadata, fixed before its first byte,
 * cannot hold. A second copy of the envelope, too, should the object lose its metadata. */
static int s_put_record(kp_cli *cli, const s_opts *o, kp_instance *inst, const kp_cli_bk_fields *f)
{
    char where[PATH_MAX + 32], *text = NULL, why[KP_ERROR_MAX] = "";
    snprintf(where, sizeof(where), "%s%s", o->to, KP_BK_RECORD);
    kp_object_out *w = NULL;
    kp_status st = kp_cli_bk_sidecar_text(f, &text);
    if (st == KP_OK)
        st = kp_object_create(inst, where, NULL, 0, &w);
    if (st == KP_OK)
        st = kp_object_write(w, (const uint8_t *)text, strlen(text));
    if (st == KP_OK)
        st = kp_object_commit(w);
    else if (w != NULL)
        kp_object_abort(w);
    if (st != KP_OK)
        snprintf(why, sizeof(why), "%s",
                 kp_ctx_last_error(cli->ctx)[0] != '\0' ? kp_ctx_last_error(cli->ctx)
                                                        : kp_strerror(st));
    /* a commit whose answer was lost may have been carried out */
    if (st != KP_OK && st != KP_ERR_EXISTS && text != NULL && s_holds(inst, where, text))
        st = KP_OK;
    free(text);
    if (st == KP_OK)
        return KP_EXIT_OK;
    return kp_cli_error(st, "%s was written, but not its integrity record %s: %s", o->to, where,
                        why);
}

/* KP_EXIT_OK when no object is at TO + suffix, else the exit code and its error line. */
static int s_absent(kp_cli *cli, kp_instance *inst, const char *to, const char *suffix)
{
    char where[PATH_MAX + 32];
    snprintf(where, sizeof(where), "%s%s", to, suffix);
    kp_object_info oi;
    kp_status st = kp_object_stat(inst, where, &oi, NULL, NULL);
    if (st == KP_OK)
        return kp_cli_error(KP_ERR_EXISTS, "%s exists: a backup never replaces an object%s", where,
                            suffix[0] != '\0' ? " (an integrity record left from another backup? "
                                                "remove it if so)"
                                              : "");
    if (st == KP_ERR_NOT_FOUND)
        return KP_EXIT_OK;
    int rc = kp_cli_fail(cli, st, where);
    if (st == KP_ERR_PERMISSION) /* S3 answers a missing key with 403 without ListBucket */
        kp_cli_info(cli, stderr,
                    "keyplane: note: encrypt checks that %s is not there first: that needs "
                    "s3:GetObject and s3:ListBucket on the bucket (docs/backup.md, "
                    "\"Permissions\")\n",
                    where);
    return rc;
}

/* A commit that failed, or got no answer: the object may have been made all the same (a
 * CompleteMultipartUpload carried out, its answer lost). It is this backup's when it holds
 * this backup's data key and IV, new to it, and its size: then the commit is done, and the
 * record follows; else the commit's own error. */
static int s_commit_failed(kp_cli *cli, const s_opts *o, kp_instance *inst, kp_status st,
                           const kp_cli_bk_fields *ours, uint64_t size)
{
    char why[KP_ERROR_MAX], err[KP_BK_ERR];
    snprintf(why, sizeof(why), "%s", kp_ctx_last_error(cli->ctx));
    kp_cli_bk_fields f;
    memset(&f, 0, sizeof(f));
    kp_object_info oi;
    /* even "exists": a complete repeated after S3 carried out the first finds the object */
    kp_status look = kp_object_stat(inst, o->to, &oi, kp_cli_bk_fields_visit, &f);
    if (look == KP_OK && oi.size != size)
        look = KP_ERR_CONFLICT;
    if (look == KP_OK)
        look = kp_cli_bk_fields_same(&f, ours, err, sizeof(err));
    bool ours_after_all = look == KP_OK;
    kp_cli_bk_fields_free(&f);
    if (ours_after_all) {
        kp_cli_info(cli, stderr,
                    "keyplane: %s: the commit got no answer, but the object is there, whole: "
                    "done\n",
                    o->to);
        return KP_EXIT_OK;
    }
    return kp_cli_error(st, "%s: %s", o->to, why[0] != '\0' ? why : kp_strerror(st));
}

static json_t *s_summary(const s_opts *o, const char *target, uint64_t in, uint64_t out,
                         double secs)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:f}", "operation", o->kind == S_ENCRYPT ? "encrypt" : "decrypt",
        "source", o->input, "target", target, "bytes_in", (json_int_t)in, "bytes_out",
        (json_int_t)out, "seconds", (double)(long long)(secs * 1000 + 0.5) / 1000);
    if (j != NULL && o->instance != NULL)
        json_object_set_new(j, "instance", json_string(o->instance));
    return j;
}

static int s_encrypt(kp_cli *cli, const s_opts *o)
{
    char err[KP_BK_ERR] = "";
    kp_cli_bk_file_in in;
    kp_status st = kp_cli_bk_file_in_open(o->input, &in, err, sizeof(err));
    if (st == KP_ERR_INVALID_ARG)
        return kp_cli_usage_error(o->cmd, "%s", err);
    if (st != KP_OK)
        return kp_cli_error(st, "%s", err);
    kp_instance *inst = NULL;
    s_enc e;
    memset(&e, 0, sizeof(e));
    char sidecar[PATH_MAX] = "";
    kp_cli_bk_file_out fout, fside;
    memset(&fout, 0, sizeof(fout));
    memset(&fside, 0, sizeof(fside));
    fout.fd = fside.fd = -1;
    if (o->out != NULL) {
        /* both local files are refused before KMS is asked for a key */
        snprintf(sidecar, sizeof(sidecar), "%s.json", o->out);
        st = kp_cli_bk_file_out_open(o->out, false, &fout, err, sizeof(err));
        if (st == KP_OK)
            st = kp_cli_bk_file_out_open(sidecar, false, &fside, err, sizeof(err));
    }
    int rc =
        st == KP_OK ? s_open(cli, o->instance, o->to != NULL, &inst) : kp_cli_error(st, "%s", err);
    if (rc == KP_EXIT_OK && o->to != NULL) {
        /* an existing object is refused before KMS is asked for a key (the commit checks
         * again: nothing is ever replaced) */
        rc = s_absent(cli, inst, o->to, "");
        /* and its record's place: one left from a deleted backup would be found only after the
         * upload, leaving an object whose record is another's */
        if (rc == KP_EXIT_OK)
            rc = s_absent(cli, inst, o->to, KP_BK_RECORD);
    }
    if (rc == KP_EXIT_OK)
        rc = s_data_key(cli, o, inst, &e);
    uint8_t iv[16];
    if (rc == KP_EXIT_OK && RAND_bytes(iv, sizeof(iv)) != 1)
        rc = kp_cli_error(KP_ERR_CRYPTO, "no randomness for the IV");
    if (rc == KP_EXIT_OK && (st = kp_cli_bk_fields_make(&e.fields, e.blob, e.bloblen, iv,
                                                        o->kms_key, in.size, e.envelope)) != KP_OK)
        rc = kp_cli_error(st, "out of memory");
    kp_cli_bk_object_out oout = {cli->ctx, NULL};
    if (rc == KP_EXIT_OK && o->to != NULL) {
        kp_meta meta[KP_BK_F_COUNT];
        size_t n = kp_cli_bk_fields_meta(&e.fields, meta);
        st = kp_object_create(inst, o->to, meta, n, &oout.w);
        if (st != KP_OK)
            rc = kp_cli_fail(cli, st, o->to);
    }
    s_progress prog;
    s_progress_init(cli, o, &prog, "encrypt");
    kp_cli_bk_job job = {.mode = KP_BK_CBC_ENCRYPT,
                         .key = e.dek,
                         .ivlen = 16,
                         .src = {kp_cli_bk_file_read, &in, in.size},
                         .sink = o->to != NULL ? (kp_cli_bk_sink){kp_cli_bk_object_write, &oout}
                                               : (kp_cli_bk_sink){kp_cli_bk_file_write, &fout},
                         .progress = s_progress_fn,
                         .progress_arg = &prog};
    memcpy(job.iv, iv, 16);
    uint8_t mac_key[32];
    if (rc == KP_EXIT_OK && kp_cli_bk_mac_key(e.dek, mac_key) != KP_OK)
        rc = kp_cli_error(KP_ERR_CRYPTO, "cannot derive the backup's MAC key");
    job.mac_key = mac_key;
    if (rc == KP_EXIT_OK && (st = kp_cli_bk_run(&job)) != KP_OK)
        rc = kp_cli_error(st, "%s: %s", o->input, job.err);
    if (rc == KP_EXIT_OK && (st = kp_cli_bk_file_in_unchanged(&in, err, sizeof(err))) != KP_OK)
        rc = kp_cli_error(st, "%s", err);
    OPENSSL_cleanse(mac_key, sizeof(mac_key));
    if (rc == KP_EXIT_OK && (st = kp_cli_bk_fields_set_mac(&e.fields, job.mac)) != KP_OK)
        rc = kp_cli_error(st, "out of memory");
    if (prog.on && rc != KP_EXIT_OK)
        fputc('\n', stderr);
    kp_secret_free(e.dek);
    e.dek = NULL;
    /* the object appears whole, with its metadata, or not at all */
    if (o->to != NULL && oout.w != NULL) {
        if (rc == KP_EXIT_OK && (st = kp_object_commit(oout.w)) != KP_OK)
            rc = s_commit_failed(cli, o, inst, st, &e.fields, job.out_bytes);
        else if (rc != KP_EXIT_OK)
            kp_object_abort(oout.w);
        if (rc == KP_EXIT_OK)
            rc = s_put_record(cli, o, inst, &e.fields);
    }
    /* a local backup: the metadata first, so a ciphertext never stands without its key; the
     * ciphertext synced before, so that a crash between the two names leaves a sidecar
     * without its ciphertext only in the instant between two links */
    if (o->out != NULL && rc == KP_EXIT_OK) {
        char *text = NULL;
        st = kp_cli_bk_file_out_sync(&fout, err, sizeof(err));
        if (st == KP_OK)
            st = kp_cli_bk_sidecar_text(&e.fields, &text);
        if (st == KP_OK)
            st =
                kp_cli_bk_file_write(&fside, (const uint8_t *)text, strlen(text), err, sizeof(err));
        if (st == KP_OK)
            st = kp_cli_bk_file_write(&fside, (const uint8_t *)"\n", 1, err, sizeof(err));
        free(text);
        if (st == KP_OK)
            st = kp_cli_bk_file_out_commit(&fside, err, sizeof(err));
        bool side = st == KP_OK;
        if (st == KP_OK)
            st = kp_cli_bk_file_out_commit(&fout, err, sizeof(err));
        if (side && st != KP_OK)
            unlink(sidecar); /* the metadata of a ciphertext that is not there */
        if (st != KP_OK)
            rc = kp_cli_error(st, "%s", err);
    }
    kp_cli_bk_file_out_drop(&fout);
    kp_cli_bk_file_out_drop(&fside);
    kp_cli_bk_file_in_close(&in);
    if (rc == KP_EXIT_OK) {
        const char *target = o->to != NULL ? o->to : o->out;
        if (cli->json) {
            json_t *j = s_summary(o, target, in.size, job.out_bytes, s_elapsed(&prog));
            json_object_set_new(j, "kms_key", json_string(o->kms_key));
            if (o->chain != NULL)
                json_object_set_new(j, "chain", json_string(o->chain));
            if (o->out != NULL)
                json_object_set_new(j, "metadata_file", json_string(sidecar));
            kp_cli_print_json(j);
        } else {
            kp_cli_info(cli, stderr, "keyplane: encrypted %s (%llu bytes) -> %s%s%s\n", o->input,
                        (unsigned long long)in.size, target, o->out != NULL ? " and " : "",
                        o->out != NULL ? sidecar : "");
            if (o->to != NULL)
                s_print_rds(o);
        }
    }
    kp_cli_bk_fields_free(&e.fields);
    kp_free(e.blob);
    kp_free(e.envelope);
    kp_instance_close(inst);
    return rc;
}

/* ---- decrypt ------------------------------------------------------------------------------- */

/* The integrity record beside an object, when there is one: its GMAC joins the object's fields,
 * once the record is shown to be of the same encryption. */
static int s_record(kp_cli *cli, const s_opts *o, kp_instance *inst, kp_cli_bk_fields *f)
{
    char where[PATH_MAX + 32], err[KP_BK_ERR] = "";
    snprintf(where, sizeof(where), "%s%s", o->input, KP_BK_RECORD);
    kp_object_info info;
    kp_status st = kp_object_stat(inst, where, &info, NULL, NULL);
    /* not made by keyplane, or the record is lost: said later; or no record can be named
     * there (the object's own name passed, so KEY.keyplane.json is past the store's limit:
     * S3's 1024 bytes), which only another tool's object reaches */
    if (st == KP_ERR_NOT_FOUND || st == KP_ERR_INVALID_ARG)
        return KP_EXIT_OK;
    if (st == KP_ERR_PERMISSION) {
        /* S3 answers 403 for a missing key to a caller without s3:ListBucket: an RDS export
         * (no record) must still open for a reader with s3:GetObject alone */
        kp_cli_info(cli, stderr,
                    "keyplane: note: %s could not be looked at (access denied; a missing object "
                    "is denied too without s3:ListBucket): going on without keyplane's "
                    "integrity record\n",
                    where);
        return KP_EXIT_OK;
    }
    if (st != KP_OK)
        return kp_cli_fail(cli, st, where);
    if (info.size > 64 * 1024)
        return kp_cli_error(KP_ERR_INTEGRITY, "%s: %llu bytes is no integrity record", where,
                            (unsigned long long)info.size);
    uint8_t *buf = malloc(info.size + 1);
    size_t len = info.size;
    if (buf == NULL)
        return kp_cli_error(KP_ERR_NOMEM, "out of memory");
    st = s_read_all(inst, where, info.tag, buf, len);
    kp_cli_bk_fields rec;
    memset(&rec, 0, sizeof(rec));
    int rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, where);
    if (rc == KP_EXIT_OK &&
        (st = kp_cli_bk_sidecar_read((const char *)buf, len, &rec, err, sizeof(err))) != KP_OK)
        rc = kp_cli_error(st, "%s: %s", where, err);
    /* an object that lost its metadata (a copy that replaced it) opens with the record's copy
     * of the envelope: its GMAC then verifies the IV and every byte under the data key the
     * record names, as it would have the object's */
    bool bare = f->v[KP_BK_F_KEY] == NULL && f->v[KP_BK_F_KEY_V2] == NULL &&
                f->v[KP_BK_F_IV] == NULL && rec.v[KP_BK_F_MAC] != NULL;
    for (size_t i = 0; rc == KP_EXIT_OK && bare && i < KP_BK_F_COUNT; i++)
        if (rec.v[i] != NULL &&
            kp_cli_bk_fields_set(f, kp_cli_bk_field_name((kp_cli_bk_field)i), rec.v[i]) != KP_OK)
            rc = kp_cli_error(KP_ERR_NOMEM, "out of memory");
    if (rc == KP_EXIT_OK && bare)
        kp_cli_info(cli, stderr,
                    "keyplane: note: %s has no envelope metadata (x-amz-key, x-amz-iv): opened "
                    "with the copy in %s\n",
                    o->input, where);
    if (rc == KP_EXIT_OK && (st = kp_cli_bk_fields_same(f, &rec, err, sizeof(err))) != KP_OK)
        rc = kp_cli_error(st, "%s: %s", o->input, err);
    if (rc == KP_EXIT_OK && rec.v[KP_BK_F_MAC] != NULL &&
        (st = kp_cli_bk_fields_set(f, kp_cli_bk_field_name(KP_BK_F_MAC), rec.v[KP_BK_F_MAC])) !=
            KP_OK)
        rc = kp_cli_error(st, "out of memory");
    kp_cli_bk_fields_free(&rec);
    free(buf);
    return rc;
}

/* The envelope's fields: the object's metadata, or the sidecar PATH.json of a local backup. */
static int s_fields(kp_cli *cli, const s_opts *o, kp_instance *inst, kp_cli_bk_fields *f,
                    kp_object_info *info)
{
    char err[KP_BK_ERR] = "";
    if (strncmp(o->input, "s3://", 5) == 0) {
        kp_status st = kp_object_stat(inst, o->input, info, kp_cli_bk_fields_visit, f);
        return st == KP_OK ? s_record(cli, o, inst, f) : kp_cli_fail(cli, st, o->input);
    }
    char path[PATH_MAX], *text = NULL;
    size_t len = 0;
    if (snprintf(path, sizeof(path), "%s.json", o->input) >= (int)sizeof(path))
        return kp_cli_error(KP_ERR_INVALID_ARG, "%s: the path is too long", o->input);
    /* the backup itself first: a mistyped PATH is said as such, not as its missing .json */
    struct stat sb;
    if (stat(o->input, &sb) != 0)
        return kp_cli_error(errno == ENOENT ? KP_ERR_NOT_FOUND : KP_ERR_IO, "cannot open %s: %s",
                            o->input, strerror(errno));
    /* a FIFO would be read only once a writer opens it: the command waited for ever */
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return kp_cli_error(KP_ERR_INVALID_ARG, "%s is not a regular file", path);
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return kp_cli_error(KP_ERR_NOT_FOUND,
                            "%s: no such file: a local backup opens with its metadata beside it "
                            "(encrypt --out's sidecar; for an object copied down, its "
                            "KEY.keyplane.json record, or the object's metadata as docs/backup.md "
                            "makes it with aws s3api head-object)",
                            path);
    kp_status st = kp_cli_read_file(cli, path, 64 * 1024, &text, &len);
    if (st != KP_OK)
        return kp_cli_exit_code(st);
    st = kp_cli_bk_sidecar_read(text, len, f, err, sizeof(err));
    free(text);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_error(st, "%s: %s", path, err);
}

/* The data key: from KMS, or through the chain's envelope. */
static int s_open_key(kp_cli *cli, const s_opts *o, kp_instance *inst, const kp_cli_bk_plan *p,
                      kp_secret **dek, char opened_by[KP_NAME_MAX])
{
    if (!o->via_chain) {
        /* no key named unless asked: the ciphertext names its key, as the SDKs leave it */
        kp_status st = kp_datakey_decrypt(inst, o->kms_key != NULL ? o->kms_key : "", p->blob,
                                          p->bloblen, p->context, p->ncontext, dek);
        snprintf(opened_by, KP_NAME_MAX, "%s", o->instance);
        if (st != KP_OK && p->envelope != NULL && kp_status_is_transient(st))
            /* KMS out of reach, and the backup carries the way around it */
            return kp_cli_error(st,
                                "%s: %s (the backup carries a keyplane-envelope: "
                                "--via-chain opens it without KMS)",
                                o->instance, kp_cli_detail(cli, st, o->instance));
        return st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, o->instance);
    }
    if (p->envelope == NULL)
        return kp_cli_error(KP_ERR_NOT_FOUND,
                            "%s holds no keyplane-envelope: it was not encrypted with --chain, "
                            "so only KMS opens it",
                            o->input);
    if (cli->policy == NULL) {
        int rc = kp_cli_load_policy(cli);
        if (rc != KP_EXIT_OK)
            return rc;
    }
    char err[256] = "", used[KP_NAME_MAX] = "";
    kp_envelope *env = NULL;
    kp_status st = kp_envelope_decode(p->envelope, strlen(p->envelope), &env, err, sizeof(err));
    if (st != KP_OK)
        return kp_cli_error(st, "%s: keyplane-envelope: %s", o->input, err);
    if (o->chain != NULL && strcmp(o->chain, kp_envelope_chain(env)) != 0) {
        /* the chain's name is the envelope's: said before the envelope goes */
        int rc = kp_cli_error(KP_ERR_INTEGRITY, "%s: its envelope is of chain %s, not %s", o->input,
                              kp_envelope_chain(env), o->chain);
        kp_envelope_free(env);
        return rc;
    }
    st = kp_chain_unwrap(cli->ctx, cli->policy, env, o->replica, dek, used);
    int rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, kp_envelope_chain(env));
    if (rc == KP_EXIT_OK)
        kp_cli_info(cli, stderr, "keyplane: the data key opened through %s (chain %s)\n", used,
                    kp_envelope_chain(env));
    snprintf(opened_by, KP_NAME_MAX, "%s", used);
    kp_envelope_free(env);
    return rc;
}

static int s_decrypt(kp_cli *cli, const s_opts *o)
{
    char opened_by[KP_NAME_MAX] = "";
    bool s3 = strncmp(o->input, "s3://", 5) == 0;
    char err[KP_BK_ERR] = "";
    kp_cli_bk_file_out fout;
    memset(&fout, 0, sizeof(fout));
    fout.fd = -1;
    /* the target is refused before anything is read or asked */
    kp_status st = kp_cli_bk_file_out_open(o->out, o->force, &fout, err, sizeof(err));
    int rc = st == KP_OK           ? KP_EXIT_OK
             : st == KP_ERR_EXISTS ? kp_cli_error(st, "%s (--force replaces it)", err)
                                   : kp_cli_error(st, "%s", err);
    kp_instance *inst = NULL;
    if (rc == KP_EXIT_OK && o->instance != NULL)
        rc = s_open(cli, o->instance, s3, &inst);
    kp_cli_bk_fields f;
    memset(&f, 0, sizeof(f));
    kp_object_info info;
    memset(&info, 0, sizeof(info));
    kp_cli_bk_file_in in = {.fd = -1};
    if (rc == KP_EXIT_OK)
        rc = s_fields(cli, o, inst, &f, &info);
    kp_cli_bk_plan plan;
    memset(&plan, 0, sizeof(plan));
    if (rc == KP_EXIT_OK && (st = kp_cli_bk_plan_make(&f, &plan, err, sizeof(err))) != KP_OK)
        rc = kp_cli_error(st, "%s: %s", o->input, err);
    if (rc == KP_EXIT_OK && o->require_integrity && plan.mode == KP_BK_CBC_DECRYPT && !plan.has_mac)
        rc = kp_cli_error(KP_ERR_INTEGRITY,
                          "%s: no keyplane integrity record (GMAC): AES-CBC alone cannot show the "
                          "backup unchanged, and --require-integrity was given",
                          o->input);
    if (rc == KP_EXIT_OK && !s3 &&
        (st = kp_cli_bk_file_in_open(o->input, &in, err, sizeof(err))) != KP_OK)
        rc = kp_cli_error(st, "%s", err);
    kp_secret *dek = NULL;
    if (rc == KP_EXIT_OK)
        rc = s_open_key(cli, o, inst, &plan, &dek, opened_by);
    kp_cli_bk_object_in oin = {cli->ctx, inst, o->input, info.tag, 0, NULL, 0, 0, 0};
    if (s3 && (oin.ahead = malloc(S_AHEAD)) != NULL) /* else one GET per buffer: slower, same */
        oin.ahead_cap = S_AHEAD;
    s_progress prog;
    s_progress_init(cli, o, &prog, "decrypt");
    kp_cli_bk_job job = {.mode = plan.mode,
                         .key = dek,
                         .ivlen = plan.ivlen,
                         .src = s3 ? (kp_cli_bk_src){kp_cli_bk_object_read, &oin, info.size}
                                   : (kp_cli_bk_src){kp_cli_bk_file_read, &in, in.size},
                         .sink = {kp_cli_bk_file_write, &fout},
                         .progress = s_progress_fn,
                         .progress_arg = &prog};
    memcpy(job.iv, plan.iv, sizeof(job.iv));
    uint8_t mac_key[32];
    if (rc == KP_EXIT_OK && plan.has_mac && plan.mode != KP_BK_GCM_DECRYPT) {
        if (kp_cli_bk_mac_key(dek, mac_key) != KP_OK)
            rc = kp_cli_error(KP_ERR_CRYPTO, "cannot derive the backup's MAC key");
        job.mac_key = mac_key;
    }
    if (rc == KP_EXIT_OK && (st = kp_cli_bk_run(&job)) != KP_OK)
        rc = kp_cli_error(st, "%s: %s", o->input, job.err);
    if (rc == KP_EXIT_OK && !s3 &&
        (st = kp_cli_bk_file_in_unchanged(&in, err, sizeof(err))) != KP_OK)
        rc = kp_cli_error(st, "%s", err);
    OPENSSL_cleanse(mac_key, sizeof(mac_key));
    if (rc == KP_EXIT_OK && job.mac_key != NULL && CRYPTO_memcmp(job.mac, plan.mac, KP_BK_MAC) != 0)
        rc = kp_cli_error(KP_ERR_INTEGRITY,
                          "%s: its bytes are not those keyplane encrypted (the GMAC of its "
                          "integrity record does not verify): changed or corrupted",
                          o->input);
    if (prog.on && rc != KP_EXIT_OK)
        fputc('\n', stderr);
    kp_secret_free(dek);
    if (rc == KP_EXIT_OK && plan.plain_len >= 0 && (uint64_t)plan.plain_len != job.out_bytes)
        rc = kp_cli_error(KP_ERR_INTEGRITY,
                          "%s: %llu bytes decrypted, but its metadata says %lld: the backup "
                          "was changed",
                          o->input, (unsigned long long)job.out_bytes, plan.plain_len);
    if (rc == KP_EXIT_OK && (st = kp_cli_bk_file_out_commit(&fout, err, sizeof(err))) != KP_OK)
        rc = kp_cli_error(st, "%s", err);
    kp_cli_bk_file_out_drop(&fout);
    free(oin.ahead);
    kp_cli_bk_file_in_close(&in);
    const char *integrity = plan.mode == KP_BK_GCM_DECRYPT ? "gcm-tag"
                            : job.mac_key != NULL          ? "gmac"
                                                           : "padding-only";
    if (rc == KP_EXIT_OK) {
        if (cli->json) {
            json_t *j = s_summary(o, o->out, job.src.size, job.out_bytes, s_elapsed(&prog));
            json_object_set_new(j, "integrity", json_string(integrity));
            json_object_set_new(j, "via", json_string(o->via_chain ? "chain" : "kms"));
            json_object_set_new(j, "opened_by", json_string(opened_by));
            json_object_set_new(
                j, "cek_alg", json_string(plan.mode == KP_BK_GCM_DECRYPT ? KP_BK_GCM : KP_BK_CBC));
            kp_cli_print_json(j);
        } else {
            kp_cli_info(cli, stderr, "keyplane: decrypted %s -> %s (%llu bytes)\n", o->input,
                        o->out, (unsigned long long)job.out_bytes);
            if (job.mac_key == NULL && plan.mode == KP_BK_CBC_DECRYPT)
                kp_cli_info(cli, stderr,
                            "keyplane: note: no keyplane integrity record: AES-CBC was checked "
                            "by its length and padding only (the format has no integrity "
                            "check of its own)\n");
        }
    }
    kp_cli_bk_plan_free(&plan);
    kp_cli_bk_fields_free(&f);
    kp_instance_close(inst);
    return rc;
}

/* SIGINT, SIGTERM, SIGHUP stop the stream at its next buffer, and the output is dropped as on
 * any failure (a multipart upload aborted: a Ctrl-C left its parts billed); a second one ends
 * the process at once. */
static void s_on_signal(int sig)
{
    kp_cli_bk_signal = sig;
}

static const int s_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void s_catch(struct sigaction old[3])
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < 3; i++) {
        (void)sigaction(s_signals[i], NULL, &old[i]);
        if (old[i].sa_handler != SIG_IGN) /* nohup's SIGHUP stays ignored */
            (void)sigaction(s_signals[i], &sa, NULL);
    }
}

/* The handlers as they were; an interrupted command then ends by its signal (exit 128 + N to
 * the shell), its output dropped, after its --json error document. */
static void s_uncatch(const kp_cli *cli, const struct sigaction old[3], int rc)
{
    for (size_t i = 0; i < 3; i++)
        (void)sigaction(s_signals[i], &old[i], NULL);
    int sig = kp_cli_bk_signal;
    if (sig != 0 && rc != KP_EXIT_OK) {
        (void)kp_cli_finish(cli, rc);
        fflush(stdout);
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

int kp_cmd_backup(kp_cli *cli, int argc, char **argv)
{
    static const char *const subs[] = {[S_ENCRYPT] = "encrypt", [S_DECRYPT] = "decrypt", NULL};
    size_t which = 0;
    int rc = kp_cli_subcommand(cli, "backup", s_usage, subs, &argc, &argv, &which);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    s_opts o = {.kind = (s_kind)which};
    snprintf(o.cmd, sizeof(o.cmd), "backup %s", subs[which]);
    if ((rc = s_parse(cli, argc, argv, &o)) != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    struct sigaction old[3];
    s_catch(old);
    rc = o.kind == S_ENCRYPT ? s_encrypt(cli, &o) : s_decrypt(cli, &o);
    s_uncatch(cli, old, rc);
    return rc;
}
