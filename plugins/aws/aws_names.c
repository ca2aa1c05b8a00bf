/*
 * How keyplane's secret versions are named in both stores: version N of NAME is the object or
 * secret `<prefix>NAME/vN` (N decimal, no leading zero), and a listing of such names sorted by
 * name, then version. Metadata keys starting with "store." are the store's own (below).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

kp_status kp_aws_version_name(kp_aws_inst *a, const char *name, uint32_t version, char *out,
                              size_t cap)
{
    if (!kpk_key_name_valid(name))
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "'%.*s' is not a secret name", KP_NAME_MAX,
                          name != NULL ? name : "(null)");
    int n = version > 0 ? snprintf(out, cap, "%s%s/v%u", a->prefix, name, version)
                        : snprintf(out, cap, "%s%s/v", a->prefix, name);
    if (n < 0 || (size_t)n >= cap)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "%s: name too long", name);
    return KP_OK;
}

bool kp_aws_version_parse(const kp_aws_inst *a, const char *full, char name[KP_NAME_MAX],
                          uint32_t *version)
{
    size_t pl = strlen(a->prefix);
    if (strncmp(full, a->prefix, pl) != 0)
        return false;
    const char *rest = full + pl, *v = strrchr(rest, '/');
    if (v == NULL || v[1] != 'v' || v[2] < '1' || v[2] > '9' || (size_t)(v - rest) >= KP_NAME_MAX)
        return false;
    size_t digits = strspn(v + 2, "0123456789");
    if (digits > 10 || v[2 + digits] != '\0')
        return false;
    unsigned long long n = strtoull(v + 2, NULL, 10);
    if (n > UINT32_MAX)
        return false;
    memcpy(name, rest, (size_t)(v - rest));
    name[v - rest] = '\0';
    if (!kpk_key_name_valid(name))
        return false;
    *version = (uint32_t)n;
    return true;
}

kp_status kp_aws_vlist_add(kp_aws_vlist *l, const char *name, uint32_t version, const char *id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap > 0 ? l->cap * 2 : 16;
        kp_aws_ventry *ne = realloc(l->v, cap * sizeof(*ne));
        if (ne == NULL)
            return KP_ERR_NOMEM;
        l->v = ne;
        l->cap = cap;
    }
    kp_aws_ventry *e = &l->v[l->n];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->version = version;
    if (id != NULL && (e->id = strdup(id)) == NULL)
        return KP_ERR_NOMEM;
    l->n++;
    return KP_OK;
}

static int s_cmp(const void *x, const void *y)
{
    const kp_aws_ventry *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    if (c != 0)
        return c;
    return a->version < b->version ? -1 : a->version > b->version ? 1 : 0;
}

void kp_aws_vlist_sort(kp_aws_vlist *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(l->v[0]), s_cmp);
    /* one entry per name and version (a listing that repeats one is not trusted twice) */
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (o > 0 && s_cmp(&l->v[o - 1], &l->v[i]) == 0) {
            free(l->v[i].id);
            continue;
        }
        l->v[o++] = l->v[i];
    }
    l->n = o;
}

uint32_t kp_aws_vlist_last(const kp_aws_vlist *l, const char *name)
{
    uint32_t last = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0 && l->v[i].version > last)
            last = l->v[i].version;
    return last;
}

void kp_aws_vlist_free(kp_aws_vlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].id);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

kp_status kp_aws_meta_check(kp_aws_inst *a, const kp_meta *meta, size_t nmeta)
{
    if (nmeta > 0 && meta == NULL)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "metadata is NULL");
    if (nmeta > KP_AWS_META_MAX)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "more than %d metadata pairs", KP_AWS_META_MAX);
    for (size_t i = 0; i < nmeta; i++) {
        const char *k = meta[i].key, *v = meta[i].value;
        size_t kl = k != NULL ? strlen(k) : 0;
        if (kl == 0 || kl > 64 || strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != kl)
            return kp_aws_err(a, KP_ERR_INVALID_ARG, "metadata key #%zu: use 1-64 of [a-z0-9_.-]",
                              i + 1);
        if (strncmp(k, KP_META_STORE, strlen(KP_META_STORE)) == 0)
            return kp_aws_err(
                a, KP_ERR_INVALID_ARG,
                "metadata %s: keys starting with '" KP_META_STORE "' are the store's own", k);
        if (v == NULL)
            return kp_aws_err(a, KP_ERR_INVALID_ARG, "metadata %s: no value", k);
        for (size_t j = 0; j < i; j++)
            if (strcmp(meta[j].key, k) == 0)
                return kp_aws_err(a, KP_ERR_INVALID_ARG, "metadata %s: given twice", k);
    }
    return KP_OK;
}
