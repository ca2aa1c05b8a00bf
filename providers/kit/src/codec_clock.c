/*
 * The monotonic clock behind every elapsed-time measurement of the tree (keyplane/kit/clock.h):
 * one place that names CLOCK_MONOTONIC, so no copy can drift to the wall clock.
 */
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
