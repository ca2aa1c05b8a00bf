/*
 * The mock's secret store: versions of opaque values with metadata, kept in the plugin context's
 * own memory (wiped when freed), handed out as fresh secrets of the core's.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "mock.h"

static mock_sec *s_find(mock_ctx *c, const char *name)
{
    for (mock_sec *s = c->secrets; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static void s_free_ver(mock_sver *v)
{
    if (v->value != NULL)
        OPENSSL_clear_free(v->value, v->len);
    for (size_t i = 0; i < v->nmeta; i++) {
        free((char *)v->meta[i].key);
        free((char *)v->meta[i].value);
    }
    free(v->meta);
}

static bool s_copy(mock_sver *v, const uint8_t *p, size_t len, const kp_meta *meta, size_t n)
{
    v->value = malloc(len > 0 ? len : 1);
    v->meta = calloc(n > 0 ? n : 1, sizeof(*v->meta));
    if (v->value == NULL || v->meta == NULL)
        return false;
    memcpy(v->value, p, len);
    v->len = len;
    for (size_t i = 0; i < n; i++, v->nmeta++) {
        v->meta[i].key = strdup(meta[i].key);
        v->meta[i].value = strdup(meta[i].value);
        if (v->meta[i].key == NULL || v->meta[i].value == NULL) {
            v->nmeta++;
            return false;
        }
    }
    return true;
}

kp_status mock_ss_put(void *inst, const char *name, const kp_secret *value, const kp_meta *meta,
                      size_t nmeta, uint32_t *version)
{
    mock_inst *in = inst;
    mock_ctx *c = in->ctx;
    size_t len = c->up.secret_len(value);
    if (!mock_name_ok(name))
        return c->up.set_error(in->h, KP_ERR_INVALID_ARG, "mock: bad secret name");
    if (len > MOCK_SECRET_MAX)
        return kp_errorf(&c->up, in->h, KP_ERR_INVALID_ARG, "mock: values are at most %d bytes",
                         MOCK_SECRET_MAX);
#ifdef MOCK_FAULT_DOUBLE_FREE
    kp_secret *scratch = kp_secret_dup(&c->up, c->up.secret_cdata(value), len);
    c->up.secret_free(scratch);
    c->up.secret_free(scratch); /* the fault */
#endif
    mock_sver nv = {.created = (int64_t)time(NULL)};
    if (!s_copy(&nv, c->up.secret_cdata(value), len, meta, nmeta)) {
        s_free_ver(&nv);
        return c->up.set_error(in->h, KP_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_lock(&c->lock);
    mock_sec *s = s_find(c, name);
    if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
        strncpy(s->name, name, sizeof(s->name) - 1);
        s->next = c->secrets;
        c->secrets = s;
    }
    kp_status st = s == NULL ? KP_ERR_NOMEM : KP_OK;
    if (st == KP_OK && s->n == s->cap) {
        size_t cap = s->cap == 0 ? 4 : s->cap * 2;
        mock_sver *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            st = KP_ERR_NOMEM;
        else {
            s->v = v;
            s->cap = cap;
        }
    }
    if (st == KP_OK) {
        nv.version = s->n > 0 ? s->v[s->n - 1].version + 1 : 1;
        s->v[s->n++] = nv;
        *version = nv.version;
    }
    pthread_mutex_unlock(&c->lock);
    if (st != KP_OK) {
        s_free_ver(&nv);
        return c->up.set_error(in->h, st, "out of memory");
    }
    return KP_OK;
}

static void s_info(const mock_sec *s, const mock_sver *v, kp_secret_info *info)
{
    memset(info, 0, sizeof(*info));
    memcpy(info->name, s->name, sizeof(info->name));
    info->version = v->version;
    info->created = v->created;
    info->size = v->len;
}

kp_status mock_ss_get(void *inst, const char *name, uint32_t version, kp_secret **value,
                      kp_secret_visit_fn visit, void *arg)
{
    mock_inst *in = inst;
    mock_ctx *c = in->ctx;
    kp_status st = KP_ERR_NOT_FOUND;
    kp_secret *out = NULL;
    pthread_mutex_lock(&c->lock);
    mock_sec *s = s_find(c, name);
    for (size_t i = 0; s != NULL && i < s->n && st == KP_ERR_NOT_FOUND; i++) {
        mock_sver *v = &s->v[i];
        if (version != 0 ? v->version != version : i + 1 != s->n)
            continue;
        out = kp_secret_dup(&c->up, v->value, v->len);
        st = out != NULL ? KP_OK : KP_ERR_NOMEM;
        if (st == KP_OK && visit != NULL) {
            kp_secret_info info;
            s_info(s, v, &info);
            st = visit(arg, &info, v->meta, v->nmeta);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (st != KP_OK) {
        c->up.secret_free(out);
        return kp_errorf(&c->up, in->h, st, "mock: no secret %s version %u", name, version);
    }
    *value = out;
    return KP_OK;
}

kp_status mock_ss_list(void *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    mock_inst *in = inst;
    mock_ctx *c = in->ctx;
    kp_status st = KP_OK;
    pthread_mutex_lock(&c->lock);
    bool found = name == NULL;
    for (mock_sec *s = c->secrets; s != NULL && st == KP_OK; s = s->next) {
        if (name != NULL && strcmp(s->name, name) != 0)
            continue;
        found = true;
        for (size_t i = 0; i < s->n && st == KP_OK; i++) {
            kp_secret_info info;
            s_info(s, &s->v[i], &info);
            st = visit(arg, &info, s->v[i].meta, s->v[i].nmeta);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (!found)
        return kp_errorf(&c->up, in->h, KP_ERR_NOT_FOUND, "mock: no secret %s", name);
    return st;
}

void mock_secrets_free(mock_ctx *c)
{
    while (c->secrets != NULL) {
        mock_sec *s = c->secrets;
        c->secrets = s->next;
        for (size_t i = 0; i < s->n; i++)
            s_free_ver(&s->v[i]);
        free(s->v);
        free(s);
    }
}
