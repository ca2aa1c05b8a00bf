/*
 * Objects (KP_INST_OBJECTS, ABI 1.6): large byte streams with metadata at a location the plugin
 * names, written once in order and read by ranges (`keyplane backup`). The core checks every
 * answer it relies on: a read that says it gave more than it was asked for, a size or tag that
 * is not one, metadata a store hands back in a shape kp_meta does not allow. Creating and
 * committing an object and opening one (STAT) are audited; the reads of its ranges are not (a
 * 10 GiB backup is a thousand of them).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/keyplane.h>

#include "base/error.h"
#include "instance/call.h"
#include "instance/instance.h"

/* The longest location the core passes on (an S3 URL: bucket and a 1024-byte key). */
#define S_WHERE_MAX 2048

struct kp_object_out {
    kp_instance *inst;
    kp_object_writer *w;
    char *where;
    uint64_t written;
    bool failed;
};

int kp_instance_has_objects(const kp_instance *inst)
{
    return inst != NULL && (kp_instance_get0_info(inst)->flags & KP_INST_OBJECTS) != 0;
}

/* kp_meta's rule for an object's metadata: a key of 1 to 64 of [a-z0-9_.-], a value of
 * printable ASCII (what an HTTP header carries unchanged). */
static bool s_meta_ok(const kp_meta *m)
{
    size_t kl = m->key != NULL ? strlen(m->key) : 0;
    if (kl == 0 || kl > 64 || strspn(m->key, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != kl ||
        m->value == NULL)
        return false;
    for (const char *c = m->value; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            return false;
    return true;
}

/* The instance keeps objects and where is a location to pass on, or the error. */
static kp_status s_fn(kp_instance *inst, const char *where, uint32_t id, const kp_dispatch **d)
{
    KP_ENSURE(inst != NULL, KP_ERR_INVALID_ARG);
    kp__clear_error(inst->ctx);
    *d = kp_instance_has_objects(inst) ? kp__plugin_fn(inst->plugin, id) : NULL;
    if (*d == NULL) {
        (void)kp__set_error(inst->ctx, KP_ERR_UNSUPPORTED,
                            "%s: plugin %s keeps no objects (backups go to an instance that "
                            "does: the aws plugin's s3 or kms kind)",
                            inst->name, inst->plugin->name);
        return KP_ERR_UNSUPPORTED;
    }
    size_t n = where != NULL ? strnlen(where, S_WHERE_MAX) : 0;
    if (n == 0 || n == S_WHERE_MAX)
        return kp__set_error(inst->ctx, KP_ERR_INVALID_ARG,
                             "%s: an object location of 1 to %d "
                             "bytes is needed",
                             inst->name, S_WHERE_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)where[i] < 0x20 || where[i] == 0x7f)
            return kp__set_error(inst->ctx, KP_ERR_INVALID_ARG,
                                 "%s: an object location holds a control character", inst->name);
    return KP_OK;
}

kp_status kp_object_create(kp_instance *inst, const char *where, const kp_meta *meta, size_t nmeta,
                           kp_object_out **out)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(out != NULL && (nmeta == 0 || meta != NULL), KP_ERR_INVALID_ARG);
    *out = NULL;
    KP_GUARD(s_fn(inst, where, KP_FN_OB_CREATE, &d));
    for (size_t i = 0; i < nmeta; i++)
        if (!s_meta_ok(&meta[i]))
            return kp__inst_audit(inst, "object.create", where, 0, 0,
                                  kp__set_error(inst->ctx, KP_ERR_INVALID_ARG,
                                                "%s: object metadata #%zu: keys of [a-z0-9_.-], "
                                                "values of printable ASCII",
                                                inst->name, i + 1));
    kp_object_out *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->where = strdup(where)) == NULL) {
        free(c);
        return kp__set_error(inst->ctx, KP_ERR_NOMEM, "out of memory");
    }
    c->inst = inst;
    kp_status st = kp_dispatch_ob_create(d)(inst->inst, where, meta, nmeta, &c->w);
    if (st == KP_OK && c->w == NULL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: OB_CREATE gave no writer", inst->name,
                           inst->plugin->name);
    if (st != KP_OK) {
        free(c->where);
        free(c);
        return kp__inst_audit(inst, "object.create", where, 0, 0, st);
    }
    *out = c;
    return KP_OK;
}

kp_status kp_object_write(kp_object_out *w, const uint8_t *data, size_t len)
{
    KP_ENSURE(w != NULL && (len == 0 || data != NULL), KP_ERR_INVALID_ARG);
    const kp_dispatch *d = kp__plugin_fn(w->inst->plugin, KP_FN_OB_WRITE);
    if (w->failed)
        return kp__set_error(w->inst->ctx, KP_ERR_INVALID_ARG, "%s: a write to %s after one failed",
                             w->inst->name, w->where);
    if (len == 0)
        return KP_OK;
    kp__clear_error(w->inst->ctx);
    kp_status st = kp_dispatch_ob_write(d)(w->inst->inst, w->w, data, len);
    if (st != KP_OK) {
        w->failed = true;
        if (kp_ctx_last_error(w->inst->ctx)[0] == '\0')
            kp__set_error(w->inst->ctx, st, "%s: writing %s failed: %s", w->inst->name, w->where,
                          kp_strerror(st));
        return st;
    }
    w->written += len;
    return KP_OK;
}

/* OB_CLOSE, the audit event of the object's creation (or of its abandonment), the writer
 * freed. An abandoned write keeps the reason it was abandoned as the context's error text. */
static kp_status s_close(kp_object_out *w, bool commit)
{
    kp_instance *inst = w->inst;
    const kp_dispatch *d = kp__plugin_fn(inst->plugin, KP_FN_OB_CLOSE);
    char keep[KP_ERROR_MAX];
    snprintf(keep, sizeof(keep), "%s", kp_ctx_last_error(inst->ctx));
    kp__clear_error(inst->ctx);
    kp_status st = kp_dispatch_ob_close(d)(inst->inst, w->w, commit ? 1 : 0);
    st = kp__inst_audit(inst, commit ? "object.commit" : "object.abort", w->where, 0, 0, st);
    if (!commit && keep[0] != '\0')
        (void)kp__set_error(inst->ctx, KP_ERR_IO, "%s", keep);
    free(w->where);
    free(w);
    return commit ? st : KP_OK;
}

kp_status kp_object_commit(kp_object_out *w)
{
    KP_ENSURE(w != NULL, KP_ERR_INVALID_ARG);
    if (w->failed) {
        kp_status st = kp__set_error(w->inst->ctx, KP_ERR_INVALID_ARG,
                                     "%s: %s cannot be committed after a failed write",
                                     w->inst->name, w->where);
        (void)s_close(w, false);
        return st;
    }
    return s_close(w, true);
}

void kp_object_abort(kp_object_out *w)
{
    if (w != NULL)
        (void)s_close(w, false);
}

typedef struct s_stat_args {
    kp_instance *inst;
    kp_meta_visit_fn visit;
    void *arg;
    bool bad;
    int calls;
} s_stat_args;

static kp_status s_stat_visit(void *arg, const kp_meta *meta, size_t nmeta)
{
    s_stat_args *a = arg;
    a->calls++;
    for (size_t i = 0; i < nmeta; i++)
        if (meta == NULL || !s_meta_ok(&meta[i])) {
            a->bad = true;
            return KP_ERR_PLUGIN;
        }
    return a->visit != NULL ? a->visit(a->arg, meta, nmeta) : KP_OK;
}

kp_status kp_object_stat(kp_instance *inst, const char *where, kp_object_info *info,
                         kp_meta_visit_fn visit, void *arg)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(info != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, where, KP_FN_OB_STAT, &d));
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    s_stat_args a = {.inst = inst, .visit = visit, .arg = arg};
    kp_status st = kp_dispatch_ob_stat(d)(inst->inst, where, info, s_stat_visit, &a);
    if (a.bad)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: OB_STAT gave metadata kp_meta does not "
                           "allow",
                           inst->name, inst->plugin->name);
    else if (st == KP_OK && (strnlen(info->tag, sizeof(info->tag)) == sizeof(info->tag) ||
                             info->struct_size != sizeof(*info)))
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: OB_STAT's tag is not a string", inst->name,
                           inst->plugin->name);
    return kp__inst_audit(inst, "object.open", where, 0, 0, st);
}

kp_status kp_object_read(kp_instance *inst, const char *where, const char *tag, uint64_t offset,
                         uint8_t *buf, size_t *len)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(len != NULL && (*len == 0 || buf != NULL), KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, where, KP_FN_OB_READ, &d));
    size_t cap = *len;
    kp_status st = kp_dispatch_ob_read(d)(inst->inst, where, tag, offset, buf, len);
    st = kp__inst_len_check(inst, "OB_READ", st, cap, *len);
    if (st != KP_OK && kp_ctx_last_error(inst->ctx)[0] == '\0')
        kp__set_error(inst->ctx, st, "%s: reading %s failed: %s", inst->name, where,
                      kp_strerror(st));
    if (st != KP_OK)
        *len = 0;
    return st;
}
