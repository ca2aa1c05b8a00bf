/*
 * Helpers the tests share: status and algorithm names, names unique to a run, guarded buffers
 * (to see a plugin write past the capacity it was given), and the keys and public keys most
 * tests start from.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "conf.h"
#include "conf_crypto.h"

#define S_PATTERN 0xa5

const char *conf_status_name(kp_status st)
{
    static const char *names[] = {"KP_OK",
                                  "KP_ERR_INVALID_ARG",
                                  "KP_ERR_BUFFER_TOO_SMALL",
                                  "KP_ERR_UNSUPPORTED",
                                  "KP_ERR_CONFIG",
                                  "KP_ERR_PLUGIN",
                                  "KP_ERR_ABI",
                                  "KP_ERR_AUTH",
                                  "KP_ERR_PERMISSION",
                                  "KP_ERR_NOT_FOUND",
                                  "KP_ERR_EXISTS",
                                  "KP_ERR_UNAVAILABLE",
                                  "KP_ERR_TIMEOUT",
                                  "KP_ERR_THROTTLED",
                                  "KP_ERR_BACKEND",
                                  "KP_ERR_IO",
                                  "KP_ERR_INTEGRITY",
                                  "KP_ERR_CRYPTO",
                                  "KP_ERR_NOMEM",
                                  "KP_ERR_INTERNAL",
                                  "KP_ERR_DENIED",
                                  "KP_ERR_CONFLICT"};
    static _Thread_local char other[32];
    if ((unsigned)st < sizeof(names) / sizeof(names[0]))
        return names[st];
    snprintf(other, sizeof(other), "status %d", (int)st);
    return other;
}

const char *conf_reason(void)
{
    const char *t = conf_err_text();
    return t[0] != '\0' ? t : "no error text";
}

void conf_name(const conf_kit *k, const char *tag, char out[CONF_NAME_LEN])
{
    snprintf(out, CONF_NAME_LEN, "%s-%s-%s", k->params.key_prefix, k->run_id, tag);
}

uint32_t conf_key_bits(const conf_kit *k)
{
    uint32_t b = k->iinfo.key_bits;
    if (b == 0 || (b & KP_RSA_2048))
        return 2048;
    return (b & KP_RSA_3072) ? 3072 : 4096;
}

const char *conf_alg_name(uint32_t alg)
{
    static const char *n[] = {"alg 0",     "RSA-OAEP-SHA1", "RSA-OAEP-SHA256",
                              "RSA-PKCS1", "AES-KW",        "AES-KWP"};
    return alg < sizeof(n) / sizeof(n[0]) ? n[alg] : "an unknown alg";
}

const char *conf_keyx_name(uint32_t m)
{
    static const char *n[] = {"method 0", "RSA-AES-KWP-SHA1", "RSA-AES-KWP-SHA256", "RSA-OAEP-SHA1",
                              "RSA-OAEP-SHA256"};
    return m < sizeof(n) / sizeof(n[0]) ? n[m] : "an unknown method";
}

bool conf_buf_new(conf_buf *b, size_t cap)
{
    b->cap = cap;
    b->p = malloc(cap + CONF_GUARD);
    if (b->p != NULL)
        memset(b->p, S_PATTERN, cap + CONF_GUARD);
    return b->p != NULL;
}

void conf_buf_free(conf_buf *b)
{
    free(b->p);
    b->p = NULL;
}

bool conf_buf_untouched(const conf_buf *b, size_t from)
{
    for (size_t i = from; i < b->cap + CONF_GUARD; i++)
        if (b->p[i] != S_PATTERN)
            return false;
    return true;
}

uint8_t *conf_get_spki(conf_run *r, const char *name, uint32_t version, size_t *len)
{
    kp_ks_get_public_fn *get = CONF_FN(r->kit, ks_get_public, KP_FN_KS_GET_PUBLIC);
    conf_buf b;
    size_t cap = 4096;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!conf_buf_new(&b, cap))
            return NULL;
        size_t n = cap;
        conf_err_clear();
        kp_status st = get(r->inst, name, version, b.p, &n);
        if (st == KP_OK && n <= cap && n > 0 && conf_buf_untouched(&b, cap)) {
            *len = n;
            return b.p;
        }
        conf_buf_free(&b);
        if (st == KP_ERR_BUFFER_TOO_SMALL && n > cap && attempt == 0) {
            cap = n;
            continue;
        }
        if (st == KP_OK)
            conf_fail(r,
                      "KS_GET_PUBLIC(%s, %u): KP_OK with %zu bytes in a buffer of %zu, or "
                      "bytes written past the buffer",
                      name, version, n, cap);
        else
            conf_fail(r, "KS_GET_PUBLIC(%s, %u) failed: %s: %s", name, version,
                      conf_status_name(st), conf_reason());
        return NULL;
    }
    return NULL;
}

bool conf_check_fpr(conf_run *r, const char *where, const char *name, uint32_t version,
                    const char *fpr)
{
    if (!kpk_fpr_valid(fpr)) {
        conf_fail(r, "%s: fingerprint \"%.70s\" is not 64 lower-case hex digits", where, fpr);
        return false;
    }
    size_t n = 0;
    uint8_t *spki = conf_get_spki(r, name, version, &n);
    if (spki == NULL)
        return false;
    char want[65];
    conf_sha256_hex(spki, n, want);
    free(spki);
    if (strcmp(want, fpr) != 0) {
        conf_fail(r,
                  "%s: fingerprint %.16s... is not the SHA-256 of the SPKI from GET_PUBLIC "
                  "(%.16s...)",
                  where, fpr, want);
        return false;
    }
    return true;
}

/* Creates (or imports, without KS_CREATE) version v of name. */
kp_status conf_make_version(conf_run *r, const char *name, uint32_t v, kp_key_info *info)
{
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = name,
                        .type = KP_KEY_RSA,
                        .bits = conf_key_bits(r->kit),
                        .version = v};
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    kp_ks_create_fn *create = CONF_FN(r->kit, ks_create, KP_FN_KS_CREATE);
    conf_err_clear();
    if (create != NULL)
        return create(r->inst, &spec, info);
    EVP_PKEY *pk = conf_rsa_new(spec.bits);
    kp_secret *der = pk != NULL ? conf_pkcs8_secret(pk) : NULL;
    EVP_PKEY_free(pk);
    if (der == NULL)
        return KP_ERR_NOMEM;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_import, KP_FN_KS_IMPORT)(r->inst, &spec, der, info);
    conf_secret_free(der);
    return st;
}

static bool s_import(conf_run *r, const char *name, uint32_t flags, conf_key *key)
{
    kp_ks_import_fn *imp = CONF_FN(r->kit, ks_import, KP_FN_KS_IMPORT);
    uint32_t bits = conf_key_bits(r->kit);
    EVP_PKEY *pk = conf_rsa_new(bits);
    kp_secret *der = pk != NULL ? conf_pkcs8_secret(pk) : NULL;
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = name,
                        .type = KP_KEY_RSA,
                        .bits = bits,
                        .flags = flags};
    kp_status st = KP_ERR_NOMEM;
    if (der == NULL) {
        conf_fail(r, "the kit could not make an RSA-%u key", bits);
    } else {
        key->info.struct_size = sizeof(key->info);
        conf_err_clear();
        st = imp(r->inst, &spec, der, &key->info);
        if (st != KP_OK)
            conf_fail(r, "KS_IMPORT(%s) failed: %s: %s", name, conf_status_name(st), conf_reason());
    }
    conf_secret_free(der);
    if (st == KP_OK) {
        key->priv = pk;
        pk = NULL;
    }
    EVP_PKEY_free(pk);
    return st == KP_OK;
}

bool conf_key_make(conf_run *r, const char *tag, uint32_t flags, bool want_priv, conf_key *key)
{
    memset(key, 0, sizeof(*key));
    conf_name(r->kit, tag, key->name);
    kp_ks_create_fn *create = CONF_FN(r->kit, ks_create, KP_FN_KS_CREATE);
    bool imp = conf_fn(r->kit, KP_FN_KS_IMPORT) != NULL;
    if (imp && (want_priv || create == NULL))
        return s_import(r, key->name, flags, key);
    if (create == NULL) {
        conf_fail(r, "a keystore instance with neither KS_CREATE nor KS_IMPORT");
        return false;
    }
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = key->name,
                        .type = KP_KEY_RSA,
                        .bits = conf_key_bits(r->kit),
                        .flags = flags};
    key->info.struct_size = sizeof(key->info);
    conf_err_clear();
    kp_status st = create(r->inst, &spec, &key->info);
    if (st != KP_OK) {
        conf_fail(r, "KS_CREATE(%s, RSA-%u) failed: %s: %s", key->name, spec.bits,
                  conf_status_name(st), conf_reason());
        return false;
    }
    return true;
}

void conf_key_free(conf_key *key)
{
    EVP_PKEY_free(key->priv);
    key->priv = NULL;
}
