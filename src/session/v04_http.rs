//! 0.4 over HTTP (`makeHttpSync`): one RPC `Request` per POST, answered with
//! the JSON array `[Chunk…, Exit]`. Pulls are never live (the client polls),
//! so a pull is its whole backlog up to the head at the time of the request.

use super::v04_common::{payload_for_store, push_error};
use super::Ctx;
use crate::protocol::v04::{
    self, Incoming, PageInfo, PingPayload, PullPayload, PushPayload, SyncError,
};
use crate::sync::pull::Backlog;

/// Why a body is not an RPC request at all (answered with `400`).
#[derive(Debug, PartialEq, Eq)]
pub struct NotARequest;

/// Handles one POST body for the store of the URL; returns the JSON array.
pub fn handle(ctx: &Ctx, store_id: &str, body: &[u8], label: &str) -> Result<String, NotARequest> {
    let text = std::str::from_utf8(body).map_err(|_| NotARequest)?;
    let Some(Incoming::Request { id, tag, payload }) = v04::decode(text) else {
        return Err(NotARequest);
    };
    let messages = match tag.as_str() {
        v04::PULL_HTTP => {
            match payload_for_store(&payload, store_id, |p: &PullPayload| &p.store_id) {
                Ok(p) => pull(ctx, store_id, &id, &p, label),
                Err(e) => vec![v04::exit_die(&id, &e)],
            }
        }
        v04::PUSH_HTTP => {
            match payload_for_store(&payload, store_id, |p: &PushPayload| &p.store_id) {
                Ok(p) => {
                    let store = ctx.hub.store(store_id);
                    match store.push(
                        &*ctx.hub.storage,
                        &id,
                        p.batch,
                        p.backend_id.0.as_deref(),
                        || {},
                    ) {
                        Ok(()) => vec![v04::exit_push_ok(&id)],
                        Err(e) => vec![v04::exit_fail(&id, &push_error(e, label))],
                    }
                }
                Err(e) => vec![v04::exit_die(&id, &e)],
            }
        }
        v04::PING_HTTP => {
            match payload_for_store(&payload, store_id, |p: &PingPayload| &p.store_id) {
                Ok(_) => vec![v04::exit_http_pong(&id)],
                Err(e) => vec![v04::exit_die(&id, &e)],
            }
        }
        other => vec![v04::exit_die(&id, &format!("unknown request tag: {other}"))],
    };
    Ok(format!("[{}]", messages.join(",")))
}

fn pull(ctx: &Ctx, store_id: &str, id: &str, p: &PullPayload, label: &str) -> Vec<String> {
    let storage = &*ctx.hub.storage;
    let fail = |e: crate::storage::StorageError| {
        log::error!("{label}: pull failed: {e}");
        vec![v04::exit_fail(
            id,
            &SyncError::Unknown {
                message: e.to_string(),
            },
        )]
    };
    let meta = match ctx.hub.store(store_id).meta(storage) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    if let Some(c) = &p.cursor.0 {
        if c.backend_id != meta.backend_id {
            let e = SyncError::BackendIdMismatch {
                expected: meta.backend_id,
                received: c.backend_id.clone(),
            };
            return vec![v04::exit_fail(id, &e)];
        }
    }
    let cursor = p.cursor.0.as_ref().map_or(0, |c| c.event_sequence_number);
    let mut backlog = Backlog::new(
        store_id,
        cursor,
        meta.head,
        ctx.config.limits.storage_read_rows,
    );
    let mut out = Vec::new();
    loop {
        match backlog.next_page(storage) {
            Ok(Some(page)) => out.push(v04::chunk(
                id,
                &page.events,
                PageInfo::from_remaining(page.remaining),
                &meta.backend_id,
            )),
            Ok(None) => break,
            Err(e) => return fail(e),
        }
    }
    out.push(v04::exit_stream_done(id));
    out
}
