#!/usr/bin/env bash
# PostgreSQL alone, without the server: pgbench runs the shape of the append
# statement (move a store's head, insert 50 events of ~200-byte args) from
# CLIENTS clients, each on its own store, once on a table with the version-1
# foreign key from events to stores and once without it (schema version 2).
# The ceiling the push scenario cannot exceed on this machine; and the
# measurement behind schema version 2 (BENCHMARKS.md).
#
#   benches/pgbench-append.sh                 # 2 rounds × 8 s each, about 40 s
#   SECONDS_PER_RUN=20 ROUNDS=3 benches/pgbench-append.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${PG:-postgresql://postgres@127.0.0.1:5432}"
CLIENTS="${CLIENTS:-4}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-8}"
ROUNDS="${ROUNDS:-2}"
SCRIPT="$(mktemp)"
export PGOPTIONS="-c client_min_messages=warning"
trap 'rm -f "$SCRIPT"; for v in fk nofk; do psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS lss_pgbench_$v WITH (FORCE)" >/dev/null 2>&1 || true; done' EXIT

ARGS='{"id":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","text":"'"$(printf 'y%.0s' $(seq 1 120))"'","completed":false}'
cat >"$SCRIPT" <<SQL
WITH moved AS (UPDATE stores SET head = head + 50 WHERE store_id = 'b' || :client_id RETURNING store_id, head)
INSERT INTO events (store_id, seq_num, parent_seq_num, name, args, created_at, client_id, session_id)
SELECT m.store_id, m.head - 50 + g, m.head - 51 + g, 'v1.TodoCreated', '$ARGS'::json, now(), 'client-abcdef', 'session-abcdef' FROM moved m, generate_series(1, 50) g;
SQL

for v in fk nofk; do
  db="lss_pgbench_$v"
  psql "$PG/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  # Version 1 of the schema: everything before its "Version 2" step.
  sed '/^-- Version 2/,$d' schema.sql | psql "$PG/$db" -q >/dev/null
  [ "$v" = nofk ] && psql "$PG/$db" -qc "ALTER TABLE events DROP CONSTRAINT events_store_id_fkey"
  psql "$PG/$db" -qc "INSERT INTO stores (store_id, backend_id) SELECT 'b' || i, 'x' FROM generate_series(0, $CLIENTS) i"
done

echo "clients $CLIENTS, ${SECONDS_PER_RUN}s per run, synchronous_commit as configured (50 events per transaction)"
for r in $(seq 1 "$ROUNDS"); do
  for v in fk nofk; do
    tps="$(pgbench "$PG/lss_pgbench_$v" -n -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -f "$SCRIPT" 2>/dev/null \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p')"
    echo "round $r  $v  tps $tps  events/s $(python3 -c "print(round($tps * 50))")"
  done
done
