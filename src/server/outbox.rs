//! The queue in front of one WebSocket's writer thread: the server's side
//! of the core's [`Sink`].
//!
//! Everything that goes out on a socket passes through its `Outbox`: replies
//! from the connection's own reader thread, broadcasts from other
//! connections' pushes, and the control frames tungstenite produces. Every
//! write to the socket happens under the outbox's write lock, so frames never
//! interleave.
//!
//! The queue holds at most `capacity` messages and `max_bytes` bytes.
//! Senders holding a store's mutex never block on it (`try_send`): a socket
//! whose queue is full is too slow to keep up and is dropped at once (its
//! TCP connection is shut down).
//! A 0.4 client reconnects and pulls what it missed (a 0.3 client does not
//! pull again until its app reloads); everyone else is unaffected.
//!
//! The connection's own small replies (pongs, refusals, admin answers) skip
//! the queue when nothing is queued and the writer is not writing: the
//! reader writes them itself ([`Outbox::send`]). An accepted push's ack is
//! queued under the store's mutex, ahead of the broadcast, like any message
//! sent under a lock. That saves waking the writer thread,
//! which is most of what an idle socket's keepalive costs.
//!
//! The channel is crossbeam's unbounded (linked-blocks) flavour with the
//! bound counted here: its blocks are allocated as messages arrive, while a
//! bounded channel allocates all its slots up front, 4 KiB per socket at 128
//! messages, which thousands of idle sockets would carry for nothing.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::logfmt;
use crate::metrics::{Metrics, SlowDrop};
use crate::protocol::ws_frame;
use crate::sync::sink::{ConnId, Gone, Msg, Sink};

/// One item for the writer thread. Kept small (24 bytes): each queued
/// message occupies a channel slot of this size plus an 8-byte state word.
/// The text variants are the core's [`Msg`] kinds, flattened to stay small.
#[derive(Debug)]
pub enum Outbound {
    /// A text message shared by several sockets (a broadcast).
    Text(Arc<str>),
    /// A text message for this socket alone (a reply, a pull page): owned,
    /// so building it costs no second copy.
    Owned(Box<str>),
    /// A constant text message (pongs), without an allocation.
    Static(&'static str),
    /// A text message built from a per-socket head, a body shared by every
    /// recipient of a broadcast, and a fixed tail (0.4 live chunks).
    Wrapped(Box<(Arc<str>, Arc<str>, &'static str)>),
    /// Bytes already framed by tungstenite (pong and close replies).
    Raw(Box<[u8]>),
    /// Send a close frame with this code and reason, then end the connection.
    Close(u16, &'static str),
    /// The reader is done: flush what is queued and end the connection.
    Finish,
}

impl Outbound {
    /// Appends this message as a WebSocket frame (nothing for `Finish`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Outbound::Text(t) => ws_frame::text(out, &[t]),
            Outbound::Owned(t) => ws_frame::text(out, &[t]),
            Outbound::Static(t) => ws_frame::text(out, &[t]),
            Outbound::Wrapped(w) => ws_frame::text(out, &[&w.0, &w.1, w.2]),
            Outbound::Raw(bytes) => out.extend_from_slice(bytes),
            Outbound::Close(code, reason) => ws_frame::close(out, *code, reason),
            Outbound::Finish => {}
        }
    }

    /// Payload bytes (an upper bound for `Raw`), as the queue's byte bound counts them.
    pub fn queued_len(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len(),
            Outbound::Owned(t) => t.len(),
            Outbound::Static(t) => t.len(),
            Outbound::Wrapped(w) => w.0.len() + w.1.len() + w.2.len(),
            Outbound::Raw(b) => b.len(),
            Outbound::Close(_, r) => 2 + r.len(),
            Outbound::Finish => 0,
        }
    }
}

impl From<Msg> for Outbound {
    fn from(m: Msg) -> Outbound {
        match m {
            Msg::Shared(t) => Outbound::Text(t),
            Msg::Owned(t) => Outbound::Owned(t),
            Msg::Static(t) => Outbound::Static(t),
            Msg::Wrapped(w) => Outbound::Wrapped(w),
        }
    }
}

/// The bounds of one socket's queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Messages queued before the socket counts as too slow.
    pub capacity: usize,
    /// Bytes queued before the socket counts as too slow (one message larger
    /// than this is still taken when nothing else is queued).
    pub max_bytes: usize,
    /// How long the connection's own reply may wait for room.
    pub reply_timeout: Duration,
}

/// Replies up to this size may be written by the reader itself; larger ones
/// (pull pages) always go through the writer, so that reading the next page
/// from the database overlaps with writing this one.
const DIRECT_MAX: usize = 4096;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The sending side of one socket's writer queue.
pub struct Outbox {
    id: u64,
    tx: Sender<Outbound>,
    limits: QueueLimits,
    /// Messages queued and not yet taken by the writer under the write lock.
    pending: AtomicUsize,
    /// Their payload bytes.
    bytes: AtomicUsize,
    /// Held around every write to the socket.
    write_lock: Mutex<()>,
    /// Set by the writer once it has written a close frame: nothing may follow.
    closed: AtomicBool,
    /// Where a reply waits for room in a full queue.
    room: Condvar,
    room_lock: Mutex<()>,
    waiting: AtomicBool,
    /// The socket: written by `send`'s shortcut, cut on overflow or shutdown.
    stream: Option<Arc<TcpStream>>,
    dead: AtomicBool,
    /// Where a drop as too slow is counted.
    metrics: Arc<Metrics>,
    /// For log lines.
    pub label: String,
}

impl Outbox {
    /// A queue within `limits`; `stream` is the socket (None in tests: then
    /// every message is queued).
    pub fn new(
        limits: QueueLimits,
        stream: Option<Arc<TcpStream>>,
        label: String,
        metrics: Arc<Metrics>,
    ) -> (Arc<Outbox>, Receiver<Outbound>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let id = NEXT_ID.fetch_add(1, SeqCst);
        (
            Arc::new(Outbox {
                id,
                tx,
                limits,
                pending: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                write_lock: Mutex::new(()),
                closed: AtomicBool::new(false),
                room: Condvar::new(),
                room_lock: Mutex::new(()),
                waiting: AtomicBool::new(false),
                stream,
                dead: AtomicBool::new(false),
                metrics,
                label,
            }),
            rx,
        )
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(SeqCst)
    }

    /// Queues without blocking. A full queue kills the connection.
    pub fn try_send(&self, msg: Outbound) -> Result<(), Gone> {
        if self.is_dead() {
            return Err(Gone);
        }
        if !self.reserve(msg.queued_len()) {
            self.kill_slow(SlowDrop::QueueFull, "outbound queue full (client too slow)");
            return Err(Gone);
        }
        self.enqueue(msg)
    }

    /// For a connection's own replies and pull pages, sent by its reader
    /// thread outside any lock. A small reply is written at once when nothing
    /// is queued ahead of it; otherwise it is queued, waiting up to `timeout`
    /// for room.
    pub fn send(&self, msg: Outbound, timeout: Duration) -> Result<(), Gone> {
        if self.is_dead() {
            return Err(Gone);
        }
        if let Some(done) = self.write_now(&msg) {
            return done;
        }
        let deadline = Instant::now() + timeout;
        let len = msg.queued_len();
        while !self.reserve(len) {
            let mut g = self.room_lock.lock();
            self.waiting.store(true, SeqCst);
            // Both checked under the lock that `taken` and `kill` notify
            // under, so neither a freed slot nor a kill is missed.
            if self.is_dead() {
                return Err(Gone);
            }
            if self.has_room(len) {
                continue;
            }
            if self.room.wait_until(&mut g, deadline).timed_out() {
                drop(g);
                self.kill_slow(
                    SlowDrop::ReplyTimeout,
                    "outbound queue stayed full (client not reading)",
                );
                return Err(Gone);
            }
        }
        self.enqueue(msg)
    }

    /// Asks the writer to send a close frame and end the connection. If the
    /// queue is full the connection is cut without one.
    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.try_send(Outbound::Close(code, reason));
    }

    /// Drops the socket as a slow consumer (counted once, however many
    /// senders find it full).
    fn kill_slow(&self, kind: SlowDrop, why: &str) {
        if self.cut(why) {
            self.metrics.slow_consumer(kind, why, &self.label);
        }
    }

    /// Cuts the TCP connection now; both threads of the socket wake up and end.
    pub fn kill(&self, why: &str) {
        self.cut(why);
    }

    /// [`Outbox::kill`]; true for the one call that cut it.
    fn cut(&self, why: &str) -> bool {
        let first = !self.dead.swap(true, SeqCst);
        if first {
            log::warn!("ws dropped {} reason={}", self.label, logfmt::value(why));
            if let Some(s) = &self.stream {
                let _ = s.shutdown(Shutdown::Both);
            }
            // An idle writer sleeps in `recv`, and its own `Arc<Outbox>` keeps
            // the channel open: wake it (it sees `dead` and ends). Not counted
            // against the bound, so a full queue cannot refuse it.
            self.push_finish();
            let _g = self.room_lock.lock();
            self.room.notify_all();
        }
        first
    }

    /// Tells the writer that the reader is done: it writes what is queued
    /// (unless the socket is dead) and ends. Never refused, whether the queue
    /// is full or the socket already dead, so the writer always ends and can
    /// be joined.
    pub fn finish(&self) {
        self.push_finish();
    }

    fn push_finish(&self) {
        // Counted like any message, so the writer's `taken` stays balanced.
        self.pending.fetch_add(1, SeqCst);
        let _ = self.tx.send(Outbound::Finish);
    }

    /// For the writer thread: held while it counts messages as taken
    /// ([`Outbox::taken`]) and until they are written.
    pub fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock()
    }

    /// For the writer thread, under [`Outbox::lock_writes`]: `msg` was
    /// taken off the queue.
    pub fn taken(&self, msg: &Outbound) {
        if matches!(msg, Outbound::Close(..)) {
            self.closed.store(true, SeqCst);
        }
        self.pending.fetch_sub(1, SeqCst);
        self.bytes.fetch_sub(msg.queued_len(), SeqCst);
        if self.waiting.load(SeqCst) {
            let _g = self.room_lock.lock();
            self.waiting.store(false, SeqCst);
            self.room.notify_all();
        }
    }

    /// Counts a message of `len` bytes in if there is room.
    fn reserve(&self, len: usize) -> bool {
        let n = self.pending.fetch_add(1, SeqCst);
        let b = self.bytes.fetch_add(len, SeqCst);
        if n < self.limits.capacity && (b == 0 || b + len <= self.limits.max_bytes) {
            true
        } else {
            self.pending.fetch_sub(1, SeqCst);
            self.bytes.fetch_sub(len, SeqCst);
            false
        }
    }

    fn has_room(&self, len: usize) -> bool {
        let b = self.bytes.load(SeqCst);
        self.pending.load(SeqCst) < self.limits.capacity
            && (b == 0 || b + len <= self.limits.max_bytes)
    }

    fn enqueue(&self, msg: Outbound) -> Result<(), Gone> {
        if self.tx.send(msg).is_err() {
            // The writer is gone; the message was counted but never taken.
            self.dead.store(true, SeqCst);
            return Err(Gone);
        }
        Ok(())
    }

    /// Writes a small message on the calling thread if nothing is queued and
    /// the writer is idle. `None`: queue it instead.
    fn write_now(&self, msg: &Outbound) -> Option<Result<(), Gone>> {
        let stream = self.stream.as_ref()?;
        if msg.queued_len() > DIRECT_MAX || self.pending.load(SeqCst) != 0 {
            return None;
        }
        if matches!(msg, Outbound::Close(..) | Outbound::Finish) {
            return None;
        }
        let g = self.write_lock.try_lock()?;
        // Checked again under the lock: whatever was queued before this reply
        // is written before it. After our close frame nothing may be sent.
        if self.pending.load(SeqCst) != 0 || self.closed.load(SeqCst) {
            return None;
        }
        let mut buf = Vec::with_capacity(msg.queued_len() + 10);
        msg.encode(&mut buf);
        Some(self.write_locked(&g, stream, &buf))
    }

    /// Writes `buf` to the socket under the write lock (`_guard` proves it is
    /// held); a failed write kills the connection.
    pub fn write_locked(
        &self,
        _guard: &MutexGuard<'_, ()>,
        mut stream: &TcpStream,
        buf: &[u8],
    ) -> Result<(), Gone> {
        stream.write_all(buf).map_err(|e| {
            self.kill(&format!("write failed: {e}"));
            Gone
        })
    }
}

impl Sink for Outbox {
    fn id(&self) -> ConnId {
        self.id
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn try_send(&self, msg: Msg) -> Result<(), Gone> {
        Outbox::try_send(self, msg.into())
    }

    fn send(&self, msg: Msg) -> Result<(), Gone> {
        Outbox::send(self, msg.into(), self.limits.reply_timeout)
    }

    fn close(&self, code: u16, reason: &'static str) {
        Outbox::close(self, code, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn q(capacity: usize) -> QueueLimits {
        QueueLimits {
            capacity,
            max_bytes: 1 << 20,
            reply_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn outbound_stays_small() {
        assert!(std::mem::size_of::<Outbound>() <= 24);
    }

    #[test]
    fn a_full_queue_marks_the_socket_dead() {
        let (ob, rx) = Outbox::new(q(2), None, "test".into(), Arc::default());
        assert!(ob.try_send(Outbound::Finish).is_ok());
        assert!(ob.try_send(Outbound::Finish).is_ok());
        assert_eq!(ob.try_send(Outbound::Finish), Err(Gone));
        assert!(ob.is_dead());
        // Nothing more is accepted, even after the queue drains.
        rx.try_recv().unwrap();
        assert_eq!(ob.try_send(Outbound::Finish), Err(Gone));
    }

    #[test]
    fn a_kill_wakes_an_idle_writer() {
        // The writer holds an `Arc<Outbox>`, so the channel never
        // disconnects: a kill must put something in it (issue: a failed
        // direct reply left the writer in `recv` forever).
        let (ob, rx) = Outbox::new(q(2), None, "test".into(), Arc::default());
        let writer = {
            let ob = ob.clone();
            std::thread::spawn(move || {
                let m = rx.recv_timeout(Duration::from_secs(10));
                (m.is_ok(), ob.is_dead())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        ob.kill("test");
        assert_eq!(writer.join().unwrap(), (true, true));
    }

    #[test]
    fn finish_is_queued_even_when_full_or_dead() {
        let (ob, rx) = Outbox::new(q(1), None, "test".into(), Arc::default());
        ob.try_send(Outbound::Static("a")).unwrap();
        ob.finish();
        assert!(matches!(rx.try_recv(), Ok(Outbound::Static("a"))));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Finish)));
        ob.kill("test");
        while rx.try_recv().is_ok() {}
        ob.finish();
        assert!(matches!(rx.try_recv(), Ok(Outbound::Finish)));
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_too() {
        let limits = QueueLimits {
            capacity: 100,
            max_bytes: 10,
            reply_timeout: Duration::from_millis(20),
        };
        let (ob, rx) = Outbox::new(limits, None, "test".into(), Arc::default());
        // One message larger than the bound is taken when nothing is queued.
        ob.try_send(Outbound::Static("0123456789abc")).unwrap();
        let big = rx.try_recv().unwrap();
        ob.taken(&big);
        ob.try_send(Outbound::Static("0123456")).unwrap();
        // A reply waits for room, then gives up and drops the socket.
        assert_eq!(
            ob.send(Outbound::Static("0123"), limits.reply_timeout),
            Err(Gone)
        );
        assert!(ob.is_dead());
        let (ob, _rx) = Outbox::new(limits, None, "test".into(), Arc::default());
        ob.try_send(Outbound::Static("0123456")).unwrap();
        // A broadcast that does not fit drops the socket at once.
        assert_eq!(ob.try_send(Outbound::Static("0123")), Err(Gone));
        assert!(ob.is_dead());
    }

    #[test]
    fn a_slow_consumer_is_counted_once_with_its_reason() {
        let m: Arc<Metrics> = Arc::default();
        let (ob, _rx) = Outbox::new(q(1), None, "store=\"s\"".into(), m.clone());
        ob.try_send(Outbound::Static("a")).unwrap();
        assert_eq!(ob.try_send(Outbound::Static("b")), Err(Gone));
        // More broadcasts find it dead: still one drop.
        assert_eq!(ob.try_send(Outbound::Static("c")), Err(Gone));
        assert_eq!(m.slow_consumers(SlowDrop::QueueFull), 1);
        let (ob, _rx) = Outbox::new(q(1), None, "store=\"t\"".into(), m.clone());
        ob.try_send(Outbound::Static("a")).unwrap();
        let reply = ob.send(Outbound::Static("b"), Duration::from_millis(20));
        assert_eq!(reply, Err(Gone));
        assert_eq!(m.slow_consumers(SlowDrop::ReplyTimeout), 1);
        // A write failure or a kill is no slow consumer.
        let (ob, _rx) = Outbox::new(q(1), None, "store=\"u\"".into(), m.clone());
        ob.kill("write failed: broken pipe");
        assert_eq!(m.slow_consumers(SlowDrop::QueueFull), 1);
        let recent = m.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].source, "store=\"t\"");
        assert_eq!(recent[1].reason, "outbound queue full (client too slow)");
    }

    #[test]
    fn a_gone_writer_is_reported() {
        let (ob, rx) = Outbox::new(q(2), None, "test".into(), Arc::default());
        drop(rx);
        assert_eq!(
            ob.send(Outbound::Finish, Duration::from_millis(10)),
            Err(Gone)
        );
    }

    #[test]
    fn a_reply_waits_for_room_and_gets_it_when_the_writer_takes_one() {
        let (ob, rx) = Outbox::new(q(1), None, "test".into(), Arc::default());
        ob.try_send(Outbound::Static("a")).unwrap();
        let writer = {
            let ob = ob.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                let _g = ob.lock_writes();
                let m = rx.recv().unwrap();
                ob.taken(&m);
                (m, rx)
            })
        };
        assert_eq!(
            ob.send(Outbound::Static("b"), Duration::from_secs(10)),
            Ok(())
        );
        let (first, rx) = writer.join().unwrap();
        assert!(matches!(first, Outbound::Static("a")));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Static("b"))));
        assert!(!ob.is_dead());
    }

    #[test]
    fn a_reply_that_never_gets_room_kills_the_socket() {
        let (ob, _rx) = Outbox::new(q(1), None, "test".into(), Arc::default());
        ob.try_send(Outbound::Static("a")).unwrap();
        let err = ob.send(Outbound::Static("b"), Duration::from_millis(20));
        assert_eq!(err, Err(Gone));
        assert!(ob.is_dead());
    }

    /// A loopback socket pair: (server side, client side).
    fn pair() -> (Arc<TcpStream>, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (Arc::new(server), client)
    }

    #[test]
    fn a_small_reply_is_written_at_once_when_nothing_is_queued() {
        let (server, mut client) = pair();
        let (ob, rx) = Outbox::new(q(8), Some(server), "test".into(), Arc::default());
        ob.send(Outbound::Static("pong"), Duration::from_secs(1))
            .unwrap();
        assert!(rx.is_empty(), "written directly, not queued");
        let mut got = [0u8; 6];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"\x81\x04pong");
    }

    #[test]
    fn a_reply_queues_behind_what_is_already_queued() {
        let (server, _client) = pair();
        let (ob, rx) = Outbox::new(q(8), Some(server), "test".into(), Arc::default());
        ob.try_send(Outbound::Static("event")).unwrap();
        ob.send(Outbound::Static("pong"), Duration::from_secs(1))
            .unwrap();
        assert!(matches!(rx.try_recv(), Ok(Outbound::Static("event"))));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Static("pong"))));
    }

    #[test]
    fn a_reply_queues_while_the_writer_is_writing() {
        let (server, _client) = pair();
        let (ob, rx) = Outbox::new(q(8), Some(server), "test".into(), Arc::default());
        let g = ob.lock_writes();
        ob.send(Outbound::Static("pong"), Duration::from_secs(1))
            .unwrap();
        drop(g);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Static("pong"))));
    }

    #[test]
    fn large_replies_and_replies_after_a_close_frame_are_queued() {
        let (server, _client) = pair();
        let (ob, rx) = Outbox::new(q(8), Some(server), "test".into(), Arc::default());
        let page: Arc<str> = "x".repeat(DIRECT_MAX + 1).into();
        ob.send(Outbound::Text(page), Duration::from_secs(1))
            .unwrap();
        let m = rx.try_recv().unwrap();
        assert!(matches!(m, Outbound::Text(_)));
        {
            let _g = ob.lock_writes();
            ob.taken(&m);
        }
        ob.close(1001, "bye");
        {
            let _g = ob.lock_writes();
            let m = rx.try_recv().unwrap();
            assert!(matches!(m, Outbound::Close(..)));
            ob.taken(&m);
        }
        ob.send(Outbound::Static("pong"), Duration::from_secs(1))
            .unwrap();
        assert!(matches!(rx.try_recv(), Ok(Outbound::Static("pong"))));
    }
}
