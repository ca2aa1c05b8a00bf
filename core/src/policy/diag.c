/*
 * Diagnostics: file:line:column plus a message, collected so that one validation run reports
 * every problem in a policy, not only the first.
 */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "policy/diag.h"

struct kp_diag_list {
    kp_diag *items;
    size_t n, cap;
    char *file;
};

kp_diag_list *kp__diag_list_new(const char *file)
{
    kp_diag_list *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->file = kp__strdup(file);
    if (l->file == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

void kp__diag_add(kp_diag_list *l, unsigned line, unsigned column, const char *fmt, ...)
{
    if (l == NULL)
        return;
    kp_diag *items = kp__grow(l->items, &l->cap, l->n, sizeof(*items), 8);
    if (items == NULL)
        return;
    l->items = items;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char *msg = kp__strdup(buf);
    if (msg == NULL)
        return;
    l->items[l->n++] = (kp_diag){l->file, line, column, msg};
}

size_t kp_diag_count(const kp_diag_list *list)
{
    return list != NULL ? list->n : 0;
}

const kp_diag *kp_diag_get0(const kp_diag_list *list, size_t i)
{
    return list != NULL && i < list->n ? &list->items[i] : NULL;
}

void kp_diag_list_free(kp_diag_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        free((char *)list->items[i].message);
    free(list->items);
    free(list->file);
    free(list);
}
