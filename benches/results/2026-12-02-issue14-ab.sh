#!/usr/bin/env bash
# A/B/C of server variants on one machine, round by round (order rotated):
# push 0.4, fan-out 100 (0.3, 0.4), hot-store 1000 (0.4). Fresh server + DB per run.
set -uo pipefail
VARIANTS="${VARIANTS:-cur nopark tc0}"
ROUNDS="${ROUNDS:-3}"
OUT_DIR="${OUT_DIR:-/work/var/ab}"
BENCH=/work/var/livestore-sync-bench
PG=postgresql://postgres@127.0.0.1:5432
PORT=18500
mkdir -p "$OUT_DIR"
ulimit -n 20000
run_one() { # variant scenario proto args...
  local v="$1" sc="$2" proto="$3"; shift 3
  local db="lss_ab_$$"
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  local log; log=$(mktemp)
  local url="$PG/$db" dir
  dir=$(mktemp -d)
  if [ "${BACKEND:-postgres}" = sqlite ]; then
    url="sqlite://$dir/livestore.db"; psql "$PG/postgres" -qAtc "CREATE DATABASE $db" >/dev/null 2>&1
  fi
  /work/var/$v/livestore-sync --host 0.0.0.0 --port $PORT --database-url "$url" --pushes-per-second 0 \
    --max-connections 200000 --max-connections-per-ip 200000 --auth-token bench-token --admin-secret bench-admin >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do grep -q "listening on" "$log" && break; sleep 0.1; done
  echo "== $v $sc $proto $* load $(cut -d' ' -f1 /proc/loadavg)" >&2
  "$BENCH" "$sc" --url "ws://127.0.0.1:$PORT" --database-url "$PG/$db" --server-pid "$pid" \
    --auth-token bench-token --protocol "$proto" "$@" >>"$OUT_DIR/$v.jsonl" || echo "!! failed" >&2
  kill $pid; wait $pid 2>/dev/null
  rm -rf "$log" "$dir"
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
}
set -- $VARIANTS
n=$#
for r in $(seq 1 "$ROUNDS"); do
  vs=("$@"); k=$(( (r - 1) % n )); order=("${vs[@]:k}" "${vs[@]:0:k}")
  for v in "${order[@]}"; do
    run_one "$v" push 0.4 --clients 4 --batches 50 --batch-size 50
    run_one "$v" fan-out 0.3 --subscribers 100 --pushes 200
    run_one "$v" fan-out 0.4 --subscribers 100 --pushes 200
    run_one "$v" hot-store 0.4 --subscribers 1000 --pushers 10 --events-per-pusher 50 --timeout-secs 60
  done
done
for v in "$@"; do echo "### $v"; python3 /work/main/benches/summarize.py "$OUT_DIR/$v.jsonl"; done
