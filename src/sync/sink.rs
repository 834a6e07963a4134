//! What the core sees of a socket: a place to queue text messages that may
//! say the socket is gone, and a way to close it. The socket writer, its
//! queue bounds, direct replies and the close state are the server's
//! (`crate::server::outbox`); the core only needs this.

use std::sync::Arc;

/// Identifies one connection among a store's attached sockets.
pub type ConnId = u64;

/// One text message for a socket, in the form that costs least to build.
#[derive(Debug, Clone)]
pub enum Msg {
    /// Shared by several sockets (a broadcast encoded once).
    Shared(Arc<str>),
    /// For this socket alone (a reply, a pull page): owned, no second copy.
    Owned(Box<str>),
    /// A constant (pongs), without an allocation.
    Static(&'static str),
    /// A per-socket head, a body shared by every recipient of a broadcast,
    /// and a fixed tail (0.4 live chunks).
    Wrapped(Box<(Arc<str>, Arc<str>, &'static str)>),
}

impl Msg {
    /// Payload bytes.
    pub fn len(&self) -> usize {
        match self {
            Msg::Shared(t) => t.len(),
            Msg::Owned(t) => t.len(),
            Msg::Static(t) => t.len(),
            Msg::Wrapped(w) => w.0.len() + w.1.len() + w.2.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message as one string (tests and small replies).
    pub fn to_text(&self) -> String {
        match self {
            Msg::Shared(t) => t.to_string(),
            Msg::Owned(t) => t.to_string(),
            Msg::Static(t) => t.to_string(),
            Msg::Wrapped(w) => format!("{}{}{}", w.0, w.1, w.2),
        }
    }
}

impl From<String> for Msg {
    fn from(s: String) -> Msg {
        Msg::Owned(s.into())
    }
}

/// The socket is gone: dropped as too slow, closed, or its writer ended.
/// Nothing was queued; the caller forgets whatever it kept for the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// One socket's outgoing side, as the core and the sessions use it.
pub trait Sink: Send + Sync {
    /// This connection's id (unique in the process).
    fn id(&self) -> ConnId;

    /// For log lines: the `key=value` fields naming the connection
    /// (`store="x" peer=1.2.3.4:5 protocol=0.4-ws`; see `logfmt`).
    fn label(&self) -> &str;

    /// Queues without ever blocking (callers may hold a store's mutex). A
    /// socket whose queue is full, by messages or by bytes, is too slow: it
    /// is dropped at once and `Gone` returned.
    fn try_send(&self, msg: Msg) -> Result<(), Gone>;

    /// For the connection's own replies and pull pages, from its own thread
    /// and outside any lock: may wait a bounded time for room (then drops the
    /// socket), and may write a small reply at once.
    fn send(&self, msg: Msg) -> Result<(), Gone>;

    /// Sends a close frame with `code` and `reason` after what is queued,
    /// then ends the connection (cut at once if the queue is full).
    fn close(&self, code: u16, reason: &'static str);
}
