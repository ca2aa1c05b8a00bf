/*
 * Secret replicas: secret stores (S3 objects, Secrets Manager, a file store) that receive each
 * protector version as password-protected PKCS#8, the SQL Server way of keeping a certificate's
 * key in a bucket, with the password in the chain's secret store. Secret names:
 *   <chain>.key       in the replica, one secret version per protector version copied
 *   <chain>.password  in the chain's `secrets` store, one version per copy
 * Metadata ties them: kp-version, fingerprint, and the password's secret version.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>

#include "chain/proof.h"
#include "chain/secret_replica.h"
#include "format/pkcs8.h"

typedef struct s_found {
    uint32_t want; /* 0: collect every protector version into the target */
    kp__target *t;
    uint32_t secret_version; /* highest secret version holding want */
    uint32_t password_version;
    char fpr[KPK_FPR_HEX];
    char gap[KP_GAP_MAX]; /* that secret version's store.gap ("" none) */
} s_found;

static const char *s_meta(const kp_meta *meta, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(meta[i].key, key) == 0)
            return meta[i].value;
    return NULL;
}

/* The store's word that a version would fail in a disaster (KP_META_GAP, ABI 1.4) into gap,
 * after what, unless gap holds one already; control characters shown as spaces. */
static void s_gap_take(char gap[KP_GAP_MAX], const kp_meta *meta, size_t n, const char *what)
{
    const char *g = s_meta(meta, n, KP_META_GAP);
    if (g == NULL || g[0] == '\0' || gap[0] != '\0')
        return;
    snprintf(gap, KP_GAP_MAX, "%s%s", what, g);
    for (char *c = gap; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
}

static kp_status s_visit(void *arg, const kp_secret_info *info, const kp_meta *meta, size_t n)
{
    s_found *f = arg;
    const char *v = s_meta(meta, n, "kp-version"), *fpr = s_meta(meta, n, "fingerprint");
    const char *pw = s_meta(meta, n, "password-version");
    if (v == NULL || fpr == NULL || strlen(fpr) != KPK_FPR_HEX - 1)
        return KP_OK;
    uint32_t version = (uint32_t)strtoul(v, NULL, 10);
    if (f->want != 0 && version == f->want && info->version >= f->secret_version) {
        f->secret_version = info->version;
        f->password_version = pw != NULL ? (uint32_t)strtoul(pw, NULL, 10) : 0;
        memcpy(f->fpr, fpr, KPK_FPR_HEX);
        f->gap[0] = '\0';
        s_gap_take(f->gap, meta, n, "");
    }
    if (f->t != NULL && version > 0 && kp__held_find(f->t, version) == NULL) {
        kp__held *h = kp__held_add(f->t, version);
        if (h == NULL)
            return KP_ERR_NOMEM;
        memcpy(h->fpr, fpr, KPK_FPR_HEX);
        h->created = info->created;
        s_gap_take(h->gap, meta, n, "");
    }
    return KP_OK;
}

static void s_name(char *buf, size_t size, const char *chain, const char *what)
{
    snprintf(buf, size, "%s.%s", chain, what);
}

bool kp__secret_holds(kp_instance *inst, const char *chain, uint32_t version, const char *fpr)
{
    char key[KP_NAME_MAX + 16];
    s_name(key, sizeof(key), chain, "key");
    s_found f = {version, NULL, 0, 0, "", ""};
    return kp_store_list(inst, key, s_visit, &f) == KP_OK && f.secret_version > 0 &&
           (fpr == NULL || fpr[0] == '\0' || strcmp(f.fpr, fpr) == 0);
}

bool kp__secret_replica_of(const kp_policy *policy, const kp_chain_policy *c, const char *name)
{
    for (size_t i = 0; i < c->nsecret_replicas; i++)
        if (strcmp(c->secret_replicas[i], name) == 0)
            return true;
    uint32_t caps = kp_policy_instance_capabilities(policy, name);
    for (size_t i = 0; i < c->nreplicas; i++)
        if (strcmp(c->replicas[i], name) == 0)
            return caps != 0 && !(caps & KP_CAP_KEYSTORE);
    return false;
}

/* Versions a listing of CHAIN.pvk shows (fingerprint and version, as s_visit reads them). */
typedef struct s_pvks {
    uint32_t v[512];
    char fpr[512][KPK_FPR_HEX];
    char gap[512][KP_GAP_MAX];
    size_t n;
} s_pvks;

static kp_status s_pvk_visit(void *arg, const kp_secret_info *info, const kp_meta *meta, size_t n)
{
    (void)info;
    s_pvks *p = arg;
    const char *v = s_meta(meta, n, "kp-version"), *fpr = s_meta(meta, n, "fingerprint");
    if (v != NULL && fpr != NULL && strlen(fpr) == KPK_FPR_HEX - 1 &&
        p->n < sizeof(p->v) / sizeof(p->v[0])) {
        p->v[p->n] = (uint32_t)strtoul(v, NULL, 10);
        s_gap_take(p->gap[p->n], meta, n, ".pvk: ");
        memcpy(p->fpr[p->n++], fpr, KPK_FPR_HEX);
    }
    return KP_OK;
}

/* A certificate chain's copy counts once its .pvk is there too (a copy interrupted between the
 * two is made again): t keeps only the versions CHAIN.pvk has with the same key. */
static kp_status s_keep_with_pvk(kp__target *t, const char *chain)
{
    char name[KP_NAME_MAX + 16];
    s_name(name, sizeof(name), chain, "pvk");
    s_pvks *p = calloc(1, sizeof(*p));
    KP_ENSURE(p != NULL, KP_ERR_NOMEM);
    kp_status st = kp_store_list(t->inst, name, s_pvk_visit, p);
    if (st == KP_ERR_NOT_FOUND)
        st = KP_OK;
    size_t kept = 0;
    for (size_t k = 0; st == KP_OK && k < t->nheld; k++) {
        bool with = false;
        for (size_t i = 0; i < p->n && !with; i++) {
            with = p->v[i] == t->held[k].version && strcmp(p->fpr[i], t->held[k].fpr) == 0;
            if (with && t->held[k].gap[0] == '\0')
                memcpy(t->held[k].gap, p->gap[i], KP_GAP_MAX);
        }
        if (with)
            t->held[kept++] = t->held[k];
    }
    if (st == KP_OK)
        t->nheld = kept;
    free(p);
    return st;
}

kp_status kp__secret_discover(kp_ctx *ctx, const kp_policy *policy, kp__discovery *d)
{
    const kp_chain_policy *c = d->chain;
    const char *names[KP_MAX_TARGETS] = {0};
    size_t n = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        const char *const *list = pass == 0 ? c->replicas : c->secret_replicas;
        size_t count = pass == 0 ? c->nreplicas : c->nsecret_replicas;
        for (size_t i = 0; i < count && n < KP_MAX_TARGETS; i++) {
            if (!kp__secret_replica_of(policy, c, list[i]))
                continue; /* a keystore replica gets the key itself */
            bool dup = false;
            for (size_t j = 0; j < n; j++)
                dup = dup || strcmp(names[j], list[i]) == 0;
            if (!dup)
                names[n++] = list[i];
        }
    }
    char key[KP_NAME_MAX + 16];
    s_name(key, sizeof(key), c->name, "key");
    for (size_t i = 0; i < n && d->n < KP_MAX_TARGETS; i++) {
        kp__target *t = &d->t[d->n++];
        memset(t, 0, sizeof(*t));
        t->name = names[i];
        t->secret = true;
        kp_status st = kp__instance_borrow(ctx, policy, t->name, &t->inst);
        if (st == KP_OK) {
            s_found f = {0, t, 0, 0, "", ""};
            st = kp_store_list(t->inst, key, s_visit, &f);
            if (st == KP_ERR_NOT_FOUND)
                st = KP_OK; /* holds no copy yet */
        }
        if (st == KP_OK && c->certificate != NULL)
            st = s_keep_with_pvk(t, c->name);
        KP_GUARD(kp__target_answered(ctx, t, st));
    }
    kp__clear_error(ctx);
    return KP_OK;
}

/* CHAIN.pvk: pkcs8 as a PVK file (RC4-128) under password, with kmeta's metadata but its own
 * format. */
static kp_status s_put_pvk(kp_ctx *ctx, const kp_chain_policy *c, const kp_secret *pkcs8,
                           kp_instance *dst, const kp_secret *password, const kp_meta *kmeta)
{
    char name[KP_NAME_MAX + 16], why[256];
    kp_secret *pvk = NULL;
    kp_status st = kp_pvk_write(pkcs8, password, &pvk, why, sizeof(why));
    if (st != KP_OK)
        return kp__set_error(ctx, st, "cannot write the .pvk copy of %s: %s", c->name, why);
    kp_meta meta[6];
    memcpy(meta, kmeta, sizeof(meta));
    meta[3].value = "pvk-rc4-128";
    s_name(name, sizeof(name), c->name, "pvk");
    uint32_t ver = 0;
    st = kp_store_put(dst, name, pvk, meta, 6, &ver);
    kp_secret_free(pvk);
    return st;
}

static int s_pass_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const kp_secret *pw = u;
    int n = (int)kp_secret_len(pw);
    if (n > size)
        return -1;
    memcpy(buf, kp_secret_cdata(pw), (size_t)n);
    return n;
}

/* The private key in a copy (PEM) opened with its password, or NULL. */
static EVP_PKEY *s_open_copy(const kp_secret *pem, kp_secret *password)
{
    BIO *bio = BIO_new_mem_buf(kp_secret_cdata(pem), (int)kp_secret_len(pem));
    EVP_PKEY *pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, s_pass_cb, password) : NULL;
    BIO_free(bio);
    return pkey;
}

/* Finds what an earlier copy of the same version left (a run killed half-way, a failed copy
 * retried): the highest secret version of a name whose metadata hold kp-version and fingerprint
 * and, when key is set, key = value. */
typedef struct s_earlier {
    const char *version, *fpr, *key, *value;
    uint32_t found;   /* the highest match */
    uint32_t all[16]; /* the 16 highest matches, any order */
    size_t nall;
} s_earlier;

static kp_status s_earlier_visit(void *arg, const kp_secret_info *info, const kp_meta *meta,
                                 size_t n)
{
    s_earlier *e = arg;
    const char *v = s_meta(meta, n, "kp-version"), *fpr = s_meta(meta, n, "fingerprint");
    const char *x = e->key != NULL ? s_meta(meta, n, e->key) : NULL;
    if (v == NULL || fpr == NULL || strcmp(v, e->version) != 0 || strcmp(fpr, e->fpr) != 0 ||
        (e->key != NULL && (x == NULL || strcmp(x, e->value) != 0)))
        return KP_OK;
    if (info->version > e->found)
        e->found = info->version;
    size_t low = 0;
    for (size_t i = 1; i < e->nall; i++)
        if (e->all[i] < e->all[low])
            low = i;
    if (e->nall < sizeof(e->all) / sizeof(e->all[0]))
        e->all[e->nall++] = info->version;
    else if (info->version > e->all[low])
        e->all[low] = info->version;
    return KP_OK;
}

/* The highest such version into *found (0: none). A store that cannot be listed fails the copy:
 * writing without knowing what is there would add a version. */
static kp_status s_earlier_find(kp_instance *inst, const char *name, const char *version,
                                const char *fpr, const char *key, const char *value,
                                uint32_t *found)
{
    s_earlier e = {version, fpr, key, value, 0, {0}, 0};
    kp_status st = kp_store_list(inst, name, s_earlier_visit, &e);
    *found = e.found;
    return st == KP_ERR_NOT_FOUND ? KP_OK : st;
}

/* Whether version ver of name in dst opens with password to the key of fpr: a .pvk when pvk,
 * else the PEM copy. KP_OK: it does, and is kept rather than written again; KP_ERR_NOT_FOUND:
 * there is none, or it does not open (a copy is written); any other status: it could not be
 * read (the copy fails rather than adding a version next to one that may be fine). */
static kp_status s_copy_opens(kp_instance *dst, const char *name, uint32_t ver, bool pvk,
                              kp_secret *password, const char *fpr)
{
    kp_secret *value = NULL, *pkcs8 = NULL;
    char got[KPK_FPR_HEX] = "", why[256];
    EVP_PKEY *pk = NULL;
    if (ver == 0)
        return KP_ERR_NOT_FOUND;
    kp_status st = kp_store_get(dst, name, ver, &value, NULL, NULL);
    if (st != KP_OK)
        return st;
    if (!pvk)
        pk = s_open_copy(value, password);
    else if (kp_pvk_read(kp_secret_cdata(value), kp_secret_len(value), password, &pkcs8, NULL, why,
                         sizeof(why)) == KP_OK)
        pk = kp__pkcs8_pkey(pkcs8);
    bool ok = pk != NULL && kpk_fpr_pkey(pk, got) == KP_OK && strcmp(got, fpr) == 0;
    EVP_PKEY_free(pk);
    kp_secret_free(pkcs8);
    kp_secret_free(value);
    return ok ? KP_OK : KP_ERR_NOT_FOUND;
}

/* Keeps an earlier copy of name that opens with the password (*kept), or says none is there:
 * lists, then reads the newest match. */
static kp_status s_keep_earlier(kp_instance *dst, const char *name, const char *vbuf,
                                const char *fpr, const char *pvbuf, bool pvk, kp_secret *password,
                                bool *kept)
{
    uint32_t ver = 0;
    *kept = false;
    KP_GUARD(s_earlier_find(dst, name, vbuf, fpr, "password-version", pvbuf, &ver));
    kp_status st = s_copy_opens(dst, name, ver, pvk, password, fpr);
    *kept = st == KP_OK;
    return st == KP_ERR_NOT_FOUND ? KP_OK : st;
}

/* The password of the copy of version to replica dst: 32 bytes as base64 (a password any tool,
 * openssl or SQL Server, can type), HMAC-SHA256 keyed with the private key's exponent d over the
 * chain, version and replica. Only a holder of the private key can compute it, so a rerun after
 * an interrupted copy recognises the password that copy left, and a password planted in the
 * secrets store (whose writers need not hold the key) is never taken for it. */
static kp_status s_copy_password(kp_ctx *ctx, const kp_chain_policy *c, const kp_secret *pkcs8,
                                 uint32_t version, kp_instance *dst, kp_secret **out)
{
    EVP_PKEY *pk = kp__pkcs8_pkey(pkcs8);
    BIGNUM *d = NULL;
    unsigned char dbytes[1024], mac[32];
    char msg[KP_NAME_MAX * 2 + 64], text[48];
    int dlen = 0;
    unsigned int maclen = 0;
    if (pk != NULL && EVP_PKEY_get_bn_param(pk, "d", &d) == 1)
        dlen =
            BN_bn2binpad(d, dbytes, BN_num_bytes(d) <= (int)sizeof(dbytes) ? BN_num_bytes(d) : -1);
    int n = snprintf(msg, sizeof(msg), "keyplane secret-replica password 1\n%s\n%u\n%s", c->name,
                     version, kp_instance_name(dst));
    bool ok = dlen > 0 && n > 0 && (size_t)n < sizeof(msg) &&
              HMAC(EVP_sha256(), dbytes, dlen, (const unsigned char *)msg, (size_t)n, mac,
                   &maclen) != NULL &&
              maclen == sizeof(mac);
    BN_clear_free(d);
    EVP_PKEY_free(pk);
    kp_memwipe(dbytes, sizeof(dbytes));
    if (!ok) {
        kp_memwipe(mac, sizeof(mac));
        return kp__set_error(ctx, KP_ERR_CRYPTO, "cannot derive the password of %s v%u's copy",
                             c->name, version);
    }
    kpk_b64_encode(mac, sizeof(mac), text);
    kp_memwipe(mac, sizeof(mac));
    *out = kp_secret_new_copy(text, strlen(text));
    kp_memwipe(text, sizeof(text));
    return *out != NULL ? KP_OK : KP_ERR_NOMEM;
}

/* The version of the secrets store's CHAIN.password that an earlier copy of version to dst left
 * holding exactly password (0: none): the versions whose metadata say so, checked by value, the
 * newest first (others with that metadata, planted or left by an older keyplane, are passed
 * over). */
static kp_status s_earlier_password(kp_instance *secrets, const char *pwname, const char *vbuf,
                                    const char *fpr, kp_instance *dst, const kp_secret *password,
                                    uint32_t *pwver)
{
    s_earlier e = {vbuf, fpr, "replica", kp_instance_name(dst), 0, {0}, 0};
    *pwver = 0;
    kp_status st = kp_store_list(secrets, pwname, s_earlier_visit, &e);
    if (st == KP_ERR_NOT_FOUND)
        return KP_OK;
    KP_GUARD(st);
    for (size_t k = 0; k < e.nall && *pwver == 0; k++) {
        size_t best = k; /* the newest of what is left */
        for (size_t i = k + 1; i < e.nall; i++)
            if (e.all[i] > e.all[best])
                best = i;
        uint32_t v = e.all[best];
        e.all[best] = e.all[k];
        e.all[k] = v;
        kp_secret *have = NULL;
        st = kp_store_get(secrets, pwname, v, &have, NULL, NULL);
        if (st == KP_OK && kp_secret_len(have) == kp_secret_len(password) &&
            CRYPTO_memcmp(kp_secret_cdata(have), kp_secret_cdata(password),
                          kp_secret_len(password)) == 0)
            *pwver = v;
        kp_secret_free(have);
        if (st != KP_OK && st != KP_ERR_NOT_FOUND)
            return st;
    }
    return KP_OK;
}

kp_status kp__secret_copy(kp_ctx *ctx, const kp_chain_policy *c, const kp_secret *pkcs8,
                          kp_instance *dst, kp_instance *secrets, uint32_t version, const char *fpr)
{
    char key[KP_NAME_MAX + 16], pwname[KP_NAME_MAX + 16], pvkname[KP_NAME_MAX + 16];
    char vbuf[16], pvbuf[16], why[KP_ERROR_MAX];
    s_name(key, sizeof(key), c->name, "key");
    s_name(pwname, sizeof(pwname), c->name, "password");
    s_name(pvkname, sizeof(pvkname), c->name, "pvk");
    snprintf(vbuf, sizeof(vbuf), "%u", version);
    /* An earlier copy of this version to dst that did not finish (killed, failed) left its
     * password, and perhaps the PEM copy: they are used again, so a rerun adds no version to
     * either store. The password is the key's own derivation (s_copy_password): one found in
     * the store counts only when it is that one. */
    kp_secret *password = NULL, *pem = NULL;
    uint32_t pwver = 0;
    KP_GUARD(s_copy_password(ctx, c, pkcs8, version, dst, &password));
    kp_status st = s_earlier_password(secrets, pwname, vbuf, fpr, dst, password, &pwver);
    char *pemtext = NULL;
    size_t pemlen = 0;
    uint32_t kver = 0;
    if (st == KP_OK) {
        st = kp__pkcs8_encrypt_pem(pkcs8, password, &pemtext, &pemlen, why, sizeof(why));
        if (st != KP_OK)
            kp__set_error(ctx, st, "cannot encrypt the copy of %s v%u: %s", c->name, version, why);
    }
    if (st == KP_OK)
        pem = kp_secret_new_copy(pemtext, pemlen);
    if (st == KP_OK && pem == NULL)
        st = KP_ERR_NOMEM;
    /* The password first: a key copy never exists without the password that opens it. */
    kp_meta pmeta[] = {{"chain", c->name},
                       {"kp-version", vbuf},
                       {"fingerprint", fpr},
                       {"replica", kp_instance_name(dst)}};
    if (st == KP_OK && pwver == 0)
        st = kp_store_put(secrets, pwname, password, pmeta, 4, &pwver);
    snprintf(pvbuf, sizeof(pvbuf), "%u", pwver);
    kp_meta kmeta[] = {{"chain", c->name},
                       {"kp-version", vbuf},
                       {"fingerprint", fpr},
                       {"format", "pkcs8-pbes2-pem"},
                       {"password-store", kp_instance_name(secrets)},
                       {"password-version", pvbuf}};
    bool kept = false;
    if (st == KP_OK)
        st = s_keep_earlier(dst, key, vbuf, fpr, pvbuf, false, password, &kept);
    if (st == KP_OK && !kept)
        st = kp_store_put(dst, key, pem, kmeta, 6, &kver);
    /* A certificate chain's copy also as the .pvk SQL Server reads, under the same password:
     * with CHAIN.cer beside it, a DR instance is restored from the bucket and the password
     * store alone. */
    if (st == KP_OK && c->certificate != NULL)
        st = s_keep_earlier(dst, pvkname, vbuf, fpr, pvbuf, true, password, &kept);
    if (st == KP_OK && c->certificate != NULL && !kept)
        st = s_put_pvk(ctx, c, pkcs8, dst, password, kmeta);
    free(pemtext);
    kp_secret_free(pem);
    kp_secret_free(password);
    return st;
}

/* Whether pkey is the version's key: its public half hashes to the fingerprint of spki. */
static bool s_same_key(EVP_PKEY *pkey, const uint8_t *spki, size_t spkilen, char fpr[KPK_FPR_HEX])
{
    char want[KPK_FPR_HEX] = "";
    kp_status st = kpk_fpr_pkey(pkey, fpr);
    if (st == KP_OK)
        st = kpk_fpr_spki(spki, spkilen, want);
    return st == KP_OK && strcmp(fpr, want) == 0;
}

/* Whether pkey decrypts what the version's public key (spki) encrypts: KP_ERR_CRYPTO with ctx's
 * text saying why when it does not. */
static kp_status s_decrypts(kp_ctx *ctx, EVP_PKEY *pkey, const uint8_t *spki, size_t spkilen)
{
    kp__challenge c;
    unsigned char back[1024];
    size_t backlen = sizeof(back);
    bool ok = false;
    EVP_PKEY_CTX *dctx = NULL;
    KP_GUARD(kp__challenge_make(ctx, &c, spki, spkilen, KP_WRAP_RSA_OAEP_SHA1));
    dctx = EVP_PKEY_CTX_new(pkey, NULL);
    if (dctx == NULL)
        goto out;
    if (EVP_PKEY_decrypt_init(dctx) != 1)
        goto out;
    if (EVP_PKEY_CTX_set_rsa_padding(dctx, RSA_PKCS1_OAEP_PADDING) != 1)
        goto out;
    if (EVP_PKEY_decrypt(dctx, back, &backlen, c.ct, c.ctlen) == 1)
        ok = kp__challenge_met(&c, back, backlen);
out:
    kp_memwipe(back, sizeof(back));
    EVP_PKEY_CTX_free(dctx);
    if (ok)
        return KP_OK;
    char why[KPK_OSSL_REASON_MAX];
    kpk_ossl_reason(why, sizeof(why));
    return kp__set_error(ctx, KP_ERR_CRYPTO, "the copy did not decrypt a challenge%s%s",
                         why[0] != '\0' ? ": " : "", why);
}

/* The private key of dst's newest copy of version, opened with the password the chain's secret
 * store keeps for it; KP_ERR_NOT_FOUND when dst has no copy of version. */
/* A get's visitor that keeps the version's gap (arg: char[KP_GAP_MAX]). */
static kp_status s_gap_visit(void *arg, const kp_secret_info *info, const kp_meta *meta, size_t n)
{
    (void)info;
    s_gap_take(arg, meta, n, "");
    return KP_OK;
}

static kp_status s_open_version(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *dst,
                                kp_instance *secrets, uint32_t version, EVP_PKEY **pkey,
                                char pwgap[KP_GAP_MAX])
{
    char key[KP_NAME_MAX + 16], pwname[KP_NAME_MAX + 16];
    s_name(key, sizeof(key), c->name, "key");
    s_name(pwname, sizeof(pwname), c->name, "password");
    s_found f = {version, NULL, 0, 0, "", ""};
    kp_secret *pem = NULL, *password = NULL;
    *pkey = NULL;
    kp_status st = kp_store_list(dst, key, s_visit, &f);
    if (st == KP_OK && f.secret_version == 0)
        st = KP_ERR_NOT_FOUND;
    if (st == KP_OK && secrets == NULL)
        st = kp__set_error(ctx, KP_ERR_UNAVAILABLE, "the chain's secret store is unreachable");
    if (st == KP_OK)
        st = kp_store_get(dst, key, f.secret_version, &pem, NULL, NULL);
    if (st == KP_OK) {
        st = kp_store_get(secrets, pwname, f.password_version, &password,
                          pwgap != NULL ? s_gap_visit : NULL, pwgap);
        /* the copy is there, its password is not: a gap of its own, not a missing version */
        if (st == KP_ERR_NOT_FOUND)
            st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                               "the copy's password (%s v%u in %s) is missing: restore it, or "
                               "copy the version again (keyplane restore %s --to %s)",
                               pwname, f.password_version, kp_instance_name(secrets), c->name,
                               kp_instance_name(dst));
    }
    if (st == KP_OK)
        *pkey = s_open_copy(pem, password);
    if (st == KP_OK && *pkey == NULL) {
        char why[KPK_OSSL_REASON_MAX];
        kpk_ossl_reason(why, sizeof(why));
        st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                           "the copy does not open with its password (version %u)%s%s",
                           f.password_version, why[0] != '\0' ? ": " : "", why);
    }
    kp_secret_free(pem);
    kp_secret_free(password);
    return st;
}

/* A certificate chain's CHAIN.pvk of version in dst opens with its password to the key of
 * fingerprint want (what SQL Server would read in a disaster). keep (may be NULL) receives the
 * .pvk, and pwver (may be NULL) its password's version. */
static kp_status s_pvk_opens(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *dst,
                             kp_instance *secrets, uint32_t version, const char *want,
                             kp_secret **keep, uint32_t *pwver)
{
    char name[KP_NAME_MAX + 16], pwname[KP_NAME_MAX + 16], why[256], fpr[KPK_FPR_HEX] = "";
    s_name(name, sizeof(name), c->name, "pvk");
    s_name(pwname, sizeof(pwname), c->name, "password");
    s_found f = {version, NULL, 0, 0, "", ""};
    kp_secret *pvk = NULL, *password = NULL, *pkcs8 = NULL;
    kp_status st = kp_store_list(dst, name, s_visit, &f);
    if (st == KP_OK && f.secret_version == 0)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND, "no %s of version %u", name, version);
    if (st == KP_OK)
        st = kp_store_get(dst, name, f.secret_version, &pvk, NULL, NULL);
    if (st == KP_OK)
        st = kp_store_get(secrets, pwname, f.password_version, &password, NULL, NULL);
    if (st == KP_OK)
        st = kp_pvk_read(kp_secret_cdata(pvk), kp_secret_len(pvk), password, &pkcs8, NULL, why,
                         sizeof(why));
    if (st != KP_OK && pvk != NULL && password != NULL)
        st = kp__set_error(ctx, KP_ERR_INTEGRITY, "%s does not open with its password: %s", name,
                           why);
    EVP_PKEY *pk = st == KP_OK ? kp__pkcs8_pkey(pkcs8) : NULL;
    if (st == KP_OK && (pk == NULL || kpk_fpr_pkey(pk, fpr) != KP_OK || strcmp(fpr, want) != 0))
        st = kp__set_error(ctx, KP_ERR_INTEGRITY, "%s is another key (%.16s...)", name, fpr);
    EVP_PKEY_free(pk);
    kp_secret_free(pkcs8);
    if (st == KP_OK && keep != NULL) {
        *keep = pvk;
        pvk = NULL;
    }
    if (st == KP_OK && pwver != NULL)
        *pwver = f.password_version;
    kp_secret_free(pvk);
    kp_secret_free(password);
    return st;
}

kp_status kp__secret_pvk(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *src,
                         kp_instance *secrets, uint32_t version, const char *want, kp_secret **pvk,
                         uint32_t *pwver)
{
    *pvk = NULL;
    *pwver = 0;
    return s_pvk_opens(ctx, c, src, secrets, version, want, pvk, pwver);
}

kp_status kp__secret_prove(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *dst,
                           kp_instance *secrets, uint32_t version, const uint8_t *spki,
                           size_t spkilen, char *detail, size_t detlen)
{
    EVP_PKEY *pkey = NULL;
    char fpr[KPK_FPR_HEX] = "", pwgap[KP_GAP_MAX] = "";
    kp_status st = s_open_version(ctx, c, dst, secrets, version, &pkey, pwgap);
    /* Same key: its public half hashes to the version's fingerprint, and it decrypts what the
     * version's public key encrypts. */
    if (st == KP_OK && !s_same_key(pkey, spki, spkilen, fpr))
        st = kp__set_error(ctx, KP_ERR_INTEGRITY, "the copy is another key (%.16s...)", fpr);
    if (st == KP_OK)
        st = s_decrypts(ctx, pkey, spki, spkilen);
    bool pvk = st == KP_OK && c->certificate != NULL;
    if (pvk)
        st = s_pvk_opens(ctx, c, dst, secrets, version, fpr, NULL, NULL);
    EVP_PKEY_free(pkey);
    /* the copy opens, but its password would not be there in a disaster (the secrets store
     * says why: a replica region out of sync, another region's key) */
    if (st == KP_OK && pwgap[0] != '\0')
        st = kp__set_error(ctx, KP_ERR_UNSUPPORTED, "its password in %s: %s",
                           kp_instance_name(secrets), pwgap);
    snprintf(detail, detlen, "%s",
             st == KP_OK && pvk ? "opened with its password, decrypted a challenge; the .pvk opens"
             : st == KP_OK      ? "opened with its password, decrypted a challenge"
             : st == KP_ERR_NOT_FOUND && !pvk ? "version missing"
                                              : kp_ctx_last_error(ctx));
    return st;
}

kp_status kp__secret_export(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *src,
                            kp_instance *secrets, uint32_t version, const char *want,
                            kp_secret **pkcs8, kp_key_info *info)
{
    EVP_PKEY *pkey = NULL;
    char fpr[KPK_FPR_HEX] = "", why[KPK_OSSL_REASON_MAX + 64];
    *pkcs8 = NULL;
    kp_status st = s_open_version(ctx, c, src, secrets, version, &pkey, NULL);
    if (st == KP_ERR_NOT_FOUND)
        st = kp__set_error(ctx, st, "%s holds no copy of %s v%u", kp_instance_name(src), c->name,
                           version);
    if (st == KP_OK)
        st = kpk_fpr_pkey(pkey, fpr);
    if (st == KP_OK && strcmp(fpr, want) != 0)
        st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                           "%s: the copy of %s v%u is another key (%.16s..., expected %.16s...)",
                           kp_instance_name(src), c->name, version, fpr, want);
    if (st == KP_OK && (st = kp__pkey_pkcs8(pkey, pkcs8, why, sizeof(why))) == KP_ERR_CRYPTO)
        kp__set_error(ctx, st, "the copy of %s v%u: %s", c->name, version, why);
    if (st == KP_OK) {
        kp_key_spec spec;
        kp__chain_spec(c, version, &spec);
        memset(info, 0, sizeof(*info));
        info->struct_size = sizeof(*info);
        snprintf(info->name, sizeof(info->name), "%s", c->name);
        info->version = version;
        info->type = spec.type;
        info->bits = (uint32_t)EVP_PKEY_get_bits(pkey);
        info->flags = spec.flags;
        memcpy(info->fingerprint, fpr, KPK_FPR_HEX);
    }
    EVP_PKEY_free(pkey);
    return st;
}

kp_status kp__secret_cert_put(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *dst,
                              uint32_t version, const char *fpr, const uint8_t *der, size_t len)
{
    char name[KP_NAME_MAX + 16], vbuf[16], why[160];
    kp_cert_info info;
    if (kp_cert_read(der, len, &info, why, sizeof(why)) != KP_OK)
        return kp__set_error(ctx, KP_ERR_INTEGRITY, "certificate of %s v%u: %s", c->name, version,
                             why);
    s_name(name, sizeof(name), c->name, "cer");
    snprintf(vbuf, sizeof(vbuf), "%u", version);
    /* An earlier put of the same certificate (a run that lost the answer, or died after it) is
     * kept: a rerun adds no version. A store that cannot be read fails the put instead. */
    uint32_t ver = 0;
    KP_GUARD(s_earlier_find(dst, name, vbuf, fpr, "thumbprint", info.thumbprint, &ver));
    kp_secret *value = NULL;
    kp_status st = ver > 0 ? kp_store_get(dst, name, ver, &value, NULL, NULL) : KP_OK;
    bool same = st == KP_OK && value != NULL && kp_secret_len(value) == len &&
                memcmp(kp_secret_cdata(value), der, len) == 0;
    kp_secret_free(value);
    value = NULL;
    if (st != KP_OK || same)
        return st;
    kp_meta meta[] = {{"chain", c->name},
                      {"kp-version", vbuf},
                      {"fingerprint", fpr},
                      {"thumbprint", info.thumbprint},
                      {"format", "x509-der"}};
    /* Not secret, but a secret store keeps only kp_secret values. */
    value = kp_secret_new_copy(der, len);
    if (value == NULL)
        return KP_ERR_NOMEM;
    st = kp_store_put(dst, name, value, meta, 5, &ver);
    kp_secret_free(value);
    return st;
}

kp_status kp__secret_cert_get(kp_ctx *ctx, kp_instance *inst, const char *chain, uint32_t version,
                              const char *fpr, uint8_t **der, size_t *len, char *gap)
{
    char name[KP_NAME_MAX + 16];
    *der = NULL;
    *len = 0;
    s_name(name, sizeof(name), chain, "cer");
    s_found f = {version, NULL, 0, 0, "", ""};
    kp_status st = kp_store_list(inst, name, s_visit, &f);
    if (st == KP_OK && (f.secret_version == 0 || strcmp(f.fpr, fpr) != 0))
        st = KP_ERR_NOT_FOUND;
    if (st != KP_OK)
        return st == KP_ERR_NOT_FOUND ? kp__set_error(ctx, st, "%s: no certificate of %s v%u",
                                                      kp_instance_name(inst), chain, version)
                                      : st;
    if (gap != NULL && f.gap[0] != '\0' && gap[0] == '\0')
        snprintf(gap, KP_GAP_MAX, ".cer: %s", f.gap);
    kp_secret *value = NULL;
    KP_GUARD(kp_store_get(inst, name, f.secret_version, &value, NULL, NULL));
    *der = malloc(kp_secret_len(value) + 1);
    if (*der == NULL) {
        kp_secret_free(value);
        return KP_ERR_NOMEM;
    }
    memcpy(*der, kp_secret_cdata(value), kp_secret_len(value));
    *len = kp_secret_len(value);
    kp_secret_free(value);
    return KP_OK;
}
