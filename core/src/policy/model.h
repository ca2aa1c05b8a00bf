/*
 * The loaded policy as the policy layer's files build and read it: its instances and chains.
 * Not installed.
 */
#ifndef KP_POLICY_MODEL_H
#define KP_POLICY_MODEL_H

#include "policy/policy.h"

/* Sorts the policy's instances by name once they are all read (chains refer to them many
 * times); without memory for it, kp__policy_instance looks through them in order. */
void kp__policy_index(kp_policy *pol);

/* One azure_sql entry: the public view, the strings it points to, and where it was written
 * (for the message about a server listed twice). */
typedef struct kp__azure_sql {
    char *server, *resource_group, *subscription, *vault;
    unsigned line, column; /* of the server's name */
} kp__azure_sql;

typedef struct kp_pol_chain {
    kp_chain_policy pub;
    char *name;
    char *origin;
    char **replicas;
    char **escrow;
    char **secret_replicas;
    char *secrets;
    char **restore_only; /* replicas and escrow kept as restore sources only (restore_only) */
    size_t nrestore_only;
    kp__azure_sql *azure_sql;        /* azure_sql: owns the strings of pub.azure_sql */
    kp_azure_sql_server *azure_view; /* pub.azure_sql */
    kp_cert_policy cert;             /* pub.certificate points here when the chain has one */
    char *cert_subject;              /* owns cert.subject */
    kp_sqlserver_instance *sql;      /* pub.sqlserver, owned (sqlserver.c frees it) */
} kp_pol_chain;

/* sqlserver.c: frees what a chain's 'sqlserver' list holds. */
void kp__policy_free_sqlserver(kp_pol_chain *c);

struct kp_policy {
    uint64_t id; /* unique in the process: keys the context's instance cache */
    char *path;
    char *dir; /* absolute directory of the policy file: base of relative paths */
    kp_pol_instance *instances;
    size_t ninstances;
    /* the instances sorted by name, for kp__policy_instance; NULL: look through them in order */
    const kp_pol_instance **by_name;
    kp_pol_chain *chains;
    size_t nchains;
};

#endif
