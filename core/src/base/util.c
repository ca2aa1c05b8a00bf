/*
 * Small helpers: name checks, string copies, growing arrays, durations, the envelope's one
 * spelling of base64, and kp_free, the one way callers give back what the library allocated for
 * them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "base/util.h"

void kp_free(void *p)
{
    free(p);
}

bool kp__name_valid(const char *s, size_t max)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > max)
        return false;
    if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (!(islower(c) || isdigit(c) || c == '-' || c == '_'))
            return false;
    }
    return true;
}

char *kp__strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void *kp__grow(void *items, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap)
        return items;
    size_t grown = *cap == 0 ? first : *cap * 2;
    if (grown > SIZE_MAX / elem)
        return NULL;
    void *more = realloc(items, grown * elem);
    if (more != NULL)
        *cap = grown;
    return more;
}

kp_status kp__parse_duration(const char *s, int64_t *seconds)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return KP_ERR_INVALID_ARG;
    errno = 0;
    char *end = NULL;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || n < 0 || end == NULL || end[0] == '\0' || end[1] != '\0')
        return KP_ERR_INVALID_ARG;
    int64_t unit;
    switch (end[0]) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    case 'w':
        unit = 7 * 86400;
        break;
    case 'y':
        unit = 365 * 86400;
        break;
    default:
        return KP_ERR_INVALID_ARG;
    }
    /* capped (KP__DURATION_MAX) so that a time plus any duration stays far inside int64_t: an
     * overflowing retention would wrap negative and let `retire` through at once */
    if (n > KP__DURATION_MAX / unit)
        return KP_ERR_INVALID_ARG;
    *seconds = (int64_t)n * unit;
    return KP_OK;
}

/* The envelope's base64: the kit's decoder, taking only the one spelling the kit's encoder
 * writes (padded standard base64), so that one envelope has one spelling: the kit's decoder also
 * takes base64url and unpadded text, and re-encoding and comparing refuses those. */
kp_status kp__b64_decode(const char *in, uint8_t **out, size_t *outlen)
{
    size_t len = strlen(in);
    if (len % 4 != 0)
        return KP_ERR_INVALID_ARG;
    uint8_t *buf = NULL;
    size_t got = 0;
    char *again = NULL;
    kp_status st = kpk_b64_decode_alloc(in, len, &buf, &got);
    if (st == KP_OK)
        st = kpk_b64_encode_alloc(buf, got, false, &again);
    if (st == KP_OK && strcmp(again, in) != 0)
        st = KP_ERR_INVALID_ARG;
    free(again);
    if (st == KP_OK) {
        *out = buf;
        *outlen = got;
    } else {
        free(buf);
    }
    return st;
}

unsigned kp__workers(unsigned asked)
{
    if (asked == 0)
        return KP__WORKERS_DEFAULT;
    return asked < KP__WORKERS_MAX ? asked : KP__WORKERS_MAX;
}

void kp__printable(char *s)
{
    for (unsigned char *c = (unsigned char *)s; *c != '\0'; c++) {
        if (*c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) { /* UTF-8 of a C1 control */
            c[0] = '?';
            *++c = '?';
        } else if (*c < 0x20 || *c == 0x7f) {
            *c = '?';
        }
    }
}
