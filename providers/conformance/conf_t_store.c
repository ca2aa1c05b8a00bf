/*
 * secretstore: every SS_PUT is a new version (1, 2, ...), also when the value repeats, and leaves
 * the older ones as they were; SS_GET returns a version's bytes and, through its visitor, its
 * info and metadata exactly as put; SS_LIST is ascending; a declared secret_max holds both ways.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_crypto.h"
#include "conf_list.h"
#include "conf_tests.h"

static const kp_meta s_meta1[] = {{"kit", "conformance"}, {"note", "two words, and: punctuation"}};
static const kp_meta s_meta2[] = {{"kit", "b"}};

typedef struct seen {
    conf_run *r;
    size_t calls;
    const char *name;
    uint32_t version;
    uint64_t size;
    const kp_meta *meta;
    size_t nmeta;
} seen;

static bool s_has(const kp_meta *m, size_t n, const kp_meta *p)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].key != NULL && m[i].value != NULL && strcmp(m[i].key, p->key) == 0 &&
            strcmp(m[i].value, p->value) == 0)
            return true;
    return false;
}

static kp_status s_visit(void *arg, const kp_secret_info *info, const kp_meta *meta, size_t n)
{
    seen *s = arg;
    s->calls++;
    if (info == NULL || strcmp(info->name, s->name) != 0 || info->version != s->version ||
        info->size != s->size) {
        conf_fail(s->r,
                  "SS_GET's visitor got name/version/size \"%.40s\"/%u/%llu, want "
                  "%s/%u/%llu",
                  info != NULL ? info->name : "", info != NULL ? info->version : 0,
                  info != NULL ? (unsigned long long)info->size : 0ull, s->name, s->version,
                  (unsigned long long)s->size);
        return KP_OK;
    }
    /* the store's own pairs (KP_META_STORE, ABI 1.4) are not the caller's */
    size_t own = 0;
    for (size_t i = 0; meta != NULL && i < n; i++)
        own +=
            meta[i].key != NULL && strncmp(meta[i].key, KP_META_STORE, strlen(KP_META_STORE)) == 0;
    bool same = n - own == s->nmeta && (n == 0 || meta != NULL);
    for (size_t i = 0; same && i < s->nmeta; i++)
        same = s_has(meta, n, &s->meta[i]);
    if (!same)
        conf_fail(s->r,
                  "SS_GET(%s, %u): the metadata differs from what was put (%zu pairs, want "
                  "%zu)",
                  s->name, s->version, n, s->nmeta);
    return KP_OK;
}

static uint32_t s_put(conf_run *r, const char *name, const uint8_t *p, size_t n,
                      const kp_meta *meta, size_t nmeta, kp_status *st)
{
    kp_secret *v = conf_secret_new(p, n);
    uint32_t version = 0;
    conf_err_clear();
    *st = CONF_FN(r->kit, ss_put, KP_FN_SS_PUT)(r->inst, name, v, meta, nmeta, &version);
    if (conf_secret_size(v) != n || memcmp(conf_secret_bytes(v), p, n) != 0)
        conf_fail(r, "SS_PUT changed the value it was lent");
    conf_secret_free(v);
    return version;
}

static void s_get(conf_run *r, const char *name, uint32_t ask, uint32_t is, const uint8_t *p,
                  size_t n, const kp_meta *meta, size_t nmeta)
{
    seen s = {r, 0, name, is, n, meta, nmeta};
    kp_secret *v = NULL;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ss_get, KP_FN_SS_GET)(r->inst, name, ask, &v, s_visit, &s);
    if (st != KP_OK) {
        conf_fail(r, "SS_GET(%s, %u): %s: %s", name, ask, conf_status_name(st), conf_reason());
        if (v != NULL)
            conf_fail(r, "SS_GET returned %s and a secret", conf_status_name(st));
        return;
    }
    if (!conf_secret_adopt(r, v, "SS_GET"))
        return;
    if (conf_secret_size(v) != n || memcmp(conf_secret_bytes(v), p, n) != 0)
        conf_fail(r, "SS_GET(%s, %u) returned other bytes than version %u was put with", name, ask,
                  is);
    if (s.calls != 1)
        conf_fail(r, "SS_GET(%s, %u) called its visitor %zu times, want once", name, ask, s.calls);
    conf_secret_free(v);
}

static void s_max(conf_run *r, const char *name, uint64_t max)
{
    if (max == 0 || max > 4u * 1024 * 1024)
        return;
    uint8_t *p = malloc((size_t)max + 1);
    if (p == NULL)
        return;
    conf_random(p, (size_t)max + 1);
    kp_status st;
    s_put(r, name, p, (size_t)max, NULL, 0, &st);
    if (st != KP_OK)
        conf_fail(r, "SS_PUT of secret_max (%llu) bytes: %s: %s", (unsigned long long)max,
                  conf_status_name(st), conf_reason());
    s_put(r, name, p, (size_t)max + 1, NULL, 0, &st);
    if (st == KP_OK)
        conf_fail(r, "SS_PUT of secret_max + 1 (%llu) bytes returned KP_OK",
                  (unsigned long long)max + 1);
    free(p);
}

void conf_t_secretstore(conf_run *r)
{
    char name[CONF_NAME_LEN];
    conf_name(r->kit, "ss", name);
    uint8_t a[48], b[20];
    conf_random(a, sizeof(a));
    conf_random(b, sizeof(b));
    a[5] = 0; /* values are bytes, not strings */
    kp_status st;
    uint32_t v1 = s_put(r, name, a, sizeof(a), s_meta1, 2, &st);
    if (st != KP_OK) {
        conf_fail(r, "SS_PUT(%s): %s: %s", name, conf_status_name(st), conf_reason());
        return;
    }
    uint32_t v2 = s_put(r, name, b, sizeof(b), s_meta2, 1, &st);
    uint32_t v3 = st == KP_OK ? s_put(r, name, a, sizeof(a), s_meta1, 2, &st) : 0;
    if (st != KP_OK) {
        conf_fail(r, "a second or third SS_PUT(%s): %s: %s", name, conf_status_name(st),
                  conf_reason());
        return;
    }
    if (v1 != 1 || v2 != 2 || v3 != 3)
        conf_fail(r,
                  "three SS_PUTs (the third repeating the first value) made versions %u, %u, "
                  "%u; want 1, 2, 3",
                  v1, v2, v3);
    s_get(r, name, 0, v3, a, sizeof(a), s_meta1, 2);
    s_get(r, name, v1, v1, a, sizeof(a), s_meta1, 2);
    s_get(r, name, v2, v2, b, sizeof(b), s_meta2, 1);
    kp_secret *none = NULL;
    conf_err_clear();
    st = CONF_FN(r->kit, ss_get, KP_FN_SS_GET)(r->inst, name, v3 + 1, &none, NULL, NULL);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r, "SS_GET of an absent version: %s, want KP_ERR_NOT_FOUND",
                  conf_status_name(st));
    if (st == KP_OK && conf_secret_adopt(r, none, "SS_GET"))
        conf_secret_free(none);

    conf_list l;
    if ((st = conf_list_secrets(r, name, &l)) != KP_OK) {
        conf_fail(r, "SS_LIST(%s): %s: %s", name, conf_status_name(st), conf_reason());
    } else if (l.n != 3 || l.e[0].version != v1 || l.e[1].version != v2 || l.e[2].version != v3) {
        conf_fail(r, "SS_LIST(%s) lists %zu versions (%u, %u, ...), want %u, %u, %u ascending",
                  name, l.n, l.n > 0 ? l.e[0].version : 0, l.n > 1 ? l.e[1].version : 0, v1, v2,
                  v3);
    } else if (l.e[0].size != sizeof(a) || l.e[1].size != sizeof(b)) {
        conf_fail(r, "SS_LIST(%s) reports sizes %llu and %llu, want %zu and %zu", name,
                  (unsigned long long)l.e[0].size, (unsigned long long)l.e[1].size, sizeof(a),
                  sizeof(b));
    }
    conf_list_free(&l);
    if ((st = conf_list_secrets(r, NULL, &l)) != KP_OK)
        conf_fail(r, "SS_LIST(NULL): %s: %s", conf_status_name(st), conf_reason());
    size_t mine = 0;
    for (size_t i = 0; i < l.n; i++)
        mine += strcmp(l.e[i].name, name) == 0;
    if (st == KP_OK && mine != 3)
        conf_fail(r, "SS_LIST(NULL) shows %zu versions of %s, want 3", mine, name);
    conf_list_check_ascending(r, &l, "SS_LIST(NULL)");
    conf_list_free(&l);
    s_max(r, name, r->kit->iinfo.secret_max);
}
