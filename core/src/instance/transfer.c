/*
 * The negotiated key transfer between two keystores (KS_IMPORT_OFFER, KS_EXPORT_WRAPPED,
 * KS_IMPORT_WRAPPED): the target names a wrapping key and the methods it takes, the source
 * wraps its key under it (inside the HSM where the source is one), the target imports with the
 * fingerprint the key must have. One shape serves Azure Key Vault BYOK, AWS KMS import tokens,
 * Vault transit and GCP import jobs; only the method differs.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "instance/call.h"

/* Preference order when both sides share several: SHA-256 OAEP before SHA-1. RSA-OAEP without
 * AES takes only symmetric keys, so it is never chosen for a protector. */
static const uint32_t s_methods[] = {KP_KEYX_RSA_AES_KWP_SHA256, KP_KEYX_RSA_AES_KWP_SHA1};
static const uint32_t s_known =
    KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1) | KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256) |
    KP_KEYX_BIT(KP_KEYX_RSA_OAEP_SHA1) | KP_KEYX_BIT(KP_KEYX_RSA_OAEP_SHA256);

static bool s_rsa_spki(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    EVP_PKEY *k = len <= LONG_MAX ? d2i_PUBKEY(NULL, &p, (long)len) : NULL;
    bool ok = k != NULL && EVP_PKEY_is_a(k, "RSA") && p == der + len;
    EVP_PKEY_free(k);
    return ok;
}

uint32_t kp_key_transfer_method(const kp_instance *src, const kp_instance *dst)
{
    if (src == NULL || dst == NULL || kp__plugin_fn(src->plugin, KP_FN_KS_EXPORT_WRAPPED) == NULL ||
        kp__plugin_fn(dst->plugin, KP_FN_KS_IMPORT_OFFER) == NULL)
        return 0;
    uint32_t both = src->info.export_keyx & dst->info.import_keyx;
    for (size_t i = 0; i < sizeof(s_methods) / sizeof(s_methods[0]); i++)
        if (both & KP_KEYX_BIT(s_methods[i]))
            return s_methods[i];
    return 0;
}

kp_status kp_key_import_offer(kp_instance *inst, const kp_key_spec *spec, uint32_t *methods,
                              int64_t *expires, uint8_t **spki, size_t *spki_len, uint8_t **token,
                              size_t *token_len)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(spec != NULL && spec->name != NULL && methods != NULL && expires != NULL &&
                  spki != NULL && spki_len != NULL && token != NULL && token_len != NULL,
              KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_IMPORT_OFFER, "wrapped import", &d));
    *spki = *token = NULL;
    kp_key_spec sp;
    KP_GUARD(kp__spec_copy(inst, spec, &sp));
    /* Room for an RSA-4096 SPKI and a token as long as a KMS import token. */
    size_t cap_spki = 1024, cap_token = 2048;
    kp_status st = KP_OK;
    uint8_t *b1 = NULL, *b2 = NULL;
    for (int round = 0; round < 2; round++) {
        b1 = malloc(cap_spki);
        b2 = malloc(cap_token);
        if (b1 == NULL || b2 == NULL) {
            free(b1); /* one of the two may have been allocated */
            free(b2);
            st = KP_ERR_NOMEM;
            break;
        }
        kp_import_offer o = {.struct_size = sizeof(o),
                             .wrapping_spki = b1,
                             .wrapping_spki_len = cap_spki,
                             .token = b2,
                             .token_len = cap_token};
        st = kp_dispatch_ks_import_offer(d)(inst->inst, &sp, &o);
        /* both buffers go by the convention together */
        bool fits = o.wrapping_spki_len <= cap_spki && o.token_len <= cap_token;
        if ((st == KP_OK && !fits) || (st == KP_ERR_BUFFER_TOO_SMALL && fits))
            st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                               "%s: plugin %s broke the ABI: KS_IMPORT_OFFER answered %s with "
                               "lengths %zu/%zu for buffers of %zu/%zu",
                               inst->name, inst->plugin->name, kp_status_name(st),
                               o.wrapping_spki_len, o.token_len, cap_spki, cap_token);
        if (st == KP_OK && (o.wrapping_spki_len == 0 || o.methods == 0 || (o.methods & ~s_known)))
            st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                               "%s: plugin %s offered no wrapping key or unknown methods (0x%x)",
                               inst->name, inst->plugin->name, o.methods);
        /* The wrapping key is the target's word: check it here, so that garbage is blamed on
         * the store that offered it, not on the source that cannot wrap under it. */
        if (st == KP_OK && !s_rsa_spki(b1, o.wrapping_spki_len))
            st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                               "%s: plugin %s offered a wrapping key that is not an RSA "
                               "SubjectPublicKeyInfo",
                               inst->name, inst->plugin->name);
        if (st == KP_OK) {
            *methods = o.methods;
            *expires = o.expires;
            *spki = b1;
            *spki_len = o.wrapping_spki_len;
            *token = b2;
            *token_len = o.token_len;
            b1 = b2 = NULL;
        } else if (st == KP_ERR_BUFFER_TOO_SMALL) {
            cap_spki = o.wrapping_spki_len > cap_spki ? o.wrapping_spki_len : cap_spki;
            cap_token = o.token_len > cap_token ? o.token_len : cap_token;
            if (cap_spki > KP__ANSWER_MAX || cap_token > KP__ANSWER_MAX)
                st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                                   "%s: plugin %s broke the ABI: KS_IMPORT_OFFER asked for "
                                   "%zu/%zu bytes",
                                   inst->name, inst->plugin->name, cap_spki, cap_token);
        }
        free(b1);
        free(b2);
        b1 = b2 = NULL;
        if (st != KP_ERR_BUFFER_TOO_SMALL)
            break;
    }
    if (st == KP_ERR_BUFFER_TOO_SMALL)
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN,
                           "%s: plugin %s broke the ABI: KS_IMPORT_OFFER asked for a bigger "
                           "buffer twice",
                           inst->name, inst->plugin->name);
    return kp__inst_audit(inst, "key.import_offer", sp.name, sp.version, 0, st);
}

typedef struct s_export_args {
    const kp_dispatch *d;
    const char *name;
    uint32_t version, method;
    const uint8_t *spki;
    size_t spki_len;
} s_export_args;

static kp_status s_export_fill(kp_instance *inst, const void *args, uint8_t *buf, size_t *len)
{
    const s_export_args *a = args;
    return kp_dispatch_ks_export_wrapped(a->d)(inst->inst, a->name, a->version, a->method, a->spki,
                                               a->spki_len, buf, len);
}

kp_status kp_key_export_wrapped(kp_instance *inst, const char *name, uint32_t version,
                                uint32_t method, const uint8_t *wrapping_spki, size_t spki_len,
                                uint8_t **blob, size_t *bloblen)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(blob != NULL && bloblen != NULL, KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_EXPORT_WRAPPED, "wrapped export", &d));
    if (name == NULL || wrapping_spki == NULL || spki_len == 0)
        return kp__set_error(inst->ctx, KP_ERR_INVALID_ARG,
                             "%s: a wrapped export needs a key name and a wrapping key",
                             inst->name);
    *blob = NULL;
    if (method >= 32 || !(inst->info.export_keyx & KP_KEYX_BIT(method))) {
        /* The plugin refuses an undeclared method itself (the ABI says so) and its reason may
         * be worth more than ours (a token whose key wrap is not RFC 5649). Asked with no room
         * for the blob, it can hand nothing out. */
        size_t none = 0;
        kp_status st = kp_dispatch_ks_export_wrapped(d)(inst->inst, name, version, method,
                                                        wrapping_spki, spki_len, NULL, &none);
        if (st != KP_ERR_UNSUPPORTED)
            kp__set_error(inst->ctx, KP_ERR_UNSUPPORTED,
                          "%s: plugin %s does not export keys by transfer method %u", inst->name,
                          inst->plugin->name, method);
        return kp__inst_audit(inst, "key.export_wrapped", name, version, 0, KP_ERR_UNSUPPORTED);
    }
    s_export_args a = {d, name, version, method, wrapping_spki, spki_len};
    /* An RSA-4096 wrapping key makes 512 bytes; PKCS#8 of RSA-4096 is under 2.5 KiB. */
    kp_status st = kp__inst_fill(inst, "KS_EXPORT_WRAPPED", s_export_fill, &a, 8192, blob, bloblen);
    if (st == KP_OK && *bloblen == 0) {
        kp_free(*blob);
        *blob = NULL;
        st = kp__set_error(inst->ctx, KP_ERR_PLUGIN, "%s: plugin %s exported an empty wrapped key",
                           inst->name, inst->plugin->name);
    }
    return kp__inst_audit(inst, "key.export_wrapped", name, version, 0, st);
}

kp_status kp_key_import_wrapped(kp_instance *inst, const kp_key_spec *spec, uint32_t method,
                                const uint8_t *token, size_t token_len, const uint8_t *blob,
                                size_t bloblen, kp_key_info *info)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(spec != NULL && spec->name != NULL && blob != NULL && bloblen > 0 && info != NULL,
              KP_ERR_INVALID_ARG);
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, KP_FN_KS_IMPORT_WRAPPED, "wrapped import", &d));
    kp_key_spec sp;
    KP_GUARD(kp__spec_copy(inst, spec, &sp));
    if (!kpk_fpr_valid(sp.fingerprint))
        return kp__set_error(inst->ctx, KP_ERR_INVALID_ARG,
                             "%s: a wrapped import needs the fingerprint the key must have",
                             inst->name);
    kp__key_info_init(info);
    kp_status st = kp__inst_made(inst, "KS_IMPORT_WRAPPED", &sp, info,
                                 kp_dispatch_ks_import_wrapped(d)(inst->inst, &sp, method, token,
                                                                  token_len, blob, bloblen, info));
    return kp__inst_audit(inst, "key.import_wrapped", sp.name,
                          st == KP_OK ? info->version : sp.version, 0, st);
}
