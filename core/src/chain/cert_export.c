/*
 * What SQL Server needs to restore a certificate chain's version on a DR instance
 * (kp_chain_cert_export): the certificate the stores keep with the version, and its private key
 * from the first store that hands it out. `keyplane sqlserver export` writes them as .cer, .pvk
 * and restore.sql.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "chain/secret_replica.h"
#include "chain/state.h"
#include "format/pkcs8.h"

/* The private key of version v (fingerprint fpr) from the first store of d that hands it out
 * (from first, when given; then the origin, other keystores, secret replicas): a keystore's
 * export, else a secret replica's copy opened with its password from the chain's secret store,
 * with the .pvk it keeps beside it. */
static kp_status s_private_key(kp_ctx *ctx, const kp_policy *policy, const kp__discovery *d,
                               uint32_t v, const char *fpr, size_t from, kp_cert_export *out)
{
    const kp_chain_policy *c = d->chain;
    kp_status st = KP_ERR_NOT_FOUND;
    char why[KP_ERRBUF] = "no store holds it";
    for (size_t pass = 0; pass < 4 && out->pkcs8 == NULL; pass++) {
        for (size_t i = 0; i < d->n && out->pkcs8 == NULL; i++) {
            const kp__target *t = &d->t[i];
            /* pass 0: the store vouched for; 1: the origin; 2: other keystores; 3: secret
             * replicas */
            bool mine = pass == 0   ? i == from
                        : pass == 1 ? i == d->origin && i != from
                        : pass == 2 ? i != d->origin && i != from && !t->secret
                                    : i != from && t->secret;
            if (!mine || !t->reachable)
                continue;
            const kp__held *h = kp__held_find(t, v);
            if (h == NULL || fpr == NULL || strcmp(h->fpr, fpr) != 0)
                continue;
            if (t->secret) {
                kp_instance *secrets = NULL;
                kp_key_info info;
                st = c->secrets != NULL ? kp__instance_borrow(ctx, policy, c->secrets, &secrets)
                                        : KP_ERR_CONFIG;
                if (st == KP_OK)
                    st = kp__secret_export(ctx, c, t->inst, secrets, v, fpr, &out->pkcs8, &info);
                if (st == KP_OK)
                    st = kp__secret_pvk(ctx, c, t->inst, secrets, v, fpr, &out->pvk,
                                        &out->pvk_password_version);
                kp__instance_return(ctx, secrets);
            } else {
                st = kp_key_export(t->inst, c->name, v, &out->pkcs8);
                char got[KPK_FPR_HEX];
                EVP_PKEY *pk = st == KP_OK ? kp__pkcs8_pkey(out->pkcs8) : NULL;
                if (st == KP_OK &&
                    (pk == NULL || kpk_fpr_pkey(pk, got) != KP_OK || strcmp(got, fpr) != 0))
                    st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                                       "%s: the private key it exports as %s v%u is another key",
                                       t->name, c->name, v);
                EVP_PKEY_free(pk);
            }
            if (st == KP_OK) {
                snprintf(out->source, sizeof(out->source), "%s", t->name);
            } else {
                snprintf(why, sizeof(why), "%s: %s", t->name, kp_ctx_last_error(ctx));
                kp_secret_free(out->pkcs8);
                kp_secret_free(out->pvk);
                out->pkcs8 = out->pvk = NULL;
                out->pvk_password_version = 0;
            }
        }
    }
    if (out->pkcs8 == NULL)
        return kp__set_error(ctx, st == KP_OK ? KP_ERR_NOT_FOUND : st,
                             "no store hands out the private key of %s v%u (%s)", c->name, v, why);
    return KP_OK;
}

void kp_cert_export_clear(kp_cert_export *out)
{
    if (out == NULL)
        return;
    kp_secret_free(out->pkcs8);
    kp_secret_free(out->pvk);
    kp_free(out->cert);
    memset(out, 0, sizeof(*out));
}

kp_status kp_chain_cert_export_ex(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                  const kp_cert_export_opts *opts, kp_cert_export *out)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && out != NULL, KP_ERR_INVALID_ARG);
    uint32_t version = out->version;
    memset(out, 0, sizeof(*out));
    const char *from =
        opts != NULL && KP_HAS_MEMBER(opts, kp_cert_export_opts, from) ? opts->from : NULL;
    const kp_chain_policy *c = NULL;
    KP_GUARD(kp__chain_get(ctx, policy, chain, &c));
    if (c->certificate == NULL)
        return kp__set_error(ctx, KP_ERR_CONFIG,
                             "chain '%s' has no 'certificate' block: its protector is no "
                             "certificate",
                             chain);
    char fpr[KPK_FPR_HEX] = "";
    if (version == 0)
        KP_GUARD(kp_chain_wrap_version(ctx, policy, chain, &version, fpr));
    kp__discovery *d = calloc(1, sizeof(*d));
    KP_ENSURE(d != NULL, KP_ERR_NOMEM);
    kp_status st = kp__discover_certs(ctx, policy, c, d);
    if (st == KP_OK && from != NULL) {
        kp__discovery_vouch(d, from);
        if (d->vouch >= d->n)
            st = kp__set_error(ctx, KP_ERR_CONFIG, "'%s' is no store of chain '%s'", from, chain);
    }
    uint32_t vs[KP_STATE_VERSIONS];
    const char *fs[KP_STATE_VERSIONS];
    size_t nv = st == KP_OK ? kp__versions(d, vs, fs, KP_STATE_VERSIONS) : 0;
    const char *want = NULL;
    for (size_t k = 0; k < nv; k++)
        if (vs[k] == version && kp__version_confirmed(d, vs[k], fs[k]))
            want = fs[k];
    if (st == KP_OK && want == NULL)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND, "chain '%s' has no confirmed v%u%s", chain,
                           version,
                           from == NULL && !d->t[d->origin].reachable
                               ? " (the origin is unreachable: name the store you trust with "
                                 "--from)"
                               : "");
    size_t holder = d->n;
    if (st == KP_OK && kp__version_cert(d, version, want, &holder, NULL) == NULL)
        st = kp__set_error(ctx, KP_ERR_NOT_FOUND,
                           "no store keeps the certificate of %s v%u (keyplane sqlserver import)",
                           chain, version);
    if (st == KP_OK) {
        const kp__target *t = &d->t[holder];
        st = t->secret ? kp__secret_cert_get(ctx, t->inst, chain, version, want, &out->cert,
                                             &out->certlen, NULL)
                       : kp_key_cert_get(t->inst, chain, version, want, &out->cert, &out->certlen);
    }
    if (st == KP_OK)
        st = s_private_key(ctx, policy, d, version, want, from != NULL ? d->vouch : d->n, out);
    kp__discovery_clear(d);
    free(d);
    if (st != KP_OK)
        kp_cert_export_clear(out);
    else
        out->version = version;
    return st;
}

kp_status kp_chain_cert_export(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                               uint32_t *version, kp_secret **pkcs8, uint8_t **cert,
                               size_t *certlen)
{
    KP_ENSURE(version != NULL && pkcs8 != NULL && cert != NULL && certlen != NULL,
              KP_ERR_INVALID_ARG);
    *pkcs8 = NULL;
    *cert = NULL;
    *certlen = 0;
    kp_cert_export x = {.version = *version};
    KP_GUARD(kp_chain_cert_export_ex(ctx, policy, chain, NULL, &x));
    *version = x.version;
    *pkcs8 = x.pkcs8;
    *cert = x.cert;
    *certlen = x.certlen;
    kp_secret_free(x.pvk);
    return KP_OK;
}
