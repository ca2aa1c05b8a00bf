/*
 * The shared parts of the benchmarks against raw libcurl (bench_raw.h).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_raw.h"

double kp_bench_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

kp_bench_stats kp_bench_summary(double *v, size_t n)
{
    kp_bench_stats s = {0, 0, 0, 0};
    if (n == 0)
        return s;
    qsort(v, n, sizeof(*v), s_cmp);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    s.p50 = v[(n * 50 + 99) / 100 - 1]; /* the ceil(n * p)-th smallest */
    s.p90 = v[(n * 90 + 99) / 100 - 1];
    s.p99 = v[(n * 99 + 99) / 100 - 1];
    s.mean = sum / (double)n;
    return s;
}

double kp_bench_overhead(double kp, double raw)
{
    return raw > 0 ? (kp / raw - 1.0) * 100.0 : 0.0;
}

static size_t s_on_body(char *data, size_t size, size_t n, void *arg)
{
    kp_bench_buf *b = arg;
    size_t total = size * n;
    if (b->len + total + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 8192;
        while (cap < b->len + total + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, total);
    b->len += total;
    b->p[b->len] = '\0';
    return total;
}

CURL *kp_bench_curl(const char *ca, const char *ua, kp_bench_buf *rx)
{
    CURL *c = curl_easy_init();
    if (c == NULL)
        return NULL;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_CAPATH, (char *)NULL);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1,169.254.169.254");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, rx);
    return c;
}
