//! What operators look at: `GET /metrics` (Prometheus text format) and the
//! `/status` page (server-rendered HTML, no script).
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics` | the metrics; who may read them is `METRICS` (`admin`: the bearer secret, `public`, `off`: 404) |
//! | `GET /status` | the page, with the bearer secret or a login cookie; else a login form (`401`) |
//! | `POST /status/login` | form field `secret`: right, a `303` to `/status` setting the cookie; wrong, `401` |
//! | `POST /status/logout` | forgets the login, clears the cookie, `303` to `/status` |
//!
//! A browser cannot send a bearer header by itself, so the page also takes
//! the secret once through its login form. The cookie holds a random token
//! (32 bytes from `/dev/urandom`), never the secret: `HttpOnly` (no script
//! reads it), `SameSite=Strict` (no other site's page sends it), `Path=/status`,
//! valid 12 hours and only in this process (a restart logs everyone out). At
//! most [`MAX_LOGINS`] are kept; a new one pushes out the oldest.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::admin;
use super::http::{Request, Response};
use super::live::Live;
use super::Ctx;
use crate::config::MetricsAccess;
use crate::metrics::{self, ConnKind, Proto, PushRejected, Refusal, SlowDrop};
use crate::protocol::query::{ct_eq, percent_decode};
use crate::timefmt;

/// The login cookie's name.
pub const COOKIE: &str = "livestore_status";
/// How long a login lasts.
pub const LOGIN_TTL: Duration = Duration::from_secs(12 * 3600);
/// Logins kept at once.
pub const MAX_LOGINS: usize = 32;
/// Store rows the page lists (busiest first).
const STORE_ROWS: usize = 100;
/// The page reloads itself this often (an HTML `meta` refresh, no script).
const REFRESH_SECS: u32 = 10;

/// Who is logged in to the status page: random tokens and when they expire.
#[derive(Default)]
pub struct Logins(Mutex<Vec<(String, Instant)>>);

impl Logins {
    /// A new login's token; `None` if no randomness could be read.
    fn create(&self) -> Option<String> {
        let mut bytes = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .ok()?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut all = self.0.lock();
        all.retain(|(_, until)| *until > now);
        if all.len() >= MAX_LOGINS {
            all.remove(0);
        }
        all.push((token.clone(), now + LOGIN_TTL));
        Some(token)
    }

    fn is_valid(&self, token: &str) -> bool {
        let now = Instant::now();
        let mut all = self.0.lock();
        all.retain(|(_, until)| *until > now);
        // Every entry compared in full: the time does not tell which matched.
        all.iter().fold(false, |found, (t, _)| {
            found | ct_eq(token.as_bytes(), t.as_bytes())
        })
    }

    fn remove(&self, token: &str) {
        self.0
            .lock()
            .retain(|(t, _)| !ct_eq(token.as_bytes(), t.as_bytes()));
    }
}

/// Answers `/metrics` and `/status…`; `None` for every other path (and for
/// `/metrics` with `METRICS=off`, which then gets the usual 404).
pub fn handle(ctx: &Ctx, req: &Request, peer: &str, live: &Live) -> Option<Response> {
    let method = req.method.as_str();
    Some(match req.path.as_str() {
        "/metrics" => match ctx.config.metrics {
            MetricsAccess::Off => return None,
            _ if !matches!(method, "GET" | "HEAD") => not_allowed("GET"),
            MetricsAccess::Public => metrics_response(ctx, live),
            MetricsAccess::Admin => match admin::authorise_counted(ctx, req, peer) {
                Ok(()) => metrics_response(ctx, live),
                Err(refusal) => refusal,
            },
        },
        "/status" | "/status/" => match method {
            "GET" | "HEAD" => status_page(ctx, req, peer, live),
            _ => not_allowed("GET"),
        },
        "/status/login" => match method {
            "POST" => login(ctx, req, peer),
            _ => not_allowed("POST"),
        },
        "/status/logout" => match method {
            "POST" => logout(ctx, req),
            _ => not_allowed("POST"),
        },
        _ => return None,
    })
}

fn not_allowed(allow: &'static str) -> Response {
    Response::text(405, "Method not allowed").with_header("Allow", allow)
}

/// The figures read from elsewhere at render time.
fn snapshot(ctx: &Ctx, live: &Live) -> metrics::Snapshot {
    let hub = &ctx.env.hub;
    metrics::Snapshot {
        stores_in_memory: hub.stores_in_memory() as u64,
        connection_threads: live.counts().threads as u64,
        pool: hub.storage().pool_state().map(|p| metrics::Pool {
            in_use: p.in_use,
            idle: p.idle,
            waiting: p.waiting,
            max: p.max,
        }),
    }
}

fn metrics_response(ctx: &Ctx, live: &Live) -> Response {
    let text = ctx.metrics().render(&snapshot(ctx, live));
    Response::new(200, metrics::CONTENT_TYPE, text).with_header("Cache-Control", "no-store")
}

fn html(status: u16, body: String) -> Response {
    Response::new(status, "text/html; charset=utf-8", body)
        .with_header("Cache-Control", "no-store")
        // The page loads nothing from anywhere and runs no script.
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        )
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
}

fn cookie_token(req: &Request) -> Option<&str> {
    req.header("cookie")?
        .split(';')
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `Secure` when a proxy in front says the browser came over HTTPS.
fn cookie_attrs(req: &Request) -> &'static str {
    let https = req
        .header("x-forwarded-proto")
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    if https {
        "Path=/status; HttpOnly; SameSite=Strict; Secure"
    } else {
        "Path=/status; HttpOnly; SameSite=Strict"
    }
}

fn status_page(ctx: &Ctx, req: &Request, peer: &str, live: &Live) -> Response {
    if !admin::secret_is_set(ctx) {
        ctx.metrics().refused(Refusal::AdminUnauthorised, peer);
        return html(
            403,
            page(
                "livestore-sync status",
                "<p>The status page is off while <code>ADMIN_SECRET</code> is unset or has its \
                 well-known default. Set <code>ADMIN_SECRET</code> and restart the server.</p>",
            ),
        );
    }
    let bearer = admin::bearer(req);
    let cookie = cookie_token(req);
    let allowed = bearer.is_some_and(|b| admin::is_secret(ctx, b))
        || cookie.is_some_and(|t| ctx.logins.is_valid(t));
    if allowed {
        return html(200, render(ctx, live, cookie.is_some()));
    }
    // A first visit with no credentials is a login prompt, not a refusal.
    if bearer.is_some() || cookie.is_some() {
        log::warn!("refused status page peer={peer}: wrong secret or expired login");
        ctx.metrics().refused(Refusal::AdminUnauthorised, peer);
    }
    let mut r = html(401, login_page(None));
    if cookie.is_some() {
        r = r.with_header(
            "Set-Cookie",
            format!("{COOKIE}=; {}; Max-Age=0", cookie_attrs(req)),
        );
    }
    r.with_header("WWW-Authenticate", "Bearer realm=\"livestore-sync admin\"")
}

/// The `secret` field of a form body (`application/x-www-form-urlencoded`).
fn form_secret(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| {
        let v = pair.strip_prefix("secret=")?;
        String::from_utf8(percent_decode(v, true)?).ok()
    })
}

fn login(ctx: &Ctx, req: &Request, peer: &str) -> Response {
    if !admin::secret_is_set(ctx) {
        ctx.metrics().refused(Refusal::AdminUnauthorised, peer);
        return html(
            403,
            login_page(Some(
                "The status page is off while ADMIN_SECRET is unset or has its default.",
            )),
        );
    }
    let given = form_secret(&req.body).unwrap_or_default();
    if !admin::is_secret(ctx, &given) {
        log::warn!("refused status login peer={peer}: wrong secret");
        ctx.metrics().refused(Refusal::AdminUnauthorised, peer);
        return html(401, login_page(Some("That is not the admin secret.")));
    }
    let Some(token) = ctx.logins.create() else {
        ctx.metrics()
            .error("status login: no randomness (/dev/urandom)", peer);
        return html(
            503,
            login_page(Some(
                "The server could not make a login token; use the Authorization header.",
            )),
        );
    };
    log::info!("status page login peer={peer}");
    Response::text(303, "See /status")
        .with_header("Location", "/status")
        .with_header(
            "Set-Cookie",
            format!(
                "{COOKIE}={token}; {}; Max-Age={}",
                cookie_attrs(req),
                LOGIN_TTL.as_secs()
            ),
        )
}

fn logout(ctx: &Ctx, req: &Request) -> Response {
    if let Some(token) = cookie_token(req) {
        ctx.logins.remove(token);
    }
    Response::text(303, "See /status")
        .with_header("Location", "/status")
        .with_header(
            "Set-Cookie",
            format!("{COOKIE}=; {}; Max-Age=0", cookie_attrs(req)),
        )
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2430;background:#f4f6f9}
header{background:#1d2430;color:#fff;padding:14px 24px;display:flex;align-items:baseline;gap:16px;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header .sub{color:#aab4c3;font-size:13px}
header form{margin-left:auto}
main{padding:16px 24px;display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:16px}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:12px 16px}
section.wide{grid-column:1/-1}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#5b6678;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef1f5;vertical-align:top}
th{font-weight:600;color:#5b6678;font-size:12px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.big{font-size:28px;font-weight:600}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px}
.kpi{padding:6px 0}.kpi .label{color:#5b6678;font-size:12px}
.ok{color:#187a3c}.bad{color:#b3261e}
code{background:#eef1f5;padding:1px 4px;border-radius:3px}
.muted{color:#8a94a6}
button,input{font:inherit;padding:6px 10px}
";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

fn login_page(message: Option<&str>) -> String {
    let message = message
        .map(|m| format!("<p class=\"bad\" id=\"login-error\">{}</p>", esc(m)))
        .unwrap_or_default();
    page(
        "livestore-sync status: log in",
        &format!(
            "<header><h1>livestore-sync status</h1></header><main><section>\
             <h2>Log in</h2>{message}\
             <form method=\"post\" action=\"/status/login\">\
             <p><label>Admin secret (<code>ADMIN_SECRET</code>)<br>\
             <input type=\"password\" name=\"secret\" autocomplete=\"current-password\" required autofocus></label></p>\
             <p><button type=\"submit\">Log in</button></p></form>\
             <p class=\"muted\">Or send <code>Authorization: Bearer $ADMIN_SECRET</code>.</p>\
             </section></main>"
        ),
    )
}

/// A number shown on the page, tagged with the `/metrics` series it equals
/// (so a test can compare them).
fn figure(series: &str, value: impl std::fmt::Display) -> String {
    format!("<span data-metric=\"{}\">{value}</span>", esc(series))
}

fn proto_series(name: &str, p: Proto) -> String {
    let (protocol, transport) = p.labels();
    format!("{name}{{protocol=\"{protocol}\",transport=\"{transport}\"}}")
}

fn bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n as f64 >= 1024.0 * MIB {
        format!("{:.2} GiB", n as f64 / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", n as f64 / MIB)
    }
}

fn ago(now: SystemTime, t: SystemTime) -> String {
    let secs = now.duration_since(t).unwrap_or_default().as_secs();
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

fn render(ctx: &Ctx, live: &Live, by_cookie: bool) -> String {
    let m = ctx.metrics();
    let now = SystemTime::now();
    let snap = snapshot(ctx, live);
    let mut b = String::with_capacity(32 * 1024);

    let uptime = now
        .duration_since(m.started())
        .unwrap_or_default()
        .as_secs();
    let database = match ctx.env.hub.health() {
        Ok(()) => "<span class=\"ok\" id=\"database\">ok</span>".to_string(),
        Err(e) => format!(
            "<span class=\"bad\" id=\"database\">{}</span>",
            esc(&e.to_string())
        ),
    };
    let logout = if by_cookie {
        "<form method=\"post\" action=\"/status/logout\"><button type=\"submit\">Log out</button></form>"
    } else {
        ""
    };
    let _ = write!(
        b,
        "<header><h1>livestore-sync status</h1><span class=\"sub\">version {} · up {}h {:02}m · \
         {} · at {} · reloads every {REFRESH_SECS} s</span>{logout}</header><main>",
        env!("CARGO_PKG_VERSION"),
        uptime / 3600,
        uptime / 60 % 60,
        esc(&ctx.storage_description),
        timefmt::iso8601(now),
    );

    // Traffic.
    let accepted: u64 = [Proto::V03, Proto::V04Ws, Proto::V04Http]
        .iter()
        .map(|p| m.pushes_accepted(*p))
        .sum();
    let _ = write!(
        b,
        "<section class=\"wide\"><h2>Traffic</h2><div class=\"kpis\">\
         <div class=\"kpi\"><div class=\"big\" id=\"events-per-second\">{:.1}</div><div class=\"label\">events/s, last minute</div></div>\
         <div class=\"kpi\"><div class=\"big\">{}</div><div class=\"label\">events appended</div></div>\
         <div class=\"kpi\"><div class=\"big\" id=\"pushes-accepted\">{accepted}</div><div class=\"label\">pushes accepted</div></div>\
         <div class=\"kpi\"><div class=\"big\">{}</div><div class=\"label\">broadcast deliveries</div></div>\
         <div class=\"kpi\"><div class=\"big\">{}</div><div class=\"label\">slow consumers dropped</div></div>\
         <div class=\"kpi\"><div class=\"big\">{}</div><div class=\"label\">database: {database}</div></div>\
         </div></section>",
        m.events_per_second(now),
        figure("livestore_events_appended_total", m.events_appended()),
        figure("livestore_broadcast_deliveries_total", m.deliveries()),
        m.slow_consumers(SlowDrop::QueueFull) + m.slow_consumers(SlowDrop::ReplyTimeout),
        figure("livestore_stores_in_memory", snap.stores_in_memory)
            + " <span class=\"label\">stores in memory</span>",
    );

    // Connections and pushes per protocol.
    b.push_str(
        "<section><h2>Connections and pushes</h2><table><tr><th>protocol</th><th>transport</th>\
         <th class=\"n\">open</th><th class=\"n\">pushes accepted</th><th class=\"n\">rejected</th></tr>",
    );
    let kinds = [
        ConnKind::Sync(Proto::V03),
        ConnKind::Sync(Proto::V04Ws),
        ConnKind::Sync(Proto::V04Http),
        ConnKind::Http,
    ];
    for kind in kinds {
        let (protocol, transport) = kind.labels();
        let open = figure(
            &format!(
                "livestore_connections_open{{protocol=\"{protocol}\",transport=\"{transport}\"}}"
            ),
            m.connections_open(kind),
        );
        let (accepted, rejected) = match kind {
            ConnKind::Sync(p) => {
                let rejected: u64 = [
                    PushRejected::WrongParent,
                    PushRejected::BrokenChain,
                    PushRejected::BackendIdMismatch,
                    PushRejected::StorageError,
                    PushRejected::InvalidRequest,
                ]
                .iter()
                .map(|r| m.pushes_rejected(p, *r))
                .sum();
                (
                    figure(
                        &proto_series("livestore_pushes_accepted_total", p),
                        m.pushes_accepted(p),
                    ),
                    rejected.to_string(),
                )
            }
            ConnKind::Http => ("—".into(), "—".into()),
        };
        let _ = write!(
            b,
            "<tr><td>{protocol}</td><td>{transport}</td><td class=\"n\">{open}</td>\
             <td class=\"n\">{accepted}</td><td class=\"n\">{rejected}</td></tr>"
        );
    }
    let _ = write!(
        b,
        "</table><p class=\"muted\">Protocol <em>none</em>: plain HTTP (health checks, this page). \
         {} threads serve them.</p></section>",
        snap.connection_threads
    );

    // Database pool and process.
    let process = metrics::ProcessStats::read();
    let pool = snap.pool.unwrap_or_default();
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let _ = write!(
        b,
        "<section><h2>Database pool</h2><table>\
         <tr><td>in use</td><td class=\"n\">{}</td></tr>\
         <tr><td>idle</td><td class=\"n\">{}</td></tr>\
         <tr><td>waiting</td><td class=\"n\">{}</td></tr>\
         <tr><td>most</td><td class=\"n\">{}</td></tr></table></section>\
         <section><h2>Process</h2><table>\
         <tr><td>resident memory</td><td class=\"n\">{}</td></tr>\
         <tr><td>threads</td><td class=\"n\">{}</td></tr>\
         <tr><td>open file descriptors</td><td class=\"n\">{} of {}</td></tr></table></section>",
        figure(
            "livestore_db_pool_connections{state=\"in_use\"}",
            pool.in_use
        ),
        figure("livestore_db_pool_connections{state=\"idle\"}", pool.idle),
        figure("livestore_db_pool_waiting", pool.waiting),
        if pool.max == 0 {
            "no bound".to_string()
        } else {
            pool.max.to_string()
        },
        process.resident_bytes.map_or("?".into(), bytes),
        opt(process.threads),
        opt(process.open_fds),
        opt(process.max_fds),
    );

    // Stores.
    let mut stores = ctx.env.hub.statuses();
    stores.sort_by(|a, b| {
        b.sockets
            .cmp(&a.sockets)
            .then(b.last_write.cmp(&a.last_write))
            .then(a.id.cmp(&b.id))
    });
    let _ = write!(
        b,
        "<section class=\"wide\"><h2>Stores in memory ({})</h2><table id=\"stores\">\
         <tr><th>store</th><th class=\"n\">head</th><th class=\"n\">sockets</th>\
         <th class=\"n\">subscriptions</th><th>last write</th></tr>",
        stores.len()
    );
    for s in stores.iter().take(STORE_ROWS) {
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&s.id),
            s.head.map_or("not loaded".into(), |h| h.to_string()),
            s.sockets,
            s.subscriptions,
            s.last_write.map_or("—".to_string(), |t| format!(
                "{} <span class=\"muted\">{}</span>",
                ago(now, t),
                timefmt::iso8601(t)
            )),
        );
    }
    if stores.is_empty() {
        b.push_str("<tr><td colspan=\"5\" class=\"muted\">none yet</td></tr>");
    }
    b.push_str("</table>");
    if stores.len() > STORE_ROWS {
        let _ = write!(
            b,
            "<p class=\"muted\">and {} more (busiest shown)</p>",
            stores.len() - STORE_ROWS
        );
    }
    b.push_str("</section>");

    // Recent refusals and errors.
    let recent = m.recent();
    let _ = write!(
        b,
        "<section class=\"wide\"><h2>Recent refusals and errors (last {})</h2><table id=\"recent\">\
         <tr><th>time</th><th>kind</th><th>reason</th><th>where</th></tr>",
        metrics::RECENT
    );
    for r in &recent {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            timefmt::iso8601(r.at),
            if r.kind == metrics::IncidentKind::Error {
                "bad"
            } else {
                ""
            },
            r.kind.label(),
            esc(&r.reason),
            esc(&r.source),
        );
    }
    if recent.is_empty() {
        b.push_str("<tr><td colspan=\"4\" class=\"muted\">none</td></tr>");
    }
    b.push_str("</table></section></main>");

    let mut out = page("livestore-sync status", &b);
    // Reload without script.
    out = out.replacen(
        "<meta charset=\"utf-8\">",
        &format!(
            "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">"
        ),
        1,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_form_secret_is_percent_decoded() {
        assert_eq!(
            form_secret(b"x=1&secret=a%20b+c%26d").as_deref(),
            Some("a b c&d")
        );
        assert_eq!(form_secret(b"other=1"), None);
    }

    #[test]
    fn logins_are_random_bounded_and_removable() {
        let logins = Logins::default();
        let a = logins.create().unwrap();
        let b = logins.create().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(logins.is_valid(&a) && logins.is_valid(&b));
        assert!(!logins.is_valid("0000"));
        logins.remove(&a);
        assert!(!logins.is_valid(&a));
        for _ in 0..MAX_LOGINS {
            logins.create().unwrap();
        }
        assert!(!logins.is_valid(&b), "the oldest was pushed out");
        assert_eq!(logins.0.lock().len(), MAX_LOGINS);
    }
}
