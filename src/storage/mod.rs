//! Where the event log lives, behind one small interface.
//!
//! The sync core (`crate::sync`) only talks to [`Storage`]; `postgres.rs` is
//! the implementation used in production. A second, embedded backend can be
//! added next to it without touching the protocol or the core. Storage uses
//! only the leaf model (`crate::model`).

pub mod postgres;

use std::time::SystemTime;

use crate::model::{Event, StoreMeta, StoredEvent};

/// A storage failure (connection lost, pool exhausted, disk full, …).
/// The caller answers the request with an error and keeps the connection;
/// nothing was written.
#[derive(Debug)]
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
