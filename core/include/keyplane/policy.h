/*
 * Key-chain policy: the YAML file that names provider instances and chains.
 * docs/policy.md is the reference; every error carries file:line:column.
 */
#ifndef KEYPLANE_POLICY_H
#define KEYPLANE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <keyplane/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kp_ctx kp_ctx;
typedef struct kp_policy kp_policy;

/** One diagnostic: where and why. Strings are owned by the list. */
typedef struct kp_diag {
    const char *file;
    unsigned line;   /**< 1-based; 0 when unknown */
    unsigned column; /**< 1-based; 0 when unknown */
    const char *message;
} kp_diag;

typedef struct kp_diag_list kp_diag_list;

KP_API size_t kp_diag_count(const kp_diag_list *list);
/** Borrowed; valid until the list is freed. */
KP_API const kp_diag *kp_diag_get0(const kp_diag_list *list, size_t i);
KP_API void kp_diag_list_free(kp_diag_list *list);

/** An Azure SQL logical server whose TDE protector is a chain's protector (one entry of the
 *  chain's azure_sql list): every string is checked by the policy validator. */
typedef struct kp_azure_sql_server {
    const char *server;         /**< the logical server's name (NAME.database.windows.net) */
    const char *resource_group; /**< its resource group */
    const char *subscription;   /**< its subscription id, a GUID */
    const char *vault;          /**< the chain's azure-keyvault keystore instance it reads the
                                     protector from (its own region's copy) */
} kp_azure_sql_server;

/** The certificate a chain's protector carries: a SQL Server TDE protector is a certificate,
 *  found by its thumbprint (the chain's 'certificate' block; docs/sqlserver.md). */
typedef struct kp_cert_policy {
    const char *subject; /**< NULL: each version's certificate comes from `keyplane sqlserver
                              import`; else keyplane makes a self-signed one per version with
                              this subject (RFC 2253 text, "CN=TDE protector,O=Contoso") */
    int64_t valid;       /**< seconds a certificate keyplane makes is valid (default 1y) */
    int64_t warn_before; /**< seconds before a certificate's notAfter that status warns (30d) */
} kp_cert_policy;

/** A database of a SQL Server instance a certificate chain protects (its 'sqlserver' list). */
typedef struct kp_sqlserver_db {
    const char *name; /**< [A-Za-z0-9_.-], 1 to 100 */
    int column_keys;  /**< it has column-level keys its database master key protects: a restore
                           re-encrypts that key by the new instance's service master key */
} kp_sqlserver_db;

/** A SQL Server instance a certificate chain protects: every replica of an availability group
 *  is listed, since each must hold the certificate before a database switches to it. */
typedef struct kp_sqlserver_instance {
    const char *instance; /**< as sqlcmd -S names it (host, host\NAME, host,port) */
    const kp_sqlserver_db *databases;
    size_t ndatabases;
} kp_sqlserver_instance;

/** A chain as the policy declares it. Read-only; members are only ever appended. */
typedef struct kp_chain_policy {
    const char *name;
    uint32_t key_type;           /**< kp_key_type */
    uint32_t bits;               /**< 2048, 3072, 4096 */
    const char *origin;          /**< instance where the protector is created */
    const char *const *replicas; /**< instances that must hold every kept version, in
                                      failover order */
    size_t nreplicas;
    const char *const *escrow; /**< instances holding escrow copies */
    size_t nescrow;
    uint32_t wrap_alg;      /**< kp_wrap_alg used by wrap */
    int64_t rotation_every; /**< seconds; 0 = no schedule */
    int64_t rotation_warn;  /**< seconds before due to warn */
    int64_t retention;      /**< seconds old versions must stay restorable */
    int exportable;         /**< protector.exportable: the key may leave its origin (replication,
                                 escrow, BYOK); false by default */
    const char *const *secret_replicas; /**< secret stores that receive each version as
                                             password-protected PKCS#8 */
    size_t nsecret_replicas;
    const char *secrets; /**< secret store keeping those passwords; NULL when none */
    const kp_azure_sql_server *azure_sql; /**< the Azure SQL servers the chain protects, in
                                               the policy's order (azure_sql) */
    size_t nazure_sql;
    const kp_cert_policy *certificate;      /**< NULL: the protector carries no certificate */
    const kp_sqlserver_instance *sqlserver; /**< the instances the chain protects, in the
                                                 policy's order (sqlserver) */
    size_t nsqlserver;
} kp_chain_policy;

/**
 * Loads and fully validates a policy: YAML syntax, schema (unknown keys rejected unless they
 * start with "x-"), names, references between chains and instances, and each instance's
 * params against what its plugin declares (so the plugins are loaded).
 *
 * @param diags if not NULL, receives the diagnostics (caller frees), also on success (empty):
 *        at most 50, then one "... and N more errors".
 * @return KP_OK with *out set (caller frees with kp_policy_free), or KP_ERR_CONFIG and the
 *         first diagnostic as the context's error text, or KP_ERR_IO/KP_ERR_NOMEM.
 */
KP_API KP_WARN_UNUSED kp_status kp_policy_load(kp_ctx *ctx, const char *path, kp_policy **out,
                                               kp_diag_list **diags);
KP_API void kp_policy_free(kp_policy *policy);

KP_API const char *kp_policy_get0_path(const kp_policy *policy);
KP_API size_t kp_policy_instance_count(const kp_policy *policy);
/** Name of the i-th instance (policy order). */
KP_API const char *kp_policy_instance_name(const kp_policy *policy, size_t i);
/** Plugin of the named instance; NULL when there is no such instance. */
KP_API const char *kp_policy_instance_plugin(const kp_policy *policy, const char *instance);
/** The KP_CAP_* bits an instance of the policy has, as its plugin describes it from the params
 *  (PLUGIN_DESCRIBE; the plugin's own bits when it does not describe instances); 0 when there
 *  is no such instance. Opening the instance may narrow them (kp_instance_capabilities). */
KP_API uint32_t kp_policy_instance_capabilities(const kp_policy *pol, const char *instance);
KP_API size_t kp_policy_chain_count(const kp_policy *policy);
KP_API const kp_chain_policy *kp_policy_chain_at(const kp_policy *policy, size_t i);
/** NULL when there is no such chain. */
KP_API const kp_chain_policy *kp_policy_chain(const kp_policy *policy, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_POLICY_H */
