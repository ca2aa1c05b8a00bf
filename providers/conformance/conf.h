/*
 * keyplane-conformance: the provider conformance kit's internal interface.
 *
 * The kit is a second, independent "core": it loads a plugin itself, hands it its own upcalls
 * (with a secret allocator that keeps a registry of every secret so leaks, double frees and
 * writes after free are caught) and runs named tests against one instance. It links nothing
 * from libkeyplane, so a bug in the core cannot hide the same bug in a plugin; of the provider
 * kit (keyplane-kit-codec) it takes the clock, the fingerprint format check and the param
 * description lookup, but computes the fingerprints it checks on its own (conf_crypto.c).
 *
 * The files call downwards only: conf_main.c on top; the tests (conf_tests.c, conf_t_*.c,
 * conf_valgrind.c); conf_load.c, conf_params.c, conf_report.c; conf_run.c; conf_util.c;
 * conf_list.c; conf_core.c, conf_crypto.c; conf_secret.c; and conf_calls.c and conf_result.c
 * at the bottom.
 */
#ifndef KEYPLANE_CONF_H
#define KEYPLANE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keyplane/provider.h>

#define CONF_VERSION "1.0"
#define CONF_NAME_LEN 96 /* names the kit makes stay well under KP_NAME_MAX */

/* ---------------------------------------------------------------------------------------- */
/* Results                                                                                   */

typedef enum conf_result { CONF_OK = 0, CONF_FAIL = 1, CONF_SKIP = 2 } conf_result;

typedef struct conf_run conf_run;
typedef struct conf_kit conf_kit;

/** One test: a name for --only, a line for --list, whether the runner opens an instance for
 *  it, and a guard that returns why it does not apply (NULL when it does). */
typedef struct conf_test {
    const char *name;
    const char *what;
    bool instance;
    const char *(*applies)(const conf_kit *k);
    void (*run)(conf_run *r);
} conf_test;

/** Every test, in the order they run (conf_tests.c). */
extern const conf_test conf_tests[];
extern const size_t conf_ntests;

/* ---------------------------------------------------------------------------------------- */
/* The kit                                                                                   */

/** Parsed params file: the typed params handed to INSTANCE_OPEN (name == NULL ends them). */
typedef struct conf_params {
    kp_param *list;
    size_t n;
    char *key_prefix;  /* names made by the kit start with it */
    char *datakey_key; /* DK_GENERATE's key_id, when the instance is a data-key store */
    char *objects_at;  /* where the objects test writes (OB_*): a location prefix */
} conf_params;

/** Reads the params file (k->params_path; none: no params) typed by descs into k->params.
 *  false with a message in err when the file is wrong (exit status 2). */
bool conf_params_load(conf_kit *k, const kp_param_desc *descs, char *err, size_t len);
void conf_params_free(conf_params *P);

struct conf_kit {
    const char *path; /* the plugin file */
    const char *params_path;
    void *dl;
    kp_plugin_init_fn *init;
    const kp_dispatch *table;
    void *plugin_ctx;
    const kp_plugin_info *info;
    bool loaded;          /* init succeeded: instance tests can run */
    char load_error[512]; /* why not, for every test that needs the plugin */
    char *hs_faults[8];   /* handshake faults found while loading, for the handshake test */
    size_t nhs;
    conf_params params;
    bool have_iinfo; /* an instance opened and answered INSTANCE_INFO */
    kp_instance_info iinfo;
    char iinfo_error[512];
    char run_id[16]; /* random per run: names are unique against shared stores */
    unsigned threads;
    unsigned timeout_s;
    int verbose;
};

/** The function of id in the plugin's table, NULL when absent. Functions returning kp_status
 *  come wrapped (conf_calls.c), so upcalls know during which ABI call they happen. */
kp_fn conf_fn(const conf_kit *k, uint32_t id);
/** Makes conf_fn wrap the functions of table (the plugin's, once init succeeded). */
void conf_calls_bind(const kp_dispatch *table);
/** Notes that the calling thread enters the ABI call name ("KS_UNWRAP"); returns the call it was
 *  in, to give back to conf_call_leave. */
const char *conf_call_enter(const char *name);
void conf_call_leave(const char *prev);
/** The ABI call the calling thread is in, NULL when none. */
const char *conf_call_now(void);
#define CONF_FN(k, name, id) ((kp_##name##_fn *)conf_fn((k), (id)))

/** Loads the plugin and runs kp_plugin_init with the kit's core (conf_load.c). Returns false
 *  (with k->load_error) when the plugin cannot be used at all. */
bool conf_load(conf_kit *k);
void conf_unload(conf_kit *k);

/* ---------------------------------------------------------------------------------------- */
/* The kit's core: upcalls, handles, error text, secrets (conf_core.c, conf_secret.c)       */

/** The upcall table the kit hands to plugins. */
extern const kp_dispatch conf_upcalls[];
/** Log lines and audit events of the plugin go to stderr when set (-v). */
extern int conf_verbose;
/* The secret upcalls (conf_secret.c). */
kp_up_secret_new_fn conf_up_secret_new;
kp_up_secret_free_fn conf_up_secret_free;
kp_up_secret_data_fn conf_up_secret_data;
kp_up_secret_cdata_fn conf_up_secret_cdata;
kp_up_secret_len_fn conf_up_secret_len;
kp_up_secret_shrink_fn conf_up_secret_shrink;
kp_core_handle *conf_handle_new(const char *who);
void conf_handle_retire(kp_core_handle *h); /* upcalls through it are faults from now on */
kp_core_handle *conf_plugin_handle(void);

/** The calling thread's error text: cleared before each plugin call, read after a failure. */
void conf_err_clear(void);
const char *conf_err_text(void);
bool conf_err_was_set(void);
kp_status conf_err_status(void);

/** Values the plugin must never write to logs, audit or error text (SECRET params). */
void conf_forbid_text(const char *name, const unsigned char *p, size_t len);

/* Secrets. The kit's own secrets are owned by the kit; the plugin's (from the upcall) by the
 * plugin until it returns one through an out-parameter, when the kit adopts it. */
kp_secret *conf_secret_new(const void *p, size_t len); /* kit-owned */
void conf_secret_free(kp_secret *s);                   /* kit frees what it owns */
const unsigned char *conf_secret_bytes(const kp_secret *s);
size_t conf_secret_size(const kp_secret *s);
/** Takes ownership of a secret the plugin returned: false (and a fault) when s is not a live
 *  secret of the plugin's. */
bool conf_secret_adopt(conf_run *r, kp_secret *s, const char *what);
typedef struct conf_secret_stats {
    uint64_t plugin_new, plugin_freed, adopted, kit_new, kit_freed, live_plugin;
} conf_secret_stats;
void conf_secret_stats_get(conf_secret_stats *st);
/** After a test: faults for secrets the plugin allocated during test seq and still holds, for
 *  writes into freed secrets and past the end of live ones; releases the quarantine. */
void conf_secret_sweep(unsigned seq, bool leaks);
void conf_secret_set_seq(unsigned seq);

/* ---------------------------------------------------------------------------------------- */
/* A test run                                                                                */

#define CONF_MAX_REASONS 16

struct conf_run {
    conf_kit *kit;
    const conf_test *test;
    unsigned seq;
    conf_result result;
    char *reasons[CONF_MAX_REASONS];
    size_t nreasons, dropped;
    char skip[256];
    char note[256]; /* a line of totals some tests report */
    void *inst;     /* opened by the runner for tests with instance = true */
    kp_core_handle *h;
    double ms;
};

/** Records a failure (thread-safe; the first reasons are kept). */
void conf_fail(conf_run *r, const char *fmt, ...) KP_PRINTF_(2, 3);
void conf_skip(conf_run *r, const char *fmt, ...) KP_PRINTF_(2, 3);
/** The run faults from upcalls go to (the test running now), or NULL between tests. */
conf_run *conf_current(void);
void conf_set_current(conf_run *r);
/** A fault from an upcall: goes to the running test, or to the totals reported at the end. */
void conf_fault(const char *fmt, ...) KP_PRINTF_(1, 2);
/** Faults that happened outside a test (init, teardown), reported by secrets-wiped. */
size_t conf_orphan_faults(char ***out);

/** Runs test t as number seq into r. */
void conf_run_one(conf_kit *k, const conf_test *t, unsigned seq, conf_run *r);
/** Names the test a crash or hang outside conf_run_one is blamed on (NULL: none). */
void conf_running(const char *test);
/** Installs the crash reporter and, when *timeout_s > 0, the per-test watchdog. */
void conf_guard_start(unsigned *timeout_s);
/** Runs the kit under valgrind (conf_valgrind.c); argv as the kit got it. */
void conf_valgrind_set_argv(int argc, char **argv);

/** Opens an instance with params (the kit's own when NULL); status and error text as the plugin
 *  returned them. */
kp_status conf_open(conf_run *r, const kp_param *params, void **inst, kp_core_handle **h);
void conf_close(conf_run *r, void *inst, kp_core_handle *h);
/** INSTANCE_INFO into a guarded struct; false with a failure recorded when it misbehaves. */
bool conf_instance_info(conf_run *r, void *inst, kp_instance_info *out);

/* ---------------------------------------------------------------------------------------- */
/* Helpers shared by the tests (conf_util.c)                                                 */

const char *conf_status_name(kp_status st);
/** The calling thread's error text for a failure message ("no error text" when none). */
const char *conf_reason(void);
/** A name unique to this run: prefix-runid-tag. */
void conf_name(const conf_kit *k, const char *tag, char out[CONF_NAME_LEN]);
bool conf_one_line(const char *s);
/** Smallest RSA size the instance holds (2048 when it says nothing). */
uint32_t conf_key_bits(const conf_kit *k);
const char *conf_alg_name(uint32_t alg);
const char *conf_keyx_name(uint32_t m);

/* Guarded buffers: capacity bytes followed by guard bytes, all set to a pattern. */
typedef struct conf_buf {
    uint8_t *p;
    size_t cap;
} conf_buf;
#define CONF_GUARD 64
bool conf_buf_new(conf_buf *b, size_t cap);
void conf_buf_free(conf_buf *b);
/** True when nothing was written at or past from (the guard, or the whole buffer with 0). */
bool conf_buf_untouched(const conf_buf *b, size_t from);

/** Keys the tests make: through KS_CREATE when there is one, else KS_IMPORT of a kit key
 *  (then *priv holds it, else NULL). Fails the run (returning false) when it cannot. */
typedef struct conf_key {
    char name[CONF_NAME_LEN];
    kp_key_info info;
    void *priv; /* EVP_PKEY * when the kit made the key */
} conf_key;
bool conf_key_make(conf_run *r, const char *tag, uint32_t flags, bool want_priv, conf_key *key);
void conf_key_free(conf_key *key);
/** Makes version v (0: the next) of name through KS_CREATE, or KS_IMPORT of a kit key. */
kp_status conf_make_version(conf_run *r, const char *name, uint32_t v, kp_key_info *info);
/** The SPKI DER of name/version through GET_PUBLIC (malloc'd), NULL with a failure. */
uint8_t *conf_get_spki(conf_run *r, const char *name, uint32_t version, size_t *len);
/** Checks a fingerprint the plugin returned against the SHA-256 of its SPKI. */
bool conf_check_fpr(conf_run *r, const char *where, const char *name, uint32_t version,
                    const char *fpr);

#endif
