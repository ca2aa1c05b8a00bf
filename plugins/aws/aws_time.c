/*
 * The times AWS answers carry: ISO 8601 in UTC (STS Credentials.Expiration, the container and
 * instance-metadata credentials' Expiration), with or without fractions of a second.
 */
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "aws_internal.h"

/* Exactly n digits at *p (moved past them) into *out; false when they are not there. */
static bool s_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return false;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return true;
}

/* The separator c at *p (moved past it). */
static bool s_sep(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

time_t kp_aws_iso8601(const char *s)
{
    int y, mo, d, h, mi, sec;
    const char *p = s;
    if (s == NULL || !s_digits(&p, 4, &y) || !s_sep(&p, '-') || !s_digits(&p, 2, &mo) ||
        !s_sep(&p, '-') || !s_digits(&p, 2, &d) || !s_sep(&p, 'T') || !s_digits(&p, 2, &h) ||
        !s_sep(&p, ':') || !s_digits(&p, 2, &mi) || !s_sep(&p, ':') || !s_digits(&p, 2, &sec))
        return -1;
    if (*p == '.') /* fractions of a second */
        p += 1 + strspn(p + 1, "0123456789");
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    return timegm(&tm);
}
