#!/usr/bin/env bash
# Same-day comparison of two server builds: BASE and NEW (paths to their
# `livestore-sync` binaries) alternate round by round (A B, B A, …) through
# benches/run-suite.sh, one run per round, so both see the same machine.
# Appends to target/compare-base.jsonl and target/compare-new.jsonl (or
# OUT_DIR) and prints both summaries.
#
#   BASE=/tmp/old/livestore-sync NEW=target/release/livestore-sync \
#     ROUNDS=5 SCENARIOS="push fan-out idle" SIZES=10000 benches/compare-builds.sh
#
# (How BENCHMARKS.md's issue 8 and issue 10 comparisons were run; build the
# older commit in a git worktree: `cargo build --release -p livestore-sync`.)
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BASE:?set BASE to the livestore-sync binary of the older build}"
NEW="${NEW:-target/release/livestore-sync}"
ROUNDS="${ROUNDS:-5}"
OUT_DIR="${OUT_DIR:-target}"
export SCENARIOS="${SCENARIOS:-push fan-out}" PROTOCOLS="${PROTOCOLS:-0.3 0.4}" RUNS=1
for i in $(seq 1 "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then order="base new"; else order="new base"; fi
  for b in $order; do
    if [ "$b" = base ]; then srv="$BASE"; else srv="$NEW"; fi
    echo "== round $i/$ROUNDS: $b ($srv)" >&2
    SERVER="$srv" OUT="$OUT_DIR/compare-$b.jsonl" bash benches/run-suite.sh >/dev/null
  done
done
for b in base new; do
  echo "### $b"
  python3 benches/summarize.py "$OUT_DIR/compare-$b.jsonl"
done
