//! The PostgreSQL storage: an r2d2 pool of synchronous `postgres` clients.
//!
//! The two hot statements (append, read a page) are prepared once per
//! pooled connection; the others go through `query_typed` (types given up
//! front: one round trip, no separate prepare).
//! A push is one statement: a data-modifying CTE that moves the head only if
//! it still is the expected one and inserts the events only if it moved, so
//! a second instance with a stale head gets `Conflict`, never a fork.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;

use super::{
    AppendError, ImportChain, ImportError, Notice, Storage, StorageError, StoreSummary, Watch,
};
use crate::model::{new_backend_id, StoreMeta};
use crate::model::{Event, StoredEvent};

/// The schema, applied idempotently at every start.
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

/// The last `schema_version` row `schema.sql` inserts. A database with a
/// higher one was written by a newer server and is refused.
pub const SCHEMA_VERSION: i32 = 2;

type Pool = r2d2::Pool<Manager>;

/// A pooled connection with its prepared statements.
pub struct PgConn {
    client: postgres::Client,
    append: postgres::Statement,
    read: postgres::Statement,
}

impl std::ops::Deref for PgConn {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// r2d2_postgres's manager, plus per-connection setup: planner settings
/// and the prepared hot statements.
#[derive(Debug)]
struct Manager(PostgresConnectionManager<NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        let mut client = self.0.connect()?;
        // Every query here walks the `(store_id, seq_num)` primary key.
        // Without table statistics (a fresh table, or autovacuum off) the
        // planner may pick a bitmap scan plus a sort for a page of a pull,
        // which reads the whole rest of the log for every page (measured:
        // 70 ms instead of 0.1 ms per page with 50,000 events left).
        // Bitmap scans never help these queries.
        client.batch_execute("SET enable_bitmapscan = off")?;
        let append = client.prepare_typed(
            APPEND_SQL,
            &[
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::TIMESTAMPTZ,
                Type::INT8_ARRAY,
                Type::INT8_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT_ARRAY,
                Type::TEXT,
            ],
        )?;
        let read =
            client.prepare_typed(READ_SQL, &[Type::TEXT, Type::INT8, Type::INT8, Type::INT8])?;
        Ok(PgConn {
            client,
            append,
            read,
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

/// Settings of the connection pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub min_idle: u32,
    pub max_size: u32,
    pub connection_timeout: Duration,
}

pub struct PgStorage {
    pool: Pool,
    /// Threads in `conn` waiting for a pooled connection (r2d2 does not say).
    waiting: std::sync::atomic::AtomicU64,
    config: postgres::Config,
    /// Tags this process's notices, so its own listener skips them.
    instance: String,
}

/// An error with its causes: `postgres::Error` alone says only "db error",
/// its source says what the server said (e.g. "terminating connection due
/// to administrator command" when PostgreSQL restarts).
fn why(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn err(context: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError(format!("{context}: {e}"))
}

impl PgStorage {
    /// Connects, creating the database if it does not exist, and applies
    /// `schema.sql`.
    pub fn connect(url: &str, options: &PoolOptions) -> Result<PgStorage, StorageError> {
        let config = postgres::Config::from_str(url).map_err(|e| {
            StorageError(format!(
                "DATABASE_URL {} is not a valid PostgreSQL URL: {}. Write it as \
                 postgresql://user:password@host:5432/database (see README, \"PostgreSQL\")",
                redact_url(url),
                why(&e)
            ))
        })?;
        create_database_if_missing(&config)?;
        apply_schema(&config)?;
        let manager = Manager(PostgresConnectionManager::new(config.clone(), NoTls));
        let pool = r2d2::Pool::builder()
            .min_idle(Some(options.min_idle.min(options.max_size)))
            .max_size(options.max_size.max(1))
            .connection_timeout(options.connection_timeout)
            // Our own log line says what failed; r2d2's default handler would log too.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|e| err("cannot connect to PostgreSQL", e))?;
        Ok(PgStorage {
            pool,
            waiting: Default::default(),
            config,
            instance: new_backend_id(),
        })
    }

    /// Queues a notice in `tx` (sent at its commit): see [`notice_text`].
    fn notify(
        &self,
        tx: &mut postgres::Transaction<'_>,
        store_id: &str,
        key: &str,
        value: &str,
    ) -> Result<(), postgres::Error> {
        let notice = notice_text(&self.instance, store_id, key, value);
        tx.query_typed(
            "SELECT pg_notify('livestore_sync', $1)",
            &[(&notice, Type::TEXT)],
        )
        .map(drop)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StorageError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.waiting.fetch_add(1, Relaxed);
        let got = self.pool.get();
        self.waiting.fetch_sub(1, Relaxed);
        got.map_err(|e| err("no PostgreSQL connection", e))
    }

    /// The plan PostgreSQL uses for one page of a pull (a diagnostic: it
    /// must walk the primary key; see `Manager::connect`).
    pub fn explain_read(
        &self,
        store_id: &str,
        after: i64,
        up_to: i64,
        limit: i64,
    ) -> Result<String, StorageError> {
        let mut c = self.conn()?;
        let rows = c
            .query_typed(
                &format!("EXPLAIN {READ_SQL}"),
                &[
                    (&store_id, Type::TEXT),
                    (&after, Type::INT8),
                    (&up_to, Type::INT8),
                    (&limit, Type::INT8),
                ],
            )
            .map_err(|e| err("explain", e))?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// `PostgreSQL user@host:port/dbname` for the start-up log: never the
/// password (nor the rest of the URL).
pub fn describe(url: &str) -> String {
    let Ok(c) = postgres::Config::from_str(url) else {
        return "PostgreSQL (DATABASE_URL does not parse; not shown)".to_string();
    };
    format!(
        "PostgreSQL {}{}/{}",
        c.get_user().map(|u| format!("{u}@")).unwrap_or_default(),
        address(&c),
        c.get_dbname().unwrap_or("(user's database)")
    )
}

/// `host:port` (several comma-separated) a configuration connects to.
fn address(c: &postgres::Config) -> String {
    let ports = c.get_ports();
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            // One port applies to every host; none means 5432.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            (h, port)
        })
        .map(|(h, port)| match h {
            postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
            postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
        })
        .collect();
    if hosts.is_empty() {
        "localhost:5432".to_string()
    } else {
        hosts.join(",")
    }
}

/// The URL as it may be shown: its password replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not shown)".to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut out = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    };
    // Nor a password given as a parameter (`?password=…`).
    if let Some(i) = out.find("password=") {
        out.truncate(i + "password=".len());
        out.push_str("***");
    }
    out
}

/// A failed connection at start-up: where, why, and what to do.
fn connect_error(c: &postgres::Config, e: &postgres::Error) -> StorageError {
    let at = address(c);
    if let Some(db) = e.as_db_error() {
        let hint = match db.code().code() {
            // invalid_password, invalid_authorization_specification
            "28P01" | "28000" => {
                "Check the user and password in DATABASE_URL, and pg_hba.conf \
                 (see README, \"PostgreSQL\")"
            }
            _ => "See README, \"PostgreSQL\"",
        };
        return StorageError(format!(
            "cannot connect to PostgreSQL at {at}: {}. {hint}",
            db.message()
        ));
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let hint = match io.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                    "Is it running, and listening there? See README, \"Getting a PostgreSQL\""
                }
                std::io::ErrorKind::TimedOut => {
                    "Is the host reachable (firewall, address)? See README, \"Getting a PostgreSQL\""
                }
                _ => "See README, \"Getting a PostgreSQL\"",
            };
            return StorageError(format!(
                "cannot connect to PostgreSQL at {at}: {}. {hint}",
                super::io_cause(io)
            ));
        }
        source = s.source();
    }
    StorageError(format!(
        "cannot connect to PostgreSQL at {at}: {}. See README, \"Getting a PostgreSQL\"",
        why(e)
    ))
}

/// Applies `schema.sql` (before the pool prepares statements on its
/// tables), unless a newer server has written the database.
fn apply_schema(config: &postgres::Config) -> Result<(), StorageError> {
    let mut c = config
        .connect(NoTls)
        .map_err(|e| connect_error(config, &e))?;
    // An advisory lock keeps two instances starting at once from racing
    // on CREATE TABLE IF NOT EXISTS (which is not concurrency-safe).
    c.batch_execute("SELECT pg_advisory_lock(7415570)")
        .map_err(|e| err("applying schema.sql", why(&e)))?;
    let reading = |e: postgres::Error| err("reading the schema version", why(&e));
    let exists: bool = c
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .map_err(reading)?
        .get(0);
    let found: Option<i32> = if exists {
        c.query_one("SELECT max(version) FROM schema_version", &[])
            .map_err(reading)?
            .get(0)
    } else {
        None
    };
    if let Some(found) = found.filter(|v| *v > SCHEMA_VERSION) {
        return Err(StorageError(format!(
            "PostgreSQL at {}/{} has schema version {found}, newer than this livestore-sync \
             knows ({SCHEMA_VERSION}): a newer version wrote it; run that one (or newer). \
             See README, \"Upgrading\"",
            address(config),
            config.get_dbname().unwrap_or("(user's database)")
        )));
    }
    c.batch_execute(&format!(
        "{SCHEMA_SQL}; SELECT pg_advisory_unlock(7415570);"
    ))
    .map_err(|e| err("applying schema.sql", why(&e)))
}

/// Connects to the server's `postgres` database and creates the target
/// database if it is missing (two instances racing here is harmless).
fn create_database_if_missing(config: &postgres::Config) -> Result<(), StorageError> {
    let Some(db) = config.get_dbname().map(str::to_string) else {
        return Ok(());
    };
    // Try the target first: the common case needs no maintenance connection.
    if config.connect(NoTls).is_ok() {
        return Ok(());
    }
    let mut admin = config.clone();
    admin.dbname("postgres");
    let mut c = admin
        .connect(NoTls)
        .map_err(|e| connect_error(config, &e))?;
    let exists = c
        .query_typed_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[(&db, Type::TEXT)],
        )
        .map_err(|e| err("looking up the database", e))?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", db.replace('"', "\"\""));
        match c.batch_execute(&format!("CREATE DATABASE {quoted}")) {
            Ok(()) => log::info!("created database {db}"),
            // 42P04: created by someone else meanwhile.
            Err(e) if e.code().map(|c| c.code()) == Some("42P04") => {}
            // 42501 insufficient_privilege
            Err(e) if e.code().map(|c| c.code()) == Some("42501") => {
                return Err(StorageError(format!(
                    "cannot create database {db} at PostgreSQL {}: permission denied. \
                     Give the user CREATEDB, or create it first: createdb {db} \
                     (see README, \"PostgreSQL\")",
                    address(config)
                )))
            }
            Err(e) => return Err(err("creating the database", why(&e))),
        }
    }
    Ok(())
}

const APPEND_SQL: &str = "\
WITH moved AS (
    UPDATE stores SET head = $3 WHERE store_id = $1 AND head = $2 RETURNING store_id
), inserted AS (
    INSERT INTO events (store_id, seq_num, parent_seq_num, name, args, created_at, client_id, session_id)
    SELECT m.store_id, e.seq_num, e.parent_seq_num, e.name, e.args::json, $4, e.client_id, e.session_id
    FROM moved m,
         unnest($5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[])
             AS e(seq_num, parent_seq_num, name, args, client_id, session_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM inserted),
       (SELECT count(pg_notify('livestore_sync', $11)) FROM moved)";

const READ_SQL: &str = "\
SELECT seq_num, parent_seq_num, name, args::text, client_id, session_id, created_at
FROM events WHERE store_id = $1 AND seq_num > $2 AND seq_num <= $3
ORDER BY seq_num LIMIT $4";

/// A store's summary (`octet_length`: bytes, as SQLite's count).
const SUMMARY_SQL: &str = "\
SELECT s.store_id, s.head, s.backend_id, count(e.seq_num),
       coalesce(sum(octet_length(e.name) + coalesce(octet_length(e.args::text), 0)
                    + octet_length(e.client_id) + octet_length(e.session_id)), 0)::bigint,
       max(e.created_at)
FROM stores s LEFT JOIN events e ON e.store_id = s.store_id";

/// One chunk of an import: the events' columns as arrays.
const IMPORT_SQL: &str = "\
INSERT INTO events (store_id, seq_num, parent_seq_num, name, args, created_at, client_id, session_id)
SELECT $1, e.seq_num, e.parent_seq_num, e.name, e.args::json, e.created_at, e.client_id, e.session_id
FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[])
    AS e(seq_num, parent_seq_num, name, args, created_at, client_id, session_id)";

/// An import sends its events in chunks of at most this many events, or
/// about this many bytes.
const IMPORT_CHUNK_EVENTS: usize = 1_000;
const IMPORT_CHUNK_BYTES: usize = 8 << 20;

fn summary(row: &postgres::Row) -> StoreSummary {
    StoreSummary {
        store_id: row.get(0),
        head: row.get(1),
        backend_id: row.get(2),
        events: row.get(3),
        bytes: row.get(4),
        last_write: row.get(5),
    }
}

/// The columns of an import chunk.
#[derive(Default)]
struct Chunk {
    seq: Vec<i64>,
    parent: Vec<i64>,
    name: Vec<String>,
    args: Vec<Option<String>>,
    created_at: Vec<SystemTime>,
    client: Vec<String>,
    session: Vec<String>,
    bytes: usize,
}

impl Chunk {
    fn push(&mut self, e: StoredEvent) {
        let StoredEvent { event, created_at } = e;
        self.bytes += event.json_len_estimate();
        self.seq.push(event.seq_num);
        self.parent.push(event.parent_seq_num);
        self.name.push(event.name);
        self.args.push(event.args.map(String::from));
        self.created_at.push(created_at);
        self.client.push(event.client_id);
        self.session.push(event.session_id);
    }

    fn full(&self) -> bool {
        self.seq.len() >= IMPORT_CHUNK_EVENTS || self.bytes >= IMPORT_CHUNK_BYTES
    }

    /// Inserts the chunk and empties it.
    fn flush(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
        insert: &postgres::Statement,
        store_id: &str,
    ) -> Result<(), StorageError> {
        if self.seq.is_empty() {
            return Ok(());
        }
        tx.execute(
            insert,
            &[
                &store_id,
                &self.seq,
                &self.parent,
                &self.name,
                &self.args,
                &self.created_at,
                &self.client,
                &self.session,
            ],
        )
        .map_err(|e| err("import: inserting events", e))?;
        *self = Chunk::default();
        Ok(())
    }
}

impl Storage for PgStorage {
    fn open_store(&self, store_id: &str) -> Result<StoreMeta, StorageError> {
        let mut c = self.conn()?;
        let fresh = new_backend_id();
        // Insert-if-missing and read back in one round trip. When another
        // instance is inserting the same store, the insert waits for it and
        // does nothing, and the read cannot see its row either (the
        // statement's snapshot predates that commit): no row. The row is
        // committed by then, so the statement run again reads it.
        for _ in 0..3 {
            let row = c
                .query_typed_opt(
                    "WITH ins AS (
                        INSERT INTO stores (store_id, backend_id) VALUES ($1, $2)
                        ON CONFLICT (store_id) DO NOTHING RETURNING head, backend_id
                     )
                     SELECT head, backend_id FROM ins
                     UNION ALL SELECT head, backend_id FROM stores WHERE store_id = $1
                     LIMIT 1",
                    &[(&store_id, Type::TEXT), (&fresh, Type::TEXT)],
                )
                .map_err(|e| err("opening store", e))?;
            if let Some(row) = row {
                return Ok(StoreMeta {
                    head: row.get(0),
                    backend_id: row.get(1),
                });
            }
        }
        Err(err("opening store", "no row for the store after 3 tries"))
    }

    fn append(
        &self,
        store_id: &str,
        expected_head: i64,
        events: &[Event],
        created_at: SystemTime,
    ) -> Result<(), AppendError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let seq: Vec<i64> = events.iter().map(|e| e.seq_num).collect();
        let parent: Vec<i64> = events.iter().map(|e| e.parent_seq_num).collect();
        let name: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        let args: Vec<Option<&str>> = events.iter().map(|e| e.args.as_deref()).collect();
        let client: Vec<&str> = events.iter().map(|e| e.client_id.as_str()).collect();
        let session: Vec<&str> = events.iter().map(|e| e.session_id.as_str()).collect();
        let notice = notice_text(&self.instance, store_id, "h", &last.seq_num.to_string());
        // In the order (and of the types) `Manager::connect` prepared.
        let params: [&(dyn ToSql + Sync); 11] = [
            &store_id,
            &expected_head,
            &last.seq_num,
            &created_at,
            &seq,
            &parent,
            &name,
            &args,
            &client,
            &session,
            &notice,
        ];
        let mut pooled = self.conn()?;
        let c: &mut PgConn = &mut pooled;
        match c.client.query_one(&c.append, &params) {
            Ok(row) => {
                let moved: i64 = row.get(0);
                let inserted: i64 = row.get(1);
                if moved == 1 && inserted == events.len() as i64 {
                    Ok(())
                } else {
                    Err(AppendError::Conflict {
                        head: current_head(&mut c.client, store_id)?,
                    })
                }
            }
            // 23505 unique_violation: a seq_num is taken (the statement rolled back).
            Err(e) if e.code().map(|c| c.code()) == Some("23505") => Err(AppendError::Conflict {
                head: current_head(&mut c.client, store_id)?,
            }),
            Err(e) => Err(AppendError::Storage(err("appending events", e))),
        }
    }

    fn read(
        &self,
        store_id: &str,
        after: i64,
        up_to: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        if up_to <= after || limit == 0 {
            return Ok(Vec::new());
        }
        let limit = limit as i64;
        let mut pooled = self.conn()?;
        let c: &mut PgConn = &mut pooled;
        let rows = c
            .client
            .query(&c.read, &[&store_id, &after, &up_to, &limit])
            .map_err(|e| err("reading events", e))?;
        // The `json` column guarantees valid JSON text: no re-parse here.
        Ok(rows
            .iter()
            .map(|row| StoredEvent {
                event: Event {
                    seq_num: row.get(0),
                    parent_seq_num: row.get(1),
                    name: row.get(2),
                    args: row.get::<_, Option<String>>(3).map(String::into_boxed_str),
                    client_id: row.get(4),
                    session_id: row.get(5),
                },
                created_at: row.get(6),
            })
            .collect())
    }

    fn reset(&self, store_id: &str, new_backend_id: &str) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| err("reset", e))?;
        // The store row first: that locks it, so an append of another
        // instance either committed before (and its events are deleted
        // below: each statement sees what committed before it) or waits and
        // then finds the head moved. Events first could leave an append's
        // events behind a head of 0.
        tx.query_typed(
            "INSERT INTO stores (store_id, head, backend_id) VALUES ($1, 0, $2)
             ON CONFLICT (store_id) DO UPDATE SET head = 0, backend_id = EXCLUDED.backend_id",
            &[(&store_id, Type::TEXT), (&new_backend_id, Type::TEXT)],
        )
        .map_err(|e| err("reset: store row", e))?;
        tx.query_typed(
            "DELETE FROM events WHERE store_id = $1",
            &[(&store_id, Type::TEXT)],
        )
        .map_err(|e| err("reset: deleting events", e))?;
        // Delivered at commit, to every instance listening.
        self.notify(&mut tx, store_id, "r", new_backend_id)
            .map_err(|e| err("reset: notify", e))?;
        tx.commit().map_err(|e| err("reset: commit", e))
    }

    fn list_stores(&self) -> Result<Vec<StoreSummary>, StorageError> {
        let mut c = self.conn()?;
        // COLLATE "C": byte order, as SQLite's BINARY (not the database's locale).
        let rows = c
            .query_typed(
                &format!("{SUMMARY_SQL} GROUP BY s.store_id ORDER BY s.store_id COLLATE \"C\""),
                &[],
            )
            .map_err(|e| err("listing stores", e))?;
        Ok(rows.iter().map(summary).collect())
    }

    fn store_summary(&self, store_id: &str) -> Result<Option<StoreSummary>, StorageError> {
        let mut c = self.conn()?;
        let row = c
            .query_typed_opt(
                &format!("{SUMMARY_SQL} WHERE s.store_id = $1 GROUP BY s.store_id"),
                &[(&store_id, Type::TEXT)],
            )
            .map_err(|e| err("reading a store's summary", e))?;
        Ok(row.as_ref().map(summary))
    }

    fn delete_store(&self, store_id: &str) -> Result<bool, StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| err("delete", e))?;
        // The row first, for the reason given in `reset`: an append either
        // committed before (its events go too) or finds no row to move.
        let existed = !tx
            .query_typed(
                "DELETE FROM stores WHERE store_id = $1 RETURNING 1",
                &[(&store_id, Type::TEXT)],
            )
            .map_err(|e| err("delete: store row", e))?
            .is_empty();
        tx.query_typed(
            "DELETE FROM events WHERE store_id = $1",
            &[(&store_id, Type::TEXT)],
        )
        .map_err(|e| err("delete: events", e))?;
        if existed {
            self.notify(&mut tx, store_id, "d", "")
                .map_err(|e| err("delete: notify", e))?;
        }
        tx.commit().map_err(|e| err("delete: commit", e))?;
        Ok(existed)
    }

    fn import(
        &self,
        store_id: &str,
        backend_id: Option<&str>,
        replace: bool,
        events: &mut dyn Iterator<Item = Result<StoredEvent, String>>,
    ) -> Result<u64, ImportError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| err("import", e))?;
        // Lock the store row (creating it if missing) before looking at its
        // events: appends of other instances wait, then find the head moved.
        let fresh = new_backend_id();
        let created = !tx
            .query_typed(
                "INSERT INTO stores (store_id, backend_id) VALUES ($1, $2)
                 ON CONFLICT (store_id) DO NOTHING RETURNING 1",
                &[(&store_id, Type::TEXT), (&fresh, Type::TEXT)],
            )
            .map_err(|e| err("import: store row", e))?
            .is_empty();
        let row = tx
            .query_typed_one(
                "SELECT head, backend_id,
                        EXISTS (SELECT 1 FROM events WHERE store_id = $1)
                 FROM stores WHERE store_id = $1 FOR UPDATE",
                &[(&store_id, Type::TEXT)],
            )
            .map_err(|e| err("import: store row", e))?;
        let (head, old_backend_id, has_events): (i64, String, bool) =
            (row.get(0), row.get(1), row.get(2));
        if (head > 0 || has_events) && !replace {
            return Err(ImportError::NotEmpty { head });
        }
        if replace {
            tx.query_typed(
                "DELETE FROM events WHERE store_id = $1",
                &[(&store_id, Type::TEXT)],
            )
            .map_err(|e| err("import: deleting events", e))?;
        }
        let insert = tx
            .prepare_typed(
                IMPORT_SQL,
                &[
                    Type::TEXT,
                    Type::INT8_ARRAY,
                    Type::INT8_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TIMESTAMPTZ_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                ],
            )
            .map_err(|e| err("import: prepare", e))?;
        let mut chain = ImportChain::default();
        let mut chunk = Chunk::default();
        for item in events {
            let stored = item.map_err(ImportError::Source)?;
            chain.next(&stored.event)?;
            chunk.push(stored);
            if chunk.full() {
                chunk.flush(&mut tx, &insert, store_id)?;
            }
        }
        chunk.flush(&mut tx, &insert, store_id)?;
        let old_backend_id = (!created).then_some(old_backend_id);
        let backend_id = match (backend_id, &old_backend_id) {
            (Some(given), _) => given.to_string(),
            (None, Some(old)) if !replace => old.clone(),
            _ => new_backend_id(),
        };
        tx.query_typed(
            "UPDATE stores SET head = $2, backend_id = $3 WHERE store_id = $1",
            &[
                (&store_id, Type::TEXT),
                (&chain.head(), Type::INT8),
                (&backend_id, Type::TEXT),
            ],
        )
        .map_err(|e| err("import: store row", e))?;
        // Delivered at commit, in this order: the reset closes the store's
        // sockets, the append brings the new head.
        if replace || old_backend_id.as_deref() != Some(backend_id.as_str()) {
            self.notify(&mut tx, store_id, "r", &backend_id)
                .map_err(|e| err("import: notify", e))?;
        }
        if chain.head() > 0 {
            self.notify(&mut tx, store_id, "h", &chain.head().to_string())
                .map_err(|e| err("import: notify", e))?;
        }
        tx.commit().map_err(|e| err("import: commit", e))?;
        Ok(chain.count())
    }

    fn schema_version(&self) -> Result<i64, StorageError> {
        let mut c = self.conn()?;
        let row = c
            .query_typed_one(
                "SELECT coalesce(max(version), 0)::bigint FROM schema_version",
                &[],
            )
            .map_err(|e| err("reading the schema version", e))?;
        Ok(row.get(0))
    }

    fn health(&self) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        c.simple_query("SELECT 1")
            .map(|_| ())
            .map_err(|e| err("health check", e))
    }

    fn shared(&self) -> bool {
        true
    }

    fn pool_state(&self) -> Option<super::PoolState> {
        let state = self.pool.state();
        Some(super::PoolState {
            in_use: u64::from(state.connections - state.idle_connections),
            idle: u64::from(state.idle_connections),
            waiting: self.waiting.load(std::sync::atomic::Ordering::Relaxed),
            max: u64::from(self.pool.max_size()),
        })
    }

    fn watch(&self, deliver: Box<dyn Fn(Notice) + Send + Sync>) -> Option<Watch> {
        let watch = Watch::default();
        let mut config = self.config.clone();
        // Named, so an operator (and our tests) can tell it in pg_stat_activity.
        config.application_name("livestore-sync listener");
        let listener = Listener {
            config,
            instance: self.instance.clone(),
            watch: watch.clone(),
            deliver,
        };
        // The first LISTEN before returning: the server is ready (and
        // healthy) only once it hears the other instances.
        let client = match listener.connect() {
            Ok(c) => {
                watch.set_up(true);
                Some(c)
            }
            Err(e) => {
                log::error!("cross-instance notices down: {}; reconnecting", why(&e));
                None
            }
        };
        let spawned = std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || listener.run(client));
        if let Err(e) = spawned {
            log::error!("cannot start the PostgreSQL listener thread: {e}");
        }
        Some(watch)
    }
}

/// The channel every instance `LISTEN`s on.
const CHANNEL: &str = "livestore_sync";

/// A notice's payload: `{"i":instance,"s":store,"h":head}` after an append,
/// `{"i":…,"s":…,"r":backend_id}` after a reset, `{"i":…,"s":…,"d":""}`
/// after a delete (an older instance ignores a key it does not know). JSON, because a store id
/// may contain any character. (PostgreSQL caps a payload at 8,000 bytes;
/// a longer store id is not announced, and the instances notice it on their
/// next pull or push of that store, which read the stored head.)
fn notice_text(instance: &str, store_id: &str, key: &str, value: &str) -> String {
    let text = serde_json::json!({"i": instance, "s": store_id, key: value}).to_string();
    if text.len() < 7_900 {
        text
    } else {
        serde_json::json!({"i": instance, "s": "", "h": "0"}).to_string()
    }
}

/// A notice as another instance sent it; `None` for our own or a malformed one.
fn parse_notice(payload: &str, own: &str) -> Option<Notice> {
    #[derive(serde::Deserialize)]
    struct Payload {
        i: String,
        s: String,
        h: Option<String>,
        r: Option<String>,
        d: Option<String>,
    }
    let p: Payload = serde_json::from_str(payload).ok()?;
    if p.i == own || p.s.is_empty() {
        return None;
    }
    match (p.h, p.r, p.d) {
        (Some(h), None, None) => Some(Notice::Appended {
            store_id: p.s,
            head: h.parse().ok()?,
        }),
        (None, Some(backend_id), None) => Some(Notice::Reset {
            store_id: p.s,
            backend_id,
        }),
        (None, None, Some(_)) => Some(Notice::Deleted { store_id: p.s }),
        _ => None,
    }
}

/// One dedicated connection outside the pool, `LISTEN`ing; reconnects after
/// any failure and then asks for a resync (notices sent while it was away
/// are lost; the log is not).
struct Listener {
    config: postgres::Config,
    instance: String,
    watch: Watch,
    deliver: Box<dyn Fn(Notice) + Send + Sync>,
}

impl Listener {
    fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(client)
    }

    fn run(self, mut client: Option<postgres::Client>) {
        let mut backoff = Duration::from_millis(200);
        while !self.watch.is_stopped() {
            let connected = match client.take() {
                Some(c) => Ok(c),
                None => self.connect().inspect(|_| {
                    log::info!("cross-instance notices up again; catching up from the log");
                    // Notices sent while nobody listened are lost: compare
                    // every store in use with the log.
                    (self.deliver)(Notice::Resync);
                }),
            };
            let result = connected.and_then(|c| {
                self.watch.set_up(true);
                backoff = Duration::from_millis(200);
                self.listen(c)
            });
            if let Err(e) = result {
                if self.watch.is_up() {
                    log::error!("cross-instance notices down: {}; reconnecting", why(&e));
                }
                self.watch.set_up(false);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }

    /// Delivers notices until the connection fails (or the watch is
    /// stopped: `Ok`).
    fn listen(&self, mut client: postgres::Client) -> Result<(), postgres::Error> {
        let mut quiet = 0;
        while !self.watch.is_stopped() {
            let mut got = false;
            {
                let mut notes = client.notifications();
                let mut iter = notes.timeout_iter(Duration::from_secs(1));
                while let Some(n) = iter.next()? {
                    got = true;
                    if let Some(notice) = parse_notice(n.payload(), &self.instance) {
                        (self.deliver)(notice);
                    }
                }
            }
            quiet = if got { 0 } else { quiet + 1 };
            if quiet >= 10 {
                // Quiet for 10 s: make sure the connection is still there.
                client.simple_query("SELECT 1")?;
                quiet = 0;
            }
        }
        Ok(())
    }
}

fn current_head(c: &mut postgres::Client, store_id: &str) -> Result<i64, StorageError> {
    let row = c
        .query_typed_opt(
            "SELECT head FROM stores WHERE store_id = $1",
            &[(&store_id, Type::TEXT)],
        )
        .map_err(|e| err("reading head", e))?;
    Ok(row.map(|r| r.get(0)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_our_own_are_skipped() {
        let text = notice_text("me", "store \"x\" ü", "h", "42");
        assert_eq!(parse_notice(&text, "me"), None);
        assert_eq!(
            parse_notice(&text, "other"),
            Some(Notice::Appended {
                store_id: "store \"x\" ü".into(),
                head: 42
            })
        );
        let reset = notice_text("a", "s", "r", "NEWID");
        assert_eq!(
            parse_notice(&reset, "b"),
            Some(Notice::Reset {
                store_id: "s".into(),
                backend_id: "NEWID".into()
            })
        );
        let delete = notice_text("a", "s", "d", "");
        assert_eq!(
            parse_notice(&delete, "b"),
            Some(Notice::Deleted {
                store_id: "s".into()
            })
        );
        assert_eq!(parse_notice(&delete, "a"), None);
        assert_eq!(parse_notice("not json", "b"), None);
        // Too long for PostgreSQL's payload limit: announced as nothing.
        let long = "x".repeat(10_000);
        assert_eq!(parse_notice(&notice_text("a", &long, "h", "1"), "b"), None);
    }

    #[test]
    fn shown_urls_never_hold_a_password() {
        assert_eq!(
            redact_url("postgresql://alice:s3cret@db:5432/live"),
            "postgresql://alice:***@db:5432/live"
        );
        assert_eq!(
            redact_url("postgres://alice@db:x/live?sslmode=off"),
            "postgres://alice@db:x/live?sslmode=off"
        );
        assert_eq!(
            redact_url("postgres://db/live?user=a&password=s3cret&x=1"),
            "postgres://db/live?user=a&password=***"
        );
        assert_eq!(redact_url("s3cret"), "(not shown)");
    }

    /// `SCHEMA_VERSION` is the last version `schema.sql` records.
    #[test]
    fn the_known_schema_version_is_the_last_in_schema_sql() {
        let last = SCHEMA_SQL
            .lines()
            .filter_map(|l| l.strip_prefix("INSERT INTO schema_version (version) VALUES ("))
            .filter_map(|rest| rest.split(')').next()?.trim().parse::<i32>().ok())
            .next_back();
        assert_eq!(last, Some(SCHEMA_VERSION));
    }
}
