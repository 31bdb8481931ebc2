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
