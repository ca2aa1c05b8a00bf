/*
 * Diagnostics: file:line:column plus a message, collected so that one validation run reports
 * every problem in a policy, not only the first, but not a flood of them: past KP__DIAG_MAX
 * they are counted only. Also the "did you mean" of a misspelt name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "policy/diag.h"

struct kp_diag_list {
    kp_diag *items;
    size_t n, cap;
    char *file;
    size_t dropped;          /* diagnostics past KP__DIAG_MAX */
    unsigned dline, dcolumn; /* where the first of them was */
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

static void s_append(kp_diag_list *l, unsigned line, unsigned column, const char *msg)
{
    kp_diag *items = kp__grow(l->items, &l->cap, l->n, sizeof(*items), 8);
    if (items == NULL)
        return;
    l->items = items;
    char *copy = kp__strdup(msg);
    if (copy == NULL)
        return;
    l->items[l->n++] = (kp_diag){l->file, line, column, copy};
}

void kp__diag_add(kp_diag_list *l, unsigned line, unsigned column, const char *fmt, ...)
{
    if (l == NULL)
        return;
    if (l->n >= KP__DIAG_MAX) {
        if (l->dropped++ == 0) {
            l->dline = line;
            l->dcolumn = column;
        }
        return;
    }
    char buf[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    s_append(l, line, column, buf);
}

void kp__diag_finish(kp_diag_list *l)
{
    if (l == NULL || l->dropped == 0)
        return;
    char buf[96];
    snprintf(buf, sizeof(buf), "... and %zu more error%s", l->dropped, l->dropped == 1 ? "" : "s");
    s_append(l, l->dline, l->dcolumn, buf);
    l->dropped = 0;
}

/* Optimal string alignment distance (Levenshtein plus swaps of two neighbours) of a and b, both
 * at most 64 bytes and at most limit apart in length, or limit + 1 when it is more than limit.
 * Only the cells within limit of the diagonal are computed (the others are more than limit),
 * so a comparison costs a few times the length, not its square. */
static size_t s_distance(const char *a, size_t la, const char *b, size_t lb, size_t limit)
{
    const size_t far = limit + 1;
    size_t d[65][66];
    for (size_t i = 0; i <= la; i++) {
        size_t lo = i > limit ? i - limit : 0, hi = i + limit < lb ? i + limit : lb;
        if (lo > 0)
            d[i][lo - 1] = far;
        d[i][hi + 1] = far;
        for (size_t j = lo; j <= hi; j++) {
            if (i == 0 || j == 0) {
                d[i][j] = i + j;
                continue;
            }
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best < far ? best : far;
        }
    }
    return d[la][lb];
}

const char *kp__diag_suggest(const char *word, const char *const *candidates, size_t n)
{
    size_t lw = word != NULL ? strlen(word) : 0;
    if (lw == 0 || lw > 64)
        return NULL;
    /* close enough: 1 edit for a short word, 2 from 6 letters on, never the whole word */
    size_t limit = lw < 6 ? 1 : 2;
    const char *best = NULL;
    size_t best_d = limit + 1;
    bool tie = false;
    for (size_t i = 0; i < n; i++) {
        const char *c = candidates[i];
        size_t lc = c != NULL ? strlen(c) : 0;
        if (lc == 0 || lc > 64 || (lc > lw ? lc - lw : lw - lc) > limit)
            continue;
        size_t dist = s_distance(word, lw, c, lc, limit);
        if (dist == 0 || dist > limit || dist >= lc || dist > best_d)
            continue;
        if (dist == best_d) {
            tie = tie || strcmp(best, c) != 0;
            continue;
        }
        best = c;
        best_d = dist;
        tie = false;
    }
    /* two names as close (region-c: region-a or region-b?) are no suggestion */
    return tie ? NULL : best;
}

bool kp__diag_full(const kp_diag_list *l)
{
    return l != NULL && l->n >= KP__DIAG_MAX;
}

const char *kp__diag_hint(const kp_diag_list *l, char *buf, size_t len, const char *word,
                          const char *const *candidates, size_t n)
{
    const char *s = kp__diag_full(l) ? NULL : kp__diag_suggest(word, candidates, n);
    if (s != NULL)
        snprintf(buf, len, "; did you mean '%s'?", s);
    else if (len > 0)
        buf[0] = '\0';
    return buf;
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
