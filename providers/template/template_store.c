/*
 * template: the secret store (versioned opaque values with metadata, KP_CAP_SECRETSTORE) and the
 * chain-state document each key name carries (KS_STATE_GET/PUT, replaced whole, with
 * compare-and-swap). Values live only in kp_secret memory from the core's upcalls, which the
 * core wipes when it frees them.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template.h"

#define META_MAX 32
#define META_KEY_MAX 64
#define META_VALUE_MAX 1024

void tpl_secret_free(const kp_upcalls *up, tpl_secret *s)
{
    if (s == NULL)
        return;
    up->secret_free(s->value);
    for (size_t i = 0; i < s->nmeta; i++) {
        free((char *)s->meta[i].key);
        free((char *)s->meta[i].value);
    }
    free(s->meta);
    free(s);
}

void tpl_state_free(tpl_state *s)
{
    if (s == NULL)
        return;
    free(s->doc);
    free(s);
}

/* An instance opened with secret_store: false said so in INSTANCE_INFO; the core should not
 * call these, and a plugin does not trust that it never will. */
static kp_status s_need_store(tpl_inst *t, const char *name)
{
    if (!t->secret_store)
        return tpl_err(t, KP_ERR_UNSUPPORTED,
                       "this instance is not a secret store (secret_store: false)");
    if (name == NULL || !kpk_key_name_valid(name))
        return tpl_err(t, KP_ERR_INVALID_ARG, "bad secret name");
    return KP_OK;
}

/* Metadata keys [a-z0-9_.-], values printable text (the ABI's rule), copied. */
static kp_status s_meta_copy(tpl_inst *t, const kp_meta *meta, size_t nmeta, tpl_secret *s)
{
    if (nmeta > META_MAX || (nmeta > 0 && meta == NULL))
        return tpl_err(t, KP_ERR_INVALID_ARG, "more than %d metadata pairs", META_MAX);
    for (size_t i = 0; i < nmeta; i++) {
        const char *k = meta[i].key, *v = meta[i].value;
        size_t klen = k != NULL ? strlen(k) : 0;
        if (klen == 0 || klen > META_KEY_MAX ||
            strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != klen)
            return tpl_err(t, KP_ERR_INVALID_ARG, "metadata key #%zu is not 1-%d of [a-z0-9_.-]",
                           i + 1, META_KEY_MAX);
        if (v == NULL || strlen(v) > META_VALUE_MAX)
            return tpl_err(t, KP_ERR_INVALID_ARG, "metadata %s: value missing or over %d bytes", k,
                           META_VALUE_MAX);
        for (const unsigned char *c = (const unsigned char *)v; *c != '\0'; c++)
            if (*c < 0x20 || *c == 0x7f)
                return tpl_err(t, KP_ERR_INVALID_ARG,
                               "metadata %s: control characters in the value", k);
    }
    if (nmeta > 0 && (s->meta = calloc(nmeta, sizeof(*s->meta))) == NULL)
        return tpl_err(t, KP_ERR_NOMEM, "out of memory");
    /* s->nmeta counts the whole pairs copied: tpl_secret_free frees those */
    kp_status st = KP_OK;
    for (size_t i = 0; st == KP_OK && i < nmeta; i++) {
        char *k = strdup(meta[i].key), *v = k != NULL ? strdup(meta[i].value) : NULL;
        if (v == NULL) {
            free(k);
            st = tpl_err(t, KP_ERR_NOMEM, "out of memory");
        } else {
            s->meta[s->nmeta++] = (kp_meta){.key = k, .value = v};
        }
    }
    return st;
}

/* The secrets list is sorted by name, then version, like the keys. */
typedef struct s_pos {
    size_t at; /* where the next version of name goes */
    const tpl_secret *hit, *latest;
    uint32_t count;
} s_pos;

static void s_locate(const tpl_inst *t, const char *name, uint32_t version, s_pos *p)
{
    *p = (s_pos){.at = t->secrets.n};
    for (size_t i = 0; i < t->secrets.n; i++) {
        const tpl_secret *s = t->secrets.v[i];
        int c = strcmp(s->info.name, name);
        if (c > 0) {
            p->at = i;
            break;
        }
        if (c == 0) {
            p->count++;
            p->latest = s;
            if (s->info.version == version)
                p->hit = s;
        }
    }
}

kp_status tpl_ss_put(void *inst, const char *name, const kp_secret *value, const kp_meta *meta,
                     size_t nmeta, uint32_t *version)
{
    tpl_inst *t = inst;
    tpl_secret *s;
    s_pos pos;
    size_t len;
    kp_status st = KP_OK;

    KP_GUARD(s_need_store(t, name));
    if (value == NULL || version == NULL)
        return tpl_err(t, KP_ERR_INVALID_ARG, "no value");
    if ((len = t->up->secret_len(value)) > TPL_SECRET_MAX) /* as declared in secret_max */
        return tpl_err(t, KP_ERR_INVALID_ARG, "secret %s: %zu bytes, more than %d", name, len,
                       TPL_SECRET_MAX);
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return tpl_err(t, KP_ERR_NOMEM, "out of memory");
    st = s_meta_copy(t, meta, nmeta, s);
    /* The value is borrowed: keep a copy, in secret memory. */
    if (st == KP_OK && (s->value = kp_secret_dup(t->up, t->up->secret_cdata(value), len)) == NULL)
        st = tpl_err(t, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK) {
        memcpy(s->info.name, name, strlen(name) + 1);
        s->info.created = (int64_t)time(NULL);
        s->info.size = len;

        /* A secret store numbers its own versions (unlike keys): the next after the latest. */
        pthread_mutex_lock(&t->lock);
        s_locate(t, name, 0, &pos);
        s->info.version = pos.latest != NULL ? pos.latest->info.version + 1 : 1;
        if (t->max_versions != 0 && pos.count >= t->max_versions)
            st = KP_ERR_DENIED;
        else
            st = tpl_vec_insert(&t->secrets, pos.at, s);
        pthread_mutex_unlock(&t->lock);
        /* Errors are reported after unlocking: nothing calls into the core under the lock. */
        if (st == KP_ERR_DENIED)
            st = tpl_err(t, st, "secret %s has %u versions, the most allowed (max_versions)", name,
                         pos.count);
        else if (st != KP_OK)
            st = tpl_err(t, st, "out of memory");
    }
    if (st == KP_OK) {
        *version = s->info.version;
        s = NULL; /* the list holds it */
    }
    tpl_secret_free(t->up, s);
    return st;
}

kp_status tpl_ss_get(void *inst, const char *name, uint32_t version, kp_secret **value,
                     kp_secret_visit_fn visit, void *arg)
{
    tpl_inst *t = inst;
    const tpl_secret *s;
    s_pos pos;
    kp_status st = KP_OK;

    KP_GUARD(s_need_store(t, name));
    if (value == NULL)
        return tpl_err(t, KP_ERR_INVALID_ARG, "nowhere to put the value");
    pthread_mutex_lock(&t->lock);
    s_locate(t, name, version, &pos);
    pthread_mutex_unlock(&t->lock);
    /* Versions are immutable and freed only at close: safe to read without the lock. */
    if ((s = version != 0 ? pos.hit : pos.latest) == NULL)
        return tpl_err(t, KP_ERR_NOT_FOUND, "secret %s version %u not found", name, version);
    if ((*value = kp_secret_dup(t->up, t->up->secret_cdata(s->value),
                                t->up->secret_len(s->value))) == NULL)
        return tpl_err(t, KP_ERR_NOMEM, "out of memory");
    if (visit != NULL)
        st = visit(arg, &s->info, s->meta, s->nmeta);
    if (st != KP_OK) {
        t->up->secret_free(*value); /* on failure the caller owns nothing */
        *value = NULL;
    }
    return st;
}

kp_status tpl_ss_list(void *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    tpl_inst *t = inst;
    const tpl_secret **snap;
    size_t n = 0;
    kp_status st = KP_OK;

    if (!t->secret_store || name != NULL) /* name NULL: every secret */
        KP_GUARD(s_need_store(t, name));
    if (visit == NULL)
        return tpl_err(t, KP_ERR_INVALID_ARG, "no visitor");
    /* A snapshot, visited without the lock (see tpl_ks_list). */
    pthread_mutex_lock(&t->lock);
    if ((snap = malloc((t->secrets.n + 1) * sizeof(*snap))) != NULL)
        for (size_t i = 0; i < t->secrets.n; i++) {
            const tpl_secret *s = t->secrets.v[i];
            if (name == NULL || strcmp(s->info.name, name) == 0)
                snap[n++] = s;
        }
    pthread_mutex_unlock(&t->lock);
    if (snap == NULL)
        return tpl_err(t, KP_ERR_NOMEM, "out of memory");
    st = name != NULL && n == 0 ? tpl_err(t, KP_ERR_NOT_FOUND, "secret %s not found", name) : KP_OK;
    for (size_t i = 0; i < n && st == KP_OK; i++)
        st = visit(arg, &snap[i]->info, snap[i]->meta, snap[i]->nmeta);
    free(snap);
    return st;
}

/* --- Chain state ------------------------------------------------------------------------ */

static tpl_state *s_state_find(const tpl_inst *t, const char *name)
{
    for (size_t i = 0; i < t->states.n; i++)
        if (strcmp(((tpl_state *)t->states.v[i])->name, name) == 0)
            return t->states.v[i];
    return NULL;
}

kp_status tpl_ks_state_get(void *inst, const char *name, uint8_t *doc, size_t *len)
{
    tpl_inst *t = inst;
    const tpl_state *s;
    size_t have = 0;
    kp_status st = KP_OK;

    if (name == NULL || !kpk_key_name_valid(name) || len == NULL || (doc == NULL && *len != 0))
        return tpl_err(t, KP_ERR_INVALID_ARG, "bad state arguments");
    /* Copied under the lock: a concurrent put replaces (and frees) the document. */
    pthread_mutex_lock(&t->lock);
    if ((s = s_state_find(t, name)) == NULL)
        st = KP_ERR_NOT_FOUND;
    else if (*len < (have = s->len))
        st = KP_ERR_BUFFER_TOO_SMALL;
    else if (s->len > 0)
        memcpy(doc, s->doc, s->len);
    pthread_mutex_unlock(&t->lock);
    if (st == KP_ERR_NOT_FOUND)
        return tpl_err(t, st, "key %s has no state document", name);
    *len = have; /* written, or needed */
    if (st != KP_OK)
        return tpl_err(t, st, "the state of %s needs %zu bytes", name, have);
    return KP_OK;
}

kp_status tpl_ks_state_put(void *inst, const char *name, const uint8_t *doc, size_t len,
                           const uint8_t *expect, size_t expect_len)
{
    tpl_inst *t = inst;
    tpl_state *s, *fresh = NULL;
    uint8_t *copy;
    kp_status st = KP_OK;

    if (name == NULL || !kpk_key_name_valid(name) || doc == NULL || len == 0 ||
        len > KP_STATE_MAX || (expect == NULL && expect_len != 0) || expect_len > KP_STATE_MAX)
        return tpl_err(t, KP_ERR_INVALID_ARG, "bad state arguments");
    copy = malloc(len);
    fresh = calloc(1, sizeof(*fresh));
    if (copy == NULL || fresh == NULL)
        st = KP_ERR_NOMEM;
    if (st == KP_OK) {
        memcpy(copy, doc, len);
        /* Compare and replace under one lock: that is what makes it a compare-and-swap. A
         * remote backend needs the same from its service (a conditional write), not a read
         * then a write. */
        pthread_mutex_lock(&t->lock);
        s = s_state_find(t, name);
        if (expect != NULL && (expect_len == 0 ? s != NULL
                                               : s == NULL || s->len != expect_len ||
                                                     memcmp(s->doc, expect, s->len) != 0))
            st = KP_ERR_CONFLICT;
        else if (s != NULL) {
            free(s->doc);
            s->doc = copy, s->len = len, copy = NULL;
        } else {
            memcpy(fresh->name, name, strlen(name) + 1);
            fresh->doc = copy, fresh->len = len;
            if ((st = tpl_vec_insert(&t->states, t->states.n, fresh)) == KP_OK)
                fresh = NULL, copy = NULL;
            else
                fresh->doc = NULL;
        }
        pthread_mutex_unlock(&t->lock);
    }
    free(copy);
    free(fresh);
    /* Errors are reported after unlocking: nothing calls into the core under the lock. */
    if (st == KP_ERR_CONFLICT)
        st = tpl_err(t, st, "the state of %s changed since it was read (compare failed)", name);
    else if (st != KP_OK)
        st = tpl_err(t, st, "out of memory");
    return st;
}
