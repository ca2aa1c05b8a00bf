/*
 * keyplane plan / apply / verify / status: the key-chain engine from the command line.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <keyplane/kit/clock.h>

#include "cli.h"
#include "sqlserver.h"
#include "state_dir.h"

typedef struct s_opts {
    const char *chain;
    const char *journal;
    unsigned workers;
    bool detailed; /* plan --detailed-exitcode */
} s_opts;

static const char *s_kind(uint32_t kind)
{
    return kind == KP_ACTION_CREATE   ? "create"
           : kind == KP_ACTION_SECRET ? "secret"
           : kind == KP_ACTION_STATE  ? "state"
           : kind == KP_ACTION_CERT   ? "cert"
                                      : "copy";
}

static int s_parse(kp_cli *cli, const char *cmd, const char *usage, int argc, char **argv,
                   s_opts *o, bool apply)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"journal", required_argument, NULL, 'J'},
                                         {"detailed-exitcode", optional_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "jw:J:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            cli->json = true;
            break;
        case 'D':
            if (strcmp(cmd, "plan") != 0)
                return kp_cli_usage_error(cmd, "--detailed-exitcode is for plan");
            if (kp_cli_flag(cmd, "detailed-exitcode", optarg, &o->detailed) != KP_EXIT_OK)
                return KP_EXIT_USAGE;
            break;
        case 'w':
            if (!apply && strcmp(cmd, "plan") != 0)
                return kp_cli_usage_error(cmd, "--workers is for plan and apply");
            if (kp_cli_workers(cmd, optarg, &o->workers) != KP_EXIT_OK)
                return KP_EXIT_USAGE;
            break;
        case 'J':
            if (!apply)
                return kp_cli_usage_error(cmd, "--journal is for apply");
            o->journal = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return kp_cli_bad_option(cmd, argv);
        }
    }
    if (optind + 1 < argc)
        return kp_cli_usage_error(cmd, "expects at most one CHAIN");
    o->chain = optind < argc ? argv[optind] : NULL;
    int rc = kp_cli_load_policy(cli);
    if (rc == KP_EXIT_OK && o->chain != NULL && kp_policy_chain(cli->policy, o->chain) == NULL)
        rc = kp_cli_not_in_policy(cli, "chain", o->chain);
    return rc;
}

static json_t *s_action_json(const kp_action *a)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "action", s_kind(a->kind), "chain", a->chain,
                     "source", a->source, "target", a->target, "version", (int)a->version,
                     "fingerprint", a->fingerprint);
}

static void s_print_plan(kp_cli *cli, const kp_plan *plan, json_t *out)
{
    size_t na = kp_plan_action_count(plan), nf = kp_plan_finding_count(plan);
    json_t *actions = json_array(), *findings = json_array();
    for (size_t i = 0; i < na; i++) {
        const kp_action *a = kp_plan_action(plan, i);
        if (cli->json)
            json_array_append_new(actions, s_action_json(a));
        else if (a->kind == KP_ACTION_CREATE)
            printf("  + create  %s v%u in %s\n", a->chain, a->version, a->target);
        else if (a->kind == KP_ACTION_STATE)
            printf("  + state   %s lifecycle %s -> %s\n", a->chain, a->source, a->target);
        else if (a->kind == KP_ACTION_CERT && a->source[0] == '\0')
            printf("  + cert    %s v%u made in %s\n", a->chain, a->version, a->target);
        else
            printf("  + %-7s %s v%u %s -> %s\n", s_kind(a->kind), a->chain, a->version,
                   a->source[0] != '\0' ? a->source : "(no source)", a->target);
    }
    for (size_t i = 0; i < nf; i++) {
        const kp_finding *f = kp_plan_finding(plan, i);
        const char *kind = f->kind == KP_FINDING_UNREACHABLE   ? "unreachable"
                           : f->kind == KP_FINDING_CONFLICT    ? "conflict"
                           : f->kind == KP_FINDING_UNCONFIRMED ? "unconfirmed"
                           : f->kind == KP_FINDING_STATE       ? "state"
                           : f->kind == KP_FINDING_WAITING     ? "waiting"
                                                               : "incapable";
        if (cli->json)
            json_array_append_new(findings,
                                  json_pack("{s:s, s:s, s:s, s:i, s:s, s:o}", "finding", kind,
                                            "chain", f->chain, "instance", f->instance, "version",
                                            (int)f->version, "status", kp_status_name(f->status),
                                            "detail", kp_cli_jstr(f->detail)));
        else
            printf("  ! %-11s %s: %s: %s\n", kind, f->chain, f->instance, f->detail);
    }
    if (cli->json) {
        json_object_set_new(out, "actions", actions);
        json_object_set_new(out, "findings", findings);
    } else {
        json_decref(actions);
        json_decref(findings);
        if (na == 0 && nf == 0)
            kp_cli_info(cli, stdout, "nothing to do: every keystore holds every version\n");
        else
            kp_cli_info(cli, stdout, "%zu action%s, %zu finding%s\n", na, na == 1 ? "" : "s", nf,
                        nf == 1 ? "" : "s");
    }
}

/* While a long step runs without telling how far it is: one line on a terminal (stderr, not
 * with --json or -q), overwritten by the next and cleared with s_progress_done before anything
 * else is printed. */
static bool s_progress_on(const kp_cli *cli)
{
    return !cli->json && !cli->quiet && isatty(STDERR_FILENO);
}

static void s_progress_line(const kp_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_progress_line(const kp_cli *cli, const char *fmt, ...)
{
    if (!s_progress_on(cli))
        return;
    va_list ap;
    va_start(ap, fmt);
    fputc('\r', stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\033[K", stderr);
    va_end(ap);
    fflush(stderr);
}

static void s_progress_done(const kp_cli *cli)
{
    if (s_progress_on(cli))
        fputs("\r\033[K", stderr);
}

/* How many stores hold a copy of chain c's protector or its secret: what a plan or a matrix of
 * it asks. */
static size_t s_chain_stores(const kp_cli *cli, const kp_chain_policy *c)
{
    size_t n = 0;
    for (size_t i = 0; i < kp_policy_instance_count(cli->policy); i++)
        n += kp_cli_chain_holds(c, kp_policy_instance_name(cli->policy, i), true);
    return n;
}

/* The stores of every chain (or of chain only), counted once per chain that asks them. */
static size_t s_all_stores(const kp_cli *cli, const char *only)
{
    size_t n = 0;
    for (size_t i = 0; i < kp_policy_chain_count(cli->policy); i++) {
        const kp_chain_policy *c = kp_policy_chain_at(cli->policy, i);
        if (only == NULL || strcmp(only, c->name) == 0)
            n += s_chain_stores(cli, c);
    }
    return n;
}

/* plan: KP_EXIT_OK, KP_EXIT_FAIL for findings, or the error's exit code; *changes when apply
 * would do something. */
static int s_plan(kp_cli *cli, int argc, char **argv, bool *changes)
{
    s_opts o = {0};
    int rc =
        s_parse(cli, "plan",
                "Usage: keyplane plan [--workers N] [--detailed-exitcode] [--json] [CHAIN]\n\n"
                "Discovers what every keystore of each chain (or CHAIN) holds and prints what\n"
                "'keyplane apply' would do: create the protector in the origin when nobody\n"
                "holds it, copy every version into every keystore that lacks it. Findings it\n"
                "cannot fix (an unreachable instance, another key under a version number) are\n"
                "listed with '!'. Nothing is changed. Exit status 1 when there are findings.\n\n"
                "  --workers N          chains discovered at once, 1 to 256 (default 8)\n"
                "  --detailed-exitcode  as terraform plan: 0 nothing to do, 2 apply would change\n"
                "                       something, 1 findings or any error\n",
                argc, argv, &o, false);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? -1 : rc;
    kp_plan *plan = NULL;
    s_progress_line(cli, "plan: asking %zu stores of %s", s_all_stores(cli, o.chain),
                    o.chain != NULL ? o.chain : "every chain");
    kp_plan_opts popts = {.struct_size = sizeof(popts), .workers = o.workers};
    kp_status st = kp_plan_make_with(cli->ctx, cli->policy, o.chain, &popts, &plan);
    s_progress_done(cli);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "plan");
    json_t *out = cli->json ? json_object() : NULL;
    s_print_plan(cli, plan, out);
    if (cli->json)
        kp_cli_print_json(out);
    *changes = kp_plan_action_count(plan) > 0;
    rc = kp_plan_finding_count(plan) > 0 ? KP_EXIT_FAIL : KP_EXIT_OK;
    kp_plan_free(plan);
    return rc;
}

int kp_cmd_plan(kp_cli *cli, int argc, char **argv)
{
    /* Looked for first, so that even a usage error exits as --detailed-exitcode says (one with a
     * value that is no boolean too). */
    bool detailed = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i], *flag = "--detailed-exitcode";
        size_t n = strlen(flag);
        if (strncmp(a, flag, n) != 0 || (a[n] != '\0' && a[n] != '='))
            continue;
        bool value = true;
        if (a[n] == '=' && !kpk_param_bool(a + n + 1, &value))
            value = true; /* no boolean: a usage error, which exits 1 then */
        detailed = value;
    }
    bool changes = false;
    int rc = s_plan(cli, argc, argv, &changes);
    if (rc < 0) /* --help */
        return KP_EXIT_OK;
    if (!detailed)
        return rc;
    enum { S_EXIT_CHANGES = 2 }; /* terraform's; not KP_EXIT_USAGE, which exits 1 here */
    return rc != KP_EXIT_OK ? KP_EXIT_FAIL : changes ? S_EXIT_CHANGES : KP_EXIT_OK;
}

typedef struct s_progress {
    kp_cli *cli;
    bool tty;
    json_t *results;
} s_progress;

/* What an action is about, as its progress line names it: "C vN", or "C lifecycle" for the
 * chain-state document (a STATE action has no version). */
static const char *s_subject(const kp_action *a, char *buf, size_t size)
{
    if (a->kind == KP_ACTION_STATE)
        snprintf(buf, size, "%s lifecycle", a->chain);
    else
        snprintf(buf, size, "%s v%u", a->chain, a->version);
    return buf;
}

static void s_on_action(void *arg, const kp_action *a, kp_status st, const char *detail,
                        size_t done, size_t total)
{
    s_progress *p = arg;
    char what[KP_NAME_MAX + 16];
    if (p->cli->json) {
        json_t *j = s_action_json(a);
        json_object_set_new(j, "status", json_string(kp_status_name(st)));
        json_object_set_new(j, "detail", kp_cli_jstr(detail));
        json_array_append_new(p->results, j);
        return;
    }
    if (p->tty && st == KP_OK) {
        kp_cli_info(p->cli, stderr, "\r[%zu/%zu] %s %s -> %s\033[K%s", done, total, s_kind(a->kind),
                    s_subject(a, what, sizeof(what)), a->target, done == total ? "\n" : "");
        return;
    }
    if (st == KP_OK) {
        kp_cli_info(p->cli, stderr, "  %-4s %s %s -> %s: %s\n", "ok", s_kind(a->kind),
                    s_subject(a, what, sizeof(what)), a->target, detail);
        return;
    }
    if (p->tty) /* ends the progress line */
        kp_cli_info(p->cli, stderr, "\n");
    fprintf(stderr, "  %-4s %s %s -> %s: %s\n", "FAIL", s_kind(a->kind),
            s_subject(a, what, sizeof(what)), a->target, detail);
}

/* What apply did: the findings, then the JSON document (out and results are consumed) or a
 * summary line. */
static void s_print_applied(kp_cli *cli, const kp_plan *plan, json_t *out, json_t *results,
                            size_t failed)
{
    size_t na = kp_plan_action_count(plan);
    for (size_t i = 0; i < kp_plan_finding_count(plan); i++) {
        const kp_finding *f = kp_plan_finding(plan, i);
        if (!cli->json)
            fprintf(stderr, "  ! %s: %s: %s\n", f->chain, f->instance, f->detail);
    }
    if (cli->json) {
        s_print_plan(cli, plan, out);
        json_object_set_new(out, "results", results);
        json_object_set_new(out, "failed", json_integer((json_int_t)failed));
        kp_cli_print_json(out);
    } else if (na == 0 && kp_plan_finding_count(plan) > 0) {
        /* not "nothing to do": a store that did not answer may lack (or hold) anything */
        kp_cli_info(cli, stdout, "nothing applied: resolve the finding%s above first\n",
                    kp_plan_finding_count(plan) == 1 ? "" : "s");
    } else if (na == 0) {
        kp_cli_info(cli, stdout, "nothing to do: every keystore holds every version\n");
    } else {
        kp_cli_info(cli, stdout, "%zu of %zu action%s done%s\n", na - failed, na,
                    na == 1 ? "" : "s", failed > 0 ? "; see the failures above" : "");
    }
}

int kp_cmd_apply(kp_cli *cli, int argc, char **argv)
{
    s_opts o = {0};
    int rc =
        s_parse(cli, "apply",
                "Usage: keyplane apply [--workers N] [--journal FILE] [--json] "
                "[CHAIN]\n\n"
                "Converges every chain (or CHAIN) to its policy: creates the protector in its\n"
                "origin when nobody holds it, then copies every version into every keystore\n"
                "that lacks it, N at a time (default 8). Each step re-checks its target first,\n"
                "so running apply again, or after an interruption, is safe; a second run\n"
                "reports nothing to do. Nothing is ever deleted or disabled.\n\n"
                "  --journal FILE  JSON-lines record of each run (default: in the state\n"
                "                  directory, see 'keyplane --help');\n"
                "                  an interrupted run is reported by the next one\n"
                "  --workers N     concurrent steps, 1 to 256\n",
                argc, argv, &o, true);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    rc = kp_cli_lock(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    char journal[4096];
    if (o.journal == NULL) {
        kp_status jst = kp_cli_state_path(cli, "journal", journal, sizeof(journal));
        if (jst != KP_OK)
            return kp_cli_exit_code(jst);
        o.journal = journal;
    }
    kp_plan *plan = NULL;
    kp_plan_opts popts = {.struct_size = sizeof(popts), .workers = o.workers};
    kp_status st = kp_plan_make_with(cli->ctx, cli->policy, o.chain, &popts, &plan);
    if (st != KP_OK)
        return kp_cli_fail(cli, st, "apply");
    json_t *out = cli->json ? json_object() : NULL;
    s_progress p = {cli, isatty(STDERR_FILENO) != 0, cli->json ? json_array() : NULL};
    size_t na = kp_plan_action_count(plan), failed = 0;
    if (!cli->json && na > 0)
        kp_cli_info(cli, stdout, "applying %zu action%s\n", na, na == 1 ? "" : "s");
    kp_apply_opts opts = {sizeof(opts), o.workers, o.journal, s_on_action, &p};
    st = na > 0 ? kp_plan_apply(cli->ctx, cli->policy, plan, &opts, &failed) : KP_OK;
    if (st != KP_OK && failed == 0) { /* refused before any action ran (the journal, ...) */
        rc = kp_cli_fail(cli, st, "apply");
        json_decref(out);
        json_decref(p.results);
    } else {
        s_print_applied(cli, plan, out, p.results, failed);
        rc = st != KP_OK                       ? kp_cli_exit_code(st)
             : kp_plan_finding_count(plan) > 0 ? KP_EXIT_FAIL
                                               : KP_EXIT_OK;
    }
    kp_plan_free(plan);
    return rc;
}

/* A cell's state as verify and status show it; a restore-only copy in capitals when it is a gap
 * (gap: the policy does not keep that store restore-only). */
static const char *s_state(uint32_t s, bool gap)
{
    switch (s) {
    case KP_CELL_OK:
        return "ok";
    case KP_CELL_RESTORE_ONLY:
        return gap ? "RESTORE-ONLY" : "restore-only";
    case KP_CELL_MISSING:
        return "MISSING";
    case KP_CELL_MISMATCH:
        return "MISMATCH";
    case KP_CELL_UNUSABLE:
        return "UNUSABLE";
    default:
        return "UNREACHABLE";
    }
}

/* YYYY-MM-DD (UTC) of a Unix time, "-" when unknown (0). */
static void s_date(int64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(out, len, "%Y-%m-%d", &tm) == 0)
        snprintf(out, len, "-");
}

/* The rotation verdict of a chain due at due (0: no schedule): "rotation overdue by N days",
 * "rotation due soon (in N days)" within warn of it, else, with always, "rotation due in N
 * days"; "" for none. *warning: the short form of the first two, NULL otherwise. */
static void s_rotation(int64_t due, int64_t now, int64_t warn, bool always, char *out, size_t len,
                       const char **warning)
{
    char span[48];
    *warning = NULL;
    out[0] = '\0';
    if (due <= 0)
        return;
    kpk_span_text(now >= due ? now - due : due - now, span, sizeof(span));
    if (now >= due)
        *warning = "rotation overdue";
    else if (now >= due - warn)
        *warning = "rotation due soon";
    if (now >= due)
        snprintf(out, len, "rotation overdue by %s", span);
    else if (*warning != NULL)
        snprintf(out, len, "rotation due soon (in %s)", span);
    else if (always)
        snprintf(out, len, "rotation due in %s", span);
}

/* Certificate chains: a version's certificate (NULL: none) as status and verify show it: a line
 * under the table, or the row's "certificate" object; a certificate within warn_before of its
 * notAfter, or past it, is a warning (SQL Server keeps using an expired TDE certificate, so it
 * is no gap, but rotation should not wait for it). */
static void s_cert_show(kp_cli *cli, const kp_chain_policy *c, uint32_t version, uint32_t vstate,
                        const kp_cert_info *ci, int64_t now, json_t *row)
{
    if (ci == NULL)
        return;
    /* only a version databases may be moving to or using: not one kept for old backups */
    bool current =
        vstate == KP_VSTATE_NONE || vstate == KP_VSTATE_ACTIVE || vstate == KP_VSTATE_STAGED;
    char until[32], span[48], warn[160] = "";
    s_date(ci->not_after, until, sizeof(until));
    kpk_span_text(now >= ci->not_after ? now - ci->not_after : ci->not_after - now, span,
                  sizeof(span));
    if (!current)
        ;
    else if (now >= ci->not_after)
        snprintf(warn, sizeof(warn), "certificate expired %s ago (%s)", span, until);
    else if (now >= ci->not_after - c->certificate->warn_before)
        snprintf(warn, sizeof(warn), "certificate expires in %s (%s)", span, until);
    if (row != NULL) {
        json_t *cj = json_pack("{s:s, s:s, s:s, s:I, s:I}", "thumbprint", ci->thumbprint, "subject",
                               ci->subject, "serial", ci->serial, "not_before",
                               (json_int_t)ci->not_before, "not_after", (json_int_t)ci->not_after);
        if (warn[0] != '\0')
            json_object_set_new(cj, "warning", json_string(warn));
        json_object_set_new(row, "certificate", cj);
        return;
    }
    kp_cli_info(cli, stdout, "  v%u certificate %s, thumbprint %s, valid until %s\n", version,
                ci->subject, ci->thumbprint, until);
    if (warn[0] != '\0')
        kp_cli_info(cli, stderr,
                    "keyplane: warning: %s v%u: %s; SQL Server keeps using an expired TDE "
                    "certificate, but move the databases to a new one ('%s %s', then keyplane "
                    "sqlserver rotate-script %s)\n",
                    c->name, version, warn,
                    c->certificate->subject == NULL ? "keyplane sqlserver import --chain"
                                                    : "keyplane rotate --stage",
                    c->name, c->name);
}

/* One chain's matrix: a table on stdout (every gap also on its own line on stderr; with -q only
 * those lines) or an entry of chains; gaps counts the chains with a gap. status adds when each
 * version was created and activated, and when rotation is due (from the active version). */
static kp_status s_matrix_chain(kp_cli *cli, const kp_chain_policy *c, bool prove, json_t *chains,
                                kp_cli_sql_inventory *inv, int *gaps)
{
    kp_matrix *m = NULL;
    kp_status st = kp_chain_matrix(cli->ctx, cli->policy, c->name, prove, &m);
    s_progress_done(cli); /* the progress line goes before the chain's table */
    KP_GUARD(st);
    size_t nv = kp_matrix_version_count(m), ni = kp_matrix_instance_count(m);
    /* verify: a recorded SQL Server database that would not restore somewhere is a gap too */
    int ok = kp_matrix_ok(m) && (!prove || kp_cli_sql_inventory_gaps(c, m, inv, NULL, false) == 0);
    *gaps += !ok;
    int64_t now = (int64_t)time(NULL);
    uint32_t due_version = 0;
    int64_t due = kp_matrix_rotation_due(m, &due_version);
    const char *warning = NULL;
    char rotation[96];
    s_rotation(due, now, c->rotation_warn, !prove, rotation, sizeof(rotation), &warning);
    json_t *rows = cli->json ? json_array() : NULL;
    if (!cli->json) {
        kp_cli_info(cli, stdout, "chain %s: %s%s%s\n", c->name,
                    nv == 0 ? "no protector version anywhere"
                    : ok    ? "ok"
                            : "GAPS",
                    rotation[0] != '\0' ? "; " : "", rotation);
        kp_cli_info(cli, stdout, "  %-8s %-9s ", "VERSION", "STATE");
        if (!prove)
            kp_cli_info(cli, stdout, "%-10s %-10s ", "CREATED", "ACTIVATED");
        kp_cli_info(cli, stdout, "%-18s", "FINGERPRINT");
        for (size_t i = 0; i < ni; i++)
            kp_cli_info(cli, stdout, " %-14s", kp_matrix_instance(m, i));
        kp_cli_info(cli, stdout, "\n");
    }
    for (size_t r = 0; r < nv; r++) {
        json_t *cells = cli->json ? json_object() : NULL;
        int64_t from = 0, until = 0;
        uint32_t vstate = kp_matrix_state(m, r, &from, &until);
        int64_t created = kp_matrix_created(m, r);
        char cdate[32], adate[32];
        s_date(created, cdate, sizeof(cdate));
        s_date(from, adate, sizeof(adate));
        if (!cli->json)
            kp_cli_info(cli, stdout, "  v%-7u %-9s ", kp_matrix_version(m, r),
                        vstate != KP_VSTATE_NONE ? kp_version_state_name(vstate) : "-");
        if (!cli->json && !prove)
            kp_cli_info(cli, stdout, "%-10s %-10s ", cdate, adate);
        if (!cli->json)
            kp_cli_info(cli, stdout, "%-18.16s", kp_matrix_fingerprint(m, r));
        for (size_t i = 0; i < ni; i++) {
            const kp_cell *cell = kp_matrix_cell(m, r, i);
            json_t *cj =
                cli->json
                    ? json_pack("{s:s, s:b, s:o}", "state", s_state(cell->state, false), "ok",
                                kp_matrix_cell_ok(m, r, i), "detail", kp_cli_jstr(cell->detail))
                    : NULL;
            /* the store's own id of its copy: a Key Vault's is the kid Azure SQL asks for */
            kp_cli_backend_id_json(cli, cj, kp_matrix_instance(m, i),
                                   kp_matrix_backend_id(m, r, i));
            if (cli->json)
                json_object_set_new(cells, kp_matrix_instance(m, i), cj);
            else
                kp_cli_info(cli, stdout, " %-14s",
                            s_state(cell->state, !kp_matrix_cell_ok(m, r, i)));
        }
        json_t *row =
            cli->json
                ? json_pack("{s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "version",
                            (int)kp_matrix_version(m, r), "state",
                            vstate != KP_VSTATE_NONE ? kp_version_state_name(vstate) : "none",
                            "fingerprint", kp_matrix_fingerprint(m, r), "created",
                            (json_int_t)created, "activated", (json_int_t)from, "active_from",
                            (json_int_t)from, "active_until", (json_int_t)until, "replicas", cells)
                : NULL;
        if (row != NULL) {
            s_cert_show(cli, c, kp_matrix_version(m, r), vstate, kp_matrix_certificate(m, r), now,
                        row);
            json_array_append_new(rows, row);
        } else
            kp_cli_info(cli, stdout, "\n");
    }
    for (size_t r = 0; r < nv && !cli->json; r++)
        s_cert_show(cli, c, kp_matrix_version(m, r), kp_matrix_state(m, r, NULL, NULL),
                    kp_matrix_certificate(m, r), now, NULL);
    /* Name every gap on its own line: a DR runbook must not need to decode a table. With no
     * version there is no cell to show an unreachable store: each gets a line of its own. */
    json_t *unreachable = cli->json ? json_array() : NULL;
    if (nv == 0 && !cli->json)
        fprintf(stderr, "keyplane: gap: %s: no protector version in any keystore that answered\n",
                c->name);
    for (size_t i = 0; i < ni; i++) {
        const char *why = NULL;
        if (kp_matrix_instance_status(m, i, &why) == KP_OK)
            continue;
        if (cli->json)
            json_array_append_new(unreachable,
                                  json_pack("{s:s, s:o}", "instance", kp_matrix_instance(m, i),
                                            "detail", kp_cli_jstr(why != NULL ? why : "")));
        else if (nv == 0)
            fprintf(stderr, "keyplane: gap: %s: %s: unreachable: %s\n", c->name,
                    kp_matrix_instance(m, i), why != NULL ? why : "");
    }
    const char *problem = kp_matrix_problem(m);
    if (problem != NULL && !cli->json)
        fprintf(stderr, "keyplane: gap: %s: %s\n", c->name, problem);
    for (size_t r = 0; r < nv && !cli->json; r++)
        for (size_t i = 0; i < ni; i++) {
            const kp_cell *cell = kp_matrix_cell(m, r, i);
            if (!kp_matrix_cell_ok(m, r, i))
                fprintf(stderr, "keyplane: gap: %s v%u in %s: %s: %s\n", c->name,
                        kp_matrix_version(m, r), kp_matrix_instance(m, i),
                        s_state(cell->state, true), cell->detail);
        }
    json_t *cj = cli->json ? json_object() : NULL;
    if (prove)
        (void)kp_cli_sql_inventory_gaps(c, m, inv, cj, true);
    if (cli->json) {
        json_t *head = json_pack("{s:s, s:b, s:o, s:o}", "chain", c->name, "ok", ok, "versions",
                                 rows, "unreachable", unreachable);
        json_object_update(cj, head);
        json_decref(head);
        if (problem != NULL)
            json_object_set_new(cj, "problem", json_string(problem));
        json_object_set_new(cj, "due", json_integer((json_int_t)due));
        if (due > 0) {
            json_object_set_new(cj, "due_in", json_integer((json_int_t)(due - now)));
            json_object_set_new(cj, "due_version", json_integer((json_int_t)due_version));
        }
        if (warning != NULL)
            json_object_set_new(cj, "warning", json_string(warning));
        json_array_append_new(chains, cj);
    }
    kp_matrix_free(m);
    return KP_OK;
}

/* verify (prove) and status (presence): one matrix per chain. */
static int s_matrix_cmd(kp_cli *cli, int argc, char **argv, bool prove)
{
    s_opts o = {0};
    const char *usage =
        prove ? "Usage: keyplane verify [--json] [CHAIN]\n\n"
                "Proves for every version of every chain (or CHAIN) and every keystore that holds\n"
                "it that the keystore holds the same usable key: a random challenge is wrapped\n"
                "with the version's public key and must unwrap there. Prints a versions x\n"
                "keystores matrix; exit status 1 naming every gap (a missing, different,\n"
                "unusable or unreachable replica).\n"
              : "Usage: keyplane status [--json] [CHAIN]\n\n"
                "Shows, per chain, which keystore holds which protector version (by fingerprint,\n"
                "without using the keys), when each was created and activated, and when rotation\n"
                "is due: rotation.every after the active version was activated (a chain that\n"
                "never rotated: after the version wrap uses was created). A staged or stray newer\n"
                "version does not move it. Exit status 1 when a replica lacks a version.\n";
    int rc = s_parse(cli, prove ? "verify" : "status", usage, argc, argv, &o, false);
    if (rc != KP_EXIT_OK)
        return rc < 0 ? KP_EXIT_OK : rc;
    json_t *chains = cli->json ? json_array() : NULL;
    int gaps = 0;
    kp_cli_sql_inventory inv = {NULL, 0};
    kp_status st = prove ? kp_cli_sql_inventory_load(cli, &inv) : KP_OK;
    size_t total = s_all_stores(cli, o.chain), done = 0;
    for (size_t ci = 0; st == KP_OK && ci < kp_policy_chain_count(cli->policy); ci++) {
        const kp_chain_policy *c = kp_policy_chain_at(cli->policy, ci);
        if (o.chain != NULL && strcmp(o.chain, c->name) != 0)
            continue;
        /* Stores are asked a chain at a time: the count moves by a chain's stores. */
        s_progress_line(cli, "%s: checking %zu/%zu stores (chain %s)", prove ? "verify" : "status",
                        done, total, c->name);
        done += s_chain_stores(cli, c);
        st = s_matrix_chain(cli, c, prove, chains, &inv, &gaps);
    }
    /* verify of every chain: a recorded database none of them protects is a gap too */
    json_t *top = cli->json ? json_object() : NULL;
    if (st == KP_OK && prove && o.chain == NULL)
        gaps += kp_cli_sql_inventory_orphans(&inv, top);
    kp_cli_sql_inventory_free(&inv);
    if (st != KP_OK) {
        json_decref(chains);
        json_decref(top);
        return kp_cli_fail(cli, st, prove ? "verify" : "status");
    }
    if (cli->json) {
        json_t *head = json_pack("{s:b, s:o}", "ok", gaps == 0, "chains", chains);
        json_object_update(head, top);
        json_decref(top);
        kp_cli_print_json(head);
    }
    return gaps == 0 ? KP_EXIT_OK : KP_EXIT_FAIL;
}

int kp_cmd_verify(kp_cli *cli, int argc, char **argv)
{
    return s_matrix_cmd(cli, argc, argv, true);
}

int kp_cmd_status(kp_cli *cli, int argc, char **argv)
{
    return s_matrix_cmd(cli, argc, argv, false);
}

/* KP_EXIT_TRANSIENT, saying so, when a store of the plan's chain other than to is
 * unreachable: it may hold the chain's key, so restoring without it needs --force. With force,
 * a warning per such store (a finding, kept with -q), and the restore goes on from the stores
 * that answered. */
static int s_other_unreachable(const kp_plan *plan, const char *to, bool force)
{
    for (size_t i = 0; i < kp_plan_finding_count(plan); i++) {
        const kp_finding *f = kp_plan_finding(plan, i);
        if (f->kind != KP_FINDING_UNREACHABLE || strcmp(f->instance, to) == 0)
            continue;
        if (!force)
            return kp_cli_error(KP_ERR_UNAVAILABLE,
                                "restore: %s is unreachable (%s); it may hold the chain's key, so "
                                "not restoring %s without --force",
                                f->instance, f->detail, to);
        fprintf(stderr,
                "keyplane: warning: restore: %s is unreachable (%s); restoring %s from the "
                "keystores that answered (--force)\n",
                f->instance, f->detail, to);
    }
    return KP_EXIT_OK;
}

/* Proves, as verify does, that to holds every version of chain usable; names each gap. */
static kp_status s_verify_restored(kp_cli *cli, const char *chain, const char *to, int *ok)
{
    kp_matrix *m = NULL;
    KP_GUARD(kp_chain_matrix(cli->ctx, cli->policy, chain, 1, &m));
    *ok = kp_matrix_version_count(m) > 0;
    if (!*ok)
        fprintf(stderr, "keyplane: gap: %s: no protector version in any keystore that answered\n",
                chain);
    size_t col = kp_matrix_instance_count(m);
    for (size_t i = 0; i < kp_matrix_instance_count(m); i++)
        if (strcmp(kp_matrix_instance(m, i), to) == 0)
            col = i;
    bool holds = false; /* to holds at least one version, proved */
    for (size_t r = 0; r < kp_matrix_version_count(m) && col < kp_matrix_instance_count(m); r++) {
        const kp_cell *cell = kp_matrix_cell(m, r, col);
        if (!kp_matrix_cell_ok(m, r, col)) {
            *ok = 0;
            fprintf(stderr, "keyplane: gap: %s v%u in %s: %s: %s\n", chain, kp_matrix_version(m, r),
                    to, s_state(cell->state, true), cell->detail);
        } else if (cell->state == KP_CELL_OK || cell->state == KP_CELL_RESTORE_ONLY) {
            holds = true;
        }
    }
    /* Versions too few stores hold are no gap in a column (no store should get them), but a
     * store left holding none of the chain is not restored: the problem says why. */
    if (*ok && !holds) {
        const char *problem = kp_matrix_problem(m);
        *ok = 0;
        fprintf(stderr, "keyplane: gap: %s: %s holds no version of the chain%s%s\n", chain, to,
                problem != NULL ? ": " : "", problem != NULL ? problem : "");
    }
    kp_matrix_free(m);
    return KP_OK;
}

/* The command names the store it restores into, so a store there that is not initialised (a new
 * disk, a region rebuilt from nothing) is created now, explicitly (kp_instance_init), and the
 * plan made again with it reachable. One that is initialised already is left as it is. */
static kp_status s_init_target(kp_cli *cli, const char *chain, const char *to,
                               const kp_plan_opts *popts, kp_plan **plan)
{
    if (!kp_instance_can_init(cli->policy, to))
        return KP_OK;
    kp_status st = kp_cli_init_instance(cli, to);
    if (st == KP_ERR_EXISTS)
        return KP_OK;
    KP_GUARD(st);
    if (!cli->json)
        kp_cli_info(cli, stdout, "initialised %s: a new, empty store\n", to);
    kp_plan_free(*plan);
    *plan = NULL;
    return kp_plan_make_with(cli->ctx, cli->policy, chain, popts, plan);
}

int kp_cmd_restore(kp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, 't'},    {"from", required_argument, NULL, 'f'},
        {"force", optional_argument, NULL, 'F'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *to = NULL, *from = NULL;
    bool force = false;
    int c;
    while ((c = getopt_long(argc, argv, "t:f:Fjh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            to = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 'F':
            if (kp_cli_flag("restore", "force", optarg, &force) != KP_EXIT_OK)
                return KP_EXIT_USAGE;
            break;
        case 'j':
            cli->json = true;
            break;
        case 'h':
            printf(
                "Usage: keyplane restore CHAIN --to INSTANCE [--from INSTANCE] [--force] "
                "[--json]\n\n"
                "Rebuilds a lost or emptied keystore (a vault, a region) of CHAIN: copies every\n"
                "version it lacks from --from (an escrow HSM, another replica) or else from\n"
                "the origin or any holder of the same key, then proves it with the same\n"
                "versions x replicas check as 'keyplane verify'. A store of INSTANCE that is\n"
                "not initialised is created first, as 'keyplane init INSTANCE' would. Nothing\n"
                "else is touched.\n\n"
                "  --force  restore even while another keystore of CHAIN is unreachable (it may\n"
                "           hold a version the others lack: without --force, exit 6)\n");
            return KP_EXIT_OK;
        default:
            return kp_cli_bad_option("restore", argv);
        }
    }
    if (optind + 1 != argc || to == NULL)
        return kp_cli_usage_error("restore", "needs CHAIN and --to INSTANCE");
    const char *chain = argv[optind];
    int rc = kp_cli_load_policy(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    const kp_chain_policy *cp = kp_policy_chain(cli->policy, chain);
    if (cp == NULL)
        return kp_cli_not_in_policy(cli, "chain", chain);
    rc = kp_cli_lock(cli);
    if (rc != KP_EXIT_OK)
        return rc;
    if (!kp_cli_chain_holds(cp, to, true))
        return kp_cli_error(KP_ERR_INVALID_ARG, "restore: '%s' holds no copy of %s by policy", to,
                            chain);
    kp_plan *plan = NULL;
    /* The source named with --from is vouched for: where the origin cannot say which key a
     * version is (lost with the region being restored), its word counts. */
    kp_plan_opts popts = {.struct_size = sizeof(popts), .vouch = from};
    kp_status st = kp_plan_make_with(cli->ctx, cli->policy, chain, &popts, &plan);
    if (st == KP_OK)
        rc = s_other_unreachable(plan, to, force);
    if (rc == KP_EXIT_OK && st == KP_OK)
        st = s_init_target(cli, chain, to, &popts, &plan);
    if (rc == KP_EXIT_OK && st == KP_OK)
        st = kp_plan_restrict(cli->ctx, cli->policy, plan, to, from);
    for (size_t i = 0; rc == KP_EXIT_OK && st == KP_OK && i < kp_plan_finding_count(plan); i++) {
        const kp_finding *f = kp_plan_finding(plan, i);
        if (f->kind == KP_FINDING_UNCONFIRMED || f->kind == KP_FINDING_STATE)
            fprintf(stderr, "keyplane: warning: restore: %s: %s%s\n", f->instance, f->detail,
                    from == NULL ? " (name the store you trust with --from)" : "");
    }
    s_progress p = {cli, isatty(STDERR_FILENO) != 0, cli->json ? json_array() : NULL};
    if (rc == KP_EXIT_OK && st == KP_OK) {
        size_t na = kp_plan_action_count(plan), failed = 0, nv = 0;
        bool state_doc = false;
        char journal[4096];
        st = kp_cli_state_path(cli, "journal", journal, sizeof(journal));
        kp_apply_opts aopts = {sizeof(aopts), 0, journal, s_on_action, &p};
        /* Versions are the COPY and SECRET actions; the chain-state document is no version. */
        for (size_t i = 0; i < na; i++) {
            uint32_t kind = kp_plan_action(plan, i)->kind;
            nv += kind == KP_ACTION_COPY || kind == KP_ACTION_SECRET;
            state_doc = state_doc || kind == KP_ACTION_STATE;
        }
        if (!cli->json)
            kp_cli_info(cli, stdout, "restoring %s into %s: %zu version%s to copy%s\n", chain, to,
                        nv, nv == 1 ? "" : "s", state_doc ? ", and the chain-state document" : "");
        if (st == KP_OK)
            st = na > 0 ? kp_plan_apply(cli->ctx, cli->policy, plan, &aopts, &failed) : KP_OK;
    }
    kp_plan_free(plan);
    const char *what = "restore";
    int ok = 0;
    if (rc == KP_EXIT_OK && st == KP_OK) {
        what = "restore: verify";
        st = s_verify_restored(cli, chain, to, &ok);
    }
    if (rc == KP_EXIT_OK && st != KP_OK)
        rc = kp_cli_fail(cli, st, what);
    if (rc != KP_EXIT_OK) {
        json_decref(p.results);
        return rc;
    }
    if (cli->json)
        kp_cli_print_json(json_pack("{s:s, s:s, s:o, s:b}", "chain", chain, "to", to, "results",
                                    p.results, "verified", ok));
    else if (ok)
        kp_cli_info(cli, stdout, "restored: %s holds every version of %s, each proved usable\n", to,
                    chain);
    else
        printf("NOT restored: %s does not hold every version of %s usable\n", to, chain);
    return ok ? KP_EXIT_OK : KP_EXIT_FAIL;
}
