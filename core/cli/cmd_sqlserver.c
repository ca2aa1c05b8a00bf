/*
 * keyplane sqlserver: a SQL Server TDE protector is a certificate (docs/sqlserver.md).
 *   import         a .cer and its .pvk become the chain's next version (or its first)
 *   export         a version as NAME.cer, NAME.pvk and restore.sql for a DR instance
 *   rotate-script  the T-SQL that moves every listed database to the staged version
 *   inventory-query, inventory import   which databases use which certificate
 * The files are read and checked before anything is written anywhere: each bad input is one
 * line naming the file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "sqlserver.h"

static const char s_usage[] =
    "Usage: keyplane sqlserver SUBCOMMAND [OPTIONS]\n"
    "\n"
    "  import --chain CHAIN --cer FILE.cer --pvk FILE.pvk [--password SOURCE]\n"
    "      Make a SQL Server certificate (DER .cer and its .pvk private key, as BACKUP\n"
    "      CERTIFICATE writes them) the chain's first version, or its next one, staged\n"
    "      as 'keyplane rotate --stage' stages (activate it with 'rotate --activate').\n"
    "      Then every store the policy names gets it. --password reads the .pvk's\n"
    "      password from SOURCE (env:NAME, file:PATH, fd:N or stdin); without it the\n"
    "      .pvk must be unencrypted. Importing a key that is a version already gives\n"
    "      that version (its certificate kept where it was missing).\n"
    "  export --chain CHAIN [--version N] [--from INSTANCE] --out DIR [--show-password]\n"
    "      Write DIR/CHAIN_vN.cer, DIR/CHAIN_vN.pvk and DIR/restore.sql, the T-SQL that\n"
    "      creates the certificate on a DR instance and re-encrypts the master key of\n"
    "      each database the policy lists with column_keys. The key comes from --from\n"
    "      first (the store you trust while the origin is unreachable), then the origin,\n"
    "      the other keystores, the secret replicas. A secret replica's .pvk is written\n"
    "      as it is kept, its password being CHAIN.password in the secrets store; else\n"
    "      the .pvk is made under a fresh password kept there as CHAIN.pvk-password.\n"
    "      Passwords appear in restore.sql only with --show-password (else sqlcmd\n"
    "      variables). Default version: the one 'keyplane wrap' uses (the active one).\n"
    "  rotate-script CHAIN\n"
    "      Print the T-SQL that creates the staged version's certificate on every\n"
    "      instance the chain lists, then switches each database to it, then checks\n"
    "      each database's encryptor thumbprint.\n"
    "  inventory-query\n"
    "      Print the T-SQL that lists each TDE database with its encryptor thumbprint\n"
    "      and whether a database master key protects column keys in it.\n"
    "  inventory import FILE [--replace]\n"
    "      Record what that query returned (CSV as sqlcmd writes it, or JSON): verify\n"
    "      names each database that would not restore somewhere, retire refuses a\n"
    "      version one still uses. --replace drops what was recorded before.\n"
    "  inventory show\n"
    "      Print what is recorded.\n"
    "\n"
    "Every subcommand takes --json.\n"
    "\n"
    "Exit status: 0 done; 2 usage; 3 policy invalid or the chain has no certificate block;\n"
    "4 wrong password; 5 no such chain, file or version; 7 a file that is not what it should\n"
    "be, or a key that is not the certificate's; 6 and 8 store failures.\n";

typedef struct s_opts {
    const char *chain, *cer, *pvk, *password, *out, *from;
    uint32_t version;
    bool show_password;
} s_opts;

static int s_parse(kp_cli *cli, const char *sub, int argc, char **argv, s_opts *o)
{
    static const struct option opts[] = {{"chain", required_argument, NULL, 'c'},
                                         {"cer", required_argument, NULL, 'C'},
                                         {"pvk", required_argument, NULL, 'P'},
                                         {"password", required_argument, NULL, 'p'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"version", required_argument, NULL, 'v'},
                                         {"show-password", no_argument, NULL, 'S'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "sqlserver %s", sub);
    int c;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->chain = optarg;
            break;
        case 'C':
            o->cer = optarg;
            break;
        case 'P':
            o->pvk = optarg;
            break;
        case 'p': {
            int rc = kp_cli_source_opt(cmd, "password", optarg, true);
            if (rc != KP_EXIT_OK)
                return rc;
            o->password = optarg;
            break;
        }
        case 'o':
            o->out = optarg;
            break;
        case 'v': {
            int rc = kp_cli_version_opt(
                cmd, optarg, false, "--version must be a version number (1, 2, ...)", &o->version);
            if (rc != KP_EXIT_OK)
                return rc;
            break;
        }
        case 'S':
            o->show_password = true;
            break;
        case 'f':
            o->from = optarg;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            fputs(s_usage, stdout);
            return -1;
        default:
            return kp_cli_bad_option(cmd, argv);
        }
    }
    return KP_EXIT_OK;
}

/* The chain o names, which must have a certificate block: KP_EXIT_OK with *c, or the error. */
static int s_chain(kp_cli *cli, const char *chain, const kp_chain_policy **c)
{
    *c = kp_policy_chain(cli->policy, chain);
    if (*c == NULL)
        return kp_cli_not_in_policy(cli, "chain", chain);
    if ((*c)->certificate == NULL)
        return kp_cli_error(KP_ERR_CONFIG,
                            "chain '%s' has no 'certificate' block: its protector is no SQL "
                            "Server certificate (docs/sqlserver.md)",
                            chain);
    return KP_EXIT_OK;
}

/* ---- import ------------------------------------------------------------------------------ */

/* The certificate and key files, read and checked: KP_EXIT_OK with *pkcs8 and *der, or the
 * one-line error naming the file. */
static int s_read_pair(kp_cli *cli, const s_opts *o, kp_cert_info *ci, uint8_t **der,
                       size_t *derlen, kp_secret **pkcs8)
{
    char *cer = NULL, *pvk = NULL, err[256];
    size_t cerlen = 0, pvklen = 0;
    kp_secret *password = NULL;
    kp_pvk_enc enc = KP_PVK_NONE;
    int rc = KP_EXIT_OK;
    kp_status st = kp_cli_read_file(cli, o->cer, KP_CERT_MAX + 1, &cer, &cerlen);
    if (st != KP_OK)
        return kp_cli_exit_code(st); /* kp_cli_read_file said why */
    st = kp_cert_read((const uint8_t *)cer, cerlen, ci, err, sizeof(err));
    if (st != KP_OK) {
        rc = kp_cli_error(KP_ERR_INTEGRITY, "%s: %s", o->cer, err);
        goto out;
    }
    /* every store keeps RSA keys of 2048 bits or more (SQL Server made 1024-bit ones before
     * 2016): said here, before anything is read from the .pvk or written anywhere */
    if (ci->key_bits < 2048) {
        rc = kp_cli_error(KP_ERR_INTEGRITY,
                          "%s: the certificate's key is RSA-%u; keyplane keeps RSA keys of 2048 "
                          "bits or more (make a new certificate on the instance and rotate to "
                          "it)",
                          o->cer, ci->key_bits);
        goto out;
    }
    if ((st = kp_cli_read_file(cli, o->pvk, KP_PVK_MAX + 1, &pvk, &pvklen)) != KP_OK) {
        rc = kp_cli_exit_code(st);
        goto out;
    }
    if (o->password != NULL &&
        (st = kp_secret_read_source(o->password, 4096, 1, &password, err, sizeof(err))) != KP_OK) {
        rc = kp_cli_error(st, "--password: %s", err);
        goto out;
    }
    st = kp_pvk_read((const uint8_t *)pvk, pvklen, password, pkcs8, &enc, err, sizeof(err));
    if (st == KP_ERR_AUTH)
        rc = kp_cli_error(st, "wrong password for %s", o->pvk);
    else if (st != KP_OK)
        rc = kp_cli_error(st == KP_ERR_INVALID_ARG ? KP_ERR_INTEGRITY : st, "%s: %s%s", o->pvk, err,
                          strstr(err, "password is needed") != NULL ? " (give --password)" : "");
    if (rc != KP_EXIT_OK)
        goto out;
    char fpr[KPK_FPR_HEX];
    EVP_PKEY *pk = NULL;
    const unsigned char *p = kp_secret_cdata(*pkcs8);
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)kp_secret_len(*pkcs8));
    pk = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (pk == NULL || kpk_fpr_pkey(pk, fpr) != KP_OK || strcmp(fpr, ci->fingerprint) != 0)
        rc = kp_cli_error(KP_ERR_INTEGRITY,
                          "%s holds another key than the certificate in %s (%s, thumbprint %s)",
                          o->pvk, o->cer, ci->subject, ci->thumbprint);
    EVP_PKEY_free(pk);
    if (rc == KP_EXIT_OK && ci->not_after < (int64_t)time(NULL))
        kp_cli_info(cli, stderr,
                    "keyplane: warning: %s expired; SQL Server still restores with an expired "
                    "TDE certificate, but rotate to a new one soon\n",
                    o->cer);
    if (rc == KP_EXIT_OK) {
        *der = (uint8_t *)cer;
        *derlen = cerlen;
        cer = NULL;
    }
out:
    if (rc != KP_EXIT_OK) {
        kp_secret_free(*pkcs8);
        *pkcs8 = NULL;
    }
    free(cer);
    if (pvk != NULL)
        kp_memwipe(pvk, pvklen);
    free(pvk);
    kp_secret_free(password);
    return rc;
}

static int s_import(kp_cli *cli, const s_opts *o)
{
    if (o->chain == NULL || o->cer == NULL || o->pvk == NULL)
        return kp_cli_usage_error("sqlserver import", "--chain, --cer and --pvk are required");
    const kp_chain_policy *c = NULL;
    KP_GUARD(s_chain(cli, o->chain, &c));
    kp_cert_info ci = {0};
    uint8_t *der = NULL;
    size_t derlen = 0;
    kp_secret *pkcs8 = NULL;
    int rc = s_read_pair(cli, o, &ci, &der, &derlen, &pkcs8);
    if (rc != KP_EXIT_OK)
        return rc;
    rc = kp_cli_lock(cli);
    uint32_t version = 0;
    int staged = 0, verified = 0;
    kp_apply_opts aopts = {sizeof(aopts), 0, NULL, NULL, NULL};
    kp_status st = rc == KP_EXIT_OK ? kp_chain_import(cli->ctx, cli->policy, o->chain, pkcs8, der,
                                                      derlen, &aopts, &version, &staged, &verified)
                                    : KP_OK;
    kp_secret_free(pkcs8);
    free(der);
    if (rc != KP_EXIT_OK)
        return rc;
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "sqlserver import");
    if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:i, s:b, s:b, s:s, s:s, s:I}", "chain", o->chain,
                                    "version", (int)version, "staged", staged, "verified", verified,
                                    "thumbprint", ci.thumbprint, "subject", ci.subject, "not_after",
                                    (json_int_t)ci.not_after));
    else if (!staged)
        kp_cli_info(cli, stdout,
                    "imported %s (thumbprint %s) as %s v%u; every store of the chain has it\n",
                    ci.subject, ci.thumbprint, o->chain, version);
    else if (verified)
        kp_cli_info(cli, stdout,
                    "imported %s (thumbprint %s) as %s v%u, staged and proved in every store; "
                    "once every instance has the certificate (keyplane sqlserver rotate-script "
                    "%s), activate it: keyplane rotate %s --activate\n",
                    ci.subject, ci.thumbprint, o->chain, version, o->chain, o->chain);
    else
        printf("imported %s (thumbprint %s) as %s v%u, staged, but not proved in every store: "
               "see keyplane verify %s\n",
               ci.subject, ci.thumbprint, o->chain, version, o->chain);
    return staged && !verified ? KP_EXIT_FAIL : KP_EXIT_OK;
}

/* ---- export ------------------------------------------------------------------------------ */

/* 32 random bytes as base64: a password sqlcmd and SQL Server take as it is. */
static kp_secret *s_password(void)
{
    unsigned char raw[32];
    char text[48];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return NULL;
    kpk_b64_encode(raw, sizeof(raw), text);
    kp_secret *s = kp_secret_new_copy(text, strlen(text));
    kp_memwipe(raw, sizeof(raw));
    kp_memwipe(text, sizeof(text));
    return s;
}

/* The password kept in the chain's secrets store: the .pvk's (what "pvk-password"), a DMK's. */
static kp_status s_keep_password(kp_instance *store, const kp_chain_policy *c, uint32_t version,
                                 const kp_cert_info *ci, const kp_secret *pw, uint32_t *pwver)
{
    char name[KP_NAME_MAX + 32], vbuf[16];
    kp_cli_sql_secret_name(c->name, "pvk-password", name, sizeof(name));
    snprintf(vbuf, sizeof(vbuf), "%u", version);
    kp_meta meta[] = {{"chain", c->name}, {"kp-version", vbuf}, {"thumbprint", ci->thumbprint}};
    return kp_store_put(store, name, pw, meta, 3, pwver);
}

/* The DMK password of each column_keys database from the chain's secrets store (with
 * --show-password): (*vals)[i] malloc'd text, or an error naming the missing one. */
static int s_dmk_passwords(kp_instance *store, const kp_chain_policy *c, char ***vals, size_t *n)
{
    *n = 0;
    size_t count = 0;
    for (size_t i = 0; i < c->nsqlserver; i++)
        for (size_t j = 0; j < c->sqlserver[i].ndatabases; j++)
            count += c->sqlserver[i].databases[j].column_keys != 0;
    if ((*vals = calloc(count + 1, sizeof(**vals))) == NULL)
        return kp_cli_error(KP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->nsqlserver; i++)
        for (size_t j = 0; j < c->sqlserver[i].ndatabases; j++) {
            const kp_sqlserver_db *db = &c->sqlserver[i].databases[j];
            if (!db->column_keys)
                continue;
            char what[160], name[KP_NAME_MAX + 160];
            snprintf(what, sizeof(what), "dmk.%s", db->name);
            kp_cli_sql_secret_name(c->name, what, name, sizeof(name));
            kp_secret *v = NULL;
            kp_status st =
                store != NULL ? kp_store_get(store, name, 0, &v, NULL, NULL) : KP_ERR_NOT_FOUND;
            if (st != KP_OK)
                return kp_cli_error(st,
                                    "no master key password of database %s in the chain's "
                                    "secrets store: keyplane secret put --chain %s --name %s "
                                    "--value SOURCE",
                                    db->name, c->name, name);
            /* sqlcmd substitutes $(NAME) even inside a string: a password with it would not
             * reach SQL Server as it is */
            bool dollar = memmem(kp_secret_cdata(v), kp_secret_len(v), "$(", 2) != NULL;
            char *text = dollar ? NULL : calloc(1, kp_secret_len(v) + 1);
            if (text != NULL)
                memcpy(text, kp_secret_cdata(v), kp_secret_len(v));
            kp_secret_free(v);
            if (dollar)
                return kp_cli_error(KP_ERR_INVALID_ARG,
                                    "the master key password of database %s holds '$(', which "
                                    "sqlcmd would replace: leave out --show-password and give "
                                    "it as a variable",
                                    db->name);
            if (text == NULL)
                return kp_cli_error(KP_ERR_NOMEM, "out of memory");
            (*vals)[(*n)++] = text;
        }
    return KP_EXIT_OK;
}

/* What an export holds while it runs; s_export_free wipes and frees it. */
typedef struct s_export_run {
    const kp_chain_policy *c;
    uint32_t version, pwver;
    const char *pwwhat; /* "pvk-password" (a fresh password) or "password" (a replica's) */
    char source[128];   /* where the key came from */
    kp_secret *pkcs8, *pw, *pvk;
    uint8_t *der;
    size_t derlen, ndmk, sqllen;
    char **dmk, *sql, *pwtext;
    kp_cert_info ci;
    kp_cli_sql_cert cert;
    kp_instance *store;
} s_export_run;

static void s_export_free(s_export_run *x)
{
    if (x->sql != NULL)
        kp_memwipe(x->sql, x->sqllen);
    free(x->sql);
    if (x->pwtext != NULL)
        kp_memwipe(x->pwtext, strlen(x->pwtext));
    free(x->pwtext);
    for (size_t i = 0; i < x->ndmk; i++) {
        kp_memwipe(x->dmk[i], strlen(x->dmk[i]));
        free(x->dmk[i]);
    }
    free(x->dmk);
    kp_instance_close(x->store);
    kp_secret_free(x->pkcs8);
    kp_secret_free(x->pw);
    kp_secret_free(x->pvk);
    kp_free(x->der);
}

/* The version's certificate and key, the stores' passwords, a new .pvk under a new password
 * (kept in the secrets store first), and restore.sql's text. */
static int s_export_make(kp_cli *cli, const s_opts *o, s_export_run *x)
{
    char err[256];
    const kp_chain_policy *c = x->c;
    kp_cert_export_opts eo = {.struct_size = sizeof(eo), .from = o->from};
    kp_cert_export ex = {.version = x->version};
    kp_status st = kp_chain_cert_export_ex(cli->ctx, cli->policy, c->name, &eo, &ex);
    if (st != KP_OK && x->version == 0) /* the active version is the origin's word */
        return kp_cli_error(st,
                            "sqlserver export: %s; while the origin is unreachable, name the "
                            "version with --version N (keyplane status lists them)",
                            kp_ctx_last_error(cli->ctx));
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "sqlserver export");
    x->version = ex.version;
    x->pkcs8 = ex.pkcs8;
    x->der = ex.cert;
    x->derlen = ex.certlen;
    x->pvk = ex.pvk; /* a secret replica's, exported as it is kept */
    x->pwver = ex.pvk_password_version;
    snprintf(x->source, sizeof(x->source), "%s", ex.source);
    if (kp_cert_read(x->der, x->derlen, &x->ci, err, sizeof(err)) != KP_OK)
        return kp_cli_error(KP_ERR_INTEGRITY, "the certificate of %s v%u: %s", c->name, x->version,
                            err);
    /* One export per directory: another version's restore.sql, or a .pvk whose password is
     * another version of the secret, must not be replaced unseen. */
    kp_cli_sql_cert_name(c->name, x->version, &x->cert);
    static const char *const ext[] = {".cer", ".pvk", ".sql"};
    for (size_t i = 0; i < 3; i++) {
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s%s", o->out, i < 2 ? x->cert.name : "restore", ext[i]);
        if (lstat(path, &sb) == 0)
            return kp_cli_error(KP_ERR_EXISTS,
                                "%s exists: export each version into a directory of its own "
                                "(nothing was written)",
                                path);
    }
    if (c->secrets != NULL &&
        (st = kp_instance_open(cli->ctx, cli->policy, c->secrets, &x->store)) != KP_OK)
        return kp_cli_fail(cli, st, c->secrets);
    int rc = o->show_password ? s_dmk_passwords(x->store, c, &x->dmk, &x->ndmk) : KP_EXIT_OK;
    if (rc != KP_EXIT_OK)
        return rc;
    if (x->pvk != NULL) {
        /* the replica's .pvk opens with the password kept for it: nothing is written to the
         * secrets store, so a DR region whose store only reads (a Secrets Manager replica)
         * serves the export */
        char pname[KP_NAME_MAX + 32];
        kp_cli_sql_secret_name(c->name, "password", pname, sizeof(pname));
        x->pwwhat = "password";
        if (o->show_password &&
            (st = kp_store_get(x->store, pname, x->pwver, &x->pw, NULL, NULL)) != KP_OK)
            return kp_cli_fail(cli, st, c->secrets);
    } else {
        x->pwwhat = "pvk-password";
        if ((x->pw = s_password()) == NULL)
            return kp_cli_error(KP_ERR_CRYPTO, "no randomness for a password");
        if ((st = kp_pvk_write(x->pkcs8, x->pw, &x->pvk, err, sizeof(err))) != KP_OK)
            return kp_cli_error(st, "cannot write the .pvk: %s", err);
        /* The password is kept before the file it opens exists. */
        if (x->store != NULL &&
            (st = s_keep_password(x->store, c, x->version, &x->ci, x->pw, &x->pwver)) != KP_OK)
            return kp_cli_fail(cli, st, c->secrets);
    }
    if (x->pw == NULL) /* a replica's password, not asked for */
        x->pw = kp_secret_new_copy("", 0);
    if (x->pw == NULL)
        return kp_cli_error(KP_ERR_NOMEM, "out of memory");
    if ((x->pwtext = calloc(1, kp_secret_len(x->pw) + 1)) == NULL)
        return kp_cli_error(KP_ERR_NOMEM, "out of memory");
    memcpy(x->pwtext, kp_secret_cdata(x->pw), kp_secret_len(x->pw));
    kp_cli_sql_cert_name(c->name, x->version, &x->cert);
    x->cert.info = &x->ci;
    kp_cli_sql_secrets secrets = {o->show_password ? x->pwtext : NULL, x->pwver, x->pwwhat,
                                  o->show_password ? (const char *const *)x->dmk : NULL};
    FILE *mem = open_memstream(&x->sql, &x->sqllen);
    if (mem != NULL) {
        kp_cli_sql_restore(mem, c, &x->cert, &secrets);
        fclose(mem);
    }
    return x->sql != NULL ? KP_EXIT_OK : kp_cli_error(KP_ERR_NOMEM, "out of memory");
}

/* DIR/NAME.ext written (a secret's way when secret). */
static int s_write(kp_cli *cli, const char *dir, const char *name, const char *ext,
                   const void *data, size_t len, bool secret)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext) >= sizeof(path))
        return kp_cli_error(KP_ERR_INVALID_ARG, "--out: path too long");
    kp_status st = secret ? kp_cli_write_secret(cli, path, data, len)
                          : kp_cli_write_file(cli, path, data, len);
    return st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, path);
}

static void s_export_report(kp_cli *cli, const s_opts *o, const s_export_run *x)
{
    const kp_chain_policy *c = x->c;
    char pname[KP_NAME_MAX + 32];
    kp_cli_sql_secret_name(c->name, x->pwwhat, pname, sizeof(pname));
    if (cli->json) {
        json_t *j =
            json_pack("{s:s, s:i, s:s, s:s, s:I, s:s}", "chain", c->name, "version",
                      (int)x->version, "thumbprint", x->ci.thumbprint, "subject", x->ci.subject,
                      "not_after", (json_int_t)x->ci.not_after, "name", x->cert.name);
        json_object_set_new(j, "source", json_string(x->source));
        if (x->store != NULL)
            json_object_set_new(j, "password",
                                json_pack("{s:s, s:s, s:i}", "store", c->secrets, "name", pname,
                                          "version", (int)x->pwver));
        if (o->show_password)
            json_object_set_new(j, "password_value", json_string(x->pwtext));
        kp_cli_print_json(j);
        return;
    }
    kp_cli_info(cli, stdout,
                "wrote %s/%s.cer, %s/%s.pvk and %s/restore.sql for %s v%u (%s, thumbprint %s; "
                "the key from %s)\n",
                o->out, x->cert.name, o->out, x->cert.name, o->out, c->name, x->version,
                x->ci.subject, x->ci.thumbprint, x->source);
    if (x->store != NULL)
        kp_cli_info(cli, stdout,
                    "the .pvk's password is %s v%u in %s (keyplane secret get --chain %s --name "
                    "%s --version %u)\n",
                    pname, x->pwver, c->secrets, c->name, pname, x->pwver);
    if (o->show_password)
        printf("password: %s\n", x->pwtext);
}

static int s_export(kp_cli *cli, const s_opts *o)
{
    if (o->chain == NULL || o->out == NULL)
        return kp_cli_usage_error("sqlserver export", "--chain and --out are required");
    s_export_run x;
    memset(&x, 0, sizeof(x));
    KP_GUARD(s_chain(cli, o->chain, &x.c));
    struct stat sb;
    if (mkdir(o->out, 0700) != 0 && errno != EEXIST)
        return kp_cli_error(KP_ERR_IO, "--out %s: cannot make the directory: %s", o->out,
                            strerror(errno));
    if (stat(o->out, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return kp_cli_error(KP_ERR_INVALID_ARG, "--out %s: not a directory", o->out);
    if (x.c->secrets == NULL && !o->show_password)
        return kp_cli_error(KP_ERR_CONFIG,
                            "chain '%s' names no 'secrets' store to keep the .pvk's password: "
                            "name one, or give --show-password to see it once",
                            x.c->name);
    x.version = o->version;
    int rc = s_export_make(cli, o, &x);
    if (rc == KP_EXIT_OK)
        rc = s_write(cli, o->out, x.cert.name, ".cer", x.der, x.derlen, false);
    if (rc == KP_EXIT_OK)
        rc = s_write(cli, o->out, x.cert.name, ".pvk", kp_secret_cdata(x.pvk), kp_secret_len(x.pvk),
                     true);
    if (rc == KP_EXIT_OK)
        rc = s_write(cli, o->out, "restore", ".sql", x.sql, x.sqllen, o->show_password);
    if (rc == KP_EXIT_OK)
        s_export_report(cli, o, &x);
    s_export_free(&x);
    return rc;
}

/* ---- rotate-script ----------------------------------------------------------------------- */

/* The advice for a chain with no version to stage from: an import, or a stage. */
static const char *s_stage_hint(const kp_chain_policy *c)
{
    return c->certificate->subject == NULL ? "keyplane sqlserver import --chain"
                                           : "keyplane rotate --stage";
}

static int s_rotate_script(kp_cli *cli, int argc, char **argv)
{
    if (optind >= argc)
        return kp_cli_usage_error("sqlserver rotate-script", "missing CHAIN");
    const char *chain = argv[optind];
    const kp_chain_policy *c = NULL;
    KP_GUARD(s_chain(cli, chain, &c));
    if (c->nsqlserver == 0)
        return kp_cli_error(KP_ERR_NOT_FOUND,
                            "chain '%s' lists no SQL Server instances ('sqlserver' in its policy)",
                            chain);
    kp_matrix *m = NULL;
    kp_status st = kp_chain_matrix(cli->ctx, cli->policy, chain, 0, &m);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, chain);
    size_t nv = kp_matrix_version_count(m), staged = nv, nold = 0;
    kp_cli_sql_cert next, *certs = calloc(nv + 1, sizeof(*certs));
    const kp_cli_sql_cert **old = calloc(nv + 1, sizeof(*old));
    memset(&next, 0, sizeof(next));
    for (size_t r = 0; r < nv; r++)
        if (kp_matrix_state(m, r, NULL, NULL) == KP_VSTATE_STAGED)
            staged = r;
    int rc = KP_EXIT_OK;
    if (certs == NULL || old == NULL)
        rc = kp_cli_error(KP_ERR_NOMEM, "out of memory");
    else if (staged == nv)
        rc = kp_cli_error(KP_ERR_NOT_FOUND, "chain '%s' has no staged version: run '%s %s' first",
                          chain, s_stage_hint(c), chain);
    else if (kp_matrix_certificate(m, staged) == NULL)
        rc = kp_cli_error(KP_ERR_NOT_FOUND,
                          "no store keeps the certificate of %s v%u: run 'keyplane apply'", chain,
                          kp_matrix_version(m, staged));
    /* the versions backups may still need: active, previous, and a never-rotated chain's */
    for (size_t r = 0; rc == KP_EXIT_OK && certs != NULL && old != NULL && r < nv; r++) {
        uint32_t s = kp_matrix_state(m, r, NULL, NULL);
        const kp_cert_info *ci = kp_matrix_certificate(m, r);
        if (ci == NULL || (r != staged && s != KP_VSTATE_ACTIVE && s != KP_VSTATE_PREVIOUS &&
                           s != KP_VSTATE_NONE))
            continue;
        kp_cli_sql_cert *x = r == staged ? &next : &certs[nold];
        kp_cli_sql_cert_name(chain, kp_matrix_version(m, r), x);
        x->info = ci;
        if (r != staged)
            old[nold] = &certs[nold], nold++;
    }
    if (rc == KP_EXIT_OK && cli->json) {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (mem != NULL) {
            kp_cli_sql_rotate(mem, c, &next, old, nold);
            fclose(mem);
        }
        kp_cli_print_json(json_pack("{s:s, s:i, s:s, s:s}", "chain", chain, "version",
                                    (int)next.version, "thumbprint", next.info->thumbprint,
                                    "script", text != NULL ? text : ""));
        free(text);
    } else if (rc == KP_EXIT_OK) {
        kp_cli_sql_rotate(stdout, c, &next, old, nold);
    }
    free(certs);
    free(old);
    kp_matrix_free(m);
    return rc;
}

int kp_cmd_sqlserver(kp_cli *cli, int argc, char **argv)
{
    static const char *const subs[] = {"import",          "export",    "rotate-script",
                                       "inventory-query", "inventory", NULL};
    size_t which = 0;
    int rc = kp_cli_subcommand(cli, "sqlserver", s_usage, subs, &argc, &argv, &which);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    const char *sub = subs[which];
    if (strcmp(sub, "inventory") == 0)
        return kp_cli_sql_inventory_cmd(cli, argc, argv);
    s_opts o = {0};
    rc = s_parse(cli, sub, argc, argv, &o);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    bool script = strcmp(sub, "rotate-script") == 0;
    if (script ? optind + 1 != argc : optind != argc)
        return kp_cli_usage_error(strcmp(sub, "import") == 0   ? "sqlserver import"
                                  : strcmp(sub, "export") == 0 ? "sqlserver export"
                                  : script                     ? "sqlserver rotate-script"
                                                               : "sqlserver inventory-query",
                                  script ? "expects one CHAIN" : "takes no arguments");
    if (strcmp(sub, "inventory-query") == 0) {
        if (cli->json) {
            char *text = NULL;
            size_t len = 0;
            FILE *mem = open_memstream(&text, &len);
            if (mem != NULL) {
                kp_cli_sql_inventory_query(mem);
                fclose(mem);
            }
            kp_cli_print_json(json_pack("{s:s}", "query", text != NULL ? text : ""));
            free(text);
        } else {
            kp_cli_sql_inventory_query(stdout);
        }
        return KP_EXIT_OK;
    }
    if ((rc = kp_cli_load_policy(cli)) != KP_EXIT_OK)
        return rc;
    if (strcmp(sub, "import") == 0)
        return s_import(cli, &o);
    if (strcmp(sub, "export") == 0)
        return s_export(cli, &o);
    return s_rotate_script(cli, argc, argv);
}
