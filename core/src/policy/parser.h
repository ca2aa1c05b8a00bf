/*
 * One parse of a policy file, shared by the parser's files: the YAML document, where
 * diagnostics go, the policy being built, and the steps each file contributes. Not installed.
 */
#ifndef KP_POLICY_PARSER_H
#define KP_POLICY_PARSER_H

#include <stdbool.h>

#include <yaml.h>

#include "policy/diag.h"
#include "policy/model.h"

typedef struct kp_pol_parser {
    kp_ctx *ctx;
    yaml_document_t doc;
    kp_diag_list *diags;
    kp_policy *pol;
    /* Instances the policy declares that could not be read (an unknown plugin, a bad body):
     * already reported, so a reference to one is no second error. Borrowed from doc. */
    const char **unusable;
    size_t nunusable, unusable_cap;
    bool providers_unread; /* no 'providers' section could be read: every name is unusable */
    /* The plugins the plugin directories offer, for the message about an unknown one;
     * listed the first time one is needed. */
    char **plugins;
    size_t nplugins;
    bool plugins_listed;
} kp_pol_parser;

/* The largest mapping keyplane reads (kp__ymapping_ok refuses more keys). */
#define KP__YMAP_MAX 1024
/* The most chains a policy holds (the keys of `chains`). */
#define KP__YCHAINS_MAX 100000

#define KP_NODE_LINE(n) ((unsigned)(n)->start_mark.line + 1)
#define KP_NODE_COL(n) ((unsigned)(n)->start_mark.column + 1)
#define kp__pdiag(P, node, ...)                                                                    \
    kp__diag_add((P)->diags, KP_NODE_LINE(node), KP_NODE_COL(node), __VA_ARGS__)

/* yaml.c: node helpers */
yaml_node_t *kp__ynode(kp_pol_parser *P, int id);
const char *kp__yscalar(yaml_node_t *n);
/* Records name (borrowed from the document), an instance the policy declares but that could
 * not be read; whether name is one (every name is, when 'providers' could not be read). */
void kp__policy_set_unusable(kp_pol_parser *P, const char *name);
bool kp__policy_unusable(const kp_pol_parser *P, const char *name);
/* Checks a mapping: every key a scalar, no key twice. Reports and returns false otherwise. */
bool kp__ymapping_ok(kp_pol_parser *P, yaml_node_t *map, const char *what);
/* kp__ymapping_ok with another bound on its keys (the chains: KP__YCHAINS_MAX). */
bool kp__ymapping_ok_max(kp_pol_parser *P, yaml_node_t *map, const char *what, size_t max);
/* The value node for key in map, or NULL; *key_node receives the key's node. */
yaml_node_t *kp__ymap_get(kp_pol_parser *P, yaml_node_t *map, const char *key,
                          yaml_node_t **key_node);
/* The name kn gives a kind ("instance", "chain") whose body vn must be a mapping; NULL, with
 * the reason reported, when the name is invalid or vn is no good mapping. */
const char *kp__ynamed(kp_pol_parser *P, yaml_node_t *kn, yaml_node_t *vn, const char *kind);
/* A chain's duration n (kp__parse_duration: 12h, 30d, 52w, 1y) into *out, true; with positive,
 * zero is refused too. Otherwise reports "chain 'CHAIN': WHAT must be a [positive ]duration like
 * LIKE" at n and returns false: what is the key as the message names it ("'every'",
 * "certificate 'valid'"), like the examples it gives. */
bool kp__yduration(kp_pol_parser *P, yaml_node_t *n, const char *chain, const char *what,
                   bool positive, const char *like, int64_t *out);

/* params.c: an instance's params, checked against its plugin's declaration */
void kp__policy_parse_params(kp_pol_parser *P, kp_pol_instance *inst, yaml_node_t *map);

/* chains.c: the 'chains' section */
void kp__policy_parse_chains(kp_pol_parser *P, yaml_node_t *map);
/* refs.c: the instance reference n (role: how the chain names it, "origin") resolved and checked to
 * offer one of caps (a capname); NULL with the reason reported, or silently for an instance the
 * policy declares but could not read (that one has its own error). */
bool kp__chain_copy_holder(const kp_pol_chain *c, const char *name); /* a replica or escrow */
const kp_pol_instance *kp__chain_ref(kp_pol_parser *P, const char *chain, yaml_node_t *n,
                                     const char *role, uint32_t caps, const char *capname);

/* azure_sql.c: a chain's 'azure_sql' list (seq), once every other key of the chain is read:
 * the Azure SQL servers whose TDE protector the chain is, each reading it from one of the
 * chain's azure-keyvault keystores; a server is listed once in the whole policy. */
void kp__policy_parse_azure_sql(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *seq);
/* Once every chain is read: each server listed once in the whole policy (a server has one TDE
 * protector), a second entry for one an error at that entry. */
void kp__policy_check_azure_sql(kp_pol_parser *P);

/* certificate.c: a chain's 'certificate' block (map): the protector is a SQL Server certificate,
 * made by keyplane (subject) or imported. */
void kp__policy_parse_certificate(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *map);
/* sqlserver.c: a chain's 'sqlserver' list (seq), once its certificate block is read. */
void kp__policy_parse_sqlserver(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *seq);
/* Once the chain is read: what a certificate chain needs of its protector (exportable RSA). */
void kp__policy_check_certificate(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *at);

/* domain.c: asks the plugin what an instance will be (in->described) from its params,
 * and whether every store holding a chain's protector can hold it; diagnostics at node. */
void kp__policy_describe(kp_pol_parser *P, kp_pol_instance *in, yaml_node_t *node);
void kp__policy_check_holders(kp_pol_parser *P, const kp_pol_chain *c, yaml_node_t *node);

#endif
