/*
 * tests/bench/replicate: wall time of kp_plan_apply replicating CHAINS protectors to 4 replicas
 * when every provider call takes LATENCY_MS (the test-only `latency` plugin sleeps that long),
 * sequentially (1 worker) and with WORKERS workers, in the same run, on fresh in-memory stores
 * each time. Prints the speedup; it is a measurement, not a test, so it never fails on speed.
 * It fails only when an apply fails: an action failed, or a re-plan still finds work, or the
 * first chain's replicas cannot prove they unwrap with the key.
 *
 * Per chain, apply makes 1 CREATE (list + create in r1) and 3 COPYs (list source, list target,
 * export, import): 14 provider calls. kp_plan_make lists each of the 4 keystores of each chain,
 * one chain after another (discovery is sequential), so it is timed apart from apply.
 *
 * A third run applies with WORKERS workers and a journal (kp_apply_opts.journal, in the
 * directory KP_BENCH_JOURNAL_DIR names, default the current one: a real disk, as the state
 * directory is, so its fsyncs cost what they cost there), against the parallel run without one:
 * the journal's cost. With LATENCY_MS 0 the actions are nearly free, so that cost is all there
 * is to see (issue 13: "+43% wall at 4,000 fast actions" when every action was fsynced alone).
 *
 * Usage: bench_replicate PLUGIN_DIR [CHAINS=1000] [LATENCY_MS=20] [WORKERS=16]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keyplane/keyplane.h>

#include "kp_test.h"

#define S_REPLICAS 4

typedef struct s_result {
    double plan_s, apply_s, replan_s;
    size_t actions, findings, failed, replan_actions, replan_findings;
    kp_status apply_st;
    int verified; /* the first chain's matrix, with proof, is all OK */
    int ok;
} s_result;

/* A policy of 4 latency instances on stores fresh to this run, and chains c0001... */
static int s_write_policy(char *path, size_t chains, long latency, int run)
{
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fprintf(f, "version: 1\nproviders:\n");
    for (int r = 1; r <= S_REPLICAS; r++)
        fprintf(f, "  r%d: {plugin: latency, store: r%d-run%d, latency_ms: %ld}\n", r, r, run,
                latency);
    fprintf(f, "chains:\n");
    for (size_t c = 1; c <= chains; c++)
        fprintf(f,
                "  c%04zu:\n"
                "    protector: {type: rsa, bits: 2048, origin: r1, exportable: true}\n"
                "    replicas: [r1, r2, r3, r4]\n",
                c);
    return fclose(f) == 0 ? 0 : -1;
}

/* One run: plan, apply with workers, re-plan, verify the first chain. */
static int s_run(kp_ctx *ctx, size_t chains, long latency, unsigned workers, int run,
                 const char *journal, s_result *res)
{
    char path[] = "/tmp/kp-bench-replicate-XXXXXX";
    kp_policy *pol = NULL;
    kp_plan *plan = NULL, *again = NULL;
    kp_matrix *m = NULL;

    memset(res, 0, sizeof(*res));
    if (s_write_policy(path, chains, latency, run) != 0) {
        fprintf(stderr, "bench_replicate: cannot write a policy in /tmp\n");
        return -1;
    }
    kp_status st = kp_policy_load(ctx, path, &pol, NULL);
    unlink(path);
    if (st != KP_OK) {
        fprintf(stderr, "bench_replicate: policy: %s\n", kp_ctx_last_error(ctx));
        return -1;
    }

    double t0 = kpk_clock_ms();
    st = kp_plan_make(ctx, pol, NULL, &plan);
    res->plan_s = (kpk_clock_ms() - t0) / 1e3;
    if (st != KP_OK) {
        fprintf(stderr, "bench_replicate: plan: %s\n", kp_ctx_last_error(ctx));
        kp_policy_free(pol);
        return -1;
    }
    res->actions = kp_plan_action_count(plan);
    res->findings = kp_plan_finding_count(plan);
    if (res->findings > 0)
        fprintf(stderr, "bench_replicate: run %d: finding on %s: %s\n", run,
                kp_plan_finding(plan, 0)->instance, kp_plan_finding(plan, 0)->detail);

    kp_apply_opts opts = {sizeof(opts), workers, journal, NULL, NULL};
    t0 = kpk_clock_ms();
    res->apply_st = kp_plan_apply(ctx, pol, plan, &opts, &res->failed);
    res->apply_s = (kpk_clock_ms() - t0) / 1e3;
    if (res->apply_st != KP_OK)
        fprintf(stderr, "bench_replicate: run %d: apply: %s\n", run, kp_ctx_last_error(ctx));

    t0 = kpk_clock_ms();
    st = kp_plan_make(ctx, pol, NULL, &again);
    res->replan_s = (kpk_clock_ms() - t0) / 1e3;
    if (st == KP_OK) {
        res->replan_actions = kp_plan_action_count(again);
        res->replan_findings = kp_plan_finding_count(again);
    } else {
        fprintf(stderr, "bench_replicate: run %d: re-plan: %s\n", run, kp_ctx_last_error(ctx));
    }

    st = kp_chain_matrix(ctx, pol, "c0001", 1, &m);
    res->verified = st == KP_OK && kp_matrix_ok(m) && kp_matrix_instance_count(m) == S_REPLICAS &&
                    kp_matrix_version_count(m) == 1;

    res->ok = res->apply_st == KP_OK && res->failed == 0 && res->findings == 0 &&
              res->actions == chains * S_REPLICAS && again != NULL && res->replan_actions == 0 &&
              res->replan_findings == 0 && res->verified;
    kp_matrix_free(m);
    kp_plan_free(again);
    kp_plan_free(plan);
    kp_policy_free(pol);
    return 0;
}

static void s_print(const char *label, unsigned workers, const s_result *r)
{
    printf("%-12s %7u %9.2f %9.2f %9.2f %8zu %7zu %8zu %7s\n", label, workers, r->plan_s,
           r->apply_s, r->replan_s, r->actions, r->failed, r->replan_actions,
           r->verified ? "ok" : "FAILED");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long chains, latency, workers;
    if (argc < 2 || kp_test_arg(argc, argv, 2, 1000, 1, 99999, &chains) != 0 ||
        kp_test_arg(argc, argv, 3, 20, 0, 10000, &latency) != 0 ||
        kp_test_arg(argc, argv, 4, 16, 1, 256, &workers) != 0) {
        fprintf(stderr, "usage: %s PLUGIN_DIR [CHAINS=1000] [LATENCY_MS=20] [WORKERS=16]\n",
                argv[0]);
        return 2;
    }
    kp_ctx *ctx = NULL;
    kp_status st = kp_ctx_new(&ctx);
    if (st == KP_OK)
        st = kp_ctx_add_plugin_dir(ctx, argv[1]);
    if (st != KP_OK) {
        fprintf(stderr, "bench_replicate: setup: %s\n", kp_ctx_last_error(ctx));
        kp_ctx_free(ctx);
        return 1;
    }

    printf("replicate bench: %ld chains x %d replicas, %ld ms injected latency per provider "
           "call\n",
           chains, S_REPLICAS, latency);
    printf("(plan and re-plan: discovery by 8 workers; apply: %d actions per chain; verify: chain "
           "c0001 proved in every replica)\n",
           S_REPLICAS);
    printf("%-12s %7s %9s %9s %9s %8s %7s %8s %7s\n", "run", "workers", "plan_s", "apply_s",
           "replan_s", "actions", "failed", "replan", "verify");
    fflush(stdout);

    s_result seq, par, jour;
    int bad = s_run(ctx, (size_t)chains, latency, 1, 1, NULL, &seq) != 0;
    if (!bad)
        s_print("sequential", 1, &seq);
    bad = bad || s_run(ctx, (size_t)chains, latency, (unsigned)workers, 2, NULL, &par) != 0;
    if (!bad) {
        s_print("parallel", (unsigned)workers, &par);
        printf("apply speedup, %ld workers vs sequential: %.2fx (%.2f s -> %.2f s)\n", workers,
               par.apply_s > 0 ? seq.apply_s / par.apply_s : 0.0, seq.apply_s, par.apply_s);
    }
    const char *dir = getenv("KP_BENCH_JOURNAL_DIR");
    char journal[4096];
    snprintf(journal, sizeof(journal), "%s/kp-bench-journal-%ld.jsonl",
             dir != NULL && dir[0] != '\0' ? dir : ".", (long)getpid());
    bad = bad || s_run(ctx, (size_t)chains, latency, (unsigned)workers, 3, journal, &jour) != 0;
    if (!bad) {
        s_print("journal", (unsigned)workers, &jour);
        FILE *jf = fopen(journal, "r");
        size_t lines = 0;
        for (int c; jf != NULL && (c = fgetc(jf)) != EOF;)
            lines += c == '\n';
        if (jf != NULL)
            fclose(jf);
        printf("apply with a journal (%zu lines in %s) vs without, %ld workers: %.2fx (%.2f s -> "
               "%.2f s)\n",
               lines, journal, workers, par.apply_s > 0 ? jour.apply_s / par.apply_s : 0.0,
               par.apply_s, jour.apply_s);
        if (lines < jour.actions) {
            fprintf(stderr, "bench_replicate: the journal holds %zu lines for %zu actions\n", lines,
                    jour.actions);
            bad = 1;
        }
    }
    unlink(journal);
    kp_ctx_free(ctx);
    if (!bad && (!seq.ok || !par.ok || !jour.ok)) {
        fprintf(stderr, "bench_replicate: an apply failed (failed actions, work left after it, "
                        "or a replica that cannot unwrap)\n");
        bad = 1;
    }
    return bad;
}
