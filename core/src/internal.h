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

#define KP_ERRBUF 256
#define KP_MAX_PLUGINS 64
#define KP_MAX_PLUGIN_DIRS 16

#if defined(__GNUC__)
#define KP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KP_PRINTF(a, b)
#endif

/* Error-path macros (s2n's shape): keep every failure path one line long. */
#define KP_GUARD(expr)                                                                             \
    do {                                                                                           \
        kp_status kp_guard_st_ = (expr);                                                           \
        if (kp_guard_st_ != KP_OK)                                                                 \
            return kp_guard_st_;                                                                   \
    } while (0)
#define KP_ENSURE(cond, status)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return (status);                                                                       \
    } while (0)

/* Who an upcall speaks for: the plugin itself, or one of its instances. */
struct kp_core_handle {
    kp_ctx *ctx;
    const char *who; /* plugin or instance name, borrowed from its owner */
};

struct kp_plugin {
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
};

/* ctx.c: a borrowed instance for chain operations; give it back with kp__instance_return. */
kp_status kp__instance_borrow(kp_ctx *ctx, const kp_policy *policy, const char *name,
                              kp_instance **out);
void kp__instance_return(kp_ctx *ctx, kp_instance *inst);
uint64_t kp__policy_id(const kp_policy *policy);

/* ctx.c */
kp_status kp__set_error(kp_ctx *ctx, kp_status status, const char *fmt, ...) KP_PRINTF(3, 4);
void kp__clear_error(kp_ctx *ctx);
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

/* Copies spec->name v spec->version from src to dst (BYOK when both speak it, else PKCS#8) and
 * checks the copy has fingerprint (key_copy.c). have receives the copy's info. */
kp_status kp__key_copy(kp_ctx *ctx, kp_instance *src, kp_instance *dst, const kp_key_spec *spec,
                       const char *fingerprint, kp_key_info *have);
void kp__plugin_unload(kp_plugin *plugin);

/* util.c */
bool kp__name_valid(const char *s, size_t max, bool allow_upper_dot);
char *kp__strdup(const char *s);
kp_status kp__parse_duration(const char *s, int64_t *seconds);
char *kp__b64_encode(const uint8_t *in, size_t len);
kp_status kp__b64_decode(const char *in, uint8_t **out, size_t *outlen);
void kp__hex(const uint8_t *in, size_t len, char *out);

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
} kp_pol_instance;

const kp_pol_instance *kp__policy_instance(const kp_policy *policy, const char *name);

#endif /* KP_INTERNAL_H */
