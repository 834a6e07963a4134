//! The push/pull rules against a model (issue 13; docs/fuzzing.md).
//!
//! Generated sequences of operations on two stores over the in-memory
//! storage: pushes (valid, stale, ahead, broken chains, duplicates, empty,
//! with the right or a wrong backend id), appends by another instance with
//! or without a notice, pulls from any cursor (live or not, stepped a page
//! at a time between the other operations), 0.3 follows, dropped clients,
//! failed page reads, resets, deletes, resyncs. The model is a `Vec` of
//! events per store plus the head this process has noticed.
//!
//! After every operation: the log in storage is the model's (contiguous,
//! every accepted push's events once); a push is accepted exactly when the
//! model says so, and acknowledged once; what each client received is, in
//! order, the events after its cursor, each once, without a gap, pages
//! before any live batch, all of one incarnation of the store. At the end
//! (every pull stepped to its end, every store resynced) every live client
//! has received exactly the events after its cursor up to the head. And
//! nothing panics.
//!
//! `FUZZ_CASES` sets the number of sequences, `FUZZ_SEED` the seed (as in
//! `tests/fuzz`).

use std::cell::Cell;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use parking_lot::Mutex;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use super::hub::Hub;
use super::pull::{Progress, Pull, PullError, PullRefused};
use super::sink::{Gone, Msg, Sink};
use super::store::{Attachment, LiveBatch, LiveSink, PushError, Store};
use super::testing::{MemStorage, RecordingSink};
use super::Limits;
use crate::model::Event;
use crate::storage::Storage;

const STORES: [&str; 2] = ["s", "t"];

#[derive(Debug, Clone, Copy)]
enum Backend {
    None,
    Right,
    Wrong,
}

#[derive(Debug, Clone)]
enum Batch {
    Valid(i64),
    /// Another client's batch on an earlier head (`k` + 1 behind).
    Stale(i64, i64),
    /// The log's own events from an earlier head (`k` + 1 behind) on, as a
    /// client that lost its echo pushes them again (then maybe more).
    Repush(i64, i64),
    /// Continues a head not reached yet.
    Ahead(i64, i64),
    /// A valid batch with one event changed.
    Broken(i64, Index, Break),
    /// The store's last accepted batch again.
    Duplicate,
    Empty,
}

#[derive(Debug, Clone, Copy)]
enum Break {
    SkipSeq,
    WrongParent,
    SeqIsParent,
    Extreme,
}

#[derive(Debug, Clone, Copy)]
enum Cursor {
    Zero,
    Head,
    Below(i64),
    Above(i64),
    Negative,
    Max,
    Min,
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize, Batch, Backend),
    Elsewhere {
        store: usize,
        n: i64,
        notice: bool,
    },
    Pull {
        store: usize,
        cursor: Cursor,
        live: bool,
        backend: Backend,
        capacity: usize,
    },
    Follow {
        store: usize,
        capacity: usize,
    },
    Step {
        client: Index,
        pages: usize,
    },
    FailedStep(Index),
    Drop(Index),
    Reset(usize),
    Delete(usize),
    Resync(usize),
}

fn batch_len() -> impl Strategy<Value = i64> {
    prop_oneof![8 => 1i64..4, 1 => 4i64..130]
}

fn op() -> impl Strategy<Value = Op> {
    let store = 0..STORES.len();
    let backend = prop_oneof![
        3 => Just(Backend::None),
        3 => Just(Backend::Right),
        1 => Just(Backend::Wrong)
    ];
    let batch = prop_oneof![
        8 => batch_len().prop_map(Batch::Valid),
        2 => (batch_len(), 0i64..3).prop_map(|(n, k)| Batch::Stale(n, k)),
        2 => (batch_len(), 0i64..3).prop_map(|(n, k)| Batch::Repush(n, k)),
        1 => (batch_len(), 0i64..3).prop_map(|(n, k)| Batch::Ahead(n, k)),
        2 => (batch_len(), any::<Index>(), prop_oneof![
            Just(Break::SkipSeq), Just(Break::WrongParent), Just(Break::SeqIsParent), Just(Break::Extreme)
        ]).prop_map(|(n, i, b)| Batch::Broken(n, i, b)),
        1 => Just(Batch::Duplicate),
        1 => Just(Batch::Empty),
    ];
    let cursor = prop_oneof![
        3 => Just(Cursor::Zero),
        2 => Just(Cursor::Head),
        3 => (0i64..150).prop_map(Cursor::Below),
        1 => (1i64..5).prop_map(Cursor::Above),
        1 => Just(Cursor::Negative),
        1 => Just(Cursor::Max),
        1 => Just(Cursor::Min),
    ];
    let capacity = prop_oneof![6 => Just(10_000usize), 1 => 1usize..6];
    prop_oneof![
        10 => (store.clone(), batch, backend.clone()).prop_map(|(s, b, k)| Op::Push(s, b, k)),
        2 => (store.clone(), batch_len(), any::<bool>())
            .prop_map(|(store, n, notice)| Op::Elsewhere { store, n, notice }),
        4 => (store.clone(), cursor, any::<bool>(), backend, capacity.clone()).prop_map(
            |(store, cursor, live, backend, capacity)| Op::Pull { store, cursor, live, backend, capacity }
        ),
        2 => (store.clone(), capacity).prop_map(|(store, capacity)| Op::Follow { store, capacity }),
        8 => (any::<Index>(), 1usize..4).prop_map(|(client, pages)| Op::Step { client, pages }),
        1 => any::<Index>().prop_map(Op::FailedStep),
        1 => any::<Index>().prop_map(Op::Drop),
        1 => store.clone().prop_map(Op::Reset),
        1 => store.clone().prop_map(Op::Delete),
        1 => store.prop_map(Op::Resync),
    ]
}

/// A case: the core's bounds (small ones reach the paths past them) and
/// the operations.
fn case() -> impl Strategy<Value = (Limits, Vec<Op>)> {
    let limits = (
        prop_oneof![Just(100usize), Just(1_000)],
        prop_oneof![Just(4usize << 20), 200usize..2_000],
    )
        .prop_map(|(read_rows, max_held_bytes)| Limits {
            read_rows,
            max_held_bytes,
            ..Limits::default()
        });
    (limits, prop::collection::vec(op(), 1..40))
}

/// What a client received, in order.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Page(Vec<Event>, i64),
    Live(Vec<Event>),
}

/// Records live batches through a real (bounded) sink, like a socket.
struct Recorder {
    sink: Arc<RecordingSink>,
    items: Mutex<Vec<Item>>,
}

impl LiveSink for Recorder {
    fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone> {
        self.sink.try_send(Msg::Static("live"))?;
        self.items.lock().push(Item::Live(
            batch.events[from..]
                .iter()
                .map(|e| e.event.clone())
                .collect(),
        ));
        Ok(())
    }
}

struct Client {
    store: usize,
    rec: Arc<Recorder>,
    /// `None` for a follow (live from the start).
    pull: Option<Pull>,
    live: bool,
    /// Events after this seq_num are wanted.
    after: i64,
    /// The head the pull answers up to.
    snapshot: i64,
    /// The store's incarnation when it started.
    generation: u64,
    /// The pull or subscription ended (a failed read, the socket gone):
    /// what it has is a prefix.
    ended: bool,
    /// Live pulls and follows are a WebSocket's, attached to the store (a
    /// reset closes them); a pull that is not live is an HTTP request's,
    /// which is not.
    _attached: Option<Attachment>,
}

struct ModelStore {
    /// The log as it must be in storage.
    log: Vec<Event>,
    /// The head this process has noticed (the store's cached head).
    noticed: i64,
    /// Whether the store has read its head from storage (first use).
    loaded: bool,
    backend: String,
    generation: u64,
    /// The last batch accepted here.
    last_batch: Vec<Event>,
}

impl ModelStore {
    fn head(&self) -> i64 {
        self.log.len() as i64
    }

    /// A use that reads the head from storage if it was not read yet.
    fn load(&mut self) {
        if !self.loaded {
            self.noticed = self.head();
            self.loaded = true;
        }
    }
}

/// Events `parent+1 ..= parent+n` of `generation` (the args say whose).
fn events(store: usize, generation: u64, parent: i64, n: i64) -> Vec<Event> {
    (1..=n)
        .map(|i| Event {
            name: "v1.Fuzz".into(),
            args: Some(
                format!(
                    "{{\"store\":{store},\"g\":{generation},\"i\":{}}}",
                    parent + i
                )
                .into(),
            ),
            seq_num: parent + i,
            parent_seq_num: parent + i - 1,
            client_id: "c".into(),
            session_id: "s".into(),
        })
        .collect()
}

/// The chain rule, written again: `batch` continues a log whose head is `head`.
fn continues(head: i64, batch: &[Event]) -> bool {
    let mut parent = head;
    for e in batch {
        if e.parent_seq_num != parent || Some(e.seq_num) != parent.checked_add(1) {
            return false;
        }
        parent = e.seq_num;
    }
    true
}

/// The re-push rule, written again: the part of `batch` a log ending at
/// `head` does not hold yet, if the log holds the rest of it event for event
/// (the whole batch when it continues the head); `None`: refused as stale.
fn new_part(log: &[Event], head: i64, batch: &[Event]) -> Option<Vec<Event>> {
    if continues(head, batch) {
        return Some(batch.to_vec());
    }
    let first = batch.first()?.parent_seq_num;
    if first < 0 || first >= head || !continues(first, batch) {
        return None;
    }
    let held = batch.iter().take_while(|e| e.seq_num <= head).count();
    let same = batch[..held]
        .iter()
        .all(|e| log.get(e.seq_num as usize - 1) == Some(e));
    same.then(|| batch[held..].to_vec())
}

fn generation_of(e: &Event) -> u64 {
    let v: serde_json::Value = serde_json::from_str(e.args.as_deref().unwrap()).unwrap();
    v["g"].as_u64().unwrap()
}

struct World {
    storage: Arc<MemStorage>,
    hub: Hub,
    stores: Vec<ModelStore>,
    clients: Vec<Client>,
    next_generation: u64,
}

impl World {
    fn new(limits: Limits) -> World {
        let storage = Arc::new(MemStorage::default());
        let hub = Hub::new(storage.clone(), limits);
        let stores = STORES
            .iter()
            .enumerate()
            .map(|(i, _)| ModelStore {
                log: Vec::new(),
                noticed: 0,
                loaded: false,
                backend: "B".into(),
                generation: i as u64,
                last_batch: Vec::new(),
            })
            .collect();
        World {
            storage,
            hub,
            stores,
            clients: Vec::new(),
            next_generation: STORES.len() as u64,
        }
    }

    fn store(&self, i: usize) -> Arc<Store> {
        self.hub.store(STORES[i])
    }

    fn stored_log(&self, i: usize) -> Vec<Event> {
        self.storage
            .read(STORES[i], i64::MIN, i64::MAX, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect()
    }

    fn backend(&self, i: usize, choice: Backend) -> Option<String> {
        match choice {
            Backend::None => None,
            Backend::Right => Some(self.stores[i].backend.clone()),
            Backend::Wrong => Some("wrong".into()),
        }
    }

    fn push(&mut self, i: usize, batch: Batch, backend: Backend) -> Result<(), TestCaseError> {
        let m = &mut self.stores[i];
        let (head, generation) = (m.head(), m.generation);
        let events = match batch {
            Batch::Valid(n) => events(i, generation, head, n),
            Batch::Stale(n, k) => {
                let mut b = events(i, generation, head - 1 - k, n);
                for e in &mut b {
                    e.client_id = "another-client".into();
                }
                b
            }
            Batch::Repush(n, k) => events(i, generation, head - 1 - k, n),
            Batch::Ahead(n, k) => events(i, generation, head + 1 + k, n),
            Batch::Broken(n, at, how) => {
                let mut b = events(i, generation, head, n);
                let e = &mut b[at.index(n as usize)];
                match how {
                    Break::SkipSeq => e.seq_num += 1,
                    Break::WrongParent => e.parent_seq_num -= 1,
                    Break::SeqIsParent => e.seq_num = e.parent_seq_num,
                    Break::Extreme => {
                        e.seq_num = i64::MAX;
                        e.parent_seq_num = i64::MAX;
                    }
                }
                b
            }
            Batch::Duplicate => m.last_batch.clone(),
            Batch::Empty => Vec::new(),
        };
        if !events.is_empty() {
            // (An empty push is accepted before the store is looked at.)
            m.load();
        }
        let backend_id = self.backend(i, backend);
        let backend_ok = !matches!(backend, Backend::Wrong);
        let rest = new_part(&self.stores[i].log, head, &events);
        let accept = events.is_empty() || (backend_ok && rest.is_some());
        let acks = Cell::new(0);
        let result = self
            .store(i)
            .push("p", events.clone(), backend_id.as_deref(), || {
                acks.set(acks.get() + 1)
            });
        prop_assert_eq!(
            result.is_ok(),
            accept,
            "push {:?}: {:?}",
            events
                .iter()
                .map(|e| (e.parent_seq_num, e.seq_num))
                .collect::<Vec<_>>(),
            result
        );
        prop_assert_eq!(
            acks.get(),
            usize::from(accept),
            "acknowledged once if accepted"
        );
        let m = &mut self.stores[i];
        match result {
            Ok(()) if !events.is_empty() => {
                let rest = rest.unwrap_or_default();
                // The store judges the batch on its own (cached) head: it
                // reads the stored head when the parent is ahead of it, and
                // catches up after a conflict when it had something to write.
                let refreshed = events[0].parent_seq_num > m.noticed
                    || new_part(&m.log, m.noticed, &events).is_some_and(|r| !r.is_empty());
                if !rest.is_empty() || refreshed {
                    m.log.extend(rest);
                    m.noticed = m.head();
                }
                m.last_batch = events;
            }
            Ok(()) => {}
            Err(PushError::BackendIdMismatch { expected, received }) => {
                prop_assert!(!backend_ok);
                prop_assert_eq!(expected, m.backend.clone());
                prop_assert_eq!(received, "wrong");
            }
            Err(PushError::Chain(_)) => {
                prop_assert!(backend_ok);
                // A parent ahead of the cached head, or a conflict in
                // storage, makes the store read the stored head.
                let first_parent = events[0].parent_seq_num;
                if first_parent > m.noticed || continues(m.noticed, &events) {
                    m.noticed = m.head();
                }
            }
            Err(PushError::Storage(e)) => {
                return Err(TestCaseError::fail(format!("storage: {e:?}")))
            }
        }
        Ok(())
    }

    fn elsewhere(&mut self, i: usize, n: i64, notice: bool) {
        let m = &mut self.stores[i];
        let batch = events(i, m.generation, m.head(), n);
        self.storage.append_behind_the_back(STORES[i], &batch);
        m.log.extend(batch);
        if notice {
            let head = m.head();
            m.load();
            m.noticed = head;
            self.hub.store(STORES[i]).appended_elsewhere(head).unwrap();
        }
    }

    fn open_pull(
        &mut self,
        i: usize,
        cursor: Cursor,
        live: bool,
        backend: Backend,
        capacity: usize,
    ) -> Result<(), TestCaseError> {
        self.stores[i].load();
        let m = &self.stores[i];
        let from = match cursor {
            Cursor::Zero => 0,
            Cursor::Head => m.noticed,
            Cursor::Below(k) => (m.noticed - k).max(0),
            Cursor::Above(k) => m.noticed + k,
            Cursor::Negative => -3,
            Cursor::Max => i64::MAX,
            Cursor::Min => i64::MIN,
        };
        let (snapshot, generation) = (m.noticed, m.generation);
        let store = self.store(i);
        let sink = RecordingSink::new(capacity);
        let attached = live.then(|| store.attach(sink.clone()).unwrap());
        let rec = Arc::new(Recorder {
            sink: sink.clone(),
            items: Mutex::new(Vec::new()),
        });
        let sub = live.then(|| (sink.id(), rec.clone() as Arc<dyn LiveSink>));
        let backend_id = self.backend(i, backend);
        match store.pull(from, backend_id.as_deref(), sub) {
            Ok(pull) => {
                prop_assert!(!matches!(backend, Backend::Wrong));
                prop_assert_eq!(pull.meta().map(|m| m.head), Some(snapshot));
                self.clients.push(Client {
                    store: i,
                    rec,
                    pull: Some(pull),
                    live,
                    after: from.max(0),
                    snapshot,
                    generation,
                    ended: false,
                    _attached: attached,
                });
            }
            Err(PullRefused::BackendIdMismatch { .. }) => {
                prop_assert!(matches!(backend, Backend::Wrong))
            }
            Err(PullRefused::Storage(e)) => return Err(TestCaseError::fail(format!("{e:?}"))),
        }
        Ok(())
    }

    fn follow(&mut self, i: usize, capacity: usize) {
        self.stores[i].load();
        let store = self.store(i);
        let sink = RecordingSink::new(capacity);
        let attached = store.attach(sink.clone()).unwrap();
        let rec = Arc::new(Recorder {
            sink: sink.clone(),
            items: Mutex::new(Vec::new()),
        });
        let pull = store.follow(sink.id(), rec.clone()).unwrap();
        let m = &self.stores[i];
        self.clients.push(Client {
            store: i,
            rec,
            pull: Some(pull),
            live: true,
            after: m.noticed,
            snapshot: m.noticed,
            generation: m.generation,
            ended: false,
            _attached: Some(attached),
        });
    }

    /// Sends up to `pages` pages of a client's pull.
    fn step(&mut self, c: usize, pages: usize) -> Result<(), TestCaseError> {
        let client = &mut self.clients[c];
        let Some(pull) = client.pull.as_mut() else {
            return Ok(());
        };
        for _ in 0..pages {
            if pull.is_done() {
                break;
            }
            let rec = &client.rec;
            let step = pull.send_next(|p| {
                rec.sink.send(Msg::Static("page"))?;
                rec.items.lock().push(Item::Page(
                    p.events.iter().map(|e| e.event.clone()).collect(),
                    p.remaining,
                ));
                Ok(())
            });
            match step {
                Ok(Progress::More) => {}
                Ok(Progress::Done) => break,
                Err(PullError::Gone | PullError::Storage(_)) => {
                    client.ended = true;
                    break;
                }
            }
        }
        Ok(())
    }

    /// The store was wiped (here or by a delete): its sockets are closed,
    /// a new incarnation begins.
    fn wiped(&mut self, i: usize) -> Result<(), TestCaseError> {
        for c in self.clients.iter_mut().filter(|c| c.store == i) {
            if c._attached.is_some() {
                prop_assert!(
                    c.rec.sink.closed.lock().is_some(),
                    "a socket of the store was not closed"
                );
                c.ended = true;
            }
        }
        let meta = self.store(i).meta().unwrap();
        let m = &mut self.stores[i];
        m.log.clear();
        // (Its events name the old incarnation.)
        m.last_batch.clear();
        m.noticed = 0;
        m.loaded = true;
        prop_assert_eq!(meta.head, 0);
        m.backend = meta.backend_id;
        m.generation = self.next_generation;
        self.next_generation += 1;
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Push(i, batch, backend) => self.push(i, batch, backend)?,
            Op::Elsewhere { store, n, notice } => self.elsewhere(store, n, notice),
            Op::Pull {
                store,
                cursor,
                live,
                backend,
                capacity,
            } => self.open_pull(store, cursor, live, backend, capacity)?,
            Op::Follow { store, capacity } => self.follow(store, capacity),
            Op::Step { client, pages } if !self.clients.is_empty() => {
                self.step(client.index(self.clients.len()), pages)?
            }
            Op::FailedStep(client) if !self.clients.is_empty() => {
                self.storage.fail_reads.store(true, SeqCst);
                let r = self.step(client.index(self.clients.len()), 1);
                self.storage.fail_reads.store(false, SeqCst);
                r?;
            }
            Op::Drop(client) if !self.clients.is_empty() => {
                let c = self.clients.swap_remove(client.index(self.clients.len()));
                drop(c);
            }
            Op::Step { .. } | Op::FailedStep(_) | Op::Drop(_) => {}
            Op::Reset(i) => {
                self.store(i).reset(|| {}).unwrap();
                self.wiped(i)?;
            }
            Op::Delete(i) => {
                self.store(i).delete(|| {}).unwrap();
                self.wiped(i)?;
            }
            Op::Resync(i) => {
                self.store(i).resync().unwrap();
                let m = &mut self.stores[i];
                if m.loaded {
                    m.noticed = m.head();
                }
            }
        }
        Ok(())
    }

    /// What must hold after every operation.
    fn check(&self) -> Result<(), TestCaseError> {
        for (i, m) in self.stores.iter().enumerate() {
            prop_assert_eq!(
                &self.stored_log(i),
                &m.log,
                "store {} in storage",
                STORES[i]
            );
            prop_assert!(m
                .log
                .iter()
                .enumerate()
                .all(|(k, e)| e.seq_num == k as i64 + 1));
        }
        for c in &self.clients {
            let m = &self.stores[c.store];
            let items = c.rec.items.lock();
            let mut last = c.after;
            let mut seen_live = false;
            let mut answered = false;
            for item in items.iter() {
                let (Item::Page(events, _) | Item::Live(events)) = item;
                prop_assert!(
                    events.iter().all(|e| generation_of(e) == c.generation),
                    "events of another incarnation: {:?}",
                    items
                );
                match item {
                    Item::Page(events, remaining) => {
                        prop_assert!(!seen_live, "a page after a live batch: {:?}", items);
                        if let Some(e) = events.last() {
                            last = last.max(e.seq_num);
                        }
                        if c.generation != m.generation {
                            // The store was wiped under the pull: what it
                            // counted is gone (an empty last page is fine).
                        } else if answered {
                            prop_assert_eq!(
                                *remaining,
                                0,
                                "pages past the answer have remaining 0"
                            );
                        } else {
                            prop_assert_eq!(*remaining, (c.snapshot - last).max(0), "remaining");
                            answered = *remaining == 0;
                        }
                    }
                    Item::Live(_) => {
                        prop_assert!(c.live, "a live batch for a pull that is not live");
                        seen_live = true;
                    }
                }
            }
            let got: Vec<i64> = items
                .iter()
                .flat_map(|i| match i {
                    Item::Page(e, _) | Item::Live(e) => e.iter().map(|e| e.seq_num),
                })
                .collect();
            // In order, each once, no gap, from the cursor on.
            for (k, s) in got.iter().enumerate() {
                prop_assert_eq!(
                    i128::from(*s),
                    i128::from(c.after) + 1 + k as i128,
                    "client stream {:?}",
                    got
                );
            }
            if c.generation == m.generation {
                let upto = if c.live { m.noticed } else { c.snapshot };
                prop_assert!(got.last().is_none_or(|s| *s <= upto));
                let want: Vec<&Event> = m.log.iter().filter(|e| e.seq_num > c.after).collect();
                for (e, w) in items
                    .iter()
                    .flat_map(|i| match i {
                        Item::Page(e, _) | Item::Live(e) => e.iter(),
                    })
                    .zip(&want)
                {
                    prop_assert_eq!(e, *w);
                }
            }
            let paging = c.pull.as_ref().is_some_and(|p| !p.is_done());
            if paging {
                prop_assert!(!seen_live, "a live batch before the answer's end");
            }
        }
        Ok(())
    }

    /// Steps every pull to its end, resyncs every store, and checks that
    /// every live client still in place has everything after its cursor.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        for i in 0..self.stores.len() {
            self.apply(Op::Resync(i))?;
        }
        for c in 0..self.clients.len() {
            let mut guard = 0;
            while self.clients[c].pull.as_ref().is_some_and(|p| !p.is_done())
                && !self.clients[c].ended
            {
                self.step(c, 1)?;
                guard += 1;
                prop_assert!(guard < 10_000, "a pull that never ends");
            }
        }
        self.check()?;
        for c in &self.clients {
            let m = &self.stores[c.store];
            if c.ended || c.rec.sink.is_gone() || c.generation != m.generation {
                continue;
            }
            let got: Vec<i64> = c
                .rec
                .items
                .lock()
                .iter()
                .flat_map(|i| match i {
                    Item::Page(e, _) | Item::Live(e) => {
                        e.iter().map(|e| e.seq_num).collect::<Vec<_>>()
                    }
                })
                .collect();
            let upto = if c.live { m.noticed } else { c.snapshot };
            let want: Vec<i64> = (c.after.saturating_add(1)..=upto).collect();
            prop_assert_eq!(got, want, "everything after the cursor, once, in order");
        }
        Ok(())
    }
}

fn config() -> Config {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("FUZZ_CASES is a count"))
        .unwrap_or(300);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .map(|v| v.parse().expect("FUZZ_SEED is a number"))
        .unwrap_or(13);
    Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed ^ 0x5eed_0000_0000_0013),
        ..Config::default()
    }
}

#[test]
fn push_and_pull_rules_hold_against_the_model() {
    let config = config();
    let (cases, seed) = (
        config.cases,
        std::env::var("FUZZ_SEED").unwrap_or("13".into()),
    );
    let ops = std::sync::atomic::AtomicU64::new(0);
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |(limits, list)| {
        ops.fetch_add(list.len() as u64, SeqCst);
        let mut world = World::new(limits);
        for op in list {
            world.apply(op)?;
            world.check()?;
        }
        world.finish()
    });
    if let Err(e) = result {
        panic!("fuzz sync_model (FUZZ_SEED={seed}): {e}");
    }
    println!(
        "fuzz sync_model: {cases} inputs ({} operations), 0 panics, {:.1} s (FUZZ_SEED={seed})",
        ops.load(SeqCst),
        started.elapsed().as_secs_f64()
    );
}
