//! Pull planning: the events in `(cursor, head]`, read from storage
//! `storage_read_rows` (1,000) rows at a time and cut into pages of at most 100 events and
//! about 900 kB, each with the exact number of events still to come.
//!
//! The store's log is contiguous (seq_nums 1..=head, enforced by the chain
//! check and the primary key), so "events still to come" is `head - last`.

use std::collections::VecDeque;

use super::event::StoredEvent;
use crate::storage::{Storage, StorageError};

/// At most this many events per page (the reference server's page size; 0.4
/// clients also rely on it).
pub const PAGE_EVENTS: usize = 100;
/// At most about this many bytes of event JSON per page (0.4's limit).
pub const PAGE_BYTES: usize = 900_000;

/// One page of a pull answer.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    /// Events after this page; 0 on the last page.
    pub remaining: i64,
}

/// The pages of one pull, produced on demand.
pub struct Backlog {
    store_id: String,
    /// Last seq_num handed out so far.
    after: i64,
    up_to: i64,
    buf: VecDeque<StoredEvent>,
    read_rows: usize,
    sent_any: bool,
    done: bool,
}

impl Backlog {
    /// Events with `cursor < seq_num <= head`; a negative cursor counts as 0
    /// (a 0.3 cursor is any JSON number: see [`cursor_from_f64`]).
    pub fn new(store_id: &str, cursor: i64, head: i64, read_rows: usize) -> Backlog {
        Backlog {
            store_id: store_id.to_string(),
            after: cursor.max(0),
            up_to: head,
            buf: VecDeque::new(),
            read_rows: read_rows.max(PAGE_EVENTS),
            sent_any: false,
            done: false,
        }
    }

    /// True once the last page has been handed out.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The last seq_num handed out (the cursor if none).
    pub fn last_sent(&self) -> i64 {
        self.after
    }

    /// The next page, or `None` after the last one. An empty range yields
    /// exactly one empty page with `remaining == 0`.
    pub fn next_page(&mut self, storage: &dyn Storage) -> Result<Option<Page>, StorageError> {
        if self.done {
            return Ok(None);
        }
        let mut events = Vec::new();
        let mut bytes = 0;
        while events.len() < PAGE_EVENTS {
            if self.buf.is_empty() {
                let from = events
                    .last()
                    .map_or(self.after, |e: &StoredEvent| e.event.seq_num);
                if from >= self.up_to {
                    break;
                }
                self.buf
                    .extend(storage.read(&self.store_id, from, self.up_to, self.read_rows)?);
                if self.buf.is_empty() {
                    // A gap at the end of the log (cannot happen with a
                    // contiguous log); stop rather than loop.
                    self.up_to = from;
                    break;
                }
            }
            let size = self.buf.front().map_or(0, |e| e.event.json_len_estimate());
            if !events.is_empty() && bytes + size > PAGE_BYTES {
                break;
            }
            bytes += size;
            events.extend(self.buf.pop_front());
        }
        if events.is_empty() && self.sent_any {
            self.done = true;
            return Ok(None);
        }
        if let Some(last) = events.last() {
            self.after = last.event.seq_num;
        }
        let remaining = (self.up_to - self.after).max(0);
        self.sent_any = true;
        self.done = remaining == 0;
        Ok(Some(Page { events, remaining }))
    }
}

/// A 0.3 cursor is any JSON number: events strictly greater than it are
/// wanted, so a fractional cursor counts from its floor.
pub fn cursor_from_f64(c: f64) -> i64 {
    if c.is_nan() || c < 0.0 {
        0
    } else if c >= i64::MAX as f64 {
        i64::MAX
    } else {
        c.floor() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::testing::MemStorage;

    fn log(n: i64, size: usize) -> MemStorage {
        MemStorage::with_log(n, size)
    }

    fn pages(st: &MemStorage, cursor: i64, head: i64) -> Vec<(Vec<i64>, i64)> {
        let mut b = Backlog::new("s", cursor, head, 130);
        let mut out = Vec::new();
        while let Some(p) = b.next_page(st).unwrap() {
            out.push((
                p.events.iter().map(|e| e.event.seq_num).collect::<Vec<_>>(),
                p.remaining,
            ));
        }
        assert!(b.is_done());
        out
    }

    #[test]
    fn pages_of_100_with_exact_remaining() {
        let st = log(250, 10);
        let p = pages(&st, 0, 250);
        assert_eq!(
            p.iter().map(|(e, r)| (e.len(), *r)).collect::<Vec<_>>(),
            vec![(100, 150), (100, 50), (50, 0)]
        );
        let all: Vec<i64> = p.into_iter().flat_map(|(e, _)| e).collect();
        assert_eq!(all, (1..=250).collect::<Vec<_>>());
    }

    #[test]
    fn empty_range_gives_one_empty_page() {
        let st = log(5, 10);
        assert_eq!(pages(&st, 5, 5), vec![(vec![], 0)]);
        // A cursor beyond the head (the store was reset) too.
        assert_eq!(pages(&st, 9, 5), vec![(vec![], 0)]);
    }

    #[test]
    fn the_head_snapshot_bounds_the_backlog() {
        let st = log(50, 10);
        let p = pages(&st, 10, 40);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, (11..=40).collect::<Vec<_>>());
    }

    #[test]
    fn pages_are_cut_by_bytes_too() {
        let st = log(10, 300_000);
        let p = pages(&st, 0, 10);
        assert!(p.iter().all(|(e, _)| e.len() <= 3 && !e.is_empty()));
        assert_eq!(p.last().unwrap().1, 0);
        assert_eq!(p.iter().map(|(e, _)| e.len()).sum::<usize>(), 10);
    }

    #[test]
    fn cursors_from_json_numbers() {
        assert_eq!(cursor_from_f64(2.5), 2);
        assert_eq!(cursor_from_f64(-3.0), 0);
        assert_eq!(cursor_from_f64(7.0), 7);
    }
}
