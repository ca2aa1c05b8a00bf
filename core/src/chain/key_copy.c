/*
 * Copying one key version from one keystore to another, the single path replicate, apply and
 * restore all take.
 *
 * When the source exports wrapped keys by a transfer method the target imports (an HSM into
 * Azure Key Vault or AWS KMS), the key travels wrapped under the target's wrapping key: its
 * private half is never in this process in plaintext. Otherwise it is exported as PKCS#8 into a
 * kp_secret, its public half is checked here against the expected fingerprint (a source whose
 * private key is not the version's never reaches the target), and it is imported. Either way the
 * expected fingerprint travels with the import, so the target refuses a different key before it
 * becomes visible, and the copy is checked again here.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "chain/chain.h"

/* Whether the PKCS#8 src exported holds the key of fingerprint want: KP_ERR_INTEGRITY naming
 * src and the version otherwise (no key material in the text). */
static kp_status s_pkcs8_is(kp_ctx *ctx, kp_instance *src, const kp_key_spec *sp,
                            const kp_secret *pkcs8)
{
    const unsigned char *p = kp_secret_cdata(pkcs8);
    size_t len = kp_secret_len(pkcs8);
    PKCS8_PRIV_KEY_INFO *p8 =
        p != NULL && len <= LONG_MAX ? d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len) : NULL;
    EVP_PKEY *pkey = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;
    char fpr[KPK_FPR_HEX] = "";
    kp_status st = pkey != NULL ? kpk_fpr_pkey(pkey, fpr) : KP_ERR_CRYPTO;
    EVP_PKEY_free(pkey);
    PKCS8_PRIV_KEY_INFO_free(p8); /* cleanses */
    ERR_clear_error();
    if (st != KP_OK)
        return kp__set_error(ctx, KP_ERR_INTEGRITY,
                             "%s: the export of %s v%u is not a private key whose fingerprint "
                             "can be checked: not copied",
                             kp_instance_name(src), sp->name, sp->version);
    if (strcmp(fpr, sp->fingerprint) != 0)
        return kp__set_error(ctx, KP_ERR_INTEGRITY,
                             "%s: the private key it exports as %s v%u has fingerprint %.16s..., "
                             "not the version's %.16s...: not copied (repair the source, or "
                             "restore it from another holder)",
                             kp_instance_name(src), sp->name, sp->version, fpr, sp->fingerprint);
    return KP_OK;
}

/* The target offers a wrapping key, the source wraps its key under it, the target imports. */
static kp_status s_wrapped(kp_ctx *ctx, kp_instance *src, kp_instance *dst, uint32_t method,
                           const kp_key_spec *spec, kp_key_info *have)
{
    uint8_t *spki = NULL, *token = NULL, *blob = NULL;
    size_t spki_len = 0, token_len = 0, bloblen = 0;
    uint32_t methods = 0;
    int64_t expires = 0;
    kp_status st =
        kp_key_import_offer(dst, spec, &methods, &expires, &spki, &spki_len, &token, &token_len);
    if (st == KP_OK && !(methods & KP_KEYX_BIT(method)))
        st = kp__set_error(ctx, KP_ERR_PLUGIN,
                           "%s: the import offer does not take the transfer method %u its "
                           "instance declared",
                           kp_instance_name(dst), method);
    if (st == KP_OK)
        st = kp_key_export_wrapped(src, spec->name, spec->version, method, spki, spki_len, &blob,
                                   &bloblen);
    if (st == KP_OK)
        st = kp_key_import_wrapped(dst, spec, method, token, token_len, blob, bloblen, have);
    kp_free(spki);
    kp_free(token);
    kp_free(blob); /* ciphertext under the target's wrapping key: not secret */
    return st;
}

kp_status kp__key_copy(kp_ctx *ctx, kp_instance *src, kp_instance *dst, const kp_key_info *want,
                       kp_key_info *have)
{
    const char *fingerprint = want->fingerprint;
    kp_key_spec sp = {.struct_size = sizeof(sp),
                      .name = want->name,
                      .type = want->type,
                      .bits = want->bits,
                      .flags = want->flags,
                      .version = want->version,
                      .fingerprint = fingerprint}; /* checked by the target before it is visible */
    kp_status st;
    uint32_t method = kp_key_transfer_method(src, dst);
    if (method != 0) {
        st = s_wrapped(ctx, src, dst, method, &sp, have);
    } else {
        kp_secret *pkcs8 = NULL;
        st = kp_key_export(src, sp.name, sp.version, &pkcs8);
        if (st == KP_OK)
            st = s_pkcs8_is(ctx, src, &sp, pkcs8);
        if (st == KP_OK)
            st = kp_key_import(dst, &sp, pkcs8, have);
        kp_secret_free(pkcs8);
    }
    if (st == KP_OK && strcmp(have->fingerprint, fingerprint) != 0)
        st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                           "%s: the copy of %s v%u has fingerprint %.16s..., the source %.16s...",
                           kp_instance_name(dst), sp.name, sp.version, have->fingerprint,
                           fingerprint);
    return st;
}
