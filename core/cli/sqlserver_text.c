/*
 * The T-SQL keyplane writes for SQL Server TDE (docs/sqlserver.md): restore.sql, the rotation
 * script and the inventory query. Certificates are named CHAIN_vN and found by thumbprint
 * (sys.certificates.thumbprint, the SHA-1 of the DER), which is what a TDE database's encryptor
 * thumbprint names. Every name written is [A-Za-z0-9._-] (the policy's rule) inside brackets;
 * secrets are sqlcmd variables unless the caller hands their values (--show-password).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sqlserver.h"

void kp_cli_sql_cert_name(const char *chain, uint32_t version, kp_cli_sql_cert *c)
{
    c->version = version;
    snprintf(c->name, sizeof(c->name), "%s_v%u", chain, version);
}

void kp_cli_sql_dmk_var(const char *db, char *out, size_t len)
{
    snprintf(out, len, "DMK_PASSWORD_%s", db);
    for (char *p = out; *p != '\0'; p++)
        if (*p == '.' || *p == '-')
            *p = '_';
}

void kp_cli_sql_secret_name(const char *chain, const char *what, char *out, size_t len)
{
    snprintf(out, len, "%s.%s", chain, what);
}

/* A password as the content of a T-SQL string literal nested depth deep (1: '...'; 2: a
 * literal inside an EXEC string), or the sqlcmd variable var (sqlcmd puts its value in as it
 * is). A quote in a value is doubled once per level. */
static void s_secret(FILE *out, const char *value, const char *var, int depth)
{
    if (value == NULL) {
        fprintf(out, "$(%s)", var);
        return;
    }
    for (const char *p = value; *p != '\0'; p++)
        if (*p == '\'')
            for (int i = 0; i < (1 << depth); i++)
                fputc('\'', out);
        else
            fputc(*p, out);
}

/* YYYY-MM-DD of a Unix time, UTC. */
static void s_day(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d", &tm) == 0)
        snprintf(buf, len, "?");
}

/* Text from a certificate in a T-SQL comment: sqlcmd substitutes $(NAME) even there, so "$("
 * is written "$ (". */
static void s_comment_text(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        fputc(*s, out);
        if (s[0] == '$' && s[1] == '(')
            fputc(' ', out);
    }
}

static void s_cert_comment(FILE *out, const kp_cli_sql_cert *c)
{
    char from[16], until[16];
    s_day(c->info->not_before, from, sizeof(from));
    s_day(c->info->not_after, until, sizeof(until));
    fprintf(out, "--   [%s]: ", c->name);
    s_comment_text(out, c->info->subject);
    fprintf(out, ", thumbprint 0x%s, valid %s to %s\n", c->info->thumbprint, from, until);
}

/* CREATE CERTIFICATE from CHAIN_vN.cer/.pvk in $(CERT_DIR), unless the instance has one with
 * that thumbprint already (a rerun, or an availability group replica that has it). */
static void s_create(FILE *out, const kp_cli_sql_cert *c, const char *password)
{
    fprintf(out,
            "IF EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x%s\n"
            "           AND pvt_key_encryption_type = 'NA')\n"
            "    RAISERROR('keyplane: certificate 0x%s is here without its private key: drop it"
            " and run again', 16, 1);\n"
            "ELSE IF NOT EXISTS (SELECT 1 FROM sys.certificates WHERE thumbprint = 0x%s)\n"
            "    CREATE CERTIFICATE [%s]\n"
            "        FROM FILE = '$(CERT_DIR)\\%s.cer'\n"
            "        WITH PRIVATE KEY (FILE = '$(CERT_DIR)\\%s.pvk',\n"
            "                          DECRYPTION BY PASSWORD = '",
            c->info->thumbprint, c->info->thumbprint, c->info->thumbprint, c->name, c->name,
            c->name);
    s_secret(out, password, "PVK_PASSWORD", 1);
    fprintf(out, "');\nGO\n");
}

/* The seed's check that every TDE database is linked to a certificate this instance holds. */
static void s_check_tde(FILE *out)
{
    fprintf(out, "SELECT db.name, db.is_encrypted, ek.encryption_state, ek.key_algorithm,\n"
                 "       c.name AS cert_name, ek.encryptor_thumbprint\n"
                 "FROM sys.databases db\n"
                 "LEFT JOIN sys.dm_database_encryption_keys ek ON db.database_id = ek.database_id\n"
                 "LEFT JOIN master.sys.certificates c ON ek.encryptor_thumbprint = c.thumbprint;\n"
                 "GO\n");
}

void kp_cli_sql_restore(FILE *out, const kp_chain_policy *chain, const kp_cli_sql_cert *cert,
                        const kp_cli_sql_secrets *secrets)
{
    fprintf(out,
            "-- keyplane: restore the TDE certificate of chain %s, version %u, on a SQL Server\n"
            "-- instance (a DR instance, or a new availability group replica).\n",
            chain->name, cert->version);
    s_cert_comment(out, cert);
    fprintf(out,
            "-- Copy %s.cer and %s.pvk to a directory the SQL Server service can read,"
            " then:\n",
            cert->name, cert->name);
    fprintf(out, "-- (each password as a -v, or in the environment, which keeps it out of the"
                 " process list)\n");
    fprintf(out, "--   sqlcmd -S SERVER -i restore.sql -v CERT_DIR=\"DIR\"");
    if (secrets->pvk_password == NULL)
        fprintf(out, " PVK_PASSWORD=\"...\"");
    fprintf(out, " MASTER_KEY_PASSWORD=\"...\"");
    size_t ncol = 0;
    for (size_t i = 0; i < chain->nsqlserver; i++)
        for (size_t j = 0; j < chain->sqlserver[i].ndatabases; j++)
            if (chain->sqlserver[i].databases[j].column_keys) {
                char var[160];
                kp_cli_sql_dmk_var(chain->sqlserver[i].databases[j].name, var, sizeof(var));
                if (secrets->dmk == NULL || secrets->dmk[ncol] == NULL)
                    fprintf(out, " %s=\"...\"", var);
                ncol++;
            }
    fprintf(out, "\n");
    if (secrets->pvk_password == NULL && secrets->pvk_password_version != 0)
        fprintf(out, "-- PVK_PASSWORD: keyplane secret get --chain %s --name %s.%s --version %u\n",
                chain->name, chain->name,
                secrets->pvk_password_what != NULL ? secrets->pvk_password_what : "pvk-password",
                secrets->pvk_password_version);
    fprintf(out, "-- MASTER_KEY_PASSWORD: always given; it makes master's database master key"
                 " when the\n-- instance has none yet (that key protects the certificate's"
                 " private key): keep it\n-- with the instance's other secrets.\n\n");
    fprintf(out, ":on error exit\nUSE master;\nGO\n"
                 "IF NOT EXISTS (SELECT 1 FROM sys.symmetric_keys"
                 " WHERE name = '##MS_DatabaseMasterKey##')\n"
                 "    CREATE MASTER KEY ENCRYPTION BY PASSWORD = '$(MASTER_KEY_PASSWORD)';\n"
                 "GO\n");
    s_create(out, cert, secrets->pvk_password);
    ncol = 0;
    for (size_t i = 0; i < chain->nsqlserver; i++)
        for (size_t j = 0; j < chain->sqlserver[i].ndatabases; j++) {
            const kp_sqlserver_db *db = &chain->sqlserver[i].databases[j];
            if (!db->column_keys)
                continue;
            char var[160];
            kp_cli_sql_dmk_var(db->name, var, sizeof(var));
            fprintf(out,
                    "\n-- [%s] (on %s) has column keys its database master key protects: once"
                    " the\n-- database is restored, this instance's service master key opens it"
                    " (run this\n-- file again after the restore if it was not there yet; on an"
                    " availability\n-- group secondary, sp_control_dbmasterkey_password gives the"
                    " instance the\n-- password instead).\n",
                    db->name, chain->sqlserver[i].instance);
            if (secrets->dmk == NULL || secrets->dmk[ncol] == NULL)
                fprintf(out, "-- %s: keyplane secret get --chain %s --name %s.dmk.%s\n", var,
                        chain->name, chain->name, db->name);
            fprintf(out,
                    "IF DATABASEPROPERTYEX(N'%s', 'Status') IS NULL\n"
                    "   OR DATABASEPROPERTYEX(N'%s', 'Status') <> 'ONLINE'\n"
                    "   OR DATABASEPROPERTYEX(N'%s', 'Updateability') <> 'READ_WRITE'\n"
                    "    PRINT 'keyplane: database %s is not restored, online and writable here"
                    " yet';\n"
                    "ELSE\n"
                    "    EXEC (N'USE [%s];\n"
                    "        OPEN MASTER KEY DECRYPTION BY PASSWORD = ''",
                    db->name, db->name, db->name, db->name, db->name);
            s_secret(out, secrets->dmk != NULL ? secrets->dmk[ncol] : NULL, var, 2);
            fprintf(out, "'';\n"
                         "        ALTER MASTER KEY ADD ENCRYPTION BY SERVICE MASTER KEY;\n"
                         "        CLOSE MASTER KEY;');\n"
                         "GO\n");
            ncol++;
        }
    fprintf(out,
            "\n-- Checks: the certificate is here with its private key, every TDE database is\n"
            "-- linked to a certificate this instance holds, and each database master key\n"
            "-- re-encrypted above opens by itself (is_master_key_encrypted_by_server 1).\n"
            "USE master;\nGO\n");
    fprintf(out,
            "SELECT name, subject, expiry_date, thumbprint, pvt_key_encryption_type_desc\n"
            "FROM sys.certificates WHERE thumbprint = 0x%s;\nGO\n",
            cert->info->thumbprint);
    s_check_tde(out);
    bool any = false;
    for (size_t i = 0; i < chain->nsqlserver; i++)
        for (size_t j = 0; j < chain->sqlserver[i].ndatabases; j++) {
            const kp_sqlserver_db *db = &chain->sqlserver[i].databases[j];
            if (!db->column_keys)
                continue;
            fprintf(out, "%sN'%s'",
                    any ? ", "
                        : "SELECT name, is_master_key_encrypted_by_server\n"
                          "FROM sys.databases WHERE name IN (",
                    db->name);
            any = true;
        }
    if (any)
        fprintf(out, ");\nGO\n");
}

void kp_cli_sql_rotate(FILE *out, const kp_chain_policy *chain, const kp_cli_sql_cert *next,
                       const kp_cli_sql_cert *const *old, size_t nold)
{
    fprintf(out,
            "-- keyplane: rotate the TDE certificate of chain %s to version %u.\n"
            "-- New:\n",
            chain->name, next->version);
    s_cert_comment(out, next);
    if (nold > 0)
        fprintf(out, "-- Kept (backups made under them still need them; never drop them here):\n");
    for (size_t i = 0; i < nold; i++)
        s_cert_comment(out, old[i]);
    fprintf(out,
            "-- Write the files with: keyplane sqlserver export --chain %s --version %u --out DIR\n"
            "-- and copy them where every instance below can read them. This script connects to\n"
            "-- each instance itself (sqlcmd mode: sqlcmd, or SSMS with SQLCMD Mode on):\n"
            "--   sqlcmd -i rotate.sql -v CERT_DIR=\"DIR\"\n"
            "-- with PVK_PASSWORD in the environment (it stays out of the process list; the value\n"
            "-- is what the export printed how to get), or as one more -v.\n"
            ":on error exit\n",
            chain->name, next->version);
    fprintf(out, "\n-- Step 1: the new certificate on every instance, before any database"
                 " switches\n-- (every availability group replica must be able to open the"
                 " database key).\n");
    for (size_t i = 0; i < chain->nsqlserver; i++) {
        fprintf(out, "\n:CONNECT %s\nUSE master;\nGO\n", chain->sqlserver[i].instance);
        s_create(out, next, NULL);
    }
    fprintf(out, "\n-- Step 2: each database's encryption key re-encrypted by the new"
                 " certificate, where\n-- the policy lists it (an availability group's primary;"
                 " the data is not re-encrypted).\n");
    for (size_t i = 0; i < chain->nsqlserver; i++) {
        const kp_sqlserver_instance *in = &chain->sqlserver[i];
        if (in->ndatabases == 0)
            continue; /* a secondary replica: it needed the certificate only */
        fprintf(out, "\n:CONNECT %s\n", in->instance);
        for (size_t j = 0; j < in->ndatabases; j++)
            fprintf(out,
                    "USE [%s];\nGO\nALTER DATABASE ENCRYPTION KEY\n"
                    "    ENCRYPTION BY SERVER CERTIFICATE [%s];\nGO\n",
                    in->databases[j].name, next->name);
    }
    fprintf(out, "\n-- Step 3: every database's encryptor is the new certificate (a row with"
                 " 'old'\n-- is a database still to switch).\n");
    for (size_t i = 0; i < chain->nsqlserver; i++) {
        const kp_sqlserver_instance *in = &chain->sqlserver[i];
        if (in->ndatabases == 0)
            continue;
        fprintf(out,
                "\n:CONNECT %s\nSELECT DB_NAME(database_id) AS database_name,\n"
                "       CASE WHEN encryptor_thumbprint = 0x%s THEN 'new' ELSE 'old' END AS"
                " encryptor\nFROM sys.dm_database_encryption_keys\nWHERE DB_NAME(database_id)"
                " IN (",
                in->instance, next->info->thumbprint);
        for (size_t j = 0; j < in->ndatabases; j++)
            fprintf(out, "%sN'%s'", j > 0 ? ", " : "", in->databases[j].name);
        fprintf(out, ");\nGO\n");
    }
    fprintf(out, "\n-- Then: keyplane rotate %s --activate\n", chain->name);
}

void kp_cli_sql_inventory_query(FILE *out)
{
    fputs("-- keyplane: each database with the thumbprint of the certificate that protects its\n"
          "-- encryption key, and whether a database master key protects column keys in it.\n"
          "-- Run it on every instance (the instance is named as @@SERVERNAME says it, which is\n"
          "-- how the policy's sqlserver list should name it too); save the result as CSV and\n"
          "-- record it with\n"
          "--   sqlcmd -S INSTANCE -i query.sql -s \",\" -W -h -1 -o inventory.csv\n"
          "--   keyplane sqlserver inventory import inventory.csv\n"
          "SET NOCOUNT ON;\n"
          "DECLARE @r TABLE (instance sysname, database_name sysname, thumbprint varchar(42),\n"
          "                  column_keys bit);\n"
          "DECLARE @db sysname, @sql nvarchar(max);\n"
          "DECLARE dbs CURSOR LOCAL FAST_FORWARD FOR\n"
          "    SELECT d.name FROM sys.databases d\n"
          "    JOIN sys.dm_database_encryption_keys k ON k.database_id = d.database_id\n"
          "    WHERE d.database_id > 4 AND d.state_desc = 'ONLINE'\n"
          "      AND HAS_DBACCESS(d.name) = 1;  -- an unreadable secondary: run it on the primary\n"
          "OPEN dbs;\n"
          "FETCH NEXT FROM dbs INTO @db;\n"
          "WHILE @@FETCH_STATUS = 0\n"
          "BEGIN\n"
          "    SET @sql = N'SELECT @@SERVERNAME, DB_NAME(), '\n"
          "        + N'CONVERT(varchar(42), (SELECT encryptor_thumbprint FROM '\n"
          "        + N'sys.dm_database_encryption_keys WHERE database_id = DB_ID()), 2), '\n"
          "        + N'CASE WHEN EXISTS (SELECT 1 FROM sys.symmetric_keys WHERE name = '\n"
          "        + N'''##MS_DatabaseMasterKey##'') AND EXISTS (SELECT 1 FROM '\n"
          "        + N'sys.symmetric_keys WHERE name <> ''##MS_DatabaseMasterKey##'') '\n"
          "        + N'THEN 1 ELSE 0 END';\n"
          "    SET @sql = N'USE ' + QUOTENAME(@db) + N'; ' + @sql;\n"
          "    INSERT INTO @r EXEC sys.sp_executesql @sql;\n"
          "    FETCH NEXT FROM dbs INTO @db;\n"
          "END\n"
          "CLOSE dbs;\n"
          "DEALLOCATE dbs;\n"
          "SELECT instance, database_name, thumbprint, column_keys FROM @r ORDER BY 1, 2;\n",
          out);
}
