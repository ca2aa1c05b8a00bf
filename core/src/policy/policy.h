/*
 * The policy layer, for the layers above it: the resolved view of a provider instance (its
 * plugin and checked params), and the rules a chain's protector follows wherever it is held.
 * Not installed.
 */
#ifndef KP_POLICY_POLICY_H
#define KP_POLICY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include <keyplane/keyplane.h>

/* The most stores one chain may name (origin, replicas, escrow and secret replicas, each
 * counted once): validation refuses more, so that no layer above ever leaves one out. */
#define KP__CHAIN_STORES_MAX 64

typedef struct kp_pol_param {
    char *name;
    char *value; /* PATH: already absolute */
    uint32_t type;
    unsigned line, column;
} kp_pol_param;

typedef struct kp_pol_instance {
    char *name;
    char *plugin_name;
    kp_plugin *plugin; /* owned by the ctx */
    kp_pol_param *params;
    size_t nparams;
    unsigned line, column;
    kp_instance_info described; /* PLUGIN_DESCRIBE's answer, or the plugin's capabilities */
} kp_pol_instance;

/* kp_policy_load of a policy already in memory (len bytes at buf, at most 4 MiB, no NUL
 * needed): path names it in diagnostics, and its directory, when path is a regular file, is
 * the base of the policy's relative paths (else the working directory is, as for a pipe). The
 * entry point of the policy parser's fuzz target. */
kp_status kp__policy_load_buffer(kp_ctx *ctx, const char *path, const void *buf, size_t len,
                                 kp_policy **out, kp_diag_list **diags);
/* The instance called name, or NULL. */
const kp_pol_instance *kp__policy_instance(const kp_policy *policy, const char *name);
/* The ABI view of an instance's params (secret params unresolved: secret NULL); free() it. */
kp_status kp__param_view(const kp_pol_instance *pi, kp_param **out);
/* Unique in the process: keys the context's instance cache. */
uint64_t kp__policy_id(const kp_policy *policy);

/* The spec of a new protector version of chain c: its name, type, size and exportability. */
void kp__chain_spec(const kp_chain_policy *c, uint32_t version, kp_key_spec *out);
/* Whether a store as info describes it can hold chain's protector and unwrap with its
 * algorithm (0 in a field: not known yet, passes); else KP_ERR_UNSUPPORTED and why names who,
 * the store's instance name. A store the chain keeps restore-only need not unwrap with the
 * algorithm: it passes, why saying so when it cannot. The one fit rule of policy validate,
 * check and plan. */
kp_status kp__info_fits(const kp_instance_info *info, const kp_chain_policy *chain, const char *who,
                        char *why, size_t whylen);
/* Whether chain (as the policy hands it out) lists store in restore_only: a replica or escrow
 * kept as a restore source, which wrap and unwrap pass over unless it is named. */
bool kp__chain_restore_only(const kp_chain_policy *c, const char *store);

#endif
