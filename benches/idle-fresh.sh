#!/usr/bin/env bash
# Idle connections measured on a fresh server process per run: the memory a
# long-lived server already holds from earlier scenarios would otherwise be
# reused by the new connections and hide part of their cost. RUNS runs
# (default 5) per protocol and size; appends to OUT and prints medians.
#
#   benches/idle-fresh.sh                   # 1,000 and 10,000 connections, about 10 minutes
#   SIZES=10000 PROTOCOLS=0.4 RUNS=1 benches/idle-fresh.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-5}"
PG="${PG:-postgresql://postgres@127.0.0.1:5432}"
# The server binary under test (another build, to compare two on the same day).
SERVER="${SERVER:-target/release/livestore-sync}"
OUT="${OUT:-target/idle-fresh-$(date +%Y%m%d-%H%M%S).jsonl}"
SIZES="${SIZES:-1000 10000}"
PROTOCOLS="${PROTOCOLS:-0.3 0.4}"
# The server's event log: `postgres` (a scratch database on PG) or `sqlite`
# (a file in a scratch directory). The bench's floors always use PG.
BACKEND="${BACKEND:-postgres}"
SQLITE_DIR="$(mktemp -d)"
DB="lss_bench_idle_$$"

cargo build --release --locked --workspace --bins
if [ "$(cat /proc/sys/vm/max_map_count)" -lt 262144 ] && [ "$(id -u)" = 0 ]; then
  sysctl -qw vm.max_map_count=262144 || true
fi
ulimit -n "$(ulimit -Hn)"
trap 'psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$SQLITE_DIR"' EXIT

server_db() { # the server's --database-url (a fresh SQLite file each time)
  if [ "$BACKEND" = sqlite ]; then
    rm -rf "$SQLITE_DIR/run"; mkdir -p "$SQLITE_DIR/run"; echo "sqlite://$SQLITE_DIR/run/livestore.db"
  else
    echo "$PG/$DB"
  fi
}

for n in $SIZES; do for proto in $PROTOCOLS; do for i in $(seq 1 "$RUNS"); do
  echo "== idle $n --protocol $proto (run $i/$RUNS)" >&2
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  LOG="$(mktemp)"
  SERVER_DB="$(server_db)"  # before the server starts: the log below must be its own
rm -f "$LOG"
"$SERVER" --host 127.0.0.1 --port 0 --database-url "$SERVER_DB" \
    --auth-token bench-token --log-level info >"$LOG" 2>&1 &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$LOG" | head -n1)"
    [ -n "$ADDR" ] && break
    sleep 0.1
  done
  target/release/livestore-sync-bench idle --url "ws://$ADDR" --auth-token bench-token \
    --server-pid "$SERVER_PID" --connections "$n" --idle-secs 20 --protocol "$proto" >>"$OUT" \
    || echo "!! idle failed its checks" >&2
  kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true
  rm -f "$LOG"
done; done; done
echo "results: $OUT" >&2
python3 benches/summarize.py "$OUT"
