#!/usr/bin/env bash
# Runs the issue's benchmark suite: every scenario and size, both protocols,
# RUNS times each (default 5), against a fresh release server and a scratch
# database; appends one JSON line per run to OUT and prints medians
# (min–max) with benches/summarize.py. The idle scenario runs last, through
# benches/idle-fresh.sh (a fresh server per run). About 30 minutes at RUNS=5.
#
#   benches/run-suite.sh                      # everything
#   RUNS=1 SCENARIOS="push race" benches/run-suite.sh
#   SERVER=/path/to/other/livestore-sync benches/run-suite.sh   # another build
#   BACKEND=sqlite benches/run-suite.sh       # the server on SQLite (floors stay on PostgreSQL)
#
# Needs: PostgreSQL at PG (default postgresql://postgres@127.0.0.1:5432), python3
# for the summary. For 10,000 connections the kernel must allow more than
# 65,530 memory mappings per process (see README, "Many connections"); as root
# this script raises vm.max_map_count itself.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-5}"
PG="${PG:-postgresql://postgres@127.0.0.1:5432}"
# The server binary under test (another build, to compare two on the same day).
SERVER="${SERVER:-target/release/livestore-sync}"
OUT="${OUT:-target/bench-suite-$(date +%Y%m%d-%H%M%S).jsonl}"
SCENARIOS="${SCENARIOS:-cold-pull push fan-out race reconnect-storm idle}"
PROTOCOLS="${PROTOCOLS:-0.3 0.4}"
# The server's event log: `postgres` (a scratch database on PG) or `sqlite`
# (a file in a scratch directory). The bench's floors always use PG.
BACKEND="${BACKEND:-postgres}"
SQLITE_DIR="$(mktemp -d)"

cargo build --release --locked --workspace --bins
if [ "$(cat /proc/sys/vm/max_map_count)" -lt 262144 ] && [ "$(id -u)" = 0 ]; then
  sysctl -qw vm.max_map_count=262144 || true
fi
ulimit -n "$(ulimit -Hn)"

DB="lss_bench_suite_$$"
LOG="target/bench-suite-server.log"
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$SQLITE_DIR"
}
trap cleanup EXIT
server_db() { # the server's --database-url (a fresh SQLite file each time)
  if [ "$BACKEND" = sqlite ]; then
    rm -rf "$SQLITE_DIR/run"; mkdir -p "$SQLITE_DIR/run"; echo "sqlite://$SQLITE_DIR/run/livestore.db"
    psql "$PG/postgres" -qAtc "CREATE DATABASE $DB" >/dev/null 2>&1 || true  # for the floors
  else
    echo "$PG/$DB"
  fi
}
SERVER_DB="$(server_db)"  # before the server starts: the log below must be its own
rm -f "$LOG"
# --pushes-per-second 0: the load generator's pushers push back to back,
# faster than PUSHES_PER_SECOND's default (100) lets one connection; paced,
# the latencies would measure the pacing. Servers older than the limit do
# not know the flag: PACE_FLAGS= for them.
PACE_FLAGS="${PACE_FLAGS---pushes-per-second 0}"
# shellcheck disable=SC2086
"$SERVER" --host 127.0.0.1 --port 0 --database-url "$SERVER_DB" $PACE_FLAGS \
  --auth-token bench-token --admin-secret bench-admin --log-level info >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$LOG" | head -n1)"
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "${ADDR:-}" ] || { cat "$LOG"; exit 1; }

B=target/release/livestore-sync-bench
COMMON=(--url "ws://$ADDR" --database-url "$PG/$DB" --server-pid "$SERVER_PID" --auth-token bench-token)
run() { # scenario, then extra flags
  local scenario="$1"; shift
  for proto in $PROTOCOLS; do
    for i in $(seq 1 "$RUNS"); do
      echo "== $scenario --protocol $proto $* (run $i/$RUNS)" >&2
      "$B" "$scenario" "${COMMON[@]}" --protocol "$proto" "$@" >>"$OUT" || echo "!! $scenario failed its checks" >&2
    done
  done
}
for s in $SCENARIOS; do
  case "$s" in
    cold-pull) run cold-pull --events 10000; run cold-pull --events 100000 ;;
    push) run push --clients 4 --batches 50 --batch-size 50 ;;
    fan-out) run fan-out --subscribers 50 --pushes 200; run fan-out --subscribers 100 --pushes 200 ;;
    race) run race --clients 20 --rounds 10 ;;
    reconnect-storm) run reconnect-storm --clients 1000 --events 100 ;;
    idle) ;; # below, on fresh servers
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
case " $SCENARIOS " in
  *" idle "*) OUT="$OUT" RUNS="$RUNS" PROTOCOLS="$PROTOCOLS" PG="$PG" SERVER="$SERVER" BACKEND="$BACKEND" benches/idle-fresh.sh >/dev/null ;;
esac
echo "results: $OUT" >&2
python3 benches/summarize.py "$OUT"
