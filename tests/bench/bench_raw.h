/*
 * What the benchmarks against raw libcurl share (bench_azure, bench_aws): the thread's CPU time,
 * percentiles and the overhead ratio, and a curl handle with the TLS and protocol options
 * keyplane's transport uses, collecting the answer's body.
 */
#ifndef KP_BENCH_RAW_H
#define KP_BENCH_RAW_H

#include <stddef.h>

#include <curl/curl.h>

/** CPU time of this thread (user and system), ms: what the client itself spends. */
double kp_bench_cpu_ms(void);

typedef struct kp_bench_stats {
    double p50, p90, p99, mean;
} kp_bench_stats;
/** Nearest-rank percentiles and the mean of n samples (sorts them). */
kp_bench_stats kp_bench_summary(double *v, size_t n);
/** (kp / raw - 1) * 100, 0 for a raw of 0. */
double kp_bench_overhead(double kp, double raw);

/** An answer's body, NUL-terminated; free p. */
typedef struct kp_bench_buf {
    char *p;
    size_t len, cap;
} kp_bench_buf;
/** A fresh handle: full TLS verification against ca, HTTP/1.1, keep-alive, the User-Agent ua,
 *  no proxy for loopback, the body into rx. NULL when curl cannot make one. */
CURL *kp_bench_curl(const char *ca, const char *ua, kp_bench_buf *rx);

#endif
