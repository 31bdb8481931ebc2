#!/usr/bin/env bash
# bench/replication.sh: the replication numbers of docs/PERFORMANCE.md
# ("## Replication"), from the Go benchmarks in test/e2e/async_test.go.
#
#   BenchmarkReplicationWriteLatency  one-item conversation writes to a sync
#       and an async primary, interleaved, with 0 and 20 ms one-way delay on
#       the link to the standby (a linkproxy in front of the standby's
#       gateway): p50/p99 per mode, link-rtt (a 64-byte echo across a
#       second linkproxy with the same delay) and sync-extra-ms =
#       p50(sync) - p50(async) - p50(link-rtt).
#   BenchmarkReplicationThroughput    async: lag under a steady 1,000
#       events/s load, and the rate a cut-off standby catches up at.
#
# Usage: bench/replication.sh [ITERATIONS] | tee results.txt
# ITERATIONS (default 500) is -benchtime=Nx: writes per mode for the latency
# benchmark, 20-item requests for the throughput ones. COUNT (default 1)
# repeats each benchmark.
#
# Before the benchmarks it prints the machine's load and the latency of one
# synchronous 4 KiB write (dd oflag=dsync), which bounds what a durable
# apply on the standby costs: both stores run sqlite with synchronous=FULL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-500}"
COUNT="${COUNT:-1}"
PROBE="$(mktemp "${TMPDIR:-/tmp}/fsync-probe.XXXXXX")"
trap 'rm -f "$PROBE"' EXIT

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
secs="$(dd if=/dev/zero of="$PROBE" bs=4k count=200 oflag=dsync 2>&1 | sed -n 's/.* copied, \([0-9.]*\) s.*/\1/p')"
echo "# synchronous 4 KiB write (dd oflag=dsync, 200 writes): $(awk -v s="$secs" 'BEGIN{printf "%.2f ms", s*1000/200}') each"
cd "$ROOT"
go test -run '^$' -bench 'BenchmarkReplication(WriteLatency|Throughput)' -benchtime="${N}x" -count="$COUNT" ./test/e2e/
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
