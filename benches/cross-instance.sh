#!/usr/bin/env bash
# Cross-instance fan-out next to same-instance fan-out, in the same run: two
# server instances on one scratch PostgreSQL database; the pusher always on
# instance A; subscribers on A (same instance) or on B (cross instance,
# delivered through LISTEN/NOTIFY and a read of the log). RUNS rounds
# (default 5), alternating; appends to OUT and prints medians.
#
#   benches/cross-instance.sh
#   RUNS=3 SUBSCRIBERS=100 PROTOCOLS=0.4 benches/cross-instance.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-5}"
PG="${PG:-postgresql://postgres@127.0.0.1:5432}"
SERVER="${SERVER:-target/release/livestore-sync}"
OUT="${OUT:-target/cross-instance-$(date +%Y%m%d-%H%M%S).jsonl}"
SUBSCRIBERS="${SUBSCRIBERS:-100}"
PROTOCOLS="${PROTOCOLS:-0.3 0.4}"
DB="lss_bench_cross_$$"

cargo build --release --locked --workspace --bins
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
start() { # sets ADDR (not in a subshell: PIDS must keep the new pid)
  local log; log="$(mktemp)"
  # --pushes-per-second 0: the pusher pushes back to back (see run-suite.sh).
  # shellcheck disable=SC2086
  "$SERVER" --host 127.0.0.1 --port 0 --database-url "$PG/$DB" --auth-token bench-token \
    ${PACE_FLAGS---pushes-per-second 0} --log-level info >"$log" 2>&1 &
  PIDS+=($!)
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$log" | head -n1)"
    [ -n "$ADDR" ] && return
    sleep 0.1
  done
  cat "$log" >&2; exit 1
}
start; A="$ADDR"
start; B="$ADDR"
B_PID="${PIDS[1]}"
for i in $(seq 1 "$RUNS"); do for proto in $PROTOCOLS; do
  for where in same cross; do
    extra=()
    [ "$where" = cross ] && extra=(--subscriber-url "ws://$B")
    echo "== fan-out $where-instance --protocol $proto (run $i/$RUNS)" >&2
    target/release/livestore-sync-bench fan-out --url "ws://$A" --auth-token bench-token \
      --database-url "$PG/$DB" --protocol "$proto" --subscribers "$SUBSCRIBERS" --pushes 200 \
      "${extra[@]}" >>"$OUT" || echo "!! fan-out failed its checks" >&2
  done
done; done
echo "results: $OUT (subscriber instance pid $B_PID)" >&2
python3 benches/summarize.py "$OUT"
