/*
 * wrap-unwrap and unwrap-garbage: the keystore's reason to exist. Every declared alg must round
 * trip, and agree with OpenSSL both ways (the kit wraps from the public key alone and the plugin
 * must unwrap; when the kit imported the key it also unwraps the plugin's wrap); a wrap is bound
 * to its key version; undeclared algs are refused with KP_ERR_UNSUPPORTED; and bytes that are
 * not a wrap under the key give an error, never a DEK.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_crypto.h"
#include "conf_tests.h"

#define S_RSA(a) ((a) >= KP_WRAP_RSA_OAEP_SHA1 && (a) <= KP_WRAP_RSA_PKCS1)

/* KS_WRAP into a guarded buffer; *len bytes of out on KP_OK. */
static kp_status s_wrap(conf_run *r, const char *name, uint32_t v, uint32_t alg,
                        const kp_secret *dek, uint8_t *out, size_t *len)
{
    conf_buf b;
    size_t cap = *len;
    if (!conf_buf_new(&b, cap))
        return KP_ERR_NOMEM;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_wrap, KP_FN_KS_WRAP)(r->inst, name, v, alg, dek, b.p, len);
    if (st == KP_OK && (*len > cap || *len == 0 || !conf_buf_untouched(&b, cap))) {
        conf_fail(r,
                  "KS_WRAP(%s) returned KP_OK with %zu bytes in a buffer of %zu, or wrote past "
                  "it",
                  conf_alg_name(alg), *len, cap);
        st = KP_ERR_PLUGIN;
    }
    if (st == KP_OK)
        memcpy(out, b.p, *len);
    conf_buf_free(&b);
    return st;
}

/* KS_UNWRAP; on KP_OK the secret is adopted and returned in *dek. A status other than KP_OK
 * with a secret set is a fault. */
static kp_status s_unwrap(conf_run *r, const char *name, uint32_t v, uint32_t alg,
                          const uint8_t *in, size_t len, kp_secret **dek)
{
    *dek = NULL;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_unwrap, KP_FN_KS_UNWRAP)(r->inst, name, v, alg, in, len, dek);
    if (st != KP_OK && *dek != NULL) {
        conf_fail(r, "KS_UNWRAP(%s) returned %s and a secret", conf_alg_name(alg),
                  conf_status_name(st));
        *dek = NULL;
    }
    if (st == KP_OK && !conf_secret_adopt(r, *dek, "KS_UNWRAP")) {
        *dek = NULL;
        st = KP_ERR_PLUGIN;
    }
    if (st == KP_OK && conf_secret_size(*dek) == 0) {
        conf_fail(r, "KS_UNWRAP(%s) returned KP_OK with an empty secret", conf_alg_name(alg));
        conf_secret_free(*dek);
        *dek = NULL;
        st = KP_ERR_PLUGIN;
    }
    return st;
}

static bool s_same(const kp_secret *a, const uint8_t *b, size_t n)
{
    return conf_secret_size(a) == n && memcmp(conf_secret_bytes(a), b, n) == 0;
}

/* What a DEK d (n bytes) that wrapped into out/len must give back: the plugin's own unwrap,
 * OpenSSL's decryption with the private key, and the plugin's unwrap of OpenSSL's wrap. */
static void s_unwraps(conf_run *r, const conf_key *key, EVP_PKEY *pub, uint32_t alg,
                      const uint8_t *d, size_t n, const uint8_t *out, size_t len)
{
    const char *an = conf_alg_name(alg);
    kp_secret *back = NULL;
    kp_status st = s_unwrap(r, key->name, 0, alg, out, len, &back);
    if (st != KP_OK && st != KP_ERR_PLUGIN)
        conf_fail(r, "KS_UNWRAP(%s) of its own wrap: %s: %s", an, conf_status_name(st),
                  conf_reason());
    else if (back != NULL && !s_same(back, d, n))
        conf_fail(r,
                  "KS_UNWRAP(%s) of its own wrap returned other bytes than were wrapped (%zu "
                  "bytes, want %zu)",
                  an, conf_secret_size(back), n);
    conf_secret_free(back);
    if (S_RSA(alg) && key->priv != NULL) {
        uint8_t plain[1024];
        size_t pn = sizeof(plain);
        if (!conf_rsa_decrypt(key->priv, alg, out, len, plain, &pn) || pn != n ||
            memcmp(plain, d, n) != 0)
            conf_fail(r, "the plugin's %s wrap does not unwrap with OpenSSL to the DEK", an);
    }
    if (S_RSA(alg) && pub != NULL) {
        size_t ctlen = 0;
        uint8_t *ct = conf_rsa_encrypt(pub, alg, d, n, &ctlen);
        if (ct != NULL) {
            back = NULL;
            st = s_unwrap(r, key->name, 0, alg, ct, ctlen, &back);
            if (st != KP_OK && st != KP_ERR_PLUGIN)
                conf_fail(r, "KS_UNWRAP(%s) of an OpenSSL wrap under its public key: %s: %s", an,
                          conf_status_name(st), conf_reason());
            else if (back != NULL && !s_same(back, d, n))
                conf_fail(r, "KS_UNWRAP(%s) of an OpenSSL wrap returned other bytes", an);
            conf_secret_free(back);
            free(ct);
        }
    }
}

static void s_round_trip(conf_run *r, const conf_key *key, EVP_PKEY *pub, uint32_t alg, size_t n)
{
    uint8_t d[64], out[1024];
    conf_random(d, n);
    kp_secret *dek = conf_secret_new(d, n);
    size_t len = sizeof(out);
    const char *an = conf_alg_name(alg);
    kp_status st = s_wrap(r, key->name, 0, alg, dek, out, &len);
    if (!s_same(dek, d, n))
        conf_fail(r, "KS_WRAP(%s) changed the DEK it was lent", an);
    if (st == KP_OK)
        s_unwraps(r, key, pub, alg, d, n, out, len);
    else if (st != KP_ERR_PLUGIN)
        conf_fail(r, "KS_WRAP(%s, %zu-byte DEK): %s: %s", an, n, conf_status_name(st),
                  conf_reason());
    conf_secret_free(dek);
}

/* An alg the instance does not declare for this operation: KP_ERR_UNSUPPORTED. */
static void s_refused(conf_run *r, const conf_key *key, EVP_PKEY *pub, uint32_t alg, bool wrap)
{
    uint8_t d[32], out[1024];
    conf_random(d, sizeof(d));
    kp_status st;
    if (wrap) {
        kp_secret *dek = conf_secret_new(d, sizeof(d));
        size_t len = sizeof(out);
        st = s_wrap(r, key->name, 0, alg, dek, out, &len);
        conf_secret_free(dek);
    } else {
        size_t len = 0;
        uint8_t *ct =
            S_RSA(alg) && pub != NULL ? conf_rsa_encrypt(pub, alg, d, sizeof(d), &len) : NULL;
        kp_secret *back = NULL;
        st = s_unwrap(r, key->name, 0, alg, ct != NULL ? ct : out, ct != NULL ? len : 40, &back);
        conf_secret_free(back);
        free(ct);
    }
    bool odd = alg == 0 || alg > KP_WRAP_AES_KWP; /* not an alg at all */
    if (st != KP_ERR_UNSUPPORTED && !(odd && st == KP_ERR_INVALID_ARG) && st != KP_ERR_PLUGIN)
        conf_fail(r,
                  "KS_%s with %s (alg %u), which the instance does not declare for it: %s, "
                  "want KP_ERR_UNSUPPORTED",
                  wrap ? "WRAP" : "UNWRAP", conf_alg_name(alg), alg, conf_status_name(st));
}

/* A wrap under version 1 does not unwrap under version 2 of the same name. */
static void s_versions(conf_run *r, const conf_key *key, uint32_t alg)
{
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = key->name,
                        .type = KP_KEY_RSA,
                        .bits = conf_key_bits(r->kit)};
    kp_key_info v2;
    memset(&v2, 0, sizeof(v2));
    v2.struct_size = sizeof(v2);
    kp_ks_create_fn *create = CONF_FN(r->kit, ks_create, KP_FN_KS_CREATE);
    if (create == NULL)
        return; /* versions by import: covered by the versions test */
    conf_err_clear();
    kp_status st = create(r->inst, &spec, &v2);
    if (st != KP_OK) {
        conf_fail(r, "KS_CREATE of version 2: %s: %s", conf_status_name(st), conf_reason());
        return;
    }
    uint8_t d[32], out[1024];
    conf_random(d, sizeof(d));
    kp_secret *dek = conf_secret_new(d, sizeof(d)), *back = NULL;
    size_t len = sizeof(out);
    if (s_wrap(r, key->name, 1, alg, dek, out, &len) == KP_OK) {
        st = s_unwrap(r, key->name, v2.version, alg, out, len, &back);
        if (st == KP_OK)
            conf_fail(r,
                      "KS_UNWRAP under version %u returned a DEK for a wrap made under "
                      "version 1",
                      v2.version);
        conf_secret_free(back);
        back = NULL;
        st = s_unwrap(r, key->name, 1, alg, out, len, &back);
        if (st != KP_OK)
            conf_fail(r, "KS_UNWRAP under version 1 after version 2 was made: %s",
                      conf_status_name(st));
        else if (!s_same(back, d, sizeof(d)))
            conf_fail(r, "KS_UNWRAP under version 1 returned other bytes");
        conf_secret_free(back);
    }
    conf_secret_free(dek);
}

#define S_AES_ALGS (KP_ALG_BIT(KP_WRAP_AES_KW) | KP_ALG_BIT(KP_WRAP_AES_KWP))

/* An AES-256 key for the AES algs, when the instance declares one and can create keys. */
static bool s_aes_key(conf_run *r, const char *tag, conf_key *key)
{
    kp_ks_create_fn *create = CONF_FN(r->kit, ks_create, KP_FN_KS_CREATE);
    memset(key, 0, sizeof(*key));
    if (!(r->kit->iinfo.wrap_algs & S_AES_ALGS) || create == NULL)
        return false;
    conf_name(r->kit, tag, key->name);
    kp_key_spec spec = {
        .struct_size = sizeof(spec), .name = key->name, .type = KP_KEY_AES, .bits = 256};
    key->info.struct_size = sizeof(key->info);
    conf_err_clear();
    kp_status st = create(r->inst, &spec, &key->info);
    if (st != KP_OK)
        conf_fail(r, "KS_CREATE of an AES-256 key (the instance declares AES wrap algs): %s: %s",
                  conf_status_name(st), conf_reason());
    return st == KP_OK;
}

static EVP_PKEY *s_public(conf_run *r, const conf_key *key)
{
    size_t n = 0;
    uint8_t *spki = conf_get_spki(r, key->name, 0, &n);
    EVP_PKEY *pub = spki != NULL ? conf_pkey_from_spki(spki, n) : NULL;
    free(spki);
    return pub;
}

/* The note names the algs that were round-tripped. */
static void s_note(conf_run *r, uint32_t alg)
{
    size_t n = strlen(r->note);
    snprintf(r->note + n, sizeof(r->note) - n, "%s%s", n == 0 ? "round trips: " : ", ",
             conf_alg_name(alg));
}

void conf_t_wrap(conf_run *r)
{
    const kp_instance_info *ii = &r->kit->iinfo;
    conf_key key;
    if (!conf_key_make(r, "wrap", 0, true, &key))
        return;
    EVP_PKEY *pub = s_public(r, &key);
    conf_key aes;
    bool have_aes = s_aes_key(r, "wrapaes", &aes);
    uint32_t first = 0;
    for (uint32_t alg = KP_WRAP_RSA_OAEP_SHA1; alg <= KP_WRAP_AES_KWP; alg++) {
        bool w = ii->wrap_algs & KP_ALG_BIT(alg), u = ii->unwrap_algs & KP_ALG_BIT(alg);
        if (w && (S_RSA(alg) || have_aes))
            s_note(r, alg);
        if (w && !S_RSA(alg)) {
            if (have_aes) {
                s_round_trip(r, &aes, NULL, alg, 16);
                s_round_trip(r, &aes, NULL, alg, 32);
            }
        } else if (w) {
            first = first == 0 ? alg : first;
            s_round_trip(r, &key, pub, alg, 16);
            s_round_trip(r, &key, pub, alg, 32);
        } else if (u && S_RSA(alg) && pub != NULL) {
            /* unwrap only: what OpenSSL wraps must unwrap */
            uint8_t d[32];
            size_t len = 0;
            conf_random(d, sizeof(d));
            uint8_t *ct = conf_rsa_encrypt(pub, alg, d, sizeof(d), &len);
            kp_secret *back = NULL;
            kp_status st = ct != NULL ? s_unwrap(r, key.name, 0, alg, ct, len, &back) : KP_OK;
            if (ct != NULL && st != KP_OK)
                conf_fail(r, "KS_UNWRAP(%s) of an OpenSSL wrap: %s: %s", conf_alg_name(alg),
                          conf_status_name(st), conf_reason());
            else if (back != NULL && !s_same(back, d, sizeof(d)))
                conf_fail(r, "KS_UNWRAP(%s) of an OpenSSL wrap returned other bytes",
                          conf_alg_name(alg));
            conf_secret_free(back);
            free(ct);
        }
        if (!w)
            s_refused(r, &key, pub, alg, true);
        if (!u)
            s_refused(r, &key, pub, alg, false);
    }
    s_refused(r, &key, pub, 0, true);
    s_refused(r, &key, pub, 99, false);
    if (first != 0)
        s_versions(r, &key, first);
    EVP_PKEY_free(pub);
    conf_key_free(&key);
}

/* One garbage input: never KP_OK; KP_ERR_CRYPTO when right_len (a length a wrap has). */
static void s_garbage(conf_run *r, const char *name, uint32_t alg, const uint8_t *in, size_t len,
                      bool right_len, const char *what)
{
    kp_secret *back = NULL;
    kp_status st = s_unwrap(r, name, 0, alg, in, len, &back);
    if (st == KP_OK) {
        conf_fail(r, "KS_UNWRAP(%s) of %s returned KP_OK and %s", conf_alg_name(alg), what,
                  back != NULL && conf_secret_size(back) == 0 ? "an empty secret" : "bytes");
    } else if (st != KP_ERR_PLUGIN && st != KP_ERR_CRYPTO &&
               !(st == KP_ERR_INVALID_ARG && !right_len)) {
        conf_fail(r, "KS_UNWRAP(%s) of %s: %s, want KP_ERR_CRYPTO%s", conf_alg_name(alg), what,
                  conf_status_name(st), right_len ? "" : " or KP_ERR_INVALID_ARG");
    }
    conf_secret_free(back);
}

/* AES algs: the kit cannot wrap without the key, so it spoils one of the plugin's wraps. */
static void s_aes_garbage(conf_run *r, const char *name, uint32_t alg)
{
    uint8_t d[32], out[1024], rnd[40];
    size_t len = sizeof(out);
    conf_random(d, sizeof(d));
    conf_random(rnd, sizeof(rnd));
    kp_secret *dek = conf_secret_new(d, sizeof(d));
    kp_status st = s_wrap(r, name, 0, alg, dek, out, &len);
    conf_secret_free(dek);
    if (st != KP_OK) {
        conf_fail(r, "KS_WRAP(%s): %s", conf_alg_name(alg), conf_status_name(st));
        return;
    }
    s_garbage(r, name, alg, rnd, len, true, "random bytes");
    out[len / 2] ^= 0x10;
    s_garbage(r, name, alg, out, len, true, "a wrap with one bit flipped");
    out[len / 2] ^= 0x10;
    s_garbage(r, name, alg, out, len - 8, false, "a wrap 8 bytes short");
    s_garbage(r, name, alg, out, 0, false, "no bytes");
}

void conf_t_unwrap_garbage(conf_run *r)
{
    const kp_instance_info *ii = &r->kit->iinfo;
    conf_key key;
    if (!conf_key_make(r, "garbage", 0, false, &key))
        return;
    EVP_PKEY *pub = s_public(r, &key);
    size_t n = pub != NULL ? (size_t)EVP_PKEY_get_size(pub) : 0;
    for (uint32_t alg = KP_WRAP_RSA_OAEP_SHA1; pub != NULL && alg <= KP_WRAP_RSA_PKCS1; alg++) {
        if (!(ii->unwrap_algs & KP_ALG_BIT(alg)))
            continue;
        uint8_t d[32], rnd[1024], big[1025];
        size_t len = 0;
        conf_random(d, sizeof(d));
        conf_random(rnd, n);
        rnd[0] &= 0x7f; /* below the modulus: a ciphertext RSA accepts, with no valid padding */
        s_garbage(r, key.name, alg, rnd, n, true, "random bytes");
        uint8_t *ct = conf_rsa_encrypt(pub, alg, d, sizeof(d), &len);
        if (ct == NULL)
            continue;
        ct[len / 2] ^= 0x10;
        s_garbage(r, key.name, alg, ct, len, true, "a wrap with one bit flipped");
        ct[len / 2] ^= 0x10;
        s_garbage(r, key.name, alg, ct, len - 1, false, "a wrap one byte short");
        s_garbage(r, key.name, alg, ct, len / 2, false, "half a wrap");
        s_garbage(r, key.name, alg, ct, 0, false, "no bytes");
        memcpy(big, ct, len);
        big[len] = 0;
        s_garbage(r, key.name, alg, big, len + 1, false, "a wrap with a byte appended");
        free(ct);
    }
    conf_key aes;
    bool have_aes = s_aes_key(r, "garbageaes", &aes);
    for (uint32_t alg = KP_WRAP_AES_KW; have_aes && alg <= KP_WRAP_AES_KWP; alg++)
        if (ii->wrap_algs & KP_ALG_BIT(alg))
            s_aes_garbage(r, aes.name, alg);
    if (pub == NULL)
        conf_fail(r, "no public key to make garbage for");
    EVP_PKEY_free(pub);
    conf_key_free(&key);
}
