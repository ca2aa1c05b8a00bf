/*
 * Keystore entry points of the file plugin except wrap/unwrap (file_wrap.c) and export
 * (file_export.c): create, import, get, get_public, list. RSA only; every version is written as
 * a whole and never changed.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "file_internal.h"

/* What s_fill writes into a version's temp dir; prepared once, before any race. */
typedef struct s_new_key {
    kp_key_info info;
    uint8_t *p8;
    size_t p8len;
    uint8_t *spki;
    size_t spkilen;
} s_new_key;

/* What create and import check alike, in this order: the caller's spec, copied with
 * kp_key_spec_read (members an older core lacks read as zero) and its name; the call's other
 * arguments (args_ok, else the text bad_args); an RSA key type (or none, when untyped_ok). */
static kp_status s_spec(kp_file_inst *fi, const kp_key_spec *in, bool args_ok, const char *bad_args,
                        bool untyped_ok, kp_key_spec *out)
{
    if (!kp_key_spec_read(in, out))
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "key spec missing or too small");
    KP_GUARD(kp_file_check_name(fi, "key", out->name));
    if (!args_ok)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "%s", bad_args);
    if (out->type == KP_KEY_AES)
        return kp_file_err(fi, KP_ERR_UNSUPPORTED, "the file keystore holds RSA keys only");
    if (out->type != KP_KEY_RSA && (out->type != 0 || !untyped_ok))
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "unknown key type %u", out->type);
    return KP_OK;
}

static bool s_rsa_bits_ok(uint32_t bits)
{
    return bits == 2048 || bits == 3072 || bits == 4096;
}

static kp_status s_fill(kp_file_inst *fi, const char *dir, uint32_t version, void *arg)
{
    s_new_key *nk = arg;
    char path[KP_FILE_PATH_MAX];

    nk->info.version = version;
    KP_GUARD(kp_file_path(fi, path, sizeof(path), "%s/private.p8", dir));
    KP_GUARD(kp_file_write_new(fi, path, nk->p8, nk->p8len));
    KP_GUARD(kp_file_path(fi, path, sizeof(path), "%s/public.der", dir));
    KP_GUARD(kp_file_write_new(fi, path, nk->spki, nk->spkilen));
    return kp_file_key_meta_write(fi, dir, &nk->info);
}

/* Writes pkey as a new version of spec->name and describes it in info. For an import with an
 * expected fingerprint (check_fpr), the key's is compared before anything is written: the key's
 * directory never appears for a key that is refused. */
static kp_status s_save(kp_file_inst *fi, const kp_key_spec *spec, EVP_PKEY *pkey, bool check_fpr,
                        kp_key_info *info)
{
    char parent[KP_FILE_PATH_MAX];
    unsigned char *spki = NULL;
    s_new_key nk;
    uint32_t version = 0;
    const kp_file_keys *keys;
    kp_key_info full;
    kp_status st = KP_OK;
    int n;

    memset(&nk, 0, sizeof(nk));
    if ((n = i2d_PUBKEY(pkey, &spki)) <= 0)
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot encode public key of %s", spec->name);
    nk.spki = spki;
    nk.spkilen = (size_t)n;
    if (kpk_fpr_spki(nk.spki, nk.spkilen, nk.info.fingerprint) != KP_OK)
        st = kp_file_ossl_err(fi, KP_ERR_CRYPTO, "cannot fingerprint key %s", spec->name);
    else if (check_fpr && spec->fingerprint != NULL &&
             strcmp(nk.info.fingerprint, spec->fingerprint) != 0)
        st = kp_file_err(fi, KP_ERR_INTEGRITY,
                         "import of %s: the key's fingerprint %s is not the expected %s; nothing "
                         "was stored",
                         spec->name, nk.info.fingerprint, spec->fingerprint);
    /* The passphrase must open the header first, so keys and secrets share one. */
    if (st == KP_OK)
        st = kp_file_unlock(fi, &keys);
    if (st == KP_OK)
        st = kp_file_object_dir(fi, "key", spec->name, parent, sizeof(parent));
    if (st == KP_OK) {
        snprintf(nk.info.name, sizeof(nk.info.name), "%s", spec->name);
        nk.info.type = KP_KEY_RSA;
        nk.info.bits = (uint32_t)EVP_PKEY_get_bits(pkey);
        nk.info.flags = spec->flags & KP_KEY_EXPORTABLE;
        nk.info.state = KP_KEY_ENABLED;
        nk.info.created = (int64_t)time(NULL);
        st = kp_file_p8_encrypt(fi, keys, pkey, &nk.p8, &nk.p8len);
    }
    if (st == KP_OK)
        st = kp_file_commit_version(fi, parent, spec->version, s_fill, &nk, &version);
    if (st == KP_OK) {
        kp_logf(fi->up, fi->h, KP_LOG_DEBUG, "stored key %s v%u in %s", spec->name, version,
                fi->dir);
        st = kp_file_key_info(fi, spec->name, version, &full);
    }
    if (st == KP_OK)
        kp_key_info_put(info, &full);
    OPENSSL_free(spki);
    free(nk.p8);
    return st;
}

/* Fails early on an explicit version that is taken, before an expensive key generation. */
static kp_status s_version_free(kp_file_inst *fi, const kp_key_spec *spec)
{
    char dir[KP_FILE_PATH_MAX];
    struct stat sb;

    if (spec->version == 0)
        return KP_OK;
    KP_GUARD(kp_file_key_dir(fi, spec->name, spec->version, dir, sizeof(dir)));
    if (stat(dir, &sb) == 0)
        return kp_file_err(fi, KP_ERR_EXISTS, "key %s v%u already exists in %s", spec->name,
                           spec->version, fi->dir);
    return KP_OK;
}

kp_status kp_file_ks_create(void *inst, const kp_key_spec *in, kp_key_info *info)
{
    kp_file_inst *fi = inst;
    EVP_PKEY *pkey;
    kp_key_spec spec;
    kp_status st = KP_OK;

    KP_GUARD(s_spec(fi, in, info != NULL, "create: info is NULL", false, &spec));
    KP_GUARD(kp_file_ready(fi)); /* before an expensive key generation */
    if (!s_rsa_bits_ok(spec.bits))
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "RSA key size %u: use 2048, 3072 or 4096",
                           spec.bits);
    KP_GUARD(s_version_free(fi, &spec));
    pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)spec.bits);
    if (pkey == NULL)
        return kp_file_ossl_err(fi, KP_ERR_CRYPTO, "RSA-%u key generation failed", spec.bits);
    st = s_save(fi, &spec, pkey, false, info);
    EVP_PKEY_free(pkey);
    return st;
}

/* Parses and vets a PKCS#8 PrivateKeyInfo DER: RSA of an allowed size, consistent. */
static kp_status s_parse_import(kp_file_inst *fi, const kp_key_spec *spec, const uint8_t *der,
                                size_t len, EVP_PKEY **out)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8inf;
    EVP_PKEY *pkey = NULL;
    kp_status st = KP_OK;
    int bits;

    *out = NULL;
    p8inf = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (p8inf != NULL && p == der + len)
        pkey = EVP_PKCS82PKEY_ex(p8inf, NULL, NULL);
    PKCS8_PRIV_KEY_INFO_free(p8inf); /* cleanses */
    if (pkey == NULL)
        return kp_file_ossl_err(fi, KP_ERR_INVALID_ARG,
                                "import of %s: not a PKCS#8 PrivateKeyInfo DER", spec->name);
    bits = EVP_PKEY_get_bits(pkey);
    if (!EVP_PKEY_is_a(pkey, "RSA"))
        st = kp_file_err(fi, KP_ERR_INVALID_ARG, "import of %s: not an RSA key", spec->name);
    else if (bits <= 0 || !s_rsa_bits_ok((uint32_t)bits))
        st = kp_file_err(fi, KP_ERR_INVALID_ARG,
                         "import of %s: RSA modulus of %d bits; use 2048, 3072 or 4096", spec->name,
                         bits);
    else if (spec->bits != 0 && spec->bits != (uint32_t)bits)
        st = kp_file_err(fi, KP_ERR_INVALID_ARG, "import of %s: key has %d bits, spec says %u",
                         spec->name, bits, spec->bits);
    if (st == KP_OK) {
        /* A key whose private half does not match its public half would wrap DEKs that can
         * never be unwrapped; refuse it now rather than at disaster-recovery time. */
        if (!kpk_rsa_consistent(pkey))
            st = kp_file_err(fi, KP_ERR_INVALID_ARG, "import of %s: inconsistent RSA key",
                             spec->name);
    }
    if (st == KP_OK) {
        *out = pkey;
        pkey = NULL;
    }
    EVP_PKEY_free(pkey);
    return st;
}

kp_status kp_file_ks_import(void *inst, const kp_key_spec *in, const kp_secret *pkcs8_der,
                            kp_key_info *info)
{
    kp_file_inst *fi = inst;
    EVP_PKEY *pkey;
    kp_key_spec spec;
    kp_status st = KP_OK;

    KP_GUARD(s_spec(fi, in, pkcs8_der != NULL && info != NULL, "import: key or info is NULL", true,
                    &spec));
    /* No key has a malformed fingerprint: refused as a mismatch, without echoing it. */
    if (spec.fingerprint != NULL && !kpk_fpr_valid(spec.fingerprint))
        return kp_file_err(fi, KP_ERR_INTEGRITY,
                           "import of %s: the expected fingerprint is not 64 lower-case hex "
                           "digits; nothing was stored",
                           spec.name);
    KP_GUARD(kp_file_ready(fi));
    KP_GUARD(s_version_free(fi, &spec));
    KP_GUARD(s_parse_import(fi, &spec, fi->up->secret_cdata(pkcs8_der),
                            fi->up->secret_len(pkcs8_der), &pkey));
    st = s_save(fi, &spec, pkey, true, info);
    EVP_PKEY_free(pkey);
    return st;
}

kp_status kp_file_ks_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                                size_t *len)
{
    kp_file_inst *fi = inst;
    char dir[KP_FILE_PATH_MAX];
    uint8_t *der;
    size_t derlen;

    if (len == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "get_public: len is NULL");
    KP_GUARD(kp_file_ready(fi));
    KP_GUARD(kp_file_object(fi, "key", name, &version, dir, sizeof(dir)));
    KP_GUARD(kp_file_key_public_der(fi, name, version, &der, &derlen));
    return kp_buffer_take(fi->up, fi->h, der, derlen, spki, len, "public key");
}

kp_status kp_file_ks_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    kp_file_inst *fi = inst;
    char dir[KP_FILE_PATH_MAX];
    kp_key_info full;

    if (info == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "get: info is NULL");
    /* A version read before answers from the cache: versions never change once written. */
    if (version != 0 && name != NULL && kp_file_cache_info(fi, name, version, &full)) {
        kp_key_info_put(info, &full);
        return KP_OK;
    }
    KP_GUARD(kp_file_ready(fi));
    /* One key's directory only: version 0 reads its version numbers, an explicit version is
     * one stat; other keys are never looked at. */
    KP_GUARD(kp_file_object(fi, "key", name, &version, dir, sizeof(dir)));
    KP_GUARD(kp_file_key_info(fi, name, version, &full));
    kp_key_info_put(info, &full);
    return KP_OK;
}

typedef struct s_visitor {
    kp_key_visit_fn visit;
    void *arg;
} s_visitor;

static kp_status s_visit_version(kp_file_inst *fi, const char *name, const char *objdir,
                                 uint32_t version, void *arg, bool *broken)
{
    const s_visitor *v = arg;
    kp_key_info info;
    kp_status st = kp_file_key_info_read(fi, name, version, &info); /* a listing reads the disk */

    (void)objdir;
    *broken = st != KP_OK;
    return st == KP_OK ? v->visit(v->arg, &info) : st;
}

kp_status kp_file_ks_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    kp_file_inst *fi = inst;
    s_visitor v = {visit, arg};

    if (visit == NULL)
        return kp_file_err(fi, KP_ERR_INVALID_ARG, "list: visit is NULL");
    /* a store that is not there is unreachable: never "holds no key" (KP_ERR_NOT_FOUND) */
    KP_GUARD(kp_file_ready(fi));
    return kp_file_list(fi, "key", name, s_visit_version, &v);
}
