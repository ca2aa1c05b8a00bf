/*
 * Collecting KS_LIST and SS_LIST answers. The visitors check what they are handed: a LIST
 * visitor gets the plugin's own full kp_key_info (struct_size at least ABI 1.0's) with
 * NUL-terminated strings. At most S_MAX entries are kept, enough for a shared test store.
 */
#include <stdlib.h>
#include <string.h>

#include "conf_list.h"

#define S_MAX 100000

static conf_entry *s_add(conf_list *l)
{
    if (l->n == S_MAX)
        return NULL;
    if (l->n == l->cap) {
        size_t cap = l->cap == 0 ? 64 : l->cap * 2;
        conf_entry *e = realloc(l->e, cap * sizeof(*e));
        if (e == NULL)
            return NULL;
        l->e = e;
        l->cap = cap;
    }
    conf_entry *e = &l->e[l->n++];
    memset(e, 0, sizeof(*e));
    return e;
}

static kp_status s_key(void *arg, const kp_key_info *info)
{
    conf_list *l = arg;
    if (info == NULL || info->struct_size < sizeof(kp_key_info) ||
        memchr(info->name, '\0', sizeof(info->name)) == NULL ||
        memchr(info->fingerprint, '\0', sizeof(info->fingerprint)) == NULL) {
        if (!l->bad)
            conf_fail(l->r, "KS_LIST visitor got %s",
                      info == NULL ? "a NULL info"
                                   : "an info that is not a full "
                                     "kp_key_info with terminated strings");
        l->bad = true;
        return KP_OK;
    }
    conf_entry *e = s_add(l);
    if (e != NULL) {
        memcpy(e->name, info->name, sizeof(e->name));
        memcpy(e->fpr, info->fingerprint, sizeof(e->fpr));
        e->version = info->version;
    }
    return KP_OK;
}

static kp_status s_secret(void *arg, const kp_secret_info *info, const kp_meta *meta, size_t n)
{
    conf_list *l = arg;
    (void)meta, (void)n;
    if (info == NULL || memchr(info->name, '\0', sizeof(info->name)) == NULL) {
        if (!l->bad)
            conf_fail(l->r, "SS_LIST visitor got a NULL info or an unterminated name");
        l->bad = true;
        return KP_OK;
    }
    conf_entry *e = s_add(l);
    if (e != NULL) {
        memcpy(e->name, info->name, sizeof(e->name));
        e->version = info->version;
        e->size = info->size;
    }
    return KP_OK;
}

kp_status conf_list_keys(conf_run *r, const char *name, conf_list *l)
{
    memset(l, 0, sizeof(*l));
    l->r = r;
    conf_err_clear();
    return CONF_FN(r->kit, ks_list, KP_FN_KS_LIST)(r->inst, name, s_key, l);
}

kp_status conf_list_secrets(conf_run *r, const char *name, conf_list *l)
{
    memset(l, 0, sizeof(*l));
    l->r = r;
    conf_err_clear();
    return CONF_FN(r->kit, ss_list, KP_FN_SS_LIST)(r->inst, name, s_secret, l);
}

static int s_cmp(const void *a, const void *b)
{
    const conf_entry *x = *(const conf_entry *const *)a, *y = *(const conf_entry *const *)b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x < y ? -1 : x > y); /* stable: listing order within a name */
}

void conf_list_check_ascending(conf_run *r, const conf_list *l, const char *call)
{
    const conf_entry **p = malloc((l->n + 1) * sizeof(*p));
    if (p == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        p[i] = &l->e[i];
    qsort(p, l->n, sizeof(*p), s_cmp);
    for (size_t i = 1; i < l->n; i++)
        if (strcmp(p[i]->name, p[i - 1]->name) == 0 && p[i]->version <= p[i - 1]->version) {
            conf_fail(
                r,
                "%s lists version %u of %s after version %u (versions must be strictly ascending)",
                call, p[i]->version, p[i]->name, p[i - 1]->version);
            break;
        }
    free(p);
}

void conf_list_free(conf_list *l)
{
    free(l->e);
    memset(l, 0, sizeof(*l));
}
