/*
 * libyaml document helpers for the policy parser.
 */
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "policy/parser.h"

yaml_node_t *kp__ynode(kp_pol_parser *P, int id)
{
    return yaml_document_get_node(&P->doc, id);
}

const char *kp__yscalar(yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE)
        return NULL;
    const char *v = (const char *)n->data.scalar.value;
    /* A "\0" escape would silently cut the value short: such a scalar is no value at all. */
    return strlen(v) == n->data.scalar.length ? v : NULL;
}

bool kp__ymapping_ok(kp_pol_parser *P, yaml_node_t *map, const char *what)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        if (map != NULL)
            kp__pdiag(P, map, "%s must be a mapping", what);
        return false;
    }
    /* The duplicate check below is quadratic: bound it. */
    if (map->data.mapping.pairs.top - map->data.mapping.pairs.start > 1024) {
        kp__pdiag(P, map, "%s has more than 1024 keys", what);
        return false;
    }
    bool ok = true;
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        yaml_node_t *ka = kp__ynode(P, a->key);
        const char *sa = kp__yscalar(ka);
        if (sa == NULL) {
            kp__pdiag(P, ka, "keys of %s must be plain names", what);
            ok = false;
            continue;
        }
        for (yaml_node_pair_t *b = map->data.mapping.pairs.start; b < a; b++) {
            const char *sb = kp__yscalar(kp__ynode(P, b->key));
            if (sb != NULL && strcmp(sa, sb) == 0) {
                yaml_node_t *kb = kp__ynode(P, b->key);
                kp__pdiag(P, ka, "duplicate key '%s' in %s (first at line %u)", sa, what,
                          KP_NODE_LINE(kb));
                ok = false;
                break;
            }
        }
    }
    return ok;
}

yaml_node_t *kp__ymap_get(kp_pol_parser *P, yaml_node_t *map, const char *key,
                          yaml_node_t **key_node)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = kp__ynode(P, p->key);
        const char *s = kp__yscalar(k);
        if (s != NULL && strcmp(s, key) == 0) {
            if (key_node != NULL)
                *key_node = k;
            return kp__ynode(P, p->value);
        }
    }
    return NULL;
}

const char *kp__ynamed(kp_pol_parser *P, yaml_node_t *kn, yaml_node_t *vn, const char *kind)
{
    const char *name = kp__yscalar(kn);
    if (!kp__name_valid(name, 63)) {
        kp__pdiag(P, kn,
                  "invalid %s name '%.64s': use [a-z0-9_-], starting with a letter or digit, at "
                  "most 63",
                  kind, name);
        return NULL;
    }
    char what[96];
    snprintf(what, sizeof(what), "%s '%s'", kind, name);
    return kp__ymapping_ok(P, vn, what) ? name : NULL;
}
