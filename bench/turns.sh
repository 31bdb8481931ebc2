#!/usr/bin/env bash
# bench/turns.sh: the "## Turns per second" numbers of docs/PERFORMANCE.md.
#
# For each configuration (sqlite or postgres store; one region alone, two
# gateway replicas on one postgres, or with a standby region replicating
# by journal in sync or async mode) it starts the topology with
# `understudy up`, drives closed-loop agent turns (Responses API with an
# agent_reference, in a conversation, official openai-go SDK) at the
# primary region's URL for DURATION after a 2 s warm-up, and prints turns/s
# and the p50/p99 turn latency. Model servers are modelsims with zero
# latency. PostgreSQL servers (one per region) come from the machine's
# binaries (apt-get install -y postgresql), started by
# internal/testutil/pgtest. See bench/turns/main.go.
#
# Usage: bench/turns.sh [DURATION] | tee results.txt
# DURATION (default 10s); WORKERS (default 8) closed-loop clients;
# CONFIGS (default all) a comma-separated subset, e.g. sqlite,postgres.
#
# Other helpers may load the machine: `uptime` is printed before and after.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${1:-10s}"
WORKERS="${WORKERS:-8}"
CONFIGS="${CONFIGS:-all}"
BIN="$(mktemp -d "${TMPDIR:-/tmp}/understudy-bench.XXXXXX")"
trap 'rm -rf "$BIN"' EXIT

cd "$ROOT"
go build -o "$BIN/understudy" ./cmd/understudy
go build -o "$BIN/turns" ./bench/turns
echo "# $(date -u +%FT%TZ) $(nproc) cores; uptime before: $(uptime)"
"$BIN/turns" -bin "$BIN/understudy" -duration "$DURATION" -workers "$WORKERS" -configs "$CONFIGS"
echo "# uptime after: $(uptime)"
