/*
 * template: the keystore. Keys are software RSA keys (OpenSSL EVP_PKEY) in a list sorted by
 * name and version. A plugin for a real backend keeps the ABI handling of these functions (spec
 * reading, version numbering, the buffer convention, error text) and replaces the list with
 * calls to its service; docs/plugin-guide.md shows how to map keyplane's version numbers onto a
 * backend that numbers versions its own way.
 *
 * It also holds the helper the other files share (the sorted list's insert), so that every
 * file of the template calls into this one and never back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "template.h"

/* --- What every file shares ---------------------------------------------------------------- */

kp_status tpl_vec_insert(tpl_vec *vec, size_t at, void *item)
{
    if (vec->n == vec->cap) {
        size_t cap = vec->cap != 0 ? vec->cap * 2 : 8;
        void **v = realloc(vec->v, cap * sizeof(*v));
        if (v == NULL)
            return KP_ERR_NOMEM;
        vec->v = v;
        vec->cap = cap;
    }
    memmove(&vec->v[at + 1], &vec->v[at], (vec->n - at) * sizeof(*vec->v));
    vec->v[at] = item;
    vec->n++;
    return KP_OK;
}

/* --- The keystore ------------------------------------------------------------------------ */

static bool s_rsa_bits_ok(uint32_t bits)
{
    return bits == 2048 || bits == 3072 || bits == 4096;
}

/* Where name/version is, or would go, in the sorted list, and what name already has. */
typedef struct s_pos {
    size_t at;             /* insertion index for name/version */
    const tpl_key *hit;    /* name/version itself */
    const tpl_key *latest; /* the highest version of name */
    uint32_t count;        /* versions of name */
} s_pos;

static void s_locate(const tpl_inst *t, const char *name, uint32_t version, s_pos *p)
{
    bool placed = false;
    *p = (s_pos){.at = t->keys.n};
    for (size_t i = 0; i < t->keys.n; i++) {
        const tpl_key *k = t->keys.v[i];
        int c = strcmp(k->info.name, name);
        if (c < 0)
            continue;
        if (c > 0 || k->info.version > version) {
            if (!placed)
                p->at = i, placed = true;
            if (c > 0)
                break;
        }
        if (c == 0) {
            p->count++;
            p->latest = k;
            if (k->info.version == version)
                p->hit = k;
        }
    }
}

void tpl_key_free(tpl_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

/* The store's rules for a key spec, shared by PLUGIN_CHECK_KEY (asked before anything exists)
 * and every create and import, so what validation promises and what the store does cannot
 * drift apart. KP_OK, or a status with the reason in why. */
kp_status tpl_spec_rules(const kp_key_spec *spec, char *why, size_t len)
{
    if (spec->name == NULL || !kpk_key_name_valid(spec->name)) {
        snprintf(why, len, "key name \"%.127s\" is not 1-127 of [A-Za-z0-9._-]",
                 spec->name != NULL ? spec->name : "");
        return KP_ERR_INVALID_ARG;
    }
    if (spec->type != KP_KEY_RSA) {
        snprintf(why, len, "key %s: keys are RSA only", spec->name);
        return KP_ERR_UNSUPPORTED;
    }
    if (spec->bits != 0 && !s_rsa_bits_ok(spec->bits)) {
        snprintf(why, len, "key %s: RSA keys are 2048, 3072 or 4096 bits, not %u", spec->name,
                 spec->bits);
        return KP_ERR_UNSUPPORTED;
    }
    /* Refuse what we cannot honour rather than ignore it: a flag added by a later minor. */
    if ((spec->flags & ~KP_KEY_EXPORTABLE) != 0) {
        snprintf(why, len, "key %s: unknown flags 0x%x", spec->name, spec->flags);
        return KP_ERR_UNSUPPORTED;
    }
    return KP_OK;
}

/* Reads the core's spec into a local one (kp_key_spec_read copes with a core whose spec is
 * shorter or longer than ours) and checks what every create and import needs. */
kp_status tpl_spec_check(tpl_inst *t, const kp_key_spec *in, kp_key_spec *spec)
{
    char why[256];
    kp_status st = KP_OK;
    if (!kp_key_spec_read(in, spec))
        return tpl_err(t, KP_ERR_INVALID_ARG, "no key spec");
    if ((st = tpl_spec_rules(spec, why, sizeof(why))) != KP_OK)
        return tpl_err(t, st, "%s", why);
    if (spec->fingerprint != NULL && !kpk_fpr_valid(spec->fingerprint))
        return tpl_err(t, KP_ERR_INVALID_ARG,
                       "key %s: the expected fingerprint is not 64 lower-case hex digits",
                       spec->name);
    return KP_OK;
}

/* Lists k as version spec->version of spec->name (0: the next free one) under the lock;
 * *count receives how many versions the name had. Sets no error text: nothing calls into the
 * core under the lock, so the caller words what this answers. */
static kp_status s_insert(tpl_inst *t, const kp_key_spec *spec, tpl_key *k, uint32_t *count)
{
    s_pos pos;
    kp_status st = KP_OK;

    pthread_mutex_lock(&t->lock);
    s_locate(t, spec->name, spec->version, &pos);
    *count = (uint32_t)pos.count;
    /* keyplane chooses the numbers so that every replica of a chain numbers alike: take
     * exactly the one asked for, or the next free one when asked for 0. */
    k->info.version = spec->version != 0   ? spec->version
                      : pos.latest != NULL ? pos.latest->info.version + 1
                                           : 1;
    if (spec->version != 0 && pos.hit != NULL)
        st = KP_ERR_EXISTS;
    else if (k->info.version == 0 || (t->max_versions != 0 && pos.count >= t->max_versions))
        st = KP_ERR_DENIED;
    if (st == KP_OK) {
        /* The backend's own id of the version: a Key Vault kid, a KMS key ARN, a path. */
        snprintf(k->info.backend_id, sizeof(k->info.backend_id), "mem:%s/%u", spec->name,
                 k->info.version);
        if (spec->version == 0)
            s_locate(t, spec->name, k->info.version, &pos);
        st = tpl_vec_insert(&t->keys, pos.at, k);
    }
    pthread_mutex_unlock(&t->lock);
    return st;
}

/*
 * Makes pkey version spec->version (0: the next free one) of spec->name. Takes pkey whatever
 * happens: it is in the list, or freed. The expected fingerprint is compared before the key is
 * in the list, so no reader ever sees a key that fails it and a refused import leaves nothing
 * behind.
 */
kp_status tpl_key_add(tpl_inst *t, const kp_key_spec *spec, EVP_PKEY *pkey, kp_key_info *out)
{
    char fpr[KPK_FPR_HEX];
    tpl_key *k = NULL;
    uint32_t count = 0;
    kp_status st = KP_OK;

    if (kpk_fpr_pkey(pkey, fpr) != KP_OK)
        st = tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot fingerprint key %s", spec->name);
    else if (spec->fingerprint != NULL && strcmp(fpr, spec->fingerprint) != 0)
        st = tpl_err(t, KP_ERR_INTEGRITY,
                     "key %s: the key's fingerprint %.16s... is not the expected %.16s...",
                     spec->name, fpr, spec->fingerprint);
    else if ((k = calloc(1, sizeof(*k))) == NULL)
        st = tpl_err(t, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK) {
        k->info = (kp_key_info){
            .struct_size = sizeof(kp_key_info),
            .type = KP_KEY_RSA,
            .bits = (uint32_t)EVP_PKEY_get_bits(pkey),
            .flags = spec->flags & KP_KEY_EXPORTABLE,
            .state = KP_KEY_ENABLED,
            .created = (int64_t)time(NULL),
        };
        memcpy(k->info.name, spec->name, strlen(spec->name) + 1); /* checked: < KP_NAME_MAX */
        memcpy(k->info.fingerprint, fpr, sizeof(fpr));
        k->pkey = pkey; /* complete before it is listed: readers look it up under the lock */
        pkey = NULL;
        st = s_insert(t, spec, k, &count);
        if (st == KP_ERR_EXISTS)
            st = tpl_err(t, st, "key %s version %u exists", spec->name, spec->version);
        else if (st == KP_ERR_DENIED)
            st = tpl_err(t, st, "key %s has %u versions, the most allowed (max_versions)",
                         spec->name, count);
        else if (st != KP_OK)
            st = tpl_err(t, st, "out of memory");
    }
    if (st == KP_OK) {
        if (out != NULL)
            kp_key_info_put(out, &k->info);
        k = NULL; /* the list holds it */
    }
    tpl_key_free(k); /* and pkey with it, once it held it */
    EVP_PKEY_free(pkey);
    return st;
}

/* Finds name/version (0: the latest). The record stays valid until close: versions are never
 * removed, so the caller may use it after the lock is dropped. */
kp_status tpl_key_find(tpl_inst *t, const char *name, uint32_t version, const tpl_key **k)
{
    s_pos pos;
    if (name == NULL || !kpk_key_name_valid(name))
        return tpl_err(t, KP_ERR_INVALID_ARG, "bad key name");
    pthread_mutex_lock(&t->lock);
    s_locate(t, name, version, &pos);
    pthread_mutex_unlock(&t->lock);
    *k = version != 0 ? pos.hit : pos.latest;
    if (*k == NULL)
        return version != 0
                   ? tpl_err(t, KP_ERR_NOT_FOUND, "key %s version %u not found", name, version)
                   : tpl_err(t, KP_ERR_NOT_FOUND, "key %s not found", name);
    return KP_OK;
}

/* A private key from PKCS#8 PrivateKeyInfo DER: RSA of a size we hold, and of spec->bits when
 * the spec names a size. */
kp_status tpl_pkey_from_pkcs8(tpl_inst *t, const kp_key_spec *spec, const kp_secret *der,
                              EVP_PKEY **pkey)
{
    const unsigned char *p = t->up->secret_cdata(der), *end = p + t->up->secret_len(der);
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)(end - p));
    EVP_PKEY *k = NULL;
    uint32_t bits = 0;
    kp_status st = KP_OK;

    *pkey = NULL;
    if (p8 == NULL || p != end) /* trailing bytes: not the DER we were promised */
        st = tpl_ossl_err(t, KP_ERR_INVALID_ARG, "key %s: not PKCS#8 DER", spec->name);
    else if ((k = EVP_PKCS82PKEY(p8)) == NULL)
        st = tpl_ossl_err(t, KP_ERR_INVALID_ARG, "key %s: unreadable private key", spec->name);
    PKCS8_PRIV_KEY_INFO_free(p8); /* OpenSSL wipes the key bytes it held */
    if (st == KP_OK)
        bits = (uint32_t)EVP_PKEY_get_bits(k);
    if (st == KP_OK && spec->bits != 0 && bits != spec->bits)
        st =
            tpl_err(t, KP_ERR_INVALID_ARG, "key %s: the imported key has %u bits, the spec says %u",
                    spec->name, bits, spec->bits);
    else if (st == KP_OK && (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || !s_rsa_bits_ok(bits)))
        st = tpl_err(t, KP_ERR_UNSUPPORTED,
                     "key %s: the imported key is not RSA 2048, 3072 or 4096", spec->name);
    if (st == KP_OK) {
        *pkey = k;
        k = NULL;
    }
    EVP_PKEY_free(k);
    return st;
}

kp_status tpl_ks_create(void *inst, const kp_key_spec *in, kp_key_info *info)
{
    tpl_inst *t = inst;
    kp_key_spec spec;
    EVP_PKEY *pkey;

    KP_GUARD(tpl_spec_check(t, in, &spec));
    if (spec.bits == 0)
        return tpl_err(t, KP_ERR_INVALID_ARG, "key %s: no key size", spec.name);
    spec.fingerprint = NULL; /* an expectation means something for imports only */
    /* Slow (a 4096-bit key can take seconds): done outside the lock so other calls go on. */
    if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)spec.bits)) == NULL)
        return tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot generate key %s", spec.name);
    return tpl_key_add(t, &spec, pkey, info);
}

kp_status tpl_ks_import(void *inst, const kp_key_spec *in, const kp_secret *pkcs8_der,
                        kp_key_info *info)
{
    tpl_inst *t = inst;
    kp_key_spec spec;
    EVP_PKEY *pkey;

    KP_GUARD(tpl_spec_check(t, in, &spec));
    if (pkcs8_der == NULL)
        return tpl_err(t, KP_ERR_INVALID_ARG, "no key to import");
    KP_GUARD(tpl_pkey_from_pkcs8(t, &spec, pkcs8_der, &pkey));
    return tpl_key_add(t, &spec, pkey, info);
}

kp_status tpl_ks_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    tpl_inst *t = inst;
    const tpl_key *k;
    if (info == NULL)
        return tpl_err(t, KP_ERR_INVALID_ARG, "no info");
    KP_GUARD(tpl_key_find(t, name, version, &k));
    kp_key_info_put(info, &k->info); /* as much of it as the core's struct holds */
    return KP_OK;
}

kp_status tpl_ks_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                            size_t *len)
{
    tpl_inst *t = inst;
    const tpl_key *k;
    int n;

    if (len == NULL || (spki == NULL && *len != 0))
        return tpl_err(t, KP_ERR_INVALID_ARG, "no buffer");
    KP_GUARD(tpl_key_find(t, name, version, &k));
    if ((n = i2d_PUBKEY(k->pkey, NULL)) <= 0)
        return tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot encode the public key of %s", name);
    /* The buffer convention: too small, write nothing and say how much is needed. */
    if (*len < (size_t)n) {
        *len = (size_t)n;
        return tpl_err(t, KP_ERR_BUFFER_TOO_SMALL, "the public key of %s needs %d bytes", name, n);
    }
    i2d_PUBKEY(k->pkey, &spki);
    *len = (size_t)n;
    return KP_OK;
}

kp_status tpl_ks_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    tpl_inst *t = inst;
    const tpl_key **snap;
    size_t n = 0;
    kp_status st = KP_OK;

    if (visit == NULL || (name != NULL && !kpk_key_name_valid(name)))
        return tpl_err(t, KP_ERR_INVALID_ARG, "bad list arguments");
    /* Visit a snapshot, not under the lock: the visitor is the core, which may call this
     * instance again (KS_GET_PUBLIC of each version), and the mutex is not recursive. The list
     * is already in the order the ABI asks for (ascending versions per key). */
    pthread_mutex_lock(&t->lock);
    if ((snap = malloc((t->keys.n + 1) * sizeof(*snap))) != NULL)
        for (size_t i = 0; i < t->keys.n; i++) {
            const tpl_key *k = t->keys.v[i];
            if (name == NULL || strcmp(k->info.name, name) == 0)
                snap[n++] = k;
        }
    pthread_mutex_unlock(&t->lock);
    if (snap == NULL)
        return tpl_err(t, KP_ERR_NOMEM, "out of memory");
    if (name != NULL && n == 0)
        st = tpl_err(t, KP_ERR_NOT_FOUND, "key %s not found", name);
    for (size_t i = 0; i < n && st == KP_OK; i++)
        st = visit(arg, &snap[i]->info); /* infos carry our struct_size */
    free(snap);
    return st;
}

static const EVP_MD *s_oaep_md(uint32_t alg)
{
    return alg == KP_WRAP_RSA_OAEP_SHA1     ? EVP_sha1()
           : alg == KP_WRAP_RSA_OAEP_SHA256 ? EVP_sha256()
                                            : NULL;
}

/* RSA-OAEP with md for both the label hash and MGF1, as every cloud KMS means by the name. */
EVP_PKEY_CTX *tpl_oaep_ctx(EVP_PKEY *pkey, const EVP_MD *md, bool encrypt)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL || (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

kp_status tpl_ks_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                      const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    tpl_inst *t = inst;
    const EVP_MD *md = s_oaep_md(alg);
    const tpl_key *k;
    EVP_PKEY_CTX *ctx;
    size_t need, n, deklen;
    kp_status st = KP_OK;

    /* Only what INSTANCE_INFO declared: the core chose the algorithm from that answer. */
    if (md == NULL)
        return tpl_err(t, KP_ERR_UNSUPPORTED, "wrap algorithm %u is not RSA-OAEP SHA-1 or SHA-256",
                       alg);
    if (dek == NULL || (deklen = t->up->secret_len(dek)) == 0 || outlen == NULL ||
        (out == NULL && *outlen != 0))
        return tpl_err(t, KP_ERR_INVALID_ARG, "nothing to wrap");
    KP_GUARD(tpl_key_find(t, name, version, &k));
    need = (size_t)EVP_PKEY_get_size(k->pkey);
    if (deklen > need - 2 * (size_t)EVP_MD_get_size(md) - 2)
        return tpl_err(t, KP_ERR_INVALID_ARG, "a %zu-byte key is too long for RSA-OAEP under %s",
                       deklen, name);
    if (*outlen < need) {
        *outlen = need;
        return tpl_err(t, KP_ERR_BUFFER_TOO_SMALL, "wrapping under %s needs %zu bytes", name, need);
    }
    n = *outlen;
    if ((ctx = tpl_oaep_ctx(k->pkey, md, true)) == NULL ||
        EVP_PKEY_encrypt(ctx, out, &n, t->up->secret_cdata(dek), deklen) <= 0)
        st = tpl_ossl_err(t, KP_ERR_CRYPTO, "cannot wrap under %s", name);
    EVP_PKEY_CTX_free(ctx);
    if (st == KP_OK)
        *outlen = n;
    return st;
}

kp_status tpl_ks_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                        const uint8_t *in, size_t inlen, kp_secret **dek)
{
    tpl_inst *t = inst;
    const EVP_MD *md = s_oaep_md(alg);
    const tpl_key *k;
    EVP_PKEY_CTX *ctx;
    kp_secret *s;
    size_t size, n;
    kp_status st = KP_OK;

    if (md == NULL)
        return tpl_err(t, KP_ERR_UNSUPPORTED, "wrap algorithm %u is not RSA-OAEP SHA-1 or SHA-256",
                       alg);
    if (in == NULL || dek == NULL)
        return tpl_err(t, KP_ERR_INVALID_ARG, "nothing to unwrap");
    KP_GUARD(tpl_key_find(t, name, version, &k));
    size = (size_t)EVP_PKEY_get_size(k->pkey);
    if (inlen != size)
        return tpl_err(t, KP_ERR_CRYPTO, "%zu bytes are not a key wrapped under %s (%zu bytes)",
                       inlen, name, size);
    /* The plaintext goes straight into core-allocated secret memory, never a buffer of ours. */
    if ((s = t->up->secret_new(size)) == NULL)
        return tpl_err(t, KP_ERR_NOMEM, "out of memory");
    n = size;
    if ((ctx = tpl_oaep_ctx(k->pkey, md, false)) == NULL ||
        EVP_PKEY_decrypt(ctx, t->up->secret_data(s), &n, in, inlen) <= 0 || n == 0) {
        /* Never bytes that did not unwrap; and no reason beyond "it did not", which is all a
         * caller needs and all an attacker probing the padding should get. */
        ERR_clear_error();
        st = tpl_err(t, KP_ERR_CRYPTO, "the wrapped key does not unwrap under %s", name);
    }
    EVP_PKEY_CTX_free(ctx);
    if (st == KP_OK) {
        st = t->up->secret_shrink(s, n);
        if (st != KP_OK)
            st = tpl_err(t, KP_ERR_INTERNAL, "cannot shrink a secret");
    }
    if (st == KP_OK) {
        *dek = s;
        s = NULL;
    }
    t->up->secret_free(s); /* wipes what a failed decryption may have left */
    return st;
}
