//! Where the event log lives, behind one small interface.
//!
//! The sync core (`crate::sync`) only talks to [`Storage`]. Two backends:
//! `sqlite.rs` (embedded, one file, the default) and `postgres.rs` (several
//! instances, production). [`Backend::choose`] picks one from the settings
//! and [`open`] opens it. Storage uses only the leaf model (`crate::model`).

pub mod postgres;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::model::{Event, StoreMeta, StoredEvent};

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

    /// Whether other processes may write this storage (several instances on
    /// one PostgreSQL). Then a cached head may be stale, and pulls check the
    /// stored head first. Default: no (an embedded, single-process storage).
    fn shared(&self) -> bool {
        false
    }

    /// Starts delivering notices of other processes' changes to `deliver`,
    /// from a thread of the storage's own, for as long as the process runs.
    /// `None`: nobody else writes this storage.
    fn watch(&self, deliver: Box<dyn Fn(Notice) + Send + Sync>) -> Option<Watch> {
        let _ = deliver;
        None
    }
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

/// Opens `backend`: for SQLite, creates the file's directory if missing.
/// Returns the storage and a description for the start-up log.
pub fn open(
    backend: &Backend,
    pg_pool: &postgres::PoolOptions,
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
            let s = sqlite::SqliteStorage::open(path, sqlite::SqliteOptions::default())?;
            let description = Backend::Sqlite(s.path().to_path_buf()).describe();
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
