/*
 * New key versions in the vault: generated there (create), imported from a PKCS#8 key as a
 * plain JWK, or imported from a BYOK transfer blob (key_hsm) under a key-exchange key of this
 * vault (protocols.md A "BYOK (key_hsm)"). Each new version carries the tags kp-chain,
 * kp-version and kp-fpr; no expiry is ever set (Azure SQL TDE refuses expiring protectors).
 *
 * Creating requests are KP_HTTP_UNSAFE: the transport does not repeat one the service may have
 * acted on. After such a failure the version listing decides: a version tagged with our number
 * is adopted when its public key is the expected one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/b64.h>

#include "akv_internal.h"

#define S_KEK_BITS 3072

static const char *const s_ops[] = {"wrapKey", "unwrapKey", NULL};

static json_t *s_ops_array(void)
{
    json_t *ops = json_array();
    for (size_t i = 0; s_ops[i] != NULL; i++)
        json_array_append_new(ops, json_string(s_ops[i]));
    return ops;
}

static json_t *s_attributes(void)
{
    json_t *attrs = json_object();
    json_object_set_new(attrs, "enabled", json_true());
    return attrs;
}

/* Sends a creating request and parses the bundle. */
static kp_status s_send_bundle(akv_inst *a, const char *method, const char *path,
                               const kp_secret *body, const char *what, akv_bundle *b)
{
    akv_resp r;
    char err[KP_AKV_ERR];
    kp_status st = akv_call(a, method, path, a->up->secret_cdata(body), a->up->secret_len(body),
                            AKV_UNSAFE, what, &r);
    if (st == KP_ERR_NOT_FOUND)
        return akv_err(a, st, "%s: %s: HTTP 404", a->vault_name, what);
    if (st != KP_OK)
        return st;
    st = akv_parse_bundle(r.http.body, r.http.len, b, err, sizeof(err));
    akv_resp_free(&r);
    if (st != KP_OK)
        return akv_err(a, st, "%s: %s: %s", a->vault_name, what, err);
    return KP_OK;
}

/* After a failed creating request: did it land anyway? Adopts a version tagged with our
 * number whose public key has fpr (any when fpr is NULL). */
static kp_status s_adopt(akv_inst *a, const kp_key_spec *spec, uint32_t version, const char *fpr,
                         kp_status failed, kp_key_info *info)
{
    if (failed != KP_ERR_UNAVAILABLE && failed != KP_ERR_TIMEOUT)
        return failed;
    akv_key *k = NULL;
    if (akv_key_load(a, spec->name, true, &k) != KP_OK)
        return failed;
    akv_version *v = akv_key_find(k, version);
    if (v == NULL || (fpr != NULL && strcmp(v->fpr, fpr) != 0))
        return failed;
    a->up->log(a->h, KP_LOG_INFO, "the request failed in transit but the version was created");
    akv_info_fill(a, spec->name, v, info);
    return KP_OK;
}

/* Sets the kp-fpr tag on a created version (its fingerprint is known only afterwards). */
static kp_status s_tag_fpr(akv_inst *a, const char *vname, const char *name, uint32_t version,
                           const akv_bundle *b)
{
    char path[KP_AKV_URL_MAX];
    json_t *body = json_object();
    json_object_set_new(body, "tags", akv_tags(name, version, b->fpr));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return akv_err(a, KP_ERR_NOMEM, "out of memory");
    snprintf(path, sizeof(path), "/keys/%s/%s", vname, b->azver);
    akv_resp r;
    kp_status st = akv_call(a, "PATCH", path, (const uint8_t *)text, strlen(text), 0,
                            "tag the new version", &r);
    free(text);
    akv_resp_free(&r);
    return st;
}

kp_status akv_ks_create(void *inst, const kp_key_spec *spec, kp_key_info *info)
{
    akv_inst *a = inst;
    if (a == NULL || spec == NULL || info == NULL || spec->name == NULL)
        return KP_ERR_INVALID_ARG;
    char vname[KP_NAME_MAX], path[KP_AKV_URL_MAX], what[KP_NAME_MAX + 32];
    uint32_t version = 0;
    kp_secret *body = NULL;
    akv_bundle b;
    memset(&b, 0, sizeof(b));
    pthread_mutex_lock(&a->lock);
    kp_status st = akv_vault_name(a, spec->name, vname);
    if (st == KP_OK)
        st = akv_new_version(a, spec, spec->bits != 0 ? spec->bits : 2048, true, &version);
    if (st == KP_OK) {
        json_t *j = json_object();
        json_object_set_new(j, "kty", json_string(a->hsm ? "RSA-HSM" : "RSA"));
        json_object_set_new(j, "key_size", json_integer(spec->bits != 0 ? spec->bits : 2048));
        json_object_set_new(j, "key_ops", s_ops_array());
        json_object_set_new(j, "attributes", s_attributes());
        json_object_set_new(j, "tags", akv_tags(spec->name, version, NULL));
        st = akv_json_dump_secret(a, j, &body);
        json_decref(j);
    }
    snprintf(path, sizeof(path), "/keys/%s/create", vname);
    snprintf(what, sizeof(what), "create %s v%u", vname, version);
    if (st == KP_OK)
        st = s_send_bundle(a, "POST", path, body, what, &b);
    if (st == KP_OK)
        st = s_tag_fpr(a, vname, spec->name, version, &b);
    if (st == KP_OK)
        st = akv_take_bundle(a, spec->name, version, &b, info);
    else if (version != 0 && b.azver[0] == '\0')
        st = s_adopt(a, spec, version, NULL, st, info);
    a->up->secret_free(body);
    akv_bundle_clear(&b);
    pthread_mutex_unlock(&a->lock);
    return st;
}

/* Common tail of both imports: body built, send, check the fingerprint, record. */
static kp_status s_import(akv_inst *a, const kp_key_spec *spec, const char *vname, uint32_t version,
                          json_t *j, const char *fpr, kp_key_info *info)
{
    char path[KP_AKV_URL_MAX], what[KP_NAME_MAX + 32];
    kp_secret *body = NULL;
    akv_bundle b;
    memset(&b, 0, sizeof(b));
    kp_status st = akv_json_dump_secret(a, j, &body);
    snprintf(path, sizeof(path), "/keys/%s", vname);
    snprintf(what, sizeof(what), "import %s v%u", vname, version);
    if (st == KP_OK)
        st = s_send_bundle(a, "PUT", path, body, what, &b);
    a->up->secret_free(body);
    if (st == KP_OK && strcmp(b.fpr, fpr) != 0)
        st = akv_err(a, KP_ERR_INTEGRITY,
                     "%s: %s: the vault holds a key with fingerprint %.16s..., not the %.16s... "
                     "that was sent; the version is left for inspection",
                     a->vault_name, what, b.fpr, fpr);
    if (st == KP_OK)
        st = akv_take_bundle(a, spec->name, version, &b, info);
    else if (b.azver[0] == '\0')
        st = s_adopt(a, spec, version, fpr, st, info);
    akv_bundle_clear(&b);
    return st;
}

kp_status akv_ks_import(void *inst, const kp_key_spec *spec, const kp_secret *pkcs8_der,
                        kp_key_info *info)
{
    akv_inst *a = inst;
    if (a == NULL || spec == NULL || pkcs8_der == NULL || info == NULL || spec->name == NULL)
        return KP_ERR_INVALID_ARG;
    char vname[KP_NAME_MAX], fpr[KP_FPR_HEX];
    uint32_t bits = 0, version = 0;
    json_t *key = json_object();
    pthread_mutex_lock(&a->lock);
    kp_status st = akv_vault_name(a, spec->name, vname);
    if (st == KP_OK && akv_jwk_from_pkcs8(a->up->secret_cdata(pkcs8_der),
                                          a->up->secret_len(pkcs8_der), key, &bits, fpr) != KP_OK)
        st = akv_err(a, KP_ERR_INVALID_ARG, "the key to import is not an RSA PKCS#8 key");
    if (st == KP_OK && spec->bits != 0 && spec->bits != bits)
        st = akv_err(a, KP_ERR_INVALID_ARG, "the key to import is RSA-%u, not RSA-%u", bits,
                     spec->bits);
    if (st == KP_OK)
        st = akv_new_version(a, spec, bits, false, &version);
    if (st == KP_OK) {
        json_t *j = json_object();
        json_object_set_new(key, "kty", json_string("RSA"));
        json_object_set_new(key, "key_ops", s_ops_array());
        json_object_set(j, "key", key);
        json_object_set_new(j, "Hsm", json_boolean(a->hsm));
        json_object_set_new(j, "attributes", s_attributes());
        json_object_set_new(j, "tags", akv_tags(spec->name, version, fpr));
        st = s_import(a, spec, vname, version, j, fpr, info);
        json_decref(j);
    }
    akv_json_wipe(key);
    json_decref(key);
    pthread_mutex_unlock(&a->lock);
    return st;
}

/* The KEK of name: "<vault key name>-kek", RSA-HSM with key_ops ["import"] only. The latest
 * enabled version is reused; otherwise one is created. */
kp_status akv_ks_byok_kek(void *inst, const char *name, uint8_t *kek_spki, size_t *len,
                          char kek_id[KP_BACKEND_ID_MAX])
{
    akv_inst *a = inst;
    if (a == NULL || name == NULL || len == NULL || kek_id == NULL)
        return KP_ERR_INVALID_ARG;
    char vname[KP_NAME_MAX], kname[KP_NAME_MAX + 8], path[KP_AKV_URL_MAX], err[KP_AKV_ERR];
    akv_bundle b;
    akv_resp r;
    memset(&b, 0, sizeof(b));
    pthread_mutex_lock(&a->lock);
    kp_status st = akv_vault_name(a, name, vname);
    if (st == KP_OK && strlen(vname) + 4 >= KP_NAME_MAX)
        st = akv_err(a, KP_ERR_INVALID_ARG, "key name '%s' too long for a KEK name", vname);
    snprintf(kname, sizeof(kname), "%s-kek", vname);
    snprintf(path, sizeof(path), "/keys/%s", kname);
    if (st == KP_OK)
        st = akv_call(a, "GET", path, NULL, 0, 0, "get the BYOK key-exchange key", &r);
    if (st == KP_OK) {
        st = akv_parse_bundle(r.http.body, r.http.len, &b, err, sizeof(err));
        akv_resp_free(&r);
        if (st != KP_OK)
            st = akv_err(a, st, "%s: KEK %s: %s", a->vault_name, kname, err);
        else if (!b.enabled || !b.hsm || !b.import_only || (b.exp != 0 && b.exp <= time(NULL)))
            st = KP_ERR_NOT_FOUND; /* not usable: make a new version */
    }
    if (st == KP_ERR_NOT_FOUND) {
        akv_bundle_clear(&b);
        json_t *j = json_object();
        json_t *ops = json_array();
        json_array_append_new(ops, json_string("import"));
        json_object_set_new(j, "kty", json_string("RSA-HSM"));
        json_object_set_new(j, "key_size", json_integer(S_KEK_BITS));
        json_object_set_new(j, "key_ops", ops);
        json_object_set_new(j, "attributes", s_attributes());
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        snprintf(path, sizeof(path), "/keys/%s/create", kname);
        st = text == NULL ? KP_ERR_NOMEM
                          : akv_call(a, "POST", path, (const uint8_t *)text, strlen(text),
                                     AKV_UNSAFE, "create the BYOK key-exchange key", &r);
        free(text);
        if (st == KP_OK) {
            st = akv_parse_bundle(r.http.body, r.http.len, &b, err, sizeof(err));
            akv_resp_free(&r);
            if (st != KP_OK)
                st = akv_err(a, st, "%s: KEK %s: %s", a->vault_name, kname, err);
        }
    }
    if (st == KP_OK) {
        if (kek_spki == NULL || *len < b.spki_len)
            st = KP_ERR_BUFFER_TOO_SMALL;
        else
            memcpy(kek_spki, b.spki, b.spki_len);
        *len = b.spki_len;
        snprintf(kek_id, KP_BACKEND_ID_MAX, "%s", b.kid);
    }
    akv_bundle_clear(&b);
    pthread_mutex_unlock(&a->lock);
    return st;
}

kp_status akv_ks_import_byok(void *inst, const kp_key_spec *spec, const char *kek_id,
                             const uint8_t *blob, size_t bloblen, const char *fingerprint,
                             kp_key_info *info)
{
    akv_inst *a = inst;
    if (a == NULL || spec == NULL || kek_id == NULL || blob == NULL || bloblen == 0 ||
        fingerprint == NULL || info == NULL || spec->name == NULL)
        return KP_ERR_INVALID_ARG;
    char vname[KP_NAME_MAX];
    uint32_t version = 0;
    pthread_mutex_lock(&a->lock);
    kp_status st = akv_vault_name(a, spec->name, vname);
    if (st == KP_OK && strlen(fingerprint) != KP_FPR_HEX - 1)
        st = akv_err(a, KP_ERR_INVALID_ARG, "BYOK import needs the key's SHA-256 fingerprint");
    if (st == KP_OK && spec->bits == 0)
        st = akv_err(a, KP_ERR_INVALID_ARG, "BYOK import needs the key's size");
    if (st == KP_OK)
        st = akv_new_version(a, spec, spec->bits, false, &version);
    if (st != KP_OK) {
        pthread_mutex_unlock(&a->lock);
        return st;
    }
    /* The .byok transfer file (protocols.md A): JSON whose ciphertext is the blob in base64url;
     * key_hsm is that whole file in base64. The blob is ciphertext under the vault's KEK. */
    char *ct = malloc(kp_b64_encoded_size(bloblen));
    json_t *file = json_object(), *hdr = json_object();
    char *text = NULL, *hsm = NULL;
    if (ct != NULL) {
        kp_b64url_encode(blob, bloblen, ct);
        json_object_set_new(file, "schema_version", json_string("1.0.0"));
        json_object_set_new(hdr, "kid", json_string(kek_id));
        json_object_set_new(hdr, "alg", json_string("dir"));
        json_object_set_new(hdr, "enc", json_string("CKM_RSA_AES_KEY_WRAP"));
        json_object_set(file, "header", hdr);
        json_object_set_new(file, "ciphertext", json_string(ct));
        json_object_set_new(file, "generator", json_string("keyplane azure-keyvault 0.1.0"));
        text = json_dumps(file, JSON_COMPACT);
    }
    if (text != NULL && (hsm = malloc(kp_b64_encoded_size(strlen(text)))) != NULL) {
        kp_b64_encode((const uint8_t *)text, strlen(text), hsm);
        json_t *j = json_object(), *key = json_object();
        json_object_set_new(key, "kty", json_string("RSA-HSM"));
        json_object_set_new(key, "key_ops", s_ops_array());
        json_object_set_new(key, "key_hsm", json_string(hsm));
        json_object_set_new(j, "key", key);
        json_object_set_new(j, "attributes", s_attributes());
        json_object_set_new(j, "tags", akv_tags(spec->name, version, fingerprint));
        st = s_import(a, spec, vname, version, j, fingerprint, info);
        json_decref(j);
    } else {
        st = akv_err(a, KP_ERR_NOMEM, "out of memory");
    }
    free(hsm);
    free(text);
    free(ct);
    json_decref(hdr);
    json_decref(file);
    pthread_mutex_unlock(&a->lock);
    return st;
}
