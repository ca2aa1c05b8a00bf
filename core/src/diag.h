#ifndef KP_DIAG_H
#define KP_DIAG_H

#include "internal.h"

kp_diag_list *kp__diag_list_new(const char *file);
void kp__diag_add(kp_diag_list *l, unsigned line, unsigned column, const char *fmt, ...)
    KP_PRINTF(4, 5);

#endif
