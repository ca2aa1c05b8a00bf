/*
 * Building a list of diagnostics (kp_diag_list, read through policy.h): one per problem, each
 * with its file, line and column, at most KP__DIAG_MAX of them and then one "... and N more";
 * and the "did you mean" a diagnostic about a misspelt name offers. Not installed.
 */
#ifndef KP_POLICY_DIAG_H
#define KP_POLICY_DIAG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* The most diagnostics one load keeps; the rest are counted, and kp__diag_finish says how
 * many there were. */
#define KP__DIAG_MAX 50

kp_diag_list *kp__diag_list_new(const char *file);
void kp__diag_add(kp_diag_list *l, unsigned line, unsigned column, const char *fmt, ...)
    KP_PRINTF_(4, 5);
/* Ends the list: when diagnostics were left out, one last "... and N more errors" at the
 * position of the first one left out. */
void kp__diag_finish(kp_diag_list *l);

/* The one of the n candidates word is most likely a misspelling of (a few letters changed,
 * added, left out or swapped), or NULL when none is close enough or two are as close. */
const char *kp__diag_suggest(const char *word, const char *const *candidates, size_t n);
/* Whether l holds KP__DIAG_MAX diagnostics already: one more is only counted. */
bool kp__diag_full(const kp_diag_list *l);
/* "; did you mean 'NAME'?" with kp__diag_suggest's NAME, written into buf, or "" when it has
 * none or the diagnostic it ends would only be counted (l is full): the end of a diagnostic
 * about an unknown word. Returns buf. */
const char *kp__diag_hint(const kp_diag_list *l, char *buf, size_t len, const char *word,
                          const char *const *candidates, size_t n);

#endif
