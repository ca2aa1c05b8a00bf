/*
 * libyaml document helpers for the policy parser: scalars, mappings (every key a plain name,
 * duplicates found by sorting), named sections, the one spelling of a boolean, a chain's
 * durations, and the names of instances that could not be read (so that load.c, which reads
 * them, and chains.c, which refers to them, agree on which references are already reported).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* A key of a mapping and its place in it, sorted by name, then place. */
typedef struct {
    const char *name;
    size_t at;
} s_key;

static int s_key_cmp(const void *a, const void *b)
{
    const s_key *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->at > y->at) - (x->at < y->at);
}

bool kp__ymapping_ok_max(kp_pol_parser *P, yaml_node_t *map, const char *what, size_t max)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        if (map != NULL)
            kp__pdiag(P, map, "%s must be a mapping", what);
        return false;
    }
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n > max) {
        kp__pdiag(P, map, "%s has more than %zu keys", what, max);
        return false;
    }
    /* Duplicates by sorting the keys, so that a mapping used many times through an alias
     * costs n log n each time, not n squared. first[i]: the place of the first key of that
     * name, for the key at i; n when the key is no plain name. */
    s_key *keys = calloc(n + 1, sizeof(*keys));
    size_t *first = calloc(n + 1, sizeof(*first)), nkeys = 0;
    if (keys == NULL || first == NULL) {
        free(keys);
        free(first);
        kp__pdiag(P, map, "out of memory reading %s", what);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = kp__yscalar(kp__ynode(P, map->data.mapping.pairs.start[i].key));
        first[i] = name != NULL ? i : n;
        if (name != NULL)
            keys[nkeys++] = (s_key){.name = name, .at = i};
    }
    qsort(keys, nkeys, sizeof(keys[0]), s_key_cmp);
    for (size_t i = 1; i < nkeys; i++)
        if (strcmp(keys[i].name, keys[i - 1].name) == 0)
            first[keys[i].at] = first[keys[i - 1].at];
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = kp__ynode(P, map->data.mapping.pairs.start[i].key);
        if (first[i] == n)
            kp__pdiag(P, k, "keys of %s must be plain names", what);
        else if (first[i] != i)
            kp__pdiag(P, k, "duplicate key '%s' in %s (first at line %u)", kp__yscalar(k), what,
                      KP_NODE_LINE(kp__ynode(P, map->data.mapping.pairs.start[first[i]].key)));
        ok = ok && first[i] == i;
    }
    free(keys);
    free(first);
    return ok;
}

bool kp__ymapping_ok(kp_pol_parser *P, yaml_node_t *map, const char *what)
{
    return kp__ymapping_ok_max(P, map, what, KP__YMAP_MAX);
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

bool kp__yduration(kp_pol_parser *P, yaml_node_t *n, const char *chain, const char *what,
                   bool positive, const char *like, int64_t *out)
{
    const char *v = kp__yscalar(n);
    if (v == NULL || kp__parse_duration(v, out) != KP_OK || (positive && *out <= 0)) {
        kp__pdiag(P, n, "chain '%s': %s must be a %sduration like %s", chain, what,
                  positive ? "positive " : "", like);
        return false;
    }
    return true;
}

/* Records name, an instance the policy declares but that could not be read. */
void kp__policy_set_unusable(kp_pol_parser *P, const char *name)
{
    if (name == NULL)
        return;
    const char **v = kp__grow(P->unusable, &P->unusable_cap, P->nunusable, sizeof(*v), 8);
    if (v == NULL)
        return;
    P->unusable = v;
    P->unusable[P->nunusable++] = name;
}

bool kp__policy_unusable(const kp_pol_parser *P, const char *name)
{
    if (P->providers_unread)
        return true; /* no instance is known: the 'providers' section has its own error */
    for (size_t i = 0; name != NULL && i < P->nunusable; i++)
        if (strcmp(P->unusable[i], name) == 0)
            return true;
    return false;
}
