/*
 * Audit events: one per key operation, written by the core so that a plugin can neither skip
 * nor forge them. Not installed.
 */
#ifndef KP_BASE_AUDIT_H
#define KP_BASE_AUDIT_H

#include <stdint.h>

#include <keyplane/keyplane.h>

/* One event; fields never hold key material. */
typedef struct kp_audit_event {
    const char *op;
    const char *instance;
    const char *plugin;
    const char *name;
    const char *to; /* the key id a data key was re-encrypted to (datakey.reencrypt) */
    uint32_t version;
    const char *alg;
    kp_status status;
    const char *detail;
} kp_audit_event;

void kp__audit(kp_ctx *ctx, const kp_audit_event *ev);

#endif
