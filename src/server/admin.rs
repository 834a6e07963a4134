//! The admin API over HTTP: what `livestore-sync stores …` and `export` do,
//! on a running server, for operators and for 0.4 users (the 0.4 wire has
//! no admin messages).
//!
//! | request | answer |
//! |---|---|
//! | `GET /admin/stores` | `{"stores":[summary…]}` |
//! | `GET /admin/stores/{id}` | the summary, plus `sockets` on this instance |
//! | `POST /admin/stores/{id}/reset` | `{"storeId","backendId","deletedEvents"}`; the store's sockets close |
//! | `DELETE /admin/stores/{id}` | `{"storeId","deleted":true,"deletedEvents"}`; the store's sockets close |
//! | `GET /admin/stores/{id}/export[?format=ndjson]` | the export file, streamed |
//!
//! `{id}` is percent-encoded (any store id works). Every request carries
//! `Authorization: Bearer <ADMIN_SECRET>` (never the URL, so proxies do not
//! log it), compared in constant time and never logged. While ADMIN_SECRET
//! has its well-known default the API answers 403: a default secret must
//! not open a remote delete.

use std::io::Write;

use super::http::{Request, Response};
use super::Ctx;
use crate::archive::{Format, Header, Writer};
use crate::config::DEFAULT_ADMIN_SECRET;
use crate::protocol::query::{ct_eq, percent_decode};
use crate::storage::StoreSummary;

/// Rows per storage read while streaming an export.
const READ_ROWS: usize = 2_000;

/// Whether `path` is the admin API's.
pub fn is_admin(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

pub fn handle(ctx: &Ctx, req: &Request, peer: &str) -> Response {
    if let Err(refusal) = authorise_counted(ctx, req, peer) {
        return refusal;
    }
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let id = |raw: &str| {
        percent_decode(raw, false)
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|id| !id.is_empty())
    };
    let method = req.method.as_str();
    match segments.as_slice() {
        ["admin", "stores"] | ["admin", "stores", ""] => match method {
            "GET" | "HEAD" => list(ctx),
            _ => not_allowed("GET"),
        },
        ["admin", "stores", raw] => match (id(raw), method) {
            (None, _) => bad_id(),
            (Some(id), "GET" | "HEAD") => info(ctx, &id),
            (Some(id), "DELETE") => delete(ctx, &id, peer),
            _ => not_allowed("GET, DELETE"),
        },
        ["admin", "stores", raw, "reset"] => match (id(raw), method) {
            (None, _) => bad_id(),
            (Some(id), "POST") => reset(ctx, &id, peer),
            _ => not_allowed("POST"),
        },
        ["admin", "stores", raw, "export"] => match (id(raw), method) {
            (None, _) => bad_id(),
            (Some(id), "GET") => export(ctx, &id, &req.query),
            _ => not_allowed("GET"),
        },
        _ => error(
            404,
            "no such admin endpoint (see docs/operations.md, Admin over HTTP)",
        ),
    }
}

/// [`authorise`], with a refusal logged and counted
/// (`livestore_refused_total{reason="admin_unauthorised"}`).
pub fn authorise_counted(ctx: &Ctx, req: &Request, peer: &str) -> Result<(), Response> {
    authorise(ctx, req).inspect_err(|refusal| {
        log::warn!(
            "refused admin {} {} peer={peer}: {}",
            req.method,
            req.path,
            refusal.status
        );
        ctx.metrics()
            .refused(crate::metrics::Refusal::AdminUnauthorised, peer);
    })
}

/// Whether the admin secret is set to something of the operator's own.
pub fn secret_is_set(ctx: &Ctx) -> bool {
    let secret = &ctx.config.admin_secret;
    !secret.is_empty() && secret != DEFAULT_ADMIN_SECRET
}

/// Whether `given` is the admin secret (constant time); never while it is
/// unset or has its default.
pub fn is_secret(ctx: &Ctx, given: &str) -> bool {
    secret_is_set(ctx)
        && !given.is_empty()
        && ct_eq(given.as_bytes(), ctx.config.admin_secret.as_bytes())
}

/// The `Authorization: Bearer …` value, if the request has one.
pub fn bearer(req: &Request) -> Option<&str> {
    req.header("authorization").and_then(|h| {
        let (scheme, token) = h.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    })
}

/// `Authorization: Bearer <ADMIN_SECRET>`, or the refusal to send: `403`
/// while the secret is unset or default, `401` otherwise.
pub fn authorise(ctx: &Ctx, req: &Request) -> Result<(), Response> {
    if !secret_is_set(ctx) {
        return Err(error(
            403,
            "the admin API is off while ADMIN_SECRET is unset or has its well-known default; set ADMIN_SECRET",
        ));
    }
    if !is_secret(ctx, bearer(req).unwrap_or("")) {
        return Err(error(401, "send Authorization: Bearer <ADMIN_SECRET>")
            .with_header("WWW-Authenticate", "Bearer realm=\"livestore-sync admin\""));
    }
    Ok(())
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, serde_json::json!({ "error": message }).to_string())
}

fn not_allowed(allow: &'static str) -> Response {
    error(405, "method not allowed").with_header("Allow", allow)
}

fn bad_id() -> Response {
    error(
        400,
        "the store id in the path must be percent-encoded UTF-8, not empty",
    )
}

fn no_store(id: &str) -> Response {
    error(404, &format!("no store {id:?}"))
}

fn storage_failed(e: impl std::fmt::Display) -> Response {
    log::error!("admin request failed: {e}");
    error(503, &e.to_string())
}

fn summary_json(ctx: &Ctx, s: &StoreSummary) -> serde_json::Value {
    let mut v = s.to_json();
    let sockets = ctx
        .env
        .hub
        .loaded(&s.store_id)
        .and_then(|store| store.info().ok())
        .map_or(0, |i| i.sockets);
    v["sockets"] = sockets.into();
    v
}

fn list(ctx: &Ctx) -> Response {
    match ctx.env.hub.storage().list_stores() {
        Ok(stores) => {
            let all: Vec<_> = stores.iter().map(|s| summary_json(ctx, s)).collect();
            Response::json(200, serde_json::json!({ "stores": all }).to_string())
        }
        Err(e) => storage_failed(e),
    }
}

fn info(ctx: &Ctx, id: &str) -> Response {
    match ctx.env.hub.storage().store_summary(id) {
        Ok(Some(s)) => Response::json(200, summary_json(ctx, &s).to_string()),
        Ok(None) => no_store(id),
        Err(e) => storage_failed(e),
    }
}

fn reset(ctx: &Ctx, id: &str, peer: &str) -> Response {
    let before = match ctx.env.hub.storage().store_summary(id) {
        Ok(Some(s)) => s,
        Ok(None) => return no_store(id),
        Err(e) => return storage_failed(e),
    };
    let store = ctx.env.hub.store(id);
    if let Err(e) = store.reset(|| ()) {
        return storage_failed(e);
    }
    log::warn!("store {id:?} reset by admin request peer={peer}");
    let backend_id = store.meta().map(|m| m.backend_id).unwrap_or_default();
    Response::json(
        200,
        serde_json::json!({
            "storeId": id,
            "backendId": backend_id,
            "deletedEvents": before.events,
        })
        .to_string(),
    )
}

fn delete(ctx: &Ctx, id: &str, peer: &str) -> Response {
    let before = match ctx.env.hub.storage().store_summary(id) {
        Ok(Some(s)) => s,
        Ok(None) => return no_store(id),
        Err(e) => return storage_failed(e),
    };
    match ctx.env.hub.store(id).delete(|| ()) {
        Ok(true) => {
            log::warn!("store {id:?} deleted by admin request peer={peer}");
            Response::json(
                200,
                serde_json::json!({"storeId": id, "deleted": true, "deletedEvents": before.events})
                    .to_string(),
            )
        }
        Ok(false) => no_store(id),
        Err(e) => storage_failed(e),
    }
}

fn export(ctx: &Ctx, id: &str, query: &str) -> Response {
    let format = match query.split('&').find_map(|p| p.strip_prefix("format=")) {
        None | Some("livestore") => Format::LiveStore,
        Some("ndjson") => Format::Ndjson,
        Some(_) => return error(400, "format must be livestore or ndjson"),
    };
    let storage = ctx.env.hub.storage().clone();
    let s = match storage.store_summary(id) {
        Ok(Some(s)) => s,
        Ok(None) => return no_store(id),
        Err(e) => return storage_failed(e),
    };
    let header = Header {
        store_id: id.to_string(),
        exported_at: crate::timefmt::iso8601_now(),
        event_count: s.head.max(0) as u64,
        backend_id: Some(s.backend_id.clone()),
    };
    let (content_type, ext) = match format {
        Format::LiveStore => ("application/json", "json"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let file_name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let id = id.to_string();
    // Streamed in chunks as the log is read: a large store is never held
    // in memory. A failure midway cuts the answer short (no final chunk), so
    // the client sees an error, never a well-formed partial file.
    Response::streamed(200, content_type, move |out: &mut dyn Write| {
        let mut w = Writer::new(out, format, &header).map_err(std::io::Error::other)?;
        let mut after = 0;
        while after < s.head {
            let rows = storage
                .read(&id, after, s.head, READ_ROWS)
                .map_err(std::io::Error::other)?;
            let Some(last) = rows.last() else { break };
            after = last.event.seq_num;
            for e in &rows {
                w.write(e).map_err(std::io::Error::other)?;
            }
        }
        w.finish().map_err(std::io::Error::other)?;
        Ok(())
    })
    .with_header(
        "Content-Disposition",
        format!("attachment; filename=\"{file_name}.{ext}\""),
    )
}
