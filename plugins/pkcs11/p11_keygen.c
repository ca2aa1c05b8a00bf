/*
 * KS_CREATE: key generation inside the token. An RSA key's CKA_ID is the SHA-256 of its
 * SubjectPublicKeyInfo (its fingerprint), known only after generation, so the pair is generated
 * under a placeholder label that no lookup accepts and renamed once its ID is set. Whatever fails
 * after the objects exist destroys them: the token keeps no half-made versions.
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

/* Any object (of any class) already labelled for name/version blocks that version: a public
 * key left behind by another tool would otherwise pair with our new private key. */
static kp_status s_label_taken(kp_p11_op *op, const char *label, bool *taken)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_SECRET_KEY, CKO_PUBLIC_KEY};
    CK_OBJECT_HANDLE obj;
    kp_status st = KP_OK;

    *taken = false;
    for (size_t c = 0; c < 3; c++) {
        st = kp_p11_find_one(op, classes[c], label, &obj);
        if (st == KP_ERR_NOT_FOUND)
            continue;
        if (st != KP_OK && st != KP_ERR_INTEGRITY)
            return st;
        *taken = true;
        return KP_OK;
    }
    return KP_OK;
}

kp_status kp_p11_version_alloc(kp_p11_op *op, const char *name, uint32_t want, uint32_t *version)
{
    kp_p11_inst *pi = op->pi;
    char label[KP_P11_OBJLABEL_MAX];
    kp_p11_key *keys;
    uint32_t v;
    size_t n;
    bool taken;

    KP_GUARD(kp_p11_scan(op, name, &keys, &n));
    v = want != 0 ? want : n > 0 ? keys[n - 1].version + 1 : 1;
    free(keys);
    for (int tries = 0; tries < 100; tries++, v++) {
        if (v == 0)
            break; /* wrapped past UINT32_MAX */
        KP_GUARD(kp_p11_label(pi, name, v, label, sizeof(label)));
        KP_GUARD(s_label_taken(op, label, &taken));
        if (!taken) {
            *version = v;
            return KP_OK;
        }
        if (want != 0)
            return kp_p11_err(pi, KP_ERR_EXISTS, "key %s v%u already exists on token '%s'", name,
                              want, pi->token);
    }
    return kp_p11_err(pi, KP_ERR_EXISTS, "no free version for key %s on token '%s'", name,
                      pi->token);
}

kp_status kp_p11_version_claim(kp_p11_op *op, CK_OBJECT_CLASS cls, const char *label)
{
    CK_OBJECT_HANDLE obj;
    kp_status st = kp_p11_find_one(op, cls, label, &obj);

    if (st == KP_ERR_INTEGRITY)
        return kp_p11_err(op->pi, KP_ERR_EXISTS,
                          "another writer created '%s' on token '%s' at the same time", label,
                          op->pi->token);
    if (st == KP_ERR_NOT_FOUND)
        return kp_p11_err(op->pi, KP_ERR_BACKEND, "object '%s' vanished from token '%s'", label,
                          op->pi->token);
    return st;
}

typedef struct s_create {
    kp_key_spec spec;
    kp_p11_key key; /* what was made */
} s_create;

static kp_status s_create_rsa(kp_p11_op *op, s_create *c, const char *label, const CK_DATE *date)
{
    kp_p11_inst *pi = op->pi;
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BBOOL extr = (c->spec.flags & KP_KEY_EXPORTABLE) != 0 ? CK_TRUE : CK_FALSE;
    CK_ULONG bits = c->spec.bits;
    CK_BYTE f4[] = {0x01, 0x00, 0x01};
    char temp[KP_P11_OBJLABEL_MAX], fpr[KPK_FPR_HEX];
    uint8_t subject[KP_P11_TAG_MAX];
    size_t sublen = 0;
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
    uint8_t *spki = NULL;
    size_t spkilen;
    kp_status st = KP_OK;
    CK_RV rv;

    /* A leading '.' is never a valid key name, so lookups skip the pair until renamed. */
    KP_GUARD(kp_p11_pending_label(pi, temp, sizeof(temp)));
    KP_GUARD(kp_p11_tag(pi, c->spec.name, subject, &sublen, NULL));
    {
        CK_ATTRIBUTE pubt[] = {
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &no, sizeof(no)},
            {CKA_ENCRYPT, &yes, sizeof(yes)},
            {CKA_WRAP, &yes, sizeof(yes)},
            {CKA_VERIFY, &no, sizeof(no)},
            {CKA_MODULUS_BITS, &bits, sizeof(bits)},
            {CKA_PUBLIC_EXPONENT, f4, sizeof(f4)},
            {CKA_LABEL, temp, strlen(temp)},
            {CKA_START_DATE, (void *)date, sizeof(*date)},
        };
        CK_ATTRIBUTE privt[] = {
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &yes, sizeof(yes)},
            {CKA_SENSITIVE, &yes, sizeof(yes)},
            {CKA_EXTRACTABLE, &extr, sizeof(extr)},
            {CKA_DECRYPT, &yes, sizeof(yes)},
            {CKA_UNWRAP, &yes, sizeof(yes)},
            {CKA_SIGN, &no, sizeof(no)},
            {CKA_LABEL, temp, strlen(temp)},
            {CKA_START_DATE, (void *)date, sizeof(*date)},
            {CKA_SUBJECT, subject, sublen},
        };
        rv = op->f->C_GenerateKeyPair(op->s, &mech, pubt, sizeof(pubt) / sizeof(pubt[0]), privt,
                                      sizeof(privt) / sizeof(privt[0]), &pub, &priv);
    }
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_GenerateKeyPair", "RSA-%u for key %s", c->spec.bits,
                         c->spec.name);
    c->key.idlen = KP_P11_SHA256_LEN;
    st = kp_p11_obj_spki(op, pub, &spki, &spkilen);
    if (st == KP_OK) {
        st = kp_p11_spki_id(pi, spki, spkilen, fpr, c->key.id);
        free(spki);
    }
    /* The public half first: listings go by the private key, which must find its pair. */
    if (st == KP_OK)
        st = kp_p11_relabel(op, pub, c->key.id, c->key.idlen, label);
    if (st == KP_OK)
        st = kp_p11_relabel(op, priv, c->key.id, c->key.idlen, label);
    if (st == KP_OK)
        st = kp_p11_version_claim(op, CKO_PUBLIC_KEY, label);
    if (st == KP_OK)
        st = kp_p11_version_claim(op, CKO_PRIVATE_KEY, label);
    if (st == KP_OK) {
        c->key.obj = priv;
    } else { /* nothing half-made stays on the token */
        kp_p11_destroy(op, priv);
        kp_p11_destroy(op, pub);
    }
    return st;
}

static kp_status s_create_aes(kp_p11_op *op, s_create *c, const char *label, const CK_DATE *date)
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
    kp_status st = KP_OK;
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
            {CKA_UNWRAP, &yes, sizeof(yes)},        {CKA_LABEL, (void *)label, strlen(label)},
            {CKA_ID, c->key.id, c->key.idlen},      {CKA_START_DATE, (void *)date, sizeof(*date)},
        };
        rv = op->f->C_GenerateKey(op->s, &mech, t, sizeof(t) / sizeof(t[0]), &key);
    }
    if (rv != CKR_OK)
        return kp_p11_ck(pi, op, rv, true, "C_GenerateKey", "AES-%u for key %s", c->spec.bits,
                         c->spec.name);
    st = kp_p11_version_claim(op, CKO_SECRET_KEY, label);
    if (st == KP_OK)
        c->key.obj = key;
    else
        kp_p11_destroy(op, key);
    return st;
}

static kp_status s_create_op(kp_p11_op *op, void *arg)
{
    s_create *c = arg;
    char label[KP_P11_OBJLABEL_MAX];
    CK_DATE date;
    kp_status st = KP_OK;

    memset(&c->key, 0, sizeof(c->key));
    KP_GUARD(kp_p11_version_alloc(op, c->spec.name, c->spec.version, &c->key.version));
    KP_GUARD(kp_p11_label(op->pi, c->spec.name, c->key.version, label, sizeof(label)));
    kp_p11_today(&date, &c->key.created);
    st = c->spec.type == KP_KEY_RSA ? s_create_rsa(op, c, label, &date)
                                    : s_create_aes(op, c, label, &date);
    if (st != KP_OK)
        return st;
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
     * process must not both pick the same one. */
    pthread_mutex_lock(&pi->create_lock);
    st = kp_p11_run(pi, s_create_op, &c);
    pthread_mutex_unlock(&pi->create_lock);
    if (st == KP_OK) {
        kp_key_info full;
        kp_p11_key_info(pi, &c.key, &full);
        kp_key_info_put(info, &full);
    }
    return st;
}
