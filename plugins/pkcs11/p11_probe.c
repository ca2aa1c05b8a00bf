/*
 * What this instance's token can do, for KP_FN_INSTANCE_INFO: decided once per instance, from
 * the mechanism list and a trial on session objects, without logging in. The mechanism list
 * does not say which OAEP hashes a token takes (SoftHSM 2.6.1 lists CKM_RSA_PKCS_OAEP but
 * refuses SHA-256 with CKR_ARGUMENTS_BAD), so the trial encrypts and wraps once with each hash
 * under a public RSA key made as a session object, and only what worked is reported.
 *
 * Wrapped export (RSA-AES key wrap) is declared only when the token's AES key wrap with padding
 * was seen to hold a private key as RFC 5649 says (p11_kwp.c): SoftHSM 2.6.1's does not.
 *
 * A token that cannot be reached at open (module missing, token absent) gets the baseline that
 * `keyplane check` demands of every token: RSA-OAEP with SHA-1, AES-KW and AES-KWP, RSA
 * 2048-4096; never SHA-256 and no wrapped export untried. The core keeps the answer, so it is
 * not asked again when the token comes back.
 */
#include <stdio.h>
#include <string.h>

#include "p11_internal.h"

/* A 2048-bit RSA modulus (its private half was thrown away): the trial only needs a public key
 * the token accepts, and making a key pair in the token would cost far more. */
static const CK_BYTE s_modulus[] = {
    0x9f, 0x59, 0x97, 0x00, 0x11, 0xad, 0x07, 0xcc, 0xde, 0x95, 0x09, 0xf2, 0x97, 0x2d, 0x6e, 0xff,
    0x5a, 0x91, 0x68, 0x9b, 0xf2, 0xb7, 0x03, 0x2d, 0xda, 0x6e, 0xaa, 0x5b, 0xb3, 0xeb, 0x62, 0x77,
    0x26, 0x18, 0xf0, 0xde, 0x77, 0x37, 0xac, 0x7a, 0xd2, 0x05, 0xe5, 0x10, 0xd4, 0xb6, 0x13, 0x9f,
    0x99, 0x52, 0x50, 0x67, 0xac, 0xb7, 0x94, 0x46, 0xdc, 0x6d, 0xf9, 0x46, 0x70, 0xf9, 0x2d, 0x00,
    0xd0, 0x03, 0xaa, 0x65, 0x36, 0x9c, 0x80, 0xd3, 0xde, 0x06, 0x04, 0x3b, 0x63, 0xc9, 0x95, 0xa5,
    0xc5, 0x20, 0x25, 0x35, 0xec, 0x6a, 0x60, 0x7a, 0x49, 0xdd, 0xc0, 0x91, 0x17, 0x03, 0x9f, 0x80,
    0x69, 0x94, 0x2b, 0xa5, 0x6f, 0xc5, 0xc7, 0x4d, 0x18, 0x16, 0x9f, 0x31, 0x27, 0xce, 0x11, 0x9e,
    0xbf, 0x32, 0xa5, 0xb6, 0xec, 0xdd, 0x89, 0x5b, 0x87, 0xbb, 0x26, 0x97, 0x34, 0x38, 0xcb, 0xa2,
    0x56, 0x06, 0x47, 0xb5, 0xba, 0x28, 0xf3, 0xde, 0xd6, 0x27, 0xc3, 0x64, 0xc5, 0x20, 0xf5, 0x3f,
    0xb8, 0x8b, 0xc2, 0x06, 0xe5, 0xbd, 0xc9, 0xc2, 0xc7, 0xfe, 0x8a, 0xf8, 0x8c, 0xa9, 0x8b, 0x9a,
    0xee, 0x38, 0x50, 0x6c, 0x04, 0x56, 0x36, 0xd6, 0xee, 0xea, 0x94, 0xf7, 0xcb, 0x81, 0x5c, 0x8c,
    0x78, 0x3d, 0x8c, 0xc3, 0xe6, 0x28, 0x3c, 0x9e, 0x2d, 0x41, 0x43, 0x5d, 0x48, 0xee, 0x57, 0x2f,
    0xf7, 0x16, 0xcc, 0x87, 0x77, 0xad, 0xa6, 0x7c, 0x22, 0x3d, 0x25, 0x2b, 0x09, 0x4b, 0xca, 0xd5,
    0x3a, 0x8a, 0xf2, 0x94, 0x7e, 0x14, 0xf1, 0xc5, 0xcf, 0x91, 0xac, 0x37, 0xf7, 0x75, 0x81, 0x53,
    0x52, 0x3b, 0xac, 0x82, 0xee, 0xb9, 0xf2, 0x48, 0xd4, 0x80, 0xf3, 0x43, 0x4c, 0x20, 0xed, 0x0d,
    0x7b, 0x45, 0x0e, 0x2b, 0xab, 0x3a, 0x97, 0x5b, 0x86, 0xdb, 0x3d, 0x61, 0xb0, 0xfa, 0x09, 0x71,
};

/* Baseline answer (see above). */
static void s_baseline(kp_instance_info *c)
{
    memset(c, 0, sizeof(*c));
    c->struct_size = sizeof(*c);
    c->capabilities = KP_CAP_KEYSTORE;
    c->wrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_AES_KW) |
                   KP_ALG_BIT(KP_WRAP_AES_KWP);
    c->unwrap_algs = c->wrap_algs | KP_ALG_BIT(KP_WRAP_RSA_PKCS1);
    c->key_bits = KP_RSA_2048 | KP_RSA_3072 | KP_RSA_4096;
    c->export_keyx = 0;
}

/* Flags of a mechanism, 0 when the token lacks it. */
static CK_FLAGS s_mech(kp_p11_op *op, CK_MECHANISM_TYPE m, CK_MECHANISM_INFO *info)
{
    memset(info, 0, sizeof(*info));
    if (op->f->C_GetMechanismInfo(op->slot, m, info) != CKR_OK)
        return 0;
    return info->flags;
}

typedef struct s_trial {
    bool ran;        /* the session objects could be made */
    bool encrypt[2]; /* C_EncryptInit + C_Encrypt with RSA-OAEP SHA-1, SHA-256 */
    bool wrap[2];    /* C_WrapKey of an AES key with RSA-OAEP SHA-1, SHA-256 */
} s_trial;

static void s_oaep(int sha256, CK_RSA_PKCS_OAEP_PARAMS *p, CK_MECHANISM *m)
{
    p->hashAlg = sha256 ? CKM_SHA256 : CKM_SHA_1;
    p->mgf = sha256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1;
    p->source = CKZ_DATA_SPECIFIED;
    p->pSourceData = NULL;
    p->ulSourceDataLen = 0;
    m->mechanism = CKM_RSA_PKCS_OAEP;
    m->pParameter = p;
    m->ulParameterLen = sizeof(*p);
}

/* Public session objects only: no login is needed and nothing stays on the token (a session
 * object dies with its session at the latest). */
static void s_try(kp_p11_op *op, s_trial *t)
{
    CK_OBJECT_CLASS pcls = CKO_PUBLIC_KEY, scls = CKO_SECRET_KEY;
    CK_KEY_TYPE rsa = CKK_RSA, aes = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BYTE f4[] = {0x01, 0x00, 0x01}, in[32], out[512];
    CK_ULONG len = 32, n;
    CK_ATTRIBUTE pt[] = {
        {CKA_CLASS, &pcls, sizeof(pcls)},
        {CKA_KEY_TYPE, &rsa, sizeof(rsa)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_WRAP, &yes, sizeof(yes)},
        {CKA_MODULUS, (void *)s_modulus, sizeof(s_modulus)},
        {CKA_PUBLIC_EXPONENT, f4, sizeof(f4)},
    };
    CK_ATTRIBUTE st[] = {
        {CKA_CLASS, &scls, sizeof(scls)},   {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_TOKEN, &no, sizeof(no)},       {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_SENSITIVE, &no, sizeof(no)},   {CKA_EXTRACTABLE, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0}, mech;
    CK_RSA_PKCS_OAEP_PARAMS params;
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, key = CK_INVALID_HANDLE;

    memset(t, 0, sizeof(*t));
    memset(in, 0x5a, sizeof(in));
    if (op->f->C_CreateObject(op->s, pt, sizeof(pt) / sizeof(pt[0]), &pub) != CKR_OK)
        return;
    t->ran = true;
    for (int h = 0; h < 2; h++) {
        s_oaep(h, &params, &mech);
        n = sizeof(out);
        /* C_Encrypt ends the operation whatever it answers, given room for the result. */
        t->encrypt[h] = op->f->C_EncryptInit(op->s, &mech, pub) == CKR_OK &&
                        op->f->C_Encrypt(op->s, in, sizeof(in), out, &n) == CKR_OK;
    }
    if (op->f->C_GenerateKey(op->s, &gen, st, sizeof(st) / sizeof(st[0]), &key) == CKR_OK) {
        for (int h = 0; h < 2; h++) {
            s_oaep(h, &params, &mech);
            n = sizeof(out);
            t->wrap[h] = op->f->C_WrapKey(op->s, &mech, pub, key, out, &n) == CKR_OK;
        }
    }
    kp_p11_destroy(op, key);
    kp_p11_destroy(op, pub);
}

/* The answer for a token that answers; why receives the reason when the token has what wrapped
 * export takes but its RFC 5649 failed the probe. */
static void s_decide(kp_p11_op *op, kp_instance_info *c, char *why, size_t size)
{
    kp_p11_inst *pi = op->pi;
    CK_MECHANISM_INFO oaep, pkcs1, gen;
    CK_FLAGS fo = s_mech(op, CKM_RSA_PKCS_OAEP, &oaep), fp = s_mech(op, CKM_RSA_PKCS, &pkcs1);
    CK_FLAGS fg = s_mech(op, CKM_RSA_PKCS_KEY_PAIR_GEN, &gen);
    CK_FLAGS both = CKF_ENCRYPT | CKF_DECRYPT;
    CK_MECHANISM_TYPE kwp;
    bool sha1, kw, have_kwp;
    s_trial t;

    s_baseline(c);
    c->wrap_algs = c->unwrap_algs = c->export_keyx = 0;
    s_try(op, &t);
    /* Without the trial (the token refused the session key), the mechanism flags decide SHA-1;
     * SHA-256 is reported only when it was seen working. */
    sha1 = (fo & both) == both && (!t.ran || t.encrypt[0]);
    if (sha1)
        c->wrap_algs |= KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1);
    if ((fo & both) == both && t.encrypt[1])
        c->wrap_algs |= KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256);
    pthread_mutex_lock(&pi->lock);
    kw = pi->have_kw;
    kwp = pi->kwp_mech;
    have_kwp = kwp != 0;
    if (t.ran)
        pi->oaep_sha256 = (c->wrap_algs & KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256)) != 0 ? 1 : 0;
    pthread_mutex_unlock(&pi->lock);
    if (kw)
        c->wrap_algs |= KP_ALG_BIT(KP_WRAP_AES_KW);
    if (have_kwp)
        c->wrap_algs |= KP_ALG_BIT(KP_WRAP_AES_KWP);
    c->unwrap_algs = c->wrap_algs;
    if ((fp & CKF_DECRYPT) != 0)
        c->unwrap_algs |= KP_ALG_BIT(KP_WRAP_RSA_PKCS1);
    if (have_kwp && (fo & CKF_WRAP) != 0 && (t.ran ? t.wrap[0] : sha1))
        c->export_keyx |= KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1);
    if (have_kwp && (fo & CKF_WRAP) != 0 && t.wrap[1])
        c->export_keyx |= KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256);
    why[0] = '\0';
    if (c->export_keyx != 0 &&
        !kp_p11_kwp_probe(op, kwp, (fg & CKF_GENERATE_KEY_PAIR) != 0 ? gen.ulMinKeySize : 0, why,
                          size))
        c->export_keyx = 0;
    /* Sizes in bits, as PKCS#11 v2.40 defines them for RSA. */
    if ((fg & CKF_GENERATE_KEY_PAIR) != 0) {
        c->key_bits = 0;
        if (gen.ulMinKeySize <= 2048 && gen.ulMaxKeySize >= 2048)
            c->key_bits |= KP_RSA_2048;
        if (gen.ulMinKeySize <= 3072 && gen.ulMaxKeySize >= 3072)
            c->key_bits |= KP_RSA_3072;
        if (gen.ulMinKeySize <= 4096 && gen.ulMaxKeySize >= 4096)
            c->key_bits |= KP_RSA_4096;
    }
    kp_logf(pi->up, pi->h, KP_LOG_DEBUG,
            "token '%s' can: wrap 0x%x, unwrap 0x%x, RSA sizes 0x%x, export 0x%x%s", pi->token,
            c->wrap_algs, c->unwrap_algs, c->key_bits, c->export_keyx,
            t.ran ? "" : " (no trial: the token refused a session public key)");
}

/* Asks the token; false (error text set) when it cannot be reached. It makes session objects
 * only, so it runs beside other reads, never beside a write (kp_p11_write_run); never called
 * from inside an op. */
static bool s_probe(kp_p11_inst *pi, kp_instance_info *c, char *why, size_t size)
{
    kp_p11_op op;
    bool ok = false;

    memset(&op, 0, sizeof(op));
    op.pi = pi;
    pthread_rwlock_rdlock(&pi->pl->io);
    if (kp_p11_token(pi, &op.f, &op.slot) == KP_OK) {
        CK_RV rv = op.f->C_OpenSession(op.slot, CKF_SERIAL_SESSION, NULL, NULL, &op.s);
        if (rv != CKR_OK) {
            kp_p11_ck(pi, NULL, rv, false, "C_OpenSession", "token '%s'", pi->token);
        } else {
            ok = kp_p11_probe_mechs(&op) == KP_OK;
            if (ok)
                s_decide(&op, c, why, size);
            op.f->C_CloseSession(op.s);
        }
    }
    pthread_rwlock_unlock(&pi->pl->io);
    return ok;
}

void kp_p11_caps(kp_p11_inst *pi, kp_instance_info *out)
{
    char why[KP_P11_WHY_MAX];
    kp_instance_info c;

    pthread_mutex_lock(&pi->lock);
    bool done = pi->caps_done;
    if (done)
        *out = pi->caps;
    pthread_mutex_unlock(&pi->lock);
    if (done)
        return;
    if (!s_probe(pi, &c, why, sizeof(why))) {
        s_baseline(&c);
        kp_logf(pi->up, pi->h, KP_LOG_WARN,
                "token '%s' could not be asked what it can do (%s); assuming the baseline: "
                "RSA-OAEP with SHA-1, AES-KW, AES-KWP",
                pi->token, pi->up->get_error(pi->h));
        snprintf(why, sizeof(why),
                 "token '%s' could not be reached when the instance opened, so its RFC 5649 key "
                 "wrap was not checked: keys leave it only as PKCS#8",
                 pi->token);
    }
    /* Certificates are token objects beside their key (p11_cert.c): every token keeps them. */
    c.flags |= KP_INST_CERTS;
    pthread_mutex_lock(&pi->lock);
    if (!pi->caps_done) { /* another thread may have been first: keep one answer */
        pi->caps = c;
        snprintf(pi->no_keyx, sizeof(pi->no_keyx), "%s", why);
        pi->caps_done = true;
    }
    *out = pi->caps;
    pthread_mutex_unlock(&pi->lock);
}

kp_status kp_p11_instance_info(void *inst, kp_instance_info *info)
{
    kp_p11_inst *pi = inst;
    kp_instance_info c;
    uint32_t keep;

    if (pi == NULL || info == NULL || info->struct_size < sizeof(uint32_t))
        return KP_ERR_INVALID_ARG;
    kp_p11_caps(pi, &c);
    /* The core owns info and says how much of it there is. */
    keep = info->struct_size;
    memcpy(info, &c, keep < sizeof(c) ? keep : sizeof(c));
    info->struct_size = keep;
    return KP_OK;
}

void kp_p11_no_keyx(kp_p11_inst *pi, char *buf, size_t size)
{
    pthread_mutex_lock(&pi->lock);
    snprintf(buf, size, "%s", pi->no_keyx);
    pthread_mutex_unlock(&pi->lock);
}
