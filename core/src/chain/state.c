/*
 * The chain-state document (see state.h): JSON
 *   {"format":"keyplane-chain-state","chain":C,"serial":N,"updated":T,
 *    "versions":[{"version":1,"state":"active","active_from":T,"active_until":0,"verified":T}]}
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "chain/state.h"

static const char *s_names[] = {"none", "staged", "active", "previous", "retired"};

const char *kp_version_state_name(uint32_t state)
{
    return state < sizeof(s_names) / sizeof(s_names[0]) ? s_names[state] : "unknown";
}

static uint32_t s_state_of(const char *name)
{
    for (uint32_t i = 1; name != NULL && i < sizeof(s_names) / sizeof(s_names[0]); i++)
        if (strcmp(s_names[i], name) == 0)
            return i;
    return 0;
}

static bool s_parse(const uint8_t *doc, size_t len, const char *chain, kp__chain_state *s)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)doc, len, JSON_REJECT_DUPLICATES, &err);
    const char *fmt = json_string_value(json_object_get(j, "format"));
    const char *c = json_string_value(json_object_get(j, "chain"));
    json_t *vs = json_object_get(j, "versions");
    bool ok = fmt != NULL && strcmp(fmt, "keyplane-chain-state") == 0 && c != NULL &&
              strcmp(c, chain) == 0 && json_is_array(vs) &&
              json_array_size(vs) <= KP_STATE_VERSIONS;
    memset(s, 0, sizeof(*s));
    if (ok) {
        json_t *sj = json_object_get(j, "serial");
        json_int_t serial = json_integer_value(sj);
        ok = json_is_integer(sj) && serial >= 1 && serial <= ((json_int_t)1 << 53);
        s->serial = (uint64_t)serial;
        s->updated = (int64_t)json_integer_value(json_object_get(j, "updated"));
        for (size_t i = 0; ok && i < json_array_size(vs); i++) {
            json_t *v = json_array_get(vs, i);
            kp__vstate *x = &s->v[s->n++];
            json_int_t ver = json_integer_value(json_object_get(v, "version"));
            x->version = (uint32_t)ver;
            x->state = s_state_of(json_string_value(json_object_get(v, "state")));
            x->active_from = (int64_t)json_integer_value(json_object_get(v, "active_from"));
            x->active_until = (int64_t)json_integer_value(json_object_get(v, "active_until"));
            x->verified = (int64_t)json_integer_value(json_object_get(v, "verified"));
            ok = ver >= 1 && ver <= UINT32_MAX && x->state != 0;
        }
    }
    json_decref(j);
    return ok;
}

static char *s_encode(const char *chain, const kp__chain_state *s)
{
    json_t *vs = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(vs, json_pack("{s:I, s:s, s:I, s:I, s:I}", "version",
                                            (json_int_t)s->v[i].version, "state",
                                            kp_version_state_name(s->v[i].state), "active_from",
                                            (json_int_t)s->v[i].active_from, "active_until",
                                            (json_int_t)s->v[i].active_until, "verified",
                                            (json_int_t)s->v[i].verified));
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:o}", "format", "keyplane-chain-state", "chain",
                          chain, "serial", (json_int_t)s->serial, "updated", (json_int_t)s->updated,
                          "versions", vs);
    char *out = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

/* The document of one instance: 1 read, 0 none kept, -1 there but unreadable. */
static int s_read3(kp_instance *inst, const char *chain, kp__chain_state *s)
{
    if (!kp__inst_state_kept(inst))
        return 0;
    uint8_t *buf = malloc(KP_STATE_MAX);
    size_t len = KP_STATE_MAX;
    kp_status st = buf != NULL ? kp__inst_state_get(inst, chain, buf, &len) : KP_ERR_NOMEM;
    int r = st == KP_ERR_NOT_FOUND ? 0 : st == KP_OK && s_parse(buf, len, chain, s) ? 1 : -1;
    free(buf);
    return r;
}

static bool s_read(kp_instance *inst, const char *chain, kp__chain_state *s)
{
    return s_read3(inst, chain, s) == 1;
}

kp_status kp__state_load_from(kp_ctx *ctx, const char *chain, kp_instance **insts, size_t n,
                              kp__chain_state *s, bool *found)
{
    kp__chain_state *tmp = malloc(sizeof(*tmp));
    if (tmp == NULL)
        return KP_ERR_NOMEM;
    *found = false;
    const char *bad = NULL;
    for (size_t i = 0; i < n; i++) {
        int r = insts[i] != NULL ? s_read3(insts[i], chain, tmp) : 0;
        if (r < 0)
            bad = kp_instance_name(insts[i]);
        if (r == 1 && (!*found || tmp->serial > s->serial)) {
            *s = *tmp;
            *found = true;
        }
    }
    free(tmp);
    kp__clear_error(ctx);
    /* With no readable document, an unreadable one must not pass for "never rotated": that
     * would make the newest version (maybe only staged) the one wrap uses. */
    if (!*found && bad != NULL)
        return kp__set_error(ctx, KP_ERR_INTEGRITY,
                             "the state document of chain '%s' in %s is unreadable; restore it "
                             "from another keystore before wrapping or rotating",
                             chain, bad);
    return KP_OK;
}

kp_status kp__state_load(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s, bool *found)
{
    kp_instance *insts[KP_MAX_TARGETS];
    for (size_t i = 0; i < d->n; i++)
        insts[i] = d->t[i].reachable && !d->t[i].secret ? d->t[i].inst : NULL;
    return kp__state_load_from(ctx, d->chain->name, insts, d->n, s, found);
}

kp_status kp__state_store(kp_ctx *ctx, const kp__discovery *d, kp__chain_state *s)
{
    s->serial++;
    s->updated = (int64_t)time(NULL);
    char *doc = s_encode(d->chain->name, s);
    if (doc == NULL)
        return KP_ERR_NOMEM;
    size_t len = strlen(doc), written = 0;
    kp_status st = KP_OK;
    for (size_t i = 0; i < d->n; i++) {
        if (!d->t[i].reachable || d->t[i].secret)
            continue;
        if (!kp__inst_state_kept(d->t[i].inst))
            continue;
        kp_status w =
            kp__inst_state_put(d->t[i].inst, d->chain->name, (const uint8_t *)doc, len, NULL, 0);
        if (w == KP_OK)
            written++;
        else if (st == KP_OK)
            st = w;
    }
    free(doc);
    if (st != KP_OK && written > 0) {
        /* Recorded where it could be; apply copies the newest document to the others. */
        kp__log(ctx, KP_LOG_WARN, "chain '%s': state recorded in %zu keystore(s) only: %s",
                d->chain->name, written, kp_ctx_last_error(ctx));
        st = KP_OK;
    }
    if (st == KP_OK && written == 0)
        st = kp__set_error(ctx, KP_ERR_UNSUPPORTED,
                           "no keystore of chain '%s' can keep its state document", d->chain->name);
    return st;
}

kp__vstate *kp__state_find(kp__chain_state *s, uint32_t version)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].version == version)
            return &s->v[i];
    return NULL;
}

kp__vstate *kp__state_add(kp__chain_state *s, uint32_t version)
{
    kp__vstate *x = kp__state_find(s, version);
    if (x != NULL || s->n == KP_STATE_VERSIONS)
        return x;
    x = &s->v[s->n++];
    memset(x, 0, sizeof(*x));
    x->version = version;
    return x;
}

uint32_t kp__state_active(const kp__chain_state *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].state == KP_VSTATE_ACTIVE)
            return s->v[i].version;
    return 0;
}

uint64_t kp__state_serial(kp_instance *inst, const char *chain, bool *keeps)
{
    *keeps = kp__inst_state_kept(inst);
    kp__chain_state *s = malloc(sizeof(*s));
    uint64_t serial = s != NULL && s_read(inst, chain, s) ? s->serial : 0;
    free(s);
    return serial;
}

kp_status kp__state_copy(kp_ctx *ctx, const char *chain, kp_instance *src, kp_instance *dst,
                         bool *noop)
{
    if (!kp__inst_state_kept(src) || !kp__inst_state_kept(dst))
        return kp__set_error(ctx, KP_ERR_UNSUPPORTED, "state documents not kept there");
    bool keeps;
    uint64_t have = kp__state_serial(dst, chain, &keeps);
    uint8_t *buf = malloc(KP_STATE_MAX);
    size_t len = KP_STATE_MAX;
    kp__chain_state *s = malloc(sizeof(*s));
    kp_status st = buf != NULL && s != NULL ? KP_OK : KP_ERR_NOMEM;
    if (st == KP_OK)
        st = kp__inst_state_get(src, chain, buf, &len);
    if (st == KP_OK && !s_parse(buf, len, chain, s))
        st = kp__set_error(ctx, KP_ERR_INTEGRITY, "%s keeps an unreadable state document",
                           kp_instance_name(src));
    *noop = st == KP_OK && have >= s->serial;
    if (st == KP_OK && !*noop)
        st = kp__inst_state_put(dst, chain, buf, len, NULL, 0);
    free(buf);
    free(s);
    return st;
}
