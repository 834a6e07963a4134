#!/usr/bin/env bash
# Issue 13's latency check: a good client's push and fan-out latency without
# and with each hostile client (benches/hostile.py), on one release server.
# Rounds alternate: quiet, attack, quiet, attack, ... so the quiet figures
# show the machine's own noise. Each measurement is the load generator's
# fan-out scenario (one pusher, SUBSCRIBERS live subscribers, PUSHES
# single-event pushes, each after the previous ack): push_ack_latency and
# delivery_latency p50/p99. Prints a table with each attack's figures as a
# multiple of the quiet rounds' median.
#
#   benches/hostile.sh                       # all five attacks, 0.4, SQLite
#   ATTACKS="never-reads trickle" ROUNDS=2 benches/hostile.sh
#   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/lss_hostile benches/hostile.sh
#
# Not a test: figures on a shared machine are noisy (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
ATTACKS="${ATTACKS:-never-reads never-acks pull-streams trickle one-address}"
SUBSCRIBERS="${SUBSCRIBERS:-20}"
PUSHES="${PUSHES:-300}"
PROTOCOL="${PROTOCOL:-0.4}"
TARGET="${CARGO_TARGET_DIR:-target}"
SERVER="${SERVER:-$TARGET/release/livestore-sync}"
B="${BENCH:-$TARGET/release/livestore-sync-bench}"
OUT_DIR="${OUT_DIR:-$TARGET/hostile-$(date +%Y%m%d-%H%M%S)}"
WORK="$(mktemp -d)"
mkdir -p "$OUT_DIR"

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --workspace --bins
ulimit -n "$(ulimit -Hn)"
DB="${DATABASE_URL:-sqlite://$WORK/livestore.db}"
LOG="$OUT_DIR/server.log"
cleanup() {
  [ -n "${ATTACK_PID:-}" ] && kill "$ATTACK_PID" 2>/dev/null
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
# --pushes-per-second 0: the fan-out's pusher pushes back to back (paced, its
# latency would measure the pacing); the attackers' pushers are unpaced too.
"$SERVER" --host 127.0.0.1 --port 0 --database-url "$DB" --pushes-per-second 0 \
  --auth-token bench-token --admin-secret bench-admin --log-level info >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$LOG" | head -n1)"
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "${ADDR:-}" ] || { cat "$LOG"; exit 1; }

measure() { # label
  "$B" fan-out --url "ws://$ADDR" --protocol "$PROTOCOL" --auth-token bench-token \
    --server-pid "$SERVER_PID" --subscribers "$SUBSCRIBERS" --pushes "$PUSHES" \
    >>"$OUT_DIR/$1.jsonl" || echo "!! fan-out failed its checks under $1" >&2
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }

measure warm-up
for i in $(seq 1 "$ROUNDS"); do
  for attack in $ATTACKS; do
    echo "== round $i/$ROUNDS: quiet, then $attack" >&2
    measure quiet
    python3 benches/hostile.py "$attack" "$ADDR" bench-token 2>>"$OUT_DIR/attacker.log" &
    ATTACK_PID=$!
    sleep 3  # the attack under way
    before="$(rss)"
    measure "$attack"
    echo "$attack round $i: server VmRSS ${before} kB at the start, $(rss) kB at the end" >&2
    kill "$ATTACK_PID" 2>/dev/null; wait "$ATTACK_PID" 2>/dev/null || true
    ATTACK_PID=
    sleep 2
  done
done
echo "results in $OUT_DIR; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$OUT_DIR" $ATTACKS <<'PY'
import json, statistics, sys
out, attacks = sys.argv[1], sys.argv[2:]
def figures(label):
    rows = [json.loads(l) for l in open(f"{out}/{label}.jsonl") if l.strip()]
    f = lambda k, p: statistics.median(r["results"][k][p] for r in rows)
    return len(rows), [f("push_ack_latency", "p50_ms"), f("push_ack_latency", "p99_ms"),
                       f("delivery_latency", "p50_ms"), f("delivery_latency", "p99_ms")]
n, quiet = figures("quiet")
print("| run | n | push ack p50 / p99 ms | fan-out delivery p50 / p99 ms | worst ratio to quiet |")
print("|---|---|---|---|---|")
print(f"| quiet | {n} | {quiet[0]:.2f} / {quiet[1]:.2f} | {quiet[2]:.2f} / {quiet[3]:.2f} | 1 |")
for a in attacks:
    n, v = figures(a)
    worst = max(x / q for x, q in zip(v, quiet) if q)
    print(f"| {a} | {n} | {v[0]:.2f} / {v[1]:.2f} | {v[2]:.2f} / {v[3]:.2f} | {worst:.2f}× |")
PY
