/*
 * How the core calls an instance's functions: the lookup that turns a missing capability into
 * one clear line, the audit event every operation leaves, and the buffer convention with the
 * core's defences against a plugin that breaks it (a length larger than the buffer it was given
 * would make the core read past that buffer).
 */
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "base/audit.h"
#include "base/util.h"
#include "instance/call.h"

kp_status kp__inst_fn(kp_instance *inst, uint32_t cap, uint32_t id, const char *op,
                      const kp_dispatch **d)
{
    KP_ENSURE(inst != NULL, KP_ERR_INVALID_ARG);
    kp__clear_error(inst->ctx);
    if ((inst->info.capabilities & cap) == 0 || (*d = kp__plugin_fn(inst->plugin, id)) == NULL) {
        /* a keystore that only imports (a cloud KMS): say how keys get there */
        bool imports = id == KP_FN_KS_CREATE && (inst->info.capabilities & KP_CAP_KEYSTORE) &&
                       kp__plugin_fn(inst->plugin, KP_FN_KS_IMPORT) != NULL;
        return kp__set_error(inst->ctx, KP_ERR_UNSUPPORTED, "%s: plugin %s does not support %s%s",
                             inst->name, inst->plugin->name, op,
                             imports ? ": keys come to it by import ('keyplane key import', or "
                                       "'keyplane apply' from the chain's origin)"
                                     : "");
    }
    return KP_OK;
}

static kp_status s_audit(kp_instance *inst, kp_audit_event *ev)
{
    kp_status st = ev->status;
    if (st == KP_OK)
        kp__clear_error(inst->ctx); /* a plugin may have said "buffer too small" on the way */
    else if (kp_ctx_last_error(inst->ctx)[0] == '\0')
        kp__set_error(inst->ctx, st, "%s: %s failed: %s", inst->name, ev->op, kp_strerror(st));
    ev->instance = inst->name;
    ev->plugin = inst->plugin->name;
    ev->detail = st != KP_OK ? kp_ctx_last_error(inst->ctx) : NULL;
    kp__audit(inst->ctx, ev);
    return st;
}

kp_status kp__inst_audit(kp_instance *inst, const char *op, const char *name, uint32_t version,
                         uint32_t alg, kp_status st)
{
    kp_audit_event ev = {.op = op,
                         .name = name,
                         .version = version,
                         .alg = alg != 0 ? kp_wrap_alg_name(alg) : NULL,
                         .status = st};
    return s_audit(inst, &ev);
}

kp_status kp__inst_audit_to(kp_instance *inst, const char *op, const char *name, const char *to,
                            kp_status st)
{
    kp_audit_event ev = {.op = op, .name = name, .to = to, .status = st};
    return s_audit(inst, &ev);
}

kp_status kp__inst_len_check(kp_instance *inst, const char *fn, kp_status st, size_t cap,
                             size_t len)
{
    if (st == KP_OK && len > cap)
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s broke the ABI: %s returned %zu bytes into a buffer "
                             "of %zu",
                             inst->name, inst->plugin->name, fn, len, cap);
    if (st == KP_ERR_BUFFER_TOO_SMALL && len <= cap)
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s broke the ABI: %s asked for %zu bytes with %zu "
                             "offered",
                             inst->name, inst->plugin->name, fn, len, cap);
    return st;
}

/* One call of fill with a buffer of cap bytes: KP_OK with the answer in *out, or
 * KP_ERR_BUFFER_TOO_SMALL with the size asked for in *len, or the failure. */
static kp_status s_fill_once(kp_instance *inst, const char *fn, kp__inst_fill_fn fill,
                             const void *args, size_t cap, uint8_t **out, size_t *len)
{
    uint8_t *buf = malloc(cap > 0 ? cap : 1);
    KP_ENSURE(buf != NULL, KP_ERR_NOMEM);
    *len = cap;
    kp_status st = fill(inst, args, buf, len); /* sets len: call it before reading len */
    st = kp__inst_len_check(inst, fn, st, cap, *len);
    if (st == KP_OK)
        *out = buf;
    else
        free(buf);
    return st;
}

kp_status kp__inst_fill(kp_instance *inst, const char *fn, kp__inst_fill_fn fill, const void *args,
                        size_t first, uint8_t **out, size_t *outlen)
{
    /* Two calls at most: the first with a buffer that fits the usual answer, the second with
     * the size the plugin asked for. A plugin that asks again has broken the convention. */
    size_t len = first;
    kp_status st = KP_ERR_BUFFER_TOO_SMALL;
    for (int round = 0; round < 2 && st == KP_ERR_BUFFER_TOO_SMALL; round++) {
        st = s_fill_once(inst, fn, fill, args, len, out, &len);
        if (st == KP_ERR_BUFFER_TOO_SMALL && len > KP__ANSWER_MAX)
            st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                               "%s: plugin %s broke the ABI: %s asked for %zu bytes (at most %u)",
                               inst->name, inst->plugin->name, fn, len, KP__ANSWER_MAX);
    }
    if (st == KP_ERR_BUFFER_TOO_SMALL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: %s asked for a bigger buffer twice",
                           inst->name, inst->plugin->name, fn);
    if (st == KP_OK)
        *outlen = len;
    return st;
}

kp_status kp__inst_key_info(kp_instance *inst, const char *fn, const kp_key_info *in,
                            kp_key_info *out)
{
    kp_key_info tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (in->struct_size < offsetof(kp_key_info, backend_id) || in->struct_size > (1u << 16))
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s broke the ABI: %s gave a key info of %u bytes",
                             inst->name, inst->plugin->name, fn, in->struct_size);
    memcpy(&tmp, in, in->struct_size < sizeof(tmp) ? in->struct_size : sizeof(tmp));
    tmp.struct_size = sizeof(tmp);
    /* Strings that do not end inside their arrays are refused, not cut: a cut fingerprint is a
     * different fingerprint. */
    if (memchr(tmp.name, '\0', sizeof(tmp.name)) == NULL ||
        memchr(tmp.fingerprint, '\0', sizeof(tmp.fingerprint)) == NULL ||
        (in->struct_size >= offsetof(kp_key_info, backend_id) + sizeof(tmp.backend_id) &&
         memchr(tmp.backend_id, '\0', sizeof(tmp.backend_id)) == NULL))
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s broke the ABI: %s gave an unterminated name, "
                             "fingerprint or backend id",
                             inst->name, inst->plugin->name, fn);
    tmp.backend_id[KP_BACKEND_ID_MAX - 1] = '\0';
    /* the backend id and the gap (ABI 1.2) are the plugin's words, shown on a terminal: cut and
     * made printable */
    tmp.gap[KP_GAP_MAX - 1] = '\0';
    kp__printable(tmp.gap);
    kp__printable(tmp.backend_id);
    if (tmp.type != KP_KEY_RSA && tmp.type != KP_KEY_AES)
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s returned an unknown key type %u for %s v%u", inst->name,
                             inst->plugin->name, tmp.type, tmp.name, tmp.version);
    /* A malformed fingerprint is the plugin's fault, not a different key: say so, so that
     * nobody is told a healthy store holds the wrong key. */
    if (tmp.type == KP_KEY_RSA && !kpk_fpr_valid(tmp.fingerprint))
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s returned a malformed fingerprint for %s v%u "
                             "(want 64 lower-case hex digits)",
                             inst->name, inst->plugin->name, tmp.name, tmp.version);
    if (tmp.version == 0)
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s returned version 0 for %s (versions start at 1)",
                             inst->name, inst->plugin->name, tmp.name);
    *out = tmp;
    return KP_OK;
}

kp_status kp__spec_copy(kp_instance *inst, const kp_key_spec *in, kp_key_spec *out)
{
    /* The plugin always sees this core's full spec (kp_key_spec_read, as plugins read it); a
     * struct_size of 0 stands for the library's own size (callers that zero-initialise). */
    kp_key_spec whole;
    if (in->struct_size == 0) {
        whole = *in;
        whole.struct_size = sizeof(whole);
        in = &whole;
    }
    if (!kp_key_spec_read(in, out))
        return kp__set_error(inst->ctx, KP_ERR_INVALID_ARG,
                             "%s: a key spec of %u bytes (struct_size) is too short", inst->name,
                             in->struct_size);
    if (out->name == NULL)
        return kp__set_error(inst->ctx, KP_ERR_INVALID_ARG, "%s: a key spec needs a name",
                             inst->name);
    return KP_OK;
}

void kp__key_info_init(kp_key_info *info)
{
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
}

kp_status kp__inst_made(kp_instance *inst, const char *fn, const kp_key_spec *spec,
                        kp_key_info *info, kp_status st)
{
    if (st != KP_OK)
        return st;
    kp_key_info got;
    KP_GUARD(kp__inst_key_info(inst, fn, info, &got));
    *info = got;
    if (strcmp(info->name, spec->name) != 0 ||
        (spec->version != 0 && info->version != spec->version))
        return kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                             "%s: plugin %s broke the ABI: %s of %s v%u made %s v%u", inst->name,
                             inst->plugin->name, fn, spec->name, spec->version, info->name,
                             info->version);
    /* the plugin checked an import's fingerprint; the core checks again rather than trust one
     * side */
    if (spec->fingerprint != NULL && strcmp(info->fingerprint, spec->fingerprint) != 0)
        return kp__set_error(inst->ctx, KP_ERR_INTEGRITY,
                             "%s: the imported %s v%u has fingerprint %.16s..., not %.16s...",
                             inst->name, spec->name, info->version, info->fingerprint,
                             spec->fingerprint);
    return KP_OK;
}
