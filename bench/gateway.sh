#!/usr/bin/env bash
# bench/gateway.sh: the latency the regional gateway adds, measured in one
# run side by side with HAProxy and nginx by the shared anchors harness
# (../shared/bench: fakeoai backend on 127.0.0.1:18080, open-loop loadgen,
# haproxy :18081, nginx :18082).
#
# The gateway under test ("gw") serves deployment gpt-4o-mini with one
# `openai` backend, fakeoai at http://127.0.0.1:18080 (started by
# anchors.sh; the gateway does not need it at boot), access log off,
# listening on a free loopback port (topology listen 127.0.0.1:0; the URL
# comes from its ready line).
#
# Usage: bench/gateway.sh [more anchors NAME=URL targets] | tee results.txt
# Environment: the anchors knobs RATES ("500 1000"), DURATION_S (10),
# ROUNDS (3), WARMUP_S (1); ANCHORS (default: <repo>/../shared/bench);
# GW_ENV, extra environment for the gateway process only (e.g.
# "GOMAXPROCS=1 GOGC=200"); GW_VARIANTS, more gateway processes with their
# own environment, run as extra targets gw2, gw3, ... (e.g.
# GW_VARIANTS="GOMAXPROCS=1;GOGC=400"); GW_PROCS, the topology's
# gateway.procs (unset or 0: Go's default GOMAXPROCS; e.g. GW_PROCS=1 for
# parity with the single-threaded haproxy and nginx anchors). GW_PROCS
# applies to gw and to each variant and overrides a GOMAXPROCS in GW_ENV or
# GW_VARIANTS; each target's "# name:" line shows the GOMAXPROCS (and CPUs)
# its ready line reported. GW_CPUS, the topology's gateway.cpus as a
# comma-separated list (e.g. GW_CPUS=1: every thread of the gateway on CPU
# 1), for gw and each variant; a variant may carry its own as a cpus=LIST
# word, which is not passed to the environment (e.g. GW_VARIANTS="cpus=1"
# runs a pinned gateway beside an unpinned one). STALLS_S (3): seconds
# bench/jitter measures the machine's CPU stalls before and after the run
# (0: not at all); see lib.sh, stalls.
#
# Client keys must be at least 16 characters (topology validation) and
# anchors.sh runs loadgen with its default key sk-bench-0000, so this script
# runs a temporary copy of the anchors directory whose only change is
# passing -key "$KEY" to loadgen (fakeoai, haproxy and nginx ignore it).
set -euo pipefail

NAME=gateway.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KEY="sk-bench-0000-0000-0000"
[[ -x "$ANCHORS/anchors.sh" ]] || die "no anchors.sh in $ANCHORS"
GW_PROCS="${GW_PROCS:-0}"
GW_CPUS="${GW_CPUS:-}"
[[ "$GW_PROCS" =~ ^[0-9]+$ ]] || die "GW_PROCS must be a whole number (0: Go's default), not \"$GW_PROCS\""

(cd "$ROOT" && go build -o "$RUN/understudy" ./cmd/understudy)

cp -r "$ANCHORS" "$RUN/anchors"
sed -i 's|"\$RUN/loadgen" -name|"$RUN/loadgen" -key "'"$KEY"'" -name|g' "$RUN/anchors/anchors.sh"
[[ "$(grep -c -- "-key \"$KEY\"" "$RUN/anchors/anchors.sh")" == 2 ]] || die "could not patch anchors.sh for the key"

start_gw() { # name [cpus=LIST] env...
  local name="$1" cpus="$GW_CPUS" envs=() a; shift
  for a in "$@"; do
    if [[ "$a" == cpus=* ]]; then cpus="${a#cpus=}"; else envs+=("$a"); fi
  done
  [[ "$cpus" =~ ^([0-9]+(,[0-9]+)*)?$ ]] || die "cpus must be a comma-separated CPU list, not \"$cpus\""
  start_gateway "$name" "$GW_PROCS" "$cpus" "$KEY" "${envs[@]}"
  TARGETS+=("$name=$GW_URL")
  echo "# $name: $GW_URL GOMAXPROCS ${GW_PROCS_SEEN:-?} ${envs[*]:-(default environment)}"
}
TARGETS=()
read -r -a gwenv <<<"${GW_ENV:-}"
echo "# bench/gateway.sh: understudy $("$RUN/understudy" version | awk '{print $2}'), gateways -> fakeoai 127.0.0.1:18080"
start_gw gw "${gwenv[@]}"
n=2
IFS=';' read -r -a variants <<<"${GW_VARIANTS:-}"
for v in "${variants[@]}"; do
  read -r -a venv <<<"$v"
  start_gw "gw$n" "${venv[@]}"
  n=$((n + 1))
done

echo "# $(uptime)"
echo "# other processes on the machine at start (top CPU):"
ps -eo pcpu,comm --sort=-pcpu | sed -n '2,8p' | sed 's/^/#   /'
stalls before
"$RUN/anchors/anchors.sh" "${TARGETS[@]}" "$@" | tee "$RUN/anchors.out"
awk -f "$ROOT/bench/ratios.awk" "$RUN/anchors.out"
stalls after
