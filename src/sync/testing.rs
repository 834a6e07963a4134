//! An in-memory [`Storage`] for the core's unit tests: the push and pull
//! rules are tested on it without a database (the PostgreSQL storage has its
//! own tests against a real server).

use std::time::SystemTime;

use parking_lot::Mutex;

use crate::storage::{AppendError, Storage, StorageError, StoreMeta};
use crate::sync::event::{ev, Event, StoredEvent};

/// One store's log in memory (store ids are ignored).
#[derive(Default)]
pub struct MemStorage(pub Mutex<Vec<StoredEvent>>);

impl Storage for MemStorage {
    fn open_store(&self, _: &str) -> Result<StoreMeta, StorageError> {
        let log = self.0.lock();
        Ok(StoreMeta {
            head: log.last().map_or(0, |e| e.event.seq_num),
            backend_id: "B".into(),
        })
    }
    fn append(
        &self,
        _: &str,
        expected: i64,
        events: &[Event],
        t: SystemTime,
    ) -> Result<(), AppendError> {
        let mut log = self.0.lock();
        let head = log.last().map_or(0, |e| e.event.seq_num);
        if head != expected {
            return Err(AppendError::Conflict { head });
        }
        log.extend(events.iter().map(|e| StoredEvent {
            event: e.clone(),
            created_at: t,
        }));
        Ok(())
    }
    fn read(
        &self,
        _: &str,
        after: i64,
        up_to: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let log = self.0.lock();
        Ok(log
            .iter()
            .filter(|e| e.event.seq_num > after && e.event.seq_num <= up_to)
            .take(limit)
            .cloned()
            .collect())
    }
    fn reset(&self, _: &str, _: &str) -> Result<(), StorageError> {
        self.0.lock().clear();
        Ok(())
    }
    fn health(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

impl MemStorage {
    /// A log of events `1..=n` whose args are a `size`-byte string.
    pub fn with_log(n: i64, size: usize) -> MemStorage {
        let args = format!("\"{}\"", "x".repeat(size));
        MemStorage(Mutex::new(
            (1..=n)
                .map(|i| StoredEvent {
                    event: ev(i, &args),
                    created_at: SystemTime::UNIX_EPOCH,
                })
                .collect(),
        ))
    }
}
