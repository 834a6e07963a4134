//! The PostgreSQL storage: an r2d2 pool of synchronous `postgres` clients.
//!
//! Every statement is sent with `query_typed` (parameter types given
//! up front), so each call is one round trip with no separate prepare.
//! A push is one statement: a data-modifying CTE that moves the head only if
//! it still is the expected one and inserts the events only if it moved, so
//! a second instance with a stale head gets `Conflict`, never a fork.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use postgres::types::{ToSql, Type};
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use serde_json::value::RawValue;

use super::{new_backend_id, AppendError, Storage, StorageError, StoreMeta};
use crate::sync::event::{Event, StoredEvent};

/// The schema, applied idempotently at every start.
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// Settings of the connection pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub min_idle: u32,
    pub max_size: u32,
    pub connection_timeout: Duration,
}

pub struct PgStorage {
    pool: Pool,
}

fn err(context: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError(format!("{context}: {e}"))
}

impl PgStorage {
    /// Connects, creating the database if it does not exist, and applies
    /// `schema.sql`.
    pub fn connect(url: &str, options: &PoolOptions) -> Result<PgStorage, StorageError> {
        let config = postgres::Config::from_str(url).map_err(|e| err("invalid DATABASE_URL", e))?;
        create_database_if_missing(&config)?;
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .min_idle(Some(options.min_idle.min(options.max_size)))
            .max_size(options.max_size.max(1))
            .connection_timeout(options.connection_timeout)
            // Our own log line says what failed; r2d2's default handler would log too.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|e| err("cannot connect to PostgreSQL", e))?;
        let storage = PgStorage { pool };
        storage.apply_schema()?;
        Ok(storage)
    }

    fn conn(
        &self,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StorageError> {
        self.pool
            .get()
            .map_err(|e| err("no PostgreSQL connection", e))
    }

    fn apply_schema(&self) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        // An advisory lock keeps two instances starting at once from racing
        // on CREATE TABLE IF NOT EXISTS (which is not concurrency-safe).
        c.batch_execute(&format!(
            "SELECT pg_advisory_lock(7415570); {SCHEMA_SQL}; SELECT pg_advisory_unlock(7415570);"
        ))
        .map_err(|e| err("applying schema.sql", e))
    }

    /// Number of events stored for a store (for admin info).
    pub fn event_count(&self, store_id: &str) -> Result<i64, StorageError> {
        let mut c = self.conn()?;
        let row = c
            .query_typed_one(
                "SELECT count(*) FROM events WHERE store_id = $1",
                &[(&store_id, Type::TEXT)],
            )
            .map_err(|e| err("counting events", e))?;
        Ok(row.get(0))
    }
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
        .map_err(|e| err("cannot connect to PostgreSQL", e))?;
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
            Err(e) => return Err(err("creating the database", e)),
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
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM inserted)";

const READ_SQL: &str = "\
SELECT seq_num, parent_seq_num, name, args::text, client_id, session_id, created_at
FROM events WHERE store_id = $1 AND seq_num > $2 AND seq_num <= $3
ORDER BY seq_num LIMIT $4";

impl Storage for PgStorage {
    fn open_store(&self, store_id: &str) -> Result<StoreMeta, StorageError> {
        let mut c = self.conn()?;
        let fresh = new_backend_id();
        // Insert-if-missing and read back in one round trip.
        let row = c
            .query_typed_one(
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
        Ok(StoreMeta {
            head: row.get(0),
            backend_id: row.get(1),
        })
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
        let args: Vec<Option<&str>> = events
            .iter()
            .map(|e| e.args.as_deref().map(RawValue::get))
            .collect();
        let client: Vec<&str> = events.iter().map(|e| e.client_id.as_str()).collect();
        let session: Vec<&str> = events.iter().map(|e| e.session_id.as_str()).collect();
        let params: [(&(dyn ToSql + Sync), Type); 10] = [
            (&store_id, Type::TEXT),
            (&expected_head, Type::INT8),
            (&last.seq_num, Type::INT8),
            (&created_at, Type::TIMESTAMPTZ),
            (&seq, Type::INT8_ARRAY),
            (&parent, Type::INT8_ARRAY),
            (&name, Type::TEXT_ARRAY),
            (&args, Type::TEXT_ARRAY),
            (&client, Type::TEXT_ARRAY),
            (&session, Type::TEXT_ARRAY),
        ];
        let mut c = self.conn()?;
        match c.query_typed_one(APPEND_SQL, &params) {
            Ok(row) => {
                let moved: i64 = row.get(0);
                let inserted: i64 = row.get(1);
                if moved == 1 && inserted == events.len() as i64 {
                    Ok(())
                } else {
                    Err(AppendError::Conflict {
                        head: current_head(&mut c, store_id)?,
                    })
                }
            }
            // 23505 unique_violation: a seq_num is taken (the statement rolled back).
            Err(e) if e.code().map(|c| c.code()) == Some("23505") => Err(AppendError::Conflict {
                head: current_head(&mut c, store_id)?,
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
        let mut c = self.conn()?;
        let rows = c
            .query_typed(
                READ_SQL,
                &[
                    (&store_id, Type::TEXT),
                    (&after, Type::INT8),
                    (&up_to, Type::INT8),
                    (&limit, Type::INT8),
                ],
            )
            .map_err(|e| err("reading events", e))?;
        rows.iter()
            .map(|row| {
                let args: Option<String> = row.get(3);
                let args = match args {
                    Some(text) => Some(
                        RawValue::from_string(text)
                            .map_err(|e| err("stored args are not JSON", e))?,
                    ),
                    None => None,
                };
                Ok(StoredEvent {
                    event: Event {
                        seq_num: row.get(0),
                        parent_seq_num: row.get(1),
                        name: row.get(2),
                        args,
                        client_id: row.get(4),
                        session_id: row.get(5),
                    },
                    created_at: row.get(6),
                })
            })
            .collect()
    }

    fn reset(&self, store_id: &str, new_backend_id: &str) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(|e| err("reset", e))?;
        tx.query_typed(
            "DELETE FROM events WHERE store_id = $1",
            &[(&store_id, Type::TEXT)],
        )
        .map_err(|e| err("reset: deleting events", e))?;
        tx.query_typed(
            "INSERT INTO stores (store_id, head, backend_id) VALUES ($1, 0, $2)
             ON CONFLICT (store_id) DO UPDATE SET head = 0, backend_id = EXCLUDED.backend_id",
            &[(&store_id, Type::TEXT), (&new_backend_id, Type::TEXT)],
        )
        .map_err(|e| err("reset: store row", e))?;
        tx.commit().map_err(|e| err("reset: commit", e))
    }

    fn health(&self) -> Result<(), StorageError> {
        let mut c = self.conn()?;
        c.simple_query("SELECT 1")
            .map(|_| ())
            .map_err(|e| err("health check", e))
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
