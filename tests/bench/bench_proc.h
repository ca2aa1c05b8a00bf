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
/* The store key text (64 hex digits and a NUL) of the format-2 file store at dir, as
 * `openssl enc -d -aes-256-cbc -pbkdf2 -md sha256` gives it (docs/file-plugin.md): every
 * private.p8 of the store opens with it. 0, or -1 when it cannot be had. */
int kpb_store_key(const char *dir, const char *pass, char sk[65]);
/* The private key in path (a store's private.p8) opened with the store key sk; NULL when not. */
struct evp_pkey_st *kpb_store_p8(const char *path, const char *sk);
/* This process's user + system CPU time so far, in ms. */
double kpb_self_cpu_ms(void);

#endif
