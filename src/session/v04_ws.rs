//! A 0.4 WebSocket (`makeWsSync`): Effect-RPC over one socket, several pull
//! streams at once.
//!
//! Each `SyncWsRpc.Pull` is its own stream, keyed by the RPC request id. A
//! live pull subscribes before its backlog is read; its backlog chunks go
//! out at most `ack_window` ahead of the client's `Ack`s, and live chunks wait
//! until the backlog's last (`NoMore`) chunk is out. `Interrupt` ends a
//! stream and drops its subscription.

use std::sync::Arc;

use super::v04_common::{payload_for_store, push_error};
use super::{Ctx, MEMO_V04};
use crate::protocol::v04::{self, Incoming, PageInfo, PullPayload, PushPayload, SyncError};
use crate::storage::StorageError;
use crate::sync::hub::{LiveBatch, LiveSink, Store, SubId};
use crate::sync::outbox::{Gone, Outbound, Outbox};
use crate::sync::pull::Backlog;

pub struct V04WsSession {
    ctx: Arc<Ctx>,
    store: Arc<Store>,
    outbox: Arc<Outbox>,
    pulls: Pulls,
}

struct PullStream {
    /// `None` once the backlog is out: a live pull stays registered (for
    /// `Interrupt`) without keeping the backlog's read buffer.
    backlog: Option<Box<Backlog>>,
    backend_id: String,
    /// Live pulls only.
    sub: Option<SubId>,
    /// Backlog chunks sent and not yet acknowledged.
    in_flight: usize,
}

/// The open pull streams of one socket by request id: a client keeps one
/// or two open, so a short list, kept small for the idle socket.
#[derive(Default)]
struct Pulls(Vec<(String, PullStream)>);

impl Pulls {
    fn get_mut(&mut self, id: &str) -> Option<&mut PullStream> {
        self.0.iter_mut().find(|(k, _)| k == id).map(|(_, p)| p)
    }

    fn remove(&mut self, id: &str) -> Option<PullStream> {
        let i = self.0.iter().position(|(k, _)| k == id)?;
        Some(self.0.swap_remove(i).1)
    }

    /// `id` must not be open (`start_pull` ends an open stream of that id first).
    fn insert(&mut self, id: String, p: PullStream) {
        debug_assert!(self.get_mut(&id).is_none());
        self.0.reserve_exact(1);
        self.0.push((id, p));
    }
}

/// Live chunks for one pull stream: a per-stream head around a body shared
/// by every 0.4 subscriber of the push.
struct Sink {
    outbox: Arc<Outbox>,
    head: Arc<str>,
}

impl LiveSink for Sink {
    fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone> {
        let body = batch.encoded(MEMO_V04, from, |events| {
            v04::live_values(events, &batch.backend_id)
        });
        self.outbox.try_send(Outbound::Wrapped(Box::new((
            self.head.clone(),
            body,
            v04::CHUNK_TAIL,
        ))))
    }
}

impl V04WsSession {
    pub fn open(
        ctx: Arc<Ctx>,
        store_id: &str,
        outbox: Arc<Outbox>,
    ) -> Result<V04WsSession, StorageError> {
        let store = ctx.hub.store(store_id);
        store.attach(&outbox, &*ctx.hub.storage)?;
        Ok(V04WsSession {
            ctx,
            store,
            outbox,
            pulls: Pulls::default(),
        })
    }

    /// Handles one text frame; frames that are no envelope are ignored.
    pub fn handle_text(&mut self, text: &str) {
        let Some(msg) = v04::decode(text) else {
            log::debug!(
                "{}: ignored undecodable frame ({} bytes)",
                self.outbox.label,
                text.len()
            );
            return;
        };
        match msg {
            Incoming::Ping => {
                let _ = self
                    .outbox
                    .send(Outbound::Static(v04::PONG), self.ctx.reply_timeout());
            }
            Incoming::Eof => {}
            Incoming::Ack { request_id } => {
                if let Some(p) = self.pulls.get_mut(&request_id) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                    self.pump(&request_id);
                }
            }
            Incoming::Interrupt { request_id } => {
                // Interrupts for finished requests (the client sends them
                // after a push's Exit) are ignored.
                if self.end_pull(&request_id) {
                    self.reply(v04::exit_interrupted(&request_id));
                }
            }
            Incoming::Request { id, tag, payload } => match tag.as_str() {
                v04::PULL_WS => {
                    match payload_for_store(&payload, &self.store.id, |p: &PullPayload| &p.store_id)
                    {
                        Ok(p) if p.live.is_some() => self.start_pull(id, p),
                        Ok(_) => self.reply(v04::exit_die(
                            &id,
                            "invalid request payload: `live` is required",
                        )),
                        Err(e) => self.reply(v04::exit_die(&id, &e)),
                    }
                }
                v04::PUSH_WS => {
                    match payload_for_store(&payload, &self.store.id, |p: &PushPayload| &p.store_id)
                    {
                        Ok(p) => self.push(&id, p),
                        Err(e) => self.reply(v04::exit_die(&id, &e)),
                    }
                }
                other => self.reply(v04::exit_die(&id, &format!("unknown request tag: {other}"))),
            },
        }
    }

    /// Forgets pull stream `id` and its subscription; false if it was not open.
    fn end_pull(&mut self, id: &str) -> bool {
        let Some(p) = self.pulls.remove(id) else {
            return false;
        };
        if let Some(sub) = p.sub {
            self.store.unsubscribe(sub);
        }
        true
    }

    fn reply(&self, text: String) {
        let _ = self.outbox.send_text(text, self.ctx.reply_timeout());
    }

    fn start_pull(&mut self, id: String, p: PullPayload) {
        self.end_pull(&id);
        let storage = &*self.ctx.hub.storage;
        let cursor = p.cursor.0.as_ref().map_or(0, |c| c.event_sequence_number);
        let live = p.live == Some(true);
        let started = if live {
            let sink = Arc::new(Sink {
                outbox: self.outbox.clone(),
                head: v04::chunk_head(&id).into(),
            });
            self.store
                .subscribe(self.outbox.id(), sink, Some(cursor), storage)
                .map(|(sub, meta)| (Some(sub), meta))
        } else {
            self.store.meta(storage).map(|meta| (None, meta))
        };
        let (sub, meta) = match started {
            Ok(s) => s,
            Err(e) => {
                log::error!("{}: pull failed: {e}", self.outbox.label);
                return self.reply(v04::exit_fail(
                    &id,
                    &SyncError::Unknown {
                        message: e.to_string(),
                    },
                ));
            }
        };
        if let Some(c) = &p.cursor.0 {
            if c.backend_id != meta.backend_id {
                if let Some(sub) = sub {
                    self.store.unsubscribe(sub);
                }
                let e = SyncError::BackendIdMismatch {
                    expected: meta.backend_id,
                    received: c.backend_id.clone(),
                };
                return self.reply(v04::exit_fail(&id, &e));
            }
        }
        let backlog = Backlog::new(
            &self.store.id,
            cursor,
            meta.head,
            self.ctx.config.limits.storage_read_rows,
        );
        self.pulls.insert(
            id.clone(),
            PullStream {
                backlog: Some(Box::new(backlog)),
                backend_id: meta.backend_id,
                sub,
                in_flight: 0,
            },
        );
        self.pump(&id);
    }

    /// Sends backlog chunks while the ack window allows; after the last one,
    /// ends a non-live pull or lets a live one receive live chunks.
    fn pump(&mut self, id: &str) {
        let storage = &*self.ctx.hub.storage;
        let window = self.ctx.config.limits.ack_window;
        let Some(p) = self.pulls.get_mut(id) else {
            return;
        };
        let Some(backlog) = p.backlog.as_mut() else {
            return; // live already
        };
        while !backlog.is_done() && p.in_flight < window {
            match backlog.next_page(storage) {
                Ok(Some(page)) => {
                    let text = v04::chunk(
                        id,
                        &page.events,
                        PageInfo::from_remaining(page.remaining),
                        &p.backend_id,
                    );
                    if self
                        .outbox
                        .send_text(text, self.ctx.reply_timeout())
                        .is_err()
                    {
                        return;
                    }
                    p.in_flight += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    log::error!("{}: pull failed: {e}", self.outbox.label);
                    let text = v04::exit_fail(
                        id,
                        &SyncError::Unknown {
                            message: e.to_string(),
                        },
                    );
                    self.end_pull(id);
                    return self.reply(text);
                }
            }
        }
        if !backlog.is_done() {
            return;
        }
        let last_sent = backlog.last_sent();
        match p.sub {
            Some(sub) => {
                p.backlog = None;
                self.store.go_live(sub, last_sent);
            }
            None => {
                self.pulls.remove(id);
                self.reply(v04::exit_stream_done(id));
            }
        }
    }

    fn push(&mut self, id: &str, p: PushPayload) {
        let outbox = &self.outbox;
        let result = self.store.push(
            &*self.ctx.hub.storage,
            id,
            p.batch,
            p.backend_id.0.as_deref(),
            || {
                let _ = outbox.try_send_text(v04::exit_push_ok(id));
            },
        );
        if let Err(e) = result {
            self.reply(v04::exit_fail(id, &push_error(e, &self.outbox.label)));
        }
    }
}

impl Drop for V04WsSession {
    fn drop(&mut self) {
        self.store.detach(self.outbox.id());
    }
}
