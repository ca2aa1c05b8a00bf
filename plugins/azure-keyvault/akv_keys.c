/*
 * Key versions of the vault as keyplane sees them: listing (following nextLink), the
 * version-number mapping through tags, public keys, the visibility rule (akv_internal.h: a
 * version is seen only with kp-version and a kp-fpr that its public key matches), and the cache
 * that lets a wrap, an unwrap or a lookup of a known version cost one request or none.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akv_internal.h"

#define S_MAX_VERSIONS 1024
#define S_MAX_PAGES 1000

kp_status akv_vault_name(akv_inst *a, const char *name, char out[KP_NAME_MAX])
{
    return akv_rule_name(a->up, a->h, a->vault_name, a->key_prefix, name, out);
}

static void s_version_free(akv_version *v)
{
    free(v->spki);
    v->spki = NULL;
}

static void s_key_clear(akv_key *k)
{
    for (size_t i = 0; i < k->n; i++)
        s_version_free(&k->v[i]);
    free(k->v);
    k->v = NULL;
    k->n = 0;
}

void akv_keys_free(akv_inst *a)
{
    for (size_t i = 0; i < a->nkeys; i++)
        s_key_clear(&a->keys[i]);
    free(a->keys);
    a->keys = NULL;
    a->nkeys = 0;
}

void akv_key_forget(akv_inst *a, const char *name)
{
    for (size_t i = 0; i < a->nkeys; i++)
        if (strcmp(a->keys[i].name, name) == 0)
            a->keys[i].loaded = 0;
}

akv_version *akv_key_find(akv_key *k, uint32_t version)
{
    if (k == NULL || k->n == 0)
        return NULL;
    if (version == 0)
        return &k->v[k->n - 1];
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].version == version)
            return &k->v[i];
    return NULL;
}

/* Collects the labelled items of a versions listing (duplicates too: which of them counts is
 * decided once their public keys are known). */
typedef struct s_collect {
    akv_inst *a;
    const char *vname;
    akv_version *v;
    size_t n;
} s_collect;

static kp_status s_item(void *arg, const akv_bundle *b)
{
    s_collect *c = arg;
    if (b->azver[0] == '\0' || b->kp_version == 0 || b->tag_fpr[0] == '\0')
        return KP_OK; /* not made by keyplane, or never checked and labelled: not in the chain */
    if (c->n == S_MAX_VERSIONS)
        return akv_err(c->a, KP_ERR_UNSUPPORTED, "key '%s' has more than %d versions", c->vname,
                       S_MAX_VERSIONS);
    akv_version *nv = realloc(c->v, (c->n + 1) * sizeof(*nv));
    if (nv == NULL)
        return KP_ERR_NOMEM;
    c->v = nv;
    memset(&nv[c->n], 0, sizeof(nv[c->n]));
    nv[c->n].version = b->kp_version;
    snprintf(nv[c->n].azver, sizeof(nv[c->n].azver), "%s", b->azver);
    snprintf(nv[c->n].tag_fpr, sizeof(nv[c->n].tag_fpr), "%s", b->tag_fpr);
    nv[c->n].enabled = b->enabled;
    nv[c->n].created = b->created;
    nv[c->n].exp = b->exp;
    c->n++;
    return KP_OK;
}

/* By version, then the older first (ties by the vault's id, so the order is stable). */
static int s_cmp(const void *x, const void *y)
{
    const akv_version *p = x, *q = y;
    if (p->version != q->version)
        return p->version < q->version ? -1 : 1;
    if (p->created != q->created)
        return p->created < q->created ? -1 : 1;
    return strcmp(p->azver, q->azver);
}

/* Fills spki, bits and fingerprint of v with GET /keys/{name}/{version}. */
static kp_status s_fetch_public(akv_inst *a, const char *vname, akv_version *v)
{
    char path[KP_AKV_URL_MAX], err[KP_AKV_ERR], what[KP_NAME_MAX + 32];
    akv_resp r;
    akv_bundle b;
    snprintf(path, sizeof(path), "/keys/%s/%s", vname, v->azver);
    snprintf(what, sizeof(what), "get %s v%u", vname, v->version);
    kp_status st = akv_call(a, "GET", path, NULL, 0, 0, what, &r);
    if (st == KP_ERR_NOT_FOUND)
        return akv_err(a, st, "%s: %s: the version vanished while listing", a->vault_name, what);
    if (st != KP_OK)
        return st;
    st = akv_parse_bundle(r.http.body, r.http.len, &b, err, sizeof(err));
    akv_resp_free(&r);
    if (st != KP_OK)
        return akv_err(a, st, "%s: %s: %s", a->vault_name, what, err);
    if (strcmp(b.azver, v->azver) != 0) {
        akv_bundle_clear(&b);
        return akv_err(a, KP_ERR_BACKEND, "%s: %s: the vault answered with another version",
                       a->vault_name, what);
    }
    v->spki = b.spki;
    v->spki_len = b.spki_len;
    v->bits = b.bits;
    memcpy(v->fpr, b.fpr, sizeof(v->fpr));
    /* the tags that came with the key material are the ones that count */
    if (b.kp_version != v->version)
        v->tag_fpr[0] = '\0';
    else
        memcpy(v->tag_fpr, b.tag_fpr, sizeof(v->tag_fpr));
    b.spki = NULL;
    akv_bundle_clear(&b);
    return KP_OK;
}

static akv_key *s_slot(akv_inst *a, const char *name)
{
    for (size_t i = 0; i < a->nkeys; i++)
        if (strcmp(a->keys[i].name, name) == 0)
            return &a->keys[i];
    akv_key *nk = realloc(a->keys, (a->nkeys + 1) * sizeof(*nk));
    if (nk == NULL)
        return NULL;
    a->keys = nk;
    memset(&nk[a->nkeys], 0, sizeof(nk[a->nkeys]));
    snprintf(nk[a->nkeys].name, sizeof(nk[a->nkeys].name), "%s", name);
    return &nk[a->nkeys++];
}

kp_status akv_versions_each(akv_inst *a, const char *vname,
                            kp_status (*item)(void *arg, const akv_bundle *b), void *arg)
{
    char next[2 * KP_AKV_URL_MAX], err[KP_AKV_ERR], what[KP_NAME_MAX + 32];
    kp_status st = KP_OK;
    snprintf(next, sizeof(next), "/keys/%s/versions?maxresults=25", vname);
    snprintf(what, sizeof(what), "list versions of %s", vname);
    for (int page = 0; st == KP_OK && next[0] != '\0'; page++) {
        akv_resp r;
        if (page == S_MAX_PAGES)
            return akv_err(a, KP_ERR_BACKEND, "%s: %s: more than %d pages", a->vault_name, what,
                           S_MAX_PAGES);
        st = akv_call(a, "GET", next, NULL, 0, 0, what, &r);
        if (st == KP_ERR_NOT_FOUND) /* no such key: no versions */
            return KP_OK;
        if (st != KP_OK)
            break;
        err[0] = '\0';
        st = akv_parse_page(r.http.body, r.http.len, item, arg, next, sizeof(next), err,
                            sizeof(err));
        akv_resp_free(&r);
        if (st == KP_ERR_BACKEND && err[0] != '\0')
            st = akv_err(a, st, "%s: %s: %s", a->vault_name, what, err);
    }
    return st;
}

kp_status akv_key_load(akv_inst *a, const char *name, bool refresh, akv_key **out)
{
    char vname[KP_NAME_MAX];
    KP_AKV_GUARD(akv_vault_name(a, name, vname));
    akv_key *k = s_slot(a, name);
    if (k == NULL)
        return akv_err(a, KP_ERR_NOMEM, "out of memory");
    if (!refresh && k->loaded != 0) {
        *out = k;
        return KP_OK;
    }
    s_collect c = {a, vname, NULL, 0};
    kp_status st = akv_versions_each(a, vname, s_item, &c);
    /* public keys: reuse what the cache already had for the same vault version */
    for (size_t i = 0; st == KP_OK && i < c.n; i++) {
        for (size_t j = 0; j < k->n; j++)
            if (k->v[j].spki != NULL && strcmp(k->v[j].azver, c.v[i].azver) == 0) {
                c.v[i].spki = k->v[j].spki;
                c.v[i].spki_len = k->v[j].spki_len;
                c.v[i].bits = k->v[j].bits;
                memcpy(c.v[i].fpr, k->v[j].fpr, sizeof(c.v[i].fpr));
                k->v[j].spki = NULL;
            }
        if (c.v[i].spki == NULL)
            st = s_fetch_public(a, vname, &c.v[i]);
    }
    if (st != KP_OK) {
        for (size_t i = 0; i < c.n; i++)
            s_version_free(&c.v[i]);
        free(c.v);
        return st;
    }
    /* visible: the kp-fpr label is the key's own fingerprint; of two vault versions claiming
     * one number (a retried import that had landed) the older counts, as for every earlier
     * reader */
    bool mislabelled = false, dup = false;
    size_t keep = 0;
    if (c.n > 1)
        qsort(c.v, c.n, sizeof(*c.v), s_cmp);
    for (size_t i = 0; i < c.n; i++) {
        bool visible = strcmp(c.v[i].fpr, c.v[i].tag_fpr) == 0;
        bool again = visible && keep > 0 && c.v[keep - 1].version == c.v[i].version;
        if (visible && !again) { /* [keep, i) hold only freed entries */
            akv_version t = c.v[keep];
            c.v[keep++] = c.v[i];
            c.v[i] = t;
        } else {
            mislabelled |= !visible;
            dup |= again;
            s_version_free(&c.v[i]);
        }
    }
    c.n = keep;
    if (mislabelled)
        a->up->log(a->h, KP_LOG_WARN,
                   "a vault version's kp-fpr tag does not match its public key: ignored");
    if (dup)
        a->up->log(a->h, KP_LOG_WARN,
                   "two vault versions carry one kp-version tag; the older one is used");
    s_key_clear(k);
    k->v = c.v;
    k->n = c.n;
    k->loaded = time(NULL);
    *out = k;
    return KP_OK;
}

/* A key that is missing may be soft-deleted: then say so, and how to get it back. KP_OK when it
 * is not (or when the vault will not say). */
static kp_status s_deleted(akv_inst *a, const char *name)
{
    char vname[KP_NAME_MAX], path[KP_AKV_URL_MAX];
    akv_resp r;
    KP_AKV_GUARD(akv_vault_name(a, name, vname));
    snprintf(path, sizeof(path), "/deletedkeys/%s", vname);
    if (akv_call(a, "GET", path, NULL, 0, 0, "get deleted key", &r) != KP_OK)
        return KP_OK;
    akv_resp_free(&r);
    return akv_err(a, KP_ERR_NOT_FOUND,
                   "%s: key %s is deleted but recoverable: recover it (az keyvault key recover "
                   "--vault-name %s --name %s); keyplane does not",
                   a->vault_name, vname, a->vault_name, vname);
}

kp_status akv_version_get(akv_inst *a, const char *name, uint32_t version, bool refresh,
                          akv_version **out)
{
    akv_key *k = NULL;
    KP_AKV_GUARD(akv_key_load(a, name, refresh, &k));
    akv_version *v = akv_key_find(k, version);
    if (v == NULL && !refresh) {
        KP_AKV_GUARD(akv_key_load(a, name, true, &k));
        v = akv_key_find(k, version);
    }
    if (v == NULL) {
        KP_AKV_GUARD(s_deleted(a, name));
        if (version == 0)
            return akv_err(a, KP_ERR_NOT_FOUND, "%s: key %s not found", a->vault_name, name);
        return akv_err(a, KP_ERR_NOT_FOUND, "%s: key %s v%u not found", a->vault_name, name,
                       version);
    }
    *out = v;
    return KP_OK;
}

void akv_info_fill(const akv_inst *a, const char *name, const akv_version *v, kp_key_info *info)
{
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    snprintf(info->name, sizeof(info->name), "%s", name);
    info->version = v->version;
    info->type = KP_KEY_RSA;
    info->bits = v->bits;
    info->flags = 0; /* vault keys never leave the vault */
    info->state = v->enabled ? KP_KEY_ENABLED : KP_KEY_DISABLED;
    info->created = v->created;
    info->expires = v->exp;
    memcpy(info->fingerprint, v->fpr, sizeof(info->fingerprint));
    /* the kid; a URL too long for backend_id (none Azure issues) is cut, it is informational */
    int n = snprintf(info->backend_id, sizeof(info->backend_id), "%s/keys/%s%s/%s", a->vault_url,
                     a->key_prefix, name, v->azver);
    if (n < 0)
        info->backend_id[0] = '\0';
}

json_t *akv_tags(const char *name, uint32_t version, const char *fpr)
{
    char ver[16];
    snprintf(ver, sizeof(ver), "%u", version);
    json_t *t = json_object();
    json_object_set_new(t, "kp-chain", json_string(name));
    json_object_set_new(t, fpr != NULL ? "kp-version" : "kp-pending", json_string(ver));
    if (fpr != NULL)
        json_object_set_new(t, "kp-fpr", json_string(fpr));
    return t;
}

kp_status akv_new_version(akv_inst *a, const kp_key_spec *spec, uint32_t *version)
{
    akv_key *k = NULL;
    KP_AKV_GUARD(akv_key_load(a, spec->name, true, &k));
    if (spec->version != 0) {
        if (akv_key_find(k, spec->version) != NULL)
            return akv_err(a, KP_ERR_EXISTS, "%s: key %s v%u exists", a->vault_name, spec->name,
                           spec->version);
        *version = spec->version;
    } else {
        akv_version *last = akv_key_find(k, 0);
        *version = last != NULL ? last->version + 1 : 1;
    }
    return KP_OK;
}

kp_status akv_take_bundle(akv_inst *a, const char *name, uint32_t version, akv_bundle *b,
                          kp_key_info *info)
{
    akv_key *k = NULL;
    akv_key_forget(a, name);
    KP_AKV_GUARD(akv_key_load(a, name, true, &k));
    akv_version *v = akv_key_find(k, version);
    if (v == NULL || strcmp(v->azver, b->azver) != 0) {
        /* the new version is not the one listed for this number: an earlier attempt won */
        return akv_err(a, KP_ERR_EXISTS, "%s: key %s v%u was created concurrently by another run",
                       a->vault_name, name, version);
    }
    if (info != NULL) {
        kp_key_info full;
        akv_info_fill(a, name, v, &full);
        kp_key_info_put(info, &full);
    }
    return KP_OK;
}

/* The keystore's listing. */
typedef struct s_list_all {
    akv_inst *a;
    char (*names)[KP_NAME_MAX];
    size_t n;
} s_list_all;

static kp_status s_key_item(void *arg, const akv_bundle *b)
{
    s_list_all *l = arg;
    size_t pl = strlen(l->a->key_prefix);
    if (b->tag_chain[0] == '\0' || strncmp(b->name, l->a->key_prefix, pl) != 0 ||
        strcmp(b->name + pl, b->tag_chain) != 0)
        return KP_OK; /* not a keyplane key of this prefix */
    char(*nn)[KP_NAME_MAX] = realloc(l->names, (l->n + 1) * sizeof(*nn));
    if (nn == NULL)
        return KP_ERR_NOMEM;
    l->names = nn;
    snprintf(nn[l->n++], KP_NAME_MAX, "%s", b->tag_chain);
    return KP_OK;
}

static kp_status s_visit_key(akv_inst *a, const char *name, kp_key_visit_fn visit, void *arg,
                             bool must)
{
    akv_key *k = NULL;
    KP_AKV_GUARD(akv_key_load(a, name, true, &k));
    if (k->n == 0 && must) {
        KP_AKV_GUARD(s_deleted(a, name));
        return akv_err(a, KP_ERR_NOT_FOUND, "%s: key %s not found", a->vault_name, name);
    }
    for (size_t i = 0; i < k->n; i++) {
        kp_key_info info;
        akv_info_fill(a, name, &k->v[i], &info);
        if (k->v[i].exp != 0)
            a->up->log(a->h, KP_LOG_WARN,
                       "a key version has an expiry date; Azure SQL TDE protectors must not "
                       "expire");
        kp_status st = visit(arg, &info);
        if (st != KP_OK)
            return st;
    }
    return KP_OK;
}

kp_status akv_ks_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    akv_inst *a = inst;
    if (a == NULL || visit == NULL)
        return KP_ERR_INVALID_ARG;
    pthread_mutex_lock(&a->lock);
    kp_status st;
    if (name != NULL) {
        st = s_visit_key(a, name, visit, arg, true);
    } else {
        s_list_all l = {a, NULL, 0};
        char next[2 * KP_AKV_URL_MAX] = "/keys?maxresults=25", err[KP_AKV_ERR];
        st = KP_OK;
        for (int page = 0; st == KP_OK && next[0] != '\0' && page < S_MAX_PAGES; page++) {
            akv_resp r;
            st = akv_call(a, "GET", next, NULL, 0, 0, "list keys", &r);
            if (st != KP_OK)
                break;
            st = akv_parse_page(r.http.body, r.http.len, s_key_item, &l, next, sizeof(next), err,
                                sizeof(err));
            akv_resp_free(&r);
            if (st == KP_ERR_BACKEND)
                st = akv_err(a, st, "%s: list keys: %s", a->vault_name, err);
        }
        for (size_t i = 0; st == KP_OK && i < l.n; i++)
            st = s_visit_key(a, l.names[i], visit, arg, false);
        free(l.names);
    }
    pthread_mutex_unlock(&a->lock);
    return st;
}

kp_status akv_ks_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                            size_t *len)
{
    akv_inst *a = inst;
    if (a == NULL || name == NULL || len == NULL)
        return KP_ERR_INVALID_ARG;
    pthread_mutex_lock(&a->lock);
    akv_version *v = NULL;
    kp_status st = akv_version_get(a, name, version, false, &v);
    if (st == KP_OK) {
        if (spki == NULL || *len < v->spki_len)
            st = KP_ERR_BUFFER_TOO_SMALL;
        else
            memcpy(spki, v->spki, v->spki_len);
        *len = v->spki_len;
    }
    pthread_mutex_unlock(&a->lock);
    return st;
}

/* One version without listing other keys: a known number comes from the cache (a wrap or unwrap
 * checks the fingerprint first, so this must cost nothing); the latest is listed afresh, since
 * another run may have added one. */
kp_status akv_ks_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    akv_inst *a = inst;
    if (a == NULL || name == NULL || info == NULL)
        return KP_ERR_INVALID_ARG;
    kp_key_info full;
    akv_version *v = NULL;
    pthread_mutex_lock(&a->lock);
    kp_status st = akv_version_get(a, name, version, version == 0, &v);
    if (st == KP_OK)
        akv_info_fill(a, name, v, &full);
    pthread_mutex_unlock(&a->lock);
    if (st == KP_OK)
        kp_key_info_put(info, &full);
    return st;
}
