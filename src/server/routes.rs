//! What each request gets: a plain HTTP answer, or a WebSocket upgrade for
//! one of the sync protocols. Sync requests are checked (parameters, then
//! the token: `auth::Auth`) before any upgrade, so a bad one gets a `400`,
//! `401` or `403` with a readable body instead of an accepted-then-closed
//! socket, which clients would retry in a hot loop. Every 0.4 HTTP request
//! carries its token and is checked on its own.

use super::http::{Request, Response};
use super::live::Live;
use super::Ctx;
use crate::auth::Decision;
use crate::logfmt;
use crate::metrics::{ConnGuard, ConnKind, Proto, Refusal};
use crate::protocol::query::{self, Route, SyncParams};
use crate::session::v04_http;

/// The outcome of routing one request.
pub enum Action {
    Respond(Response),
    /// A valid, authorised WebSocket upgrade; `key` is `Sec-WebSocket-Key`.
    Upgrade {
        params: SyncParams,
        key: String,
        /// The token's `exp`, for a signed token.
        expires: Option<u64>,
    },
}

/// `kind` is the connection's count in `livestore_connections_open`: a 0.4
/// HTTP sync request moves it there (an upgrade does, in `ws.rs`).
pub fn route(ctx: &Ctx, req: &Request, peer: &str, live: &Live, kind: &ConnGuard<'_>) -> Action {
    // No CORS on the admin API, the metrics and the status page: they are
    // for operators' tools, not other sites' pages.
    if super::admin::is_admin(&req.path) {
        return Action::Respond(super::admin::handle(ctx, req, peer));
    }
    if let Some(response) = super::status::handle(ctx, req, peer, live) {
        return Action::Respond(response);
    }
    let response = match req.method.as_str() {
        "OPTIONS" => preflight(ctx, req),
        _ => match query::route(&req.path, &req.query) {
            Some(route) => return sync_request(ctx, req, route, peer, kind),
            None => plain(ctx, req, live),
        },
    };
    Action::Respond(with_cors(ctx, req, response))
}

fn sync_request(
    ctx: &Ctx,
    req: &Request,
    route: Route,
    peer: &str,
    kind: &ConnGuard<'_>,
) -> Action {
    let refuse = |why: Refusal, store: &str, status: u16, reason: String| {
        ctx.metrics().refused(why, peer);
        // The path, never the query string (it holds the token), and never
        // the token: the reasons name no secret.
        log::warn!(
            "refused request {} method={} path={} status={status} reason={}",
            label(store, peer, route),
            logfmt::value(&req.method),
            logfmt::value(&req.path),
            logfmt::value(&reason)
        );
        Action::Respond(with_cors(ctx, req, Response::text(status, reason)))
    };
    let params = match query::parse(route, &req.query) {
        Ok(p) => p,
        Err(e) => return refuse(Refusal::BadSyncRequest, "", 400, e.to_string()),
    };
    // A header set by a proxy or a header-setting client wins over the
    // payload.
    let token = super::admin::bearer(req).or(params.auth_token());
    let expires = match ctx.auth.check(&params.store_id, token, unix_now()) {
        Decision::Allow { expires } => expires,
        Decision::Refuse(r) => {
            return refuse(
                Refusal::BadAuthToken,
                &params.store_id,
                r.status,
                r.reason.to_string(),
            )
        }
    };
    let response = match route {
        Route::V03 | Route::V04Ws => match websocket_key(req) {
            Some(key) => {
                return Action::Upgrade {
                    params,
                    key,
                    expires,
                }
            }
            None => {
                ctx.metrics().refused(Refusal::NotWebsocket, peer);
                Response::text(
                    426,
                    "Upgrade Required: this endpoint speaks WebSocket (Upgrade: websocket)",
                )
                .with_header("Upgrade", "websocket")
            }
        },
        Route::V04Http if req.method == "POST" => {
            kind.set(ConnKind::Sync(Proto::V04Http));
            let label = label(&params.store_id, peer, route);
            match v04_http::handle(&ctx.env, &params.store_id, &req.body, &label) {
                Ok(json) => Response::json(200, json),
                Err(v04_http::NotARequest) => {
                    ctx.metrics().refused(Refusal::BadSyncRequest, peer);
                    Response::text(400, "The body must be one JSON RPC Request")
                }
            }
        }
        Route::V04Http => {
            ctx.metrics().refused(Refusal::BadSyncRequest, peer);
            Response::text(405, "Use POST for transport=http").with_header("Allow", "POST, OPTIONS")
        }
    };
    Action::Respond(with_cors(ctx, req, response))
}

/// Seconds since the Unix epoch, as tokens count time.
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The fields naming a sync request in log lines (see `logfmt`).
fn label(store_id: &str, peer: &str, route: Route) -> String {
    let protocol = match route {
        Route::V03 => "0.3",
        Route::V04Ws => "0.4-ws",
        Route::V04Http => "0.4-http",
    };
    format!(
        "store={} peer={} protocol={protocol}",
        logfmt::quoted(store_id),
        logfmt::value(peer)
    )
}

/// `Sec-WebSocket-Key` of a well-formed RFC 6455 upgrade request.
fn websocket_key(req: &Request) -> Option<String> {
    let ok = req.method == "GET"
        && req.header_has_token("upgrade", "websocket")
        && req.header_has_token("connection", "upgrade")
        && req.header("sec-websocket-version").map(str::trim) == Some("13");
    ok.then(|| {
        req.header("sec-websocket-key")
            .map(|k| k.trim().to_string())
    })
    .flatten()
}

fn plain(ctx: &Ctx, req: &Request, live: &Live) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/") => Response::json(
            200,
            serde_json::json!({
                "name": "livestore-sync",
                "version": env!("CARGO_PKG_VERSION"),
                "protocols": [
                    {"livestore": "0.3", "client": "makeCfSync", "transport": "websocket", "path": "…/websocket"},
                    {"livestore": "0.4", "client": "makeWsSync", "transport": "websocket", "query": "transport=ws"},
                    {"livestore": "0.4", "client": "makeHttpSync", "transport": "http", "query": "transport=http"},
                ],
            })
            .to_string(),
        ),
        ("GET" | "HEAD", "/health") => {
            let c = live.counts();
            let open = serde_json::json!({
                "connections": c.connections,
                "websockets": c.websockets,
                "threads": c.threads,
            });
            // With several instances on one PostgreSQL: whether the others'
            // events reach this one's sockets live.
            let notices = ctx.watch.as_ref().map(|w| if w.is_up() { "ok" } else { "down" });
            match ctx.env.hub.health() {
                Ok(()) if notices == Some("down") => Response::json(
                    503,
                    serde_json::json!({"status": "unavailable", "database": "ok",
                                       "notices": "down", "open": open})
                    .to_string(),
                ),
                Ok(()) => Response::json(
                    200,
                    serde_json::json!({"status": "ok", "database": "ok", "notices": notices, "open": open})
                        .to_string(),
                ),
                Err(e) => {
                    log::error!(
                        "health check failed reason={}",
                        logfmt::value(&e.to_string())
                    );
                    Response::json(
                        503,
                        serde_json::json!({"status": "unavailable", "database": e.to_string(), "open": open})
                            .to_string(),
                    )
                }
            }
        }
        _ => Response::text(404, "Not found"),
    }
}

/// The allowed origin to echo for this request, if any.
fn allowed_origin(ctx: &Ctx, req: &Request) -> Option<String> {
    let origins = &ctx.config.cors_origins;
    if origins.iter().any(|o| o == "*") {
        return Some("*".to_string());
    }
    let origin = req.header("origin")?;
    origins
        .iter()
        .any(|o| o == origin)
        .then(|| origin.to_string())
}

fn with_cors(ctx: &Ctx, req: &Request, response: Response) -> Response {
    match allowed_origin(ctx, req) {
        Some(o) if o == "*" => response.with_header("Access-Control-Allow-Origin", o),
        Some(o) => response
            .with_header("Access-Control-Allow-Origin", o)
            .with_header("Vary", "Origin"),
        None => response,
    }
}

/// Answers a CORS preflight for any path.
fn preflight(ctx: &Ctx, req: &Request) -> Response {
    let mut r = Response::text(204, "");
    if allowed_origin(ctx, req).is_some() {
        let headers = req
            .header("access-control-request-headers")
            .unwrap_or("*")
            .to_string();
        r = r
            .with_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            .with_header("Access-Control-Allow-Headers", headers)
            .with_header("Access-Control-Max-Age", "86400");
    }
    r
}
