/*
 * The mock's keys: versions, listings, public keys and chain-state documents, all under the
 * context's lock (except where MOCK_FAULT_RACE lets go of it on purpose).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "mock.h"

bool mock_name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n >= KP_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (; *name != '\0'; name++)
        if (!isalnum((unsigned char)*name) && *name != '.' && *name != '_' && *name != '-')
            return false;
    return true;
}

mock_key *mock_key_find(mock_ctx *c, const char *name)
{
    for (mock_key *k = c->keys; k != NULL; k = k->next)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

mock_version *mock_version_find(mock_key *k, uint32_t version)
{
    if (k == NULL || k->n == 0)
        return NULL;
    if (version == 0)
        return &k->v[k->n - 1];
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].version == version)
            return &k->v[i];
    return NULL;
}

void mock_info(const mock_key *k, const mock_version *v, kp_key_info *out)
{
    memset(out, 0, sizeof(*out));
    out->struct_size = sizeof(*out);
    snprintf(out->name, sizeof(out->name), "%s", k->name);
    out->version = v->version;
    out->type = KP_KEY_RSA;
    out->bits = (uint32_t)EVP_PKEY_get_bits(v->pkey);
    out->flags = v->flags;
    out->state = KP_KEY_ENABLED;
    out->created = v->created;
    memcpy(out->fingerprint, v->fpr, sizeof(out->fingerprint));
#ifdef MOCK_FAULT_FPR_CASE
    for (char *p = out->fingerprint; *p != '\0'; p++)
        *p = (char)toupper((unsigned char)*p);
#endif
    snprintf(out->backend_id, sizeof(out->backend_id), "mem:%s/%u", k->name, v->version);
}

static bool s_spki(mock_version *v)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(v->pkey, &der);
    if (n <= 0)
        return false;
    v->spki = der;
    v->spki_len = (size_t)n;
    unsigned char md[32];
    EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(v->fpr + 2 * i, 3, "%02x", md[i]);
    return true;
}

static kp_status s_insert(mock_ctx *c, mock_key *k, mock_version *nv)
{
    if (k->n == k->cap) {
        size_t cap = k->cap == 0 ? 4 : k->cap * 2;
        mock_version *v = realloc(k->v, cap * sizeof(*v));
        if (v == NULL)
            return c->up.set_error(c->h, KP_ERR_NOMEM, "out of memory");
        k->v = v;
        k->cap = cap;
    }
    size_t i = k->n;
    while (i > 0 && k->v[i - 1].version > nv->version) {
        k->v[i] = k->v[i - 1];
        i--;
    }
    k->v[i] = *nv;
    k->n++;
    return KP_OK;
}

kp_status mock_add(mock_inst *in, const kp_key_spec *spec, EVP_PKEY *pkey, kp_key_info *info,
                   uint32_t raced)
{
    mock_ctx *c = in->ctx;
    mock_version nv = {.version = spec->version,
                       .flags = spec->flags & KP_KEY_EXPORTABLE,
                       .pkey = pkey,
                       .created = (int64_t)time(NULL)};
    if (!s_spki(&nv)) {
        EVP_PKEY_free(pkey);
        return c->up.set_error(in->h, KP_ERR_CRYPTO, "mock: cannot encode the public key");
    }
    pthread_mutex_lock(&c->lock);
    mock_key *k = mock_key_find(c, spec->name);
    if (k == NULL && (k = calloc(1, sizeof(*k))) != NULL) {
        snprintf(k->name, sizeof(k->name), "%s", spec->name);
        k->next = c->keys;
        c->keys = k;
    }
    kp_status st = k == NULL ? KP_ERR_NOMEM : KP_OK;
    if (st == KP_OK && raced != 0) {
        nv.version = raced;
    } else if (st == KP_OK && nv.version == 0) {
        nv.version = k->n > 0 ? k->v[k->n - 1].version + 1 : 1;
    } else if (st == KP_OK && mock_version_find(k, nv.version) != NULL) {
        st = KP_ERR_EXISTS;
    }
    if (st == KP_OK)
        st = s_insert(c, k, &nv);
    if (st == KP_OK) {
        kp_key_info full;
        mock_info(k, &nv, &full);
        kp_key_info_put(info, &full);
    }
    pthread_mutex_unlock(&c->lock);
    if (st != KP_OK) {
        EVP_PKEY_free(nv.pkey);
        OPENSSL_free(nv.spki);
        return kp_errorf(&c->up, in->h, st, "mock: cannot add version %u of %s", nv.version,
                         spec->name);
    }
    return KP_OK;
}

static kp_status s_spec(mock_inst *in, const kp_key_spec *raw, kp_key_spec *spec)
{
    if (!kp_key_spec_read(raw, spec) || !mock_name_ok(spec->name))
        return in->ctx->up.set_error(in->h, KP_ERR_INVALID_ARG, "mock: bad key spec or name");
    if (spec->type != KP_KEY_RSA)
        return in->ctx->up.set_error(in->h, KP_ERR_UNSUPPORTED, "mock: RSA keys only");
    return KP_OK;
}

kp_status mock_ks_create(void *inst, const kp_key_spec *raw, kp_key_info *info)
{
    mock_inst *in = inst;
    kp_key_spec spec;
    kp_status st = s_spec(in, raw, &spec);
    if (st != KP_OK)
        return st;
    if (spec.bits != 2048 && spec.bits != 3072 && spec.bits != 4096)
        return in->ctx->up.set_error(in->h, KP_ERR_UNSUPPORTED, "mock: RSA 2048, 3072, 4096");
    uint32_t raced = 0;
#ifdef MOCK_FAULT_RACE
    if (spec.version == 0) { /* the fault: the next version read before the slow part */
        pthread_mutex_lock(&in->ctx->lock);
        mock_version *last = mock_version_find(mock_key_find(in->ctx, spec.name), 0);
        raced = last != NULL ? last->version + 1 : 1;
        pthread_mutex_unlock(&in->ctx->lock);
    }
#endif
    EVP_PKEY *pk = EVP_RSA_gen(spec.bits);
    if (pk == NULL)
        return in->ctx->up.set_error(in->h, KP_ERR_CRYPTO, "mock: RSA key generation failed");
    return mock_add(in, &spec, pk, info, raced);
}

kp_status mock_ks_import(void *inst, const kp_key_spec *raw, const kp_secret *der,
                         kp_key_info *info)
{
    mock_inst *in = inst;
    mock_ctx *c = in->ctx;
    kp_key_spec spec;
    kp_status st = s_spec(in, raw, &spec);
    if (st != KP_OK)
        return st;
    const unsigned char *p = c->up.secret_cdata(der);
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)c->up.secret_len(der));
    EVP_PKEY *pk = p8 != NULL ? EVP_PKCS82PKEY(p8) : NULL;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (pk == NULL || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
        EVP_PKEY_free(pk);
        return c->up.set_error(in->h, KP_ERR_INVALID_ARG, "mock: not an RSA PKCS#8 key");
    }
    mock_version probe = {.pkey = pk};
    if (!s_spki(&probe) || (spec.fingerprint != NULL && strcmp(spec.fingerprint, probe.fpr))) {
        OPENSSL_free(probe.spki);
        EVP_PKEY_free(pk);
        return c->up.set_error(in->h, KP_ERR_INTEGRITY,
                               "mock: the key's fingerprint is not the one expected");
    }
    OPENSSL_free(probe.spki);
    return mock_add(in, &spec, pk, info, 0);
}

kp_status mock_ks_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                             size_t *len)
{
    mock_inst *in = inst;
    pthread_mutex_lock(&in->ctx->lock);
    mock_version *v = mock_version_find(mock_key_find(in->ctx, name), version);
    kp_status st = v == NULL ? KP_ERR_NOT_FOUND : KP_OK;
    if (st == KP_OK && *len < v->spki_len) {
#ifdef MOCK_FAULT_LIE_LENGTH
        st = KP_OK; /* the fault: "fine, it is this long" without the room to write it */
#else
        st = KP_ERR_BUFFER_TOO_SMALL;
#endif
    } else if (st == KP_OK) {
        memcpy(spki, v->spki, v->spki_len);
    }
    if (v != NULL)
        *len = v->spki_len;
    pthread_mutex_unlock(&in->ctx->lock);
    if (st == KP_ERR_NOT_FOUND)
        return kp_errorf(&in->ctx->up, in->h, st, "mock: no key %s version %u", name, version);
    return st;
}

kp_status mock_ks_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    mock_inst *in = inst;
    pthread_mutex_lock(&in->ctx->lock);
    mock_key *k = mock_key_find(in->ctx, name);
    mock_version *v = mock_version_find(k, version);
    if (v != NULL) {
        kp_key_info full;
        mock_info(k, v, &full);
        kp_key_info_put(info, &full);
    }
    pthread_mutex_unlock(&in->ctx->lock);
    if (v == NULL)
        return kp_errorf(&in->ctx->up, in->h, KP_ERR_NOT_FOUND, "mock: no key %s version %u", name,
                         version);
    return KP_OK;
}

static kp_status s_visit_key(mock_key *k, kp_key_visit_fn visit, void *arg)
{
    for (size_t i = 0; i < k->n; i++) {
#ifdef MOCK_FAULT_LIST_ORDER
        const mock_version *v = &k->v[k->n - 1 - i]; /* the fault: newest first */
#else
        const mock_version *v = &k->v[i];
#endif
        kp_key_info info;
        mock_info(k, v, &info);
        kp_status st = visit(arg, &info);
        if (st != KP_OK)
            return st;
    }
    return KP_OK;
}

/* The visitor runs under the lock: the core's visitors do not call back into the plugin. */
kp_status mock_ks_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    mock_inst *in = inst;
    kp_status st = KP_OK;
    pthread_mutex_lock(&in->ctx->lock);
    if (name != NULL) {
        mock_key *k = mock_key_find(in->ctx, name);
        st = k != NULL ? s_visit_key(k, visit, arg) : KP_ERR_NOT_FOUND;
    } else {
        for (mock_key *k = in->ctx->keys; k != NULL && st == KP_OK; k = k->next)
            st = s_visit_key(k, visit, arg);
    }
    pthread_mutex_unlock(&in->ctx->lock);
    if (st == KP_ERR_NOT_FOUND)
        return kp_errorf(&in->ctx->up, in->h, st, "mock: no key %s", name);
    return st;
}

kp_status mock_ks_state_get(void *inst, const char *name, uint8_t *doc, size_t *len)
{
    mock_inst *in = inst;
    pthread_mutex_lock(&in->ctx->lock);
    mock_key *k = mock_key_find(in->ctx, name);
    kp_status st = k == NULL || k->state == NULL ? KP_ERR_NOT_FOUND : KP_OK;
    if (st == KP_OK && *len < k->state_len)
        st = KP_ERR_BUFFER_TOO_SMALL;
    else if (st == KP_OK)
        memcpy(doc, k->state, k->state_len);
    if (st != KP_ERR_NOT_FOUND)
        *len = k->state_len;
    pthread_mutex_unlock(&in->ctx->lock);
    if (st == KP_ERR_NOT_FOUND)
        return kp_errorf(&in->ctx->up, in->h, st, "mock: no state for %s", name);
    return st;
}

kp_status mock_ks_state_put(void *inst, const char *name, const uint8_t *doc, size_t len,
                            const uint8_t *expect, size_t expect_len)
{
    mock_inst *in = inst;
    if (len > KP_STATE_MAX)
        return in->ctx->up.set_error(in->h, KP_ERR_INVALID_ARG, "mock: state too large");
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        return in->ctx->up.set_error(in->h, KP_ERR_NOMEM, "out of memory");
    memcpy(copy, doc, len);
    pthread_mutex_lock(&in->ctx->lock);
    mock_key *k = mock_key_find(in->ctx, name);
    kp_status st = k == NULL ? KP_ERR_NOT_FOUND : KP_OK;
    if (st == KP_OK && expect != NULL) {
        bool same = expect_len == 0 ? k->state == NULL
                                    : k->state != NULL && k->state_len == expect_len &&
                                          memcmp(k->state, expect, expect_len) == 0;
        st = same ? KP_OK : KP_ERR_CONFLICT;
    }
    if (st == KP_OK) {
        free(k->state);
        k->state = copy;
        k->state_len = len;
        copy = NULL;
    }
    pthread_mutex_unlock(&in->ctx->lock);
    free(copy);
    if (st != KP_OK)
        return kp_errorf(&in->ctx->up, in->h, st, "mock: state of %s not written", name);
    return KP_OK;
}

void mock_keys_free(mock_ctx *c)
{
    while (c->keys != NULL) {
        mock_key *k = c->keys;
        c->keys = k->next;
        for (size_t i = 0; i < k->n; i++) {
            EVP_PKEY_free(k->v[i].pkey);
            OPENSSL_free(k->v[i].spki);
        }
        free(k->v);
        free(k->state);
        free(k);
    }
}
