/*
 * keyplane provider kit: the one monotonic clock of the tree. Timeouts, retry budgets, probes
 * and benchmarks measure elapsed time with it, never with the wall clock, which an operator or
 * NTP may step; and the one way a span of time is written for people. Part of
 * keyplane-kit-codec (no library beyond libc).
 */
#ifndef KEYPLANE_KIT_CLOCK_H
#define KEYPLANE_KIT_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Nanoseconds on CLOCK_MONOTONIC since an unspecified start; only differences mean anything. */
uint64_t kpk_clock_ns(void);

/** kpk_clock_ns() in milliseconds, as a double for reports (elapsed = end - start). */
double kpk_clock_ms(void);

/** A span of seconds as people read it, in its largest whole unit, rounded down: "35 days",
 *  "1 hour", "59 seconds" (negative spans count as 0). */
void kpk_span_text(int64_t secs, char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
