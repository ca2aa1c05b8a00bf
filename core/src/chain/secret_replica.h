/*
 * Secret replicas: secret stores that keep each protector version as password-protected
 * PKCS#8, with the password in the chain's secret store. Not installed.
 */
#ifndef KP_CHAIN_SECRET_REPLICA_H
#define KP_CHAIN_SECRET_REPLICA_H

#include "chain/discovery.h"

/* Whether name is one of c's secret replicas (listed as one, or a replica that is no keystore). */
bool kp__secret_replica_of(const kp_policy *policy, const kp_chain_policy *c, const char *name);
/* Whether secret store inst keeps a copy of chain's version (with fingerprint fpr when given). */
bool kp__secret_holds(kp_instance *inst, const char *chain, uint32_t version, const char *fpr);
/* Appends the chain's secret replicas to d (after its keystores) and lists what they hold. */
kp_status kp__secret_discover(kp_ctx *ctx, const kp_policy *policy, kp__discovery *d);
/* Encrypts pkcs8 (version's private key, fingerprint fpr) under a fresh password kept in the
 * chain's secret store, and puts it into dst. */
kp_status kp__secret_copy(kp_ctx *ctx, const kp_chain_policy *c, const kp_secret *pkcs8,
                          kp_instance *dst, kp_instance *secrets, uint32_t version,
                          const char *fpr);
/* A secret replica as a restore source: src's copy of version opened with its password, checked
 * to be the key with fingerprint want, as PKCS#8 (*pkcs8, the caller frees it) and the info an
 * import needs (bits from the key, type and flags from the chain's policy). */
kp_status kp__secret_export(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *src,
                            kp_instance *secrets, uint32_t version, const char *want,
                            kp_secret **pkcs8, kp_key_info *info);
/* A certificate chain's .pvk of version as src keeps it (*pvk, the caller frees it), checked to
 * open with its password to the key of fingerprint want; *pwver is that password's version of
 * <chain>.password in the chain's secret store. KP_ERR_NOT_FOUND when src keeps none. */
kp_status kp__secret_pvk(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *src,
                         kp_instance *secrets, uint32_t version, const char *want, kp_secret **pvk,
                         uint32_t *pwver);
/* Proves dst's copy of version: decrypts it with its password and unwraps a challenge made
 * with spki. */
kp_status kp__secret_prove(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *dst,
                           kp_instance *secrets, uint32_t version, const uint8_t *spki,
                           size_t spkilen, char *detail, size_t detlen);

/* Certificate chains: the certificate der/len of version (fingerprint fpr) as a new version of
 * <chain>.cer in secret replica dst, with its thumbprint in the metadata. */
kp_status kp__secret_cert_put(kp_ctx *ctx, const kp_chain_policy *c, kp_instance *dst,
                              uint32_t version, const char *fpr, const uint8_t *der, size_t len);
/* The newest <chain>.cer of version with fingerprint fpr in inst (*der malloc'd, kp_free).
 * KP_ERR_NOT_FOUND when there is none. gap (KP_GAP_MAX bytes, may be NULL), when it is still
 * empty, receives the store's gap of that .cer. */
kp_status kp__secret_cert_get(kp_ctx *ctx, kp_instance *inst, const char *chain, uint32_t version,
                              const char *fpr, uint8_t **der, size_t *len, char *gap);

#endif
