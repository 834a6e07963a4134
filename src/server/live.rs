//! Counts of what is open right now: connections, WebSockets, and the
//! threads serving them. A leak shows here (in `/health` and in the debug
//! line logged as each connection ends) without reading `/proc`.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Live counts, shared by the accept loop and every connection.
#[derive(Debug, Default)]
pub struct Live {
    connections: AtomicUsize,
    websockets: AtomicUsize,
    threads: AtomicUsize,
}

/// A snapshot of [`Live`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// TCP connections being served (HTTP and WebSocket).
    pub connections: usize,
    /// Of those, upgraded WebSockets.
    pub websockets: usize,
    /// Connection and WebSocket writer threads alive.
    pub threads: usize,
}

impl Live {
    pub fn counts(&self) -> Counts {
        Counts {
            connections: self.connections.load(Relaxed),
            websockets: self.websockets.load(Relaxed),
            threads: self.threads.load(Relaxed),
        }
    }

    /// Counts a connection until the guard drops.
    pub fn connection(&self) -> Guard<'_> {
        Guard::new(&self.connections)
    }

    /// Counts an upgraded WebSocket until the guard drops.
    pub fn websocket(&self) -> Guard<'_> {
        Guard::new(&self.websockets)
    }

    /// Counts a thread until the guard drops; created first thing in the
    /// thread and dropped last, so a thread that never ends stays counted.
    pub fn thread(&self) -> Guard<'_> {
        Guard::new(&self.threads)
    }
}

/// Decrements its counter when dropped (also on unwind).
pub struct Guard<'a>(&'a AtomicUsize);

impl<'a> Guard<'a> {
    fn new(c: &'a AtomicUsize) -> Guard<'a> {
        c.fetch_add(1, Relaxed);
        Guard(c)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "open connections={} websockets={} threads={}",
            self.connections, self.websockets, self.threads
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_alive_and_on_unwind() {
        let live = Live::default();
        let c = live.connection();
        let w = live.websocket();
        let t = live.thread();
        assert_eq!(
            live.counts(),
            Counts {
                connections: 1,
                websockets: 1,
                threads: 1
            }
        );
        drop((c, w, t));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _t = live.thread();
            panic!("handler bug");
        }));
        assert!(r.is_err());
        assert_eq!(live.counts().threads, 0);
        assert_eq!(live.counts().connections, 0);
    }
}
