/*
 * Chain-level operations over several instances: creating a protector version everywhere the
 * policy wants it, wrapping with the chain's protector, unwrapping with failover.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "internal.h"

kp_status kp_fingerprint_spki(const uint8_t *spki, size_t len, char hex[KP_FPR_HEX])
{
    KP_ENSURE(spki != NULL && len > 0 && hex != NULL, KP_ERR_INVALID_ARG);
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(spki, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return KP_ERR_CRYPTO;
    kp__hex(md, 32, hex);
    return KP_OK;
}

static kp_status s_chain(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                         const kp_chain_policy **out)
{
    *out = kp_policy_chain(policy, chain);
    if (*out == NULL)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND, "no chain '%.64s' in %s", chain,
                             kp_policy_get0_path(policy));
    return KP_OK;
}

/* Keystore instances of a chain in failover order: replicas, then escrow, then the origin,
 * each once. */
static size_t s_keystores(const kp_policy *policy, const kp_chain_policy *c, const char **out,
                          size_t max)
{
    size_t n = 0;
    for (size_t pass = 0; pass < 3; pass++) {
        const char *const *list = pass == 0 ? c->replicas : pass == 1 ? c->escrow : &c->origin;
        size_t count = pass == 0 ? c->nreplicas : pass == 1 ? c->nescrow : 1;
        for (size_t i = 0; i < count && n < max; i++) {
            const kp_pol_instance *pi = kp__policy_instance(policy, list[i]);
            if (pi == NULL || !(kp_plugin_get0_info(pi->plugin)->capabilities & KP_CAP_KEYSTORE))
                continue;
            bool dup = false;
            for (size_t j = 0; j < n; j++)
                dup = dup || strcmp(out[j], list[i]) == 0;
            if (!dup)
                out[n++] = list[i];
        }
    }
    return n;
}

#define KP_MAX_TARGETS 64

static kp_status s_highest_version(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                   const char **names, size_t n, uint32_t *highest)
{
    *highest = 0;
    for (size_t i = 0; i < n; i++) {
        kp_instance *inst = NULL;
        KP_GUARD(kp_instance_open(ctx, policy, names[i], &inst));
        kp_key_info info;
        kp_status st = kp_key_info_get(inst, chain, 0, &info);
        kp_instance_close(inst);
        if (st == KP_OK && info.version > *highest)
            *highest = info.version;
        else if (st != KP_OK && st != KP_ERR_NOT_FOUND)
            return st;
    }
    kp__clear_error(ctx);
    return KP_OK;
}

static kp_status s_replicate(kp_ctx *ctx, const kp_policy *policy, const kp_chain_policy *c,
                             const char *target, const kp_secret *pkcs8, const kp_key_info *src)
{
    kp_instance *inst = NULL;
    KP_GUARD(kp_instance_open(ctx, policy, target, &inst));
    kp_key_spec spec = {sizeof(spec), c->name, c->key_type, c->bits, src->flags, src->version};
    kp_key_info info;
    kp_status st = kp_key_import(inst, &spec, pkcs8, &info);
    if (st == KP_OK && strcmp(info.fingerprint, src->fingerprint) != 0)
        st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                           "%s: imported key has fingerprint %.16s..., expected %.16s...", target,
                           info.fingerprint, src->fingerprint);
    kp_instance_close(inst);
    return st;
}

kp_status kp_chain_create_protector(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                                    kp_check_report_fn report, void *arg, kp_key_info *info)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && info != NULL, KP_ERR_INVALID_ARG);
    const kp_chain_policy *c = NULL;
    KP_GUARD(s_chain(ctx, policy, chain, &c));
    const char *targets[KP_MAX_TARGETS];
    size_t n = s_keystores(policy, c, targets, KP_MAX_TARGETS);
    const char *all[KP_MAX_TARGETS + 1];
    all[0] = c->origin;
    size_t nall = 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(targets[i], c->origin) != 0)
            all[nall++] = targets[i];

    uint32_t highest = 0;
    KP_GUARD(s_highest_version(ctx, policy, chain, all, nall, &highest));

    kp_instance *origin = NULL;
    KP_GUARD(kp_instance_open(ctx, policy, c->origin, &origin));
    kp_key_spec spec = {sizeof(spec), chain, c->key_type, c->bits, nall > 1 ? KP_KEY_EXPORTABLE : 0,
                        highest + 1};
    kp_status st = kp_key_create(origin, &spec, info);
    if (report != NULL)
        report(arg, c->origin, st, st == KP_OK ? "created" : kp_ctx_last_error(ctx));
    kp_secret *pkcs8 = NULL;
    if (st == KP_OK && nall > 1) {
        st = kp_key_export(origin, chain, info->version, &pkcs8);
        if (st != KP_OK && report != NULL)
            report(arg, c->origin, st, kp_ctx_last_error(ctx));
    }
    kp_instance_close(origin);
    /* Every replica is attempted even after one fails, so one bad region does not leave the
     * others without the new version; the first failure is returned. */
    kp_status first = st;
    for (size_t i = 1; st == KP_OK && i < nall; i++) {
        kp_status rst = s_replicate(ctx, policy, c, all[i], pkcs8, info);
        if (report != NULL)
            report(arg, all[i], rst, rst == KP_OK ? "replicated" : kp_ctx_last_error(ctx));
        if (rst != KP_OK && first == KP_OK)
            first = rst;
    }
    kp_secret_free(pkcs8);
    return first;
}

kp_status kp_chain_wrap(kp_ctx *ctx, const kp_policy *policy, const char *chain,
                        const char *replica, const kp_secret *dek, kp_envelope **out, char *used)
{
    KP_ENSURE(ctx != NULL && policy != NULL && chain != NULL && dek != NULL && out != NULL,
              KP_ERR_INVALID_ARG);
    *out = NULL;
    const kp_chain_policy *c = NULL;
    KP_GUARD(s_chain(ctx, policy, chain, &c));
    const char *cands[KP_MAX_TARGETS];
    size_t n = replica != NULL ? 1 : s_keystores(policy, c, cands, KP_MAX_TARGETS);
    if (replica != NULL)
        cands[0] = replica;
    kp_status st =
        kp__set_error(ctx, KP_ERR_NOT_FOUND, "chain '%s' has no keystore replica", chain);
    for (size_t i = 0; i < n; i++) {
        kp_instance *inst = NULL;
        kp_key_info info;
        uint8_t *wrapped = NULL;
        size_t wlen = 0;
        st = kp_instance_open(ctx, policy, cands[i], &inst);
        if (st == KP_OK)
            st = kp_key_info_get(inst, chain, 0, &info);
        if (st == KP_OK)
            st = kp_key_wrap(inst, chain, info.version, c->wrap_alg, dek, &wrapped, &wlen);
        kp_instance_close(inst);
        if (st == KP_OK) {
            kp_envelope_wrap w = {info.fingerprint, info.version, c->wrap_alg, wrapped, wlen};
            st = kp_envelope_new(chain, out);
            if (st == KP_OK)
                st = kp_envelope_add(*out, &w);
            free(wrapped);
            if (st != KP_OK) {
                kp_envelope_free(*out);
                *out = NULL;
                return st;
            }
            if (used != NULL)
                snprintf(used, KP_NAME_MAX, "%s", cands[i]);
            return KP_OK;
        }
        if (i + 1 < n)
            kp__log(ctx, KP_LOG_WARN, "wrap with %s failed (%s); trying %s", cands[i],
                    kp_ctx_last_error(ctx), cands[i + 1]);
    }
    return st;
}

/* Tries every wrap of env in one instance. */
static kp_status s_unwrap_in(kp_ctx *ctx, kp_instance *inst, const kp_envelope *env,
                             kp_secret **dek)
{
    kp_status st = KP_ERR_NOT_FOUND;
    const char *chain = kp_envelope_chain(env);
    for (size_t i = 0; i < kp_envelope_count(env); i++) {
        const kp_envelope_wrap *w = kp_envelope_get0(env, i);
        kp_key_info info;
        st = kp_key_info_get(inst, chain, w->version, &info);
        if (st != KP_OK)
            continue;
        if (strcmp(info.fingerprint, w->fingerprint) != 0) {
            st = kp__set_error(ctx, KP_ERR_INTEGRITY,
                               "%s: %s v%u has fingerprint %.16s..., the envelope wants %.16s...",
                               kp_instance_name(inst), chain, w->version, info.fingerprint,
                               w->fingerprint);
            continue;
        }
        st = kp_key_unwrap(inst, chain, w->version, w->alg, w->wrapped, w->wrapped_len, dek);
        if (st == KP_OK)
            return KP_OK;
    }
    return st;
}

kp_status kp_chain_unwrap(kp_ctx *ctx, const kp_policy *policy, const kp_envelope *env,
                          const char *replica, kp_secret **dek, char *used)
{
    KP_ENSURE(ctx != NULL && policy != NULL && env != NULL && dek != NULL, KP_ERR_INVALID_ARG);
    *dek = NULL;
    const kp_chain_policy *c = NULL;
    KP_GUARD(s_chain(ctx, policy, kp_envelope_chain(env), &c));
    const char *cands[KP_MAX_TARGETS];
    size_t n = replica != NULL ? 1 : s_keystores(policy, c, cands, KP_MAX_TARGETS);
    if (replica != NULL)
        cands[0] = replica;
    char failures[KP_ERRBUF] = "";
    kp_status st = KP_ERR_NOT_FOUND;
    for (size_t i = 0; i < n; i++) {
        kp_instance *inst = NULL;
        st = kp_instance_open(ctx, policy, cands[i], &inst);
        if (st == KP_OK)
            st = s_unwrap_in(ctx, inst, env, dek);
        kp_instance_close(inst);
        if (st == KP_OK) {
            if (used != NULL)
                snprintf(used, KP_NAME_MAX, "%s", cands[i]);
            kp__clear_error(ctx);
            return KP_OK;
        }
        if (i + 1 < n)
            kp__log(ctx, KP_LOG_WARN, "unwrap with %s failed (%s); failing over to %s", cands[i],
                    kp_ctx_last_error(ctx), cands[i + 1]);
        size_t used_len = strlen(failures);
        snprintf(failures + used_len, sizeof(failures) - used_len, "%s%s: %s",
                 used_len > 0 ? "; " : "", cands[i], kp_strerror(st));
    }
    if (n == 0)
        return kp__set_error(ctx, KP_ERR_NOT_FOUND, "chain '%s' has no keystore replica", c->name);
    if (n == 1)
        return st; /* the instance's own error text is the most precise */
    return kp__set_error(ctx, st, "no replica of chain '%s' could unwrap (%s)", c->name, failures);
}
