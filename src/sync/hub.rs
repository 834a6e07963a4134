//! The store registry and the per-store rules: push (chain check, persist,
//! advance head, fan out) and the subscription bookkeeping that keeps every
//! socket's stream strictly increasing.
//!
//! Each store id has one [`Store`] with one mutex. Under it: the head (loaded
//! from storage on first use), the sockets attached to the store, and their
//! subscriptions. A push holds the mutex across the chain check, the
//! database write and the fan-out, so seq_nums are assigned, persisted and
//! delivered in one order. Nothing under the mutex blocks on a socket: the
//! fan-out uses `try_send` on each socket's bounded queue.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::event::{check_chain, ChainError, Event, StoredEvent};
use super::outbox::{Gone, Outbox};
use crate::storage::{new_backend_id, AppendError, Storage, StorageError, StoreMeta};

/// One accepted push as every subscriber receives it. Each wire codec
/// encodes it at most once per push (see [`LiveBatch::encoded`]), not once per socket.
pub struct LiveBatch {
    /// The pusher's request id (0.3 puts it in every broadcast).
    pub origin: String,
    pub backend_id: Arc<str>,
    pub events: Vec<StoredEvent>,
    memo: [OnceLock<Arc<str>>; MEMO_SLOTS],
}

/// One memo slot per wire generation.
pub const MEMO_SLOTS: usize = 2;

impl LiveBatch {
    pub fn new(origin: String, backend_id: Arc<str>, events: Vec<StoredEvent>) -> LiveBatch {
        LiveBatch {
            origin,
            backend_id,
            events,
            memo: Default::default(),
        }
    }

    /// The events from index `from` on, encoded by `encode`. The whole
    /// batch (`from == 0`, the usual case) is encoded once per `slot` and
    /// shared by every subscriber; a tail is encoded for its caller alone.
    pub fn encoded(
        &self,
        slot: usize,
        from: usize,
        encode: impl FnOnce(&[StoredEvent]) -> String,
    ) -> Arc<str> {
        if from == 0 {
            self.memo[slot]
                .get_or_init(|| encode(&self.events).into())
                .clone()
        } else {
            encode(&self.events[from..]).into()
        }
    }

    pub fn last_seq(&self) -> i64 {
        self.events.last().map_or(0, |e| e.event.seq_num)
    }
}

/// How one subscription turns live batches into frames for its socket.
/// Implemented by each wire generation; must not block.
pub trait LiveSink: Send + Sync {
    /// Queues `batch` (whole, when `from == 0`) or its events from index `from` on.
    fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone>;
}

pub type SubId = u64;

enum Phase {
    /// A pull answer is being sent; live batches wait here until its last page is out.
    Backlog {
        held: Vec<Arc<LiveBatch>>,
    },
    Live,
}

struct Subscription {
    id: SubId,
    conn: u64,
    phase: Phase,
    /// Highest seq_num sent on this subscription; nothing at or below it is sent again.
    last_sent: i64,
    sink: Arc<dyn LiveSink>,
}

impl Subscription {
    /// Sends the part of `batch` above `last_sent`; false if the socket is gone.
    fn deliver(&mut self, batch: &Arc<LiveBatch>) -> bool {
        let from = batch
            .events
            .partition_point(|e| e.event.seq_num <= self.last_sent);
        if from == batch.events.len() {
            return true;
        }
        if self.sink.send_live(batch, from).is_err() {
            return false;
        }
        self.last_sent = batch.last_seq();
        true
    }
}

#[derive(Default)]
struct State {
    meta: Option<StoreMeta>,
    conns: HashMap<u64, Arc<Outbox>>,
    subs: Vec<Subscription>,
    next_sub: SubId,
}

/// One store's shared state.
pub struct Store {
    pub id: String,
    state: Mutex<State>,
}

/// Why a push was refused. Every variant is answered to the pusher; the
/// connection stays open.
#[derive(Debug)]
pub enum PushError {
    /// The batch does not continue the log (a stale parent, or a broken chain).
    Chain(ChainError),
    /// A 0.4 client holds the history of another incarnation of this store.
    BackendIdMismatch { expected: String, received: String },
    /// Storage failed; nothing was written.
    Storage(StorageError),
}

/// What the admin info request shows about a store.
#[derive(Debug, Clone)]
pub struct StoreInfo {
    pub head: i64,
    pub backend_id: String,
    pub sockets: usize,
    pub subscriptions: usize,
}

impl Store {
    fn with_meta<'a>(
        &self,
        st: &'a mut State,
        storage: &dyn Storage,
    ) -> Result<&'a mut StoreMeta, StorageError> {
        if st.meta.is_none() {
            st.meta = Some(storage.open_store(&self.id)?);
        }
        Ok(st.meta.as_mut().expect("loaded above"))
    }

    /// Head and backend id, loading them on first use.
    pub fn meta(&self, storage: &dyn Storage) -> Result<StoreMeta, StorageError> {
        let mut st = self.state.lock();
        self.with_meta(&mut st, storage).cloned()
    }

    /// Registers a socket (for reset and admin info) and loads the store.
    pub fn attach(
        &self,
        outbox: &Arc<Outbox>,
        storage: &dyn Storage,
    ) -> Result<StoreMeta, StorageError> {
        let mut st = self.state.lock();
        let meta = self.with_meta(&mut st, storage)?.clone();
        st.conns.insert(outbox.id(), outbox.clone());
        Ok(meta)
    }

    /// Forgets a socket and all its subscriptions.
    pub fn detach(&self, conn: u64) {
        let mut st = self.state.lock();
        st.conns.remove(&conn);
        st.subs.retain(|s| s.conn != conn);
    }

    /// Adds a subscription for socket `conn`. With `backlog_from = Some(cursor)`
    /// it starts in the backlog phase: the caller sends the events in
    /// `(cursor, head]` and then calls [`Store::go_live`]; live batches are
    /// held until then. With `None` it is live at once. Returns the
    /// subscription and the store's meta at the moment of subscribing (`head`
    /// is the end of the backlog).
    pub fn subscribe(
        &self,
        conn: u64,
        sink: Arc<dyn LiveSink>,
        backlog_from: Option<i64>,
        storage: &dyn Storage,
    ) -> Result<(SubId, StoreMeta), StorageError> {
        let mut st = self.state.lock();
        let meta = self.with_meta(&mut st, storage)?.clone();
        st.next_sub += 1;
        let id = st.next_sub;
        let (phase, last_sent) = match backlog_from {
            Some(cursor) => (Phase::Backlog { held: Vec::new() }, cursor),
            None => (Phase::Live, 0),
        };
        st.subs.push(Subscription {
            id,
            conn,
            phase,
            last_sent,
            sink,
        });
        Ok((id, meta))
    }

    /// Puts an existing subscription back into the backlog phase from `cursor`
    /// (a 0.3 socket that sends its pull after it already got broadcasts).
    /// Returns the head the backlog must reach, or `None` if the subscription is gone.
    pub fn rewind(
        &self,
        sub: SubId,
        cursor: i64,
        storage: &dyn Storage,
    ) -> Result<Option<i64>, StorageError> {
        let mut st = self.state.lock();
        let head = self.with_meta(&mut st, storage)?.head;
        Ok(st.subs.iter_mut().find(|s| s.id == sub).map(|s| {
            s.phase = Phase::Backlog { held: Vec::new() };
            s.last_sent = cursor;
            head
        }))
    }

    /// Ends the backlog phase: `last_sent` is the last seq_num the backlog
    /// sent; held batches above it go out now, in order, then the
    /// subscription is live. Returns false if the socket is gone.
    pub fn go_live(&self, sub: SubId, last_sent: i64) -> bool {
        let mut st = self.state.lock();
        let Some(pos) = st.subs.iter().position(|s| s.id == sub) else {
            return false;
        };
        let s = &mut st.subs[pos];
        s.last_sent = s.last_sent.max(last_sent);
        let held = match std::mem::replace(&mut s.phase, Phase::Live) {
            Phase::Backlog { held } => held,
            Phase::Live => Vec::new(),
        };
        for batch in &held {
            if !s.deliver(batch) {
                st.subs.remove(pos);
                return false;
            }
        }
        true
    }

    pub fn unsubscribe(&self, sub: SubId) {
        self.state.lock().subs.retain(|s| s.id != sub);
    }

    /// The push rule. Under the store's mutex: check the backend id (0.4) and
    /// the chain against the head, persist the batch, advance the head, call
    /// `on_accepted` (which queues the pusher's ack, so it precedes the
    /// broadcast on the pusher's socket), then fan the batch out to every
    /// subscription of the store. An empty batch is accepted without any of that.
    pub fn push(
        &self,
        storage: &dyn Storage,
        origin: &str,
        events: Vec<Event>,
        backend_id: Option<&str>,
        on_accepted: impl FnOnce(),
    ) -> Result<(), PushError> {
        if events.is_empty() {
            on_accepted();
            return Ok(());
        }
        let mut st = self.state.lock();
        let meta = self
            .with_meta(&mut st, storage)
            .map_err(PushError::Storage)?;
        if let Some(received) = backend_id {
            if received != meta.backend_id {
                return Err(PushError::BackendIdMismatch {
                    expected: meta.backend_id.clone(),
                    received: received.to_string(),
                });
            }
        }
        check_chain(meta.head, &events).map_err(PushError::Chain)?;
        let created_at = crate::timefmt::now_ms();
        match storage.append(&self.id, meta.head, &events, created_at) {
            Ok(()) => {}
            Err(AppendError::Conflict { head }) => {
                // Another instance wrote first: adopt its head and refuse.
                let parent = events[0].parent_seq_num;
                meta.head = head;
                return Err(PushError::Chain(ChainError::WrongParent { head, parent }));
            }
            Err(AppendError::Storage(e)) => return Err(PushError::Storage(e)),
        }
        meta.head = events.last().map_or(meta.head, |e| e.seq_num);
        let backend_id: Arc<str> = meta.backend_id.as_str().into();
        on_accepted();
        let batch = Arc::new(LiveBatch::new(
            origin.to_string(),
            backend_id,
            events
                .into_iter()
                .map(|event| StoredEvent { event, created_at })
                .collect(),
        ));
        st.subs.retain_mut(|s| match &mut s.phase {
            Phase::Backlog { held } => {
                held.push(batch.clone());
                true
            }
            Phase::Live => s.deliver(&batch),
        });
        Ok(())
    }

    /// Wipes the store: events deleted, head 0, a new backend id. `on_reset`
    /// runs under the mutex before every socket of the store is closed (so
    /// the requester's answer goes out before its close frame).
    pub fn reset(
        &self,
        storage: &dyn Storage,
        on_reset: impl FnOnce(),
    ) -> Result<(), StorageError> {
        let mut st = self.state.lock();
        let backend_id = new_backend_id();
        storage.reset(&self.id, &backend_id)?;
        st.meta = Some(StoreMeta {
            head: 0,
            backend_id,
        });
        on_reset();
        st.subs.clear();
        for (_, outbox) in st.conns.drain() {
            // 4000+: application-defined. Clients reconnect on any close.
            outbox.close(4001, "store reset");
        }
        Ok(())
    }

    pub fn info(&self, storage: &dyn Storage) -> Result<StoreInfo, StorageError> {
        let mut st = self.state.lock();
        let meta = self.with_meta(&mut st, storage)?.clone();
        Ok(StoreInfo {
            head: meta.head,
            backend_id: meta.backend_id,
            sockets: st.conns.len(),
            subscriptions: st.subs.len(),
        })
    }
}

/// All stores this process has seen, by exact store id.
pub struct Hub {
    pub storage: Arc<dyn Storage>,
    stores: Mutex<HashMap<String, Arc<Store>>>,
}

impl Hub {
    pub fn new(storage: Arc<dyn Storage>) -> Hub {
        Hub {
            storage,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// The store with this id (created in memory on first use; loaded from
    /// storage lazily under its own mutex). Entries stay for the life of the
    /// process: a few hundred bytes per store id seen.
    pub fn store(&self, id: &str) -> Arc<Store> {
        let mut stores = self.stores.lock();
        if let Some(s) = stores.get(id) {
            return s.clone();
        }
        let s = Arc::new(Store {
            id: id.to_string(),
            state: Mutex::new(State::default()),
        });
        stores.insert(id.to_string(), s.clone());
        s
    }
}

#[cfg(test)]
mod tests {
    //! The subscription ordering rules, over the in-memory test storage so
    //! that only the rules are under test (the PostgreSQL storage has its
    //! own tests against a real server).
    use super::*;
    use crate::sync::event::ev;
    use crate::sync::outbox::Outbound;
    use crate::sync::testing::MemStorage;

    /// Records the seq_nums each delivery carried.
    struct Recorder(Arc<Outbox>, Mutex<Vec<Vec<i64>>>);
    impl LiveSink for Recorder {
        fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone> {
            self.0.try_send(Outbound::Finish)?;
            self.1.lock().push(
                batch.events[from..]
                    .iter()
                    .map(|e| e.event.seq_num)
                    .collect(),
            );
            Ok(())
        }
    }

    fn setup() -> (Hub, Arc<Store>) {
        let hub = Hub::new(Arc::new(MemStorage::default()));
        let store = hub.store("s");
        (hub, store)
    }

    fn batch(from: i64, n: i64) -> Vec<Event> {
        (from..from + n).map(|i| ev(i, "{}")).collect()
    }

    #[test]
    fn live_batches_wait_for_the_backlog_then_go_out_once_in_order() {
        let (hub, store) = setup();
        let st = &*hub.storage;
        store.push(st, "p1", batch(1, 3), None, || {}).unwrap();
        let (ob, _rx) = Outbox::new(64, None, "t".into());
        let rec = Arc::new(Recorder(ob.clone(), Mutex::new(Vec::new())));
        let (sub, meta) = store.subscribe(ob.id(), rec.clone(), Some(0), st).unwrap();
        assert_eq!(meta.head, 3);
        // Pushes during the backlog are held.
        store.push(st, "p2", batch(4, 2), None, || {}).unwrap();
        store.push(st, "p3", batch(6, 1), None, || {}).unwrap();
        assert!(rec.1.lock().is_empty());
        // The backlog sent 1..=3; the held batches follow, then live ones.
        assert!(store.go_live(sub, 3));
        store.push(st, "p4", batch(7, 1), None, || {}).unwrap();
        assert_eq!(*rec.1.lock(), vec![vec![4, 5], vec![6], vec![7]]);
    }

    #[test]
    fn nothing_at_or_below_last_sent_goes_out_again() {
        let (hub, store) = setup();
        let st = &*hub.storage;
        let (ob, _rx) = Outbox::new(64, None, "t".into());
        let rec = Arc::new(Recorder(ob.clone(), Mutex::new(Vec::new())));
        let (sub, _) = store.subscribe(ob.id(), rec.clone(), Some(0), st).unwrap();
        store.push(st, "p1", batch(1, 4), None, || {}).unwrap();
        // A backlog that already covered part of the held batch (seq 1..=2).
        assert!(store.go_live(sub, 2));
        assert_eq!(*rec.1.lock(), vec![vec![3, 4]]);
    }

    #[test]
    fn stale_parent_is_refused_without_broadcast_and_ack_precedes_fanout() {
        let (hub, store) = setup();
        let st = &*hub.storage;
        let (ob, _rx) = Outbox::new(64, None, "t".into());
        let rec = Arc::new(Recorder(ob.clone(), Mutex::new(Vec::new())));
        store.subscribe(ob.id(), rec.clone(), None, st).unwrap();
        let order = Mutex::new(Vec::new());
        store
            .push(st, "p1", batch(1, 2), None, || {
                order.lock().push(rec.1.lock().len());
            })
            .unwrap();
        assert_eq!(*order.lock(), vec![0], "ack ran before any delivery");
        let err = store
            .push(st, "p2", batch(1, 1), None, || panic!("no ack"))
            .unwrap_err();
        assert!(matches!(
            err,
            PushError::Chain(ChainError::WrongParent { head: 2, parent: 0 })
        ));
        assert_eq!(*rec.1.lock(), vec![vec![1, 2]]);
    }

    #[test]
    fn backend_id_mismatch_is_refused() {
        let (hub, store) = setup();
        let err = store
            .push(&*hub.storage, "p", batch(1, 1), Some("other"), || {})
            .unwrap_err();
        assert!(matches!(err, PushError::BackendIdMismatch { .. }));
    }

    #[test]
    fn a_slow_socket_is_dropped_and_others_keep_receiving() {
        let (hub, store) = setup();
        let st = &*hub.storage;
        let (slow, _slow_rx) = Outbox::new(2, None, "slow".into());
        let (fast, fast_rx) = Outbox::new(64, None, "fast".into());
        let slow_rec = Arc::new(Recorder(slow.clone(), Mutex::new(Vec::new())));
        let fast_rec = Arc::new(Recorder(fast.clone(), Mutex::new(Vec::new())));
        store
            .subscribe(slow.id(), slow_rec.clone(), None, st)
            .unwrap();
        store
            .subscribe(fast.id(), fast_rec.clone(), None, st)
            .unwrap();
        for i in 1..=5 {
            store.push(st, "p", batch(i, 1), None, || {}).unwrap();
        }
        assert!(slow.is_dead());
        assert_eq!(slow_rec.1.lock().len(), 2);
        assert_eq!(fast_rec.1.lock().len(), 5);
        assert_eq!(fast_rx.len(), 5);
        assert_eq!(store.info(st).unwrap().subscriptions, 1);
    }
}
