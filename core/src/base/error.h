/*
 * The lowest layer's error text: the one line of detail every failing core function leaves in
 * its context for the caller (kp_ctx_last_error), per context and per thread. Not installed.
 */
#ifndef KP_BASE_ERROR_H
#define KP_BASE_ERROR_H

#include <keyplane/keyplane.h>

#define KP_ERRBUF (KP_ERROR_MAX + 1) /* detail text, as the ABI promises plugins */

/* Sets this thread's detail text of ctx (one line: control characters become spaces) and
 * returns status, so that a failure reads `return kp__set_error(ctx, st, "...", ...);`. */
kp_status kp__set_error(kp_ctx *ctx, kp_status status, const char *fmt, ...) KP_PRINTF_(3, 4);
/* Empties this thread's detail text of ctx, before a call whose own text is wanted. */
void kp__clear_error(kp_ctx *ctx);
/* Turns control characters into spaces, in place: text from a plugin stays on one line. */
void kp__one_line(char *s);

#endif
