//! A 0.3 WebSocket (`makeCfSync`).
//!
//! Every socket of a store receives every push as a `PullRes` with context
//! `push`, from the moment it connects (the client stashes broadcasts that
//! arrive before its pull answer). A `PullReq` puts the socket's
//! subscription back into the backlog phase: the pages go out back to back,
//! and broadcasts wait until the last one is out.

use std::sync::Arc;

use super::{Ctx, MEMO_V03};
use crate::protocol::query::ct_eq;
use crate::protocol::v03::{self, Context, Request};
use crate::storage::StorageError;
use crate::sync::hub::{LiveBatch, LiveSink, PushError, Store, SubId};
use crate::sync::outbox::{Gone, Outbound, Outbox};
use crate::sync::pull::{cursor_from_f64, Backlog};

pub struct V03Session {
    ctx: Arc<Ctx>,
    store: Arc<Store>,
    outbox: Arc<Outbox>,
    sub: SubId,
}

/// Broadcasts for a 0.3 socket: one frame per push, shared by all 0.3 sockets.
struct Sink(Arc<Outbox>);

impl LiveSink for Sink {
    fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone> {
        let text = batch.encoded(MEMO_V03, from, |events| {
            v03::pull_res(events, Context::Push, &batch.origin, 0)
        });
        self.0.try_send(Outbound::Text(text))
    }
}

impl V03Session {
    /// Attaches the socket to its store and subscribes it to broadcasts.
    pub fn open(
        ctx: Arc<Ctx>,
        store_id: &str,
        outbox: Arc<Outbox>,
    ) -> Result<V03Session, StorageError> {
        let store = ctx.hub.store(store_id);
        let storage = &*ctx.hub.storage;
        store.attach(&outbox, storage)?;
        let subscribed =
            store.subscribe(outbox.id(), Arc::new(Sink(outbox.clone())), None, storage);
        let (sub, _) = subscribed.inspect_err(|_| store.detach(outbox.id()))?;
        Ok(V03Session {
            ctx,
            store,
            outbox,
            sub,
        })
    }

    /// Handles one text frame; undecodable frames are ignored.
    pub fn handle_text(&mut self, text: &str) {
        let Some(request) = v03::decode(text) else {
            log::debug!(
                "{}: ignored undecodable frame ({} bytes)",
                self.outbox.label,
                text.len()
            );
            return;
        };
        match request {
            Request::Ping => {
                let _ = self
                    .outbox
                    .send(Outbound::Static(v03::PONG), self.ctx.reply_timeout());
            }
            Request::Pull { request_id, cursor } => {
                self.pull(&request_id, cursor.map_or(0, cursor_from_f64))
            }
            Request::Push { request_id, batch } => self.push(&request_id, batch),
            Request::AdminInfo {
                request_id,
                admin_secret,
            } => self.admin_info(&request_id, &admin_secret),
            Request::AdminResetRoom {
                request_id,
                admin_secret,
            } => self.admin_reset(&request_id, &admin_secret),
        }
    }

    fn reply(&self, text: String) {
        let _ = self.outbox.send_text(text, self.ctx.reply_timeout());
    }

    fn pull(&mut self, request_id: &str, cursor: i64) {
        let storage = &*self.ctx.hub.storage;
        let head = match self.store.rewind(self.sub, cursor, storage) {
            Ok(Some(head)) => head,
            Ok(None) => return, // the socket was dropped meanwhile
            Err(e) => {
                log::error!("{}: pull failed: {e}", self.outbox.label);
                return self.reply(v03::error(request_id, &e.to_string()));
            }
        };
        let mut backlog = Backlog::new(
            &self.store.id,
            cursor,
            head,
            self.ctx.config.limits.storage_read_rows,
        );
        loop {
            match backlog.next_page(storage) {
                Ok(Some(page)) => {
                    let text =
                        v03::pull_res(&page.events, Context::Pull, request_id, page.remaining);
                    if self
                        .outbox
                        .send_text(text, self.ctx.reply_timeout())
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::error!("{}: pull failed: {e}", self.outbox.label);
                    self.reply(v03::error(request_id, &e.to_string()));
                    break;
                }
            }
        }
        self.store.go_live(self.sub, backlog.last_sent());
    }

    fn push(&mut self, request_id: &str, batch: Vec<crate::sync::event::Event>) {
        let outbox = &self.outbox;
        let result = self
            .store
            .push(&*self.ctx.hub.storage, request_id, batch, None, || {
                let _ = outbox.try_send_text(v03::push_ack(request_id));
            });
        match result {
            Ok(()) => {}
            Err(PushError::Chain(e)) => self.reply(v03::error(request_id, &e.to_string())),
            Err(PushError::Storage(e)) => {
                log::error!("{}: push failed: {e}", self.outbox.label);
                self.reply(v03::error(request_id, &e.to_string()));
            }
            Err(PushError::BackendIdMismatch { .. }) => {
                unreachable!("0.3 pushes carry no backend id")
            }
        }
    }

    fn admin_allowed(&self, request_id: &str, secret: &str) -> bool {
        if ct_eq(secret.as_bytes(), self.ctx.config.admin_secret.as_bytes()) {
            return true;
        }
        log::warn!(
            "{}: admin request with an invalid secret",
            self.outbox.label
        );
        self.reply(v03::error(request_id, "Invalid admin secret"));
        false
    }

    fn admin_info(&self, request_id: &str, secret: &str) {
        if !self.admin_allowed(request_id, secret) {
            return;
        }
        match self.store.info(&*self.ctx.hub.storage) {
            Ok(info) => self.reply(v03::admin_info_res(
                request_id,
                &serde_json::json!({
                    // Any stable string: the store id is one per store, as a DO id is.
                    "durableObjectId": self.store.id,
                    "storeId": self.store.id,
                    "head": info.head,
                    "eventCount": info.head,
                    "backendId": info.backend_id,
                    "connectedSockets": info.sockets,
                    "subscriptions": info.subscriptions,
                    "server": concat!("livestore-sync ", env!("CARGO_PKG_VERSION")),
                }),
            )),
            Err(e) => self.reply(v03::error(request_id, &e.to_string())),
        }
    }

    fn admin_reset(&self, request_id: &str, secret: &str) {
        if !self.admin_allowed(request_id, secret) {
            return;
        }
        let outbox = &self.outbox;
        let result = self.store.reset(&*self.ctx.hub.storage, || {
            let _ = outbox.try_send_text(v03::admin_reset_res(request_id));
        });
        match result {
            Ok(()) => log::warn!("{}: store reset by admin request", self.outbox.label),
            Err(e) => {
                log::error!("{}: reset failed: {e}", self.outbox.label);
                self.reply(v03::error(request_id, &e.to_string()));
            }
        }
    }
}

impl Drop for V03Session {
    fn drop(&mut self) {
        self.store.detach(self.outbox.id());
    }
}
