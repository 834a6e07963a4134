//! Where the event log lives, behind one small interface.
//!
//! The sync core (`crate::sync`) only talks to [`Storage`]; `postgres.rs` is
//! the implementation used in production. A second, embedded backend can be
//! added next to it without touching the protocol or the core.

pub mod postgres;

use std::time::SystemTime;

use crate::sync::event::{Event, StoredEvent};

/// What the server keeps about a store besides its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMeta {
    /// seq_num of the last event (0: empty).
    pub head: i64,
    /// Random id that changes when the store's history is wiped.
    pub backend_id: String,
}

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
}

/// A new random backend id: 21 characters of `[A-Za-z0-9_-]`, like the
/// reference server's nanoid.
pub fn new_backend_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut bytes = [0u8; 21];
    if !read_urandom(&mut bytes) {
        // No /dev/urandom: fall back to the std hasher's per-process random
        // keys mixed with the time; uniqueness is all a backend id needs.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        for (i, b) in bytes.iter_mut().enumerate() {
            h.write_usize(i);
            h.write_u128(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            *b = h.finish() as u8;
        }
    }
    bytes
        .iter()
        .map(|b| ALPHABET[(b & 63) as usize] as char)
        .collect()
}

fn read_urandom(buf: &mut [u8]) -> bool {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn backend_ids_look_like_nanoids_and_differ() {
        let a = super::new_backend_id();
        let b = super::new_backend_id();
        assert_eq!(a.len(), 21);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
        assert_ne!(a, b);
    }
}
