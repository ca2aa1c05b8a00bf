/*
 * Does the token's AES key wrap with padding hold a private key the way RFC 5649 says? A
 * wrapped export (BYOK) is opened by an importer that takes the unwrapped bytes as one PKCS#8
 * and nothing else; SoftHSM 2.6.1 zero-pads the PKCS#8 to a multiple of 8 and wraps the padded
 * length, so a strict importer refuses its blobs. The probe wraps a throw-away RSA key, whose
 * PKCS#8 length is not a multiple of 8, under a readable AES key (both session objects), unwraps
 * the blob in software and calls the token conformant only when exactly that PKCS#8 comes back.
 * Anything else, a probe the token would not run included, means no wrapped export: keyplane
 * never sends a blob it has not seen unwrap right.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/kit/clock.h>

#include "p11_internal.h"

#define S_COMPONENTS 8
#define S_COMPONENT_MAX 256 /* bytes of the largest component: a 2048-bit modulus */
#define S_BLOB_MAX 4096     /* RFC 5649 of an RSA-2048 PKCS#8 (about 1.2 KiB) fits */
#define S_TRIES 4           /* keys made until one's PKCS#8 length is no multiple of 8 */

/* The throw-away key in software and as the attributes C_CreateObject takes. */
typedef struct s_key {
    EVP_PKEY *pkey;
    unsigned char *der; /* its PKCS#8, OPENSSL_malloc'ed */
    size_t derlen;
    uint8_t comp[S_COMPONENTS][S_COMPONENT_MAX];
    size_t complen[S_COMPONENTS];
} s_key;

/* What the probe saw. */
typedef enum s_seen {
    S_EXACT,     /* exactly the PKCS#8 */
    S_ZEROS,     /* the PKCS#8 then zero bytes */
    S_TRAILING,  /* the PKCS#8 then other bytes */
    S_NOT_5649,  /* the blob does not unwrap as RFC 5649 */
    S_OTHER_KEY, /* unwraps, but not to the key that was wrapped */
    S_ALIGNED,   /* the token encoded the key to a multiple of 8: padding would not show */
    S_UNTRIED    /* the token would not run the probe (why set) */
} s_seen;

static const char *const s_params[S_COMPONENTS] = {
    OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

static void s_key_free(s_key *k)
{
    EVP_PKEY_free(k->pkey);
    if (k->der != NULL)
        OPENSSL_clear_free(k->der, k->derlen);
    OPENSSL_cleanse(k->comp, sizeof(k->comp));
    memset(k, 0, sizeof(*k));
}

/* Big-endian bytes of every component; false when one is missing or too long. */
static bool s_components(s_key *k)
{
    bool ok = true;

    for (int i = 0; ok && i < S_COMPONENTS; i++) {
        BIGNUM *bn = NULL;
        int n;
        ok = EVP_PKEY_get_bn_param(k->pkey, s_params[i], &bn) == 1 && (n = BN_num_bytes(bn)) > 0 &&
             n <= S_COMPONENT_MAX && BN_bn2bin(bn, k->comp[i]) == n;
        if (ok)
            k->complen[i] = (size_t)n;
        BN_clear_free(bn);
    }
    return ok;
}

/* An RSA key of bits whose PKCS#8 length is no multiple of 8 (so zero padding would show). */
static bool s_key_make(unsigned bits, s_key *k)
{
    memset(k, 0, sizeof(*k));
    for (int i = 0; i < S_TRIES; i++) {
        PKCS8_PRIV_KEY_INFO *p8;
        int len = 0;

        if ((k->pkey = EVP_RSA_gen(bits)) == NULL)
            return false;
        if ((p8 = EVP_PKEY2PKCS8(k->pkey)) != NULL)
            len = i2d_PKCS8_PRIV_KEY_INFO(p8, &k->der);
        PKCS8_PRIV_KEY_INFO_free(p8);
        if (len > 0)
            k->derlen = (size_t)len;
        if (len > 0 && k->derlen % 8 != 0 && s_components(k))
            return true;
        s_key_free(k);
    }
    return false;
}

/* The smallest RSA key the token makes, at least 512 bits: the probe is about the wrap. */
static bool s_key_for(CK_ULONG min_bits, s_key *k)
{
    static const unsigned sizes[] = {512, 1024, 2048};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (sizes[i] >= min_bits && s_key_make(sizes[i], k))
            return true;
    ERR_clear_error(); /* a provider that refuses 512 bits says so on the queue */
    return false;
}

static CK_RV s_create_private(kp_p11_op *op, s_key *k, CK_OBJECT_HANDLE *obj)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[6 + S_COMPONENTS] = {
        {CKA_CLASS, &cls, sizeof(cls)},   {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},     {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_SENSITIVE, &no, sizeof(no)}, {CKA_EXTRACTABLE, &yes, sizeof(yes)},
        {CKA_MODULUS, NULL, 0},           {CKA_PUBLIC_EXPONENT, NULL, 0},
        {CKA_PRIVATE_EXPONENT, NULL, 0},  {CKA_PRIME_1, NULL, 0},
        {CKA_PRIME_2, NULL, 0},           {CKA_EXPONENT_1, NULL, 0},
        {CKA_EXPONENT_2, NULL, 0},        {CKA_COEFFICIENT, NULL, 0},
    };

    for (int i = 0; i < S_COMPONENTS; i++) {
        t[6 + i].pValue = k->comp[i];
        t[6 + i].ulValueLen = k->complen[i];
    }
    return op->f->C_CreateObject(op->s, t, sizeof(t) / sizeof(t[0]), obj);
}

/* Judges the unwrapped bytes p/n against the key that was wrapped. */
static s_seen s_judge(const s_key *k, const uint8_t *p, size_t n)
{
    const unsigned char *q = p;
    PKCS8_PRIV_KEY_INFO *inf;
    EVP_PKEY *got = NULL;
    size_t used;
    bool same;

    if (n == k->derlen && CRYPTO_memcmp(p, k->der, n) == 0)
        return S_EXACT;
    if (n > k->derlen && CRYPTO_memcmp(p, k->der, k->derlen) == 0) {
        for (size_t i = k->derlen; i < n; i++)
            if (p[i] != 0)
                return S_TRAILING;
        return S_ZEROS;
    }
    /* The token may encode the same key otherwise (attributes, another version). */
    inf = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)n);
    used = (size_t)(q - p);
    if (inf != NULL)
        got = EVP_PKCS82PKEY(inf);
    PKCS8_PRIV_KEY_INFO_free(inf);
    same = got != NULL && EVP_PKEY_eq(got, k->pkey) == 1;
    EVP_PKEY_free(got);
    ERR_clear_error();
    if (!same)
        return S_OTHER_KEY;
    if (used < n)
        return S_TRAILING;
    return n % 8 == 0 ? S_ALIGNED : S_EXACT;
}

/* One round: the key made into a session object, wrapped under a fresh readable AES key with
 * mechanism m, unwrapped here. Every object made is destroyed, every secret byte wiped. */
static s_seen s_round(kp_p11_op *op, CK_MECHANISM_TYPE m, s_key *k, char *why, size_t size)
{
    CK_MECHANISM mech = {m, NULL, 0};
    CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, aes = CK_INVALID_HANDLE;
    uint8_t kek[KP_P11_WRAP_KEY_LEN], blob[S_BLOB_MAX], plain[S_BLOB_MAX];
    CK_ATTRIBUTE value = {CKA_VALUE, kek, sizeof(kek)};
    CK_ULONG bloblen = sizeof(blob);
    size_t plainlen = 0;
    const char *fn = "C_CreateObject";
    char rvbuf[40];
    s_seen seen = S_UNTRIED;
    CK_RV rv;

    rv = s_create_private(op, k, &priv);
    if (rv == CKR_OK) {
        fn = "C_GenerateKey";
        rv = kp_p11_session_aes(op, true, false, &aes); /* readable; no login for the probe */
    }
    if (rv == CKR_OK) {
        fn = "C_WrapKey";
        rv = op->f->C_WrapKey(op->s, &mech, aes, priv, blob, &bloblen);
    }
    if (rv == CKR_OK) {
        fn = "C_GetAttributeValue";
        rv = op->f->C_GetAttributeValue(op->s, aes, &value, 1);
    }
    if (rv == CKR_OK && value.ulValueLen != sizeof(kek))
        rv = CKR_KEY_SIZE_RANGE;
    kp_p11_destroy(op, aes);
    kp_p11_destroy(op, priv);
    if (rv != CKR_OK)
        snprintf(why, size, "%s: %s", fn, kp_p11_rv_name(rv, rvbuf, sizeof(rvbuf)));
    else if (bloblen > S_BLOB_MAX || !kp_p11_kwp_raw(kek, false, blob, bloblen, plain, &plainlen))
        seen = S_NOT_5649;
    else
        seen = s_judge(k, plain, plainlen);
    ERR_clear_error(); /* a blob that does not unwrap is an answer here, not a failure */
    OPENSSL_cleanse(kek, sizeof(kek));
    OPENSSL_cleanse(blob, sizeof(blob));
    OPENSSL_cleanse(plain, sizeof(plain));
    return seen;
}

static const char *s_mech_name(CK_MECHANISM_TYPE m)
{
    return m == CKM_AES_KEY_WRAP_KWP ? "CKM_AES_KEY_WRAP_KWP" : "CKM_AES_KEY_WRAP_PAD";
}

bool kp_p11_kwp_probe(kp_p11_op *op, CK_MECHANISM_TYPE m, CK_ULONG min_bits, char *why, size_t size)
{
    kp_p11_inst *pi = op->pi;
    char model[17] = "", what[160] = "";
    const char *mn = s_mech_name(m);
    CK_TOKEN_INFO ti;
    double t0 = kpk_clock_ms();
    s_seen seen = S_ALIGNED;
    s_key k;

    if (op->f->C_GetTokenInfo(op->slot, &ti) == CKR_OK)
        kp_p11_text(ti.model, sizeof(ti.model), model, sizeof(model));
    /* A token that re-encodes the key to a length of a multiple of 8 hides padding: another key
     * then, a few times at most. */
    for (int i = 0; i < S_TRIES && seen == S_ALIGNED; i++) {
        if (!s_key_for(min_bits, &k)) {
            seen = S_UNTRIED;
            snprintf(what, sizeof(what), "no RSA key of %lu bits or more could be made in software",
                     (unsigned long)min_bits);
            break;
        }
        seen = s_round(op, m, &k, what, sizeof(what));
        s_key_free(&k);
    }
    why[0] = '\0';
    switch (seen) {
    case S_EXACT:
        break;
    case S_ZEROS:
    case S_TRAILING:
    case S_NOT_5649:
    case S_OTHER_KEY:
        snprintf(what, sizeof(what), "%s %s", mn,
                 seen == S_ZEROS      ? "pads the key with zeros inside the wrapped length"
                 : seen == S_TRAILING ? "adds bytes to the key inside the wrapped length"
                 : seen == S_NOT_5649 ? "makes blobs that do not unwrap as RFC 5649"
                                      : "does not give back the key it wrapped");
        snprintf(why, size,
                 "token '%s'%s%s%s does not wrap keys as RFC 5649 says (%s): a strict importer "
                 "would refuse its blobs, so keys leave it only as PKCS#8",
                 pi->token, model[0] != '\0' ? " (" : "", model, model[0] != '\0' ? ")" : "", what);
        break;
    case S_ALIGNED:
        snprintf(what, sizeof(what), "it encoded every trial key to a multiple of 8 bytes");
        /* fall through */
    case S_UNTRIED:
        snprintf(why, size,
                 "token '%s'%s%s%s could not be checked for RFC 5649 key wrap with %s (%s): "
                 "keyplane sends no wrapped key it has not seen unwrap right, so keys leave it "
                 "only as PKCS#8",
                 pi->token, model[0] != '\0' ? " (" : "", model, model[0] != '\0' ? ")" : "", mn,
                 what);
        break;
    }
    kp_logf(pi->up, pi->h, KP_LOG_DEBUG, "token '%s': RFC 5649 probe of %s in %ld ms: %s",
            pi->token, mn, (long)(kpk_clock_ms() - t0), why[0] != '\0' ? why : "conformant");
    return seen == S_EXACT;
}
