/*
 * keyplane provider kit: a plugin's parameter descriptions (kp_param_desc of provider.h) read
 * one way by everything that checks params against them: the core's policy loader and the
 * conformance kit. Part of keyplane-kit-codec (no library beyond libc).
 */
#ifndef KEYPLANE_KIT_PARAMS_H
#define KEYPLANE_KIT_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include <keyplane/provider.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The description of the param called name in descs (ended by a NULL name; descs may be
 *  NULL), or NULL when there is none. */
const kp_param_desc *kpk_param_desc(const kp_param_desc *descs, const char *name);

/** The names descs accepts as "a, b, c" ("none" when it has none) into buf (len bytes; what
 *  does not fit ends in "...", never a cut name), for a message that refuses an unknown
 *  param. */
void kpk_param_names(const kp_param_desc *descs, char *buf, size_t len);

/** The one spelling of a boolean, for policy values, plugin params and command options alike:
 *  true/yes/on and false/no/off in any letter case. Sets *out and returns true when v is one of
 *  them; false (and *out untouched) for anything else, NULL included. */
bool kpk_param_bool(const char *v, bool *out);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_KIT_PARAMS_H */
