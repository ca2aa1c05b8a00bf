/*
 * Imports into the KMS keystore (KMS developer guide, "Importing key material"; API reference
 * CreateKey, CreateAlias, GetParametersForImport, ImportKeyMaterial). A version is made in
 * four steps, each of which a rerun after a kill -9 picks up:
 *   1. claim: CreateKey (RSA_<bits>, ENCRYPT_DECRYPT, Origin EXTERNAL, tagged with the name,
 *      the version and the expected fingerprint), then CreateAlias of the version's alias. The
 *      alias is the claim: CreateAlias fails when it exists, so two runners never both hold
 *      version N. The loser's key keeps no alias and is tagged abandoned; a run killed between
 *      the two calls leaves such a key too. Neither claims a version, and nothing is ever
 *      scheduled for deletion: `keyplane check` lists them for a person to remove.
 *   2. GetParametersForImport (RSA_AES_KEY_WRAP_SHA_256, a 4096-bit wrapping key): the offer.
 *   3. ImportKeyMaterial with KEY_MATERIAL_DOES_NOT_EXPIRE: the PKCS#8 wrapped here
 *      (KS_IMPORT, kpk_keyx_wrap), or by the source itself (KS_IMPORT_WRAPPED: an HSM wraps
 *      inside the token, so the key is never in plaintext outside an HSM).
 *   4. GetPublicKey: the key KMS now holds must have the expected fingerprint. If not, the
 *      alias is removed and the key disabled, so no reader ever uses it.
 * Until step 3 the key is PendingImport, which readers do not see; a rerun finds the alias, the
 * tags saying the same fingerprint, and imports into that key. An import token lives 24 hours;
 * a plain import whose token lapsed asks for another once.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>

#include "aws_internal.h"

#define S_WRAPPING_ALG "RSA_AES_KEY_WRAP_SHA_256"
#define S_BLOB_MAX 8192 /* an RSA-4096 PKCS#8 wrapped: about 2.9 KiB */

/* The spec of a version to import: RSA of a KMS size, an exact version, the fingerprint (an
 * offer may come before it is known). */
static kp_status s_spec(kp_aws_inst *a, const kp_key_spec *sp, bool offer)
{
    if (sp->type != KP_KEY_RSA)
        return kp_aws_err(a, KP_ERR_UNSUPPORTED, "kms: the keystore holds RSA keys only");
    if (sp->bits != 2048 && sp->bits != 3072 && sp->bits != 4096)
        return kp_aws_err(a, KP_ERR_UNSUPPORTED,
                          "kms: RSA-%u; KMS holds RSA 2048, 3072 and 4096 keys", sp->bits);
    if ((sp->fingerprint == NULL && !offer) ||
        (sp->fingerprint != NULL && !kpk_fpr_valid(sp->fingerprint)))
        return kp_aws_err(a, KP_ERR_INVALID_ARG,
                          "kms: an import needs the expected fingerprint (64 lower-case hex "
                          "digits)");
    if (sp->version == 0)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "kms: an import needs its version");
    return KP_OK;
}

/* A new key for sp, tagged; its ARN into arn. */
static kp_status s_create_key(kp_aws_inst *a, const kp_key_spec *sp, const char *alias, char *arn,
                              size_t cap)
{
    char spec[16], version[16], desc[KP_NAME_MAX + 400];
    snprintf(spec, sizeof(spec), "RSA_%u", sp->bits);
    snprintf(version, sizeof(version), "%u", sp->version);
    snprintf(desc, sizeof(desc), "keyplane: %s v%u (imported; %s)", sp->name, sp->version, alias);
    json_t *j =
               json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}",
                         "KeySpec", spec, "KeyUsage", "ENCRYPT_DECRYPT", "Origin", "EXTERNAL",
                         "Description", desc, "Tags", "TagKey", KP_AWS_TAG_NAME, "TagValue",
                         sp->name, "TagKey", KP_AWS_TAG_VERSION, "TagValue", version, "TagKey",
                         KP_AWS_TAG_FPR, "TagValue", sp->fingerprint != NULL ? sp->fingerprint : "",
                         "TagKey", KP_AWS_TAG_ALIAS, "TagValue", alias),
           *out = NULL;
    if (j == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kp_status st = kp_aws_kms_call(a, "CreateKey", j, true, &out, NULL, 0);
    json_decref(j);
    const char *v = json_string_value(json_object_get(json_object_get(out, "KeyMetadata"), "Arn"));
    if (st == KP_OK && (v == NULL || strlen(v) >= cap))
        st = kp_aws_err(a, KP_ERR_BACKEND, "kms: CreateKey answered no key ARN");
    if (st == KP_OK)
        snprintf(arn, cap, "%s", v);
    json_decref(out);
    return st;
}

/* One call whose answer is not needed. */
static kp_status s_call(kp_aws_inst *a, const char *op, json_t *j, char *code, size_t codelen)
{
    json_t *out = NULL;
    kp_status st = j != NULL ? kp_aws_kms_call(a, op, j, true, &out, code, codelen)
                             : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    json_decref(j);
    json_decref(out);
    return st;
}

/* The version's key pending its import into k (created and claimed, or one an earlier run
 * claimed for this very key). KP_ERR_EXISTS when the version holds imported material already,
 * or another key claims it. */
static kp_status s_claim(kp_aws_inst *a, const kp_key_spec *sp, kp_aws_kms_key *k)
{
    char alias[300], arn[KP_AWS_ARN_MAX] = "", code[128] = "";
    KP_GUARD(kp_aws_kms_alias(a, sp->name, sp->version, alias, sizeof(alias)));
    kp_status st = kp_aws_kms_describe(a, alias, k);
    if (st == KP_ERR_NOT_FOUND) {
        st = s_create_key(a, sp, alias, arn, sizeof(arn));
        if (st == KP_OK)
            st = s_call(a, "CreateAlias",
                        json_pack("{s:s, s:s}", "AliasName", alias, "TargetKeyId", arn), code,
                        sizeof(code));
        if (st != KP_OK && strcmp(code, "AlreadyExistsException") == 0) {
            /* another runner claimed the version first: this key claims nothing */
            (void)s_call(a, "TagResource",
                         json_pack("{s:s, s:[{s:s, s:s}]}", "KeyId", arn, "Tags", "TagKey",
                                   "keyplane-abandoned", "TagValue", alias),
                         NULL, 0);
            st = KP_OK;
        } else if (st != KP_OK && arn[0] != '\0') {
            char why[KP_ERROR_MAX + 1];
            snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
            /* the key first: an action's line keeps 255 characters, an AWS message is longer */
            return kp_aws_err(a, st, "key %s is left without an alias (it claims no version): %s",
                              arn, why);
        }
        if (st == KP_OK)
            st = kp_aws_kms_describe(a, alias, k);
    }
    KP_GUARD(st);
    /* the claim's fingerprint: "" when an offer made it before the key was known */
    char tag[KPK_FPR_HEX + 8];
    KP_GUARD(kp_aws_kms_tag(a, k->arn, KP_AWS_TAG_FPR, tag, sizeof(tag)));
    if (tag[0] == '\0' && sp->fingerprint != NULL && strcmp(k->state, "PendingImport") == 0) {
        KP_GUARD(s_call(a, "TagResource",
                        json_pack("{s:s, s:[{s:s, s:s}]}", "KeyId", k->arn, "Tags", "TagKey",
                                  KP_AWS_TAG_FPR, "TagValue", sp->fingerprint),
                        NULL, 0));
        snprintf(tag, sizeof(tag), "%s", sp->fingerprint);
    }
    if (sp->fingerprint != NULL && strcmp(tag, sp->fingerprint) != 0)
        return kp_aws_err(a, KP_ERR_EXISTS,
                          "kms (%s): %s v%u is claimed by key %s for another key (fingerprint "
                          "%.16s...)",
                          a->region, sp->name, sp->version, k->arn, tag[0] != '\0' ? tag : "none");
    if (strcmp(k->state, "PendingImport") != 0)
        return kp_aws_err(a, KP_ERR_EXISTS, "kms (%s): %s v%u exists (key %s, %s)", a->region,
                          sp->name, sp->version, k->arn, k->state);
    char spec[16];
    snprintf(spec, sizeof(spec), "RSA_%u", sp->bits);
    if (strcmp(k->spec, spec) != 0 || strcmp(k->origin, "EXTERNAL") != 0)
        return kp_aws_err(a, KP_ERR_EXISTS,
                          "kms (%s): %s v%u is claimed by key %s, a %s key of origin %s, not an "
                          "%s key to import into",
                          a->region, sp->name, sp->version, k->arn, k->spec, k->origin, spec);
    return KP_OK;
}

/* GetParametersForImport of arn: the wrapping key and the token (malloc'ed), their lapse. */
static kp_status s_params(kp_aws_inst *a, const char *arn, uint8_t **spki, size_t *spki_len,
                          uint8_t **token, size_t *token_len, int64_t *expires)
{
    *spki = *token = NULL;
    json_t *j = json_pack("{s:s, s:s, s:s}", "KeyId", arn, "WrappingAlgorithm", S_WRAPPING_ALG,
                          "WrappingKeySpec", "RSA_4096"),
           *out = NULL;
    kp_status st = j != NULL ? kp_aws_kms_call(a, "GetParametersForImport", j, true, &out, NULL, 0)
                             : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    json_decref(j);
    const char *pk = json_string_value(json_object_get(out, "PublicKey"));
    const char *tk = json_string_value(json_object_get(out, "ImportToken"));
    kp_status dec = st == KP_OK && pk != NULL && tk != NULL ? KP_OK : KP_ERR_BACKEND;
    if (dec == KP_OK)
        dec = kpk_b64_decode_alloc(pk, strlen(pk), spki, spki_len);
    if (dec == KP_OK)
        dec = kpk_b64_decode_alloc(tk, strlen(tk), token, token_len);
    if (st == KP_OK && (dec != KP_OK || *spki_len == 0 || *token_len == 0))
        st = kp_aws_err(a, KP_ERR_BACKEND,
                        "kms: GetParametersForImport answered no wrapping key or token");
    if (st == KP_OK)
        *expires = (int64_t)json_number_value(json_object_get(out, "ParametersValidTo"));
    json_decref(out);
    if (st != KP_OK) {
        free(*spki);
        free(*token);
        *spki = *token = NULL;
    }
    return st;
}

/* ImportKeyMaterial of blob with token into arn, the material never to expire. */
static kp_status s_material(kp_aws_inst *a, const char *arn, const uint8_t *token, size_t token_len,
                            const uint8_t *blob, size_t bloblen)
{
    char *tb = NULL, *bb = NULL, code[128] = "";
    kp_status st = kpk_b64_encode_alloc(token, token_len, false, &tb);
    if (st == KP_OK)
        st = kpk_b64_encode_alloc(blob, bloblen, false, &bb);
    if (st != KP_OK) {
        free(tb);
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    }
    st = s_call(a, "ImportKeyMaterial",
                json_pack("{s:s, s:s, s:s, s:s}", "KeyId", arn, "ImportToken", tb,
                          "EncryptedKeyMaterial", bb, "ExpirationModel",
                          "KEY_MATERIAL_DOES_NOT_EXPIRE"),
                code, sizeof(code));
    free(tb);
    free(bb);
    if (strcmp(code, "ExpiredImportTokenException") == 0 ||
        strcmp(code, "InvalidImportTokenException") == 0)
        return kp_aws_err(a, KP_ERR_CONFLICT,
                          "kms (%s): the import offer of %s lapsed (%s): import again", a->region,
                          arn, code);
    if (strcmp(code, "InvalidCiphertextException") == 0)
        return kp_aws_err(a, KP_ERR_CRYPTO,
                          "kms (%s): the wrapped key does not open under the offer's wrapping key",
                          a->region);
    if (strcmp(code, "IncorrectKeyMaterialException") == 0)
        return kp_aws_err(a, KP_ERR_INTEGRITY,
                          "kms (%s): KMS refused the key material for %s (another key than the "
                          "one it was made for)",
                          a->region, arn);
    return st;
}

/* Step 4: the key now in k->arn must be the expected one; info receives it. Otherwise no
 * reader may find it: its alias goes, the key is disabled. */
static kp_status s_verify(kp_aws_inst *a, const kp_key_spec *sp, kp_aws_kms_key *k,
                          kp_key_info *info)
{
    char alias[300];
    KP_GUARD(kp_aws_kms_alias(a, sp->name, sp->version, alias, sizeof(alias)));
    char arn[KP_AWS_ARN_MAX];
    snprintf(arn, sizeof(arn), "%s", k->arn);
    KP_GUARD(kp_aws_kms_describe(a, arn, k));
    kp_key_info got;
    kp_status st = kp_aws_kms_info(a, sp->name, sp->version, k, &got);
    if (st == KP_OK && got.state == KP_KEY_ENABLED &&
        strcmp(got.fingerprint, sp->fingerprint) == 0) {
        kp_key_info_put(info, &got);
        return kp_aws_kms_pin(a, alias, k->arn, true); /* the key this import made and checked */
    }
    if (st == KP_OK && got.state != KP_KEY_ENABLED)
        return kp_aws_err(a, KP_ERR_BACKEND, "kms (%s): %s v%u is %s after its import", a->region,
                          sp->name, sp->version, k->state);
    if (st != KP_OK)
        return st;
    (void)s_call(a, "DeleteAlias", json_pack("{s:s}", "AliasName", alias), NULL, 0);
    (void)s_call(a, "DisableKey", json_pack("{s:s}", "KeyId", k->arn), NULL, 0);
    return kp_aws_err(a, KP_ERR_INTEGRITY,
                      "kms (%s): the key imported as %s v%u has fingerprint %.16s..., not the "
                      "expected %.16s...: its alias is removed and key %s disabled",
                      a->region, sp->name, sp->version, got.fingerprint, sp->fingerprint, k->arn);
}

/* The PKCS#8's RSA size and fingerprint; KP_ERR_INVALID_ARG when it is not an RSA key. */
static kp_status s_pkcs8(kp_aws_inst *a, const kp_secret *p8, uint32_t *bits, char *fpr)
{
    const unsigned char *p = a->up->secret_cdata(p8);
    size_t len = a->up->secret_len(p8);
    PKCS8_PRIV_KEY_INFO *inf =
        len > 0 && len <= LONG_MAX ? d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len) : NULL;
    EVP_PKEY *k = inf != NULL ? EVP_PKCS82PKEY(inf) : NULL;
    kp_status st = k != NULL && EVP_PKEY_is_a(k, "RSA") ? kpk_fpr_pkey(k, fpr) : KP_ERR_INVALID_ARG;
    *bits = k != NULL ? (uint32_t)EVP_PKEY_get_bits(k) : 0;
    EVP_PKEY_free(k);
    PKCS8_PRIV_KEY_INFO_free(inf); /* cleanses */
    ERR_clear_error();
    if (st != KP_OK)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "kms: the key to import is not an RSA PKCS#8 key");
    return KP_OK;
}

/* Steps 2 and 3 of a plain import: the PKCS#8 wrapped here under a fresh offer. */
static kp_status s_import_plain(kp_aws_inst *a, const kp_aws_kms_key *k, const kp_secret *p8)
{
    kp_status st = KP_OK;
    for (int round = 0; round < 2; round++) {
        uint8_t *spki = NULL, *token = NULL, *blob = malloc(S_BLOB_MAX);
        size_t spki_len = 0, token_len = 0, bloblen = S_BLOB_MAX;
        int64_t expires = 0;
        st = blob != NULL ? s_params(a, k->arn, &spki, &spki_len, &token, &token_len, &expires)
                          : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
        if (st == KP_OK)
            st = kpk_keyx_wrap(a->up, a->h, KP_KEYX_RSA_AES_KWP_SHA256, spki, spki_len, p8, blob,
                               &bloblen);
        if (st == KP_OK)
            st = s_material(a, k->arn, token, token_len, blob, bloblen);
        free(spki);
        free(token);
        free(blob); /* ciphertext under KMS's wrapping key: not secret */
        if (st != KP_ERR_CONFLICT)
            break; /* a lapsed token: one more offer */
    }
    return st;
}

kp_status kp_aws_kms_ks_import(void *inst, const kp_key_spec *in, const kp_secret *pkcs8_der,
                               kp_key_info *info)
{
    kp_aws_inst *a = inst;
    kp_key_spec sp;
    KP_ENSURE(a != NULL && kp_key_spec_read(in, &sp) && sp.name != NULL && pkcs8_der != NULL &&
                  info != NULL,
              KP_ERR_INVALID_ARG);
    uint32_t bits = 0;
    char fpr[KPK_FPR_HEX];
    KP_GUARD(s_pkcs8(a, pkcs8_der, &bits, fpr));
    if (sp.bits != 0 && sp.bits != bits)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "kms: the key to import is RSA-%u, not RSA-%u",
                          bits, sp.bits);
    if (sp.fingerprint != NULL && strcmp(sp.fingerprint, fpr) != 0)
        return kp_aws_err(a, KP_ERR_INTEGRITY,
                          "kms: the key to import has fingerprint %.16s..., not the expected "
                          "%.16s...",
                          fpr, sp.fingerprint);
    sp.bits = bits;
    sp.fingerprint = fpr; /* an import by hand expects the key it is given */
    kp_aws_kms_key k;
    kp_aws_begin(a, false);
    kp_status st = KP_OK;
    if (sp.version == 0) { /* the next free version */
        kp_aws_vlist l = {0};
        st = kp_aws_kms_versions(a, sp.name, &l);
        sp.version = kp_aws_vlist_last(&l, sp.name) + 1;
        kp_aws_vlist_free(&l);
    }
    if (st == KP_OK)
        st = s_spec(a, &sp, false);
    if (st == KP_OK)
        st = s_claim(a, &sp, &k);
    if (st == KP_OK)
        st = s_import_plain(a, &k, pkcs8_der);
    if (st == KP_OK)
        st = s_verify(a, &sp, &k, info);
    kp_aws_end(a);
    return st;
}

kp_status kp_aws_kms_ks_import_offer(void *inst, const kp_key_spec *in, kp_import_offer *offer)
{
    kp_aws_inst *a = inst;
    kp_key_spec sp;
    KP_ENSURE(a != NULL && kp_key_spec_read(in, &sp) && sp.name != NULL && offer != NULL &&
                  offer->struct_size >= sizeof(*offer),
              KP_ERR_INVALID_ARG);
    KP_GUARD(s_spec(a, &sp, true));
    kp_aws_kms_key k;
    uint8_t *spki = NULL, *token = NULL;
    size_t spki_len = 0, token_len = 0;
    int64_t expires = 0;
    kp_aws_begin(a, false);
    kp_status st = s_claim(a, &sp, &k);
    if (st == KP_OK)
        st = s_params(a, k.arn, &spki, &spki_len, &token, &token_len, &expires);
    kp_aws_end(a);
    if (st == KP_OK) {
        bool fits = offer->wrapping_spki != NULL && offer->wrapping_spki_len >= spki_len &&
                    offer->token != NULL && offer->token_len >= token_len;
        if (fits) {
            memcpy(offer->wrapping_spki, spki, spki_len);
            memcpy(offer->token, token, token_len);
            offer->methods = KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256);
            offer->expires = expires;
        } else {
            st = kp_aws_err(a, KP_ERR_BUFFER_TOO_SMALL, "the import offer needs %zu/%zu bytes",
                            spki_len, token_len);
        }
        offer->wrapping_spki_len = spki_len;
        offer->token_len = token_len;
    }
    free(spki);
    free(token);
    return st;
}

kp_status kp_aws_kms_ks_import_wrapped(void *inst, const kp_key_spec *in, uint32_t method,
                                       const uint8_t *token, size_t token_len, const uint8_t *blob,
                                       size_t bloblen, kp_key_info *info)
{
    kp_aws_inst *a = inst;
    kp_key_spec sp;
    KP_ENSURE(a != NULL && kp_key_spec_read(in, &sp) && sp.name != NULL && token != NULL &&
                  blob != NULL && info != NULL,
              KP_ERR_INVALID_ARG);
    if (method != KP_KEYX_RSA_AES_KWP_SHA256)
        return kp_aws_err(a, KP_ERR_UNSUPPORTED,
                          "kms: transfer method %u; the offer takes RSA_AES_KEY_WRAP_SHA_256",
                          method);
    KP_GUARD(s_spec(a, &sp, false));
    kp_aws_kms_key k;
    kp_aws_begin(a, false);
    kp_status st = s_claim(a, &sp, &k);
    if (st == KP_OK)
        st = s_material(a, k.arn, token, token_len, blob, bloblen);
    if (st == KP_OK)
        st = s_verify(a, &sp, &k, info);
    kp_aws_end(a);
    return st;
}
