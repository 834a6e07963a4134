//! The queue in front of one WebSocket's writer thread.
//!
//! Everything that goes out on a socket passes through its `Outbox`: replies
//! from the connection's own reader thread, broadcasts from other
//! connections' pushes, and the control frames tungstenite produces. Only the
//! writer thread touches the socket's write side, so bytes never interleave.
//!
//! The queue is a bounded crossbeam channel. Senders holding a store's mutex
//! never block on it (`try_send`): a socket whose queue is full is too slow
//! to keep up and is dropped at once (its TCP connection is shut down). A 0.4
//! client reconnects and pulls what it missed (a 0.3 client does not pull
//! again until its app reloads); everyone else is unaffected.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// One item for the writer thread. Kept small (24 bytes): the channel
/// allocates all its slots up front, per socket.
#[derive(Debug)]
pub enum Outbound {
    /// A complete text message.
    Text(Arc<str>),
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

/// Returned when a message could not be queued because the socket is too
/// slow (queue full) or already gone. The socket is being shut down; the
/// caller just forgets the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The sending side of one socket's writer queue.
pub struct Outbox {
    id: u64,
    tx: Sender<Outbound>,
    /// Used to cut the connection when the queue overflows or on shutdown.
    stream: Option<Arc<TcpStream>>,
    dead: AtomicBool,
    /// For log lines.
    pub label: String,
}

impl Outbox {
    /// A queue of `capacity` messages; `stream` is the socket to cut on overflow.
    pub fn new(
        capacity: usize,
        stream: Option<Arc<TcpStream>>,
        label: String,
    ) -> (Arc<Outbox>, Receiver<Outbound>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        (
            Arc::new(Outbox {
                id,
                tx,
                stream,
                dead: AtomicBool::new(false),
                label,
            }),
            rx,
        )
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Queues without blocking. A full queue kills the connection.
    pub fn try_send(&self, msg: Outbound) -> Result<(), Gone> {
        if self.is_dead() {
            return Err(Gone);
        }
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.kill("outbound queue full (client too slow)");
                Err(Gone)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dead.store(true, Ordering::Relaxed);
                Err(Gone)
            }
        }
    }

    /// Queues, waiting up to `timeout` for room: for a connection's own
    /// replies and pull pages, sent by its reader thread outside any lock.
    pub fn send(&self, msg: Outbound, timeout: Duration) -> Result<(), Gone> {
        if self.is_dead() {
            return Err(Gone);
        }
        match self.tx.send_timeout(msg, timeout) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => {
                self.kill("outbound queue stayed full (client not reading)");
                Err(Gone)
            }
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                self.dead.store(true, Ordering::Relaxed);
                Err(Gone)
            }
        }
    }

    pub fn send_text(&self, text: String, timeout: Duration) -> Result<(), Gone> {
        self.send(Outbound::Text(text.into()), timeout)
    }

    /// Asks the writer to send a close frame and end the connection. If the
    /// queue is full the connection is cut without one.
    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.try_send(Outbound::Close(code, reason));
    }

    /// Cuts the TCP connection now; both threads of the socket wake up and end.
    pub fn kill(&self, why: &str) {
        if !self.dead.swap(true, Ordering::Relaxed) {
            log::warn!("{} dropped: {why}", self.label);
            if let Some(s) = &self.stream {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_stays_small() {
        assert!(std::mem::size_of::<Outbound>() <= 24);
    }

    #[test]
    fn a_full_queue_marks_the_socket_dead() {
        let (ob, rx) = Outbox::new(2, None, "test".into());
        assert!(ob.try_send(Outbound::Finish).is_ok());
        assert!(ob.try_send(Outbound::Finish).is_ok());
        assert_eq!(ob.try_send(Outbound::Finish), Err(Gone));
        assert!(ob.is_dead());
        // Nothing more is accepted, even after the queue drains.
        rx.try_recv().unwrap();
        assert_eq!(ob.try_send(Outbound::Finish), Err(Gone));
    }

    #[test]
    fn a_gone_writer_is_reported() {
        let (ob, rx) = Outbox::new(2, None, "test".into());
        drop(rx);
        assert_eq!(
            ob.send(Outbound::Finish, Duration::from_millis(10)),
            Err(Gone)
        );
    }
}
