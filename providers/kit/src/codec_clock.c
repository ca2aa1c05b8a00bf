/*
 * The monotonic clock behind every elapsed-time measurement of the tree (keyplane/kit/clock.h):
 * one place that names CLOCK_MONOTONIC, so no copy can drift to the wall clock; and spans of
 * time in days, hours, minutes or seconds for messages (the core's and the command's alike).
 */
#include <stdio.h>
#include <time.h>

#include <keyplane/kit/clock.h>

uint64_t kpk_clock_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer; 0 is never a plausible reading */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double kpk_clock_ms(void)
{
    return (double)kpk_clock_ns() / 1e6;
}

void kpk_span_text(int64_t secs, char *out, size_t len)
{
    static const struct {
        int64_t n;
        const char *unit;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    if (secs < 0)
        secs = 0;
    size_t u = 0;
    while (u + 1 < sizeof(units) / sizeof(units[0]) && secs < units[u].n)
        u++;
    long long n = (long long)(secs / units[u].n);
    snprintf(out, len, "%lld %s%s", n, units[u].unit, n == 1 ? "" : "s");
}
