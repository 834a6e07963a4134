//! Pulls: the events after a cursor, read from storage `read_rows` at a time
//! and cut into pages (the model's page rule), each with the exact number of
//! events still to come; and, for a live pull, the switch to live batches
//! after the last page.
//!
//! A [`Pull`] is handed out by [`Store::pull`]. It owns the paging, the
//! subscription and the switch to live, so a session cannot forget a step:
//! the page is queued by the caller's closure before the switch happens (so
//! no live batch lands between two pages of one answer), a failed read ends
//! the subscription (no gap), and dropping the pull unsubscribes.
//!
//! The store's log is contiguous (seq_nums 1..=head, enforced by the chain
//! check and the primary key), so "events still to come" is `head - last`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::sink::Gone;
use super::store::{GoLive, Store, SubId};
use crate::model::{page_len, StoreMeta, StoredEvent};
use crate::storage::StorageError;

/// One page of a pull answer.
#[derive(Debug)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    /// Events after this page; 0 on the last page (and on every page read
    /// after the answer's end, see [`Pull::send_next`]).
    pub remaining: i64,
}

/// The pages of one range of the log, produced on demand.
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
    /// Events with `cursor < seq_num <= head`; a negative cursor counts as 0.
    pub fn new(store_id: &str, cursor: i64, head: i64, read_rows: usize) -> Backlog {
        Backlog {
            store_id: store_id.to_string(),
            after: cursor.max(0),
            up_to: head,
            buf: VecDeque::new(),
            read_rows: read_rows.max(crate::model::PAGE_EVENTS),
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

    /// Continues the range up to `head` (after its end was handed out).
    fn extend_to(&mut self, head: i64) {
        if head > self.up_to {
            self.up_to = head;
            self.done = false;
        }
    }

    /// The next page, or `None` after the last one, reading with `read`
    /// (arguments as [`crate::storage::Storage::read`]'s; the server passes a read on the
    /// shared reading threads, `reads.rs`). An empty range yields exactly
    /// one empty page with `remaining == 0`.
    pub fn next_page(
        &mut self,
        mut read: impl FnMut(&str, i64, i64, usize) -> Result<Vec<StoredEvent>, StorageError>,
    ) -> Result<Option<Page>, StorageError> {
        if self.done {
            return Ok(None);
        }
        // A page's worth buffered (or all that is left), then the page rule.
        let mut from = self.buf.back().map_or(self.after, |e| e.event.seq_num);
        while self.buf.len() < crate::model::PAGE_EVENTS && from < self.up_to {
            let rows = read(&self.store_id, from, self.up_to, self.read_rows)?;
            let Some(last) = rows.last() else {
                // A gap at the end of the log (cannot happen with a
                // contiguous log); stop rather than loop.
                self.up_to = from;
                break;
            };
            from = last.event.seq_num;
            self.buf.extend(rows);
        }
        let n = page_len(self.buf.make_contiguous());
        if n == 0 && self.sent_any {
            self.done = true;
            return Ok(None);
        }
        let events: Vec<StoredEvent> = self.buf.drain(..n).collect();
        if let Some(last) = events.last() {
            self.after = last.event.seq_num;
        }
        let remaining = (self.up_to - self.after).max(0);
        self.sent_any = true;
        self.done = remaining == 0;
        if self.done {
            // A live pull lives on; its read buffer need not.
            self.buf = VecDeque::new();
        }
        Ok(Some(Page { events, remaining }))
    }
}

/// Why a pull could not start.
#[derive(Debug)]
pub enum PullRefused {
    /// The client's cursor is from another incarnation of the store (0.4).
    BackendIdMismatch {
        expected: String,
        received: String,
    },
    Storage(StorageError),
}

/// Why a pull stopped; either way it is over (and unsubscribed).
#[derive(Debug)]
pub enum PullError {
    /// A page could not be read. The caller answers with an error; no
    /// later page or live batch goes out on this pull, so there is no gap.
    Storage(StorageError),
    /// The socket is gone.
    Gone,
}

/// Where a pull stands after [`Pull::send_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More pages to send.
    More,
    /// The answer is complete: a non-live pull is over, a live one now
    /// receives live batches (until it is dropped).
    Done,
}

/// One pull: its pages, then (live pulls) its live batches. Dropping it
/// ends the subscription.
pub struct Pull {
    store: Arc<Store>,
    sub: Option<SubId>,
    /// The answer being paged; gone once it is complete, so a live pull
    /// keeps only its subscription (an idle socket holds little).
    paging: Option<Box<Paging>>,
}

struct Paging {
    backlog: Backlog,
    meta: StoreMeta,
    /// The answer's last page went out; pages read after that (batches that
    /// overflowed the hold) carry `remaining == 0`, like live batches.
    answered: bool,
}

impl Pull {
    pub(crate) fn new(store: Arc<Store>, sub: Option<SubId>, from: i64, meta: StoreMeta) -> Pull {
        let backlog = Backlog::new(store.id(), from, meta.head, store.limits().read_rows);
        Pull {
            store,
            sub,
            paging: Some(Box::new(Paging {
                backlog,
                meta,
                answered: false,
            })),
        }
    }

    /// A subscription that is live already (no pages).
    pub(crate) fn live(store: Arc<Store>, sub: SubId) -> Pull {
        Pull {
            store,
            sub: Some(sub),
            paging: None,
        }
    }

    /// The store's backend id and head when the pull started; `None` once
    /// the answer is complete.
    pub fn meta(&self) -> Option<&StoreMeta> {
        self.paging.as_ref().map(|p| &p.meta)
    }

    /// True for a live pull once its answer is complete.
    pub fn is_live(&self) -> bool {
        self.sub.is_some() && self.paging.is_none()
    }

    /// True once the answer is complete (a live pull is then live).
    pub fn is_done(&self) -> bool {
        self.paging.is_none()
    }

    /// The catch-up of a stale push on this live subscription
    /// ([`Store::catch_up_stale`]); `None` if it sent nothing.
    pub fn catch_up_stale(
        &self,
        origin: &str,
        parent: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        match self.sub {
            Some(sub) if self.paging.is_none() => self.store.catch_up_stale(sub, origin, parent),
            _ => Ok(None),
        }
    }

    /// Reads the next page and hands it to `send`, which queues it. After
    /// the last page, a live pull goes live (held batches follow the page).
    pub fn send_next(
        &mut self,
        send: impl FnOnce(&Page) -> Result<(), Gone>,
    ) -> Result<Progress, PullError> {
        let Some(paging) = self.paging.as_mut() else {
            return Ok(Progress::Done);
        };
        // On a shared reading thread: the storage client's deep frames stay
        // off this (long-lived, per-socket) thread's stack (`reads.rs`).
        let storage = self.store.storage_arc();
        let mut page = match paging
            .backlog
            .next_page(|id, from, up_to, rows| super::reads::read(storage, id, from, up_to, rows))
        {
            Ok(Some(page)) => page,
            Ok(None) => return self.finish(),
            Err(e) => {
                self.end();
                return Err(PullError::Storage(e));
            }
        };
        // Checked after the read: a store reset or deleted meanwhile has
        // another log, whose events must not go out under this backend id.
        if !self.store.serves(&paging.meta.backend_id) {
            self.end();
            return Err(PullError::Storage(StorageError(
                "the store was reset or deleted during the pull".into(),
            )));
        }
        if paging.answered {
            page.remaining = 0;
        }
        if send(&page).is_err() {
            self.end();
            return Err(PullError::Gone);
        }
        if !paging.backlog.is_done() {
            return Ok(Progress::More);
        }
        paging.answered = true;
        self.finish()
    }

    /// The backlog is out: a non-live pull is over; a live one goes live,
    /// or reads on if batches were dropped while held.
    fn finish(&mut self) -> Result<Progress, PullError> {
        let Some(sub) = self.sub else {
            self.paging = None;
            return Ok(Progress::Done);
        };
        let last_sent = self.paging.as_ref().map_or(0, |p| p.backlog.last_sent());
        match self.store.go_live(sub, last_sent) {
            GoLive::Live => {
                self.paging = None;
                Ok(Progress::Done)
            }
            GoLive::Behind(head) => {
                if let Some(p) = self.paging.as_mut() {
                    p.backlog.extend_to(head);
                }
                Ok(Progress::More)
            }
            GoLive::Gone => {
                self.sub = None;
                self.paging = None;
                Err(PullError::Gone)
            }
        }
    }

    fn end(&mut self) {
        self.paging = None;
        if let Some(sub) = self.sub.take() {
            self.store.unsubscribe(sub);
        }
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use crate::sync::testing::MemStorage;

    fn pages(st: &MemStorage, cursor: i64, head: i64) -> Vec<(Vec<i64>, i64)> {
        let mut b = Backlog::new("s", cursor, head, 130);
        let mut out = Vec::new();
        while let Some(p) = b
            .next_page(|id, from, up_to, rows| st.read(id, from, up_to, rows))
            .unwrap()
        {
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
        let st = MemStorage::with_log(250, 10);
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
        let st = MemStorage::with_log(5, 10);
        assert_eq!(pages(&st, 5, 5), vec![(vec![], 0)]);
        // A cursor beyond the head (the store was reset) too.
        assert_eq!(pages(&st, 9, 5), vec![(vec![], 0)]);
    }

    #[test]
    fn the_head_snapshot_bounds_the_backlog() {
        let st = MemStorage::with_log(50, 10);
        let p = pages(&st, 10, 40);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, (11..=40).collect::<Vec<_>>());
    }

    #[test]
    fn pages_are_cut_by_bytes_too() {
        // 300 kB events: two per page under the 900 kB rule.
        let st = MemStorage::with_log(5, 300_000);
        let p = pages(&st, 0, 5);
        assert_eq!(
            p,
            vec![(vec![1, 2], 3), (vec![3, 4], 1), (vec![5], 0)],
            "pages of two 300 kB events"
        );
    }
}
