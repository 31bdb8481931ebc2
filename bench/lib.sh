# bench/lib.sh: sourced by the bench scripts after they set NAME (their
# own name, for messages). Sets ROOT (the repository), ANCHORS (default
# ../shared/bench beside it), RUN (a temporary directory removed on exit)
# and PIDS (processes the script started: append to it; they are stopped
# on exit, also on Ctrl-C), and defines die.
ROOT="$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)"
ANCHORS="${ANCHORS:-$ROOT/../shared/bench}"
RUN="$(mktemp -d "${TMPDIR:-/tmp}/${NAME%.sh}.XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "$NAME: $*" >&2; exit 1; }

# start_gateway NAME PROCS CPUS KEY [VAR=value ...]: builds nothing; runs
# "$RUN/understudy" gateway (built by the caller) for a topology written to
# $RUN/NAME.yaml: one region "bench" on a free loopback port whose one
# deployment gpt-4o-mini has one openai backend, fakeoai at
# 127.0.0.1:18080 (not needed at boot), client key KEY, access log off,
# gateway.procs PROCS, gateway.cpus CPUS (a comma-separated CPU list, or
# "" for none); the environment is the VAR=value arguments. Waits for its
# ready line and sets GW_PID, GW_URL and GW_PROCS_SEEN (procs= of the ready
# line, with " cpus=LIST" when pinned). The binary is $BIN when set (e.g.
# a build of another commit), else "$RUN/understudy".
start_gateway() {
  local name="$1" procs="$2" cpus="$3" key="$4"; shift 4
  cat >"$RUN/$name.yaml" <<YAML
version: 1
name: bench-$name
data_dir: $RUN/data-$name
keys:
  - name: bench
    key: $key
admin:
  token: adm-bench-0123456789abcdef
deployments:
  - name: gpt-4o-mini
    version: "2024-07-18"
regions:
  - name: bench
    listen: 127.0.0.1:0
    backends:
      gpt-4o-mini:
        - kind: openai
          url: http://127.0.0.1:18080
gateway:
  access_log: false
  procs: $procs
  cpus: [$cpus]
YAML
  env "$@" "${BIN:-$RUN/understudy}" gateway -f "$RUN/$name.yaml" --region bench >"$RUN/$name.out" 2>"$RUN/$name.err" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  GW_URL=""
  for _ in $(seq 1 100); do
    GW_URL="$(sed -n 's/^ready component=gateway .*url=\(http:[^ ]*\).*/\1/p' "$RUN/$name.out")"
    [[ -n "$GW_URL" ]] && break
    sleep 0.1
  done
  [[ -n "$GW_URL" ]] || { cat "$RUN/$name.err" >&2; die "gateway $name did not print its ready line"; }
  GW_PROCS_SEEN="$(sed -n 's/^ready component=gateway .* procs=\([0-9]*\( cpus=[0-9,]*\)\{0,1\}\).*/\1/p' "$RUN/$name.out")"
}

# stalls LABEL: prints, as "#" lines, what bench/jitter measures on every
# CPU over STALLS_S seconds (default 3; 0 skips it): how often a running
# thread lost its CPU for 100 µs and 500 µs or more, the noise under the
# p99s of the run beside it (docs/PERFORMANCE.md, Gateway, "Where the
# targets stand"). It keeps every CPU busy while it measures, so it runs
# before and after a measurement, never during one.
stalls() {
  local s="${STALLS_S:-3}"
  [[ "$s" =~ ^[0-9]+$ ]] || die "STALLS_S must be a whole number of seconds, not \"$s\""
  [[ "$s" == 0 ]] && return
  [[ -x "$RUN/jitter" ]] || (cd "$ROOT" && go build -o "$RUN/jitter" ./bench/jitter)
  echo "# $1: CPU stalls over $s s (bench/jitter):"
  "$RUN/jitter" -duration "${s}s" -brief | sed 's/^/#   /'
}
