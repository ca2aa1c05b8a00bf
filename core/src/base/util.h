/*
 * Small helpers every layer uses: name checks, string copies, growing arrays, durations, and
 * the envelope's one spelling of base64. Not installed.
 */
#ifndef KP_BASE_UTIL_H
#define KP_BASE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keyplane/keyplane.h>

/* The policy's name rule (instance and chain names): [a-z0-9_-], starting with a letter or
 * digit, 1..max characters. Key names in stores follow the ABI's rule (kpk_key_name_valid). */
bool kp__name_valid(const char *s, size_t max);
char *kp__strdup(const char *s);
/** Makes s one printable line in place: C0 controls, DEL and the C1 controls in UTF-8 (0xc2
 *  0x80-0x9f) become '?'; other bytes stay. */
void kp__printable(char *s);
/* "35d", "12h", "52w", "1y" (s, m, h, d, w, y) into seconds. */
/* The longest duration a policy may give (1000y): a time plus it cannot overflow. */
#define KP__DURATION_MAX ((int64_t)1000 * 365 * 86400)
/* "35d", "12h", "52w", "1y", ... into seconds; KP_ERR_INVALID_ARG when malformed or longer
 * than KP__DURATION_MAX. */
kp_status kp__parse_duration(const char *s, int64_t *seconds);
/* Room for one more element after n in an array of capacity *cap (growing it by doubling,
 * first elements the first time): the array to use (items itself or a new one, *cap updated),
 * or NULL with items and *cap untouched when memory runs out. */
void *kp__grow(void *items, size_t *cap, size_t n, size_t elem, size_t first);
/* Concurrent workers of plan and apply: asked (0: KP__WORKERS_DEFAULT), at most
 * KP__WORKERS_MAX. The CLI's --workers takes 1..KP__WORKERS_MAX. */
#define KP__WORKERS_DEFAULT 8
#define KP__WORKERS_MAX 256
unsigned kp__workers(unsigned asked);
/* The strict decoder of the envelope's base64: padded standard base64 only, as kpk_b64_encode_alloc
 * writes it (url = false). */
kp_status kp__b64_decode(const char *in, uint8_t **out, size_t *outlen);

#endif
