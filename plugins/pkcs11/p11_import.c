/*
 * KS_IMPORT: an RSA private key enters the token wrapped, never as plaintext attributes of
 * C_CreateObject (which a PKCS#11 log or a module bug could leak, and which many HSMs refuse
 * for sensitive keys). A one-time AES-256 key wraps the PKCS#8 in software (RFC 5649); the
 * token gets that key as a session object and unwraps the private key into itself.
 *
 * The expected fingerprint (spec->fingerprint) is checked twice before the key becomes visible:
 * in software before the token is touched, and on what the token then holds, read back from
 * the objects made under the pending label of p11_version.c, which no lookup takes for the
 * version. Only when both agree, and the new version wins against every other writer of it,
 * do the objects get the version's label; any failure destroys them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>

#include "p11_internal.h"

typedef struct s_import {
    kp_key_spec spec;
    const uint8_t *p8; /* borrowed from the caller's secret */
    size_t p8len;
    uint8_t *n, *e; /* public half, for the public key object */
    size_t nlen, elen;
    char fpr[KPK_FPR_HEX]; /* the key's fingerprint, equal to spec.fingerprint when given */
    kp_p11_key key;        /* what was made; key.id is set before the op */
} s_import;

/* The one-time transport key as a session object that may only unwrap. */
static kp_status s_transport_key(kp_p11_op *op, const kp_secret *aes, CK_OBJECT_HANDLE *obj)
{
    return kp_p11_session_secret(op, CKK_AES, aes, true, "session AES transport key", obj);
}

static kp_status s_public(kp_p11_op *op, s_import *im, const char *label, const CK_DATE *date,
                          CK_OBJECT_HANDLE *obj)
{
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    uint8_t subject[KP_P11_TAG_MAX];
    size_t sublen = 0;
    KP_GUARD(kp_p11_tag(op->pi, im->spec.name, subject, &sublen, NULL));
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},         {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &yes, sizeof(yes)},         {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},       {CKA_WRAP, &yes, sizeof(yes)},
        {CKA_VERIFY, &no, sizeof(no)},          {CKA_MODULUS, im->n, im->nlen},
        {CKA_PUBLIC_EXPONENT, im->e, im->elen}, {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, im->key.id, im->key.idlen},    {CKA_START_DATE, (void *)date, sizeof(*date)},
        {CKA_SUBJECT, subject, sublen}, /* so a half left alone is found (p11_version.c) */
    };
    CK_RV rv = op->f->C_CreateObject(op->s, t, sizeof(t) / sizeof(t[0]), obj);

    if (rv != CKR_OK)
        return kp_p11_ck(op->pi, op, rv, false, "C_CreateObject", "public key of %s",
                         im->spec.name);
    return KP_OK;
}

static kp_status s_unwrap_private(kp_p11_op *op, s_import *im, CK_MECHANISM_TYPE mtype,
                                  CK_OBJECT_HANDLE aes, const uint8_t *blob, size_t bloblen,
                                  const char *label, const CK_DATE *date, CK_OBJECT_HANDLE *obj)
{
    uint8_t subject[KP_P11_TAG_MAX];
    size_t sublen = 0;
    kp_status st = kp_p11_tag(op->pi, im->spec.name, subject, &sublen, NULL);

    if (st != KP_OK)
        return st;
    CK_MECHANISM mech = {mtype, NULL, 0}; /* SoftHSM refuses any IV parameter */
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BBOOL extr = (im->spec.flags & KP_KEY_EXPORTABLE) != 0 ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},      {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &yes, sizeof(yes)},      {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},  {CKA_EXTRACTABLE, &extr, sizeof(extr)},
        {CKA_DECRYPT, &yes, sizeof(yes)},    {CKA_UNWRAP, &yes, sizeof(yes)},
        {CKA_SIGN, &no, sizeof(no)},         {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, im->key.id, im->key.idlen}, {CKA_START_DATE, (void *)date, sizeof(*date)},
        {CKA_SUBJECT, subject, sublen},
    };
    CK_RV rv = op->f->C_UnwrapKey(op->s, &mech, aes, (CK_BYTE_PTR)blob, bloblen, t,
                                  sizeof(t) / sizeof(t[0]), obj);

    if (rv != CKR_OK)
        return kp_p11_ck(op->pi, op, rv, true, "C_UnwrapKey", "private key of %s", im->spec.name);
    return KP_OK;
}

/* What the token holds under obj must be the key whose fingerprint was checked: a module that
 * unwrapped something else (or a public key built wrong) is caught before anyone sees it. */
static kp_status s_token_holds(kp_p11_op *op, const s_import *im, CK_OBJECT_HANDLE obj,
                               const char *what)
{
    kp_p11_inst *pi = op->pi;
    char fpr[KPK_FPR_HEX];
    uint8_t id[KP_P11_SHA256_LEN], *spki = NULL;
    size_t len = 0;
    kp_status st = kp_p11_obj_spki(op, obj, &spki, &len);

    if (st == KP_OK)
        st = kp_p11_spki_id(pi, spki, len, fpr, id);
    free(spki);
    if (st == KP_OK && strcmp(fpr, im->fpr) != 0)
        st = kp_p11_err(pi, KP_ERR_INTEGRITY,
                        "import of %s: the %s the token made has fingerprint %.16s..., not "
                        "%.16s...; nothing was kept",
                        im->spec.name, what, fpr, im->fpr);
    return st;
}

static kp_status s_import_op(kp_p11_op *op, void *arg)
{
    s_import *im = arg;
    kp_p11_inst *pi = op->pi;
    const kp_p11_up *up = pi->up;
    CK_OBJECT_HANDLE aes = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
    CK_MECHANISM_TYPE mech;
    kp_secret *kek = NULL;
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    kp_p11_draft d;
    CK_DATE date;
    kp_status st = KP_OK;

    KP_GUARD(kp_p11_probe_mechs(op));
    pthread_mutex_lock(&pi->lock);
    mech = pi->kwp_mech;
    pthread_mutex_unlock(&pi->lock);
    if (mech == 0)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED,
                          "token '%s' offers no AES key wrap with padding (RFC 5649): cannot "
                          "import keys without handing it a plaintext private key",
                          pi->token);
    KP_GUARD(kp_p11_draft_open(op, im->spec.name, im->spec.version, &d));
    kp_p11_today(&date, &im->key.created);
    if ((kek = up->secret_new(KP_P11_WRAP_KEY_LEN)) == NULL ||
        (blob = malloc(kp_p11_kwp_len(im->p8len))) == NULL)
        st = kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK)
        st = kp_p11_random(pi, up->secret_data(kek), KP_P11_WRAP_KEY_LEN);
    if (st == KP_OK)
        st = kp_p11_kwp_wrap(pi, up->secret_cdata(kek), im->p8, im->p8len, blob, &bloblen);
    /* Made under the pending label with their ID (the order among writers), checked, then
     * settled against other writers of the version (p11_version.c). */
    if (st == KP_OK)
        st = s_transport_key(op, kek, &aes);
    if (st == KP_OK)
        st = s_public(op, im, d.pending, &date, &pub);
    if (st == KP_OK)
        st = s_unwrap_private(op, im, mech, aes, blob, bloblen, d.pending, &date, &priv);
    kp_p11_draft_made(&d, priv, pub);
    if (st == KP_OK)
        st = s_token_holds(op, im, priv, "private key");
    if (st == KP_OK)
        st = s_token_holds(op, im, pub, "public key");
    if (st == KP_OK)
        st = kp_p11_draft_settle(op, &d); /* destroys them when it fails */
    else
        kp_p11_draft_drop(op, &d);
    if (st == KP_OK) {
        im->key.obj = d.key;
        im->key.version = d.version;
        kp_logf(pi->up, pi->h, KP_LOG_DEBUG, "imported key %s v%u into token '%s' (%s)",
                im->spec.name, im->key.version, pi->token,
                mech == CKM_AES_KEY_WRAP_PAD ? "CKM_AES_KEY_WRAP_PAD" : "KWP");
    }
    kp_p11_destroy(op, aes);
    up->secret_free(kek);
    if (blob != NULL)
        OPENSSL_cleanse(blob, kp_p11_kwp_len(im->p8len));
    free(blob);
    return st;
}

kp_status kp_p11_ks_import(void *inst, const kp_key_spec *in, const kp_secret *pkcs8_der,
                           kp_key_info *info)
{
    kp_p11_inst *pi = inst;
    s_import im;
    uint8_t *spki = NULL;
    size_t spkilen = 0;
    kp_status st = KP_OK;

    memset(&im, 0, sizeof(im));
    KP_GUARD(kp_p11_spec(pi, in, &im.spec));
    if (pkcs8_der == NULL || info == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "import: key or info is NULL");
    if (im.spec.type == KP_KEY_AES)
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "the pkcs11 keystore imports RSA keys only");
    if (im.spec.type != KP_KEY_RSA && im.spec.type != 0)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "unknown key type %u", im.spec.type);
    if (im.spec.fingerprint != NULL && !kpk_fpr_valid(im.spec.fingerprint))
        return kp_p11_err(pi, KP_ERR_INVALID_ARG,
                          "import of %s: the expected fingerprint is not 64 lower-case hex digits",
                          im.spec.name);
    im.p8 = pi->up->secret_cdata(pkcs8_der);
    im.p8len = pi->up->secret_len(pkcs8_der);
    KP_GUARD(kp_p11_p8_check(pi, im.spec.name, im.spec.bits, im.p8, im.p8len, &spki, &spkilen));
    im.key.idlen = KP_P11_SHA256_LEN;
    st = kp_p11_spki_id(pi, spki, spkilen, im.fpr, im.key.id);
    if (st == KP_OK && im.spec.fingerprint != NULL && strcmp(im.fpr, im.spec.fingerprint) != 0)
        st = kp_p11_err(pi, KP_ERR_INTEGRITY,
                        "import of %s: the key has fingerprint %.16s..., not the expected "
                        "%.16s...; nothing was written to token '%s'",
                        im.spec.name, im.fpr, im.spec.fingerprint, pi->token);
    if (st == KP_OK)
        st = kp_p11_spki_parse(pi, spki, spkilen, &im.n, &im.nlen, &im.e, &im.elen);
    OPENSSL_free(spki);
    if (st == KP_OK) {
        st = kp_p11_write_run(pi, s_import_op, &im);
    }
    if (st == KP_OK) {
        kp_key_info full;

        snprintf(im.key.name, sizeof(im.key.name), "%s", im.spec.name);
        im.key.type = KP_KEY_RSA;
        im.key.bits = (uint32_t)im.nlen * 8;
        im.key.extractable = (im.spec.flags & KP_KEY_EXPORTABLE) != 0;
        kp_p11_key_info(pi, &im.key, &full);
        kp_key_info_put(info, &full);
    }
    free(im.n);
    free(im.e);
    return st;
}
