/*
 * Copying one key version from one keystore to another, the single path replicate, apply and
 * restore all take.
 *
 * When the source exports BYOK blobs and the target imports them (an HSM into Azure Key Vault),
 * the key travels wrapped under the target's key-exchange key: its private half is never in
 * this process in plaintext. Otherwise it is exported as PKCS#8 into a kp_secret and imported.
 * Either way the copy must have the source's fingerprint, or the copy is an error.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static kp_status s_byok(kp_instance *src, kp_instance *dst, const kp_key_spec *spec,
                        const char *fingerprint, kp_key_info *have)
{
    uint8_t *kek = NULL, *blob = NULL;
    size_t keklen = 0, bloblen = 0;
    char kek_id[KP_BACKEND_ID_MAX];
    kp_status st = kp_key_byok_kek(dst, spec->name, &kek, &keklen, kek_id);
    if (st == KP_OK)
        st = kp_key_export_byok(src, spec->name, spec->version, kek, keklen, &blob, &bloblen);
    if (st == KP_OK)
        st = kp_key_import_byok(dst, spec, kek_id, blob, bloblen, fingerprint, have);
    free(kek);
    free(blob); /* ciphertext under the KEK: not secret */
    return st;
}

kp_status kp__key_copy(kp_ctx *ctx, kp_instance *src, kp_instance *dst, const kp_key_spec *spec,
                       const char *fingerprint, kp_key_info *have)
{
    kp_status st;
    if (kp_key_can_byok(src, dst)) {
        st = s_byok(src, dst, spec, fingerprint, have);
    } else {
        kp_secret *pkcs8 = NULL;
        st = kp_key_export(src, spec->name, spec->version, &pkcs8);
        if (st == KP_OK)
            st = kp_key_import(dst, spec, pkcs8, have);
        kp_secret_free(pkcs8);
    }
    if (st == KP_OK && strcmp(have->fingerprint, fingerprint) != 0)
        st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                           "%s: the copy of %s v%u has fingerprint %.16s..., the source %.16s...",
                           kp_instance_name(dst), spec->name, spec->version, have->fingerprint,
                           fingerprint);
    return st;
}
