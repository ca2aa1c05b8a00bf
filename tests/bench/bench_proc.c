/*
 * Whole-process timing for the benchmarks: fork, exec, wait4 (for the child's CPU time).
 */
#include "bench_proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <keyplane/kit/clock.h>

static double s_tv_ms(struct timeval tv)
{
    return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

int kpb_spawn(char *const argv[], kpb_time *t)
{
    double t0 = kpk_clock_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            if (getenv("KP_BENCH_STDERR") == NULL)
                dup2(null, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) {
        perror("wait4");
        return -1;
    }
    t->wall_ms = kpk_clock_ms() - t0;
    t->cpu_ms = s_tv_ms(ru.ru_utime) + s_tv_ms(ru.ru_stime);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench: %s %s: %s %d\n", argv[0], argv[1] != NULL ? argv[1] : "",
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -1;
    }
    return 0;
}

int kpb_shell(const char *cmd, kpb_time *t)
{
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL};
    return kpb_spawn(argv, t);
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double kpb_median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), s_cmp);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double kpb_self_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return s_tv_ms(ru.ru_utime) + s_tv_ms(ru.ru_stime);
}
