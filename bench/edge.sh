#!/usr/bin/env bash
# bench/edge.sh: the latency the edge adds, alone and in front of a gateway,
# measured in one run side by side with HAProxy and nginx by the shared
# anchors harness (fakeoai backend on 127.0.0.1:18080, loadgen, haproxy
# :18081, nginx :18082).
#
# Targets added to the anchors run:
#   edge     understudy edge whose single origin is fakeoai itself (the edge
#            proxies any path; its probes use /v1/models because fakeoai has
#            no /readyz), run with GOMAXPROCS=1 like the anchors' haproxy
#            (nbthread 1) and nginx (1 worker)
#   edge-mp  the same edge with the Go default GOMAXPROCS (all cores)
#   gw       understudy gateway with fakeoai as its one backend (reference)
#   edgegw   the GOMAXPROCS=1 edge in front of that gateway (probes /readyz)
#
# Usage: bench/edge.sh [anchors NAME=URL ...] | tee results.txt
# Environment: ANCHORS (dir of anchors.sh, default ../shared/bench beside the repository), and
# the anchors knobs RATES, DURATION_S, ROUNDS, WARMUP_S.
#
# The gateway wants a client key of at least 16 characters, and anchors.sh
# runs loadgen with its default key (sk-bench-0000). This script runs a copy
# of the anchors directory whose only change is passing -key "$KEY" to
# loadgen (fakeoai, haproxy and nginx ignore it). Ports 18090-18095 must be
# free. EDGE_GOMAXPROCS (default 1) is the edge and edgegw processes' GOMAXPROCS
# environment variable. EDGE_PROCS is the topology's edge.procs for edge and
# edgegw, GW_PROCS the topology's gateway.procs for gw (unset or 0: Go's
# default); set, they override the environment variable (edge-mp always
# keeps Go's default). EDGE_CPUS and GW_CPUS, comma-separated CPU lists, are
# the topology's edge.cpus (edge and edgegw) and gateway.cpus (gw); unset,
# nothing is pinned. The header line shows the GOMAXPROCS (and CPUs) each
# process's ready line reported. STALLS_S (3): seconds bench/jitter measures
# the machine's CPU stalls before and after the run (0: not at all); see
# lib.sh, stalls.
set -euo pipefail

NAME=edge.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KEY="sk-bench-edge-0123456789"
ADMIN="adm-bench-edge-0123456789"
[[ -x "$ANCHORS/anchors.sh" ]] || die "no anchors.sh in $ANCHORS"
EDGE_PROCS="${EDGE_PROCS:-0}"
GW_PROCS="${GW_PROCS:-0}"
[[ "$EDGE_PROCS" =~ ^[0-9]+$ && "$GW_PROCS" =~ ^[0-9]+$ ]] || die "EDGE_PROCS and GW_PROCS must be whole numbers (0: Go's default)"
EDGE_CPUS="${EDGE_CPUS:-}"
GW_CPUS="${GW_CPUS:-}"
[[ "$EDGE_CPUS,$GW_CPUS" =~ ^[0-9,]*$ ]] || die "EDGE_CPUS and GW_CPUS must be comma-separated CPU lists"

(cd "$ROOT" && go build -o "$RUN/understudy" ./cmd/understudy)

# The anchors copy, with loadgen sending our key.
cp -r "$ANCHORS" "$RUN/anchors"
sed -i 's|"\$RUN/loadgen" -name|"$RUN/loadgen" -key "'"$KEY"'" -name|g' "$RUN/anchors/anchors.sh"
[[ "$(grep -c -- "-key \"$KEY\"" "$RUN/anchors/anchors.sh")" == 2 ]] || die "could not patch anchors.sh for the key"

common() { # name port edge-procs edge-cpus
  cat <<YAML
version: 1
name: $1
data_dir: $RUN/data-$1
keys:
  - name: bench
    key: $KEY
admin:
  token: $ADMIN
deployments:
  - name: gpt-4o-mini
    version: "2024-07-18"
gateway:
  access_log: false
  procs: $GW_PROCS
  cpus: [$GW_CPUS]
edge:
  listen: 127.0.0.1:$2
  procs: $3
  cpus: [$4]
YAML
}

# Edge alone: its origin is fakeoai.
fake_origin() {
  cat <<YAML
regions:
  - name: fake
    listen: 127.0.0.1:18090
    url: http://127.0.0.1:18080
    backends:
      gpt-4o-mini:
        - kind: openai
          url: http://127.0.0.1:18080
probes:
  path: /v1/models
YAML
}
{ common bench-edge 18093 "$EDGE_PROCS" "$EDGE_CPUS"; fake_origin; } >"$RUN/edge.yaml"
{ common bench-edge 18092 0 ""; fake_origin; } >"$RUN/edge-mp.yaml"

# Gateway with fakeoai as its backend, and an edge in front of it.
{ common bench-edgegw 18095 "$EDGE_PROCS" "$EDGE_CPUS"
  cat <<YAML
regions:
  - name: local
    listen: 127.0.0.1:18094
    backends:
      gpt-4o-mini:
        - kind: openai
          url: http://127.0.0.1:18080
YAML
} >"$RUN/edgegw.yaml"

start() { # name [VAR=value ...] args...
  local name="$1"; shift
  local envs=()
  while [[ "$1" == *=* ]]; do envs+=("$1"); shift; done
  env "${envs[@]}" "$RUN/understudy" "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" &
  PIDS+=($!)
  local i
  for i in $(seq 1 100); do
    if grep -q '^ready ' "$RUN/$name.out" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  cat "$RUN/$name.err" >&2
  die "$name did not print its ready line"
}
EDGE_GOMAXPROCS="${EDGE_GOMAXPROCS:-1}"
start edge GOMAXPROCS="$EDGE_GOMAXPROCS" edge -f "$RUN/edge.yaml" --log-level warn
start edge-mp edge -f "$RUN/edge-mp.yaml" --log-level warn
start gw gateway -f "$RUN/edgegw.yaml" --region local
start edgegw GOMAXPROCS="$EDGE_GOMAXPROCS" edge -f "$RUN/edgegw.yaml" --log-level warn

procs() { sed -n 's/^ready .* procs=\([0-9]*\( cpus=[0-9,]*\)\{0,1\}\).*/\1/p' "$RUN/$1.out"; } # GOMAXPROCS (and CPUs) from name's ready line
echo "# bench/edge.sh: understudy $("$RUN/understudy" version | awk '{print $2}'), edge=:18093 (GOMAXPROCS $(procs edge)) -> fakeoai, edge-mp=:18092 (GOMAXPROCS $(procs edge-mp), Go's default, $(nproc) cores) -> fakeoai, gw=:18094 (GOMAXPROCS $(procs gw)) -> fakeoai, edgegw=:18095 (GOMAXPROCS $(procs edgegw)) -> gw"
busy() { # what else is using the shared cores right now
  echo "# $1: load average $(cut -d' ' -f1-3 /proc/loadavg); busiest processes (top, %CPU):"
  top -b -n 1 -w 200 | sed -n '8,13p' | awk '{printf "#   %5s%% %s\n", $9, $12}'
}
busy "before"
stalls before
"$RUN/anchors/anchors.sh" edge=http://127.0.0.1:18093 edge-mp=http://127.0.0.1:18092 gw=http://127.0.0.1:18094 edgegw=http://127.0.0.1:18095 "$@" | tee "$RUN/anchors.out"
awk -f "$ROOT/bench/ratios.awk" "$RUN/anchors.out"
busy "after"
stalls after
