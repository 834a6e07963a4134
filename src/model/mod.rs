//! The leaf model every room may use: the event, the event as stored, a
//! store's metadata, the chain rule, and the page rule. No I/O, and no
//! imports from the rest of the crate.

mod chain;
mod event;

pub use chain::{check_chain, ChainError};
pub use event::{Event, StoredEvent};

use std::time::SystemTime;

/// What the server keeps about a store besides its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMeta {
    /// seq_num of the last event (0: empty).
    pub head: i64,
    /// Random id that changes when the store's history is wiped.
    pub backend_id: String,
}

/// At most this many events per page of a pull answer or a live chunk (the
/// reference server's page size; 0.4 clients also rely on it).
pub const PAGE_EVENTS: usize = 100;
/// At most about this many bytes of event JSON per page (0.4's limit).
pub const PAGE_BYTES: usize = 900_000;

/// How many of `events` (from the front) make one page: at most
/// [`PAGE_EVENTS`] and about [`PAGE_BYTES`], and at least one if any.
/// The one page rule for pull answers and live chunks alike.
pub fn page_len(events: &[StoredEvent]) -> usize {
    let mut bytes = 0;
    for (i, e) in events.iter().take(PAGE_EVENTS).enumerate() {
        let size = e.event.json_len_estimate();
        if i > 0 && bytes + size > PAGE_BYTES {
            return i;
        }
        bytes += size;
    }
    events.len().min(PAGE_EVENTS)
}

/// A new random backend id: 21 characters of `[A-Za-z0-9_-]`, like the
/// reference server's nanoid.
pub fn new_backend_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut bytes = [0u8; 21];
    if !read_urandom(&mut bytes) {
        // No /dev/urandom: fall back to the std hasher's per-process random
        // keys mixed with the time; uniqueness is all a backend id needs.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        for (i, b) in bytes.iter_mut().enumerate() {
            h.write_usize(i);
            h.write_u128(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            *b = h.finish() as u8;
        }
    }
    bytes
        .iter()
        .map(|b| ALPHABET[(b & 63) as usize] as char)
        .collect()
}

fn read_urandom(buf: &mut [u8]) -> bool {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
}

#[cfg(test)]
pub(crate) fn ev(seq: i64, args: &str) -> Event {
    Event {
        name: "v1.TodoCreated".into(),
        args: Some(args.into()),
        seq_num: seq,
        parent_seq_num: seq - 1,
        client_id: "c".into(),
        session_id: "s".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_ids_look_like_nanoids_and_differ() {
        let a = new_backend_id();
        let b = new_backend_id();
        assert_eq!(a.len(), 21);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
        assert_ne!(a, b);
    }

    fn stored(n: usize, size: usize) -> Vec<StoredEvent> {
        let args = format!("\"{}\"", "x".repeat(size));
        (1..=n as i64)
            .map(|i| StoredEvent {
                event: ev(i, &args),
                created_at: SystemTime::UNIX_EPOCH,
            })
            .collect()
    }

    #[test]
    fn pages_hold_100_events_or_about_900_kb() {
        assert_eq!(page_len(&[]), 0);
        assert_eq!(page_len(&stored(5, 10)), 5);
        assert_eq!(page_len(&stored(250, 10)), 100);
        // 300 kB each: three fit under 900 kB only with the estimate's
        // overhead left out, so two do.
        assert_eq!(page_len(&stored(10, 300_000)), 2);
        // One event larger than a page still makes a page of its own.
        assert_eq!(page_len(&stored(3, 2_000_000)), 1);
    }
}
