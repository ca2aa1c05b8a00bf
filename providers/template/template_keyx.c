/*
 * template: moving a private key between stores without it being in the clear outside them (the
 * negotiated import of ABI 1.0). The target offers an RSA wrapping key and a token
 * (KS_IMPORT_OFFER); the source wraps its key under that key (KS_EXPORT_WRAPPED); the target
 * unwraps and imports it (KS_IMPORT_WRAPPED), checking the expected fingerprint before the key
 * is visible. The wrapping is CKM_RSA_AES_KEY_WRAP: RSA-OAEP(wrapping key, a fresh AES-256 key)
 * followed by AES key wrap with padding (RFC 5649) of the PKCS#8 PrivateKeyInfo, with SHA-1 or
 * SHA-256 in OAEP: what Key Vault BYOK, AWS KMS, GCP import jobs and Vault transit take. A
 * backend that does this itself (an HSM, a KMS import) calls its service instead.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "template.h"

#define AES_KEY_LEN 32
#define KEK_BITS 3072 /* the wrapping key: at least as strong as the keys it carries */

static const EVP_MD *s_keyx_md(uint32_t method)
{
    return method == KP_KEYX_RSA_AES_KWP_SHA1     ? EVP_sha1()
           : method == KP_KEYX_RSA_AES_KWP_SHA256 ? EVP_sha256()
                                                  : NULL;
}

/* RFC 5649 wrap (or unwrap) of in under the AES-256 key; out holds inlen + 8 bytes (wrap) or
 * inlen - 8 (unwrap); *outlen receives what was written. */
static bool s_kwp(tpl_inst *t, const kp_secret *key, int wrap, const uint8_t *in, size_t inlen,
                  uint8_t *out, size_t *outlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    bool ok = c != NULL && inlen <= INT32_MAX;
    if (ok) {
        EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        ok = EVP_CipherInit_ex(c, EVP_aes_256_wrap_pad(), NULL, t->up->secret_cdata(key), NULL,
                               wrap) == 1 &&
             EVP_CipherUpdate(c, out, &n, in, (int)inlen) == 1 &&
             EVP_CipherFinal_ex(c, out + n, &fin) == 1;
    }
    EVP_CIPHER_CTX_free(c);
    *outlen = (size_t)n + (size_t)fin;
    return ok;
}

/* The instance's wrapping key, made by the first offer. Made outside the lock (seconds of
 * work); when two threads race, one key wins and the other is dropped. It lives until close. */
static kp_status s_kek(tpl_inst *t, EVP_PKEY **kek)
{
    EVP_PKEY *fresh;
    pthread_mutex_lock(&t->lock);
    *kek = t->kek;
    pthread_mutex_unlock(&t->lock);
    if (*kek != NULL)
        return KP_OK;
    if ((fresh = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)KEK_BITS)) == NULL)
        return tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot generate the wrapping key");
    pthread_mutex_lock(&t->lock);
    if (t->kek == NULL)
        t->kek = fresh, fresh = NULL;
    *kek = t->kek;
    pthread_mutex_unlock(&t->lock);
    EVP_PKEY_free(fresh);
    return KP_OK;
}

kp_status tpl_ks_import_offer(void *inst, const kp_key_spec *in, kp_import_offer *offer)
{
    tpl_inst *t = inst;
    uint8_t token[TPL_TOKEN_LEN];
    kp_key_spec spec;
    EVP_PKEY *kek;
    tpl_offer *slot;
    int n;

    KP_GUARD(tpl_spec_check(t, in, &spec));
    /* The core owns offer and sets struct_size: every member we write must be inside it. */
    if (offer == NULL || !KP_HAS_MEMBER(offer, kp_import_offer, token_len) ||
        (offer->wrapping_spki == NULL && offer->wrapping_spki_len != 0) ||
        (offer->token == NULL && offer->token_len != 0))
        return tpl_err(t, KP_ERR_INVALID_ARG, "bad import offer");
    KP_GUARD(s_kek(t, &kek));
    if ((n = i2d_PUBKEY(kek, NULL)) <= 0)
        return tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot encode the wrapping key for %s", spec.name);
    /* Both buffers follow the buffer convention together. */
    if (offer->wrapping_spki_len < (size_t)n || offer->token_len < TPL_TOKEN_LEN) {
        offer->wrapping_spki_len = (size_t)n;
        offer->token_len = TPL_TOKEN_LEN;
        return tpl_err(t, KP_ERR_BUFFER_TOO_SMALL, "an offer needs %d + %d bytes", n,
                       TPL_TOKEN_LEN);
    }
    if (RAND_bytes(token, sizeof(token)) != 1)
        return tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot make an offer for %s", spec.name);

    /* The token names the offer; KS_IMPORT_WRAPPED must present it before it lapses. A real
     * service keeps its own (a KMS import token, a Key Vault key-exchange key id). */
    pthread_mutex_lock(&t->lock);
    slot = &t->offers[t->next_offer++ % TPL_OFFERS];
    memcpy(slot->token, token, sizeof(token));
    memcpy(slot->name, spec.name, strlen(spec.name) + 1);
    slot->expires = (int64_t)time(NULL) + TPL_OFFER_TTL;
    offer->expires = slot->expires;
    pthread_mutex_unlock(&t->lock);

    offer->methods = TPL_KEYX;
    i2d_PUBKEY(kek, &offer->wrapping_spki);
    offer->wrapping_spki -= n; /* i2d advanced the caller's pointer: put it back */
    offer->wrapping_spki_len = (size_t)n;
    memcpy(offer->token, token, sizeof(token));
    offer->token_len = TPL_TOKEN_LEN;
    return KP_OK;
}

/* Finds the live offer of token, made for name. */
static kp_status s_offer_find(tpl_inst *t, const uint8_t *token, size_t token_len, const char *name)
{
    kp_status st = KP_ERR_CONFLICT;
    int64_t now = (int64_t)time(NULL);
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < TPL_OFFERS && token_len == TPL_TOKEN_LEN; i++) {
        const tpl_offer *o = &t->offers[i];
        if (o->expires > now && memcmp(o->token, token, TPL_TOKEN_LEN) == 0) {
            st = strcmp(o->name, name) == 0 ? KP_OK : KP_ERR_INVALID_ARG;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (st == KP_ERR_CONFLICT)
        return tpl_err(t, st, "key %s: the import offer lapsed", name);
    if (st != KP_OK)
        return tpl_err(t, st, "key %s: the offer was for another key", name);
    return KP_OK;
}

/* RSA part then AES part, as s_wrap writes them: *p8 receives the PKCS#8 DER (caller frees). */
static kp_status s_unwrap(tpl_inst *t, const char *name, const EVP_MD *md, const uint8_t *blob,
                          size_t bloblen, kp_secret **p8)
{
    EVP_PKEY *kek;
    EVP_PKEY_CTX *ctx = NULL;
    kp_secret *aes = NULL, *key = NULL;
    size_t rsalen, n = 0;
    kp_status st = KP_OK;

    pthread_mutex_lock(&t->lock);
    kek = t->kek; /* set: the offer that was found made it */
    pthread_mutex_unlock(&t->lock);
    rsalen = (size_t)EVP_PKEY_get_size(kek);
    *p8 = NULL;
    if (bloblen < rsalen + 16 || (bloblen - rsalen) % 8 != 0)
        return tpl_err(t, KP_ERR_CRYPTO, "key %s: %zu bytes are not an RSA-AES wrapped key", name,
                       bloblen);
    /* Both plaintexts go into secret memory: the AES key and the PKCS#8 it unwraps. */
    aes = t->up->secret_new(rsalen);
    key = t->up->secret_new(bloblen - rsalen - 8);
    if (aes == NULL || key == NULL)
        st = tpl_err(t, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK) {
        n = rsalen;
        bool ok = (ctx = tpl_oaep_ctx(kek, md, false)) != NULL &&
                  EVP_PKEY_decrypt(ctx, t->up->secret_data(aes), &n, blob, rsalen) > 0 &&
                  n == AES_KEY_LEN &&
                  s_kwp(t, aes, 0, blob + rsalen, bloblen - rsalen, t->up->secret_data(key), &n);
        if (ok)
            ok = t->up->secret_shrink(key, n) == KP_OK;
        if (!ok) {
            ERR_clear_error(); /* no reason beyond "it did not": see tpl_ks_unwrap */
            st = tpl_err(t, KP_ERR_CRYPTO, "key %s does not unwrap under the offer's wrapping key",
                         name);
        }
    }
    if (st == KP_OK) {
        *p8 = key;
        key = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    t->up->secret_free(aes);
    t->up->secret_free(key);
    return st;
}

kp_status tpl_ks_import_wrapped(void *inst, const kp_key_spec *in, uint32_t method,
                                const uint8_t *token, size_t token_len, const uint8_t *blob,
                                size_t bloblen, kp_key_info *info)
{
    tpl_inst *t = inst;
    const EVP_MD *md = s_keyx_md(method);
    kp_secret *p8;
    kp_key_spec spec;
    EVP_PKEY *pkey;
    kp_status st = KP_OK;

    KP_GUARD(tpl_spec_check(t, in, &spec));
    if (spec.fingerprint == NULL)
        return tpl_err(t, KP_ERR_INVALID_ARG,
                       "key %s: a wrapped import needs the expected fingerprint", spec.name);
    if (md == NULL)
        return tpl_err(t, KP_ERR_UNSUPPORTED, "key transfer method %u is not RSA-AES key wrap",
                       method);
    if (token == NULL || blob == NULL)
        return tpl_err(t, KP_ERR_INVALID_ARG, "no token or wrapped key");
    KP_GUARD(s_offer_find(t, token, token_len, spec.name));
    KP_GUARD(s_unwrap(t, spec.name, md, blob, bloblen, &p8));
    st = tpl_pkey_from_pkcs8(t, &spec, p8, &pkey);
    t->up->secret_free(p8);
    KP_GUARD(st);
    return tpl_key_add(t, &spec, pkey, info); /* checks spec.fingerprint before listing it */
}

/* out = RSA-OAEP(wk, fresh AES key) || KWP(AES key, p8); out holds what s_export_len says. */
static bool s_wrap(tpl_inst *t, EVP_PKEY *wk, const EVP_MD *md, const kp_secret *p8, uint8_t *out)
{
    size_t rsalen = (size_t)EVP_PKEY_get_size(wk), n = rsalen;
    kp_secret *aes = t->up->secret_new(AES_KEY_LEN);
    EVP_PKEY_CTX *ctx = NULL;
    bool ok = aes != NULL && RAND_priv_bytes(t->up->secret_data(aes), AES_KEY_LEN) == 1 &&
              (ctx = tpl_oaep_ctx(wk, md, true)) != NULL &&
              EVP_PKEY_encrypt(ctx, out, &n, t->up->secret_cdata(aes), AES_KEY_LEN) > 0 &&
              n == rsalen &&
              s_kwp(t, aes, 1, t->up->secret_cdata(p8), t->up->secret_len(p8), out + rsalen, &n);
    EVP_PKEY_CTX_free(ctx);
    t->up->secret_free(aes);
    return ok;
}

kp_status tpl_ks_export_wrapped(void *inst, const char *name, uint32_t version, uint32_t method,
                                const uint8_t *wrapping_spki, size_t spki_len, uint8_t *out,
                                size_t *outlen)
{
    tpl_inst *t = inst;
    const EVP_MD *md = s_keyx_md(method);
    const unsigned char *p = wrapping_spki;
    PKCS8_PRIV_KEY_INFO *pi = NULL;
    kp_secret *p8 = NULL;
    const tpl_key *k;
    EVP_PKEY *wk = NULL;
    size_t need = 0;
    kp_status st = KP_OK;
    int n = 0;

    if (md == NULL)
        return tpl_err(t, KP_ERR_UNSUPPORTED, "key transfer method %u is not RSA-AES key wrap",
                       method);
    if (wrapping_spki == NULL || outlen == NULL || (out == NULL && *outlen != 0))
        return tpl_err(t, KP_ERR_INVALID_ARG, "no wrapping key or buffer");
    KP_GUARD(tpl_key_find(t, name, version, &k));
    if ((k->info.flags & KP_KEY_EXPORTABLE) == 0)
        return tpl_err(t, KP_ERR_DENIED, "key %s version %u was not created exportable", name,
                       k->info.version);
    wk = d2i_PUBKEY(NULL, &p, (long)spki_len);
    if (wk == NULL || p != wrapping_spki + spki_len || EVP_PKEY_get_base_id(wk) != EVP_PKEY_RSA ||
        EVP_PKEY_get_bits(wk) < 2048) {
        ERR_clear_error();
        st = tpl_err(t, KP_ERR_INVALID_ARG,
                     "the wrapping key is not an RSA key of 2048 bits or more");
    }
    /* The PKCS#8 encoding goes into secret memory; OpenSSL wipes its own copy when freed. */
    if (st == KP_OK &&
        ((pi = EVP_PKEY2PKCS8(k->pkey)) == NULL || (n = i2d_PKCS8_PRIV_KEY_INFO(pi, NULL)) <= 0))
        st = tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot encode key %s", name);
    if (st == KP_OK)
        need = (size_t)EVP_PKEY_get_size(wk) + ((size_t)n + 7) / 8 * 8 + 8;
    if (st == KP_OK && *outlen < need) {
        *outlen = need;
        st = tpl_err(t, KP_ERR_BUFFER_TOO_SMALL, "key %s wrapped needs %zu bytes", name, need);
    }
    if (st == KP_OK && (p8 = t->up->secret_new((size_t)n)) == NULL)
        st = tpl_err(t, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK) {
        unsigned char *w = t->up->secret_data(p8);
        i2d_PKCS8_PRIV_KEY_INFO(pi, &w);
        if (!s_wrap(t, wk, md, p8, out))
            st = tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot wrap key %s", name);
    }
    if (st == KP_OK)
        *outlen = need;
    t->up->secret_free(p8);
    PKCS8_PRIV_KEY_INFO_free(pi);
    EVP_PKEY_free(wk);
    return st;
}
