/*
 * Building a list of diagnostics (kp_diag_list, read through policy.h): one per problem, each
 * with its file, line and column. Not installed.
 */
#ifndef KP_POLICY_DIAG_H
#define KP_POLICY_DIAG_H

#include "base/error.h"

kp_diag_list *kp__diag_list_new(const char *file);
void kp__diag_add(kp_diag_list *l, unsigned line, unsigned column, const char *fmt, ...)
    KP_PRINTF_(4, 5);

#endif
