//! Test doubles for the core's and the sessions' unit tests: an in-memory
//! [`Storage`] (the PostgreSQL storage has its own tests against a real
//! server) and a recording [`Sink`] (the socket writer has its own tests on
//! loopback sockets). With them the push/pull rules and each session state
//! are tested without I/O.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use super::sink::{ConnId, Gone, Msg, Sink};
use crate::model::{ev, new_backend_id, Event, StoreMeta, StoredEvent};
use crate::storage::{AppendError, ImportChain, ImportError, Storage, StorageError, StoreSummary};

/// Each store's log and backend id in memory.
#[derive(Default)]
pub struct MemStorage {
    stores: Mutex<HashMap<String, (Vec<StoredEvent>, String)>>,
    /// When set, `read` fails (a page read that fails mid-pull).
    pub fail_reads: AtomicBool,
    /// Stores deleted since: created again with a new backend id, as the
    /// real storages do (a fresh store is `B`).
    deleted: Mutex<HashSet<String>>,
}

impl MemStorage {
    fn created(&self, id: &str) -> (Vec<StoredEvent>, String) {
        let backend_id = if self.deleted.lock().remove(id) {
            new_backend_id()
        } else {
            "B".into()
        };
        (Vec::new(), backend_id)
    }

    /// A store `s` with events `1..=n` whose args are a `size`-byte string.
    pub fn with_log(n: i64, size: usize) -> MemStorage {
        let m = MemStorage::default();
        let args = format!("\"{}\"", "x".repeat(size));
        let log = (1..=n)
            .map(|i| StoredEvent {
                event: ev(i, &args),
                created_at: SystemTime::UNIX_EPOCH,
            })
            .collect();
        m.stores.lock().insert("s".into(), (log, "B".into()));
        m
    }

    /// Appends as another process would (no hub involved).
    pub fn append_behind_the_back(&self, store: &str, events: &[Event]) {
        let mut stores = self.stores.lock();
        let (log, _) = stores
            .entry(store.to_string())
            .or_insert_with(|| self.created(store));
        log.extend(events.iter().map(|e| StoredEvent {
            event: e.clone(),
            created_at: SystemTime::UNIX_EPOCH,
        }));
    }
}

impl Storage for MemStorage {
    fn open_store(&self, id: &str) -> Result<StoreMeta, StorageError> {
        let mut stores = self.stores.lock();
        let (log, bid) = stores
            .entry(id.to_string())
            .or_insert_with(|| self.created(id));
        Ok(StoreMeta {
            head: log.last().map_or(0, |e| e.event.seq_num),
            backend_id: bid.clone(),
        })
    }
    fn append(
        &self,
        id: &str,
        expected: i64,
        events: &[Event],
        t: SystemTime,
    ) -> Result<(), AppendError> {
        let mut stores = self.stores.lock();
        let (log, _) = stores
            .entry(id.to_string())
            .or_insert_with(|| self.created(id));
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
        id: &str,
        after: i64,
        up_to: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        if self.fail_reads.load(SeqCst) {
            return Err(StorageError("read failed (test)".into()));
        }
        let stores = self.stores.lock();
        Ok(stores.get(id).map_or_else(Vec::new, |(log, _)| {
            log.iter()
                .filter(|e| e.event.seq_num > after && e.event.seq_num <= up_to)
                .take(limit)
                .cloned()
                .collect()
        }))
    }
    fn reset(&self, id: &str, backend_id: &str) -> Result<(), StorageError> {
        self.stores
            .lock()
            .insert(id.to_string(), (Vec::new(), backend_id.to_string()));
        Ok(())
    }
    fn health(&self) -> Result<(), StorageError> {
        Ok(())
    }
    fn list_stores(&self) -> Result<Vec<StoreSummary>, StorageError> {
        let stores = self.stores.lock();
        let mut ids: Vec<&String> = stores.keys().collect();
        ids.sort();
        Ok(ids.into_iter().map(|id| summary(id, &stores[id])).collect())
    }
    fn store_summary(&self, id: &str) -> Result<Option<StoreSummary>, StorageError> {
        Ok(self.stores.lock().get(id).map(|s| summary(id, s)))
    }
    fn delete_store(&self, id: &str) -> Result<bool, StorageError> {
        let existed = self.stores.lock().remove(id).is_some();
        if existed {
            self.deleted.lock().insert(id.to_string());
        }
        Ok(existed)
    }
    fn import(
        &self,
        id: &str,
        backend_id: Option<&str>,
        replace: bool,
        events: &mut dyn Iterator<Item = Result<StoredEvent, String>>,
    ) -> Result<u64, ImportError> {
        let mut stores = self.stores.lock();
        let existing = stores.get(id);
        if let Some(last) = existing.and_then(|(log, _)| log.last()) {
            if !replace {
                return Err(ImportError::NotEmpty {
                    head: last.event.seq_num,
                });
            }
        }
        // Nothing is stored until every event passed.
        let mut chain = ImportChain::default();
        let mut log = Vec::new();
        for item in events {
            let e = item.map_err(ImportError::Source)?;
            chain.next(&e.event)?;
            log.push(e);
        }
        let backend_id = match (backend_id, existing) {
            (Some(given), _) => given.to_string(),
            (None, Some((_, old))) if !replace => old.clone(),
            _ => new_backend_id(),
        };
        stores.insert(id.to_string(), (log, backend_id));
        Ok(chain.count())
    }
    fn schema_version(&self) -> Result<i64, StorageError> {
        Ok(1)
    }
}

fn summary(id: &str, (log, backend_id): &(Vec<StoredEvent>, String)) -> StoreSummary {
    StoreSummary {
        store_id: id.to_string(),
        head: log.last().map_or(0, |e| e.event.seq_num),
        events: log.len() as i64,
        bytes: log
            .iter()
            .map(|e| {
                let e = &e.event;
                (e.name.len()
                    + e.args.as_ref().map_or(0, |a| a.len())
                    + e.client_id.len()
                    + e.session_id.len()) as i64
            })
            .sum(),
        last_write: log.iter().map(|e| e.created_at).max(),
        backend_id: backend_id.clone(),
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A socket that records what would be written. It holds `capacity`
/// messages until taken; past that it is dropped, like a slow socket.
pub struct RecordingSink {
    id: ConnId,
    capacity: usize,
    pub sent: Mutex<Vec<String>>,
    pub closed: Mutex<Option<u16>>,
    gone: AtomicBool,
}

impl RecordingSink {
    pub fn new(capacity: usize) -> Arc<RecordingSink> {
        Arc::new(RecordingSink {
            id: NEXT.fetch_add(1, SeqCst),
            capacity,
            sent: Mutex::new(Vec::new()),
            closed: Mutex::new(None),
            gone: AtomicBool::new(false),
        })
    }

    /// Takes what was sent so far (the writer "wrote" it).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.sent.lock())
    }

    /// Takes what was sent, each parsed as JSON.
    pub fn take_json(&self) -> Vec<serde_json::Value> {
        self.take()
            .iter()
            .map(|t| serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}")))
            .collect()
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(SeqCst)
    }
}

impl Sink for RecordingSink {
    fn id(&self) -> ConnId {
        self.id
    }
    fn label(&self) -> &str {
        "test"
    }
    fn try_send(&self, msg: Msg) -> Result<(), Gone> {
        if self.is_gone() {
            return Err(Gone);
        }
        let mut sent = self.sent.lock();
        if sent.len() >= self.capacity {
            self.gone.store(true, SeqCst);
            return Err(Gone);
        }
        sent.push(msg.to_text());
        Ok(())
    }
    fn send(&self, msg: Msg) -> Result<(), Gone> {
        self.try_send(msg)
    }
    fn close(&self, code: u16, _reason: &'static str) {
        *self.closed.lock() = Some(code);
        self.gone.store(true, SeqCst);
    }
}
