//! One store's shared state and its rules: push (chain check, persist,
//! advance head, fan out), reset, and the subscription bookkeeping that keeps
//! every socket's stream strictly increasing.
//!
//! Each store has one mutex. Under it: the head (loaded from storage on
//! first use), the sockets attached to the store, and their subscriptions.
//! A push holds the mutex across the chain check, the database write and the
//! fan-out, so seq_nums are assigned, persisted and delivered in one order.
//! Nothing under the mutex blocks on a socket: the fan-out uses
//! [`Sink::try_send`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;

use super::pull::{Pull, PullRefused};
use super::sink::{ConnId, Gone, Sink};
use super::Limits;
use crate::metrics::Metrics;
use crate::model::{check_chain, new_backend_id, ChainError, Event, StoreMeta, StoredEvent};
use crate::storage::{AppendError, Storage, StorageError};

/// The wire formats a live batch is encoded in, each at most once per push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    V03 = 0,
    V04 = 1,
}

const FORMATS: usize = 2;

/// One accepted push (or a run of events appended elsewhere) as every
/// subscriber receives it. Each wire format encodes it at most once (see
/// [`LiveBatch::encoded`]), not once per socket.
pub struct LiveBatch {
    /// The pusher's request id (0.3 puts it in every broadcast).
    pub origin: String,
    pub backend_id: Arc<str>,
    pub events: Vec<StoredEvent>,
    /// Estimated JSON size, for the bound on what a backlog may hold.
    bytes: usize,
    memo: [OnceLock<Arc<str>>; FORMATS],
}

impl LiveBatch {
    pub fn new(origin: String, backend_id: Arc<str>, events: Vec<StoredEvent>) -> LiveBatch {
        let bytes = events.iter().map(|e| e.event.json_len_estimate()).sum();
        LiveBatch {
            origin,
            backend_id,
            events,
            bytes,
            memo: Default::default(),
        }
    }

    /// The events from index `from` on, encoded by `encode`. The whole
    /// batch (`from == 0`, the usual case) is encoded once per format and
    /// shared by every subscriber; a tail is encoded for its caller alone.
    pub fn encoded(
        &self,
        format: Format,
        from: usize,
        encode: impl FnOnce(&[StoredEvent]) -> String,
    ) -> Arc<str> {
        if from == 0 {
            self.memo[format as usize]
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

/// How one subscription turns live batches into messages for its socket.
/// Implemented by each wire generation; must not block.
pub trait LiveSink: Send + Sync {
    /// Queues `batch` (whole, when `from == 0`) or its events from index `from` on.
    fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone>;
}

pub(crate) type SubId = u64;

/// The origin of batches appended by another process (0.3 broadcasts carry
/// the pusher's request id, which only the pusher's instance knows).
pub const REMOTE: &str = "remote";

enum Phase {
    /// A pull answer is being sent; live batches wait here until its last
    /// page is out. Past `Limits::max_held_bytes` they are dropped and the
    /// pull reads them from the log instead (`overflowed`).
    Backlog {
        held: Vec<Arc<LiveBatch>>,
        held_bytes: usize,
        overflowed: bool,
    },
    Live,
}

impl Phase {
    fn backlog() -> Phase {
        Phase::Backlog {
            held: Vec::new(),
            held_bytes: 0,
            overflowed: false,
        }
    }
}

struct Subscription {
    id: SubId,
    conn: ConnId,
    phase: Phase,
    /// Highest seq_num sent on this subscription; nothing at or below it is sent again.
    last_sent: i64,
    /// A broadcast (or held batch) went out: the socket may hold events a
    /// catch-up would repeat, so it gets none ([`Store::catch_up_stale`]).
    broadcast: bool,
    /// Catch-up pages went out (up to `last_sent`), and nothing else.
    caught_up: bool,
    sink: Arc<dyn LiveSink>,
}

impl Subscription {
    /// Sends the part of `batch` above `last_sent` (counted in `sent`);
    /// false if the socket is gone.
    fn deliver(&mut self, batch: &Arc<LiveBatch>, sent: &mut usize) -> bool {
        let from = batch
            .events
            .partition_point(|e| e.event.seq_num <= self.last_sent);
        if from == batch.events.len() {
            return true;
        }
        if self.sink.send_live(batch, from).is_err() {
            return false;
        }
        *sent += 1;
        self.last_sent = batch.last_seq();
        self.broadcast = true;
        true
    }

    /// Delivers (live; counted in `sent`) or holds (backlog) `batch`; false
    /// if the socket is gone.
    fn offer(&mut self, batch: &Arc<LiveBatch>, max_held_bytes: usize, sent: &mut usize) -> bool {
        match &mut self.phase {
            Phase::Live => self.deliver(batch, sent),
            Phase::Backlog {
                held,
                held_bytes,
                overflowed,
            } => {
                if !*overflowed {
                    if *held_bytes + batch.bytes > max_held_bytes {
                        // The log has them: the pull reads them later.
                        held.clear();
                        *held_bytes = 0;
                        *overflowed = true;
                    } else {
                        *held_bytes += batch.bytes;
                        held.push(batch.clone());
                    }
                }
                true
            }
        }
    }
}

#[derive(Default)]
struct State {
    meta: Option<StoreMeta>,
    /// When this process last appended to the store, or learnt of an append elsewhere.
    last_write: Option<SystemTime>,
    conns: HashMap<ConnId, Arc<dyn Sink>>,
    subs: Vec<Subscription>,
    next_sub: SubId,
}

/// One store's shared state; holds its storage.
pub struct Store {
    id: String,
    storage: Arc<dyn Storage>,
    limits: Limits,
    metrics: Arc<Metrics>,
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

/// What the log holds of a pushed batch that starts behind the head.
enum Stored {
    /// Every event, exactly.
    All,
    /// The first `n` events exactly; the rest continue from the head.
    Prefix(usize),
    /// Something else: the push is refused as stale.
    Different,
}

/// What the admin info request shows about a store.
#[derive(Debug, Clone)]
pub struct StoreInfo {
    pub head: i64,
    pub backend_id: String,
    pub sockets: usize,
    pub subscriptions: usize,
}

/// A store entry as the status page shows it; read without touching storage.
#[derive(Debug, Clone)]
pub struct StoreStatus {
    pub id: String,
    /// `None` until the store is loaded from storage.
    pub head: Option<i64>,
    pub sockets: usize,
    pub subscriptions: usize,
    pub last_write: Option<SystemTime>,
}

/// The end of a backlog, as [`Store::go_live`] sees it.
pub(crate) enum GoLive {
    /// Held batches went out; the subscription is live.
    Live,
    /// Batches were dropped while held: the pull must read up to this head
    /// from the log first (the subscription stays in the backlog phase).
    Behind(i64),
    /// The socket is gone (the subscription was removed).
    Gone,
}

/// A socket attached to a store (for reset and admin info); detaches it and
/// all its subscriptions when dropped.
pub struct Attachment {
    store: Arc<Store>,
    conn: ConnId,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let mut st = self.store.state.lock();
        st.conns.remove(&self.conn);
        st.subs.retain(|s| s.conn != self.conn);
    }
}

impl Store {
    pub(crate) fn new(
        id: &str,
        storage: Arc<dyn Storage>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Store {
        Store {
            id: id.to_string(),
            storage,
            limits,
            metrics,
            state: Mutex::new(State::default()),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn storage_arc(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    fn with_meta<'a>(&self, st: &'a mut State) -> Result<&'a mut StoreMeta, StorageError> {
        if st.meta.is_none() {
            st.meta = Some(self.storage.open_store(&self.id)?);
        }
        Ok(st.meta.as_mut().expect("loaded above"))
    }

    /// Head and backend id, loading them on first use.
    pub fn meta(&self) -> Result<StoreMeta, StorageError> {
        let mut st = self.state.lock();
        self.with_meta(&mut st).cloned()
    }

    /// Whether the store is still the incarnation `backend_id` names (not
    /// reset nor deleted since).
    pub(crate) fn serves(&self, backend_id: &str) -> bool {
        let st = self.state.lock();
        st.meta.as_ref().is_some_and(|m| m.backend_id == backend_id)
    }

    /// Whether anything would be lost by forgetting this store's entry: a
    /// socket or subscription still uses it.
    pub(crate) fn in_use(&self) -> bool {
        let st = self.state.lock();
        !st.conns.is_empty() || !st.subs.is_empty()
    }

    /// Registers a socket (for reset and admin info) and loads the store.
    pub fn attach(self: &Arc<Self>, sink: Arc<dyn Sink>) -> Result<Attachment, StorageError> {
        let mut st = self.state.lock();
        self.with_meta(&mut st)?;
        let conn = sink.id();
        st.conns.insert(conn, sink);
        Ok(Attachment {
            store: self.clone(),
            conn,
        })
    }

    /// A pull of the events after `from`, checked against `backend_id` when
    /// the client names one. With `live` (the socket and how it encodes
    /// batches), it subscribes first: batches pushed while its pages go out
    /// are held, and follow its last page. See [`Pull`].
    pub fn pull(
        self: &Arc<Self>,
        from: i64,
        backend_id: Option<&str>,
        live: Option<(ConnId, Arc<dyn LiveSink>)>,
    ) -> Result<Pull, PullRefused> {
        // Another instance may have appended without this one hearing of
        // it yet (a notice in flight, the listener down): catch up with the
        // log first, so the pull reads up to the stored head and this
        // store's subscribers get the same events first. The stored head is
        // read outside the mutex, so pushes and other pulls go on meanwhile.
        let stored = if self.storage.shared() {
            // On a shared reading thread, like the pages (`reads.rs`).
            Some(super::reads::open_store(&self.storage, &self.id).map_err(PullRefused::Storage)?)
        } else {
            None
        };
        let mut st = self.state.lock();
        if let Some(stored) = stored {
            match st.meta.as_ref() {
                None => st.meta = Some(stored),
                Some(cached) if cached.backend_id == stored.backend_id => {
                    // Nothing to do if this instance is past it already
                    // (a push through it since the read).
                    self.catch_up(&mut st, stored.head)
                        .map_err(PullRefused::Storage)?;
                }
                // A reset, here or elsewhere, around the read: read again
                // under the mutex to know which.
                Some(_) => self.refresh(&mut st).map_err(PullRefused::Storage)?,
            }
        }
        let meta = self
            .with_meta(&mut st)
            .map_err(PullRefused::Storage)?
            .clone();
        if let Some(received) = backend_id {
            if received != meta.backend_id {
                return Err(PullRefused::BackendIdMismatch {
                    expected: meta.backend_id,
                    received: received.to_string(),
                });
            }
        }
        let sub = live.map(|(conn, sink)| {
            st.next_sub += 1;
            let id = st.next_sub;
            st.subs.push(Subscription {
                id,
                conn,
                phase: Phase::backlog(),
                last_sent: from.max(0),
                broadcast: false,
                caught_up: false,
                sink,
            });
            id
        });
        drop(st);
        Ok(Pull::new(self.clone(), sub, from, meta))
    }

    /// A live subscription for every batch from now on, with no backlog (a
    /// 0.3 socket is live from the moment it connects).
    pub fn follow(
        self: &Arc<Self>,
        conn: ConnId,
        sink: Arc<dyn LiveSink>,
    ) -> Result<Pull, StorageError> {
        let mut st = self.state.lock();
        let head = self.with_meta(&mut st)?.head;
        st.next_sub += 1;
        let id = st.next_sub;
        st.subs.push(Subscription {
            id,
            conn,
            phase: Phase::Live,
            last_sent: head,
            broadcast: false,
            caught_up: false,
            sink,
        });
        drop(st);
        Ok(Pull::live(self.clone(), id))
    }

    /// Ends subscription `sub`'s backlog: `last_sent` is the last seq_num the
    /// backlog sent. Held batches above it go out now, in order, and the
    /// subscription is live; unless batches were dropped while held.
    pub(crate) fn go_live(&self, sub: SubId, last_sent: i64) -> GoLive {
        let mut st = self.state.lock();
        let head = st.meta.as_ref().map_or(0, |m| m.head);
        let Some(pos) = st.subs.iter().position(|s| s.id == sub) else {
            return GoLive::Gone;
        };
        let s = &mut st.subs[pos];
        s.last_sent = s.last_sent.max(last_sent);
        if let Phase::Backlog {
            overflowed: true, ..
        } = s.phase
        {
            s.phase = Phase::backlog();
            return GoLive::Behind(head);
        }
        let held = match std::mem::replace(&mut s.phase, Phase::Live) {
            Phase::Backlog { held, .. } => held,
            Phase::Live => Vec::new(),
        };
        let mut sent = 0;
        for batch in &held {
            if !s.deliver(batch, &mut sent) {
                st.subs.remove(pos);
                self.metrics.delivered(sent);
                return GoLive::Gone;
            }
        }
        self.metrics.delivered(sent);
        GoLive::Live
    }

    pub(crate) fn unsubscribe(&self, sub: SubId) {
        self.state.lock().subs.retain(|s| s.id != sub);
    }

    /// The push rule. Under the store's mutex: check the backend id (0.4) and
    /// the chain against the head, persist the batch, advance the head, call
    /// `on_accepted` (which queues the pusher's ack, so it precedes the
    /// broadcast on the pusher's socket), then fan the batch out to every
    /// subscription of the store. An empty batch is accepted without any of that.
    ///
    /// A parent ahead of the cached head means another instance appended:
    /// the head is read again from storage before the push is judged.
    pub fn push(
        &self,
        origin: &str,
        events: Vec<Event>,
        backend_id: Option<&str>,
        on_accepted: impl FnOnce(),
    ) -> Result<(), PushError> {
        if events.is_empty() {
            on_accepted();
            return Ok(());
        }
        let arrived = Instant::now();
        let mut st = self.state.lock();
        let meta = self.with_meta(&mut st).map_err(PushError::Storage)?;
        if let Some(received) = backend_id {
            if received != meta.backend_id {
                return Err(PushError::BackendIdMismatch {
                    expected: meta.backend_id.clone(),
                    received: received.to_string(),
                });
            }
        }
        if events[0].parent_seq_num > meta.head {
            self.refresh(&mut st).map_err(PushError::Storage)?;
        }
        let mut events = events;
        // At most twice: after a conflict (another instance wrote first) the
        // batch is judged again against the head it caught up to, so a
        // re-push of what that instance had stored is still recognised.
        let mut after_conflict = false;
        let created_at = loop {
            let head = self.with_meta(&mut st).map_err(PushError::Storage)?.head;
            if events[0].parent_seq_num < head {
                match self.already_stored(head, &events)? {
                    Stored::All => {
                        // An exact re-push (a client that lost its echo and
                        // reloaded): acknowledged, nothing stored or sent again.
                        on_accepted();
                        return Ok(());
                    }
                    Stored::Prefix(n) => {
                        // Stored up to the head; the rest continues from it.
                        events.drain(..n);
                    }
                    Stored::Different => {}
                }
            }
            check_chain(head, &events).map_err(PushError::Chain)?;
            let created_at = crate::timefmt::now_ms();
            let writing = Instant::now();
            match self.storage.append(&self.id, head, &events, created_at) {
                Ok(()) => {
                    self.metrics
                        .appended(events.len(), created_at, writing.elapsed());
                    break created_at;
                }
                Err(AppendError::Conflict { head }) => {
                    // Another instance wrote first: catch up with its events
                    // (the log has them), then judge the batch again (once).
                    let parent = events[0].parent_seq_num;
                    self.catch_up(&mut st, head).map_err(PushError::Storage)?;
                    if after_conflict {
                        return Err(PushError::Chain(ChainError::WrongParent { head, parent }));
                    }
                    after_conflict = true;
                }
                Err(AppendError::Storage(e)) => return Err(PushError::Storage(e)),
            }
        };
        let meta = st.meta.as_mut().expect("loaded above");
        meta.head = events.last().map_or(meta.head, |e| e.seq_num);
        let backend_id: Arc<str> = meta.backend_id.as_str().into();
        st.last_write = Some(created_at);
        // The batch is stored: it goes out to the other sockets even if the
        // pusher's callback panics (its connection then ends, unacked).
        let accepted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(on_accepted));
        let batch = LiveBatch::new(
            origin.to_string(),
            backend_id,
            events
                .into_iter()
                .map(|event| StoredEvent { event, created_at })
                .collect(),
        );
        if self.fan_out(&mut st, batch) {
            self.metrics.fanned_out(arrived.elapsed());
        }
        if let Err(panic) = accepted {
            drop(st);
            std::panic::resume_unwind(panic);
        }
        Ok(())
    }

    /// Offers `batch` to every subscription; false if there was none.
    fn fan_out(&self, st: &mut State, batch: LiveBatch) -> bool {
        if st.subs.is_empty() {
            return false;
        }
        let batch = Arc::new(batch);
        let max = self.limits.max_held_bytes;
        let mut sent = 0;
        st.subs.retain_mut(|s| s.offer(&batch, max, &mut sent));
        self.metrics.delivered(sent);
        true
    }

    /// How much of a batch whose parent is behind `head` the log already
    /// holds, event for event (name, args text, seq_num, parent, client and
    /// session): a client that lost the echo of its push pushes it again.
    /// One read of the overlap, only for such batches.
    fn already_stored(&self, head: i64, events: &[Event]) -> Result<Stored, PushError> {
        let first = events[0].parent_seq_num;
        if first < 0 || check_chain(first, events).is_err() {
            return Ok(Stored::Different);
        }
        let overlap = events.iter().take_while(|e| e.seq_num <= head).count();
        let stored = self
            .storage
            .read(&self.id, first, head, overlap)
            .map_err(PushError::Storage)?;
        let same = stored.len() == overlap && stored.iter().zip(events).all(|(s, e)| s.event == *e);
        Ok(match (same, overlap == events.len()) {
            (false, _) => Stored::Different,
            (true, true) => Stored::All,
            (true, false) => Stored::Prefix(overlap),
        })
    }

    /// The 0.3 catch-up (spec sync-cf-0.3 §5 #1), after a push whose parent
    /// `parent` is behind the head was refused: sends subscription `sub` the
    /// events after `parent` as one live batch of `origin` (the push's
    /// request id), so a reconnected client that missed them rebases and
    /// pushes again instead of waiting for a broadcast that may never come.
    ///
    /// Only where it cannot repeat an event: the subscription is live and
    /// has had no broadcast, and either no catch-up yet or one that ended at
    /// `parent`. At most one page (the model's page rule): the client takes
    /// the batch as a live one (`remaining: 0`), rebases onto its last event
    /// and pushes again; that push is refused while the gap lasts and gets
    /// the next page, so a long gap costs one round trip per page and never
    /// holds the mutex for more than one page's read. Returns the range sent.
    pub(crate) fn catch_up_stale(
        &self,
        sub: SubId,
        origin: &str,
        parent: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let mut st = self.state.lock();
        let meta = self.with_meta(&mut st)?.clone();
        if parent < 0 || parent >= meta.head {
            return Ok(None);
        }
        let Some(pos) = st.subs.iter().position(|s| s.id == sub) else {
            return Ok(None);
        };
        let s = &st.subs[pos];
        if !matches!(s.phase, Phase::Live) || s.broadcast || (s.caught_up && s.last_sent != parent)
        {
            return Ok(None);
        }
        let mut events =
            self.storage
                .read(&self.id, parent, meta.head, crate::model::PAGE_EVENTS)?;
        events.truncate(crate::model::page_len(&events));
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(None);
        };
        let range = (first.event.seq_num, last.event.seq_num);
        let batch = LiveBatch::new(origin.to_string(), meta.backend_id.as_str().into(), events);
        let s = &mut st.subs[pos];
        if s.sink.send_live(&batch, 0).is_err() {
            st.subs.remove(pos);
            return Ok(None);
        }
        // Nothing was sent on this subscription before (or only the catch-up
        // up to `parent`), so `last_sent` may go down: broadcasts are all
        // above the head anyway.
        s.last_sent = range.1;
        s.caught_up = true;
        self.metrics.delivered(1);
        Ok(Some(range))
    }

    /// Events appended to this store by another process (another instance,
    /// or the command line): advances the head to `head` and delivers what
    /// was appended, read from the log, so a lost or coalesced notice loses
    /// nothing.
    pub fn appended_elsewhere(&self, head: i64) -> Result<(), StorageError> {
        let mut st = self.state.lock();
        self.catch_up(&mut st, head)
    }

    /// Compares the store with storage and catches up: a reset elsewhere
    /// closes every socket, events appended elsewhere are delivered.
    pub fn resync(&self) -> Result<(), StorageError> {
        let mut st = self.state.lock();
        self.refresh(&mut st)
    }

    fn refresh(&self, st: &mut State) -> Result<(), StorageError> {
        let Some(cached) = st.meta.as_ref() else {
            // Not loaded yet: the next use reads it from storage.
            return Ok(());
        };
        let stored = self.storage.open_store(&self.id)?;
        if stored.backend_id != cached.backend_id {
            st.meta = Some(stored);
            Self::close_all(st);
            return Ok(());
        }
        self.catch_up(st, stored.head)
    }

    /// Brings the cached head up to `head`, fanning out what the log holds
    /// in between (origin `remote`: the pusher's request id is not known).
    fn catch_up(&self, st: &mut State, head: i64) -> Result<(), StorageError> {
        let meta = self.with_meta(st)?.clone();
        let mut from = meta.head;
        let backend_id: Arc<str> = meta.backend_id.as_str().into();
        while from < head {
            let events = self
                .storage
                .read(&self.id, from, head, self.limits.read_rows)?;
            let Some(last) = events.last().map(|e| e.event.seq_num) else {
                break;
            };
            from = last;
            st.meta.as_mut().expect("loaded above").head = last;
            st.last_write = Some(SystemTime::now());
            let batch = LiveBatch::new(REMOTE.to_string(), backend_id.clone(), events);
            self.fan_out(st, batch);
        }
        Ok(())
    }

    /// This store was reset by another process: serve the new backend id
    /// and head 0, and close every socket of the store (clients reconnect).
    pub fn reset_elsewhere(&self, backend_id: String) {
        let mut st = self.state.lock();
        st.meta = Some(StoreMeta {
            head: 0,
            backend_id,
        });
        Self::close_all(&mut st);
    }

    /// This store was deleted by another process: close every socket of the
    /// store (clients reconnect) and forget its head and backend id; the
    /// next use reads storage, which creates the store again, empty, with a
    /// new backend id.
    pub fn deleted_elsewhere(&self) {
        let mut st = self.state.lock();
        st.meta = None;
        Self::close_all_with(&mut st, "store deleted");
    }

    fn close_all(st: &mut State) {
        Self::close_all_with(st, "store reset");
    }

    fn close_all_with(st: &mut State, reason: &'static str) {
        st.subs.clear();
        for (_, sink) in st.conns.drain() {
            // 4000+: application-defined. Clients reconnect on any close.
            sink.close(4001, reason);
        }
    }

    /// Wipes the store: events deleted, head 0, a new backend id. `on_reset`
    /// runs under the mutex before every socket of the store is closed (so
    /// the requester's answer goes out before its close frame).
    pub fn reset(&self, on_reset: impl FnOnce()) -> Result<(), StorageError> {
        let mut st = self.state.lock();
        let backend_id = new_backend_id();
        self.storage.reset(&self.id, &backend_id)?;
        st.meta = Some(StoreMeta {
            head: 0,
            backend_id,
        });
        on_reset();
        Self::close_all(&mut st);
        Ok(())
    }

    /// Deletes the store: its events and its row (other processes serving
    /// it are told by the storage). `Ok(false)` when storage had no such
    /// store. Like [`Store::reset`]: under the mutex, `on_deleted` runs
    /// before every socket of the store is closed; the next use creates the
    /// store again with a new backend id.
    pub fn delete(&self, on_deleted: impl FnOnce()) -> Result<bool, StorageError> {
        let mut st = self.state.lock();
        let existed = self.storage.delete_store(&self.id)?;
        st.meta = None;
        on_deleted();
        Self::close_all_with(&mut st, "store deleted");
        Ok(existed)
    }

    /// What the status page shows; never reads storage.
    pub fn status(&self) -> StoreStatus {
        let st = self.state.lock();
        StoreStatus {
            id: self.id.clone(),
            head: st.meta.as_ref().map(|m| m.head),
            sockets: st.conns.len(),
            subscriptions: st.subs.len(),
            last_write: st.last_write,
        }
    }

    pub fn info(&self) -> Result<StoreInfo, StorageError> {
        let mut st = self.state.lock();
        let meta = self.with_meta(&mut st)?.clone();
        Ok(StoreInfo {
            head: meta.head,
            backend_id: meta.backend_id,
            sockets: st.conns.len(),
            subscriptions: st.subs.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The push and pull rules over in-memory storage and a recording sink.
    use super::*;
    use crate::model::ev;
    use crate::sync::hub::Hub;
    use crate::sync::pull::{Progress, PullError};
    use crate::sync::testing::{MemStorage, RecordingSink};

    /// Records the seq_nums each delivery carried, through a real sink (so
    /// a full sink drops the subscription like a slow socket).
    struct Recorder(Arc<RecordingSink>, Mutex<Vec<Vec<i64>>>);
    impl LiveSink for Recorder {
        fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone> {
            self.0.try_send(crate::sync::sink::Msg::Static("live"))?;
            self.1.lock().push(
                batch.events[from..]
                    .iter()
                    .map(|e| e.event.seq_num)
                    .collect(),
            );
            Ok(())
        }
    }

    fn recorder(capacity: usize) -> Arc<Recorder> {
        Arc::new(Recorder(
            RecordingSink::new(capacity),
            Mutex::new(Vec::new()),
        ))
    }

    fn live(r: &Arc<Recorder>) -> Option<(ConnId, Arc<dyn LiveSink>)> {
        Some((r.0.id(), r.clone() as Arc<dyn LiveSink>))
    }

    fn setup(storage: MemStorage, limits: Limits) -> (Hub, Arc<Store>) {
        let hub = Hub::new(Arc::new(storage), limits);
        let store = hub.store("s");
        (hub, store)
    }

    fn batch(from: i64, n: i64) -> Vec<Event> {
        (from..from + n).map(|i| ev(i, "{}")).collect()
    }

    /// Sends every page of `pull`, returning (seq_nums, remaining) per page.
    fn drain(pull: &mut Pull) -> Vec<(Vec<i64>, i64)> {
        let mut pages = Vec::new();
        loop {
            let step = pull.send_next(|p| {
                pages.push((
                    p.events.iter().map(|e| e.event.seq_num).collect(),
                    p.remaining,
                ));
                Ok(())
            });
            if step.unwrap() == Progress::Done {
                return pages;
            }
        }
    }

    #[test]
    fn live_batches_wait_for_the_backlog_then_go_out_once_in_order() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        store.push("p1", batch(1, 3), None, || {}).unwrap();
        let rec = recorder(64);
        let mut pull = store.pull(0, None, live(&rec)).unwrap();
        assert_eq!(pull.meta().unwrap().head, 3);
        // Pushes during the backlog are held.
        store.push("p2", batch(4, 2), None, || {}).unwrap();
        store.push("p3", batch(6, 1), None, || {}).unwrap();
        assert!(rec.1.lock().is_empty());
        // The backlog sends 1..=3; the held batches follow, then live ones.
        assert_eq!(drain(&mut pull), vec![(vec![1, 2, 3], 0)]);
        assert!(pull.is_live());
        store.push("p4", batch(7, 1), None, || {}).unwrap();
        assert_eq!(*rec.1.lock(), vec![vec![4, 5], vec![6], vec![7]]);
    }

    #[test]
    fn a_live_batch_never_lands_between_two_pages() {
        let (_hub, store) = setup(MemStorage::with_log(150, 10), Limits::default());
        let rec = recorder(64);
        let mut pull = store.pull(0, None, live(&rec)).unwrap();
        let mut first = true;
        let mut order = Vec::new();
        loop {
            let step = pull.send_next(|p| {
                order.push(format!("page {}", p.remaining));
                Ok(())
            });
            if first {
                // A push while the answer is half sent.
                store.push("p", batch(151, 1), None, || {}).unwrap();
                first = false;
            }
            order.push(format!("live {}", rec.1.lock().len()));
            if step.unwrap() == Progress::Done {
                break;
            }
        }
        assert_eq!(order, ["page 50", "live 0", "page 0", "live 1"]);
        assert_eq!(*rec.1.lock(), vec![vec![151]]);
    }

    #[test]
    fn a_stored_batch_reaches_the_others_when_the_pushers_callback_panics() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        let a = recorder(64);
        let _fa = store.follow(a.0.id(), a.clone()).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.push("p", batch(1, 2), None, || panic!("handler bug"))
        }));
        assert!(r.is_err(), "the panic goes on up to the connection");
        assert_eq!(*a.1.lock(), vec![vec![1, 2]]);
        assert_eq!(store.meta().unwrap().head, 2);
        store.push("q", batch(3, 1), None, || {}).unwrap();
    }

    #[test]
    fn pushes_and_deliveries_are_counted_and_the_status_shows_the_last_write() {
        let (hub, store) = setup(MemStorage::default(), Limits::default());
        let m = hub.metrics().clone();
        assert_eq!(
            store.status().head,
            None,
            "not loaded: the status reads no storage"
        );
        store.push("p", batch(1, 3), None, || {}).unwrap();
        let (a, b) = (recorder(64), recorder(64));
        let _fa = store.follow(a.0.id(), a.clone()).unwrap();
        let _fb = store.follow(b.0.id(), b.clone()).unwrap();
        store.push("p", batch(4, 2), None, || {}).unwrap();
        // Refused (another client's event 1): nothing appended, nothing delivered.
        assert!(store
            .push("p", vec![ev(1, r#"{"other":1}"#)], None, || {})
            .is_err());
        assert_eq!(m.events_appended(), 5);
        assert_eq!(m.deliveries(), 2, "one per subscriber of the second push");
        let text = m.render(&Default::default());
        assert!(
            text.contains("livestore_push_commit_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("livestore_push_fanout_seconds_count 1\n"),
            "only the push that had subscribers: {text}"
        );
        let status = store.status();
        assert_eq!((status.head, status.subscriptions), (Some(5), 2));
        assert!(status.last_write.is_some());
        assert_eq!(hub.statuses().len(), 1);
    }

    #[test]
    fn nothing_at_or_below_last_sent_goes_out_again() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        let rec = recorder(64);
        let mut pull = store.pull(0, None, live(&rec)).unwrap();
        // Pushed after the pull took its head (0): held, then delivered whole.
        store.push("p1", batch(1, 4), None, || {}).unwrap();
        assert_eq!(drain(&mut pull), vec![(vec![], 0)]);
        assert_eq!(*rec.1.lock(), vec![vec![1, 2, 3, 4]]);
        // A second pull from 2 on the same socket: its backlog sends 3..=4,
        // and a held batch overlapping it is cut to what is new.
        let rec2 = recorder(64);
        let mut pull2 = store.pull(2, None, live(&rec2)).unwrap();
        store.push("p2", batch(5, 1), None, || {}).unwrap();
        assert_eq!(drain(&mut pull2), vec![(vec![3, 4], 0)]);
        assert_eq!(*rec2.1.lock(), vec![vec![5]]);
    }

    #[test]
    fn stale_parent_is_refused_without_broadcast_and_ack_precedes_fanout() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        let rec = recorder(64);
        let _follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        let order = Mutex::new(Vec::new());
        store
            .push("p1", batch(1, 2), None, || {
                order.lock().push(rec.1.lock().len());
            })
            .unwrap();
        assert_eq!(*order.lock(), vec![0], "ack ran before any delivery");
        // Another client's event 1 (an exact copy of a stored one would be
        // acknowledged as a re-push).
        let err = store
            .push("p2", vec![ev(1, r#"{"other":1}"#)], None, || {
                panic!("no ack")
            })
            .unwrap_err();
        assert!(matches!(
            err,
            PushError::Chain(ChainError::WrongParent { head: 2, parent: 0 })
        ));
        assert_eq!(*rec.1.lock(), vec![vec![1, 2]]);
    }

    #[test]
    fn an_exact_re_push_is_acknowledged_without_storing_or_sending_again() {
        let (hub, store) = setup(MemStorage::default(), Limits::default());
        let rec = recorder(64);
        let _follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        store.push("p1", batch(1, 3), None, || {}).unwrap();
        // The whole batch again, and a part of it.
        for again in [batch(1, 3), batch(2, 2), batch(3, 1)] {
            let acked = Mutex::new(false);
            store
                .push("p2", again, None, || *acked.lock() = true)
                .unwrap();
            assert!(*acked.lock());
        }
        assert_eq!(*rec.1.lock(), vec![vec![1, 2, 3]], "sent once");
        assert_eq!(store.meta().unwrap().head, 3);
        assert_eq!(hub.storage().read("s", 0, 10, 10).unwrap().len(), 3);
    }

    #[test]
    fn a_re_push_that_runs_past_the_head_stores_only_the_rest() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        let rec = recorder(64);
        let _follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        store.push("p1", batch(1, 2), None, || {}).unwrap();
        store.push("p2", batch(2, 3), None, || {}).unwrap();
        assert_eq!(*rec.1.lock(), vec![vec![1, 2], vec![3, 4]]);
        assert_eq!(store.meta().unwrap().head, 4);
    }

    #[test]
    fn a_re_push_that_differs_anywhere_is_refused_as_stale() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        store.push("p1", batch(1, 3), None, || {}).unwrap();
        let other_args = vec![ev(2, "{}"), ev(3, r#"{"x":1}"#)];
        let mut other_client = batch(2, 2);
        other_client[1].client_id = "someone-else".into();
        // Same value, other text: the client compares text.
        let reordered = vec![ev(3, r#"{ }"#)];
        for (i, b) in [other_args, other_client, reordered]
            .into_iter()
            .enumerate()
        {
            let err = store.push("p", b, None, || panic!("no ack")).unwrap_err();
            assert!(
                matches!(
                    err,
                    PushError::Chain(ChainError::WrongParent { head: 3, .. })
                ),
                "case {i}: {err:?}"
            );
        }
        // A batch broken inside is refused as today (not read as a re-push).
        let mut broken = batch(1, 2);
        broken[1].parent_seq_num = 0;
        assert!(store.push("p", broken, None, || panic!("no ack")).is_err());
        assert_eq!(store.meta().unwrap().head, 3);
    }

    #[test]
    fn backend_id_mismatch_is_refused_for_push_and_pull() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        let err = store
            .push("p", batch(1, 1), Some("other"), || {})
            .unwrap_err();
        assert!(matches!(err, PushError::BackendIdMismatch { .. }));
        let refused = store.pull(0, Some("other"), None);
        assert!(matches!(
            refused,
            Err(PullRefused::BackendIdMismatch { expected, received })
                if expected == "B" && received == "other"
        ));
        assert!(store.pull(0, Some("B"), None).is_ok());
    }

    #[test]
    fn a_slow_socket_is_dropped_and_others_keep_receiving() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        let slow = recorder(2);
        let fast = recorder(64);
        let _a = store.follow(slow.0.id(), slow.clone()).unwrap();
        let _b = store.follow(fast.0.id(), fast.clone()).unwrap();
        for i in 1..=5 {
            store.push("p", batch(i, 1), None, || {}).unwrap();
        }
        assert!(slow.0.is_gone());
        assert_eq!(slow.1.lock().len(), 2);
        assert_eq!(fast.1.lock().len(), 5);
        assert_eq!(store.info().unwrap().subscriptions, 1);
    }

    #[test]
    fn held_batches_past_the_bound_are_read_from_the_log_instead() {
        // A pull that never finishes its answer (a 0.4 client that stopped
        // sending Acks) holds at most `max_held_bytes` of live batches.
        let limits = Limits {
            max_held_bytes: 500,
            ..Limits::default()
        };
        let (_hub, store) = setup(MemStorage::with_log(150, 10), limits);
        let rec = recorder(64);
        let mut pull = store.pull(0, None, live(&rec)).unwrap();
        let mut pages = Vec::new();
        let step = pull.send_next(|p| {
            pages.push((p.events.len(), p.remaining));
            Ok(())
        });
        assert_eq!(step.unwrap(), Progress::More);
        // 40 pushes of ~100 bytes: far past the bound.
        for i in 151..=190 {
            store.push("p", batch(i, 1), None, || {}).unwrap();
        }
        assert!(rec.1.lock().is_empty());
        // The answer ends at its head (150); the dropped batches follow as
        // pages with remaining 0, read from the log; then it is live.
        pages.extend(drain(&mut pull).into_iter().map(|(e, r)| (e.len(), r)));
        assert_eq!(pages, vec![(100, 50), (50, 0), (40, 0)]);
        assert!(pull.is_live());
        store.push("p", batch(191, 1), None, || {}).unwrap();
        assert_eq!(*rec.1.lock(), vec![vec![191]]);
    }

    #[test]
    fn a_failed_page_read_ends_the_pull_and_its_subscription() {
        let storage = Arc::new(MemStorage::with_log(250, 10));
        // One page per read, so the second page needs storage again.
        let limits = Limits {
            read_rows: 100,
            ..Limits::default()
        };
        let hub = Hub::new(storage.clone(), limits);
        let store = hub.store("s");
        let rec = recorder(64);
        let mut pull = store.pull(0, None, live(&rec)).unwrap();
        assert_eq!(pull.send_next(|_| Ok(())).unwrap(), Progress::More);
        storage
            .fail_reads
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            pull.send_next(|_| Ok(())),
            Err(PullError::Storage(_))
        ));
        // No live batch reaches the socket after the gap.
        storage
            .fail_reads
            .store(false, std::sync::atomic::Ordering::SeqCst);
        store.push("p", batch(251, 1), None, || {}).unwrap();
        assert!(rec.1.lock().is_empty());
        assert_eq!(store.info().unwrap().subscriptions, 0);
    }

    #[test]
    fn dropping_a_pull_unsubscribes() {
        let (_hub, store) = setup(MemStorage::with_log(10, 10), Limits::default());
        let rec = recorder(64);
        let pull = store.pull(0, None, live(&rec)).unwrap();
        assert_eq!(store.info().unwrap().subscriptions, 1);
        drop(pull);
        assert_eq!(store.info().unwrap().subscriptions, 0);
        let follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        drop(follow);
        assert_eq!(store.info().unwrap().subscriptions, 0);
    }

    #[test]
    fn a_dropped_attachment_detaches_the_socket_and_its_subscriptions() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        let rec = recorder(64);
        let attached = store.attach(rec.0.clone()).unwrap();
        let pull = store.follow(rec.0.id(), rec.clone()).unwrap();
        assert_eq!(store.info().unwrap().sockets, 1);
        drop(attached);
        let info = store.info().unwrap();
        assert_eq!((info.sockets, info.subscriptions), (0, 0));
        drop(pull); // unsubscribing again is harmless
    }

    #[test]
    fn events_appended_elsewhere_are_read_from_the_log_and_delivered() {
        let storage = Arc::new(MemStorage::default());
        let hub = Hub::new(storage.clone(), Limits::default());
        let store = hub.store("s");
        store.push("p", batch(1, 2), None, || {}).unwrap();
        let rec = recorder(64);
        let _follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        // Another instance appends 3..=5 and says "head is 5": all of it is
        // read from the log, even if an earlier notice was lost.
        storage.append_behind_the_back("s", &batch(3, 3));
        store.appended_elsewhere(5).unwrap();
        assert_eq!(*rec.1.lock(), vec![vec![3, 4, 5]]);
        assert_eq!(store.meta().unwrap().head, 5);
        // A late or repeated notice delivers nothing twice.
        store.appended_elsewhere(4).unwrap();
        store.appended_elsewhere(5).unwrap();
        assert_eq!(rec.1.lock().len(), 1);
        // And our own pushes continue from the new head.
        store.push("p", batch(6, 1), None, || {}).unwrap();
        assert_eq!(rec.1.lock().last(), Some(&vec![6]));
    }

    #[test]
    fn a_push_on_a_head_moved_elsewhere_checks_storage_before_refusing() {
        let storage = Arc::new(MemStorage::default());
        let hub = Hub::new(storage.clone(), Limits::default());
        let store = hub.store("s");
        assert_eq!(store.meta().unwrap().head, 0);
        storage.append_behind_the_back("s", &batch(1, 3));
        // Parent 3 is ahead of the cached head 0, and right for storage.
        store.push("p", batch(4, 1), None, || {}).unwrap();
        assert_eq!(store.meta().unwrap().head, 4);
        // A parent ahead of storage too is still refused.
        let err = store.push("p", batch(9, 1), None, || {}).unwrap_err();
        assert!(matches!(
            err,
            PushError::Chain(ChainError::WrongParent { head: 4, parent: 8 })
        ));
    }

    /// `n` events `1..=n` as an import reads them.
    fn import_source(n: i64) -> impl Iterator<Item = Result<StoredEvent, String>> {
        batch(1, n).into_iter().map(|event| {
            Ok(StoredEvent {
                event,
                created_at: std::time::SystemTime::UNIX_EPOCH,
            })
        })
    }

    #[test]
    fn a_delete_here_answers_first_then_closes_every_socket_and_forgets_the_store() {
        let storage = Arc::new(MemStorage::default());
        let hub = Hub::new(storage.clone(), Limits::default());
        let store = hub.store("s");
        store.push("p", batch(1, 3), None, || {}).unwrap();
        let rec = recorder(64);
        let _attached = store.attach(rec.0.clone()).unwrap();
        let _follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        let closed_when_answered = std::cell::Cell::new(None);
        let existed = store
            .delete(|| closed_when_answered.set(Some(*rec.0.closed.lock())))
            .unwrap();
        assert!(existed);
        assert_eq!(
            closed_when_answered.get(),
            Some(None),
            "the requester hears of it before the sockets close"
        );
        assert_eq!(*rec.0.closed.lock(), Some(4001));
        assert_eq!(storage.store_summary("s").unwrap().map(|s| s.head), None);
        assert!(!store.in_use(), "no socket nor subscription left");
        // The cached head is gone: the next use reads storage (here: what
        // an import wrote meanwhile), not the 3 it had.
        storage
            .import("s", Some("NEW"), false, &mut import_source(2))
            .unwrap();
        let meta = store.meta().unwrap();
        assert_eq!((meta.head, meta.backend_id.as_str()), (2, "NEW"));
        // Deleting a store storage does not have says so.
        storage.delete_store("s").unwrap();
        assert!(!hub.store("s").delete(|| {}).unwrap());
    }

    #[test]
    fn a_delete_elsewhere_closes_every_socket_and_reloads_the_store() {
        let storage = Arc::new(MemStorage::default());
        let hub = Hub::new(storage.clone(), Limits::default());
        let store = hub.store("s");
        store.push("p", batch(1, 3), None, || {}).unwrap();
        let rec = recorder(64);
        let _attached = store.attach(rec.0.clone()).unwrap();
        let _follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        let other = recorder(64);
        let _other = hub.store("t").attach(other.0.clone()).unwrap();
        assert!(storage.delete_store("s").unwrap());
        hub.apply(crate::storage::Notice::Deleted {
            store_id: "s".into(),
        });
        assert_eq!(*rec.0.closed.lock(), Some(4001));
        assert_eq!(store.info().unwrap().subscriptions, 0);
        assert_eq!(*other.0.closed.lock(), None, "other stores untouched");
        // Read again from storage: the store is there again, empty.
        assert_eq!(store.meta().unwrap().head, 0);
        store.push("p", batch(1, 1), None, || {}).unwrap();
        // A store this process does not have is not loaded by a notice.
        hub.apply(crate::storage::Notice::Deleted {
            store_id: "nobody".into(),
        });
        assert!(hub.loaded("nobody").is_none());
    }

    #[test]
    fn an_import_elsewhere_resets_then_delivers_the_new_log() {
        let storage = Arc::new(MemStorage::default());
        let hub = Hub::new(storage.clone(), Limits::default());
        let store = hub.store("s");
        store.push("p", batch(1, 3), None, || {}).unwrap();
        let rec = recorder(64);
        let _attached = store.attach(rec.0.clone()).unwrap();
        let _follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        // What an import with `replace` tells the other processes.
        storage
            .import("s", Some("NEW"), true, &mut import_source(5))
            .unwrap();
        hub.apply(crate::storage::Notice::Reset {
            store_id: "s".into(),
            backend_id: "NEW".into(),
        });
        assert_eq!(*rec.0.closed.lock(), Some(4001));
        hub.apply(crate::storage::Notice::Appended {
            store_id: "s".into(),
            head: 5,
        });
        let meta = store.meta().unwrap();
        assert_eq!((meta.head, meta.backend_id.as_str()), (5, "NEW"));
        // A new subscriber gets what follows; a push continues the new log.
        let rec2 = recorder(64);
        let _follow2 = store.follow(rec2.0.id(), rec2.clone()).unwrap();
        store.push("p", batch(6, 1), Some("NEW"), || {}).unwrap();
        assert_eq!(*rec2.1.lock(), vec![vec![6]]);
        assert!(rec.1.lock().is_empty(), "the closed socket got nothing");
    }

    #[test]
    fn a_pull_across_a_reset_or_delete_ends_instead_of_answering_the_new_store() {
        // Found by the model fuzz test (sync::fuzz): a pull that is not live
        // (an HTTP request's, attached to no socket the reset closes) read
        // its next page after the store was reset, and answered events of
        // the new store under the old backend id.
        for wipe in ["reset", "delete"] {
            let (_hub, store) = setup(MemStorage::default(), Limits::default());
            store.push("p", batch(1, 5), None, || {}).unwrap();
            let mut pull = store.pull(1, None, None).unwrap();
            match wipe {
                "reset" => store.reset(|| {}).unwrap(),
                _ => assert!(store.delete(|| {}).unwrap()),
            }
            store.push("p", batch(1, 2), None, || {}).unwrap();
            let mut pages = Vec::new();
            let step = pull.send_next(|p| {
                pages.push(p.events.len());
                Ok(())
            });
            assert!(
                matches!(step, Err(PullError::Storage(_))),
                "{wipe}: {step:?}"
            );
            assert!(pages.is_empty(), "{wipe}: a page of the new store went out");
        }
    }

    #[test]
    fn a_reset_elsewhere_closes_every_socket_and_serves_the_new_backend_id() {
        let (_hub, store) = setup(MemStorage::default(), Limits::default());
        let rec = recorder(64);
        let _attached = store.attach(rec.0.clone()).unwrap();
        let _follow = store.follow(rec.0.id(), rec.clone()).unwrap();
        store.reset_elsewhere("B2".into());
        assert_eq!(*rec.0.closed.lock(), Some(4001));
        let meta = store.meta().unwrap();
        assert_eq!((meta.head, meta.backend_id.as_str()), (0, "B2"));
        assert_eq!(store.info().unwrap().subscriptions, 0);
    }

    #[test]
    fn unused_store_entries_are_forgotten_past_the_bound() {
        let limits = Limits {
            max_stores: 3,
            ..Limits::default()
        };
        let hub = Hub::new(Arc::new(MemStorage::default()), limits);
        let rec = recorder(64);
        let busy = hub.store("busy");
        let _attached = busy.attach(rec.0.clone()).unwrap();
        drop(busy);
        for i in 0..50 {
            hub.store(&format!("idle-{i}")).meta().unwrap();
        }
        assert!(hub.stores_in_memory() <= 3, "{}", hub.stores_in_memory());
        assert!(hub.loaded("busy").is_some(), "a store with a socket stays");
    }
}
