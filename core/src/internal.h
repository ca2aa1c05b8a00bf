/*
 * libkeyplane internals shared between core/src files. Not installed.
 */
#ifndef KP_INTERNAL_H
#define KP_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include <keyplane/keyplane.h>

#define KP_ERRBUF (KP_ERROR_MAX + 1) /* detail text, as the ABI promises plugins */
#define KP_MAX_PLUGINS 64
#define KP_MAX_PLUGIN_DIRS 16

#if defined(__GNUC__)
#define KP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KP_PRINTF(a, b)
#endif

/* Who an upcall speaks for: the plugin itself, or one of its instances. */
struct kp_core_handle {
    kp_ctx *ctx;
    const char *who; /* plugin or instance name, borrowed from its owner */
};

struct kp_plugin {
    kp_core_info core; /* what kp_plugin_init was given: valid until unload, as the ABI says */
    kp_ctx *ctx;
    char *path;
    char *name;
    void *dl;
    const kp_dispatch *table;
    void *plugin_ctx;
    const kp_plugin_info *info;
    const kp_param_desc *params;
    struct kp_core_handle handle;
    unsigned open_instances;
};

#define KP_ICACHE 32

struct kp_ctx {
    pthread_mutex_t lock; /* guards the plugin list */
    pthread_key_t errkey; /* this context's detail text, one buffer per thread */
    kp_log_level log_level;
    FILE *log;
    FILE *audit;
    char *dirs[KP_MAX_PLUGIN_DIRS];
    size_t ndirs;
    struct kp_plugin *plugins[KP_MAX_PLUGINS];
    size_t nplugins;
    /* Instances kept open for chain operations (wrap/unwrap/rewrap), so a process doing many
     * pays each instance's setup (KDF, login) once. Guarded by lock. */
    struct {
        uint64_t policy;
        char *name;
        kp_instance *inst;
    } icache[KP_ICACHE];
    size_t nicache;
};

struct kp_instance {
    kp_ctx *ctx;
    kp_plugin *plugin;
    char *name;
    void *inst;
    struct kp_core_handle handle;
    kp_instance_info info; /* what INSTANCE_INFO said at open, checked against the plugin's */
};

/* ctx.c: a borrowed instance for chain operations; give it back with kp__instance_return. */
kp_status kp__instance_borrow(kp_ctx *ctx, const kp_policy *policy, const char *name,
                              kp_instance **out);
void kp__instance_return(kp_ctx *ctx, kp_instance *inst);
uint64_t kp__policy_id(const kp_policy *policy);

/* ctx.c */
kp_status kp__set_error(kp_ctx *ctx, kp_status status, const char *fmt, ...) KP_PRINTF(3, 4);
void kp__clear_error(kp_ctx *ctx);
/* Turns control characters into spaces, in place: text from a plugin stays on one line. */
void kp__one_line(char *s);
void kp__log(kp_ctx *ctx, kp_log_level level, const char *fmt, ...) KP_PRINTF(3, 4);

/* audit.c: one event per key operation; fields never hold key material. */
typedef struct kp_audit_event {
    const char *op;
    const char *instance;
    const char *plugin;
    const char *name;
    uint32_t version;
    const char *alg;
    kp_status status;
    const char *detail;
} kp_audit_event;
void kp__audit(kp_ctx *ctx, const kp_audit_event *ev);

/* upcalls.c */
const kp_dispatch *kp__upcalls(void);

/* loader.c */
const kp_dispatch *kp__plugin_fn(const kp_plugin *plugin, uint32_t id);

/* instance_call.c: how the core calls an instance's function. */
/* The largest answer the core takes into one buffer (a public key, a wrap, a wrapped key, an
 * offer's token, a state document are all far below): more is a broken plugin, not memory to
 * allocate. */
#define KP__ANSWER_MAX (1024u * 1024u)
/* The function id of an operation of capability cap, or KP_ERR_UNSUPPORTED naming the instance. */
kp_status kp__inst_fn(kp_instance *inst, uint32_t cap, uint32_t id, const char *op,
                      const kp_dispatch **d);
/* Sets a generic detail when the plugin gave none, writes the audit event, returns st. */
kp_status kp__inst_audit(kp_instance *inst, const char *op, const char *name, uint32_t version,
                         uint32_t alg, kp_status st);
/* The buffer convention's defence: KP_ERR_PLUGIN when fn answered st with a len that does not fit
 * the capacity cap it was given; else st. */
kp_status kp__inst_len_check(kp_instance *inst, const char *fn, kp_status st, size_t cap,
                             size_t len);
/* One call of a plugin function that fills a caller buffer. */
typedef kp_status (*kp__inst_fill_fn)(kp_instance *inst, const void *args, uint8_t *buf,
                                      size_t *len);
/* Calls fill with first bytes, then once with the size asked for; *out is malloc'd. */
kp_status kp__inst_fill(kp_instance *inst, const char *fn, kp__inst_fill_fn fill, const void *args,
                        size_t first, uint8_t **out, size_t *outlen);
/* The caller's key spec as this core's full spec (members a shorter caller lacks are 0);
 * KP_ERR_INVALID_ARG for a spec too short to be one, or without a name. */
kp_status kp__spec_copy(kp_instance *inst, const kp_key_spec *in, kp_key_spec *out);
/* An info the core passes to a plugin: zeroed, struct_size set. */
void kp__key_info_init(kp_key_info *info);
/* What CREATE/IMPORT/IMPORT_WRAPPED (fn) answered st and made into info: a well-formed info
 * (normalised in place) of the spec's name, of its version when one was asked for, and with
 * spec->fingerprint when one was given (KP_ERR_INTEGRITY). Returns st when it is not KP_OK. */
kp_status kp__inst_made(kp_instance *inst, const char *fn, const kp_key_spec *spec,
                        kp_key_info *info, kp_status st);
/* instance.c: whether a store as info describes it can hold chain's protector and unwrap with
 * its algorithm (0 in a field: not known yet, passes); else KP_ERR_UNSUPPORTED and why names
 * who. */
kp_status kp__info_fits(const kp_instance_info *info, const kp_chain_policy *chain, const char *who,
                        char *why, size_t whylen);
/* Copies a plugin's key info of any struct_size into a full one, refusing a malformed one. */
kp_status kp__inst_key_info(kp_instance *inst, const char *fn, const kp_key_info *in,
                            kp_key_info *out);

/* instance_store.c: the chain-state document of a keystore (KS_STATE_GET/PUT), with the
 * buffer defences. kept: the instance keeps documents. */
bool kp__state_kept(const kp_instance *inst);
kp_status kp__state_get(kp_instance *inst, const char *name, uint8_t *doc, size_t *len);
kp_status kp__state_put(kp_instance *inst, const char *name, const uint8_t *doc, size_t len,
                        const uint8_t *expect, size_t expect_len);

/* Copies the version want describes (name, version, type, bits, flags, fingerprint: src's info)
 * from src to dst (wrapped when both share a transfer method, else PKCS#8); the fingerprint
 * travels with the import and the copy is checked again (key_copy.c). have receives the copy's
 * info. */
kp_status kp__key_copy(kp_ctx *ctx, kp_instance *src, kp_instance *dst, const kp_key_info *want,
                       kp_key_info *have);
void kp__plugin_unload(kp_plugin *plugin);

/* util.c */
bool kp__name_valid(const char *s, size_t max, bool allow_upper_dot);
char *kp__strdup(const char *s);
kp_status kp__parse_duration(const char *s, int64_t *seconds);
char *kp__b64_encode(const uint8_t *in, size_t len);
kp_status kp__b64_decode(const char *in, uint8_t **out, size_t *outlen);

/* policy.c: the resolved view of one instance, for instance.c */
typedef struct kp_pol_param {
    char *name;
    char *value; /* PATH: already absolute */
    uint32_t type;
    unsigned line, column;
} kp_pol_param;

typedef struct kp_pol_instance {
    char *name;
    char *plugin_name;
    kp_plugin *plugin; /* owned by the ctx */
    kp_pol_param *params;
    size_t nparams;
    unsigned line, column;
    kp_instance_info described; /* PLUGIN_DESCRIBE's answer, or the plugin's capabilities */
} kp_pol_instance;

const kp_pol_instance *kp__policy_instance(const kp_policy *policy, const char *name);
/* The ABI view of an instance's params (secret params unresolved: secret NULL); free() it. */
kp_status kp__param_view(const kp_pol_instance *pi, kp_param **out);

#endif /* KP_INTERNAL_H */
