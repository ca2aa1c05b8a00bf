/*
 * The times AWS answers carry: ISO 8601 in UTC (STS Credentials.Expiration, the container and
 * instance-metadata credentials' Expiration), with or without fractions of a second.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aws_internal.h"

time_t kp_aws_iso8601(const char *s)
{
    int y, mo, d, h, mi, sec, used = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
        return -1;
    const char *rest = s + used;
    if (*rest == '.') /* fractions of a second */
        rest += 1 + strspn(rest + 1, "0123456789");
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
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
