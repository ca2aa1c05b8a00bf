/*
 * KS_WRAP and KS_UNWRAP of data-encryption keys. RSA keys wrap with C_Encrypt under the public
 * key object and unwrap with C_Decrypt under the private key, so the DEK never becomes a token
 * object. AES keys use C_WrapKey/C_UnwrapKey on a short-lived session copy of the DEK, because
 * tokens offer RFC 3394/5649 only as key wrapping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

typedef struct s_wrap {
    const char *name;
    uint32_t version;
    uint32_t alg;
    const kp_secret *dek; /* wrap */
    uint8_t *out;
    size_t cap, outlen;
    const uint8_t *in; /* unwrap */
    size_t inlen;
    kp_secret *plain;
} s_wrap;

static bool s_is_rsa_alg(uint32_t alg)
{
    return alg == KP_WRAP_RSA_OAEP_SHA1 || alg == KP_WRAP_RSA_OAEP_SHA256 ||
           alg == KP_WRAP_RSA_PKCS1;
}

/* The mechanism of an RSA algorithm; params must outlive its use. */
static void s_rsa_mech(uint32_t alg, CK_RSA_PKCS_OAEP_PARAMS *params, CK_MECHANISM *mech)
{
    bool sha256 = alg == KP_WRAP_RSA_OAEP_SHA256;

    /* An empty label: what every KMS and HSM peer means by "OAEP". */
    params->hashAlg = sha256 ? CKM_SHA256 : CKM_SHA_1;
    params->mgf = sha256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1;
    params->source = CKZ_DATA_SPECIFIED;
    params->pSourceData = NULL;
    params->ulSourceDataLen = 0;
    mech->mechanism = alg == KP_WRAP_RSA_PKCS1 ? CKM_RSA_PKCS : CKM_RSA_PKCS_OAEP;
    mech->pParameter = alg == KP_WRAP_RSA_PKCS1 ? NULL : params;
    mech->ulParameterLen = alg == KP_WRAP_RSA_PKCS1 ? 0 : sizeof(*params);
}

static kp_status s_no_sha256(kp_p11_inst *pi)
{
    return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "token '%s' does not offer RSA-OAEP with SHA-256",
                      pi->token);
}

/* Checks the cached answer of the token about OAEP with SHA-256. */
static kp_status s_sha256_known_bad(kp_p11_inst *pi, uint32_t alg)
{
    int ok;

    if (alg != KP_WRAP_RSA_OAEP_SHA256)
        return KP_OK;
    pthread_mutex_lock(&pi->lock);
    ok = pi->oaep_sha256;
    pthread_mutex_unlock(&pi->lock);
    return ok == 0 ? s_no_sha256(pi) : KP_OK;
}

/* Records how the token took OAEP with SHA-256 (an *Init result). A refusal of the
 * parameters, not of the key, means the token lacks it: SoftHSM 2.6.1 answers
 * CKR_ARGUMENTS_BAD. */
static kp_status s_sha256_result(kp_p11_inst *pi, uint32_t alg, CK_RV rv)
{
    bool refused = rv == CKR_MECHANISM_PARAM_INVALID || rv == CKR_ARGUMENTS_BAD;

    if (alg != KP_WRAP_RSA_OAEP_SHA256 || (rv != CKR_OK && !refused))
        return KP_OK;
    pthread_mutex_lock(&pi->lock);
    pi->oaep_sha256 = rv == CKR_OK ? 1 : 0;
    pthread_mutex_unlock(&pi->lock);
    return rv == CKR_OK ? KP_OK : s_no_sha256(pi);
}

/* Largest DEK RSA-OAEP takes (RFC 8017 7.1.1) for a modulus of k bytes. */
static size_t s_oaep_max(uint32_t alg, size_t k)
{
    size_t h = alg == KP_WRAP_RSA_OAEP_SHA256 ? 32 : alg == KP_WRAP_RSA_OAEP_SHA1 ? 20 : 0;
    size_t overhead = h != 0 ? 2 * h + 2 : 11;

    return k > overhead ? k - overhead : 0;
}

static kp_status s_wrap_rsa(kp_p11_op *op, s_wrap *w, const kp_p11_key *key)
{
    kp_p11_inst *pi = op->pi;
    const kp_p11_up *up = pi->up;
    size_t k = (key->bits + 7) / 8, deklen = up->secret_len(w->dek);
    CK_RSA_PKCS_OAEP_PARAMS params;
    CK_MECHANISM mech;
    CK_OBJECT_HANDLE pub;
    CK_ULONG n;
    kp_status st = KP_OK;
    CK_RV rv;

    if (deklen == 0 || deklen > s_oaep_max(w->alg, k))
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "wrap: %zu-byte key; key %s v%u takes 1 to %zu",
                          deklen, key->name, key->version, s_oaep_max(w->alg, k));
    w->outlen = k;
    if (w->out == NULL || w->cap < k)
        return kp_p11_err(pi, KP_ERR_BUFFER_TOO_SMALL, "wrap needs %zu bytes", k);
    KP_GUARD(kp_p11_key_public(op, key, &pub, NULL, NULL));
    s_rsa_mech(w->alg, &params, &mech);
    rv = op->f->C_EncryptInit(op->s, &mech, pub);
    if ((st = s_sha256_result(pi, w->alg, rv)) != KP_OK) {
        op->rv = rv;
        return st;
    }
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_EncryptInit", "RSA-OAEP under key %s v%u", key->name,
                         key->version);
    n = w->cap;
    rv = op->f->C_Encrypt(op->s, (CK_BYTE_PTR)up->secret_cdata(w->dek), deklen, w->out, &n);
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_Encrypt", "RSA-OAEP under key %s v%u", key->name,
                         key->version);
    w->outlen = n;
    return KP_OK;
}

/* The AES wrap mechanism of alg on this token. */
static kp_status s_aes_mech(kp_p11_op *op, uint32_t alg, CK_MECHANISM_TYPE *m)
{
    kp_p11_inst *pi = op->pi;

    KP_GUARD(kp_p11_probe_mechs(op));
    pthread_mutex_lock(&pi->lock);
    *m = alg == KP_WRAP_AES_KWP ? pi->kwp_mech : pi->have_kw ? CKM_AES_KEY_WRAP : 0;
    pthread_mutex_unlock(&pi->lock);
    if (*m == 0)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "token '%s' does not offer %s", pi->token,
                          alg == KP_WRAP_AES_KWP ? "AES key wrap with padding (RFC 5649)"
                                                 : "AES key wrap (RFC 3394)");
    return KP_OK;
}

/* A session copy of the DEK that the token may wrap. */
static kp_status s_dek_object(kp_p11_op *op, const kp_secret *dek, CK_OBJECT_HANDLE *obj)
{
    return kp_p11_session_secret(op, CKK_GENERIC_SECRET, dek, false, "session copy of the DEK",
                                 obj);
}

/* Whether an RFC 5649 wrap and unwrap on this token give back keys whose length is not a
 * multiple of 8 intact. SoftHSM 2.6.1 zero-pads the key to a multiple of 8 before wrapping, so
 * the length indicator covers the zeros and a 20-byte DEK comes back as 24 bytes (its unwrap
 * of a standard blob is exact). Tried once per instance on session objects. */
static kp_status s_kwp_exact(kp_p11_op *op, CK_MECHANISM_TYPE m, bool *exact)
{
    kp_p11_inst *pi = op->pi;
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0}, mech = {m, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES, gs = CKK_GENERIC_SECRET;
    CK_ULONG len = 16, n = 0;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    uint8_t value[20], wrapped[64];
    CK_ATTRIBUTE kt[] = {
        {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},
        {CKA_WRAP, &yes, sizeof(yes)},      {CKA_UNWRAP, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE st_[] = {
        {CKA_CLASS, &cls, sizeof(cls)},       {CKA_KEY_TYPE, &gs, sizeof(gs)},
        {CKA_TOKEN, &no, sizeof(no)},         {CKA_SENSITIVE, &no, sizeof(no)},
        {CKA_EXTRACTABLE, &yes, sizeof(yes)}, {CKA_VALUE, value, sizeof(value)},
    };
    CK_ATTRIBUTE vl = {CKA_VALUE, NULL, 0};
    CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, in = CK_INVALID_HANDLE, out = CK_INVALID_HANDLE;
    CK_RV rv;
    int known;

    pthread_mutex_lock(&pi->lock);
    known = pi->kwp_exact;
    pthread_mutex_unlock(&pi->lock);
    if (known >= 0) {
        *exact = known == 1;
        return KP_OK;
    }
    memset(value, 0x5a, sizeof(value));
    n = sizeof(wrapped);
    if ((rv = op->f->C_GenerateKey(op->s, &gen, kt, 6, &kek)) == CKR_OK &&
        (rv = op->f->C_CreateObject(op->s, st_, 6, &in)) == CKR_OK &&
        (rv = op->f->C_WrapKey(op->s, &mech, kek, in, wrapped, &n)) == CKR_OK &&
        (rv = op->f->C_UnwrapKey(op->s, &mech, kek, wrapped, n, st_, 5, &out)) == CKR_OK)
        rv = op->f->C_GetAttributeValue(op->s, out, &vl, 1);
    kp_p11_destroy(op, out);
    kp_p11_destroy(op, in);
    kp_p11_destroy(op, kek);
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_UnwrapKey", "trying RFC 5649 on token '%s'",
                         pi->token);
    *exact = vl.ulValueLen == sizeof(value);
    pthread_mutex_lock(&pi->lock);
    pi->kwp_exact = *exact ? 1 : 0;
    pthread_mutex_unlock(&pi->lock);
    if (!*exact)
        kp_logf(pi->up, pi->h, KP_LOG_DEBUG, "token '%s' pads RFC 5649-unwrapped keys to 8 bytes",
                pi->token);
    return KP_OK;
}

static kp_status s_wrap_aes(kp_p11_op *op, s_wrap *w, const kp_p11_key *key)
{
    kp_p11_inst *pi = op->pi;
    size_t deklen = pi->up->secret_len(w->dek), need;
    CK_MECHANISM mech = {0, NULL, 0}; /* SoftHSM refuses any IV parameter */
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    CK_ULONG n;
    CK_RV rv;

    if (w->alg == KP_WRAP_AES_KW && (deklen < 16 || deklen % 8 != 0))
        return kp_p11_err(pi, KP_ERR_INVALID_ARG,
                          "wrap: AES-KW takes keys of 16 bytes or more in steps of 8, not %zu",
                          deklen);
    if (deklen == 0)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "wrap: empty key");
    need = w->alg == KP_WRAP_AES_KW ? deklen + 8 : kp_p11_kwp_len(deklen);
    w->outlen = need;
    if (w->out == NULL || w->cap < need)
        return kp_p11_err(pi, KP_ERR_BUFFER_TOO_SMALL, "wrap needs %zu bytes", need);
    KP_GUARD(s_aes_mech(op, w->alg, &mech.mechanism));
    if (w->alg == KP_WRAP_AES_KWP && deklen % 8 != 0) {
        bool exact = false;

        KP_GUARD(s_kwp_exact(op, mech.mechanism, &exact));
        /* Refused now rather than handing out a blob this token cannot give back right. */
        if (!exact)
            return kp_p11_err(pi, KP_ERR_UNSUPPORTED,
                              "token '%s' pads keys of %zu bytes before its RFC 5649 wrap, so "
                              "they would unwrap longer; use a DEK of a multiple of 8 bytes",
                              pi->token, deklen);
    }
    KP_GUARD(s_dek_object(op, w->dek, &obj));
    n = w->cap;
    rv = op->f->C_WrapKey(op->s, &mech, key->obj, obj, w->out, &n);
    kp_p11_destroy(op, obj);
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_WrapKey", "under key %s v%u", key->name,
                         key->version);
    w->outlen = n;
    return KP_OK;
}

static kp_status s_key_for(kp_p11_op *op, s_wrap *w, kp_p11_key *key)
{
    kp_p11_inst *pi = op->pi;

    KP_GUARD(kp_p11_key_find(op, w->name, w->version, key));
    if (s_is_rsa_alg(w->alg) && key->type != KP_KEY_RSA)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "key %s v%u is an AES key: use AES-KW or -KWP",
                          key->name, key->version);
    if (!s_is_rsa_alg(w->alg) && key->type != KP_KEY_AES)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "key %s v%u is an RSA key: use RSA-OAEP",
                          key->name, key->version);
    return KP_OK;
}

static kp_status s_wrap_op(kp_p11_op *op, void *arg)
{
    s_wrap *w = arg;
    kp_p11_key key;

    KP_GUARD(s_key_for(op, w, &key));
    return key.type == KP_KEY_RSA ? s_wrap_rsa(op, w, &key) : s_wrap_aes(op, w, &key);
}

static kp_status s_check_alg(kp_p11_inst *pi, uint32_t alg, bool wrap)
{
    if (alg == KP_WRAP_RSA_PKCS1 && wrap)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "RSA1_5 is accepted for unwrap of old data only");
    if (alg < KP_WRAP_RSA_OAEP_SHA1 || alg > KP_WRAP_AES_KWP)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "unknown wrap algorithm %u", alg);
    return s_sha256_known_bad(pi, alg);
}

/* out is written through w.out, which clang-tidy does not follow. */
kp_status kp_p11_ks_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                         const kp_secret *dek,
                         uint8_t *out, // NOLINT(readability-non-const-parameter)
                         size_t *outlen)
{
    kp_p11_inst *pi = inst;
    s_wrap w;
    kp_status st = KP_OK;

    if (dek == NULL || outlen == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "wrap: dek or outlen is NULL");
    KP_GUARD(s_check_alg(pi, alg, true));
    KP_GUARD(kp_p11_check_name(pi, name));
    w = (s_wrap){
        .name = name, .version = version, .alg = alg, .dek = dek, .out = out, .cap = *outlen};
    st = kp_p11_run(pi, s_wrap_op, &w);
    if (st == KP_OK || st == KP_ERR_BUFFER_TOO_SMALL)
        *outlen = w.outlen;
    return st;
}

/* SoftHSM reports a bad OAEP block or a bad AES-KW integrity check as a general failure;
 * under a key that exists, that is what a wrong key or corrupted data looks like. */
static kp_status s_unwrap_rv(kp_p11_op *op, CK_RV rv, const char *fn, const kp_p11_key *key)
{
    bool bad_data = rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED ||
                    rv == CKR_DATA_INVALID || rv == CKR_DATA_LEN_RANGE ||
                    kp_p11_rv_status(rv, true) == KP_ERR_CRYPTO;

    if (bad_data)
        return kp_p11_ck_as(op->pi, op, rv, KP_ERR_CRYPTO, fn,
                            "unwrap under key %s v%u: wrong key or corrupted data", key->name,
                            key->version);
    return kp_p11_ck(op->pi, op, rv, true, fn, "unwrap under key %s v%u", key->name, key->version);
}

static kp_status s_unwrap_rsa(kp_p11_op *op, s_wrap *w, const kp_p11_key *key)
{
    kp_p11_inst *pi = op->pi;
    const kp_p11_up *up = pi->up;
    size_t k = (key->bits + 7) / 8;
    CK_RSA_PKCS_OAEP_PARAMS params;
    CK_MECHANISM mech;
    CK_ULONG n;
    kp_status st = KP_OK;
    CK_RV rv;

    if (w->inlen != k)
        return kp_p11_err(pi, KP_ERR_CRYPTO,
                          "unwrap under key %s v%u: %zu bytes, an RSA-%u block has %zu", key->name,
                          key->version, w->inlen, key->bits, k);
    /* Allocated first: a C_DecryptInit must be followed by a C_Decrypt that ends it. */
    if ((w->plain = up->secret_new(k)) == NULL)
        return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    s_rsa_mech(w->alg, &params, &mech);
    rv = op->f->C_DecryptInit(op->s, &mech, key->obj);
    if ((st = s_sha256_result(pi, w->alg, rv)) != KP_OK) {
        op->rv = rv;
        return st;
    }
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_DecryptInit", "key %s v%u", key->name, key->version);
    n = k;
    rv = op->f->C_Decrypt(op->s, (CK_BYTE_PTR)w->in, w->inlen, up->secret_data(w->plain), &n);
    if (rv != CKR_OK)
        return s_unwrap_rv(op, rv, "C_Decrypt", key);
    st = n > 0 ? up->secret_shrink(w->plain, n) : KP_ERR_CRYPTO;
    if (st != KP_OK) /* w->plain is the caller's to free */
        return kp_p11_err(pi, KP_ERR_CRYPTO, "unwrap under key %s v%u gave no key", key->name,
                          key->version);
    return KP_OK;
}

static kp_status s_unwrap_aes(kp_p11_op *op, s_wrap *w, const kp_p11_key *key)
{
    kp_p11_inst *pi = op->pi;
    CK_MECHANISM mech = {0, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},   {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},     {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &no, sizeof(no)}, {CKA_EXTRACTABLE, &yes, sizeof(yes)},
    };
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    kp_status st = KP_OK;
    CK_RV rv;

    if (w->inlen < 16 || w->inlen % 8 != 0)
        return kp_p11_err(pi, KP_ERR_CRYPTO,
                          "unwrap under key %s v%u: %zu bytes is no AES-wrapped key", key->name,
                          key->version, w->inlen);
    KP_GUARD(s_aes_mech(op, w->alg, &mech.mechanism));
    rv = op->f->C_UnwrapKey(op->s, &mech, key->obj, (CK_BYTE_PTR)w->in, w->inlen, t,
                            sizeof(t) / sizeof(t[0]), &obj);
    if (rv != CKR_OK)
        return s_unwrap_rv(op, rv, "C_UnwrapKey", key);
    st = kp_p11_attr_secret(op, obj, &w->plain);
    kp_p11_destroy(op, obj);
    return st;
}

static kp_status s_unwrap_op(kp_p11_op *op, void *arg)
{
    s_wrap *w = arg;
    kp_p11_key key;

    op->pi->up->secret_free(w->plain); /* from a first attempt that failed half-way */
    w->plain = NULL;
    KP_GUARD(s_key_for(op, w, &key));
    return key.type == KP_KEY_RSA ? s_unwrap_rsa(op, w, &key) : s_unwrap_aes(op, w, &key);
}

kp_status kp_p11_ks_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                           const uint8_t *in, size_t inlen, kp_secret **dek)
{
    kp_p11_inst *pi = inst;
    s_wrap w;
    kp_status st = KP_OK;

    if (dek == NULL || in == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "unwrap: input or output is NULL");
    *dek = NULL;
    KP_GUARD(s_check_alg(pi, alg, false));
    KP_GUARD(kp_p11_check_name(pi, name));
    w = (s_wrap){.name = name, .version = version, .alg = alg, .in = in, .inlen = inlen};
    st = kp_p11_run(pi, s_unwrap_op, &w);
    if (st == KP_OK) {
        *dek = w.plain;
        w.plain = NULL;
    }
    pi->up->secret_free(w.plain); /* wipes whatever was decrypted */
    return st;
}
