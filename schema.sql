-- livestore-sync schema. The whole schema, applied at every start; every
-- statement is idempotent. Later versions add numbered steps below and a row
-- in schema_version; never edit a step that has shipped.

CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Version 1 ------------------------------------------------------------------

-- One row per store (any string is a valid store id, compared exactly).
CREATE TABLE IF NOT EXISTS stores (
    store_id   text PRIMARY KEY,
    -- seq_num of the store's last event; 0 for an empty store.
    head       bigint NOT NULL DEFAULT 0,
    -- Random id sent to 0.4 clients; replaced when the store is reset so
    -- clients notice that the history they hold is gone.
    backend_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The event log of every store. The primary key makes the database itself
-- refuse a second event with the same sequence number, whichever server
-- instance tries to write it.
CREATE TABLE IF NOT EXISTS events (
    store_id       text   NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    seq_num        bigint NOT NULL,
    parent_seq_num bigint NOT NULL,
    name           text   NOT NULL,
    -- json, not jsonb: json keeps the client's text byte for byte (key order
    -- included); jsonb would reorder keys and make clients re-push events.
    -- NULL when the event had no args at all (distinct from JSON null).
    args           json,
    created_at     timestamptz NOT NULL,
    client_id      text   NOT NULL,
    session_id     text   NOT NULL,
    PRIMARY KEY (store_id, seq_num)
);

INSERT INTO schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;

-- Version 2 ------------------------------------------------------------------
-- No foreign key from events to stores. PostgreSQL checked it once per
-- inserted row (a trigger and a key-share lock on the store row): about a
-- third of the database's work per 50-event push (benches/pgbench-append.sh).
-- The server keeps the invariant itself: events are only inserted by the
-- statement that moves their store's head, so their store row always exists.
-- To delete a store by hand, delete its events, then its row.
--
-- Only when the key is there: ALTER TABLE locks the whole table, and this
-- file runs at every start, next to other instances serving the table.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = 'events'::regclass AND conname = 'events_store_id_fkey') THEN
        ALTER TABLE events DROP CONSTRAINT events_store_id_fkey;
    END IF;
END
$$;

INSERT INTO schema_version (version) VALUES (2) ON CONFLICT DO NOTHING;
