/*
 * keyplane sqlserver inventory: which database of which instance is encrypted by which
 * certificate (its encryptor thumbprint), as `sqlserver inventory-query` lists it. Recorded in
 * the state directory beside the policy's journal (one JSON document, replaced atomically), so
 * verify can name the database that would not restore in some store, and retire can refuse a
 * version a database still needs. Rows are merged by instance and database unless --replace.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "sqlserver.h"
#include "state_dir.h"

#define S_ROWS_MAX 100000
#define S_FILE_MAX (16u * 1024u * 1024u)

void kp_cli_sql_inventory_free(kp_cli_sql_inventory *inv)
{
    free(inv->db);
    inv->db = NULL;
    inv->n = 0;
}

/* A thumbprint as the query prints it (40 hex digits, "0x" optional, either case) into t
 * upper-case; false when it is not one. */
static bool s_thumb(const char *v, char t[KP_THUMBPRINT_HEX])
{
    if (strncasecmp(v, "0x", 2) == 0)
        v += 2;
    if (strlen(v) != KP_THUMBPRINT_HEX - 1)
        return false;
    for (size_t i = 0; i < KP_THUMBPRINT_HEX - 1; i++) {
        if (!isxdigit((unsigned char)v[i]))
            return false;
        t[i] = (char)toupper((unsigned char)v[i]);
    }
    t[KP_THUMBPRINT_HEX - 1] = '\0';
    return true;
}

/* Adds or replaces (same instance and database) one row. */
/* Appends one row (duplicates are merged once the whole input is read: s_merge). */
static kp_status s_put(kp_cli_sql_inventory *inv, const kp_cli_sql_db *row)
{
    if (inv->n >= 2 * S_ROWS_MAX)
        return KP_ERR_INTEGRITY;
    if ((inv->n & (inv->n - 1)) == 0) { /* grow at powers of two */
        kp_cli_sql_db *v = realloc(inv->db, (inv->n == 0 ? 1 : 2 * inv->n) * sizeof(*v));
        if (v == NULL)
            return KP_ERR_NOMEM;
        inv->db = v;
    }
    inv->db[inv->n++] = *row;
    return KP_OK;
}

/* Rows in (instance, database) order, a later row of a pair before an earlier one. */
static int s_cmp(const void *a, const void *b)
{
    const kp_cli_sql_db *x = a, *y = b;
    int c = strcasecmp(x->instance, y->instance);
    if (c == 0)
        c = strcmp(x->database, y->database);
    if (c == 0) /* the row read later wins: its index is kept in seq */
        c = x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
    return c;
}

/* One row per instance and database, the one read last; KP_ERR_INTEGRITY past S_ROWS_MAX. */
static kp_status s_merge(kp_cli_sql_inventory *inv)
{
    for (size_t i = 0; i < inv->n; i++)
        inv->db[i].seq = i;
    if (inv->n > 1)
        qsort(inv->db, inv->n, sizeof(*inv->db), s_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < inv->n; i++)
        if (kept == 0 || strcasecmp(inv->db[kept - 1].instance, inv->db[i].instance) != 0 ||
            strcmp(inv->db[kept - 1].database, inv->db[i].database) != 0)
            inv->db[kept++] = inv->db[i];
    inv->n = kept;
    return kept <= S_ROWS_MAX ? KP_OK : KP_ERR_INTEGRITY;
}

/* One row from its four fields; an error naming where (line) and what is wrong. */
static int s_row(kp_cli_sql_inventory *inv, const char *where, const char *instance,
                 const char *database, const char *thumb, const char *col)
{
    kp_cli_sql_db row;
    memset(&row, 0, sizeof(row));
    if (instance == NULL || instance[0] == '\0' || strlen(instance) >= sizeof(row.instance) ||
        database == NULL || database[0] == '\0' || strlen(database) >= sizeof(row.database))
        return kp_cli_error(KP_ERR_INTEGRITY, "%s: needs an instance and a database name", where);
    if (thumb == NULL || !s_thumb(thumb, row.thumbprint))
        return kp_cli_error(KP_ERR_INTEGRITY,
                            "%s: '%.60s' is no certificate thumbprint (40 hex digits)", where,
                            thumb != NULL ? thumb : "");
    if (col == NULL || (strcmp(col, "0") != 0 && strcmp(col, "1") != 0 &&
                        strcmp(col, "true") != 0 && strcmp(col, "false") != 0))
        return kp_cli_error(KP_ERR_INTEGRITY, "%s: column_keys must be 0 or 1", where);
    snprintf(row.instance, sizeof(row.instance), "%s", instance);
    snprintf(row.database, sizeof(row.database), "%s", database);
    row.column_keys = strcmp(col, "1") == 0 || strcmp(col, "true") == 0;
    kp_status st = s_put(inv, &row);
    return st == KP_OK ? KP_EXIT_OK
                       : kp_cli_error(st, "%s: too many rows (at most %d)", where, S_ROWS_MAX);
}

/* The query's CSV as sqlcmd -s "," -W -h -1 writes it: instance,database,thumbprint,col per
 * line; blank lines and a header line (starting "instance") are skipped. */
static int s_csv(char *text, const char *file, kp_cli_sql_inventory *inv)
{
    size_t line = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        line++;
        size_t n = strlen(l);
        while (n > 0 && (l[n - 1] == '\r' || l[n - 1] == ' '))
            l[--n] = '\0';
        if (n == 0 || strncasecmp(l, "instance,", 9) == 0)
            continue;
        char *f[5] = {0};
        size_t nf = 0;
        for (char *p = l; nf < 5; nf++) {
            f[nf] = p;
            char *comma = strchr(p, ',');
            if (comma == NULL) {
                nf++;
                break;
            }
            *comma = '\0';
            p = comma + 1;
        }
        char where[4200];
        snprintf(where, sizeof(where), "%s:%zu", file, line);
        if (nf != 4)
            return kp_cli_error(KP_ERR_INTEGRITY,
                                "%s: expected instance,database,thumbprint,column_keys", where);
        int rc = s_row(inv, where, f[0], f[1], f[2], f[3]);
        if (rc != KP_EXIT_OK)
            return rc;
    }
    return KP_EXIT_OK;
}

/* JSON: [{"instance", "database", "thumbprint", "column_keys"}] (or the "databases" member of
 * an object, as `inventory show --json` prints it). */
static int s_json(const char *text, size_t len, const char *file, kp_cli_sql_inventory *inv)
{
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    json_t *a = json_is_object(j) ? json_object_get(j, "databases") : j;
    int rc = KP_EXIT_OK;
    if (!json_is_array(a))
        rc = kp_cli_error(KP_ERR_INTEGRITY, "%s: not a JSON list of databases%s%s", file,
                          j == NULL ? ": " : "", j == NULL ? e.text : "");
    for (size_t i = 0; rc == KP_EXIT_OK && i < json_array_size(a); i++) {
        json_t *r = json_array_get(a, i);
        json_t *col = json_object_get(r, "column_keys");
        char where[4200];
        snprintf(where, sizeof(where), "%s: entry %zu", file, i + 1);
        rc = s_row(inv, where, json_string_value(json_object_get(r, "instance")),
                   json_string_value(json_object_get(r, "database")),
                   json_string_value(json_object_get(r, "thumbprint")),
                   json_is_true(col) || (json_is_integer(col) && json_integer_value(col) == 1) ? "1"
                   : json_is_false(col) || (json_is_integer(col) && json_integer_value(col) == 0)
                       ? "0"
                       : json_string_value(col));
    }
    json_decref(j);
    return rc;
}

static json_t *s_to_json(const kp_cli_sql_inventory *inv)
{
    json_t *a = json_array();
    for (size_t i = 0; i < inv->n; i++)
        json_array_append_new(
            a, json_pack("{s:o, s:o, s:s, s:b}", "instance", kp_cli_jstr(inv->db[i].instance),
                         "database", kp_cli_jstr(inv->db[i].database), "thumbprint",
                         inv->db[i].thumbprint, "column_keys", inv->db[i].column_keys));
    return json_pack("{s:s, s:o}", "format", "keyplane-sqlserver-inventory", "databases", a);
}

kp_status kp_cli_sql_inventory_load(kp_cli *cli, kp_cli_sql_inventory *inv)
{
    char path[4096], *text = NULL;
    size_t len = 0;
    memset(inv, 0, sizeof(*inv));
    KP_GUARD(kp_cli_state_path(cli, "inventory", path, sizeof(path)));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return KP_OK; /* nothing recorded */
    fclose(f);
    KP_GUARD(kp_cli_read_file(cli, path, S_FILE_MAX, &text, &len));
    int rc = s_json(text, len, path, inv);
    if (rc == KP_EXIT_OK && s_merge(inv) != KP_OK)
        rc = kp_cli_error(KP_ERR_INTEGRITY, "%s: more than %d databases", path, S_ROWS_MAX);
    free(text);
    return rc == KP_EXIT_OK ? KP_OK : KP_ERR_INTEGRITY;
}

int kp_cli_sql_inventory_cmd(kp_cli *cli, int argc, char **argv)
{
    static const char usage[] =
        "Usage: keyplane sqlserver inventory import FILE [--replace] [--json]\n"
        "       keyplane sqlserver inventory show [--json]\n"
        "\n"
        "Records which certificate (thumbprint) encrypts each database, from what\n"
        "'keyplane sqlserver inventory-query' returned on each instance: CSV lines\n"
        "instance,database,thumbprint,column_keys (sqlcmd -s \",\" -W -h -1), or JSON\n"
        "[{instance, database, thumbprint, column_keys}]. Rows are merged by instance and\n"
        "database; --replace drops the earlier ones. Kept in the state directory beside\n"
        "the policy's journal. verify then names each database that would not restore in\n"
        "some store, and retire refuses a version one still uses.\n";
    static const struct option opts[] = {{"replace", no_argument, NULL, 'r'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool replace = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            replace = true;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return KP_EXIT_OK;
        default:
            return kp_cli_bad_option("sqlserver inventory", argv);
        }
    }
    const char *sub = optind < argc ? argv[optind] : NULL;
    if (sub == NULL || (strcmp(sub, "import") != 0 && strcmp(sub, "show") != 0))
        return kp_cli_usage_error("sqlserver inventory", "expected import FILE or show");
    if (strcmp(sub, "import") == 0 && optind + 2 != argc)
        return kp_cli_usage_error("sqlserver inventory", "import needs one FILE");
    int rc = kp_cli_load_policy(cli);
    if (rc == KP_EXIT_OK && strcmp(sub, "import") == 0)
        rc = kp_cli_lock(cli); /* two imports at once would each drop the other's rows */
    if (rc != KP_EXIT_OK)
        return rc;
    kp_cli_sql_inventory inv;
    kp_status st = kp_cli_sql_inventory_load(cli, &inv);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "the recorded inventory");
    if (strcmp(sub, "import") == 0) {
        const char *file = argv[optind + 1];
        char *text = NULL, path[4096];
        size_t len = 0;
        kp_cli_sql_inventory add = {NULL, 0};
        size_t before = inv.n;
        st = kp_cli_read_file(cli, file, S_FILE_MAX, &text, &len);
        if (st != KP_OK)
            rc = kp_cli_exit_code(st); /* kp_cli_read_file said why */
        else if (memchr(text, '\0', len) != NULL)
            rc = kp_cli_error(KP_ERR_INTEGRITY, "%s: not text", file);
        else {
            size_t skip = strspn(text, " \t\r\n");
            rc = text[skip] == '[' || text[skip] == '{' ? s_json(text, len, file, &add)
                                                        : s_csv(text, file, &add);
        }
        free(text);
        /* --replace: what the file says of its instances is all they hold now */
        size_t kept = 0;
        for (size_t i = 0; rc == KP_EXIT_OK && replace && i < inv.n; i++) {
            bool listed = false;
            for (size_t j = 0; j < add.n && !listed; j++)
                listed = strcasecmp(inv.db[i].instance, add.db[j].instance) == 0;
            if (!listed)
                inv.db[kept++] = inv.db[i];
        }
        if (rc == KP_EXIT_OK && replace)
            inv.n = kept;
        for (size_t j = 0; rc == KP_EXIT_OK && j < add.n; j++)
            if ((st = s_put(&inv, &add.db[j])) != KP_OK)
                rc = kp_cli_error(st, "%s: too many rows", file);
        kp_cli_sql_inventory_free(&add);
        if (rc == KP_EXIT_OK && s_merge(&inv) != KP_OK)
            rc = kp_cli_error(KP_ERR_INTEGRITY, "%s: more than %d databases with those recorded",
                              file, S_ROWS_MAX);
        json_t *doc = rc == KP_EXIT_OK ? s_to_json(&inv) : NULL;
        char *out = doc != NULL ? json_dumps(doc, JSON_INDENT(1)) : NULL;
        json_decref(doc);
        if (rc == KP_EXIT_OK && out == NULL)
            rc = kp_cli_error(KP_ERR_NOMEM, "out of memory");
        if (rc == KP_EXIT_OK &&
            (st = kp_cli_state_path(cli, "inventory", path, sizeof(path))) == KP_OK)
            st = kp_cli_write_file(cli, path, out, strlen(out));
        if (rc == KP_EXIT_OK && st != KP_OK)
            rc = kp_cli_fail(cli, st, "recording the inventory");
        free(out);
        if (rc == KP_EXIT_OK && cli->json)
            kp_cli_print_json(json_pack("{s:i, s:i}", "databases", (int)inv.n, "new",
                                        (int)(inv.n > before ? inv.n - before : 0)));
        else if (rc == KP_EXIT_OK)
            kp_cli_info(cli, stdout, "recorded %zu database%s\n", inv.n, inv.n == 1 ? "" : "s");
    } else if (cli->json) {
        kp_cli_print_json(s_to_json(&inv));
    } else {
        for (size_t i = 0; i < inv.n; i++)
            printf("%s %s 0x%s%s\n", inv.db[i].instance, inv.db[i].database, inv.db[i].thumbprint,
                   inv.db[i].column_keys ? " column_keys" : "");
    }
    kp_cli_sql_inventory_free(&inv);
    return rc;
}

/* Whether the chain's policy lists database db of instance (its 'sqlserver' list). */
static bool s_listed(const kp_chain_policy *c, const kp_cli_sql_db *db)
{
    for (size_t i = 0; i < c->nsqlserver; i++)
        if (strcasecmp(c->sqlserver[i].instance, db->instance) == 0)
            for (size_t j = 0; j < c->sqlserver[i].ndatabases; j++)
                if (strcmp(c->sqlserver[i].databases[j].name, db->database) == 0)
                    return true;
    return false;
}

/* The row of m whose certificate has thumbprint t; nv when none. */
static size_t s_row_of(const kp_matrix *m, const char *t)
{
    size_t nv = kp_matrix_version_count(m);
    for (size_t r = 0; r < nv; r++) {
        const kp_cert_info *ci = kp_matrix_certificate(m, r);
        if (ci != NULL && strcmp(ci->thumbprint, t) == 0)
            return r;
    }
    return nv;
}

int kp_cli_sql_inventory_gaps(const kp_chain_policy *c, const kp_matrix *m,
                              kp_cli_sql_inventory *inv, void *json_chain, bool print)
{
    if (c->certificate == NULL || inv == NULL || inv->n == 0)
        return 0;
    int gaps = 0;
    json_t *dbs = json_chain != NULL ? json_array() : NULL;
    size_t nv = kp_matrix_version_count(m), ni = kp_matrix_instance_count(m);
    for (size_t k = 0; k < inv->n; k++) {
        kp_cli_sql_db *db = &inv->db[k];
        size_t r = s_row_of(m, db->thumbprint);
        if (r == nv && !s_listed(c, db))
            continue; /* another chain's database */
        db->claimed = true;
        json_t *fails = dbs != NULL ? json_array() : NULL;
        if (r == nv) {
            gaps++;
            if (fails != NULL)
                json_array_append_new(fails, json_pack("{s:s, s:s}", "instance", "*", "detail",
                                                       "no version carries its certificate"));
            else if (print)
                fprintf(stderr,
                        "keyplane: gap: %s on %s is encrypted by certificate 0x%s, which no "
                        "version of %s carries: it would not restore anywhere\n",
                        db->database, db->instance, db->thumbprint, c->name);
        }
        for (size_t i = 0; r < nv && i < ni; i++) {
            if (kp_matrix_cell_ok(m, r, i))
                continue;
            gaps++;
            const kp_cell *cell = kp_matrix_cell(m, r, i);
            if (fails != NULL)
                json_array_append_new(fails,
                                      json_pack("{s:s, s:o}", "instance", kp_matrix_instance(m, i),
                                                "detail", kp_cli_jstr(cell->detail)));
            else if (print)
                fprintf(stderr, "keyplane: gap: %s on %s would not restore in %s: %s v%u: %s\n",
                        db->database, db->instance, kp_matrix_instance(m, i), c->name,
                        kp_matrix_version(m, r), cell->detail);
        }
        if (dbs != NULL)
            json_array_append_new(
                dbs, json_pack("{s:o, s:o, s:s, s:i, s:o}", "instance", kp_cli_jstr(db->instance),
                               "database", kp_cli_jstr(db->database), "thumbprint", db->thumbprint,
                               "version", r < nv ? (int)kp_matrix_version(m, r) : 0,
                               "would_not_restore_in", fails));
    }
    if (json_chain != NULL)
        json_object_set_new(json_chain, "databases", dbs);
    return gaps;
}

int kp_cli_sql_retire_check(kp_cli *cli, const char *chain, uint32_t version)
{
    const kp_chain_policy *c = kp_policy_chain(cli->policy, chain);
    if (c == NULL || c->certificate == NULL)
        return KP_EXIT_OK;
    kp_cli_sql_inventory inv;
    kp_status st = kp_cli_sql_inventory_load(cli, &inv);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "the recorded inventory");
    if (inv.n == 0)
        return KP_EXIT_OK;
    kp_matrix *m = NULL;
    st = kp_chain_matrix(cli->ctx, cli->policy, chain, 0, &m);
    int rc = st == KP_OK ? KP_EXIT_OK : kp_cli_fail(cli, st, "retire");
    const kp_cert_info *ci = NULL;
    bool found = false;
    for (size_t r = 0; rc == KP_EXIT_OK && r < kp_matrix_version_count(m); r++)
        if (kp_matrix_version(m, r) == version) {
            ci = kp_matrix_certificate(m, r);
            found = true;
        }
    /* which databases use the version cannot be told without its certificate: no retire */
    if (rc == KP_EXIT_OK && found && ci == NULL)
        rc = kp_cli_error(KP_ERR_DENIED,
                          "retire: no store keeps the certificate of %s v%u, so whether a "
                          "recorded database still uses it cannot be told (keyplane verify %s)",
                          chain, version, chain);
    for (size_t k = 0; rc == KP_EXIT_OK && ci != NULL && k < inv.n; k++)
        if (strcmp(inv.db[k].thumbprint, ci->thumbprint) == 0)
            rc = kp_cli_error(KP_ERR_DENIED,
                              "retire: %s on %s is still encrypted by %s v%u (certificate 0x%s): "
                              "switch it first (keyplane sqlserver rotate-script %s), then record "
                              "the inventory again",
                              inv.db[k].database, inv.db[k].instance, chain, version,
                              ci->thumbprint, chain);
    kp_matrix_free(m);
    kp_cli_sql_inventory_free(&inv);
    return rc;
}

int kp_cli_sql_inventory_orphans(const kp_cli_sql_inventory *inv, void *json_top)
{
    int n = 0;
    if (inv == NULL || inv->n == 0)
        return 0; /* nothing recorded: nothing said */
    json_t *a = json_top != NULL ? json_array() : NULL;
    for (size_t k = 0; inv != NULL && k < inv->n; k++) {
        const kp_cli_sql_db *db = &inv->db[k];
        if (db->claimed)
            continue;
        n++;
        if (a != NULL)
            json_array_append_new(
                a, json_pack("{s:o, s:o, s:s}", "instance", kp_cli_jstr(db->instance), "database",
                             kp_cli_jstr(db->database), "thumbprint", db->thumbprint));
        else
            fprintf(stderr,
                    "keyplane: gap: %s on %s is encrypted by certificate 0x%s, which no chain "
                    "of the policy carries: its backups restore nowhere keyplane keeps\n",
                    db->database, db->instance, db->thumbprint);
    }
    if (a != NULL)
        json_object_set_new(json_top, "unprotected_databases", a);
    return n;
}
