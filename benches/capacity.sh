#!/usr/bin/env bash
# Capacity benchmark of issue 14: many connections on one small box, and the
# fan-out tails. Each run gets a fresh release server (memory a long-lived
# server already holds would hide part of a new connection's cost) on a
# fresh scratch database; RUNS runs (default 5) per scenario, size and
# protocol; one JSON line per run appended to OUT; medians (min–max) printed
# by benches/summarize.py at the end.
#
#   benches/capacity.sh                                  # everything, RUNS=5 (about an hour)
#   RUNS=1 benches/capacity.sh                           # one run each
#   RUNS=1 SCENARIOS="idle" PROTOCOLS=0.4 benches/capacity.sh
#   RUNS=1 SCENARIOS="fan-out" SIZES="100" benches/capacity.sh
#   SERVER=/path/to/other/livestore-sync benches/capacity.sh   # another build
#   BACKEND=sqlite benches/capacity.sh                   # the server on SQLite (floors stay on PostgreSQL)
#
# Scenarios (SCENARIOS, in this order by default) and their sizes (SIZES
# replaces the sizes of every scenario selected):
#   idle       50,000 idle connections pinging every 10 s, opened 64 at a time,
#              spread over SPREAD (default 8) loopback addresses 127.0.0.1..N:
#              server KiB/conn, idle CPU % of a core, first 10,000 / all open ms,
#              none refused, ping p99, threads, mappings.       (IDLE_SIZES="50000")
#   connect    10,000 connections, 64 at a time, no idle window: open_first_10000.ms
#              (target <= 5 s).                                  (CONNECT_SIZES="10000")
#   storm      reconnect storm: N clients each behind by 100 events reconnect at once;
#              all synced ms (target <= 15 s).                   (STORM_SIZES="10000")
#   fan-out    S subscribers, 200 single-event pushes: delivery p50/p99/max
#              (targets: 100: p50 <= 2, p99 <= 10, max <= 25 ms; 1,000: p99 <= 50 ms).
#                                                                (FANOUT_SIZES="100 1000")
#   hot-store  1,000 subscribers, 10 pushers racing on one head (50 accepted events
#              each): deliveries/s, accepted/s, latency, refusals. (HOT_SIZES="1000")
#   idle-instances
#              the idle run split over INSTANCES (default 3) servers on one PostgreSQL
#              database, one bench process per server, all at once; one combined line
#              (scenario idle_instances: summed RSS per connection, summed CPU, none
#              refused) with each part under "parts". For a machine whose per-process
#              open-files limit is below the size: this VM's hard limit is 20,000 and
#              root cannot raise it (no CAP_SYS_RESOURCE).  (INSTANCES_SIZES="50000")
# Every scenario runs over PROTOCOLS (default "0.3 0.4"). With SHAPE_FLOOR=1
# (default) idle and fan-out also measure, in the same run and at the same
# size, the floor of the shape (--shape-floor: a minimal server with one
# reader thread of 256 KiB and one writer thread of 64 KiB per socket and
# crossbeam channels, no database, as a child process of the bench): its
# RSS/conn, idle CPU and fan-out latency, under floor.shape_idle and
# floor.shape_fan_out.
#
# As root it raises, for the run, what 50,000 connections need and prints
# what it raised: kernel.pid_max and kernel.threads-max (every server thread
# takes a pid; two per connection), vm.max_map_count (four mappings per
# thread), fs.nr_open, and the open-files and processes limits of this shell
# (both the server and the bench inherit them). Not as root, it prints the
# limits and goes on (runs above ~8,000 connections will be refused).
#
# Needs: PostgreSQL at PG (default postgresql://postgres@127.0.0.1:5432),
# python3. The server listens on 0.0.0.0:PORT (default 18100).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-5}"
PG="${PG:-postgresql://postgres@127.0.0.1:5432}"
SERVER="${SERVER:-${CARGO_TARGET_DIR:-target}/release/livestore-sync}"
BENCH="${BENCH:-${CARGO_TARGET_DIR:-target}/release/livestore-sync-bench}"
OUT="${OUT:-${CARGO_TARGET_DIR:-target}/capacity-$(date +%Y%m%d-%H%M%S).jsonl}"
SCENARIOS="${SCENARIOS:-idle connect storm fan-out hot-store}"
PROTOCOLS="${PROTOCOLS:-0.3 0.4}"
BACKEND="${BACKEND:-postgres}"
PORT="${PORT:-18100}"
SPREAD="${SPREAD:-8}"
IDLE_SECS="${IDLE_SECS:-30}"
NOFILE="${NOFILE:-250000}"
# --pushes-per-second 0: the pushers push back to back; paced, the latencies
# would measure the pacing. Servers older than the limit: PACE_FLAGS=.
PACE_FLAGS="${PACE_FLAGS---pushes-per-second 0}"
# The server's environment: glibc's per-thread malloc cache off, as the
# systemd units set it (SERVER_ENV= for glibc's default).
SERVER_ENV="${SERVER_ENV-GLIBC_TUNABLES=glibc.malloc.tcache_count=0}"
# Connection caps far above the run (the spread addresses all come from 127.0.0.1).
# --ws-idle-timeout-secs 600: the idle scenario's sockets send their first ping
# only once all N are open; on a busy machine opening 19,000 took over 90 s (the
# default WS_IDLE_TIMEOUT), and the server rightly dropped the sockets opened
# first. A real client pings every 10 s from its start.
CAP_FLAGS="${CAP_FLAGS---max-connections 200000 --max-connections-per-ip 200000 --ws-idle-timeout-secs 600}"
IDLE_SIZES="${IDLE_SIZES:-50000}"
CONNECT_SIZES="${CONNECT_SIZES:-10000}"
STORM_SIZES="${STORM_SIZES:-10000}"
FANOUT_SIZES="${FANOUT_SIZES:-100 1000}"
HOT_SIZES="${HOT_SIZES:-1000}"
INSTANCES="${INSTANCES:-3}"
INSTANCES_SIZES="${INSTANCES_SIZES:-50000}"
SHAPE_FLOOR="${SHAPE_FLOOR:-1}"
SHAPE=(); [ "$SHAPE_FLOOR" = 1 ] && SHAPE=(--shape-floor)
if [ -n "${SIZES:-}" ]; then
  IDLE_SIZES="$SIZES"; CONNECT_SIZES="$SIZES"; STORM_SIZES="$SIZES"
  FANOUT_SIZES="$SIZES"; HOT_SIZES="$SIZES"; INSTANCES_SIZES="$SIZES"
fi

if [ -z "${NO_BUILD:-}" ]; then cargo build --release --locked --workspace --bins; fi

# --- limits -----------------------------------------------------------------
raise_sysctl() { # name, wanted minimum
  local cur; cur="$(sysctl -n "$1")"
  if [ "$cur" -lt "$2" ]; then
    if [ "$(id -u)" = 0 ] && sysctl -qw "$1=$2"; then
      echo "raised $1: $cur -> $2" >&2
    else
      echo "NOT raised (not root?) $1 = $cur (wanted $2)" >&2
    fi
  else
    echo "$1 = $cur (enough)" >&2
  fi
}
raise_sysctl kernel.pid_max 4194304
raise_sysctl kernel.threads-max 1000000
raise_sysctl vm.max_map_count 1048576
raise_sysctl fs.nr_open "$((NOFILE + 1024))"
before_n="$(ulimit -n)"
if ulimit -Hn "$NOFILE" 2>/dev/null || [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$NOFILE" ]; then
  ulimit -n "$NOFILE" && echo "raised open files (ulimit -n, server and bench): $before_n -> $(ulimit -n)" >&2
else
  ulimit -n "$(ulimit -Hn)"; echo "open files limited to $(ulimit -n) (wanted $NOFILE)" >&2
fi
before_u="$(ulimit -u)"
ulimit -u unlimited 2>/dev/null || ulimit -u "$(ulimit -Hu)"
echo "processes (ulimit -u; the server counts threads against it): $before_u -> $(ulimit -u)" >&2
echo "server environment: ${SERVER_ENV:-none, glibc defaults}" >&2
for n in $IDLE_SIZES $CONNECT_SIZES $STORM_SIZES; do
  case " $SCENARIOS " in *" idle "*|*" connect "*|*" storm "*) ;; *) break ;; esac
  if [ "$(ulimit -n)" != unlimited ] && [ "$((n + 1000))" -gt "$(ulimit -n)" ]; then
    echo "WARNING: $n connections need more than the open-files limit $(ulimit -n) (raising the hard" \
      "limit needs CAP_SYS_RESOURCE): the server caps its connections below it and that run will fail" >&2
  fi
done

# --- server per run ---------------------------------------------------------
DB="lss_bench_cap_$$"
SQLITE_DIR="$(mktemp -d)"
LOG="$(mktemp)"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
}
cleanup() {
  stop_server
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$SQLITE_DIR" "$LOG"
}
# The servers besides the first of an idle-instances run.
EXTRA_PIDS=()
stop_instances() {
  for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  EXTRA_PIDS=()
}
trap 'stop_instances; cleanup' EXIT

start_server() {
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  local db
  if [ "$BACKEND" = sqlite ]; then
    rm -rf "$SQLITE_DIR/run"; mkdir -p "$SQLITE_DIR/run"; db="sqlite://$SQLITE_DIR/run/livestore.db"
    psql "$PG/postgres" -qAtc "CREATE DATABASE $DB" >/dev/null 2>&1 || true  # for the floors
  else
    db="$PG/$DB"
  fi
  : >"$LOG"  # the previous server's "listening on" must not count
  # shellcheck disable=SC2086
  env $SERVER_ENV "$SERVER" --host 0.0.0.0 --port "$PORT" --database-url "$db" $PACE_FLAGS $CAP_FLAGS \
    --auth-token bench-token --admin-secret bench-admin --log-level info >"$LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do  # up to 60 s: the machine may be very busy
    grep -q "listening on" "$LOG" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; echo "!! server exited" >&2; SERVER_PID=""; return 1; }
    sleep 0.1
  done
  grep -q "listening on" "$LOG" || { cat "$LOG" >&2; echo "!! server did not start" >&2; stop_server; return 1; }
  # What the server says limits it.
  grep -iE "capacity|limit|connections" "$LOG" | head -n 3 | sed 's/^/   server: /' >&2 || true
}

# run SCENARIO FLAGS...: RUNS runs per protocol, a fresh server each.
run() {
  local scenario="$1"; shift
  for proto in $PROTOCOLS; do
    for i in $(seq 1 "$RUNS"); do
      echo "== $scenario --protocol $proto $* (run $i/$RUNS, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      start_server || continue
      "$BENCH" "$scenario" --url "ws://127.0.0.1:$PORT" --database-url "$PG/$DB" \
        --server-pid "$SERVER_PID" --auth-token bench-token --protocol "$proto" "$@" >>"$OUT" \
        || echo "!! $scenario failed its checks" >&2
      # The server's warnings and errors of this run (first few).
      grep -E " (WARN|ERROR) " "$LOG" | grep -v "MAX_CONNECTIONS lowered" | head -n 3 | sed 's/^/   server: /' >&2 || true
      stop_server
    done
  done
}

# run_instances N: the idle run of N connections split over INSTANCES servers
# sharing one PostgreSQL database (ports PORT..), one bench process each, all
# at once; the combined line is appended to OUT.
run_instances() {
  local n="$1" k="$INSTANCES" per=$(( $1 / INSTANCES ))
  [ "$BACKEND" = postgres ] || { echo "idle-instances needs BACKEND=postgres" >&2; return 0; }
  for proto in $PROTOCOLS; do
    for i in $(seq 1 "$RUNS"); do
      echo "== idle over $k instances, $n connections --protocol $proto (run $i/$RUNS, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      start_server || continue   # the first creates the database
      local pids=("$SERVER_PID") parts=() j
      for j in $(seq 1 $((k - 1))); do
        local log="$LOG.$j"
        # shellcheck disable=SC2086
        env $SERVER_ENV "$SERVER" --host 0.0.0.0 --port "$((PORT + j))" --database-url "$PG/$DB" $PACE_FLAGS $CAP_FLAGS \
          --auth-token bench-token --admin-secret bench-admin --log-level info >"$log" 2>&1 &
        EXTRA_PIDS+=("$!"); pids+=("$!")
        for _ in $(seq 1 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
      done
      for j in $(seq 0 $((k - 1))); do
        parts+=("$(mktemp)")
        "$BENCH" idle --url "ws://127.0.0.1:$((PORT + j))" --database-url "$PG/$DB" \
          --server-pid "${pids[$j]}" --auth-token bench-token --protocol "$proto" \
          --connections "$((per + (j == 0 ? n - per * k : 0)))" --open-threads 64 --spread-addrs "$SPREAD" \
          --idle-secs "$IDLE_SECS" --timeout-secs 60 >"${parts[$j]}" &
      done
      wait_benches=0
      for job in $(jobs -p); do
        case " ${pids[*]} " in *" $job "*) ;; *) wait "$job" || wait_benches=1 ;; esac
      done
      [ "$wait_benches" = 0 ] || echo "!! an idle part failed its checks" >&2
      python3 benches/summarize.py --combine-instances "${parts[@]}" >>"$OUT" \
        || echo "!! idle-instances: no combined line" >&2
      rm -f "${parts[@]}" "$LOG".*
      stop_instances
      stop_server
    done
  done
}

for s in $SCENARIOS; do
  case "$s" in
    idle-instances) for n in $INSTANCES_SIZES; do run_instances "$n"; done ;;
    idle) for n in $IDLE_SIZES; do
        run idle --connections "$n" --open-threads 64 --spread-addrs "$SPREAD" \
          --idle-secs "$IDLE_SECS" --timeout-secs 60 "${SHAPE[@]}"
      done ;;
    connect) for n in $CONNECT_SIZES; do
        run connect --connections "$n" --open-threads 64 --spread-addrs "$SPREAD" --timeout-secs 60
      done ;;
    storm) for n in $STORM_SIZES; do
        run reconnect-storm --clients "$n" --events 100 --open-threads 64 \
          --spread-addrs "$SPREAD" --timeout-secs 60
      done ;;
    fan-out) for n in $FANOUT_SIZES; do run fan-out --subscribers "$n" --pushes 200 "${SHAPE[@]}"; done ;;
    hot-store) for n in $HOT_SIZES; do
        run hot-store --subscribers "$n" --pushers 10 --events-per-pusher 50 --timeout-secs 60
      done ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
echo "results: $OUT" >&2
python3 benches/summarize.py "$OUT"
