/* What matrix.c shares with the chain layer's other files: which version a chain without an
 * active version wraps with, the rule status's due date and rotate's first document both go by.
 * Not installed. */
#ifndef KP_CHAIN_MATRIX_H
#define KP_CHAIN_MATRIX_H

#include "chain/state.h"

/* The version wrap uses while the chain has no active version (never rotated): the newest
 * confirmed version that every reachable keystore holding any version of the chain holds with
 * the reference fingerprint, leaving out versions s (when found) records as neither active nor
 * previous (staged, retired, abandoned). 0 when there is none. */
uint32_t kp__unrotated_version(const kp__discovery *d, const kp__chain_state *s, bool found);

#endif
