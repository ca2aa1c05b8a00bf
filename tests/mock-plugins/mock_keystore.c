/*
 * The mock plugins' keystore: RSA-2048 keys in memory, RSA-OAEP wrap and unwrap, and the
 * faults that concern returned data (lying lengths, an empty unwrap, an upper-case
 * fingerprint). Everything else is as a correct plugin does it, so each fault stands alone.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "mock_common.h"

/* Version v of name (0 = latest); caller holds pl->lock. */
static mock_key *s_find(mock_plugin *pl, const char *name, uint32_t v)
{
    mock_key *best = NULL;

    for (size_t i = 0; i < pl->n; i++) {
        mock_key *k = &pl->keys[i];
        if (strcmp(k->name, name) != 0)
            continue;
        if (v != 0 ? k->version == v : (best == NULL || k->version > best->version))
            best = k;
        if (v != 0 && best != NULL)
            break;
    }
    return best;
}

kp_status kp_mock_add_key(mock_plugin *pl, kp_core_handle *h, const char *name, uint32_t version,
                          mock_key **out)
{
    mock_key *k, *latest;
    unsigned char *der = NULL;
    int n;

    *out = NULL;
    if (version == 0)
        version = (latest = s_find(pl, name, 0)) != NULL ? latest->version + 1 : 1;
    else if (s_find(pl, name, version) != NULL)
        return kp_errorf(&pl->up, h, KP_ERR_EXISTS, "mock: key %s v%u exists", name, version);
    if (pl->n == MOCK_KEYS_MAX)
        return kp_errorf(&pl->up, h, KP_ERR_BACKEND, "mock: full (%d versions)", MOCK_KEYS_MAX);
    k = &pl->keys[pl->n];
    memset(k, 0, sizeof(*k));
    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (k->pkey == NULL || (n = i2d_PUBKEY(k->pkey, &der)) <= 0 ||
        (k->spki = malloc((size_t)n)) == NULL) {
        ERR_clear_error();
        EVP_PKEY_free(k->pkey);
        OPENSSL_free(der);
        return kp_errorf(&pl->up, h, KP_ERR_CRYPTO, "mock: RSA-2048 key generation failed");
    }
    memcpy(k->spki, der, (size_t)n);
    OPENSSL_free(der);
    k->spki_len = (size_t)n;
    kpk_fpr_spki(k->spki, k->spki_len, k->fpr);
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->version = version;
    k->created = (int64_t)time(NULL);
    pl->n++;
    *out = k;
    return KP_OK;
}

void kp_mock_keys_free(mock_plugin *pl)
{
    for (size_t i = 0; i < pl->n; i++) {
        EVP_PKEY_free(pl->keys[i].pkey);
        free(pl->keys[i].spki);
    }
    pl->n = 0;
}

static void s_info(const mock_key *k, kp_key_info *info)
{
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    snprintf(info->name, sizeof(info->name), "%s", k->name);
    info->version = k->version;
    info->type = KP_KEY_RSA;
    info->bits = 2048;
    info->state = KP_KEY_ENABLED;
    info->created = k->created;
    memcpy(info->fingerprint, k->fpr, KPK_FPR_HEX);
#ifdef MOCK_FAULT_BAD_FPR
    for (char *c = info->fingerprint; *c != '\0'; c++)
        *c = (char)toupper((unsigned char)*c);
#endif
    snprintf(info->backend_id, sizeof(info->backend_id), "mock:%s/%u", k->name, k->version);
#ifdef MOCK_FAULT_OTHER_NAME
    /* the fault: every key is reported under another name than the one it has */
    snprintf(info->name, sizeof(info->name), "%.100s-old", k->name);
#endif
}

static kp_status s_name_check(const mock_inst *mi, const char *name)
{
    if (!kpk_key_name_valid(name))
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_INVALID_ARG, "mock: invalid key name");
    return KP_OK;
}

/* Looks name/version up; on KP_OK the caller holds pl->lock and must unlock it. */
static kp_status s_lookup(const mock_inst *mi, const char *name, uint32_t version, mock_key **k)
{
    kp_status st = s_name_check(mi, name);

    if (st != KP_OK)
        return st;
    pthread_mutex_lock(&mi->pl->lock);
    if ((*k = s_find(mi->pl, name, version)) == NULL) {
        pthread_mutex_unlock(&mi->pl->lock);
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_NOT_FOUND, "mock: no key %s v%u", name,
                         version);
    }
    return KP_OK;
}

kp_status kp_mock_create(void *inst, const kp_key_spec *in, kp_key_info *info)
{
    mock_inst *mi = inst;
    kp_key_spec spec;
    kp_key_info full;
    mock_key *k;
    kp_status st;

    if (!kp_key_spec_read(in, &spec) || info == NULL)
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_INVALID_ARG, "mock: spec or info missing");
    if ((st = s_name_check(mi, spec.name)) != KP_OK)
        return st;
    if (spec.type != KP_KEY_RSA || spec.bits != 2048)
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_UNSUPPORTED, "mock: RSA-2048 keys only");
    pthread_mutex_lock(&mi->pl->lock);
    if ((st = kp_mock_add_key(mi->pl, mi->h, spec.name, spec.version, &k)) == KP_OK)
        s_info(k, &full);
    pthread_mutex_unlock(&mi->pl->lock);
#ifdef MOCK_FAULT_OTHER_VERSION
    full.version += 7; /* the fault: it says it made another version than asked for */
#endif
    if (st == KP_OK)
        kp_key_info_put(info, &full);
    return st;
}

kp_status kp_mock_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    mock_inst *mi = inst;
    kp_key_info full;
    mock_key *k;
    kp_status st;

    if (info == NULL)
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_INVALID_ARG, "mock: info is NULL");
    if ((st = s_lookup(mi, name, version, &k)) != KP_OK)
        return st;
    s_info(k, &full);
    pthread_mutex_unlock(&mi->pl->lock);
    kp_key_info_put(info, &full);
    return KP_OK;
}

/* The buffer convention, or with MOCK_FAULT_LYING_LENGTH a KP_OK whose length exceeds cap. */
static kp_status s_output(const mock_inst *mi, const uint8_t *data, size_t n, uint8_t *out,
                          size_t *len)
{
#ifdef MOCK_FAULT_LYING_LENGTH
    /* Writes at most what fits, then claims more than the capacity. */
    size_t cap = *len;
    if (out != NULL && cap >= n) {
        memcpy(out, data, n);
        *len = cap + MOCK_LIE_EXTRA;
    } else {
        *len = n > cap ? n : cap + MOCK_LIE_EXTRA;
    }
    (void)mi;
    return KP_OK;
#else
    if (out == NULL || *len < n) {
        *len = n;
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_BUFFER_TOO_SMALL, "mock: needs %zu bytes", n);
    }
    memcpy(out, data, n);
    *len = n;
    return KP_OK;
#endif
}

kp_status kp_mock_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                             size_t *len)
{
    mock_inst *mi = inst;
    mock_key *k;
    kp_status st;

    if (len == NULL)
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_INVALID_ARG, "mock: len is NULL");
    if ((st = s_lookup(mi, name, version, &k)) != KP_OK)
        return st;
    st = s_output(mi, k->spki, k->spki_len, spki, len);
    pthread_mutex_unlock(&mi->pl->lock);
    return st;
}

kp_status kp_mock_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    mock_inst *mi = inst;
    kp_key_info *infos;
    size_t n = 0;
    kp_status st = KP_OK;

    if (visit == NULL)
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_INVALID_ARG, "mock: visit is NULL");
    if (name != NULL && (st = s_name_check(mi, name)) != KP_OK)
        return st;
    if ((infos = calloc(MOCK_KEYS_MAX, sizeof(*infos))) == NULL)
        return kp_errorf(&mi->pl->up, mi->h, KP_ERR_NOMEM, "mock: out of memory");
    /* Copied under the lock, visited outside it; sorted by name, then version. */
    pthread_mutex_lock(&mi->pl->lock);
    for (size_t i = 0; i < mi->pl->n; i++) {
        const mock_key *k = &mi->pl->keys[i];
        size_t at = n;
        if (name != NULL && strcmp(k->name, name) != 0)
            continue;
        while (at > 0 &&
               (strcmp(infos[at - 1].name, k->name) > 0 ||
                (strcmp(infos[at - 1].name, k->name) == 0 && infos[at - 1].version > k->version))) {
            infos[at] = infos[at - 1];
            at--;
        }
        s_info(k, &infos[at]);
        n++;
    }
    pthread_mutex_unlock(&mi->pl->lock);
    if (name != NULL && n == 0)
        st = kp_errorf(&mi->pl->up, mi->h, KP_ERR_NOT_FOUND, "mock: no key %s", name);
    for (size_t i = 0; i < n && st == KP_OK; i++)
        st = visit(arg, &infos[i]);
    free(infos);
    return st;
}

static const EVP_MD *s_md(uint32_t alg)
{
    return alg == KP_WRAP_RSA_OAEP_SHA1     ? EVP_sha1()
           : alg == KP_WRAP_RSA_OAEP_SHA256 ? EVP_sha256()
                                            : NULL;
}

static EVP_PKEY_CTX *s_oaep(EVP_PKEY *pkey, const EVP_MD *md, int encrypt)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

    if (ctx == NULL || (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

kp_status kp_mock_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                       const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    mock_inst *mi = inst;
    const kp_upcalls *up = &mi->pl->up;
    const EVP_MD *md = s_md(alg);
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t buf[256]; /* RSA-2048 */
    size_t n = sizeof(buf);
    mock_key *k;
    kp_status st;

    if (dek == NULL || outlen == NULL)
        return kp_errorf(up, mi->h, KP_ERR_INVALID_ARG, "mock: dek or outlen is NULL");
    if (md == NULL)
        return kp_errorf(up, mi->h, KP_ERR_UNSUPPORTED, "mock: wrap algorithm %u", alg);
    if (up->secret_len(dek) == 0)
        return kp_errorf(up, mi->h, KP_ERR_INVALID_ARG, "mock: empty key to wrap");
    if ((st = s_lookup(mi, name, version, &k)) != KP_OK)
        return st;
    if ((ctx = s_oaep(k->pkey, md, 1)) == NULL ||
        EVP_PKEY_encrypt(ctx, buf, &n, up->secret_cdata(dek), up->secret_len(dek)) != 1) {
        ERR_clear_error();
        st = kp_errorf(up, mi->h, KP_ERR_CRYPTO, "mock: wrap failed");
    }
    pthread_mutex_unlock(&mi->pl->lock);
    EVP_PKEY_CTX_free(ctx);
    if (st == KP_OK)
        st = s_output(mi, buf, n, out, outlen);
    return st;
}

kp_status kp_mock_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                         const uint8_t *in, size_t inlen, kp_secret **dek)
{
    mock_inst *mi = inst;
    const kp_upcalls *up = &mi->pl->up;
    const EVP_MD *md = s_md(alg);
    EVP_PKEY_CTX *ctx = NULL;
    kp_secret *plain = NULL;
    size_t n = 256;
    mock_key *k;
    kp_status st;

    if (dek == NULL || in == NULL)
        return kp_errorf(up, mi->h, KP_ERR_INVALID_ARG, "mock: input or output is NULL");
    *dek = NULL;
    if (md == NULL)
        return kp_errorf(up, mi->h, KP_ERR_UNSUPPORTED, "mock: unwrap algorithm %u", alg);
    if ((st = s_lookup(mi, name, version, &k)) != KP_OK)
        return st;
    if ((plain = up->secret_new(n)) == NULL || (ctx = s_oaep(k->pkey, md, 0)) == NULL ||
        EVP_PKEY_decrypt(ctx, up->secret_data(plain), &n, in, inlen) != 1 || n == 0 ||
        up->secret_shrink(plain, n) != KP_OK) {
        ERR_clear_error();
        st = kp_errorf(up, mi->h, KP_ERR_CRYPTO, "mock: unwrap failed: wrong key or data");
    }
    pthread_mutex_unlock(&mi->pl->lock);
    EVP_PKEY_CTX_free(ctx);
    if (st != KP_OK) {
        up->secret_free(plain);
        return st;
    }
#ifdef MOCK_FAULT_EMPTY_UNWRAP
    up->secret_shrink(plain, 0); /* the fault: an empty DEK reported as success */
#endif
#ifdef MOCK_FAULT_LONG_UNWRAP
    /* the fault: a "DEK" longer than the wrapped bytes it came from */
    up->secret_free(plain);
    plain = up->secret_new(inlen + 16);
    if (plain == NULL)
        return KP_ERR_NOMEM;
#endif
    *dek = plain;
    return KP_OK;
}
