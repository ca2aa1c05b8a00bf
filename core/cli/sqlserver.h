/*
 * keyplane sqlserver: the commands (cmd_sqlserver.c, sqlserver_inventory.c) and the T-SQL they
 * print or write (sqlserver_text.c).
 */
#ifndef KP_CLI_SQLSERVER_H
#define KP_CLI_SQLSERVER_H

#include <stdio.h>

#include "cli.h"

/* A certificate of a chain version as the T-SQL names it. */
typedef struct kp_cli_sql_cert {
    uint32_t version;
    char name[KP_NAME_MAX + 16]; /* the certificate's name in SQL Server: CHAIN_vN */
    const kp_cert_info *info;
} kp_cli_sql_cert;

/* What restore.sql needs beyond the certificate: the .pvk password and the database master key
 * password of each column_keys database (in the chain's sqlserver order), each NULL for a
 * sqlcmd variable instead ($(PVK_PASSWORD), $(DMK_PASSWORD_<db>)). */
typedef struct kp_cli_sql_secrets {
    const char *pvk_password;
    uint32_t pvk_password_version; /* its version in the chain's secrets store; 0 none kept */
    const char *pvk_password_what; /* the secret it is a version of: "pvk-password" (a fresh
                                      export's), "password" (a secret replica's .pvk) */
    const char *const *dmk;        /* one per column_keys database; NULL: all variables */
} kp_cli_sql_secrets;

/* sqlserver_text.c */
/* The name SQL Server knows version's certificate by: CHAIN_vN. */
void kp_cli_sql_cert_name(const char *chain, uint32_t version, kp_cli_sql_cert *c);
/* restore.sql: create the certificate from its files on a DR instance, re-encrypt each
 * column_keys database's master key by the instance's service master key, and the checks. */
void kp_cli_sql_restore(FILE *out, const kp_chain_policy *chain, const kp_cli_sql_cert *cert,
                        const kp_cli_sql_secrets *secrets);
/* The rotation script: the new certificate on every instance the chain lists, then each
 * database switched to it, then the check of each one's encryptor thumbprint. */
void kp_cli_sql_rotate(FILE *out, const kp_chain_policy *chain, const kp_cli_sql_cert *next,
                       const kp_cli_sql_cert *const *old, size_t nold);
/* The inventory query: each database with its encryptor thumbprint and whether a database
 * master key protects column keys in it. */
void kp_cli_sql_inventory_query(FILE *out);
/* The sqlcmd variable of a column_keys database's DMK password: DMK_PASSWORD_<db> with '.' and
 * '-' as '_'. */
void kp_cli_sql_dmk_var(const char *db, char *out, size_t len);
/* The chain's secret names: CHAIN.pvk-password, CHAIN.dmk.<db>. */
void kp_cli_sql_secret_name(const char *chain, const char *what, char *out, size_t len);

/* sqlserver_inventory.c */
int kp_cli_sql_inventory_cmd(kp_cli *cli, int argc, char **argv);
/* The inventory recorded for the policy: verify names each database that would not restore,
 * retire refuses a version one still uses. */
typedef struct kp_cli_sql_db {
    char instance[160], database[128];
    char thumbprint[KP_THUMBPRINT_HEX];
    bool column_keys;
    size_t seq;   /* the order rows were read in, while merging */
    bool claimed; /* verify: a chain of the policy protects it (kp_cli_sql_inventory_gaps) */
} kp_cli_sql_db;
typedef struct kp_cli_sql_inventory {
    kp_cli_sql_db *db;
    size_t n;
} kp_cli_sql_inventory;
/* Reads the recorded inventory: KP_OK with n 0 when none is recorded. */
kp_status kp_cli_sql_inventory_load(kp_cli *cli, kp_cli_sql_inventory *inv);
void kp_cli_sql_inventory_free(kp_cli_sql_inventory *inv);
/* verify: each recorded database the chain protects (its certificate is a version's, or the
 * policy lists it) that would not restore in some store of the chain, a gap line on stderr (or
 * the chain's "databases" in json_chain, a json_t *; neither unless print). Returns the number
 * of gaps. */
int kp_cli_sql_inventory_gaps(const kp_chain_policy *c, const kp_matrix *m,
                              kp_cli_sql_inventory *inv, void *json_chain, bool print);
/* verify of every chain, after them: each recorded database no chain protects (its certificate
 * is no version of any chain, and no chain lists it) is a gap, said on stderr or as the
 * document's "unprotected_databases" (json_top, a json_t *). Returns their number. */
int kp_cli_sql_inventory_orphans(const kp_cli_sql_inventory *inv, void *json_top);
/* retire: KP_EXIT_OK unless a recorded database is still encrypted by the version's
 * certificate (then the refusal, exit 4). */
int kp_cli_sql_retire_check(kp_cli *cli, const char *chain, uint32_t version);

#endif
