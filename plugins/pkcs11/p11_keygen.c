/*
 * KS_CREATE: key generation inside the token, under the pending label of p11_version.c until
 * the new version wins against every other writer of it. An RSA key's CKA_ID is the SHA-256 of
 * its SubjectPublicKeyInfo (its fingerprint), known only after generation: it is set right
 * after, still under the pending label. Whatever fails after the objects exist destroys them:
 * the token keeps no half-made versions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "p11_internal.h"

kp_status kp_p11_spec(kp_p11_inst *pi, const kp_key_spec *in, kp_key_spec *out)
{
    if (!kp_key_spec_read(in, out))
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "key spec missing or too small");
    return kp_p11_check_name(pi, out->name);
}

typedef struct s_create {
    kp_key_spec spec;
    kp_p11_key key; /* what was made */
} s_create;

/* The SPKI fingerprint of an RSA public key object, as its CKA_ID. */
static kp_status s_rsa_id(kp_p11_op *op, CK_OBJECT_HANDLE pub, uint8_t id[KP_P11_SHA256_LEN])
{
    char fpr[KPK_FPR_HEX];
    uint8_t *spki = NULL;
    size_t spkilen = 0;
    kp_status st = kp_p11_obj_spki(op, pub, &spki, &spkilen);

    if (st == KP_OK)
        st = kp_p11_spki_id(op->pi, spki, spkilen, fpr, id);
    free(spki);
    return st;
}

/* Copies a session key object onto the token under the pending label with its ID, right after
 * a search (p11_version.c). */
static CK_RV s_to_token(kp_p11_op *op, CK_OBJECT_HANDLE obj, const kp_p11_draft *d,
                        const uint8_t *id, size_t idlen, CK_OBJECT_HANDLE *out)
{
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)d->pending, strlen(d->pending)},
        {CKA_ID, (void *)id, idlen},
    };

    kp_p11_refresh(op);
    return op->f->C_CopyObject(op->s, obj, t, sizeof(t) / sizeof(t[0]), out);
}

/* Whether a refused copy means the token does not copy objects onto it at all. */
static bool s_copy_refused(CK_RV rv)
{
    return rv == CKR_FUNCTION_NOT_SUPPORTED || rv == CKR_ACTION_PROHIBITED ||
           rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_TEMPLATE_INCONSISTENT ||
           rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_VALUE_INVALID;
}

static kp_status s_create_rsa(kp_p11_op *op, s_create *c, kp_p11_draft *d, const CK_DATE *date)
{
    kp_p11_inst *pi = op->pi;
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BBOOL extr = (c->spec.flags & KP_KEY_EXPORTABLE) != 0 ? CK_TRUE : CK_FALSE;
    CK_ULONG bits = c->spec.bits;
    CK_BYTE f4[] = {0x01, 0x00, 0x01};
    uint8_t subject[KP_P11_TAG_MAX];
    size_t sublen = 0;
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE tpub = CK_INVALID_HANDLE, tpriv = CK_INVALID_HANDLE;
    bool no_copy;
    kp_status st = KP_OK;
    CK_RV rv;

    pthread_mutex_lock(&pi->lock);
    no_copy = pi->no_copy;
    pthread_mutex_unlock(&pi->lock);
    KP_GUARD(kp_p11_tag(pi, c->spec.name, subject, &sublen, NULL));
    CK_BBOOL on_token = no_copy ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE pubt[] = {
        {CKA_TOKEN, &on_token, sizeof(on_token)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_WRAP, &yes, sizeof(yes)},
        {CKA_VERIFY, &no, sizeof(no)},
        {CKA_MODULUS_BITS, &bits, sizeof(bits)},
        {CKA_PUBLIC_EXPONENT, f4, sizeof(f4)},
        {CKA_LABEL, d->pending, strlen(d->pending)},
        {CKA_START_DATE, (void *)date, sizeof(*date)},
        {CKA_SUBJECT, subject, sublen}, /* so a half left alone is found (p11_version.c) */
    };
    CK_ATTRIBUTE privt[] = {
        {CKA_TOKEN, &on_token, sizeof(on_token)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &extr, sizeof(extr)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_UNWRAP, &yes, sizeof(yes)},
        {CKA_SIGN, &no, sizeof(no)},
        {CKA_LABEL, d->pending, strlen(d->pending)},
        {CKA_START_DATE, (void *)date, sizeof(*date)},
        {CKA_SUBJECT, subject, sublen},
    };
    /* Generated as session objects (no token object is made during the long generation), then
     * copied onto the token with their ID right after a search: see p11_version.c. A token
     * that refuses the copy gets it generated on the token from then on. */
    rv = op->f->C_GenerateKeyPair(op->s, &mech, pubt, sizeof(pubt) / sizeof(pubt[0]), privt,
                                  sizeof(privt) / sizeof(privt[0]), &pub, &priv);
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_GenerateKeyPair", "RSA-%u for key %s", c->spec.bits,
                         c->spec.name);
    c->key.idlen = KP_P11_SHA256_LEN;
    st = s_rsa_id(op, pub, c->key.id);
    if (st == KP_OK && !no_copy) {
        /* The public half first: a listing that finds the private key must find its pair. */
        rv = s_to_token(op, pub, d, c->key.id, c->key.idlen, &tpub);
        if (rv == CKR_OK)
            rv = s_to_token(op, priv, d, c->key.id, c->key.idlen, &tpriv);
        if (rv != CKR_OK && s_copy_refused(rv)) {
            pthread_mutex_lock(&pi->lock);
            pi->no_copy = true;
            pthread_mutex_unlock(&pi->lock);
            kp_logf(pi->up, pi->h, KP_LOG_DEBUG,
                    "token '%s' does not copy key objects onto it; keys are generated on it",
                    pi->token);
            st = KP_ERR_UNSUPPORTED;
        } else if (rv != CKR_OK) {
            st = kp_p11_ck(pi, op, rv, false, "C_CopyObject", "key %s onto token '%s'",
                           c->spec.name, pi->token);
        }
        kp_p11_destroy(op, pub);
        kp_p11_destroy(op, priv);
        pub = tpub;
        priv = tpriv;
    } else if (st == KP_OK) {
        /* Generated on the token: the ID follows, the public half first. */
        st = kp_p11_relabel(op, pub, c->key.id, c->key.idlen, d->pending);
        if (st == KP_OK)
            st = kp_p11_relabel(op, priv, c->key.id, c->key.idlen, d->pending);
    }
    kp_p11_draft_made(d, priv, pub); /* made or half-made: the caller drops them on failure */
    if (st == KP_ERR_UNSUPPORTED && !no_copy) {
        kp_p11_draft_drop(op, d);
        return s_create_rsa(op, c, d, date); /* once: no_copy is set now */
    }
    return st;
}

static kp_status s_create_aes(kp_p11_op *op, s_create *c, kp_p11_draft *d, const CK_DATE *date)
{
    kp_p11_inst *pi = op->pi;
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BBOOL extr = (c->spec.flags & KP_KEY_EXPORTABLE) != 0 ? CK_TRUE : CK_FALSE;
    CK_ULONG len = c->spec.bits / 8;
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    uint8_t subject[KP_P11_TAG_MAX];
    size_t sublen = 0;
    CK_RV rv;

    /* The tag is the ID: a secret key has no CKA_SUBJECT to carry it. */
    c->key.idlen = KP_P11_AES_ID_LEN;
    KP_GUARD(kp_p11_tag(pi, c->spec.name, subject, &sublen, c->key.id));
    {
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &cls, sizeof(cls)},         {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_VALUE_LEN, &len, sizeof(len)},     {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &yes, sizeof(yes)},       {CKA_SENSITIVE, &yes, sizeof(yes)},
            {CKA_EXTRACTABLE, &extr, sizeof(extr)}, {CKA_ENCRYPT, &no, sizeof(no)},
            {CKA_DECRYPT, &no, sizeof(no)},         {CKA_WRAP, &yes, sizeof(yes)},
            {CKA_UNWRAP, &yes, sizeof(yes)},        {CKA_LABEL, d->pending, strlen(d->pending)},
            {CKA_ID, c->key.id, c->key.idlen},      {CKA_START_DATE, (void *)date, sizeof(*date)},
        };
        rv = op->f->C_GenerateKey(op->s, &mech, t, sizeof(t) / sizeof(t[0]), &key);
    }
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_GenerateKey", "AES-%u for key %s", c->spec.bits,
                         c->spec.name);
    kp_p11_draft_made(d, key, CK_INVALID_HANDLE);
    return KP_OK;
}

static kp_status s_create_op(kp_p11_op *op, void *arg)
{
    s_create *c = arg;
    kp_p11_draft d;
    CK_DATE date;
    kp_status st = KP_OK;

    /* Version 0 is the next free one: a writer that loses it to another tries the next. */
    for (int attempt = 0; attempt < 5; attempt++) {
        memset(&c->key, 0, sizeof(c->key));
        KP_GUARD(kp_p11_draft_open(op, c->spec.name, c->spec.version, &d));
        kp_p11_today(&date, &c->key.created);
        st = c->spec.type == KP_KEY_RSA ? s_create_rsa(op, c, &d, &date)
                                        : s_create_aes(op, c, &d, &date);
        if (st == KP_OK)
            st = kp_p11_draft_settle(op, &d);
        else /* nothing half-made stays on the token */
            kp_p11_draft_drop(op, &d);
        if (st != KP_ERR_EXISTS || c->spec.version != 0)
            break;
    }
    if (st != KP_OK)
        return st;
    c->key.obj = d.key;
    c->key.version = d.version;
    snprintf(c->key.name, sizeof(c->key.name), "%s", c->spec.name);
    c->key.type = c->spec.type;
    c->key.bits = c->spec.bits;
    c->key.extractable = (c->spec.flags & KP_KEY_EXPORTABLE) != 0;
    kp_logf(op->pi->up, op->pi->h, KP_LOG_DEBUG, "created key %s v%u on token '%s'", c->spec.name,
            c->key.version, op->pi->token);
    return KP_OK;
}

kp_status kp_p11_ks_create(void *inst, const kp_key_spec *in, kp_key_info *info)
{
    kp_p11_inst *pi = inst;
    s_create c;
    kp_status st = KP_OK;

    KP_GUARD(kp_p11_spec(pi, in, &c.spec));
    if (info == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "create: info is NULL");
    if (c.spec.type == KP_KEY_RSA) {
        if (c.spec.bits != 2048 && c.spec.bits != 3072 && c.spec.bits != 4096)
            return kp_p11_err(pi, KP_ERR_INVALID_ARG, "RSA key size %u: use 2048, 3072 or 4096",
                              c.spec.bits);
    } else if (c.spec.type == KP_KEY_AES) {
        if (c.spec.bits != 128 && c.spec.bits != 192 && c.spec.bits != 256)
            return kp_p11_err(pi, KP_ERR_INVALID_ARG, "AES key size %u: use 128, 192 or 256",
                              c.spec.bits);
    } else {
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "unknown key type %u", c.spec.type);
    }
    /* Version numbers are chosen by reading the token: two creates of one name from this
     * process must not both pick the same one, which kp_p11_write_run's exclusive hold sees to. */
    st = kp_p11_write_run(pi, s_create_op, &c);
    if (st == KP_OK) {
        kp_key_info full;
        kp_p11_key_info(pi, &c.key, &full);
        kp_key_info_put(info, &full);
    }
    return st;
}
