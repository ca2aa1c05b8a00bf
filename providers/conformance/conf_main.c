/*
 * keyplane-conformance: runs the provider ABI's conformance tests against any plugin.
 *
 *   keyplane-conformance PLUGIN.so [--params FILE.yaml] [--only TEST[,TEST...]] [--json]
 *                        [--threads N] [--timeout S] [--valgrind] [-v]
 *   keyplane-conformance --list | --help
 *
 * Exit status: 0 when no test failed, 1 when one did, 2 for a usage or params-file error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "conf_crypto.h"
#include "conf_report.h"

static const char s_usage[] =
    "usage: keyplane-conformance PLUGIN.so [--params FILE.yaml] [--only TEST[,TEST...]]\n"
    "                            [--json] [--threads N] [--timeout SECONDS] [--valgrind] [-v]\n"
    "       keyplane-conformance --list | --help\n"
    "\n"
    "Loads PLUGIN.so as keyplane's core would, opens an instance with the params in FILE.yaml\n"
    "and runs every test that applies to what the instance declares. Keys and secrets it makes\n"
    "are named KEY_PREFIX-RUNID-* and are left in the store (the ABI has no delete).\n"
    "\n"
    "  --params FILE   YAML: params: {NAME: VALUE, ...}, key_prefix: PREFIX, datakey_key: ID,\n"
    "                  objects_at: LOCATION (where the objects test writes)\n"
    "  --only TESTS    run only these tests (comma-separated; --list names them)\n"
    "  --json          print one JSON object instead of lines\n"
    "  --threads N     threads of the threads test (default 8)\n"
    "  --timeout S     fail a test that runs longer than S seconds (default 300, 0 = none)\n"
    "  --valgrind      also run the kit under valgrind, reported as the test 'valgrind'\n"
    "                  (run even when --only does not name it)\n"
    "  -v              show the plugin's log lines and audit events on stderr\n"
    "\n"
    "Exit status: 0 no test failed, 1 a test failed, 2 usage or params-file error.\n"
    "See docs/conformance.md.\n";

typedef struct opts {
    const char *plugin, *params, *only;
    bool json, list, valgrind;
    unsigned threads, timeout;
} opts;

static int s_usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "keyplane-conformance: %s%s\n%s", msg, arg != NULL ? arg : "", s_usage);
    return 2;
}

static bool s_num(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    unsigned long v = s != NULL ? strtoul(s, &end, 10) : 0;
    if (s == NULL || *s == '\0' || *end != '\0' || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Returns -1 to go on, else the exit status. */
static int s_parse(int argc, char **argv, opts *o)
{
    o->threads = 8;
    o->timeout = 300;
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(s_usage, stdout);
            return 0;
        } else if (strcmp(a, "--list") == 0) {
            o->list = true;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--valgrind") == 0) {
            o->valgrind = true; /* conf_valgrind_set_argv sees it too */
        } else if (strcmp(a, "-v") == 0) {
            conf_verbose = 1;
        } else if (strcmp(a, "--params") == 0 && v != NULL) {
            o->params = argv[++i];
        } else if (strcmp(a, "--only") == 0 && v != NULL) {
            o->only = argv[++i];
        } else if (strcmp(a, "--threads") == 0) {
            if (!s_num(v, 1, 256, &o->threads))
                return s_usage_error("--threads takes 1..256", NULL);
            i++;
        } else if (strcmp(a, "--timeout") == 0) {
            if (!s_num(v, 0, 864000, &o->timeout))
                return s_usage_error("--timeout takes seconds", NULL);
            i++;
        } else if (a[0] == '-') {
            return s_usage_error("unknown option or missing value: ", a);
        } else if (o->plugin == NULL) {
            o->plugin = a;
        } else {
            return s_usage_error("more than one plugin: ", a);
        }
    }
    if (o->list) {
        for (size_t i = 0; i < conf_ntests; i++)
            printf("%-19s %s\n", conf_tests[i].name, conf_tests[i].what);
        return 0;
    }
    if (o->plugin == NULL)
        return s_usage_error("no plugin given", NULL);
    return -1;
}

/* Whether test name was selected by --only (a comma-separated list, NULL: all). --valgrind
 * selects the test valgrind whatever --only says: asking for valgrind and getting no valgrind run
 * and exit 0 would pass a plugin nothing checked. */
static bool s_selected(const opts *o, const char *name)
{
    const char *only = o->only;
    if (only == NULL || (o->valgrind && strcmp(name, "valgrind") == 0))
        return true;
    size_t n = strlen(name);
    for (const char *p = only; *p != '\0';) {
        size_t m = strcspn(p, ",");
        if (m == n && strncmp(p, name, n) == 0)
            return true;
        p += m + (p[m] == ',');
    }
    return false;
}

static int s_check_only(const char *only)
{
    for (const char *p = only; p != NULL && *p != '\0';) {
        size_t m = strcspn(p, ",");
        bool known = false;
        for (size_t i = 0; i < conf_ntests && !known; i++)
            known = strlen(conf_tests[i].name) == m && strncmp(p, conf_tests[i].name, m) == 0;
        if (!known) {
            fprintf(stderr, "keyplane-conformance: --only: unknown test '%.*s' (see --list)\n",
                    (int)m, p);
            return 2;
        }
        p += m + (p[m] == ',');
    }
    return -1;
}

/* The plugin file as an absolute path, without resolving symbolic links (the file name is the
 * plugin's name). dlopen() searches the library path for a name without a slash, so a bare
 * "myplugin.so" would not be the file in the current directory. NULL on out-of-memory. */
static char *s_abs_path(const char *path)
{
    char cwd[4096], *out = NULL;
    if (path[0] == '/')
        return strdup(path);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    while (strncmp(path, "./", 2) == 0)
        path += 2;
    return asprintf(&out, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path) < 0 ? NULL : out;
}

/* An instance opened once before the tests, for what it declares; with INSTANCE_INIT (ABI 1.1)
 * it also initialises the store the params name (KP_ERR_EXISTS: it is there already), as
 * 'keyplane init' would, since such a plugin answers KP_ERR_UNAVAILABLE on a store that is not. */
static void s_probe(conf_kit *k)
{
    conf_run probe;
    memset(&probe, 0, sizeof(probe));
    probe.kit = k;
    void *inst = NULL;
    kp_core_handle *h = NULL;
    kp_status st = conf_open(&probe, NULL, &inst, &h);
    if (st != KP_OK) {
        snprintf(k->iinfo_error, sizeof(k->iinfo_error),
                 "INSTANCE_OPEN with the params file's params failed: %s: %s", conf_status_name(st),
                 conf_reason());
        return;
    }
    k->have_iinfo = conf_instance_info(&probe, inst, &k->iinfo);
    if (!k->have_iinfo)
        snprintf(k->iinfo_error, sizeof(k->iinfo_error), "%s",
                 probe.nreasons > 0 ? probe.reasons[0] : "INSTANCE_INFO failed");
    kp_instance_init_fn *init = CONF_FN(k, instance_init, KP_FN_INSTANCE_INIT);
    if (k->have_iinfo && init != NULL) {
        conf_err_clear();
        st = init(inst);
        if (st != KP_OK && st != KP_ERR_EXISTS) {
            k->have_iinfo = false;
            snprintf(k->iinfo_error, sizeof(k->iinfo_error),
                     "INSTANCE_INIT of the store the params name failed: %s: %s",
                     conf_status_name(st), conf_reason());
        }
    }
    conf_close(&probe, inst, h);
    for (size_t i = 0; i < probe.nreasons; i++)
        free(probe.reasons[i]);
}

int main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof(o));
    int rc = s_parse(argc, argv, &o);
    if (rc < 0)
        rc = s_check_only(o.only);
    if (rc >= 0)
        return rc;
    struct stat sb;
    if (stat(o.plugin, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fprintf(stderr, "keyplane-conformance: no such plugin file: %s\n", o.plugin);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    conf_valgrind_set_argv(argc, argv);

    static conf_kit k;
    char *path = s_abs_path(o.plugin);
    if (path == NULL) {
        fprintf(stderr, "keyplane-conformance: cannot make %s an absolute path\n", o.plugin);
        return 2;
    }
    k.path = path;
    k.params_path = o.params;
    k.threads = o.threads;
    k.timeout_s = o.timeout;
    uint8_t id[4];
    conf_random(id, sizeof(id));
    snprintf(k.run_id, sizeof(k.run_id), "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
    conf_guard_start(&k.timeout_s);

    conf_running("handshake"); /* a crash while loading is the handshake's */
    bool loaded = conf_load(&k);
    conf_running(NULL);
    if (loaded) {
        char err[512];
        kp_plugin_params_fn *pf = CONF_FN(&k, plugin_params, KP_FN_PLUGIN_PARAMS);
        if (!conf_params_load(&k, pf != NULL ? pf(k.plugin_ctx) : NULL, err, sizeof(err))) {
            fprintf(stderr, "keyplane-conformance: %s\n", err);
            return 2;
        }
        conf_running("instance-info");
        s_probe(&k);
        conf_running(NULL);
        conf_secret_sweep(0, false); /* faults so far are reported by secrets-wiped */
    }
    if (!o.json)
        conf_report_header(&k);

    conf_run *runs = calloc(conf_ntests, sizeof(*runs));
    size_t n = 0, pass = 0, fail = 0, skip = 0;
    if (runs == NULL)
        return 2;
    for (size_t i = 0; i < conf_ntests; i++) {
        if (!s_selected(&o, conf_tests[i].name))
            continue;
        conf_run *r = &runs[n++];
        conf_run_one(&k, &conf_tests[i], (unsigned)n, r);
        pass += r->result == CONF_OK;
        fail += r->result == CONF_FAIL;
        skip += r->result == CONF_SKIP;
        if (!o.json)
            conf_report_line(r);
    }
    conf_unload(&k);
    if (o.json)
        conf_report_json(&k, runs, n, pass, fail, skip);
    else
        conf_report_summary(pass, fail, skip);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < runs[i].nreasons; j++)
            free(runs[i].reasons[j]);
    free(runs);
    conf_params_free(&k.params);
    for (size_t i = 0; i < k.nhs; i++)
        free(k.hs_faults[i]);
    free(path);
    return fail > 0 ? 1 : 0;
}
