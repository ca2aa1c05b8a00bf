/*
 * Imports into the vault: a PKCS#8 key as a plain JWK (KS_IMPORT), and the negotiated wrapped
 * import (KS_IMPORT_OFFER, KS_IMPORT_WRAPPED), which is Key Vault's BYOK: the offer is a
 * key-exchange key of this vault (RSA-HSM, key_ops ["import"]) and its versioned kid is the
 * token; the blob (KP_KEYX_RSA_AES_KWP_SHA1: RSA-OAEP-SHA-1 part, then RFC 5649 part) travels
 * as the ciphertext of a .byok transfer file in key_hsm (Key Vault BYOK specification, key_hsm), so
 * the private key is never in plaintext outside the HSMs. Both imports go through
 * kp_akv_version_make (akv_create.c): the fingerprint is checked before the version becomes
 * visible.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akv_internal.h"

#define S_KEK_BITS 3072

/* An expected fingerprint, when given, must be well formed. */
static kp_status s_fpr_arg(kp_akv_inst *a, const char *fpr)
{
    if (fpr != NULL && !kpk_fpr_valid(fpr))
        return kp_akv_err(a, KP_ERR_INVALID_ARG,
                          "the expected fingerprint is not 64 lower-case hex digits");
    return KP_OK;
}

/* The rules of a key about to be imported (the spec's name and key rules, an expected
 * fingerprint well formed): vname receives the vault key name. */
static kp_status s_import_spec(kp_akv_inst *a, const kp_key_spec *spec, char vname[KP_NAME_MAX])
{
    KP_GUARD(s_fpr_arg(a, spec->fingerprint));
    return kp_akv_rule_spec(a, spec->name, spec->type, spec->bits, vname);
}

/* The JWK of the PKCS#8 key to import into key (bits and fingerprint out), checked against the
 * spec before anything is sent. */
static kp_status s_import_jwk(kp_akv_inst *a, const kp_key_spec *spec, const kp_secret *pkcs8,
                              json_t *key, char fpr[KPK_FPR_HEX])
{
    uint32_t bits = 0;
    if (kp_akv_jwk_from_pkcs8(a->up->secret_cdata(pkcs8), a->up->secret_len(pkcs8), key, &bits,
                              fpr) != KP_OK)
        return kp_akv_err(a, KP_ERR_INVALID_ARG, "the key to import is not an RSA PKCS#8 key");
    if (spec->bits != 0 && spec->bits != bits)
        return kp_akv_err(a, KP_ERR_INVALID_ARG, "the key to import is RSA-%u, not RSA-%u", bits,
                          spec->bits);
    KP_GUARD(kp_akv_rule_key(KP_AKV_SINK(a), a->place.vault_name, spec->type, bits));
    /* the key in hand is not the one expected: nothing is sent */
    if (spec->fingerprint != NULL && strcmp(fpr, spec->fingerprint) != 0)
        return kp_akv_err(a, KP_ERR_INTEGRITY,
                          "%s: the key to import has fingerprint %.16s..., not the expected "
                          "%.16s...",
                          a->place.vault_name, fpr, spec->fingerprint);
    return KP_OK;
}

kp_status kp_akv_ks_import(void *inst, const kp_key_spec *in, const kp_secret *pkcs8_der,
                           kp_key_info *info)
{
    kp_akv_inst *a = inst;
    kp_key_spec spec;
    KP_ENSURE(a != NULL && kp_key_spec_read(in, &spec) && pkcs8_der != NULL && info != NULL &&
                  spec.name != NULL,
              KP_ERR_INVALID_ARG);
    char vname[KP_NAME_MAX], fpr[KPK_FPR_HEX];
    uint32_t version = 0;
    json_t *key = json_object();
    kp_akv_begin(a, false);
    kp_status st = s_import_spec(a, &spec, vname);
    if (st == KP_OK)
        st = s_import_jwk(a, &spec, pkcs8_der, key, fpr);
    if (st == KP_OK)
        st = kp_akv_new_version(a, &spec, &version);
    if (st == KP_OK) {
        json_t *j = json_object();
        json_object_set_new(key, "kty", json_string("RSA"));
        json_object_set_new(key, "key_ops", kp_akv_key_ops());
        json_object_set(j, "key", key);
        json_object_set_new(j, "Hsm", json_boolean(a->hsm));
        json_object_set_new(j, "attributes", kp_akv_new_attributes());
        /* what the vault ends up holding must be the key that was sent */
        st = kp_akv_version_make(a, spec.name, version, false, j, fpr, info);
        json_decref(j);
    }
    kp_akv_json_wipe(key);
    json_decref(key);
    pthread_mutex_unlock(&a->lock);
    return st;
}

/* A new version of the key-exchange key kname: RSA-HSM, key_ops ["import"] only. */
static kp_status s_kek_create(kp_akv_inst *a, const char *kname, kp_akv_bundle *b)
{
    char path[KP_AKV_URL_MAX], what[KP_NAME_MAX + 48];
    kp_secret *body = NULL;
    json_t *j = json_object(), *ops = json_array();
    json_array_append_new(ops, json_string("import"));
    json_object_set_new(j, "kty", json_string("RSA-HSM"));
    json_object_set_new(j, "key_size", json_integer(S_KEK_BITS));
    json_object_set_new(j, "key_ops", ops);
    json_object_set_new(j, "attributes", kp_akv_new_attributes());
    snprintf(path, sizeof(path), "/keys/%s/create", kname);
    snprintf(what, sizeof(what), "create the BYOK key-exchange key %s", kname);
    kp_status st = kp_akv_json_body(a, j, &body);
    json_decref(j);
    if (st == KP_OK)
        st = kp_akv_make_bundle(a, "POST", path, a->up->secret_cdata(body), a->up->secret_len(body),
                                what, b);
    a->up->secret_free(body);
    return st;
}

/* The key-exchange key of vault key vname: "<vname>-kek" (within 127 characters by the name
 * rule). The latest version is reused while it is enabled, RSA-HSM, import-only and unexpired;
 * otherwise a new one is made. */
static kp_status s_kek(kp_akv_inst *a, const char *vname, kp_akv_bundle *b)
{
    char kname[KP_NAME_MAX + 8], path[KP_AKV_URL_MAX], what[KP_NAME_MAX + 48];
    snprintf(kname, sizeof(kname), "%s-kek", vname);
    snprintf(path, sizeof(path), "/keys/%s", kname);
    snprintf(what, sizeof(what), "get the BYOK key-exchange key %s", kname);
    kp_status st = kp_akv_call_bundle(a, "GET", path, NULL, 0, 0, what, b);
    if (st == KP_OK && b->enabled && b->hsm && b->import_only &&
        (b->exp == 0 || b->exp > time(NULL)))
        return KP_OK;
    if (st != KP_OK && st != KP_ERR_NOT_FOUND)
        return st;
    kp_akv_bundle_clear(b); /* none, or not usable: make a new version */
    return s_kek_create(a, kname, b);
}

/* Fills the offer from the key-exchange key b; both buffers together: neither unless both fit. */
static kp_status s_offer_fill(const kp_akv_bundle *b, kp_import_offer *offer)
{
    size_t tl = strlen(b->kid);
    kp_status st = KP_OK;
    if (offer->wrapping_spki == NULL || offer->wrapping_spki_len < b->spki_len ||
        offer->token == NULL || offer->token_len < tl) {
        st = KP_ERR_BUFFER_TOO_SMALL;
    } else {
        memcpy(offer->wrapping_spki, b->spki, b->spki_len);
        memcpy(offer->token, b->kid, tl);
        offer->methods = KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1);
        offer->expires = b->exp; /* the KEK's own expiry; 0 for the ones keyplane makes */
    }
    offer->wrapping_spki_len = b->spki_len;
    offer->token_len = tl;
    return st;
}

kp_status kp_akv_ks_import_offer(void *inst, const kp_key_spec *in, kp_import_offer *offer)
{
    kp_akv_inst *a = inst;
    kp_key_spec spec;
    KP_ENSURE(a != NULL && kp_key_spec_read(in, &spec) && spec.name != NULL && offer != NULL &&
                  KP_HAS_MEMBER(offer, kp_import_offer, token_len),
              KP_ERR_INVALID_ARG);
    char vname[KP_NAME_MAX];
    kp_akv_bundle b;
    memset(&b, 0, sizeof(b));
    kp_akv_begin(a, false);
    kp_status st = kp_akv_rule_spec(a, spec.name, spec.type, spec.bits, vname);
    if (st == KP_OK)
        st = s_kek(a, vname, &b);
    if (st == KP_OK)
        st = s_offer_fill(&b, offer);
    kp_akv_bundle_clear(&b);
    pthread_mutex_unlock(&a->lock);
    return st;
}

/* Whether kid is https://HOST[:PORT]/keys/<vname>-kek/<32 hex>. */
static bool s_kek_kid(const char *kid, const char *vname)
{
    char tail[KP_NAME_MAX + 16];
    if (strncmp(kid, "https://", 8) != 0)
        return false;
    for (const char *c = kid; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && strchr(".:/-", *c) == NULL)
            return false;
    const char *path = strchr(kid + 8, '/');
    int n = snprintf(tail, sizeof(tail), "/keys/%s-kek/", vname);
    if (path == NULL || path == kid + 8 || n < 0 || (size_t)n >= sizeof(tail))
        return false;
    if (strncmp(path, tail, (size_t)n) != 0 || strlen(path + n) != KP_AKV_VERSION_LEN)
        return false;
    for (const char *c = path + n; *c != '\0'; c++)
        if (!isxdigit((unsigned char)*c))
            return false;
    return true;
}

/* The token must be the versioned kid of vname's key-exchange key. Out: the same as a string. */
static kp_status s_token(kp_akv_inst *a, const char *vname, const uint8_t *token, size_t len,
                         char kid[KP_BACKEND_ID_MAX])
{
    bool ok = token != NULL && len > 0 && len < KP_BACKEND_ID_MAX;
    if (ok) {
        memcpy(kid, token, len);
        kid[len] = '\0';
        ok = strlen(kid) == len && s_kek_kid(kid, vname);
    }
    if (!ok)
        return kp_akv_err(a, KP_ERR_INVALID_ARG,
                          "%s: the import token is not a versioned key-exchange key of %s (offer "
                          "one with KS_IMPORT_OFFER)",
                          a->place.vault_name, vname);
    return KP_OK;
}

/* The request body of a BYOK import: key_hsm is the .byok transfer file (the kit's
 * kpk_byok_file) in unpadded base64url, as the official clients send the bytes of a file given to
 * `az keyvault key import --byok-file`. NULL on out-of-memory. */
static json_t *s_byok_body(const char *kid, const uint8_t *blob, size_t bloblen)
{
    char *file = NULL, *hsm = NULL;
    size_t flen = 0;
    json_t *j = NULL;
    kp_status st = kpk_byok_file(kid, blob, bloblen, "keyplane azure-keyvault 0.1.0", &file, &flen);
    if (st == KP_OK)
        st = kpk_b64_encode_alloc((const uint8_t *)file, flen, true, &hsm);
    if (st == KP_OK) {
        json_t *key = json_object();
        j = json_object();
        json_object_set_new(key, "kty", json_string("RSA-HSM"));
        json_object_set_new(key, "key_ops", kp_akv_key_ops());
        json_object_set_new(key, "key_hsm", json_string(hsm));
        json_object_set_new(j, "key", key);
        json_object_set_new(j, "attributes", kp_akv_new_attributes());
    }
    free(hsm);
    free(file);
    return j;
}

/* The method and the expected fingerprint a wrapped import needs. */
static kp_status s_wrapped_args(kp_akv_inst *a, uint32_t method, const char *fpr)
{
    if (method != KP_KEYX_RSA_AES_KWP_SHA1)
        return kp_akv_err(a, KP_ERR_UNSUPPORTED,
                          "%s: Key Vault BYOK takes RSA-AES key wrap with SHA-1 "
                          "(KP_KEYX_RSA_AES_KWP_SHA1), not method %u",
                          a->place.vault_name, method);
    if (fpr == NULL)
        return kp_akv_err(a, KP_ERR_INVALID_ARG,
                          "%s: a wrapped import needs the key's expected fingerprint",
                          a->place.vault_name);
    return KP_OK;
}

kp_status kp_akv_ks_import_wrapped(void *inst, const kp_key_spec *in, uint32_t method,
                                   const uint8_t *token, size_t token_len, const uint8_t *blob,
                                   size_t bloblen, kp_key_info *info)
{
    kp_akv_inst *a = inst;
    kp_key_spec spec;
    KP_ENSURE(a != NULL && kp_key_spec_read(in, &spec) && spec.name != NULL && blob != NULL &&
                  bloblen != 0 && info != NULL,
              KP_ERR_INVALID_ARG);
    KP_GUARD(s_wrapped_args(a, method, spec.fingerprint));
    char vname[KP_NAME_MAX], kid[KP_BACKEND_ID_MAX];
    uint32_t version = 0;
    kp_akv_begin(a, false);
    kp_status st = s_import_spec(a, &spec, vname);
    if (st == KP_OK)
        st = s_token(a, vname, token, token_len, kid);
    if (st == KP_OK)
        st = kp_akv_new_version(a, &spec, &version);
    if (st == KP_OK) {
        json_t *j = s_byok_body(kid, blob, bloblen);
        st = j == NULL
                 ? kp_akv_err(a, KP_ERR_NOMEM, "out of memory")
                 : kp_akv_version_make(a, spec.name, version, false, j, spec.fingerprint, info);
        json_decref(j);
    }
    pthread_mutex_unlock(&a->lock);
    return st;
}
