//! Where the event log lives, behind one small interface.
//!
//! The sync core (`crate::sync`) only talks to [`Storage`]. Two backends:
//! `sqlite.rs` (embedded, one file, the default) and `postgres.rs` (several
//! instances, production). [`Backend::choose`] picks one from the settings,
//! [`open`] opens it for the server and [`open_for_tool`] for the command
//! line (next to a running server). Storage uses only the leaf model
//! (`crate::model`).

pub mod postgres;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::model::{check_chain, ChainError, Event, StoreMeta, StoredEvent};

/// A storage failure (connection lost, pool exhausted, disk full, …).
/// The caller answers the request with an error and keeps the connection;
/// nothing was written.
#[derive(Debug, PartialEq, Eq)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage error: {}", self.0)
    }
}

impl std::error::Error for StorageError {}

/// Why an append did not happen.
#[derive(Debug)]
pub enum AppendError {
    /// The stored head is not the one the caller expected (another server
    /// instance appended first). Nothing was written; the caller reloads
    /// its head from `head` and rejects the push as stale.
    Conflict { head: i64 },
    /// See [`StorageError`]. Nothing was written.
    Storage(StorageError),
}

impl From<StorageError> for AppendError {
    fn from(e: StorageError) -> Self {
        AppendError::Storage(e)
    }
}

/// One store as `stores list` / `stores info` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSummary {
    pub store_id: String,
    /// `stores.head`: seq_num of the last event (0: empty).
    pub head: i64,
    /// How many event rows the store has.
    pub events: i64,
    /// Sum over its events of the bytes of `name`, `args` (as text; 0 when
    /// absent), `client_id` and `session_id`: about what a full pull sends.
    pub bytes: i64,
    /// The newest event's `created_at`; `None` when it has none.
    pub last_write: Option<SystemTime>,
    pub backend_id: String,
}

impl StoreSummary {
    /// The JSON the command line (`stores list --json`) and the admin API
    /// show: `storeId`, `head`, `events`, `bytes`, `lastWrite` (ISO-8601 or
    /// null), `backendId`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "storeId": self.store_id,
            "head": self.head,
            "events": self.events,
            "bytes": self.bytes,
            "lastWrite": self.last_write.map(crate::timefmt::iso8601),
            "backendId": self.backend_id,
        })
    }
}

/// Why an import did not happen. In every case nothing was written.
#[derive(Debug)]
pub enum ImportError {
    /// The target store has events and `replace` was false: import with
    /// `replace` to wipe them, or into another store.
    NotEmpty { head: i64 },
    /// The events do not chain `1, 2, 3, …` from parent 0 (each `seqNum` is
    /// `parentSeqNum + 1`, each parent the previous `seqNum`); the text says
    /// which event. Fix the file.
    Chain(String),
    /// The events' source (the caller's iterator) yielded this error: the
    /// caller's file is bad; report it.
    Source(String),
    /// See [`StorageError`]; report it and try again.
    Storage(StorageError),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::NotEmpty { head } => write!(
                f,
                "the store is not empty (head {head}); nothing was imported (replace it to import)"
            ),
            ImportError::Chain(why) => write!(f, "the events do not chain: {why}"),
            ImportError::Source(why) => write!(f, "reading the events failed: {why}"),
            ImportError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<StorageError> for ImportError {
    fn from(e: StorageError) -> Self {
        ImportError::Storage(e)
    }
}

/// The chain rule of an import, one event at a time: the log a push builds
/// (see `model::check_chain`), so the events must be exactly `1, 2, 3, …`
/// from parent 0. Every backend's `import` runs its events through it while
/// inserting.
#[derive(Debug, Default)]
pub struct ImportChain {
    head: i64,
    count: u64,
}

impl ImportChain {
    /// Checks that `e` continues the events seen so far.
    pub fn next(&mut self, e: &Event) -> Result<(), ImportError> {
        self.count += 1;
        if let Err(err) = check_chain(self.head, std::slice::from_ref(e)) {
            let at = match self.count {
                1 => "the first event".to_string(),
                n => format!("event #{n}"),
            };
            let why = match err {
                ChainError::WrongParent { .. } => "its parentSeqNum is not the previous seqNum",
                ChainError::Broken { .. } => "its seqNum is not parentSeqNum + 1",
            };
            return Err(ImportError::Chain(format!(
                "{at} (seqNum {}, parentSeqNum {}): {why}; expected seqNum {} with parentSeqNum {}",
                e.seq_num,
                e.parent_seq_num,
                self.head + 1,
                self.head
            )));
        }
        self.head = e.seq_num;
        Ok(())
    }

    /// The last seq_num seen (0 before any).
    pub fn head(&self) -> i64 {
        self.head
    }

    /// How many events were checked.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The storage interface. Every method is blocking and may be called from
/// many threads at once; per-store ordering is the caller's job (the store
/// mutex in `sync::hub`), but `append` must still refuse to fork a log when
/// several processes share the storage.
pub trait Storage: Send + Sync {
    /// Loads a store's head and backend id, creating the store (head 0, a
    /// fresh backend id) if it does not exist yet.
    fn open_store(&self, store_id: &str) -> Result<StoreMeta, StorageError>;

    /// Appends `events` (already checked to chain from `expected_head`)
    /// atomically and durably, and moves the head to the last one. Fails with
    /// `Conflict` and writes nothing if the stored head is not `expected_head`
    /// or a seq_num is taken.
    fn append(
        &self,
        store_id: &str,
        expected_head: i64,
        events: &[Event],
        created_at: SystemTime,
    ) -> Result<(), AppendError>;

    /// Events with `after < seq_num <= up_to`, ascending, at most `limit`.
    fn read(
        &self,
        store_id: &str,
        after: i64,
        up_to: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StorageError>;

    /// Deletes every event of the store, sets its head to 0 and its backend
    /// id to `new_backend_id`.
    fn reset(&self, store_id: &str, new_backend_id: &str) -> Result<(), StorageError>;

    /// Cheap liveness probe for `/health`.
    fn health(&self) -> Result<(), StorageError>;

    /// Every store, ordered by store id (byte order on every backend).
    /// Reads every event row: an operator's command, not a server path.
    fn list_stores(&self) -> Result<Vec<StoreSummary>, StorageError>;

    /// One store; `None` if it does not exist (never creates it).
    fn store_summary(&self, store_id: &str) -> Result<Option<StoreSummary>, StorageError>;

    /// Deletes the store's events and its row, in one transaction;
    /// `Ok(false)` when there was no such store. Other processes serving it
    /// are told ([`Notice::Deleted`]); the next use of the id creates it
    /// again, empty, with a new backend id.
    fn delete_store(&self, store_id: &str) -> Result<bool, StorageError>;

    /// Writes a whole store in one transaction: all of `events` or nothing.
    ///
    /// - A store with events is refused with `NotEmpty` unless `replace`;
    ///   with `replace` its events are deleted first.
    /// - The events must chain from parent 0 without a gap ([`ImportChain`]),
    ///   checked while inserting: a break is `Chain` and rolls everything back;
    ///   so does an `Err` from `events` (`Source`).
    /// - Each event's `created_at` is kept. Afterwards the head is the last
    ///   seq_num (0 if none) and the backend id is `backend_id` if given,
    ///   else the existing one (an existing, empty store without `replace`),
    ///   else a new one.
    /// - Other processes serving the store are told: a [`Notice::Reset`]
    ///   when the history was replaced or the backend id changed, then a
    ///   [`Notice::Appended`] with the new head.
    ///
    /// Returns how many events were written. Holds the store (PostgreSQL:
    /// its row; SQLite: the whole file's write lock) until it commits.
    fn import(
        &self,
        store_id: &str,
        backend_id: Option<&str>,
        replace: bool,
        events: &mut dyn Iterator<Item = Result<StoredEvent, String>>,
    ) -> Result<u64, ImportError>;

    /// The schema version this storage is at (PostgreSQL: the highest
    /// `schema_version.version`; SQLite: `PRAGMA user_version`).
    fn schema_version(&self) -> Result<i64, StorageError>;

    /// Whether other processes may write this storage (several instances on
    /// one PostgreSQL). Then a cached head may be stale, and pulls check the
    /// stored head first. Default: no (an embedded, single-process storage).
    fn shared(&self) -> bool {
        false
    }

    /// Starts delivering notices of other processes' changes to `deliver`,
    /// from a thread of the storage's own, until the watch is stopped.
    /// `None`: nobody else writes this storage.
    fn watch(&self, deliver: Box<dyn Fn(Notice) + Send + Sync>) -> Option<Watch> {
        let _ = deliver;
        None
    }

    /// The connection pool's figures right now (for `/metrics`); `None`
    /// for a storage without one.
    fn pool_state(&self) -> Option<PoolState> {
        None
    }
}

/// A storage's database connections at one moment (`Storage::pool_state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Connections checked out (PostgreSQL: of the pool; SQLite: readers).
    pub in_use: u64,
    /// Open and idle in the pool.
    pub idle: u64,
    /// Threads waiting: PostgreSQL, for a pooled connection; SQLite, appends
    /// queued for the next group commit of the one writer.
    pub waiting: u64,
    /// Most connections the pool opens; 0 when unbounded (SQLite opens a
    /// reader whenever none is idle).
    pub max: u64,
}

/// A change another process made, as the storage learns of it. A notice
/// says what moved, never the events themselves: the log stays the truth,
/// so a lost or coalesced notice loses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The store's head is now at least `head`.
    Appended { store_id: String, head: i64 },
    /// The store was reset: head 0, this backend id.
    Reset {
        store_id: String,
        backend_id: String,
    },
    /// The store was deleted: its events and its row are gone; its next use
    /// creates it again with a new backend id.
    Deleted { store_id: String },
    /// Notices may have been missed (the listener reconnected): compare
    /// every store in use with storage.
    Resync,
}

/// A running watch: whether notices from other processes are arriving
/// (for `/health`), and how to stop it.
#[derive(Debug, Clone, Default)]
pub struct Watch(std::sync::Arc<[std::sync::atomic::AtomicBool; 2]>);

impl Watch {
    pub fn is_up(&self) -> bool {
        self.0[0].load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set_up(&self, up: bool) {
        self.0[0].store(up, std::sync::atomic::Ordering::SeqCst)
    }

    /// Asks the watch to end (within about a second).
    pub fn stop(&self) {
        self.0[1].store(true, std::sync::atomic::Ordering::SeqCst)
    }

    pub fn is_stopped(&self) -> bool {
        self.0[1].load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Where the event log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A `postgresql://` or `postgres://` URL.
    Postgres(String),
    /// The SQLite database file.
    Sqlite(PathBuf),
}

impl Backend {
    /// From `DATABASE_URL` and `DATA_DIR`: no URL (or an empty one) is SQLite
    /// in `data_dir/livestore.db`; `postgresql://…` and `postgres://…` are
    /// PostgreSQL; `sqlite:///abs/file.db`, `sqlite://rel/file.db` and
    /// `sqlite:file.db` name a SQLite file (the path is taken as written:
    /// no `?` options, no percent-decoding; `DATA_DIR` is then unused).
    pub fn choose(database_url: Option<&str>, data_dir: &Path) -> Result<Backend, StorageError> {
        let url = database_url.map(str::trim).unwrap_or("");
        if url.is_empty() {
            return Ok(Backend::Sqlite(data_dir.join(sqlite::DB_FILE_NAME)));
        }
        if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            return Ok(Backend::Postgres(url.to_string()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path.ends_with('/') {
                return Err(StorageError(format!(
                    "DATABASE_URL {url}: name the database file, e.g. \
                     sqlite:///var/lib/livestore-sync/livestore.db (see README, \"Where the events live\")"
                )));
            }
            if path.contains('?') || path.starts_with(':') {
                return Err(StorageError(format!(
                    "DATABASE_URL {url}: only a file path is accepted after sqlite: (no ?options, \
                     no :memory:; see README, \"Where the events live\")"
                )));
            }
            return Ok(Backend::Sqlite(PathBuf::from(path)));
        }
        Err(StorageError(format!(
            "DATABASE_URL must start with postgresql://, postgres:// or sqlite: (or be unset for \
             SQLite in DATA_DIR); got {}. See README, \"Where the events live\"",
            // The scheme only: the rest may hold a password.
            match url.split_once("://") {
                Some((scheme, _)) => format!("`{scheme}://…`"),
                None => "a value without a scheme".to_string(),
            }
        )))
    }

    /// For the start-up log: the file, or PostgreSQL's user, host and
    /// database (never the password).
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(path) => format!("SQLite {} (WAL, synchronous=FULL)", path.display()),
            Backend::Postgres(url) => postgres::describe(url),
        }
    }
}

/// Opens `backend` for the server: for SQLite, creates the file's
/// directory if missing and takes the instance lock. Returns the storage
/// and a description for the start-up log.
pub fn open(
    backend: &Backend,
    pg_pool: &postgres::PoolOptions,
) -> Result<(Arc<dyn Storage>, String), StorageError> {
    open_with(backend, pg_pool, sqlite::SqliteOptions::default())
}

/// Opens `backend` for the command line, next to running servers or not.
///
/// - PostgreSQL: as [`open`] (the schema is applied) with the caller's pool;
///   the caller starts no `watch`.
/// - SQLite: if no server holds the instance lock, the tool takes it for
///   its whole life (no server starts mid-command) and migrates as a server
///   would; a missing file is created like the server does. If a server
///   holds it, the tool shares the file without the lock and without
///   migrating, and refuses a file whose schema version is not this
///   binary's ("stop the server to migrate"). Its resets, deletes and
///   imports reach the server through the `changes` table (see
///   `sqlite.rs`); its writes wait for the server's (and the server's for
///   its, up to SQLite's busy timeout of 5 s).
///
/// The description says which case it is.
pub fn open_for_tool(
    backend: &Backend,
    pg_pool: &postgres::PoolOptions,
) -> Result<(Arc<dyn Storage>, String), StorageError> {
    open_with(
        backend,
        pg_pool,
        sqlite::SqliteOptions {
            share_when_locked: true,
            ..Default::default()
        },
    )
}

fn open_with(
    backend: &Backend,
    pg_pool: &postgres::PoolOptions,
    sqlite_options: sqlite::SqliteOptions,
) -> Result<(Arc<dyn Storage>, String), StorageError> {
    match backend {
        Backend::Postgres(url) => {
            let s = postgres::PgStorage::connect(url, pg_pool)?;
            Ok((Arc::new(s), backend.describe()))
        }
        Backend::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError(format!(
                        "cannot create the data directory {}: {}. {}",
                        dir.display(),
                        io_cause(&e),
                        DATA_DIR_HINT
                    ))
                })?;
            }
            let s = sqlite::SqliteStorage::open(path, sqlite_options)?;
            let mut description = Backend::Sqlite(s.path().to_path_buf()).describe();
            if !s.holds_lock() {
                description
                    .push_str("; a running server holds its lock: shared with it, not migrated");
            }
            Ok((Arc::new(s), description))
        }
    }
}

/// What to do when the data directory or the database file cannot be
/// written.
pub const DATA_DIR_HINT: &str = "The server's user needs to create and write files there: \
     change the directory's owner or mode, or set DATA_DIR (see README, \"Where the events live\")";

/// An OS error as a cause in a sentence: "connection refused", not
/// "Connection refused (os error 111)".
pub fn io_cause(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_causes() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_cause(&e), "connection refused");
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(io_cause(&e), "permission denied");
        let e = std::io::Error::other("Odd (not os)");
        assert_eq!(io_cause(&e), "odd (not os)");
    }

    #[test]
    fn the_url_picks_the_backend() {
        let dir = Path::new("/srv/data");
        let sqlite = |p: &str| Ok(Backend::Sqlite(PathBuf::from(p)));
        assert_eq!(Backend::choose(None, dir), sqlite("/srv/data/livestore.db"));
        assert_eq!(
            Backend::choose(Some(""), dir),
            sqlite("/srv/data/livestore.db")
        );
        assert_eq!(
            Backend::choose(Some("  "), dir),
            sqlite("/srv/data/livestore.db")
        );
        assert_eq!(
            Backend::choose(Some("sqlite:///abs/x.db"), dir),
            sqlite("/abs/x.db")
        );
        assert_eq!(
            Backend::choose(Some("sqlite://rel/x.db"), dir),
            sqlite("rel/x.db")
        );
        assert_eq!(Backend::choose(Some("sqlite:x.db"), dir), sqlite("x.db"));
        assert_eq!(
            Backend::choose(Some("sqlite:/abs/x.db"), dir),
            sqlite("/abs/x.db")
        );
        for pg in ["postgresql://u:p@h:5432/db", "postgres://h/db"] {
            assert_eq!(
                Backend::choose(Some(pg), dir),
                Ok(Backend::Postgres(pg.into()))
            );
        }
        for bad in [
            "sqlite:",
            "sqlite://",
            "sqlite:///",
            "sqlite::memory:",
            "sqlite:///x.db?mode=ro",
            "mysql://h/db",
            "livestore.db",
        ] {
            let e = Backend::choose(Some(bad), dir).unwrap_err();
            assert!(e.0.contains("DATABASE_URL"), "{bad}: {e}");
        }
        // Never the rest of a URL it does not know: it may hold a password.
        for bad in ["mysql://alice:s3cret@db/x", "alice:s3cret@db/x"] {
            let e = Backend::choose(Some(bad), dir).unwrap_err();
            assert!(!e.0.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn descriptions_never_show_a_password() {
        let d = Backend::Postgres(
            "postgresql://alice:s3cret@db.example:6543/live?sslmode=disable".into(),
        )
        .describe();
        assert!(!d.contains("s3cret"), "{d}");
        assert!(
            d.contains("alice") && d.contains("db.example:6543") && d.contains("/live"),
            "{d}"
        );
        let d =
            Backend::Postgres("postgresql://:s3cret@/live?host=/run/postgresql".into()).describe();
        assert!(!d.contains("s3cret"), "{d}");
        let d = Backend::Postgres("postgres://x:y@[bad".into()).describe();
        assert!(!d.contains(":y"), "{d}");
        assert_eq!(
            Backend::Sqlite("/srv/data/livestore.db".into()).describe(),
            "SQLite /srv/data/livestore.db (WAL, synchronous=FULL)"
        );
    }
}
