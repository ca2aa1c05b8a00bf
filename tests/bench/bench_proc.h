/*
 * What the benchmarks share: timing a whole process (wall and CPU, as the operator would see
 * it) and medians. Test-only.
 */
#ifndef KP_BENCH_PROC_H
#define KP_BENCH_PROC_H

#include <stddef.h>

typedef struct kpb_time {
    double wall_ms; /* from fork to reaped */
    double cpu_ms;  /* user + system of the child */
} kpb_time;

/* Runs argv (argv[0] a path) with stdin, stdout and stderr on /dev/null and times it; 0 when it
 * exited 0, else -1 (with a line on stderr naming the command and how it ended). */
int kpb_spawn(char *const argv[], kpb_time *t);
/* Runs `/bin/sh -c cmd` as kpb_spawn does. */
int kpb_shell(const char *cmd, kpb_time *t);
/* The median of v (n > 0; sorts v). */
double kpb_median(double *v, size_t n);
/* This process's user + system CPU time so far, in ms. */
double kpb_self_cpu_ms(void);

#endif
