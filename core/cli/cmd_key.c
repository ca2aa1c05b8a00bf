/*
 * keyplane key: the commands that act on one key of one instance, or on one chain's key outside
 * the engine (create, generate, import, list, public, replicate, export, export-byok, backup,
 * restore-backup): what an operator needs by hand when a policy run is not the tool, e.g. to
 * seed a store from an existing key or take a provider backup before a migration.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "cli.h"

static int s_help(void)
{
    printf("Usage: keyplane key SUBCOMMAND [OPTIONS]\n"
           "\n"
           "  create --chain CHAIN\n"
           "      Create the chain's next protector version in its origin and import the same\n"
           "      key, with the same version number, into every other keystore replica and\n"
           "      escrow instance of the chain. Once the chain has a version and a lifecycle\n"
           "      (a rotation period, or it has rotated), refused (exit 4): its next version\n"
           "      is staged with 'keyplane rotate CHAIN --stage'.\n"
           "  replicate --chain CHAIN\n"
           "      Copy every version the origin holds into each keystore replica and escrow\n"
           "      instance that lacks it (the repair after a create that reached only some).\n"
           "  generate --instance INSTANCE --name NAME [--type rsa|aes] [--bits BITS]\n"
           "           [--version N] [--exportable]\n"
           "      Generate a new key version inside one keystore instance: RSA 2048, 3072\n"
           "      (default) or 4096, or AES 128, 192 or 256 (default) where the keystore has AES.\n"
           "  import --instance INSTANCE --name NAME --key SOURCE [--passphrase SOURCE]\n"
           "         [--version N] [--exportable]\n"
           "      Import a private key (PEM or DER; PKCS#8, encrypted PKCS#8 or PKCS#1) read\n"
           "      from SOURCE (file:PATH, fd:N, env:NAME or stdin). --passphrase decrypts it.\n"
           "  export --instance INSTANCE --name NAME --passphrase SOURCE --out FILE\n"
           "         [--version N]\n"
           "      Export an exportable key as password-protected PKCS#8 PEM (PBES2, AES-256,\n"
           "      PBKDF2-SHA256 600000 iterations) for an escrow copy; at least 12 bytes.\n"
           "  export-byok --instance INSTANCE --name NAME --kek FILE --kek-kid KID --out FILE\n"
           "              [--version N]\n"
           "      Write an Azure Key Vault BYOK transfer file (.byok JSON) of an exportable key\n"
           "      for the key-exchange key KID (its versioned kid) whose public key (PEM or DER,\n"
           "      as `az keyvault key download` writes it) is in FILE; import it with\n"
           "      `az keyvault key import --byok-file FILE --kty RSA-HSM`.\n"
           "  backup --instance INSTANCE --name NAME --out FILE\n"
           "      Write the provider's own backup of every version of a key (a Key Vault\n"
           "      backup blob: opaque, restorable only into the same provider and geography).\n"
           "  restore-backup --instance INSTANCE --in FILE\n"
           "      Restore a provider backup; refused when the key already exists there.\n"
           "  list [--instance INSTANCE] [--name NAME]\n"
           "      List key versions in one or every keystore instance.\n"
           "  public --instance INSTANCE --name NAME [--version N] [--out FILE]\n"
           "      Write the public key (PEM SubjectPublicKeyInfo) of a version (default latest).\n"
           "\n"
           "Every subcommand takes --json. Key names: [A-Za-z0-9._-], at most 127.\n");
    return KP_EXIT_OK;
}

typedef struct s_opts {
    const char *chain, *instance, *name, *key_src, *pass_src, *out, *kek, *kek_kid, *in;
    uint32_t type;
    uint32_t bits, version;
    bool exportable;
} s_opts;

static int s_parse(kp_cli *cli, const char *sub, int argc, char **argv, s_opts *o)
{
    static const struct option opts[] = {{"chain", required_argument, NULL, 'c'},
                                         {"instance", required_argument, NULL, 'i'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"passphrase", required_argument, NULL, 'P'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"bits", required_argument, NULL, 'b'},
                                         {"version", required_argument, NULL, 'V'},
                                         {"exportable", optional_argument, NULL, 'x'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"type", required_argument, NULL, 't'},
                                         {"kek", required_argument, NULL, 'K'},
                                         {"kek-kid", required_argument, NULL, 'D'},
                                         {"in", required_argument, NULL, 'I'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    char *end = NULL;
    while ((c = getopt_long(argc, argv, "c:i:n:k:P:o:b:V:xjht:K:D:I:", opts, NULL)) != -1) {
        switch (c) {
        case 'I':
            o->in = optarg;
            break;
        case 'c':
            o->chain = optarg;
            break;
        case 'i':
            o->instance = optarg;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'k':
            o->key_src = optarg;
            break;
        case 'P':
            o->pass_src = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'b':
            o->bits = (uint32_t)strtoul(optarg, &end, 10);
            if (*end != '\0' || !(o->bits == 2048 || o->bits == 3072 || o->bits == 4096 ||
                                  o->bits == 128 || o->bits == 192 || o->bits == 256))
                return kp_cli_usage_error(sub, "--bits must be 2048, 3072 or 4096 (RSA) or 128, "
                                               "192 or 256 (AES)");
            break;
        case 't':
            if (strcmp(optarg, "rsa") == 0)
                o->type = KP_KEY_RSA;
            else if (strcmp(optarg, "aes") == 0)
                o->type = KP_KEY_AES;
            else
                return kp_cli_usage_error(sub, "--type must be rsa or aes");
            break;
        case 'K':
            o->kek = optarg;
            break;
        case 'D':
            o->kek_kid = optarg;
            break;
        case 'V': {
            int rc = kp_cli_version_opt(sub, optarg, true,
                                        "--version must be an integer from 1 to 4294967295",
                                        &o->version);
            if (rc != KP_EXIT_OK)
                return rc;
            break;
        }
        case 'x': {
            int rc = kp_cli_flag(sub, "exportable", optarg, &o->exportable);
            if (rc != KP_EXIT_OK)
                return rc;
            break;
        }
        case 'j':
            cli->json = true;
            break;
        case 'h':
            return s_help() - 1; /* -1: help printed, exit 0 */
        default:
            return kp_cli_bad_option(sub, argv);
        }
    }
    if (optind < argc)
        return kp_cli_usage_error(sub, "unexpected argument '%s'", argv[optind]);
    return KP_EXIT_OK;
}

/* Reads a public key (PEM or DER SubjectPublicKeyInfo) and returns its DER. */
static kp_status s_read_spki(const char *path, uint8_t **der, size_t *len)
{
    kp_status st = KP_ERR_INVALID_ARG;
    EVP_PKEY *pkey = NULL;
    unsigned char *p = NULL;
    int n = -1;
    *der = NULL;
    BIO *bio = BIO_new_file(path, "rb");
    if (bio == NULL) {
        int saved = errno;
        st = saved == ENOENT ? KP_ERR_NOT_FOUND : KP_ERR_IO;
        kp_cli_error(st, "cannot open %s: %s", path, strerror(saved));
        return st;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (pkey == NULL) {
        (void)BIO_reset(bio);
        pkey = d2i_PUBKEY_bio(bio, NULL);
    }
    if (pkey == NULL)
        goto out;
    if (!EVP_PKEY_is_a(pkey, "RSA"))
        goto out;
    n = i2d_PUBKEY(pkey, NULL);
    if (n <= 0)
        goto out;
    p = malloc((size_t)n);
    if (p == NULL)
        goto out;
    *der = p;
    i2d_PUBKEY(pkey, &p);
    *len = (size_t)n;
    st = KP_OK;
out:
    if (st != KP_OK)
        kp_cli_error(st, "%s is not an RSA public key (PEM or DER)", path);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return st;
}

static json_t *s_info_json(const kp_cli *cli, const char *instance, const kp_key_info *k)
{
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:b, s:I, s:s}", "instance", instance,
                          "name", k->name, "version", (int)k->version, "type",
                          k->type == KP_KEY_RSA ? "rsa" : "aes", "bits", (int)k->bits,
                          "fingerprint", k->fingerprint, "exportable",
                          (k->flags & KP_KEY_EXPORTABLE) != 0, "created", (json_int_t)k->created,
                          "state", k->state == KP_KEY_DISABLED ? "disabled" : "enabled");
    kp_cli_backend_id_json(cli, j, instance, k->backend_id);
    return j;
}

/* The store's id last: it is as long as the store makes it (a Key Vault kid, a PKCS#11 URI). */
static void s_print_info(const char *instance, const kp_key_info *k)
{
    bool exp = k->flags & KP_KEY_EXPORTABLE, off = k->state == KP_KEY_DISABLED;
    printf("%-16s %-24s v%-4u %s-%-5u %-16.16s  %-10s  %s\n", instance, k->name, k->version,
           k->type == KP_KEY_AES ? "aes" : "rsa", k->bits, k->fingerprint,
           exp && off ? "exportable,disabled"
           : exp      ? "exportable"
           : off      ? "disabled"
                      : "-",
           k->backend_id[0] != '\0' ? k->backend_id : "-");
}

static int s_open(kp_cli *cli, const char *name, kp_instance **inst)
{
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_status st = kp_instance_open(cli->ctx, cli->policy, name, inst);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, "open instance");
}

static void s_create_report(void *arg, const char *item, kp_status status, const char *detail)
{
    kp_cli *cli = arg;
    if (cli->json)
        return;
    if (status == KP_OK)
        kp_cli_info(cli, stderr, "  %-4s %-16s %s\n", "ok", item, detail);
    else
        fprintf(stderr, "  %-4s %-16s %s\n", "FAIL", item, detail);
}

static int s_create(kp_cli *cli, const s_opts *o)
{
    if (o->chain == NULL)
        return kp_cli_usage_error("key create", "--chain is required");
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_key_info info;
    kp_status st =
        kp_chain_create_protector(cli->ctx, cli->policy, o->chain, s_create_report, cli, &info);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "key create");
    const kp_chain_policy *c = kp_policy_chain(cli->policy, o->chain);
    if (cli->json)
        kp_cli_print_json(s_info_json(cli, c->origin, &info));
    else
        kp_cli_info(cli, stdout, "created %s v%u (rsa-%u, fingerprint %s) in %s and its replicas\n",
                    info.name, info.version, info.bits, info.fingerprint, c->origin);
    return KP_EXIT_OK;
}

static int s_replicate(kp_cli *cli, const s_opts *o)
{
    if (o->chain == NULL)
        return kp_cli_usage_error("key replicate", "--chain is required");
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_status st = kp_chain_replicate(cli->ctx, cli->policy, o->chain, s_create_report, cli);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "key replicate");
    if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:b}", "chain", o->chain, "ok", 1));
    else
        kp_cli_info(cli, stdout, "every keystore of %s holds every version of its origin\n",
                    o->chain);
    return KP_EXIT_OK;
}

/* The private key to import, from --key (decrypted with --passphrase), as PKCS#8 DER. */
static int s_read_private_key(const s_opts *o, kp_secret **der)
{
    char err[256];
    kp_secret *raw = NULL, *pass = NULL;
    kp_status st = kp_secret_read_source(o->key_src, 64 * 1024, 0, &raw, err, sizeof(err));
    if (st == KP_OK && o->pass_src != NULL)
        st = kp_secret_read_source(o->pass_src, 4096, 1, &pass, err, sizeof(err));
    if (st == KP_OK)
        st = kp_private_key_to_pkcs8(raw, pass, der, err, sizeof(err));
    /* Name the key's source only when the key itself is what failed. */
    const char *src =
        st != KP_OK && raw != NULL && (pass != NULL || o->pass_src == NULL) ? o->key_src : NULL;
    int rc = st == KP_OK ? KP_EXIT_OK
                         : kp_cli_error(st, "key import: %s%s%s", src != NULL ? src : "",
                                        src != NULL ? ": " : "", err);
    kp_secret_free(raw);
    kp_secret_free(pass);
    return rc;
}

static int s_generate_or_import(kp_cli *cli, const s_opts *o, bool import)
{
    const char *sub = import ? "key import" : "key generate";
    if (o->instance == NULL || o->name == NULL)
        return kp_cli_usage_error(sub, "--instance and --name are required");
    if (import && (o->key_src == NULL || !kp_secret_source_valid(o->key_src)))
        return kp_cli_usage_error(sub, "--key SOURCE is required (file:PATH, fd:N, env:NAME "
                                       "or stdin)");
    int rc =
        o->pass_src != NULL ? kp_cli_source_opt(sub, "passphrase", o->pass_src, false) : KP_EXIT_OK;
    if (rc != KP_EXIT_OK)
        return rc;
    kp_secret *der = NULL;
    kp_instance *inst = NULL;
    rc = import ? s_read_private_key(o, &der) : KP_EXIT_OK;
    if (rc == KP_EXIT_OK)
        rc = s_open(cli, o->instance, &inst);
    uint32_t type = o->type != 0 ? o->type : KP_KEY_RSA;
    uint32_t bits = o->bits != 0 || import ? o->bits : type == KP_KEY_AES ? 256 : 3072;
    if (rc == KP_EXIT_OK && bits != 0 && (type == KP_KEY_AES) != (bits <= 256))
        rc = kp_cli_usage_error(sub, "--bits %u does not fit --type %s", bits,
                                type == KP_KEY_AES ? "aes" : "rsa");
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = o->name,
                        .type = type,
                        .bits = bits,
                        .flags = o->exportable ? KP_KEY_EXPORTABLE : 0,
                        .version = o->version};
    kp_key_info info;
    kp_status st = KP_OK;
    if (rc == KP_EXIT_OK)
        st = import ? kp_key_import(inst, &spec, der, &info) : kp_key_create(inst, &spec, &info);
    if (rc == KP_EXIT_OK && st != KP_OK)
        rc = kp_cli_fail(cli, st, sub);
    else if (rc == KP_EXIT_OK && cli->json)
        kp_cli_print_json(s_info_json(cli, o->instance, &info));
    else if (rc == KP_EXIT_OK)
        kp_cli_info(cli, stdout, "%s %s v%u (%s-%u%s%s) in %s\n", import ? "imported" : "generated",
                    info.name, info.version, info.type == KP_KEY_AES ? "aes" : "rsa", info.bits,
                    info.fingerprint[0] != '\0' ? ", fingerprint " : "", info.fingerprint,
                    o->instance);
    kp_secret_free(der);
    kp_instance_close(inst);
    return rc;
}

typedef struct s_list {
    kp_cli *cli;
    const char *instance;
    json_t *out;
} s_list;

static kp_status s_list_visit(void *arg, const kp_key_info *info)
{
    s_list *l = arg;
    if (l->cli->json)
        json_array_append_new(l->out, s_info_json(l->cli, l->instance, info));
    else
        s_print_info(l->instance, info);
    return KP_OK;
}

static int s_list_keys(kp_cli *cli, const s_opts *o)
{
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    if (o->instance != NULL && kp_policy_instance_plugin(cli->policy, o->instance) == NULL)
        return kp_cli_not_in_policy(cli, "provider instance", o->instance);
    s_list l = {cli, NULL, cli->json ? json_array() : NULL};
    int failed = 0;
    if (!cli->json)
        printf("%-16s %-24s %-5s %-9s %-17s %-11s %s\n", "INSTANCE", "NAME", "VER", "TYPE",
               "FINGERPRINT", "FLAGS", "ID (the store's: Key Vault kid, KMS ARN, ...)");
    for (size_t i = 0; i < kp_policy_instance_count(cli->policy); i++) {
        const char *name = kp_policy_instance_name(cli->policy, i);
        if (o->instance != NULL && strcmp(name, o->instance) != 0)
            continue;
        if (!(kp_policy_instance_capabilities(cli->policy, name) & KP_CAP_KEYSTORE))
            continue;
        kp_instance *inst = NULL;
        kp_status st = kp_instance_open(cli->ctx, cli->policy, name, &inst);
        l.instance = name;
        if (st == KP_OK)
            st = kp_key_list(inst, o->name, s_list_visit, &l);
        kp_instance_close(inst);
        if (st == KP_ERR_NOT_FOUND && o->name != NULL)
            continue;
        if (st != KP_OK) {
            /* One unreachable instance does not hide the others' keys. */
            kp_cli_fail(cli, st, "key list");
            failed++;
        }
    }
    if (cli->json)
        kp_cli_print_json(json_pack("{s:o}", "keys", l.out));
    return failed > 0 ? KP_EXIT_FAIL : KP_EXIT_OK;
}

static int s_export(kp_cli *cli, const s_opts *o)
{
    if (o->instance == NULL || o->name == NULL || o->pass_src == NULL || o->out == NULL)
        return kp_cli_usage_error("key export",
                                  "--instance, --name, --passphrase and --out are required");
    int rc = kp_cli_source_opt("key export", "passphrase", o->pass_src, false);
    if (rc != KP_EXIT_OK)
        return rc;
    char err[256];
    kp_secret *pass = NULL, *der = NULL;
    kp_status st = kp_secret_read_source(o->pass_src, 4096, 1, &pass, err, sizeof(err));
    if (st != KP_OK)
        return kp_cli_error(st, "key export: %s", err);
    if (kp_secret_len(pass) < 12) {
        kp_secret_free(pass);
        return kp_cli_usage_error("key export", "the export passphrase must have at least 12 "
                                                "bytes");
    }
    kp_instance *inst = NULL;
    rc = s_open(cli, o->instance, &inst);
    char *pem = NULL;
    size_t len = 0;
    if (rc == KP_EXIT_OK) {
        st = kp_key_export(inst, o->name, o->version, &der);
        rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, "key export");
        kp_instance_close(inst);
    }
    if (rc == KP_EXIT_OK && (st = kp_pkcs8_encrypt_pem(der, pass, &pem, &len)) != KP_OK)
        rc = kp_cli_fail(cli, st, "key export");
    kp_secret_free(der);
    kp_secret_free(pass);
    if (rc == KP_EXIT_OK)
        rc = kp_cli_exit_code(kp_cli_write_file(cli, o->out, pem, len));
    if (rc == KP_EXIT_OK && cli->json)
        kp_cli_print_json(
            json_pack("{s:s, s:s, s:s}", "instance", o->instance, "name", o->name, "out", o->out));
    else if (rc == KP_EXIT_OK)
        kp_cli_info(cli, stderr, "keyplane: encrypted PKCS#8 of %s -> %s\n", o->name, o->out);
    kp_free(pem);
    return rc;
}

static int s_export_byok(kp_cli *cli, const s_opts *o)
{
    if (o->instance == NULL || o->name == NULL || o->kek == NULL || o->kek_kid == NULL ||
        o->out == NULL)
        return kp_cli_usage_error("key export-byok",
                                  "--instance, --name, --kek, --kek-kid and --out are required");
    if (!kpk_byok_kid_valid(o->kek_kid))
        return kp_cli_usage_error("key export-byok",
                                  "--kek-kid must be the key-exchange key's kid "
                                  "(https://VAULT.vault.azure.net/keys/NAME/VERSION)");
    uint8_t *kek = NULL, *blob = NULL;
    size_t keklen = 0, bloblen = 0, filelen = 0;
    char *file = NULL;
    kp_status st = s_read_spki(o->kek, &kek, &keklen);
    if (st != KP_OK)
        return kp_cli_exit_code(st);
    kp_instance *inst = NULL;
    int rc = s_open(cli, o->instance, &inst);
    if (rc == KP_EXIT_OK) {
        /* Azure Key Vault BYOK is CKM_RSA_AES_KEY_WRAP with OAEP SHA-1 */
        st = kp_key_export_wrapped(inst, o->name, o->version, KP_KEYX_RSA_AES_KWP_SHA1, kek, keklen,
                                   &blob, &bloblen);
        rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, "key export-byok");
        kp_instance_close(inst);
    }
    if (rc == KP_EXIT_OK) {
        char generator[64];
        snprintf(generator, sizeof(generator), "keyplane %s", kp_version());
        st = kpk_byok_file(o->kek_kid, blob, bloblen, generator, &file, &filelen);
        rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, "key export-byok");
    }
    if (rc == KP_EXIT_OK) {
        st = kp_cli_write_file(cli, o->out, (const uint8_t *)file, filelen);
        rc = kp_cli_exit_code(st);
    }
    if (rc == KP_EXIT_OK && cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:s, s:i, s:s}", "instance", o->instance, "name",
                                    o->name, "kek_kid", o->kek_kid, "bytes", (int)filelen, "out",
                                    o->out));
    else if (rc == KP_EXIT_OK)
        kp_cli_info(cli, stderr,
                    "keyplane: BYOK transfer file of %s for %s -> %s\n"
                    "  import it: az keyvault key import --vault-name VAULT --name NAME "
                    "--byok-file %s --kty RSA-HSM --ops wrapKey unwrapKey\n",
                    o->name, o->kek_kid, o->out, o->out);
    free(kek);
    free(file);
    kp_free(blob);
    return rc;
}

#define S_BACKUP_MAX (8 * 1024 * 1024)

static int s_backup(kp_cli *cli, const s_opts *o)
{
    if (o->instance == NULL || o->name == NULL || o->out == NULL)
        return kp_cli_usage_error("key backup", "--instance, --name and --out are required");
    kp_instance *inst = NULL;
    int rc = s_open(cli, o->instance, &inst);
    if (rc != KP_EXIT_OK)
        return rc;
    kp_secret *blob = NULL;
    kp_status st = kp_key_backup(inst, o->name, &blob);
    kp_instance_close(inst);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "key backup");
    st = kp_cli_write_secret(cli, o->out, kp_secret_data(blob), kp_secret_len(blob));
    size_t n = kp_secret_len(blob);
    kp_secret_free(blob);
    if (st != KP_OK)
        return kp_cli_exit_code(st);
    if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:i, s:s}", "instance", o->instance, "name",
                                    o->name, "bytes", (int)n, "out", o->out));
    else
        kp_cli_info(cli, stderr, "keyplane: backup of %s in %s (%zu bytes) -> %s\n", o->name,
                    o->instance, n, o->out);
    return KP_EXIT_OK;
}

static int s_restore_backup(kp_cli *cli, const s_opts *o)
{
    if (o->instance == NULL || o->in == NULL)
        return kp_cli_usage_error("key restore-backup", "--instance and --in are required");
    char ref[4096], err[256], name[KP_NAME_MAX];
    if ((size_t)snprintf(ref, sizeof(ref), "file:%s", o->in) >= sizeof(ref))
        return kp_cli_usage_error("key restore-backup", "--in path too long");
    kp_secret *blob = NULL;
    kp_status st = kp_secret_read_source(ref, S_BACKUP_MAX, 0, &blob, err, sizeof(err));
    if (st != KP_OK)
        return kp_cli_error(st, "key restore-backup: %s", err);
    int rc = kp_cli_lock(cli);
    if (rc != KP_EXIT_OK) {
        kp_secret_free(blob);
        return rc;
    }
    kp_instance *inst = NULL;
    rc = s_open(cli, o->instance, &inst);
    if (rc == KP_EXIT_OK) {
        st = kp_key_restore_backup(inst, blob, name);
        rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, "key restore-backup");
        kp_instance_close(inst);
    }
    kp_secret_free(blob);
    if (rc == KP_EXIT_OK && cli->json)
        kp_cli_print_json(
            json_pack("{s:s, s:o}", "instance", o->instance, "name", kp_cli_jstr(name)));
    else if (rc == KP_EXIT_OK)
        kp_cli_info(cli, stderr, "keyplane: restored %s into %s\n", name, o->instance);
    return rc;
}

/* PEM of an SPKI: OpenSSL's PEM writer over the DER as it is (no parse). NULL when out of
 * memory. */
static char *s_pem(const uint8_t *spki, size_t len, size_t *pemlen)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL, *data = NULL;
    long n = 0;
    if (bio != NULL && PEM_write_bio(bio, "PUBLIC KEY", "", spki, (long)len) > 0)
        n = BIO_get_mem_data(bio, &data);
    if (n > 0 && (pem = malloc((size_t)n)) != NULL) {
        memcpy(pem, data, (size_t)n);
        *pemlen = (size_t)n;
    }
    BIO_free(bio);
    return pem;
}

static int s_public(kp_cli *cli, const s_opts *o)
{
    if (o->instance == NULL || o->name == NULL)
        return kp_cli_usage_error("key public", "--instance and --name are required");
    if (cli->json && o->out == NULL)
        return kp_cli_usage_error("key public", "--json needs --out for the PEM");
    kp_instance *inst = NULL;
    int rc = s_open(cli, o->instance, &inst);
    if (rc != KP_EXIT_OK)
        return rc;
    uint8_t *spki = NULL;
    size_t len = 0, n = 0;
    kp_status st = kp_key_get_public(inst, o->name, o->version, &spki, &len);
    kp_instance_close(inst);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "key public");
    char *pem = s_pem(spki, len, &n);
    st = pem != NULL ? kp_cli_write_file(cli, o->out != NULL ? o->out : "-", pem, n) : KP_ERR_NOMEM;
    char fpr[KPK_FPR_HEX];
    if (st == KP_OK && cli->json && o->out != NULL)
        st = kp_fingerprint_spki(spki, len, fpr);
    if (st == KP_OK && cli->json && o->out != NULL)
        kp_cli_print_json(json_pack("{s:s, s:s, s:s, s:s}", "instance", o->instance, "name",
                                    o->name, "fingerprint", fpr, "out", o->out));
    free(pem);
    kp_free(spki);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_exit_code(st);
}

int kp_cmd_key(kp_cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return kp_cli_usage_error("key",
                                  "missing subcommand (create, replicate, generate, import, list, "
                                  "public)");
    /* "key --json list" reads as naturally as "key list --json". */
    while (argc > 2 && strcmp(argv[1], "--json") == 0) {
        cli->json = true;
        argv++;
        argc--;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0)
        return s_help();
    s_opts o = {0};
    optind = 1;
    char full[32];
    snprintf(full, sizeof(full), "key %s", sub);
    int rc = s_parse(cli, full, argc - 1, argv + 1, &o);
    if (rc < 0)
        return KP_EXIT_OK;
    if (rc != KP_EXIT_OK)
        return rc;
    if (strcmp(sub, "create") == 0)
        return s_create(cli, &o);
    if (strcmp(sub, "replicate") == 0)
        return s_replicate(cli, &o);
    if (strcmp(sub, "generate") == 0)
        return s_generate_or_import(cli, &o, false);
    if (strcmp(sub, "import") == 0)
        return s_generate_or_import(cli, &o, true);
    if (strcmp(sub, "list") == 0)
        return s_list_keys(cli, &o);
    if (strcmp(sub, "export") == 0)
        return s_export(cli, &o);
    if (strcmp(sub, "export-byok") == 0)
        return s_export_byok(cli, &o);
    if (strcmp(sub, "public") == 0)
        return s_public(cli, &o);
    if (strcmp(sub, "backup") == 0)
        return s_backup(cli, &o);
    if (strcmp(sub, "restore-backup") == 0)
        return s_restore_backup(cli, &o);
    return kp_cli_usage_error("key",
                              "unknown subcommand '%s' (expected create, replicate, generate, "
                              "export, export-byok, "
                              "import, list, public, backup, restore-backup)",
                              sub);
}
