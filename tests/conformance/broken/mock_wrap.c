/*
 * The mock's key operations: wrap and unwrap under a version's RSA key, export (plain and wrapped
 * under a caller's RSA key with RSA-AES key wrap) and the negotiated wrapped import through a
 * key-exchange key of the plugin context's.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "mock.h"

static const EVP_MD *s_md(uint32_t alg)
{
    return alg == KP_WRAP_RSA_OAEP_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* RSA encrypt (enc) or decrypt with alg's padding; *outlen holds the capacity on entry. */
static bool s_rsa(EVP_PKEY *k, int enc, uint32_t alg, const uint8_t *in, size_t inlen, uint8_t *out,
                  size_t *outlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
    bool ok = c != NULL && (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) > 0;
    if (ok && alg == KP_WRAP_RSA_PKCS1)
        ok = EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) > 0;
    else if (ok)
        ok = EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(c, s_md(alg)) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(c, s_md(alg)) > 0;
    if (ok)
        ok = (enc ? EVP_PKEY_encrypt(c, out, outlen, in, inlen)
                  : EVP_PKEY_decrypt(c, out, outlen, in, inlen)) > 0;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* A copy of the version's key, so the lock need not be held during the RSA operation. */
static EVP_PKEY *s_key(mock_inst *in, const char *name, uint32_t version)
{
    pthread_mutex_lock(&in->ctx->lock);
    mock_version *v = mock_version_find(mock_key_find(in->ctx, name), version);
    EVP_PKEY *k = v != NULL && EVP_PKEY_up_ref(v->pkey) ? v->pkey : NULL;
    pthread_mutex_unlock(&in->ctx->lock);
    return k;
}

kp_status mock_ks_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                       const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    mock_inst *in = inst;
    kp_upcalls *up = &in->ctx->up;
    if (alg > 31 || !(MOCK_WRAP_ALGS & KP_ALG_BIT(alg)))
        return kp_errorf(up, in->h, KP_ERR_UNSUPPORTED, "mock: wrap alg %u not offered", alg);
    EVP_PKEY *k = s_key(in, name, version);
    if (k == NULL)
        return kp_errorf(up, in->h, KP_ERR_NOT_FOUND, "mock: no key %s version %u", name, version);
    size_t need = (size_t)EVP_PKEY_get_size(k);
    kp_status st = KP_OK;
    if (*outlen < need)
        st = KP_ERR_BUFFER_TOO_SMALL;
    else if (!s_rsa(k, 1, alg, up->secret_cdata(dek), up->secret_len(dek), out, outlen))
        st = up->set_error(in->h, KP_ERR_CRYPTO, "mock: RSA encryption failed");
    if (st == KP_ERR_BUFFER_TOO_SMALL)
        *outlen = need;
    EVP_PKEY_free(k);
    return st;
}

kp_status mock_ks_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                         const uint8_t *inb, size_t inlen, kp_secret **dek)
{
    mock_inst *in = inst;
    kp_upcalls *up = &in->ctx->up;
    if (alg > 31 || !(MOCK_UNWRAP_ALGS & KP_ALG_BIT(alg)))
        return kp_errorf(up, in->h, KP_ERR_UNSUPPORTED, "mock: unwrap alg %u not offered", alg);
    EVP_PKEY *k = s_key(in, name, version);
    if (k == NULL)
        return kp_errorf(up, in->h, KP_ERR_NOT_FOUND, "mock: no key %s version %u", name, version);
    size_t n = (size_t)EVP_PKEY_get_size(k);
    kp_secret *s = up->secret_new(n);
    kp_status st = s == NULL ? KP_ERR_NOMEM : KP_OK;
    if (st == KP_OK &&
        (inlen != n || !s_rsa(k, 0, alg, inb, inlen, up->secret_data(s), &n) || n == 0))
        st = KP_ERR_CRYPTO;
    EVP_PKEY_free(k);
    if (st == KP_OK)
        st = up->secret_shrink(s, n);
    if (st != KP_OK) {
        up->secret_free(s);
        return kp_errorf(up, in->h, st, "mock: the bytes do not unwrap under %s", name);
    }
#ifdef MOCK_FAULT_BAD_UNWRAP
    up->secret_data(s)[n - 1] ^= 0x01; /* the fault: a DEK that is almost right */
#endif
#ifdef MOCK_FAULT_WRITE_AFTER_FREE
    kp_secret *scratch = up->secret_new(16);
    unsigned char *stale = scratch != NULL ? up->secret_data(scratch) : NULL;
    up->secret_free(scratch);
    if (stale != NULL)
        stale[3] = 0x5a; /* the fault: memory the core has taken back */
#endif
#ifdef MOCK_FAULT_LEAK_SECRET
    (void)kp_secret_dup(up, up->secret_cdata(s), n); /* the fault: a copy nobody frees */
#endif
    *dek = s;
    return KP_OK;
}

static kp_secret *s_pkcs8(kp_upcalls *up, EVP_PKEY *k)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
    unsigned char *der = NULL;
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    kp_secret *s = n > 0 ? kp_secret_dup(up, der, (size_t)n) : NULL;
    if (n > 0)
        OPENSSL_clear_free(der, (size_t)n);
    return s;
}

/* The key of name/version when it may leave the store. */
static kp_status s_exportable(mock_inst *in, const char *name, uint32_t version, EVP_PKEY **k)
{
    pthread_mutex_lock(&in->ctx->lock);
    mock_version *v = mock_version_find(mock_key_find(in->ctx, name), version);
    kp_status st = v == NULL                         ? KP_ERR_NOT_FOUND
                   : !(v->flags & KP_KEY_EXPORTABLE) ? KP_ERR_DENIED
                   : EVP_PKEY_up_ref(v->pkey)        ? KP_OK
                                                     : KP_ERR_NOMEM;
    *k = st == KP_OK ? v->pkey : NULL;
    pthread_mutex_unlock(&in->ctx->lock);
    if (st != KP_OK)
        return kp_errorf(&in->ctx->up, in->h, st, "mock: key %s version %u is %s", name, version,
                         st == KP_ERR_DENIED ? "not exportable" : "absent");
    return KP_OK;
}

kp_status mock_ks_export(void *inst, const char *name, uint32_t version, kp_secret **der)
{
    mock_inst *in = inst;
    EVP_PKEY *k = NULL;
    kp_status st = s_exportable(in, name, version, &k);
    if (st != KP_OK)
        return st;
    *der = s_pkcs8(&in->ctx->up, k);
    EVP_PKEY_free(k);
    return *der != NULL ? KP_OK : in->ctx->up.set_error(in->h, KP_ERR_NOMEM, "out of memory");
}

static uint32_t s_oaep(uint32_t method)
{
    return method == KP_KEYX_RSA_AES_KWP_SHA1 ? KP_WRAP_RSA_OAEP_SHA1 : KP_WRAP_RSA_OAEP_SHA256;
}

/* RFC 5649 with AES-256. */
static bool s_kwp(const uint8_t key[32], int enc, const uint8_t *in, size_t len, uint8_t *out,
                  size_t *outlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int a = 0, b = 0;
    bool ok = c != NULL;
    if (ok) {
        EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        ok = EVP_CipherInit_ex(c, EVP_aes_256_wrap_pad(), NULL, key, NULL, enc) > 0 &&
             EVP_CipherUpdate(c, out, &a, in, (int)len) > 0 &&
             EVP_CipherFinal_ex(c, out + a, &b) > 0;
    }
    EVP_CIPHER_CTX_free(c);
    *outlen = (size_t)(a + b);
    return ok;
}

kp_status mock_ks_export_wrapped(void *inst, const char *name, uint32_t version, uint32_t method,
                                 const uint8_t *wspki, size_t spki_len, uint8_t *out,
                                 size_t *outlen)
{
    mock_inst *in = inst;
    kp_upcalls *up = &in->ctx->up;
    if (method > 31 || !(MOCK_KEYX & KP_KEYX_BIT(method)))
        return kp_errorf(up, in->h, KP_ERR_UNSUPPORTED, "mock: method %u not offered", method);
    const unsigned char *p = wspki;
    EVP_PKEY *w = d2i_PUBKEY(NULL, &p, (long)spki_len);
    if (w == NULL || EVP_PKEY_get_base_id(w) != EVP_PKEY_RSA) {
        EVP_PKEY_free(w);
        return up->set_error(in->h, KP_ERR_INVALID_ARG, "mock: the wrapping key is not RSA");
    }
    EVP_PKEY *k = NULL;
    kp_status st = s_exportable(in, name, version, &k);
    kp_secret *der = st == KP_OK ? s_pkcs8(up, k) : NULL;
    EVP_PKEY_free(k);
    size_t rlen = (size_t)EVP_PKEY_get_size(w), dlen = der != NULL ? up->secret_len(der) : 0;
    size_t need = rlen + (dlen + 7) / 8 * 8 + 8;
    if (st == KP_OK && der == NULL)
        st = up->set_error(in->h, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK && *outlen < need) {
        *outlen = need;
        st = KP_ERR_BUFFER_TOO_SMALL;
    }
    if (st == KP_OK) {
        uint8_t aes[32];
        size_t n = rlen, m = 0;
        RAND_bytes(aes, sizeof(aes));
        if (!s_rsa(w, 1, s_oaep(method), aes, sizeof(aes), out, &n) ||
            !s_kwp(aes, 1, up->secret_cdata(der), dlen, out + n, &m))
            st = up->set_error(in->h, KP_ERR_CRYPTO, "mock: wrapping failed");
        *outlen = n + m;
        OPENSSL_cleanse(aes, sizeof(aes));
    }
    up->secret_free(der);
    EVP_PKEY_free(w);
    return st;
}

static const char s_token[] = "mock-kek-1";

kp_status mock_ks_import_offer(void *inst, const kp_key_spec *spec, kp_import_offer *offer)
{
    mock_inst *in = inst;
    mock_ctx *c = in->ctx;
    (void)spec;
    pthread_mutex_lock(&c->lock);
    if (c->kek == NULL)
        c->kek = EVP_RSA_gen(2048);
    unsigned char *der = NULL;
    int n = c->kek != NULL ? i2d_PUBKEY(c->kek, &der) : -1;
    pthread_mutex_unlock(&c->lock);
    if (n <= 0)
        return c->up.set_error(in->h, KP_ERR_CRYPTO, "mock: no key-exchange key");
    kp_status st = KP_OK;
    if (offer->wrapping_spki_len < (size_t)n || offer->token_len < sizeof(s_token) - 1) {
        st = KP_ERR_BUFFER_TOO_SMALL;
    } else {
        memcpy(offer->wrapping_spki, der, (size_t)n);
        memcpy(offer->token, s_token, sizeof(s_token) - 1);
        offer->methods = MOCK_KEYX;
        offer->expires = 0;
    }
    offer->wrapping_spki_len = (size_t)n;
    offer->token_len = sizeof(s_token) - 1;
    OPENSSL_free(der);
    return st;
}

kp_status mock_ks_import_wrapped(void *inst, const kp_key_spec *spec, uint32_t method,
                                 const uint8_t *token, size_t token_len, const uint8_t *blob,
                                 size_t bloblen, kp_key_info *info)
{
    mock_inst *in = inst;
    mock_ctx *c = in->ctx;
    kp_key_spec s;
    if (!kp_key_spec_read(spec, &s) || !mock_name_ok(s.name) || s.fingerprint == NULL)
        return c->up.set_error(in->h, KP_ERR_INVALID_ARG, "mock: a name and fingerprint needed");
    if (method > 31 || !(MOCK_KEYX & KP_KEYX_BIT(method)))
        return kp_errorf(&c->up, in->h, KP_ERR_UNSUPPORTED, "mock: method %u", method);
    if (token_len != sizeof(s_token) - 1 || memcmp(token, s_token, token_len) != 0 ||
        c->kek == NULL)
        return c->up.set_error(in->h, KP_ERR_CONFLICT, "mock: unknown or lapsed offer");
    uint8_t aes[1024]; /* RSA decryption wants room for a whole modulus */
    size_t rlen = (size_t)EVP_PKEY_get_size(c->kek), alen = sizeof(aes), plen = 0;
    uint8_t *p8 = bloblen > rlen ? malloc(bloblen - rlen) : NULL;
    EVP_PKEY *pk = NULL;
    if (p8 != NULL && s_rsa(c->kek, 0, s_oaep(method), blob, rlen, aes, &alen) && alen == 32 &&
        s_kwp(aes, 0, blob + rlen, bloblen - rlen, p8, &plen)) {
        const unsigned char *p = p8;
        PKCS8_PRIV_KEY_INFO *inf = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)plen);
        pk = inf != NULL ? EVP_PKCS82PKEY(inf) : NULL;
        PKCS8_PRIV_KEY_INFO_free(inf);
    }
    OPENSSL_cleanse(aes, sizeof(aes));
    if (p8 != NULL)
        OPENSSL_clear_free(p8, bloblen - rlen);
    if (pk == NULL)
        return c->up.set_error(in->h, KP_ERR_CRYPTO, "mock: the blob does not unwrap");
    kp_secret *der = s_pkcs8(&c->up, pk);
    EVP_PKEY_free(pk);
    if (der == NULL)
        return c->up.set_error(in->h, KP_ERR_NOMEM, "out of memory");
    kp_status st = mock_ks_import(inst, &s, der, info);
    c->up.secret_free(der);
    return st;
}
