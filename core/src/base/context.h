/*
 * The library context (kp_ctx), handed to every layer. Its fields belong to the layers that use
 * them, named beside each; the struct lives down here so that the lowest layer can keep the
 * error text in it. Not installed.
 */
#ifndef KP_BASE_CONTEXT_H
#define KP_BASE_CONTEXT_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <keyplane/keyplane.h>

#define KP_MAX_PLUGINS 64
#define KP_MAX_PLUGIN_DIRS 16

struct kp_ctx {
    pthread_mutex_t lock; /* guards the plugin list and the instance cache */
    /* base: this context's detail text, one buffer per thread (error.c); the log (log.c) and
     * the audit stream (audit.c) */
    pthread_key_t errkey;
    kp_log_level log_level;
    FILE *log;
    FILE *audit;
    /* base: who and where, added to every audit event (audit.c): a run id (32 hex digits, the
     * same in every event of one run), the user and host names, and what the program says it
     * was asked (kp_ctx_set_audit_context); uid and pid are read per event. Empty strings are
     * left out of the events. */
    struct {
        char run[33];
        char user[64];
        char host[256];
        char command[512];
        char policy[4096];
    } who;
    /* plugin: where plugins are searched (plugin/dirs.c) and those loaded (plugin/loader.c) */
    char *dirs[KP_MAX_PLUGIN_DIRS];
    size_t ndirs;
    struct kp_plugin *plugins[KP_MAX_PLUGINS];
    size_t nplugins;
    /* instance: instances kept open for chain operations (discovery, wrap/unwrap, verify), so a
     * command over many chains, or a process wrapping many DEKs, pays each instance's setup
     * (KDF, module load, login) once (instance/context.c). */
    struct kp_icache {
        uint64_t policy;
        char *name;
        kp_instance *inst;
    } * icache;
    size_t nicache, capicache;
    /* instance: the DEK cache (instance/dek_cache.c), NULL until kp_ctx_set_dek_cache turns it on
     */
    struct kp__dek_cache *dek_cache;
};

#endif
