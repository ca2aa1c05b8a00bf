/*
 * tests/bench/cli: two commands timed as whole processes, side by side in the same run (each
 * round runs both, alternating which goes first), with the median wall and CPU time of each and
 * the ratio of the second to the first. The runners give it the commands: status with and
 * without an HSM escrow (run_status.sh), `keyplane unwrap` against `openssl pkeyutl -decrypt`
 * (run_unwrap_cli.sh).
 *
 * Usage: bench_cli ROUNDS BASE_LABEL BASE_COMMAND LABEL COMMAND [TARGET]
 * (commands run with /bin/sh -c; TARGET, e.g. "at most 1.5x", is printed beside the ratio).
 * Exit 1 when a command fails; speed never fails it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench_proc.h"

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bench_cli ROUNDS BASE_LABEL BASE_COMMAND LABEL COMMAND [TARGET]\n");
        return 2;
    }
    int rounds = atoi(argv[1]);
    if (rounds < 1)
        rounds = 1;
    const char *blabel = argv[2], *bcmd = argv[3], *label = argv[4], *cmd = argv[5];
    double *bw = calloc((size_t)rounds, sizeof(double)),
           *bc = calloc((size_t)rounds, sizeof(double));
    double *w = calloc((size_t)rounds, sizeof(double)), *c = calloc((size_t)rounds, sizeof(double));
    if (bw == NULL || bc == NULL || w == NULL || c == NULL)
        return 1;
    /* One untimed run of each: caches warm alike. */
    kpb_time b, t;
    if (kpb_shell(bcmd, &b) != 0 || kpb_shell(cmd, &t) != 0)
        return 1;
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0 ? kpb_shell(bcmd, &b) != 0 || kpb_shell(cmd, &t) != 0
                       : kpb_shell(cmd, &t) != 0 || kpb_shell(bcmd, &b) != 0)
            return 1;
        bw[r] = b.wall_ms, bc[r] = b.cpu_ms, w[r] = t.wall_ms, c[r] = t.cpu_ms;
    }
    double mbw = kpb_median(bw, (size_t)rounds), mbc = kpb_median(bc, (size_t)rounds);
    double mw = kpb_median(w, (size_t)rounds), mc = kpb_median(c, (size_t)rounds);
    printf("%s: %.1f ms (%.1f ms CPU) | %s: %.1f ms (%.1f ms CPU) | ratio %.2fx wall, %.2fx CPU"
           "%s%s%s (median of %d rounds)\n",
           blabel, mbw, mbc, label, mw, mc, mw / mbw, mc / mbc, argc > 6 ? " (target: " : "",
           argc > 6 ? argv[6] : "", argc > 6 ? ")" : "", rounds);
    free(bw), free(bc), free(w), free(c);
    return 0;
}
