/*
 * Inside the instance layer: an open instance, and how the core calls its functions (the
 * lookup, the audit event, the buffer convention and the checks on every plugin answer).
 * Not installed.
 */
#ifndef KP_INSTANCE_CALL_H
#define KP_INSTANCE_CALL_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "plugin/plugin.h"

struct kp_instance {
    kp_ctx *ctx;
    kp_plugin *plugin;
    char *name;
    void *inst;
    struct kp_core_handle handle;
    kp_instance_info info; /* what INSTANCE_INFO said at open, checked against the plugin's */
};

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
/* kp__inst_audit of an operation that moves name to another key, to (the event's "to"). */
kp_status kp__inst_audit_to(kp_instance *inst, const char *op, const char *name, const char *to,
                            kp_status st);
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
/* Copies a plugin's key info of any struct_size into a full one, refusing a malformed one. */
kp_status kp__inst_key_info(kp_instance *inst, const char *fn, const kp_key_info *in,
                            kp_key_info *out);
/* What CREATE/IMPORT/IMPORT_WRAPPED (fn) answered st and made into info: a well-formed info
 * (normalised in place) of the spec's name, of its version when one was asked for, and with
 * spec->fingerprint when one was given (KP_ERR_INTEGRITY). Returns st when it is not KP_OK. */
kp_status kp__inst_made(kp_instance *inst, const char *fn, const kp_key_spec *spec,
                        kp_key_info *info, kp_status st);

#endif
