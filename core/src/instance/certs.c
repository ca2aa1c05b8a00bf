/*
 * Certificates kept with key versions (KS_CERT_PUT / KS_CERT_GET, ABI 1.3): a SQL Server TDE
 * protector is a certificate, and a copy of its key without the certificate restores nothing
 * (docs/sqlserver.md). The core holds every answer to the one rule a keystore promises: the
 * certificate's public key is the version's, so a store that hands back another certificate is
 * caught here, not in a DR drill.
 */
#include <string.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/codec.h>

#include "base/error.h"
#include "instance/call.h"
#include "instance/instance.h"

/* The instance keeps certificates (KP_INST_CERTS and both functions), or KP_ERR_UNSUPPORTED. */
static kp_status s_fn(kp_instance *inst, uint32_t id, const char *op, const kp_dispatch **d)
{
    KP_GUARD(kp__inst_fn(inst, KP_CAP_KEYSTORE, id, op, d));
    if ((kp_instance_get0_info(inst)->flags & KP_INST_CERTS) == 0)
        return kp__set_error(inst->ctx, KP_ERR_UNSUPPORTED, "%s: keeps no certificates",
                             inst->name);
    return KP_OK;
}

int kp_instance_keeps_certs(const kp_instance *inst)
{
    return inst != NULL && (kp_instance_capabilities(inst) & KP_CAP_KEYSTORE) != 0 &&
           (kp_instance_get0_info(inst)->flags & KP_INST_CERTS) != 0 &&
           kp__plugin_fn(inst->plugin, KP_FN_KS_CERT_PUT) != NULL &&
           kp__plugin_fn(inst->plugin, KP_FN_KS_CERT_GET) != NULL;
}

kp_status kp_key_cert_put(kp_instance *inst, const char *name, uint32_t version, const uint8_t *der,
                          size_t len)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && version != 0 && der != NULL && len > 0, KP_ERR_INVALID_ARG);
    KP_GUARD(s_fn(inst, KP_FN_KS_CERT_PUT, "certificate", &d));
    kp_status st = kp_dispatch_ks_cert_put(d)(inst->inst, name, version, der, len);
    return kp__inst_audit(inst, "key.cert_put", name, version, 0, st);
}

typedef struct s_get_args {
    const kp_dispatch *d;
    const char *name;
    uint32_t version;
} s_get_args;

static kp_status s_get_fill(kp_instance *inst, const void *args, uint8_t *buf, size_t *len)
{
    const s_get_args *a = args;
    return kp_dispatch_ks_cert_get(a->d)(inst->inst, a->name, a->version, buf, len);
}

kp_status kp_key_cert_get(kp_instance *inst, const char *name, uint32_t version,
                          const char *fingerprint, uint8_t **der, size_t *len)
{
    const kp_dispatch *d = NULL;
    KP_ENSURE(name != NULL && version != 0 && der != NULL && len != NULL, KP_ERR_INVALID_ARG);
    *der = NULL;
    *len = 0;
    KP_GUARD(s_fn(inst, KP_FN_KS_CERT_GET, "certificate", &d));
    s_get_args a = {d, name, version};
    kp_status st = kp__inst_fill(inst, "KS_CERT_GET", s_get_fill, &a, 2048, der, len);
    char fpr[KPK_FPR_HEX];
    if (st == KP_OK && (*len > KP_CERT_DER_MAX || kpk_cert_fpr(*der, *len, fpr) != KP_OK))
        st = kp__set_error(inst->ctx, KP_ERR_INTEGRITY,
                           "%s: the certificate of %s v%u is not one DER X.509 certificate",
                           inst->name, name, version);
    else if (st == KP_OK && fingerprint != NULL && strcmp(fpr, fingerprint) != 0)
        st = kp__set_error(inst->ctx, KP_ERR_INTEGRITY,
                           "%s: the certificate kept with %s v%u is for another key (%.12s, the "
                           "version is %.12s)",
                           inst->name, name, version, fpr, fingerprint);
    if (st != KP_OK) {
        kp_free(*der);
        *der = NULL;
        *len = 0;
    }
    return st;
}
