/*
 * Certificate chains: a chain whose protector is a SQL Server certificate (its 'certificate'
 * block) keeps, with every version, the one X.509 certificate SQL Server knows it by (its
 * thumbprint). Discovery reads what each store that keeps certificates holds; the version's
 * certificate is the origin's, else the one most stores keep; plan copies it where it is
 * missing; verify holds every copy to it (docs/sqlserver.md).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "chain/secret_replica.h"
#include "chain/state.h"
#include "format/pkcs8.h"

#include <openssl/evp.h>

/* Reads t's certificate of h into h->cert (or why not into cert_st/cert_why). */
static kp_status s_read(kp_ctx *ctx, const kp_chain_policy *c, kp__target *t, kp__held *h)
{
    uint8_t *der = NULL;
    size_t len = 0;
    kp_status st = t->secret ? kp__secret_cert_get(ctx, t->inst, c->name, h->version, h->fpr, &der,
                                                   &len, h->gap)
                             : kp_key_cert_get(t->inst, c->name, h->version, h->fpr, &der, &len);
    char why[160] = "";
    if (st == KP_OK) {
        kp_cert_info *info = calloc(1, sizeof(*info));
        if (info == NULL)
            st = KP_ERR_NOMEM;
        else if ((st = kp_cert_read(der, len, info, why, sizeof(why))) != KP_OK)
            free(info);
        else if (strcmp(info->fingerprint, h->fpr) != 0) {
            snprintf(why, sizeof(why), "%s", "the certificate is another key's");
            st = KP_ERR_INTEGRITY;
            free(info);
        } else
            h->cert = info;
    } else if (st != KP_ERR_NOT_FOUND) {
        snprintf(why, sizeof(why), "%s", kp_ctx_last_error(ctx));
    }
    kp_free(der);
    if (st == KP_ERR_NOMEM)
        return st;
    h->cert_st = st;
    snprintf(h->cert_why, sizeof(h->cert_why), "%s", why);
    return KP_OK;
}

kp_status kp__certs_discover(kp_ctx *ctx, kp__discovery *d)
{
    const kp_chain_policy *c = d->chain;
    if (c->certificate == NULL)
        return KP_OK;
    for (size_t i = 0; i < d->n; i++) {
        kp__target *t = &d->t[i];
        t->keeps_certs = t->reachable && (t->secret || kp_instance_keeps_certs(t->inst));
        for (size_t k = 0; t->keeps_certs && k < t->nheld; k++)
            KP_GUARD(s_read(ctx, c, t, &t->held[k]));
    }
    kp__clear_error(ctx);
    return KP_OK;
}

/* The certificate t keeps with v when it holds v with fpr; NULL otherwise. */
static const kp_cert_info *s_kept(const kp__target *t, uint32_t v, const char *fpr)
{
    const kp__held *h = t->reachable && t->keeps_certs ? kp__held_find(t, v) : NULL;
    return h != NULL && h->cert != NULL && strcmp(h->fpr, fpr) == 0 ? h->cert : NULL;
}

const kp_cert_info *kp__version_cert(const kp__discovery *d, uint32_t v, const char *fpr,
                                     size_t *holder, bool *split)
{
    const kp_cert_info *best = NULL;
    size_t best_n = 0, best_i = d->n;
    bool tie = false;
    if (d->origin < d->n && (best = s_kept(&d->t[d->origin], v, fpr)) != NULL)
        best_i = d->origin;
    /* Without the origin's word, the certificate most stores keep; a tie between two is no
     * answer (a copy of either into the origin would make it the version's for good). */
    for (size_t i = 0; best == NULL && i < d->n; i++) {
        const kp_cert_info *ci = s_kept(&d->t[i], v, fpr);
        size_t n = 0;
        for (size_t j = 0; ci != NULL && j < d->n; j++) {
            const kp_cert_info *cj = s_kept(&d->t[j], v, fpr);
            n += cj != NULL && strcmp(cj->thumbprint, ci->thumbprint) == 0;
        }
        if (n > best_n) {
            best_n = n;
            best_i = i;
            tie = false;
        } else if (n > 0 && n == best_n &&
                   strcmp(ci->thumbprint, s_kept(&d->t[best_i], v, fpr)->thumbprint) != 0) {
            tie = true;
        }
    }
    if (best == NULL && best_i < d->n && !tie)
        best = s_kept(&d->t[best_i], v, fpr);
    if (split != NULL)
        *split = tie;
    if (holder != NULL)
        *holder = best != NULL ? best_i : d->n;
    return best;
}

bool kp__certs_all_answered(const kp__discovery *d, const char **silent)
{
    for (size_t i = 0; i < d->n; i++)
        if (!d->t[i].reachable) {
            if (silent != NULL)
                *silent = d->t[i].name;
            return false;
        }
    return true;
}

/* A fresh certificate of the chain's policy for the private key pkcs8 (valid from now), kept
 * with version in origin. Another writer's certificate kept first stands (KS_CERT_PUT never
 * replaces one): KP_OK then too, since it is the version's. */
static kp_status s_certify(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *origin,
                           uint32_t version, const kp_secret *pkcs8)
{
    uint8_t *der = NULL;
    size_t len = 0;
    char why[256];
    int64_t now = (int64_t)time(NULL);
    kp_status st = kp_cert_generate(pkcs8, c->certificate->subject, now - 300,
                                    now + c->certificate->valid, &der, &len, why, sizeof(why));
    if (st != KP_OK)
        return kp__set_error(ctx, st, "cannot make the certificate of %s v%u: %s", c->name, version,
                             why);
    st = kp_key_cert_put(origin, c->name, version, der, len);
    kp_free(der);
    if (st == KP_ERR_EXISTS)
        st = KP_OK; /* made by another run first: that one is the version's */
    return st;
}

kp_status kp__cert_create(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *origin,
                          const kp_key_spec *spec, kp_key_info *info)
{
    if (c->certificate->subject == NULL)
        return kp__set_error(ctx, KP_ERR_DENIED,
                             "chain '%s' takes its certificates from `keyplane sqlserver import "
                             "--chain %s`: keyplane makes no version of it",
                             c->name, c->name);
    kp_secret *pkcs8 = NULL;
    KP_GUARD(kp__rsa_generate(ctx, spec->bits, &pkcs8));
    kp_status st = kp_key_import(origin, spec, pkcs8, info);
    if (st == KP_OK)
        st = s_certify(ctx, c, origin, info->version, pkcs8);
    kp_secret_free(pkcs8);
    return st;
}

kp_status kp__cert_make(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *origin,
                        uint32_t version, const char *fpr)
{
    kp_key_info info;
    kp_secret *pkcs8 = NULL;
    KP_GUARD(kp_key_info_get(origin, c->name, version, &info));
    if (fpr != NULL && fpr[0] != '\0' && strcmp(info.fingerprint, fpr) != 0)
        return kp__set_error(ctx, KP_ERR_INTEGRITY,
                             "%s now holds another key as %s v%u than when planned",
                             kp_instance_name(origin), c->name, version);
    KP_GUARD(kp_key_export(origin, c->name, version, &pkcs8));
    kp_status st = s_certify(ctx, c, origin, version, pkcs8);
    kp_secret_free(pkcs8);
    return st;
}

kp_status kp__cert_copy(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *src, bool src_secret,
                        kp_instance *dst, bool dst_secret, uint32_t version, const char *fpr)
{
    char want[KPK_FPR_HEX];
    snprintf(want, sizeof(want), "%s", fpr != NULL ? fpr : "");
    if (want[0] == '\0') { /* a version this run made: the source's key */
        kp_key_info info;
        KP_GUARD(kp_key_info_get(src, c->name, version, &info));
        snprintf(want, sizeof(want), "%s", info.fingerprint);
    }
    uint8_t *der = NULL;
    size_t len = 0;
    KP_GUARD(src_secret ? kp__secret_cert_get(ctx, src, c->name, version, want, &der, &len, NULL)
                        : kp_key_cert_get(src, c->name, version, want, &der, &len));
    kp_status st = dst_secret ? kp__secret_cert_put(ctx, c, dst, version, want, der, len)
                              : kp_key_cert_put(dst, c->name, version, der, len);
    kp_free(der);
    return st;
}
