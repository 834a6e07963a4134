//! The `/status` page: who may see it (the bearer secret, or the login form's cookie), what it
//! shows (escaped, without script, never a token), and, in headless Chromium, that it renders and
//! its numbers equal `/metrics`'s.
//!
//! The browser part is `tests/e2e/status/status-page.mjs` (Playwright driving Debian's Chromium,
//! `playwright-core` installed from the committed lockfile on first run). Needs Node.js >= 20 with
//! npm, and Chromium at /usr/bin/chromium (`apt-get install chromium`; or set `CHROMIUM`): without
//! them this test FAILS, it never skips. Its screenshot is kept at `<target>/artifacts/status.png`
//! (.ci/run prints where).
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SECRET: &str = "a-long-admin-secret-for-the-status-test";

fn start(log: &EventLog) -> ServerProcess {
    ServerProcess::start(
        &log.url(),
        &["--auth-token", TOKEN, "--admin-secret", SECRET],
    )
}

fn bearer() -> String {
    format!("Bearer {SECRET}")
}

fn status_with(
    srv: &ServerProcess,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    http(srv.addr, "GET", "/status", headers, "")
}

/// Every sample of `/metrics`: `name{labels}` → value text.
fn scrape(srv: &ServerProcess) -> BTreeMap<String, String> {
    let auth = bearer();
    let (status, _, body) = http(srv.addr, "GET", "/metrics", &[("Authorization", &auth)], "");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn refused_admin(srv: &ServerProcess) -> String {
    scrape(srv)[r#"livestore_refused_total{reason="admin_unauthorised"}"#].clone()
}

/// The `livestore_status=…` cookie a `Set-Cookie` header sets, with its attributes.
fn set_cookie(headers: &[(String, String)]) -> String {
    header(headers, "set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie in {headers:?}"))
        .to_string()
}

#[test]
fn the_status_page_needs_the_secret_by_header_or_login_cookie() {
    let _w = watchdog("status_auth", Duration::from_secs(60));
    let log = EventLog::from_env("status-auth");

    // The well-known default secret opens nothing.
    let srv = ServerProcess::start(&log.url(), &["--auth-token", TOKEN]);
    let auth = format!("Bearer {}", livestore_sync::config::DEFAULT_ADMIN_SECRET);
    let (status, _, body) = status_with(&srv, &[("Authorization", &auth)]);
    assert_eq!(status, 403, "{body}");
    let form = format!("secret={}", livestore_sync::config::DEFAULT_ADMIN_SECRET);
    let (status, h, _) = http(srv.addr, "POST", "/status/login", &[], &form);
    assert_eq!(status, 403);
    assert!(header(&h, "set-cookie").is_none());
    drop(srv);

    let srv = start(&log);
    // No credentials: the login form, not counted as a refusal.
    let (status, h, body) = status_with(&srv, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("action=\"/status/login\""), "{body}");
    assert!(header(&h, "www-authenticate").is_some());
    assert!(!body.contains("data-metric"), "no figures before login");
    assert_eq!(refused_admin(&srv), "0");
    // A wrong bearer secret, a wrong login: refused and counted.
    let (status, _, body) = status_with(&srv, &[("Authorization", "Bearer nope")]);
    assert_eq!(status, 401);
    assert!(!body.contains("data-metric"));
    let (status, h, body) = http(srv.addr, "POST", "/status/login", &[], "secret=nope");
    assert_eq!(status, 401);
    assert!(header(&h, "set-cookie").is_none());
    assert!(body.contains("login-error"), "{body}");
    assert_eq!(refused_admin(&srv), "2");

    // The bearer secret: the page, without any script.
    let auth = bearer();
    let (status, h, body) = status_with(&srv, &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{body}");
    assert!(header(&h, "content-type").unwrap().starts_with("text/html"));
    assert!(!body.to_ascii_lowercase().contains("<script"), "{body}");
    assert!(body.contains("data-metric=\"livestore_events_appended_total\""));
    assert!(header(&h, "content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));

    // The login form: a 303 to /status and a cookie holding a random token, never the secret.
    let form = format!("secret={}", uri_component(SECRET));
    let (status, h, _) = http(srv.addr, "POST", "/status/login", &[], &form);
    assert_eq!(status, 303);
    assert_eq!(header(&h, "location"), Some("/status"));
    let cookie = set_cookie(&h);
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/status",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains(SECRET), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let token = pair
        .strip_prefix("livestore_status=")
        .expect("the cookie's name");
    assert_eq!(token.len(), 64, "{cookie}");
    let (status, _, body) = status_with(&srv, &[("Cookie", &pair)]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("action=\"/status/logout\""));
    // Behind a proxy that says HTTPS, the cookie is Secure.
    let (_, h, _) = http(
        srv.addr,
        "POST",
        "/status/login",
        &[("X-Forwarded-Proto", "https")],
        &form,
    );
    assert!(set_cookie(&h).contains("; Secure"));
    // A made-up token is no login.
    let forged = format!("livestore_status={}", "0".repeat(64));
    assert_eq!(status_with(&srv, &[("Cookie", &forged)]).0, 401);

    // Logging out forgets the token and clears the cookie.
    let (status, h, _) = http(srv.addr, "POST", "/status/logout", &[("Cookie", &pair)], "");
    assert_eq!(status, 303);
    assert!(set_cookie(&h).contains("Max-Age=0"));
    let (status, h, _) = status_with(&srv, &[("Cookie", &pair)]);
    assert_eq!(status, 401);
    assert!(
        set_cookie(&h).contains("Max-Age=0"),
        "a stale cookie is cleared"
    );
    assert_eq!(http(srv.addr, "GET", "/status/login", &[], "").0, 405);
}

#[test]
fn the_page_escapes_store_ids_and_lists_refusals_without_the_token() {
    let _w = watchdog("status_content", Duration::from_secs(60));
    let log = EventLog::from_env("status-content");
    let srv = start(&log);
    let store = "<b>bold</b>&\"quoted\"";
    let mut a = Ws::v03(srv.addr, store);
    a.push_v03_acked("r1", &events(1, 2, "c"));
    let wrong_token = "a-wrong-token-that-must-never-show";
    let (status, _, _) = http(
        srv.addr,
        "GET",
        &v04_path(store, wrong_token, "ws"),
        &[],
        "",
    );
    assert_eq!(status, 401);

    let auth = bearer();
    let (_, _, body) = status_with(&srv, &[("Authorization", &auth)]);
    assert!(
        body.contains("&lt;b&gt;bold&lt;/b&gt;&amp;&quot;quoted&quot;"),
        "the store id, escaped: {body}"
    );
    assert!(!body.contains("<b>bold</b>"));
    assert!(
        body.contains("bad_auth_token"),
        "the refusal is listed: {body}"
    );
    assert!(!body.contains(wrong_token), "never the token: {body}");
    assert!(!body.contains(TOKEN) && !body.contains(SECRET));
    // The store's row: head 2, one socket.
    let row = body
        .split("<tr>")
        .find(|r| r.contains("&lt;b&gt;bold"))
        .expect("the store's row");
    assert!(row.contains(">2</td><td class=\"n\">1</td>"), "{row}");
}

// ---------------------------------------------------------------------------------------------
// In Chromium
// ---------------------------------------------------------------------------------------------

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "the status-page test needs Chromium at {}; install it with `apt-get install chromium` \
         (Debian's package), or set CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// `<target>/artifacts/status.png` (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("artifacts")
        .join("status.png")
}

#[test]
fn in_chromium_the_page_renders_and_its_numbers_equal_the_metrics() {
    let _w = watchdog("status_chromium", Duration::from_secs(240));
    let chromium = chromium();
    let dir = common::node::e2e_dir("status");
    common::node::npm_ci_once(&dir, "playwright-core", "the status-page test");

    let log = EventLog::from_env("status-chromium");
    let srv = start(&log);
    // Traffic: two stores, both protocols, sockets left open.
    let mut a = Ws::v03(srv.addr, "status-store-a");
    a.push_v03_acked("r1", &events(1, 5, "a"));
    let mut b = Ws::v04(srv.addr, "status-store-b");
    b.send_text(&v04_pull(
        "1",
        "SyncWsRpc.Pull",
        "status-store-b",
        Some(true),
        NONE,
    ));
    assert_eq!(b.recv()["_tag"], "Chunk");
    b.send_text(&v04_push(
        "2",
        "SyncWsRpc.Push",
        "status-store-b",
        &events(1, 3, "b"),
        NONE,
    ));
    loop {
        if b.recv()["_tag"] == "Exit" {
            break;
        }
    }
    // Counters are added right after the answers the clients waited for: wait until they show.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let m = scrape(&srv);
        let done = m.get("livestore_events_appended_total").map(String::as_str) == Some("8")
            && m.get("livestore_broadcast_deliveries_total")
                .map(String::as_str)
                == Some("2");
        if done || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg("status-page.mjs")
        .arg(format!("--url=http://{}", srv.addr))
        .arg(format!("--secret={SECRET}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--chromium={}", chromium.display()))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run node status-page.mjs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no report from the script ({})\n{stdout}\n{stderr}",
                out.status
            )
        });
    let ctx = format!("report: {report:#}\nscript log:\n{stderr}");
    assert_eq!(report["error"], Value::Null, "{ctx}");
    assert!(out.status.success(), "{ctx}");

    // The login flow, as a browser does it.
    assert_eq!(report["firstStatus"], 401, "{ctx}");
    assert_eq!(report["loginForm"], true, "{ctx}");
    assert_eq!(report["wrongStatus"], 401, "{ctx}");
    assert_eq!(report["loggedInStatus"], 200, "{ctx}");
    assert!(
        report["loggedInUrl"].as_str().unwrap().ends_with("/status"),
        "{ctx}"
    );
    let cookies = report["cookies"].as_array().expect("cookies");
    assert_eq!(cookies.len(), 1, "{ctx}");
    assert_eq!(cookies[0]["name"], "livestore_status");
    assert_eq!(cookies[0]["httpOnly"], true, "{ctx}");
    assert_eq!(cookies[0]["sameSite"], "Strict", "{ctx}");
    assert_eq!(cookies[0]["path"], "/status", "{ctx}");
    assert_eq!(cookies[0]["holdsSecret"], false, "{ctx}");
    assert_eq!(report["afterLogoutStatus"], 401, "logged out: {ctx}");
    assert_eq!(report["afterLogoutAgain"], 401, "{ctx}");
    assert_eq!(report["bearerStatus"], 200, "{ctx}");

    // What it shows: no script; both stores with their heads; the figures equal /metrics.
    let page = &report["page"];
    assert_eq!(page["heading"], "livestore-sync status", "{ctx}");
    assert_eq!(page["scripts"], 0, "{ctx}");
    let stores: Vec<Vec<String>> = serde_json::from_value(page["stores"].clone()).unwrap();
    let head = |id: &str| {
        stores
            .iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {stores:?}"))[1]
            .clone()
    };
    assert_eq!(
        (head("status-store-a"), head("status-store-b")),
        ("5".into(), "3".into())
    );
    let figures = page["figures"].as_object().expect("figures");
    for series in [
        "livestore_events_appended_total",
        "livestore_broadcast_deliveries_total",
        r#"livestore_connections_open{protocol="0.3",transport="websocket"}"#,
        r#"livestore_connections_open{protocol="0.4",transport="websocket"}"#,
        r#"livestore_pushes_accepted_total{protocol="0.3",transport="websocket"}"#,
        r#"livestore_pushes_accepted_total{protocol="0.4",transport="websocket"}"#,
        "livestore_stores_in_memory",
    ] {
        assert!(
            figures.contains_key(series),
            "the page shows no {series}: {ctx}"
        );
    }
    for (series, shown) in figures {
        let scraped = metrics
            .get(series)
            .unwrap_or_else(|| panic!("{series} is on the page but not in /metrics"));
        assert_eq!(
            shown.as_str(),
            Some(scraped.as_str()),
            "{series}: page vs /metrics\n{ctx}"
        );
    }
    assert_eq!(figures["livestore_events_appended_total"], "8");
    assert_eq!(
        figures[r#"livestore_connections_open{protocol="0.4",transport="websocket"}"#],
        "1"
    );
    assert_eq!(report["bearerFigures"], page["figures"], "{ctx}");
    // 8 events in the last minute: a rate above 0 (whole seconds only, so wait for one to end).
    let eps: f64 = page["eventsPerSecond"].as_str().unwrap().parse().unwrap();
    assert!((0.0..=8.0 / 60.0 + 0.05).contains(&eps), "{eps}");

    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("screenshot {}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        shot.display()
    );
    eprintln!("status_page: screenshot at {}", shot.display());
    drop((a, b));
}
