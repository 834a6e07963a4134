//! All stores this process has seen, by exact store id.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::store::{Store, StoreStatus};
use super::Limits;
use crate::metrics::Metrics;
use crate::storage::{Notice, Storage, StorageError};

pub struct Hub {
    storage: Arc<dyn Storage>,
    limits: Limits,
    metrics: Arc<Metrics>,
    stores: Mutex<HashMap<String, Arc<Store>>>,
}

impl Hub {
    /// A hub counting into figures of its own.
    pub fn new(storage: Arc<dyn Storage>, limits: Limits) -> Hub {
        Self::with_metrics(storage, limits, Arc::default())
    }

    /// A hub whose stores and sessions count into `metrics`.
    pub fn with_metrics(storage: Arc<dyn Storage>, limits: Limits, metrics: Arc<Metrics>) -> Hub {
        Hub {
            storage,
            limits,
            metrics,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// Where this hub's stores and sessions count (`/metrics`, `/status`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store with this id (created in memory on first use; loaded from
    /// storage lazily under its own mutex). Past `Limits::max_stores`
    /// entries, those no socket uses are forgotten first (their head is read
    /// again from storage on next use).
    pub fn store(&self, id: &str) -> Arc<Store> {
        let mut stores = self.stores.lock();
        if let Some(s) = stores.get(id) {
            return s.clone();
        }
        if stores.len() >= self.limits.max_stores {
            // Nobody else holds an unused entry, and none can start to
            // while this lock is held (they would come through here).
            stores.retain(|_, s| Arc::strong_count(s) > 1 || s.in_use());
        }
        let s = Arc::new(Store::new(
            id,
            self.storage.clone(),
            self.limits.clone(),
            self.metrics.clone(),
        ));
        stores.insert(id.to_string(), s.clone());
        s
    }

    /// Store entries held in memory.
    pub fn stores_in_memory(&self) -> usize {
        self.stores.lock().len()
    }

    /// What every store entry in memory looks like right now (for the
    /// status page): never reads storage.
    pub fn statuses(&self) -> Vec<StoreStatus> {
        let stores: Vec<Arc<Store>> = self.stores.lock().values().cloned().collect();
        stores.iter().map(|s| s.status()).collect()
    }

    /// The store's entry if this process has one (for notices from
    /// elsewhere: a store nobody here uses needs none).
    pub fn loaded(&self, id: &str) -> Option<Arc<Store>> {
        self.stores.lock().get(id).cloned()
    }

    /// Applies a change another process made (see [`Notice`]) to the stores
    /// this process has; a store it does not have reads storage on first use.
    pub fn apply(&self, notice: Notice) {
        let (what, result) = match notice {
            Notice::Appended { store_id, head } => match self.loaded(&store_id) {
                Some(s) => ("catching up", s.appended_elsewhere(head)),
                None => return,
            },
            Notice::Reset {
                store_id,
                backend_id,
            } => {
                if let Some(s) = self.loaded(&store_id) {
                    log::info!("store reset store={store_id:?} reason=\"by another process\"");
                    s.reset_elsewhere(backend_id);
                }
                return;
            }
            Notice::Deleted { store_id } => {
                if let Some(s) = self.loaded(&store_id) {
                    log::info!("store {store_id:?} was deleted by another process");
                    s.deleted_elsewhere();
                }
                return;
            }
            Notice::Resync => {
                let stores: Vec<Arc<Store>> = self.stores.lock().values().cloned().collect();
                let failed = stores.iter().filter_map(|s| s.resync().err()).next();
                ("resyncing", failed.map_or(Ok(()), Err))
            }
        };
        if let Err(e) = result {
            // The next pull or push of the store reads the stored head.
            log::error!("{what} after a notice from another instance: {e}");
        }
    }

    /// The storage under every store, for what reads across stores (the admin
    /// API's list and export). Writes go through [`Store`], which tells the
    /// store's sockets.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Whether the storage answers (for `/health`).
    pub fn health(&self) -> Result<(), StorageError> {
        self.storage.health()
    }
}
