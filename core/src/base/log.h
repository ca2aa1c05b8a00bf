/*
 * The context's log: one line per message on the stream kp_ctx_set_log names. Not installed.
 */
#ifndef KP_BASE_LOG_H
#define KP_BASE_LOG_H

#include "base/error.h"

void kp__log(kp_ctx *ctx, kp_log_level level, const char *fmt, ...) KP_PRINTF_(3, 4);

#endif
