/*
 * Key versions of the vault as keyplane sees them: listing (following nextLink), the
 * version-number mapping through tags, public keys, the visibility rule (akv_internal.h: a
 * version is seen only with kp-version and a kp-fpr that its public key matches), and the cache
 * that lets a wrap, an unwrap or a lookup of a known version cost one request or none; and the
 * keystore's lookups built on them (KS_LIST, KS_GET, KS_GET_PUBLIC).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akv_internal.h"

#define S_MAX_VERSIONS 1024
#define S_MAX_PAGES 1000

static void s_version_free(kp_akv_version *v)
{
    free(v->spki);
    v->spki = NULL;
}

/* Frees n versions and the array that holds them. */
static void s_versions_free(kp_akv_version *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s_version_free(&v[i]);
    free(v);
}

void kp_akv_keys_free(kp_akv_inst *a)
{
    for (size_t i = 0; i < a->nkeys; i++)
        s_versions_free(a->keys[i].v, a->keys[i].n);
    free(a->keys);
    a->keys = NULL;
    a->nkeys = 0;
}

void kp_akv_key_forget(kp_akv_inst *a, const char *name)
{
    for (size_t i = 0; i < a->nkeys; i++)
        if (strcmp(a->keys[i].name, name) == 0)
            a->keys[i].loaded = 0;
}

/* Version (0 = the highest) of a loaded key; NULL when absent. */
static kp_akv_version *s_find(kp_akv_key *k, uint32_t version)
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

/* Calls item for every element of the listing at first (and the pages its nextLinks name); a
 * listing that is not there (404) has no elements. */
static kp_status s_list_each(kp_akv_inst *a, const char *first, const char *what,
                             kp_akv_item_fn *item, void *arg)
{
    char next[2 * KP_AKV_URL_MAX], err[KP_AKV_ERR];
    kp_status st = KP_OK;
    snprintf(next, sizeof(next), "%s", first);
    for (int page = 0; st == KP_OK && next[0] != '\0'; page++) {
        kp_akv_resp r;
        if (page == S_MAX_PAGES)
            return kp_akv_err(a, KP_ERR_BACKEND, "%s: %s: more than %d pages", a->place.vault_name,
                              what, S_MAX_PAGES);
        st = kp_akv_call(a, "GET", next, NULL, 0, 0, what, &r);
        if (st == KP_ERR_NOT_FOUND)
            return KP_OK;
        if (st != KP_OK)
            return st;
        err[0] = '\0';
        st = kp_akv_parse_page(r.http.body, r.http.len, item, arg, next, sizeof(next), err,
                               sizeof(err));
        kp_akv_resp_free(&r);
        if (st == KP_ERR_BACKEND && err[0] != '\0') /* else the item's own failure */
            st = kp_akv_err(a, st, "%s: %s: %s", a->place.vault_name, what, err);
    }
    return st;
}

kp_status kp_akv_versions_each(kp_akv_inst *a, const char *vname, kp_akv_item_fn *item, void *arg)
{
    char first[KP_AKV_URL_MAX], what[KP_NAME_MAX + 32];
    snprintf(first, sizeof(first), "/keys/%s/versions?maxresults=25", vname);
    snprintf(what, sizeof(what), "list versions of %s", vname);
    return s_list_each(a, first, what, item, arg);
}

/* Collects the labelled items of a versions listing (duplicates too: which of them counts is
 * decided once their public keys are known). */
typedef struct s_collect {
    kp_akv_inst *a;
    const char *vname;
    kp_akv_version *v;
    size_t n;
    bool cut; /* a walk ended at a version that names no predecessor */
} s_collect;

static kp_status s_item(void *arg, const kp_akv_bundle *b)
{
    s_collect *c = arg;
    if (b->azver[0] == '\0' || b->kp_version == 0 || b->tag_fpr[0] == '\0')
        return KP_OK; /* not made by keyplane, or never checked and labelled: not in the chain */
    if (c->n == S_MAX_VERSIONS)
        return kp_akv_err(c->a, KP_ERR_UNSUPPORTED, "key '%s' has more than %d versions", c->vname,
                          S_MAX_VERSIONS);
    kp_akv_version *nv = realloc(c->v, (c->n + 1) * sizeof(*nv));
    if (nv == NULL)
        return kp_akv_err(c->a, KP_ERR_NOMEM, "out of memory");
    c->v = nv;
    nv += c->n++;
    memset(nv, 0, sizeof(*nv));
    nv->version = b->kp_version;
    snprintf(nv->azver, sizeof(nv->azver), "%s", b->azver);
    snprintf(nv->tag_fpr, sizeof(nv->tag_fpr), "%s", b->tag_fpr);
    snprintf(nv->prev, sizeof(nv->prev), "%s", b->tag_prev);
    snprintf(nv->recovery, sizeof(nv->recovery), "%s", b->recovery);
    nv->enabled = b->enabled;
    nv->created = b->created;
    nv->exp = b->exp;
    return KP_OK;
}

/* By version, then the older first (ties by the vault's id, so the order is stable). */
static int s_cmp(const void *x, const void *y)
{
    const kp_akv_version *p = x, *q = y;
    if (p->version != q->version)
        return p->version < q->version ? -1 : 1;
    if (p->created != q->created)
        return p->created < q->created ? -1 : 1;
    return strcmp(p->azver, q->azver);
}

/* Fills spki, bits and fingerprint of v with GET /keys/{name}/{version}. */
static kp_status s_fetch_public(kp_akv_inst *a, const char *vname, kp_akv_version *v)
{
    char path[KP_AKV_URL_MAX], what[KP_NAME_MAX + 32];
    kp_akv_bundle b;
    memset(&b, 0, sizeof(b));
    snprintf(path, sizeof(path), "/keys/%s/%s", vname, v->azver);
    snprintf(what, sizeof(what), "get %s v%u", vname, v->version);
    kp_status st = kp_akv_call_bundle(a, "GET", path, NULL, 0, 0, what, &b);
    if (st == KP_ERR_NOT_FOUND)
        st = kp_akv_err(a, st, "%s: %s: the version vanished while listing", a->place.vault_name,
                        what);
    if (st == KP_OK && strcmp(b.azver, v->azver) != 0)
        st = kp_akv_err(a, KP_ERR_BACKEND, "%s: %s: the vault answered with another version",
                        a->place.vault_name, what);
    if (st == KP_OK) {
        v->spki = b.spki;
        v->spki_len = b.spki_len;
        v->bits = b.bits;
        memcpy(v->fpr, b.fpr, sizeof(v->fpr));
        memcpy(v->recovery, b.recovery, sizeof(v->recovery));
        b.spki = NULL;
        /* the tags that came with the key material are the ones that count */
        if (b.kp_version != v->version)
            v->tag_fpr[0] = '\0';
        else
            memcpy(v->tag_fpr, b.tag_fpr, sizeof(v->tag_fpr));
    }
    kp_akv_bundle_clear(&b);
    return st;
}

/* The public keys of the collected versions: what the cached listing k already had for the same
 * vault version, else fetched. */
static kp_status s_publics(kp_akv_inst *a, kp_akv_key *k, s_collect *c)
{
    for (size_t i = 0; i < c->n; i++) {
        kp_akv_version *v = &c->v[i];
        for (size_t j = 0; j < k->n; j++)
            if (k->v[j].spki != NULL && strcmp(k->v[j].azver, v->azver) == 0) {
                v->spki = k->v[j].spki;
                v->spki_len = k->v[j].spki_len;
                v->bits = k->v[j].bits;
                memcpy(v->fpr, k->v[j].fpr, sizeof(v->fpr));
                k->v[j].spki = NULL;
            }
        if (v->spki == NULL)
            KP_GUARD(s_fetch_public(a, c->vname, v));
    }
    return KP_OK;
}

/* Keeps the visible versions, in order: the kp-fpr label is the key's own fingerprint; of two
 * vault versions claiming one number (a retried import that had landed) the older counts, as
 * for every earlier reader. */
static void s_visible(kp_akv_inst *a, s_collect *c)
{
    bool mislabelled = false, dup = false;
    size_t keep = 0;
    if (c->n > 1)
        qsort(c->v, c->n, sizeof(*c->v), s_cmp);
    for (size_t i = 0; i < c->n; i++) {
        bool visible = strcmp(c->v[i].fpr, c->v[i].tag_fpr) == 0;
        bool again = visible && keep > 0 && c->v[keep - 1].version == c->v[i].version;
        kp_akv_version *won = again ? &c->v[keep - 1] : NULL;
        if (won != NULL && won->dup[0] == '\0' && strcmp(won->fpr, c->v[i].fpr) != 0) {
            memcpy(won->dup, c->v[i].azver, sizeof(won->dup));
            memcpy(won->dup_prev, c->v[i].prev, sizeof(won->dup_prev));
        }
        if (visible && !again) { /* [keep, i) hold only freed entries */
            kp_akv_version t = c->v[keep];
            c->v[keep++] = c->v[i];
            c->v[i] = t;
        } else {
            mislabelled |= !visible;
            dup |= again;
            s_version_free(&c->v[i]);
        }
    }
    c->n = keep;
    if (mislabelled)
        a->up->log(a->h, KP_LOG_WARN,
                   "a vault version's kp-fpr tag does not match its public key: ignored");
    if (dup)
        a->up->log(a->h, KP_LOG_WARN,
                   "two vault versions carry one kp-version tag; the older one is used");
}

static kp_akv_key *s_slot(kp_akv_inst *a, const char *name)
{
    for (size_t i = 0; i < a->nkeys; i++)
        if (strcmp(a->keys[i].name, name) == 0)
            return &a->keys[i];
    kp_akv_key *nk = realloc(a->keys, (a->nkeys + 1) * sizeof(*nk));
    if (nk == NULL)
        return NULL;
    a->keys = nk;
    nk += a->nkeys++;
    memset(nk, 0, sizeof(*nk));
    snprintf(nk->name, sizeof(nk->name), "%s", name);
    return nk;
}

/* Moves cached version j of k (public key included) to the end of c. */
static kp_status s_take_cached(s_collect *c, kp_akv_key *k, size_t j)
{
    kp_akv_version *nv = realloc(c->v, (c->n + 1) * sizeof(*nv));
    if (nv == NULL)
        return kp_akv_err(c->a, KP_ERR_NOMEM, "out of memory");
    c->v = nv;
    c->v[c->n++] = k->v[j];
    k->v[j].spki = NULL;
    k->loaded = 0; /* no longer whole */
    return KP_OK;
}

/* The cached version of k with vault id azver and a public key, or SIZE_MAX. */
static size_t s_cached(const kp_akv_key *k, const char *azver)
{
    for (size_t j = 0; j < k->n; j++)
        if (k->v[j].spki != NULL && strcmp(k->v[j].azver, azver) == 0)
            return j;
    return SIZE_MAX;
}

/* Adds the bundle b of a walk to c when it is labelled, with its public key. */
static kp_status s_walk_item(s_collect *c, kp_akv_bundle *b)
{
    size_t before = c->n;
    KP_GUARD(s_item(c, b));
    if (c->n == before)
        return KP_OK;
    kp_akv_version *v = &c->v[c->n - 1];
    v->spki = b->spki;
    v->spki_len = b->spki_len;
    v->bits = b->bits;
    memcpy(v->fpr, b->fpr, sizeof(v->fpr));
    b->spki = NULL;
    return KP_OK;
}

/*
 * Least privilege: Azure SQL's minimum for a TDE protector is get, wrapKey and unwrapKey, and an
 * identity the vault refuses keys/list finds the versions without listing. Each version keyplane
 * makes carries kp-prev, the vault id of the key's newest version when it was made (akv_create.c),
 * so GET of the key (its newest version) and then of each kp-prev reaches every version keyplane
 * made, public key included: one GET each, what a listing costs in public-key fetches alone, and
 * none for the versions already cached. A version made outside keyplane, or before kp-prev was
 * written, ends the walk (c->cut). Two versions made at once link to the same predecessor and the
 * walk sees only the newer: making a version needs keys/list (kp_akv_new_version), and what a walk
 * finds is checked against the chain's fingerprints by the core like any answer.
 */
/* Whether id is among the n ids of seen (the versions a walk has passed). */
static bool s_seen(char (*seen)[KP_AKV_VERSION_LEN + 1], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(seen[i], id) == 0)
            return true;
    return false;
}

/* One step of a walk: the version next ("" the newest) of the key, from the cache k or by GET,
 * collected into c when labelled; its kp-prev into next ("" ends the walk), its id into id. */
static kp_status s_walk_step(kp_akv_inst *a, kp_akv_key *k, s_collect *c, const char *what,
                             char next[KP_AKV_VERSION_LEN + 1], char id[KP_AKV_VERSION_LEN + 1])
{
    char path[KP_AKV_URL_MAX];
    size_t j = next[0] == '\0' ? SIZE_MAX : s_cached(k, next);
    if (j != SIZE_MAX) {
        snprintf(id, KP_AKV_VERSION_LEN + 1, "%s", next);
        snprintf(next, KP_AKV_VERSION_LEN + 1, "%s", k->v[j].prev);
        KP_GUARD(s_take_cached(c, k, j));
        c->cut = next[0] == '\0' && c->v[c->n - 1].version > 1;
        return KP_OK;
    }
    bool first = next[0] == '\0';
    if (first)
        snprintf(path, sizeof(path), "/keys/%s", c->vname);
    else
        snprintf(path, sizeof(path), "/keys/%s/%s", c->vname, next);
    kp_akv_bundle b;
    memset(&b, 0, sizeof(b));
    kp_status st = kp_akv_call_bundle(a, "GET", path, NULL, 0, 0, what, &b);
    if (st == KP_ERR_NOT_FOUND) { /* no key at all, or a predecessor that is gone */
        c->cut = !first;
        next[0] = '\0';
        st = KP_OK;
    } else if (st == KP_OK) {
        snprintf(id, KP_AKV_VERSION_LEN + 1, "%s", b.azver);
        st = s_walk_item(c, &b);
        uint32_t claimed = b.kp_version != 0 ? b.kp_version : b.kp_pending;
        snprintf(next, KP_AKV_VERSION_LEN + 1, "%s", b.tag_prev);
        c->cut = next[0] == '\0' && claimed != 1;
    }
    kp_akv_bundle_clear(&b);
    return st;
}

static kp_status s_walk(kp_akv_inst *a, kp_akv_key *k, s_collect *c)
{
    char what[KP_NAME_MAX + 48], next[KP_AKV_VERSION_LEN + 1] = "";
    char(*seen)[KP_AKV_VERSION_LEN + 1] = malloc((S_MAX_VERSIONS + 1) * sizeof(*seen));
    size_t nseen = 0;
    kp_status st = seen != NULL ? KP_OK : kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    snprintf(what, sizeof(what), "get %s (walking its versions)", c->vname);
    while (st == KP_OK) {
        st = s_walk_step(a, k, c, what, next, seen[nseen]);
        if (st != KP_OK || next[0] == '\0')
            break;
        nseen++;
        if (s_seen(seen, nseen, next))
            st = kp_akv_err(a, KP_ERR_BACKEND,
                            "%s: key %s: the kp-prev links of its versions loop (at vault "
                            "version %s)",
                            a->place.vault_name, c->vname, next);
        else if (nseen > S_MAX_VERSIONS)
            st = kp_akv_err(a, KP_ERR_UNSUPPORTED, "%s: key %s: more than %d versions",
                            a->place.vault_name, c->vname, S_MAX_VERSIONS);
    }
    free(seen);
    return st;
}

/* Lists the visible versions of name (fresh when refresh, else cached), fetching public keys;
 * walks them instead when the vault refuses this identity keys/list (s_walk). */
static kp_status s_key_load(kp_akv_inst *a, const char *name, bool refresh, kp_akv_key **out)
{
    char vname[KP_NAME_MAX];
    KP_GUARD(kp_akv_vault_name(a, name, vname));
    kp_akv_key *k = s_slot(a, name);
    if (k == NULL)
        return kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    if (!refresh && k->loaded != 0) {
        *out = k;
        return KP_OK;
    }
    s_collect c = {.a = a, .vname = vname};
    kp_status st = KP_OK;
    if (!a->list_denied) {
        st = kp_akv_versions_each(a, vname, s_item, &c);
        if (st == KP_ERR_PERMISSION) {
            a->list_denied = true;
            a->up->log(a->h, KP_LOG_INFO,
                       "the vault does not let this identity list key versions (keys/list): "
                       "they are found through their kp-prev tags");
            s_versions_free(c.v, c.n);
            c.v = NULL;
            c.n = 0;
        } else if (st == KP_OK) {
            st = s_publics(a, k, &c);
        }
    }
    if (a->list_denied)
        st = s_walk(a, k, &c);
    if (st == KP_OK) {
        s_visible(a, &c);
        s_versions_free(k->v, k->n);
        k->v = c.v;
        k->n = c.n;
        k->loaded = time(NULL);
        k->walk_cut = c.cut;
        *out = k;
        c.v = NULL;
        c.n = 0;
    } else {
        k->loaded = 0; /* public keys may have moved to c: read it whole next time */
    }
    s_versions_free(c.v, c.n);
    return st;
}

/* A key that is missing may be soft-deleted: then say so, and how to get it back. KP_OK when it
 * is not (or when the vault will not say). */
static kp_status s_deleted(kp_akv_inst *a, const char *name)
{
    char vname[KP_NAME_MAX], path[KP_AKV_URL_MAX];
    kp_akv_resp r;
    KP_GUARD(kp_akv_vault_name(a, name, vname));
    snprintf(path, sizeof(path), "/deletedkeys/%s", vname);
    if (kp_akv_call(a, "GET", path, NULL, 0, 0, "get deleted key", &r) != KP_OK)
        return KP_OK;
    kp_akv_resp_free(&r);
    return kp_akv_err(a, KP_ERR_NOT_FOUND,
                      "%s: key %s is deleted but recoverable: recover it (az keyvault key "
                      "recover --vault-name %s --name %s); keyplane does not",
                      a->place.vault_name, vname, a->place.vault_name, vname);
}

/* KP_ERR_NOT_FOUND for name (version 0: any version), saying when it is soft-deleted, or when a
 * walk could not reach every version (k: the loaded key, may be NULL). */
static kp_status s_not_found(kp_akv_inst *a, const char *name, uint32_t version,
                             const kp_akv_key *k)
{
    KP_GUARD(s_deleted(a, name));
    char v[24] = "";
    if (version != 0)
        snprintf(v, sizeof(v), " v%u", version);
    if (k != NULL && k->walk_cut)
        return kp_akv_err(a, KP_ERR_NOT_FOUND,
                          "%s: key %s%s not found: this identity may not list key versions "
                          "(keys/list) and the versions are not all linked by keyplane's kp-prev "
                          "tags (made outside keyplane, or before keyplane wrote kp-prev): grant "
                          "keys/list, or rotate with this keyplane",
                          a->place.vault_name, name, v);
    return kp_akv_err(a, KP_ERR_NOT_FOUND, "%s: key %s%s not found", a->place.vault_name, name, v);
}

kp_status kp_akv_version_get(kp_akv_inst *a, const char *name, uint32_t version, bool refresh,
                             kp_akv_version **out)
{
    kp_akv_key *k = NULL;
    KP_GUARD(s_key_load(a, name, refresh, &k));
    kp_akv_version *v = s_find(k, version);
    if (v == NULL && !refresh) {
        KP_GUARD(s_key_load(a, name, true, &k));
        v = s_find(k, version);
    }
    if (v == NULL)
        return s_not_found(a, name, version, k);
    *out = v;
    return KP_OK;
}

/* A full kp_key_info (struct_size = sizeof(kp_key_info)) of version v of name. */
static void s_info_fill(const kp_akv_inst *a, const char *name, const kp_akv_version *v,
                        kp_key_info *info)
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
    if (v->dup[0] != '\0') /* the walk of an identity without keys/list may find the other */
        snprintf(info->gap, sizeof(info->gap),
                 "vault version %.32s also claims v%u with another key (a run that lost a race "
                 "left it); the next apply or key create here disables it",
                 v->dup, v->version);
    /* the kid; a URL too long for backend_id (none Azure issues) is cut, it is informational */
    int n = snprintf(info->backend_id, sizeof(info->backend_id), "%s/keys/%s%s/%s",
                     a->place.vault_url, a->place.key_prefix, name, v->azver);
    if (n < 0)
        info->backend_id[0] = '\0';
    kp_akv_rule_recovery(a->place.vault_name, v->recovery, info->gap, sizeof(info->gap));
}

kp_status kp_akv_new_version(kp_akv_inst *a, const kp_key_spec *spec, uint32_t *version)
{
    kp_akv_key *k = NULL;
    KP_GUARD(s_key_load(a, spec->name, true, &k));
    if (a->list_denied)
        return kp_akv_err(a, KP_ERR_PERMISSION,
                          "%s: making a version of %s needs the keys/list permission (to see "
                          "every version, so that no number goes to two keys); this identity "
                          "has not got it",
                          a->place.vault_name, spec->name);
    if (spec->version == 0) {
        kp_akv_version *last = s_find(k, 0);
        *version = last != NULL ? last->version + 1 : 1;
        return KP_OK;
    }
    if (s_find(k, spec->version) != NULL)
        return kp_akv_err(a, KP_ERR_EXISTS, "%s: key %s v%u exists", a->place.vault_name,
                          spec->name, spec->version);
    *version = spec->version;
    return KP_OK;
}

void kp_akv_newest_visible(kp_akv_inst *a, const char *name, char out[KP_AKV_VERSION_LEN + 1])
{
    const kp_akv_key *k = NULL;
    out[0] = '\0';
    for (size_t i = 0; i < a->nkeys && k == NULL; i++)
        if (strcmp(a->keys[i].name, name) == 0)
            k = &a->keys[i];
    const kp_akv_version *best = NULL;
    for (size_t i = 0; k != NULL && i < k->n; i++) /* ascending by number: ties go to the later */
        if (best == NULL || k->v[i].created >= best->created)
            best = &k->v[i];
    if (best != NULL)
        memcpy(out, best->azver, KP_AKV_VERSION_LEN + 1);
}

kp_status kp_akv_dups_each(kp_akv_inst *a, const char *name,
                           kp_status (*fn)(void *arg, const kp_akv_version *winner), void *arg)
{
    for (size_t i = 0; i < a->nkeys; i++)
        for (size_t j = 0; strcmp(a->keys[i].name, name) == 0 && j < a->keys[i].n; j++)
            if (a->keys[i].v[j].dup[0] != '\0')
                KP_GUARD(fn(arg, &a->keys[i].v[j]));
    return KP_OK;
}

kp_status kp_akv_take_bundle(kp_akv_inst *a, const char *name, uint32_t version,
                             const kp_akv_bundle *b, kp_key_info *info,
                             char winner[KP_AKV_VERSION_LEN + 1])
{
    kp_akv_key *k = NULL;
    winner[0] = '\0';
    kp_akv_key_forget(a, name);
    KP_GUARD(s_key_load(a, name, true, &k));
    kp_akv_version *v = s_find(k, version);
    if (v != NULL && strcmp(v->azver, b->azver) != 0)
        memcpy(winner, v->azver, KP_AKV_VERSION_LEN + 1);
    if (v == NULL || strcmp(v->azver, b->azver) != 0) {
        /* the new version is not the one listed for this number: an earlier attempt won */
        return kp_akv_err(a, KP_ERR_EXISTS,
                          "%s: key %s v%u was created concurrently by another run",
                          a->place.vault_name, name, version);
    }
    if (info != NULL) {
        kp_key_info full;
        s_info_fill(a, name, v, &full);
        kp_key_info_put(info, &full);
    }
    return KP_OK;
}

/* The names of the keyplane keys of this prefix, from the listing of all keys. */
typedef struct s_names {
    kp_akv_inst *a;
    char (*names)[KP_NAME_MAX];
    size_t n;
} s_names;

static kp_status s_key_item(void *arg, const kp_akv_bundle *b)
{
    s_names *l = arg;
    size_t pl = strlen(l->a->place.key_prefix);
    if (b->tag_chain[0] == '\0' || strncmp(b->name, l->a->place.key_prefix, pl) != 0 ||
        strcmp(b->name + pl, b->tag_chain) != 0)
        return KP_OK; /* not a keyplane key of this prefix */
    char(*nn)[KP_NAME_MAX] = realloc(l->names, (l->n + 1) * sizeof(*nn));
    if (nn == NULL)
        return kp_akv_err(l->a, KP_ERR_NOMEM, "out of memory");
    l->names = nn;
    snprintf(nn[l->n++], KP_NAME_MAX, "%s", b->tag_chain);
    return KP_OK;
}

/* Visits the versions of name; must: a key without any is KP_ERR_NOT_FOUND. */
static kp_status s_visit_key(kp_akv_inst *a, const char *name, kp_key_visit_fn visit, void *arg,
                             bool must)
{
    kp_akv_key *k = NULL;
    KP_GUARD(s_key_load(a, name, true, &k));
    if (k->n == 0 && must)
        return s_not_found(a, name, 0, k);
    for (size_t i = 0; i < k->n; i++) {
        kp_key_info info;
        s_info_fill(a, name, &k->v[i], &info);
        if (k->v[i].exp != 0)
            a->up->log(a->h, KP_LOG_WARN,
                       "a key version has an expiry date; Azure SQL TDE protectors must not "
                       "expire");
        KP_GUARD(visit(arg, &info));
    }
    return KP_OK;
}

/* Visits every version of every keyplane key of this prefix. */
static kp_status s_visit_all(kp_akv_inst *a, kp_key_visit_fn visit, void *arg)
{
    s_names l = {.a = a};
    kp_status st = s_list_each(a, "/keys?maxresults=25", "list keys", s_key_item, &l);
    if (st == KP_ERR_PERMISSION) { /* an identity with get alone still lists one key's versions */
        char why[KP_ERROR_MAX + 1];
        snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
        st = kp_akv_err(a, st, "%s (the versions of one key need only keys/get: key list --name)",
                        why);
    }
    for (size_t i = 0; st == KP_OK && i < l.n; i++)
        st = s_visit_key(a, l.names[i], visit, arg, false);
    free(l.names);
    return st;
}

kp_status kp_akv_ks_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && visit != NULL, KP_ERR_INVALID_ARG);
    kp_akv_begin(a, true);
    kp_status st =
        name != NULL ? s_visit_key(a, name, visit, arg, true) : s_visit_all(a, visit, arg);
    pthread_mutex_unlock(&a->lock);
    return st;
}

kp_status kp_akv_ks_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                               size_t *len)
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && len != NULL, KP_ERR_INVALID_ARG);
    kp_akv_begin(a, true);
    kp_akv_version *v = NULL;
    kp_status st = kp_akv_version_get(a, name, version, false, &v);
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
kp_status kp_akv_ks_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && info != NULL, KP_ERR_INVALID_ARG);
    kp_key_info full;
    kp_akv_version *v = NULL;
    kp_akv_begin(a, true);
    kp_status st = kp_akv_version_get(a, name, version, version == 0, &v);
    if (st == KP_OK)
        s_info_fill(a, name, v, &full);
    pthread_mutex_unlock(&a->lock);
    if (st == KP_OK)
        kp_key_info_put(info, &full);
    return st;
}
