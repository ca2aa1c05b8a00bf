#!/bin/sh
# Runs tests/bench/replicate: sh tests/bench/run_replicate.sh BUILD_DIR [CHAINS] [LATENCY_MS]
# [WORKERS]. Replicates CHAINS protectors to 4 in-memory `latency` keystores that sleep LATENCY_MS
# in every provider call, with 1 worker and with WORKERS workers, and prints the apply speedup.
# Defaults: 1000 chains, 20 ms, 16 workers (the sequential apply then takes about 5 minutes).
set -eu
build=$(cd "${1:?usage: run_replicate.sh BUILD_DIR [CHAINS] [LATENCY_MS] [WORKERS]}" && pwd)
exec "$build/bin/bench_replicate" "$build/tests/bench/plugins" "${2:-1000}" "${3:-20}" \
    "${4:-16}"
