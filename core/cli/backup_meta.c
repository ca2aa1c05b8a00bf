/*
 * The S3 client-side-encryption envelope of a backup: the object metadata (or a local file's
 * JSON sidecar) that says how its bytes were encrypted (docs/backup.md has the fields and where
 * they come from: the RDS for SQL Server documentation and the AWS SDKs' encryption clients).
 *
 * Written: the KMS CiphertextBlob under both x-amz-key (what RDS reads) and x-amz-key-v2 with
 * x-amz-wrap-alg kms (what the SDKs read), the IV, the material description {"kms_cmk_id": ID}
 * that is also the KMS encryption context, AES/CBC/PKCS5Padding, the plaintext's length and,
 * with a chain, keyplane's envelope of the same data key.
 *
 * Read: that, an RDS export or the blog's script (x-amz-key, x-amz-iv, x-amz-matdesc only), and
 * the SDKs' objects: kms or kms+context (whose context adds aws:x-amz-cek-alg), with
 * AES/CBC/PKCS5Padding or AES/GCM/NoPadding. A master-key envelope (x-amz-key without KMS) is
 * refused by name: its key is no KMS ciphertext.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <keyplane/kit/codec.h>

#include "backup_meta.h"

static const char *const s_names[KP_BK_F_COUNT] = {
    [KP_BK_F_KEY] = "x-amz-key",
    [KP_BK_F_KEY_V2] = "x-amz-key-v2",
    [KP_BK_F_IV] = "x-amz-iv",
    [KP_BK_F_MATDESC] = "x-amz-matdesc",
    [KP_BK_F_WRAP] = "x-amz-wrap-alg",
    [KP_BK_F_CEK] = "x-amz-cek-alg",
    [KP_BK_F_TAG_LEN] = "x-amz-tag-len",
    [KP_BK_F_PLAIN_LEN] = "x-amz-unencrypted-content-length",
    [KP_BK_F_ENVELOPE] = "keyplane-envelope",
    [KP_BK_F_MAC] = "keyplane-mac",
};

const char *kp_cli_bk_field_name(kp_cli_bk_field f)
{
    return f < KP_BK_F_COUNT ? s_names[f] : NULL;
}

void kp_cli_bk_fields_free(kp_cli_bk_fields *f)
{
    for (size_t i = 0; i < KP_BK_F_COUNT; i++)
        free(f->v[i]);
    memset(f, 0, sizeof(*f));
}

kp_status kp_cli_bk_fields_set(kp_cli_bk_fields *f, const char *name, const char *value)
{
    for (size_t i = 0; i < KP_BK_F_COUNT; i++)
        if (strcmp(name, s_names[i]) == 0) {
            char *c = strdup(value);
            if (c == NULL)
                return KP_ERR_NOMEM;
            free(f->v[i]);
            f->v[i] = c;
            return KP_OK;
        }
    return KP_OK; /* metadata of the object's own (a backup tool's, a user's) */
}

kp_status kp_cli_bk_fields_visit(void *arg, const kp_meta *meta, size_t nmeta)
{
    for (size_t i = 0; i < nmeta; i++)
        KP_GUARD(kp_cli_bk_fields_set(arg, meta[i].key, meta[i].value));
    return KP_OK;
}

kp_status kp_cli_bk_fields_make(kp_cli_bk_fields *f, const uint8_t *blob, size_t bloblen,
                                const uint8_t iv[16], const char *kms_key, uint64_t plain_len,
                                const char *envelope)
{
    memset(f, 0, sizeof(*f));
    char *b64 = NULL, ivb[32], num[24];
    kp_status st = kpk_b64_encode_alloc(blob, bloblen, false, &b64);
    json_t *md = json_pack("{s:s}", "kms_cmk_id", kms_key);
    char *mdtext = md != NULL ? json_dumps(md, JSON_COMPACT) : NULL;
    json_decref(md);
    kpk_b64_encode(iv, 16, ivb);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)plain_len);
    if (st == KP_OK && mdtext == NULL)
        st = KP_ERR_NOMEM;
    struct {
        kp_cli_bk_field f;
        const char *v;
    } set[] = {{KP_BK_F_KEY, b64},        {KP_BK_F_KEY_V2, b64},       {KP_BK_F_IV, ivb},
               {KP_BK_F_MATDESC, mdtext}, {KP_BK_F_WRAP, "kms"},       {KP_BK_F_CEK, KP_BK_CBC},
               {KP_BK_F_PLAIN_LEN, num},  {KP_BK_F_ENVELOPE, envelope}};
    for (size_t i = 0; st == KP_OK && i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i].v != NULL && (f->v[set[i].f] = strdup(set[i].v)) == NULL)
            st = KP_ERR_NOMEM;
    free(b64);
    free(mdtext);
    if (st != KP_OK)
        kp_cli_bk_fields_free(f);
    return st;
}

size_t kp_cli_bk_fields_meta(const kp_cli_bk_fields *f, kp_meta *meta)
{
    size_t n = 0;
    for (size_t i = 0; i < KP_BK_F_COUNT; i++)
        if (f->v[i] != NULL)
            meta[n++] = (kp_meta){s_names[i], f->v[i]};
    return n;
}

static kp_status s_bad(char *err, size_t errlen, const char *fmt, const char *a);

kp_status kp_cli_bk_mac_key(const kp_secret *dek, uint8_t key[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    static const char info[] = "keyplane backup mac v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)kp_secret_cdata(dek),
                                          kp_secret_len(dek)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, sizeof(info) - 1),
        OSSL_PARAM_construct_end()};
    bool ok = c != NULL && EVP_KDF_derive(c, key, 32, params) == 1;
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
    return ok ? KP_OK : KP_ERR_CRYPTO;
}

kp_status kp_cli_bk_fields_set_mac(kp_cli_bk_fields *f, const uint8_t mac[KP_BK_MAC])
{
    char b64[32];
    kpk_b64_encode(mac, KP_BK_MAC, b64);
    return kp_cli_bk_fields_set(f, s_names[KP_BK_F_MAC], b64);
}

static bool s_same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

kp_status kp_cli_bk_fields_same(const kp_cli_bk_fields *obj, const kp_cli_bk_fields *rec, char *err,
                                size_t errlen)
{
    const char *ok = obj->v[KP_BK_F_KEY_V2] != NULL ? obj->v[KP_BK_F_KEY_V2] : obj->v[KP_BK_F_KEY];
    const char *rk = rec->v[KP_BK_F_KEY_V2] != NULL ? rec->v[KP_BK_F_KEY_V2] : rec->v[KP_BK_F_KEY];
    if (s_same(ok, rk) && s_same(obj->v[KP_BK_F_IV], rec->v[KP_BK_F_IV]))
        return KP_OK;
    return s_bad(err, errlen,
                 "its integrity record (" KP_BK_RECORD ") is of another encryption (another "
                 "data key or IV)%s: the object or the record was replaced",
                 "");
}

/* ---- reading ------------------------------------------------------------------------------ */

void kp_cli_bk_plan_free(kp_cli_bk_plan *p)
{
    free(p->blob);
    json_decref(p->matdesc);
    free(p->key_id);
    memset(p, 0, sizeof(*p));
}

static kp_status s_bad(char *err, size_t errlen, const char *fmt, const char *a)
{
    /* a is the object's own text (a metadata value, a JSON key): its control bytes would reach
     * the terminal as escape sequences */
    char shown[256];
    snprintf(shown, sizeof(shown), "%s", a);
    for (char *c = shown; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    snprintf(err, errlen, fmt, shown);
    return KP_ERR_INTEGRITY;
}

/* The material description: a JSON object of strings, the encryption context as it stands. */
static kp_status s_matdesc(kp_cli_bk_plan *p, const char *text, char *err, size_t errlen)
{
    json_error_t je;
    p->matdesc = json_loads(text != NULL ? text : "{}", JSON_REJECT_DUPLICATES, &je);
    /* jansson's text may quote the input: only where it went wrong is said */
    char why[64] = "another shape";
    if (p->matdesc == NULL)
        snprintf(why, sizeof(why), "not JSON at column %d", je.column);
    if (p->matdesc == NULL || !json_is_object(p->matdesc) ||
        json_object_size(p->matdesc) > KP_BK_CONTEXT_MAX - 1)
        return s_bad(err, errlen, "x-amz-matdesc is not a JSON object of at most 15 strings: %s",
                     why);
    const char *k;
    json_t *v;
    json_object_foreach(p->matdesc, k, v)
    {
        if (!json_is_string(v))
            return s_bad(err, errlen, "x-amz-matdesc holds a value that is not a string%s", "");
        p->context[p->ncontext++] = (kp_meta){k, json_string_value(v)};
    }
    const char *id = json_string_value(json_object_get(p->matdesc, "kms_cmk_id"));
    p->key_id = strdup(id != NULL ? id : "");
    return p->key_id != NULL ? KP_OK : KP_ERR_NOMEM;
}

kp_status kp_cli_bk_plan_make(const kp_cli_bk_fields *f, kp_cli_bk_plan *p, char *err,
                              size_t errlen)
{
    memset(p, 0, sizeof(*p));
    const char *const *v = (const char *const *)f->v;
    const char *key = v[KP_BK_F_KEY_V2] != NULL ? v[KP_BK_F_KEY_V2] : v[KP_BK_F_KEY];
    const char *wrap = v[KP_BK_F_WRAP];
    if (v[KP_BK_F_IV] == NULL || key == NULL)
        return s_bad(err, errlen,
                     "not an S3 client-side-encrypted object: no %s (the envelope's metadata is "
                     "missing)",
                     v[KP_BK_F_IV] == NULL ? "x-amz-iv" : "x-amz-key-v2 or x-amz-key");
    /* an RDS export and the blog's script write no wrap algorithm: a KMS ciphertext whose
     * matdesc names the key; the SDKs' master-key (v1) envelope has no kms_cmk_id */
    if (wrap == NULL && v[KP_BK_F_KEY_V2] != NULL)
        return s_bad(err, errlen, "x-amz-key-v2 without x-amz-wrap-alg%s", "");
    kp_status st = s_matdesc(p, v[KP_BK_F_MATDESC], err, errlen);
    if (st != KP_OK) {
        kp_cli_bk_plan_free(p);
        return st;
    }
    if (wrap == NULL && p->key_id[0] == '\0') {
        kp_cli_bk_plan_free(p);
        return s_bad(err, errlen,
                     "a master-key envelope (x-amz-key without KMS): its key is not a KMS "
                     "ciphertext, and keyplane opens KMS-wrapped keys only%s",
                     "");
    }
    if (wrap != NULL && strcmp(wrap, "kms") != 0 && strcmp(wrap, "kms+context") != 0) {
        kp_cli_bk_plan_free(p);
        return s_bad(err, errlen, "x-amz-wrap-alg is neither kms nor kms+context%s", "");
    }
    const char *cek = v[KP_BK_F_CEK] != NULL ? v[KP_BK_F_CEK] : KP_BK_CBC;
    if (strcmp(cek, KP_BK_CBC) == 0)
        p->mode = KP_BK_CBC_DECRYPT;
    else if (strcmp(cek, KP_BK_GCM) == 0)
        p->mode = KP_BK_GCM_DECRYPT;
    else {
        kp_cli_bk_plan_free(p);
        return s_bad(err, errlen, "x-amz-cek-alg is neither " KP_BK_CBC " nor " KP_BK_GCM "%s", "");
    }
    if (p->mode == KP_BK_GCM_DECRYPT && v[KP_BK_F_TAG_LEN] != NULL &&
        strcmp(v[KP_BK_F_TAG_LEN], "128") != 0) {
        kp_cli_bk_plan_free(p);
        return s_bad(err, errlen, "x-amz-tag-len is not 128, what the SDKs write%s", "");
    }
    if (wrap != NULL && strcmp(wrap, "kms+context") == 0) {
        /* the SDKs keep the content algorithm in the context itself, so it cannot be swapped */
        const char *bound = json_string_value(json_object_get(p->matdesc, KP_BK_CEK_CONTEXT));
        if (bound == NULL || strcmp(bound, cek) != 0) {
            kp_cli_bk_plan_free(p);
            return s_bad(err, errlen,
                         "kms+context: x-amz-matdesc's " KP_BK_CEK_CONTEXT " is not the "
                         "x-amz-cek-alg%s",
                         "");
        }
    }
    size_t ivlen = 0;
    uint8_t iv[64];
    const char *ivt = v[KP_BK_F_IV];
    if (strlen(ivt) > 80 || kpk_b64_decode(ivt, strlen(ivt), iv, &ivlen) != KP_OK ||
        ivlen > sizeof(p->iv) || (p->mode == KP_BK_CBC_DECRYPT ? ivlen != 16 : ivlen < 12)) {
        /* said before the plan is freed (and its mode zeroed): a CBC IV is 16 bytes */
        const char *want = p->mode == KP_BK_CBC_DECRYPT ? "16-byte" : "12-byte";
        kp_cli_bk_plan_free(p);
        return s_bad(err, errlen, "x-amz-iv is not the base64 of a %s IV", want);
    }
    memcpy(p->iv, iv, ivlen);
    p->ivlen = ivlen;
    if (kpk_b64_decode_alloc(key, strlen(key), &p->blob, &p->bloblen) != KP_OK || p->bloblen == 0) {
        kp_cli_bk_plan_free(p);
        return s_bad(err, errlen, "%s is not base64",
                     v[KP_BK_F_KEY_V2] != NULL ? "x-amz-key-v2" : "x-amz-key");
    }
    p->plain_len = -1;
    const char *pl = v[KP_BK_F_PLAIN_LEN];
    if (pl != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(pl, &end, 10);
        /* a length past 2^63 - 1 is no file's, and must not pass as "absent" (-1) */
        if (pl[0] < '0' || pl[0] > '9' || end == NULL || *end != '\0' || errno == ERANGE ||
            n > (unsigned long long)LLONG_MAX) {
            kp_cli_bk_plan_free(p);
            return s_bad(err, errlen,
                         "x-amz-unencrypted-content-length is not a number of "
                         "bytes%s",
                         "");
        }
        p->plain_len = (long long)n;
    }
    p->envelope = v[KP_BK_F_ENVELOPE];
    const char *mac = v[KP_BK_F_MAC];
    if (mac != NULL) {
        uint8_t m[64];
        size_t ml = 0;
        if (strlen(mac) > 40 || kpk_b64_decode(mac, strlen(mac), m, &ml) != KP_OK ||
            ml != KP_BK_MAC) {
            kp_cli_bk_plan_free(p);
            return s_bad(err, errlen, "keyplane-mac is not the base64 of a %s", "16-byte GMAC");
        }
        memcpy(p->mac, m, KP_BK_MAC);
        p->has_mac = true;
    }
    return KP_OK;
}

/* ---- the sidecar of a local backup --------------------------------------------------------- */

kp_status kp_cli_bk_sidecar_text(const kp_cli_bk_fields *f, char **text)
{
    json_t *md = json_object(),
           *doc = json_pack("{s:s,s:o}", "format", KP_BK_SIDECAR, "metadata", md);
    bool ok = doc != NULL && md != NULL;
    for (size_t i = 0; ok && i < KP_BK_F_COUNT; i++)
        if (f->v[i] != NULL)
            ok = json_object_set_new(md, s_names[i], json_string(f->v[i])) == 0;
    *text = ok ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    return *text != NULL ? KP_OK : KP_ERR_NOMEM;
}

kp_status kp_cli_bk_sidecar_read(const char *text, size_t len, kp_cli_bk_fields *f, char *err,
                                 size_t errlen)
{
    memset(f, 0, sizeof(*f));
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    json_t *md = json_object_get(doc, "metadata");
    const char *format = json_string_value(json_object_get(doc, "format"));
    kp_status st = KP_OK;
    char where[64];
    snprintf(where, sizeof(where), "line %d, column %d", je.line, je.column);
    if (doc == NULL)
        st = s_bad(err, errlen, "the sidecar is not JSON (%s)", where);
    else if (format == NULL || strcmp(format, KP_BK_SIDECAR) != 0 || !json_is_object(md))
        st = s_bad(err, errlen, "the sidecar is not {\"format\": \"%s\", \"metadata\": {...}}",
                   KP_BK_SIDECAR);
    const char *k;
    json_t *v;
    if (st == KP_OK)
        json_object_foreach(md, k, v)
        {
            if (!json_is_string(v)) {
                st = s_bad(err, errlen,
                           "the sidecar's metadata holds a value that is not a "
                           "string%s",
                           "");
                break;
            }
            if ((st = kp_cli_bk_fields_set(f, k, json_string_value(v))) != KP_OK)
                break;
        }
    json_decref(doc);
    if (st != KP_OK)
        kp_cli_bk_fields_free(f);
    return st;
}
