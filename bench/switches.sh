#!/usr/bin/env bash
# bench/switches.sh: what one proxied request costs a gateway process in
# thread switches and CPU, beside its latency: the anchors' fakeoai backend
# and loadgen (../shared/bench), a gateway with fakeoai as its one backend,
# and optionally a second gateway with other settings, loaded in turn at a
# fixed rate. For each target it prints loadgen's latency and, read from
# /proc for the target's process (all threads, warm-up included), the
# voluntary context switches, the migrations of its threads between CPUs
# and the CPU time (user + system) per request. "direct" is fakeoai itself.
#
# Usage: bench/switches.sh
# Environment: RATE (1000), DURATION_S (5), ROUNDS (3); GW_PROCS, the
# topology's gateway.procs (default 1); VAR_ENV, environment of a second
# gateway "var" (e.g. "GODEBUG=schedtrace=2000000000"); VAR_PROCS, its
# gateway.procs (default GW_PROCS); GW_CPUS and VAR_CPUS, the gateways'
# gateway.cpus as comma-separated lists (default none); VAR_BIN, the
# second gateway's binary (default the one built from this checkout: set it
# to a build of another commit to compare the two). Without VAR_ENV,
# VAR_PROCS, VAR_CPUS and VAR_BIN there is no second gateway. SYSCALLS=1
# also counts each target's system calls per request with `perf stat`
# (needs perf: apt-get install -y linux-perf). HAPROXY=1 adds the anchors' HAProxy (one thread,
# 127.0.0.1:18081) as target "haproxy", the reference a proxy's cost is read
# against. Port 18080 (fakeoai) must be free, and 18081 with HAPROXY=1; the
# gateways listen on free loopback ports.
set -euo pipefail

NAME=switches.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RATE="${RATE:-1000}" DURATION_S="${DURATION_S:-5}" ROUNDS="${ROUNDS:-3}"
GW_PROCS="${GW_PROCS:-1}" VAR_ENV="${VAR_ENV:-}" VAR_PROCS="${VAR_PROCS:-}"
GW_CPUS="${GW_CPUS:-}" VAR_CPUS="${VAR_CPUS:-}"
[[ "$GW_CPUS,$VAR_CPUS" =~ ^[0-9,]*$ ]] || die "GW_CPUS and VAR_CPUS must be comma-separated CPU lists"
KEY="sk-bench-0000-0000-0000"

(cd "$ROOT" && go build -o "$RUN/understudy" ./cmd/understudy)
(cd "$ANCHORS/fakeoai" && go build -o "$RUN/fakeoai" .)
(cd "$ANCHORS/loadgen" && go build -o "$RUN/loadgen" .)

"$RUN/fakeoai" -listen 127.0.0.1:18080 2>"$RUN/fakeoai.err" &
PIDS+=($!)
TARGETS=("direct $! http://127.0.0.1:18080")
if [[ "${HAPROXY:-0}" == 1 ]]; then
  haproxy -db -f "$ANCHORS/conf/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 &
  PIDS+=($!)
  TARGETS+=("haproxy $! http://127.0.0.1:18081")
fi

start_gw() { # name procs cpus env...
  local name="$1" procs="$2" cpus="$3"; shift 3
  start_gateway "$name" "$procs" "$cpus" "$KEY" "$@"
  TARGETS+=("$name $GW_PID $GW_URL")
  echo "# $name: procs=$GW_PROCS_SEEN ${*:-(default environment)}"
}
start_gw gw "$GW_PROCS" "$GW_CPUS"
if [[ -n "$VAR_ENV$VAR_PROCS$VAR_CPUS${VAR_BIN:-}" ]]; then
  read -r -a venv <<<"$VAR_ENV"
  BIN="${VAR_BIN:-}" start_gw var "${VAR_PROCS:-$GW_PROCS}" "$VAR_CPUS" "${venv[@]}"
fi
SYSCALLS="${SYSCALLS:-0}"
if [[ "$SYSCALLS" == 1 ]]; then
  command -v perf >/dev/null || die "SYSCALLS=1 needs perf (apt-get install -y linux-perf)"
fi

# counters PID: voluntary switches and migrations between CPUs summed over
# the threads, then utime+stime in clock ticks.
counters() {
  local v=0 m=0 t
  for t in /proc/"$1"/task/*; do
    v=$((v + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$t/status")))
    m=$((m + $(awk '/^se.nr_migrations/ {print $3}' "$t/sched")))
  done
  echo "$v $m $(awk '{print $14 + $15}' /proc/"$1"/stat)"
}
hz="$(getconf CLK_TCK)"
echo "# $(uptime)"
echo "# rate=$RATE/s duration=${DURATION_S}s rounds=$ROUNDS; per request = over warm-up (1 s) and measured run"
for round in $(seq 1 "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    read -r name pid url <<<"$t"
    if [[ "$SYSCALLS" == 1 ]]; then
      perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$RUN/perf.out" &
      perf_pid=$!
    fi
    read -r v0 m0 c0 <<<"$(counters "$pid")"
    out="$("$RUN/loadgen" -key "$KEY" -name "$name" -url "$url" -rate "$RATE" -duration "${DURATION_S}s" -warmup 1s)"
    read -r v1 m1 c1 <<<"$(counters "$pid")"
    sc=""
    if [[ "$SYSCALLS" == 1 ]]; then
      kill -INT "$perf_pid"
      wait "$perf_pid" || true
      sc="$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$RUN/perf.out")"
    fi
    echo "$out" | awk -v r="$round" -v dv=$((v1 - v0)) -v dm=$((m1 - m0)) -v dc=$((c1 - c0)) -v sc="$sc" -v hz="$hz" -v rate="$RATE" -v d="$DURATION_S" '
      { for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
      END {
        n = rate * (d + 1)
        printf "round=%s target=%-7s errors=%s p50_us=%s p99_us=%s switches_per_req=%.2f migrations_per_req=%.2f cpu_us_per_req=%.0f",
          r, f["target"], f["errors"], f["p50_us"], f["p99_us"], dv / n, dm / n, dc * 1e6 / hz / n
        if (sc != "") printf " syscalls_per_req=%.2f", sc / n
        printf "\n"
      }'
  done
done
