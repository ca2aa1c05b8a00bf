/*
 * KS_EXPORT and KS_EXPORT_WRAPPED. The token wraps the private key under a one-time AES-256 key
 * with RFC 5649 (the only form in which C_WrapKey hands out a private key: PKCS#8 inside);
 * export then unwraps it in software, EXPORT_WRAPPED wraps the AES key with RSA-OAEP for the
 * target's wrapping key instead (CKM_RSA_AES_KEY_WRAP done in two steps, as SoftHSM lacks
 * 0x1054), so the private key never leaves the token in plaintext. EXPORT_WRAPPED is offered
 * only for a token whose RFC 5649 passed the probe of p11_kwp.c; KS_EXPORT takes off the zeros
 * a token like SoftHSM 2.6.1 pads the PKCS#8 with (kp_p11_kwp_unwrap).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "p11_internal.h"

typedef struct s_export {
    const char *name;
    uint32_t version;
    kp_secret *p8;        /* export */
    uint32_t method;      /* export_wrapped: a kp_keyx_method */
    const uint8_t *n, *e; /* export_wrapped: the wrapping key */
    size_t nlen, elen;
    uint8_t *out;
    size_t cap, outlen;
} s_export;

/* The key's private half, refused before anything is created when it may not leave. */
static kp_status s_exportable(kp_p11_op *op, s_export *x, kp_p11_key *key, CK_MECHANISM_TYPE *m)
{
    kp_p11_inst *pi = op->pi;

    KP_GUARD(kp_p11_key_find(op, x->name, x->version, key));
    if (key->type != KP_KEY_RSA)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "key %s v%u is an AES key: only RSA keys export",
                          key->name, key->version);
    if (!key->extractable)
        return kp_p11_err(pi, KP_ERR_DENIED,
                          "key %s v%u is not exportable (CKA_EXTRACTABLE is false)", key->name,
                          key->version);
    KP_GUARD(kp_p11_probe_mechs(op));
    pthread_mutex_lock(&pi->lock);
    *m = pi->kwp_mech;
    pthread_mutex_unlock(&pi->lock);
    if (*m == 0)
        return kp_p11_err(
            pi, KP_ERR_UNSUPPORTED,
            "token '%s' offers no AES key wrap with padding (RFC 5649) to export with", pi->token);
    return KP_OK;
}

/* A one-time AES-256 session key that may wrap; readable (not sensitive) when export has to
 * unwrap in software. */
static kp_status s_session_aes(kp_p11_op *op, bool readable, CK_OBJECT_HANDLE *obj)
{
    CK_RV rv = kp_p11_session_aes(op, readable, true, obj);

    if (rv != CKR_OK)
        return kp_p11_ck(op->pi, op, rv, true, "C_GenerateKey", "session AES-256 key");
    return KP_OK;
}

/* C_WrapKey into a malloc'ed buffer. */
static kp_status s_wrap_alloc(kp_p11_op *op, CK_MECHANISM *mech, CK_OBJECT_HANDLE wrapping,
                              CK_OBJECT_HANDLE key, const kp_p11_key *what, uint8_t **out,
                              size_t *len)
{
    uint8_t *buf = NULL;
    CK_ULONG n = 0;
    kp_status st = KP_OK;
    CK_RV rv;

    *out = NULL;
    rv = op->f->C_WrapKey(op->s, mech, wrapping, key, NULL, &n);
    if (rv == CKR_OK && (buf = malloc(n > 0 ? n : 1)) == NULL)
        return kp_p11_err(op->pi, KP_ERR_NOMEM, "out of memory");
    if (rv == CKR_OK)
        rv = op->f->C_WrapKey(op->s, mech, wrapping, key, buf, &n);
    if (rv != CKR_OK)
        st = kp_p11_ck(op->pi, op, rv, true, "C_WrapKey", "exporting key %s v%u", what->name,
                       what->version);
    if (st == KP_OK) {
        *out = buf;
        *len = n;
        buf = NULL;
    }
    free(buf);
    return st;
}

static kp_status s_export_op(kp_p11_op *op, void *arg)
{
    s_export *x = arg;
    kp_p11_inst *pi = op->pi;
    CK_MECHANISM mech = {0, NULL, 0};
    CK_OBJECT_HANDLE aes = CK_INVALID_HANDLE;
    kp_secret *kek = NULL;
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    kp_p11_key key;
    kp_status st;

    pi->up->secret_free(x->p8); /* from a first attempt that failed half-way */
    x->p8 = NULL;
    KP_GUARD(s_exportable(op, x, &key, &mech.mechanism));
    KP_GUARD(s_session_aes(op, true, &aes));
    st = s_wrap_alloc(op, &mech, aes, key.obj, &key, &blob, &bloblen);
    if (st == KP_OK)
        st = kp_p11_attr_secret(op, aes, &kek);
    if (st == KP_OK && pi->up->secret_len(kek) != KP_P11_WRAP_KEY_LEN)
        st = kp_p11_err(pi, KP_ERR_BACKEND, "token '%s' made a %zu-byte AES-256 key", pi->token,
                        pi->up->secret_len(kek));
    if (st == KP_OK)
        st = kp_p11_kwp_unwrap(pi, pi->up->secret_cdata(kek), blob, bloblen, &x->p8);
    kp_p11_destroy(op, aes);
    pi->up->secret_free(kek);
    if (blob != NULL)
        OPENSSL_cleanse(blob, bloblen);
    free(blob);
    return st;
}

kp_status kp_p11_ks_export(void *inst, const char *name, uint32_t version, kp_secret **pkcs8_der)
{
    kp_p11_inst *pi = inst;
    s_export x = {.name = name, .version = version};
    kp_status st;

    if (pkcs8_der == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "export: output is NULL");
    *pkcs8_der = NULL;
    KP_GUARD(kp_p11_check_name(pi, name));
    st = kp_p11_run(pi, s_export_op, &x);
    if (st == KP_OK) {
        *pkcs8_der = x.p8;
        x.p8 = NULL;
    }
    pi->up->secret_free(x.p8);
    return st;
}

/* The wrapping key as a session public key that may only wrap. */
static kp_status s_kek_object(kp_p11_op *op, const s_export *x, CK_OBJECT_HANDLE *obj)
{
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_WRAP, &yes, sizeof(yes)},
        {CKA_ENCRYPT, &no, sizeof(no)},
        {CKA_VERIFY, &no, sizeof(no)},
        {CKA_MODULUS, (void *)x->n, x->nlen},
        {CKA_PUBLIC_EXPONENT, (void *)x->e, x->elen},
    };
    CK_RV rv = op->f->C_CreateObject(op->s, t, sizeof(t) / sizeof(t[0]), obj);

    if (rv != CKR_OK)
        return kp_p11_ck(op->pi, op, rv, false, "C_CreateObject", "session wrapping public key");
    return KP_OK;
}

static kp_status s_wrapped_op(kp_p11_op *op, void *arg)
{
    s_export *x = arg;
    kp_p11_inst *pi = op->pi;
    bool sha256 = x->method == KP_KEYX_RSA_AES_KWP_SHA256;
    CK_RSA_PKCS_OAEP_PARAMS oaep = {sha256 ? CKM_SHA256 : CKM_SHA_1,
                                    sha256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED,
                                    NULL, 0};
    CK_MECHANISM kwp = {0, NULL, 0}, rsa = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
    CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, aes = CK_INVALID_HANDLE;
    uint8_t *part1 = NULL, *part2 = NULL;
    size_t len1 = 0, len2 = 0;
    kp_p11_key key;
    kp_status st = KP_OK;

    KP_GUARD(s_exportable(op, x, &key, &kwp.mechanism));
    st = s_kek_object(op, x, &kek);
    if (st == KP_OK)
        st = s_session_aes(op, false, &aes);
    if (st == KP_OK)
        st = s_wrap_alloc(op, &kwp, aes, key.obj, &key, &part2, &len2);
    if (st == KP_OK)
        st = s_wrap_alloc(op, &rsa, kek, aes, &key, &part1, &len1);
    if (st == KP_OK) {
        x->outlen = len1 + len2;
        if (x->out == NULL || x->cap < x->outlen)
            st = kp_p11_err(pi, KP_ERR_BUFFER_TOO_SMALL, "wrapped key needs %zu bytes", x->outlen);
    }
    if (st == KP_OK && (part1 == NULL || part2 == NULL))
        st = kp_p11_err(pi, KP_ERR_CRYPTO, "the token wrapped key %s v%u into nothing", key.name,
                        key.version);
    if (st == KP_OK) {
        memcpy(x->out, part1, len1);
        memcpy(x->out + len1, part2, len2);
        kp_logf(pi->up, pi->h, KP_LOG_DEBUG,
                "wrapped export of key %s v%u (OAEP-%s): %zu + %zu bytes", key.name, key.version,
                sha256 ? "SHA-256" : "SHA-1", len1, len2);
    }
    /* The AES key must not outlive the blob: whoever holds it and part 2 holds the key. */
    kp_p11_destroy(op, aes);
    kp_p11_destroy(op, kek);
    free(part1);
    free(part2);
    return st;
}

/* out is written through x.out (s_wrapped_op), which clang-tidy does not follow. */
kp_status kp_p11_ks_export_wrapped(void *inst, const char *name, uint32_t version, uint32_t method,
                                   const uint8_t *wrapping_spki, size_t spki_len,
                                   uint8_t *out, // NOLINT(readability-non-const-parameter)
                                   size_t *outlen)
{
    kp_p11_inst *pi = inst;
    uint8_t *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    kp_instance_info caps;
    s_export x;
    kp_status st = KP_OK;

    if (outlen == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "export_wrapped: outlen is NULL");
    if (method != KP_KEYX_RSA_AES_KWP_SHA1 && method != KP_KEYX_RSA_AES_KWP_SHA256)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED,
                          "key transfer method %u: the pkcs11 keystore exports RSA keys with "
                          "RSA-AES key wrap (SHA-1, or SHA-256 where the token has it)",
                          method);
    kp_p11_caps(pi, &caps);
    if ((caps.export_keyx & KP_KEYX_BIT(method)) == 0) {
        char why[KP_P11_WHY_MAX];

        kp_p11_no_keyx(pi, why, sizeof(why));
        if (why[0] != '\0') /* the token has the mechanisms, but its RFC 5649 failed the probe */
            return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "%s", why);
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED,
                          "token '%s' cannot wrap with RSA-OAEP %s and AES key wrap with padding",
                          pi->token, method == KP_KEYX_RSA_AES_KWP_SHA256 ? "SHA-256" : "SHA-1");
    }
    KP_GUARD(kp_p11_check_name(pi, name));
    KP_GUARD(kp_p11_spki_parse(pi, wrapping_spki, spki_len, &n, &nlen, &e, &elen));
    x = (s_export){.name = name,
                   .version = version,
                   .method = method,
                   .n = n,
                   .nlen = nlen,
                   .e = e,
                   .elen = elen,
                   .out = out,
                   .cap = *outlen};
    st = kp_p11_run(pi, s_wrapped_op, &x);
    if (st == KP_OK || st == KP_ERR_BUFFER_TOO_SMALL)
        *outlen = x.outlen;
    free(n);
    free(e);
    return st;
}
