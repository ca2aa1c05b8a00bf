/* Shared between the policy parser files. Not installed. */
#ifndef KP_POLICY_INTERNAL_H
#define KP_POLICY_INTERNAL_H

#include <yaml.h>

#include "diag.h"
#include "internal.h"

typedef struct kp_pol_chain {
    kp_chain_policy pub;
    char *name;
    char *origin;
    char **replicas;
    char **escrow;
    char **secret_replicas;
    char *secrets;
} kp_pol_chain;

struct kp_policy {
    uint64_t id; /* unique in the process: keys the context's instance cache */
    char *path;
    char *dir; /* absolute directory of the policy file: base of relative paths */
    kp_pol_instance *instances;
    size_t ninstances;
    kp_pol_chain *chains;
    size_t nchains;
};

/* One parse: the YAML document, where diagnostics go, what is being built. */
typedef struct kp_pol_parser {
    kp_ctx *ctx;
    yaml_document_t doc;
    kp_diag_list *diags;
    kp_policy *pol;
} kp_pol_parser;

#define KP_NODE_LINE(n) ((unsigned)(n)->start_mark.line + 1)
#define KP_NODE_COL(n) ((unsigned)(n)->start_mark.column + 1)
#define kp__pdiag(P, node, ...)                                                                    \
    kp__diag_add((P)->diags, KP_NODE_LINE(node), KP_NODE_COL(node), __VA_ARGS__)

/* policy_yaml.c: node helpers */
yaml_node_t *kp__ynode(kp_pol_parser *P, int id);
const char *kp__yscalar(yaml_node_t *n);
/* Checks a mapping: every key a scalar, no key twice. Reports and returns false otherwise. */
bool kp__ymapping_ok(kp_pol_parser *P, yaml_node_t *map, const char *what);
/* The value node for key in map, or NULL; *key_node receives the key's node. */
yaml_node_t *kp__ymap_get(kp_pol_parser *P, yaml_node_t *map, const char *key,
                          yaml_node_t **key_node);

/* policy_params.c */
void kp__policy_parse_params(kp_pol_parser *P, kp_pol_instance *inst, yaml_node_t *map);

/* policy_domain.c: asks the plugin what an instance will be (in->described) from its params,
 * and whether every store holding a chain's protector can hold it; diagnostics at node. */
void kp__policy_describe(kp_pol_parser *P, kp_pol_instance *in, yaml_node_t *node);
void kp__policy_check_holders(kp_pol_parser *P, const kp_pol_chain *c, yaml_node_t *node);

#endif
