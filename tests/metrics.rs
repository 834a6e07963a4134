//! `GET /metrics`: after real traffic of every protocol the figures count
//! it exactly and Debian's `promtool check metrics` accepts the text; who may
//! read them (`METRICS`); every metric the server exports is documented in
//! docs/metrics.md and every one documented is exported; and every query of
//! the Grafana dashboard names metrics the server exports.
//!
//! Needs `promtool` (Debian: `apt-get install prometheus`): without it the
//! promtool test FAILS, it never skips. On the backend `TEST_BACKEND` names.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SECRET: &str = "a-long-admin-secret-for-the-metrics-test";

fn start(log: &EventLog, extra: &[&str]) -> ServerProcess {
    let mut flags = vec!["--auth-token", TOKEN, "--admin-secret", SECRET];
    flags.extend_from_slice(extra);
    ServerProcess::start(&log.url(), &flags)
}

/// `GET /metrics` with the admin secret: (status, headers, body).
fn scrape_raw(srv: &ServerProcess) -> (u16, Vec<(String, String)>, String) {
    let auth = format!("Bearer {SECRET}");
    http(srv.addr, "GET", "/metrics", &[("Authorization", &auth)], "")
}

/// Every sample of a scrape: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample line {l:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value of {l:?}")),
            };
            (series.to_string(), value)
        })
        .collect()
}

fn scrape(srv: &ServerProcess) -> BTreeMap<String, f64> {
    let (status, _, body) = scrape_raw(srv);
    assert_eq!(status, 200, "{body}");
    samples(&body)
}

/// Scrapes until `done` holds (counters are added right after the answer
/// that a client waits for goes out); the last scrape either way.
fn scrape_until(
    srv: &ServerProcess,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(srv);
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("no series {series} in the scrape:\n{}", dump(s)))
}

fn dump(s: &BTreeMap<String, f64>) -> String {
    s.iter()
        .filter(|(k, _)| !k.contains("_bucket"))
        .map(|(k, v)| format!("  {k} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `promtool check metrics` on `text`: (exit success, what it printed).
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): this test needs it; install Debian's prometheus \
                 package (`apt-get install prometheus`), which ships /usr/bin/promtool"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// One of each protocol's traffic on one store, with a refused request and
/// a stale push; the 0.3 and 0.4 WebSockets stay open (returned).
fn traffic(srv: &ServerProcess, store: &str) -> (Ws, Ws) {
    // 0.3: one push of 3 events; the socket follows the store from the start.
    let mut a = Ws::v03(srv.addr, store);
    a.push_v03_acked("r1", &events(1, 3, "c03"));
    // 0.4 WebSocket: a live pull (one page of 3), then a push of 2 and a stale push.
    let mut b = Ws::v04(srv.addr, store);
    b.send_text(&v04_pull("1", "SyncWsRpc.Pull", store, Some(true), NONE));
    let page = b.recv();
    assert_eq!(page["_tag"], "Chunk", "{page}");
    b.send_text(&v04_push(
        "2",
        "SyncWsRpc.Push",
        store,
        &events(4, 2, "c04"),
        NONE,
    ));
    b.send_text(&v04_push(
        "3",
        "SyncWsRpc.Push",
        store,
        &events(1, 1, "c04"),
        NONE,
    ));
    let mut exits = 0;
    while exits < 2 {
        if b.recv()["_tag"] == "Exit" {
            exits += 1;
        }
    }
    // 0.4 HTTP: a push of 1, then a pull of all 6.
    let path = v04_path(store, TOKEN, "http");
    let push = v04_push("4", "SyncHttpRpc.Push", store, &events(6, 1, "c04h"), NONE);
    let (status, _, body) = http(srv.addr, "POST", &path, &[], &push);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""Success""#), "{body}");
    let pull = v04_pull("5", "SyncHttpRpc.Pull", store, None, NONE);
    let (status, _, body) = http(srv.addr, "POST", &path, &[], &pull);
    assert_eq!(status, 200, "{body}");
    // Refused: a wrong auth token.
    let (status, _, _) = http(srv.addr, "GET", &v04_path(store, "wrong", "ws"), &[], "");
    assert_eq!(status, 401);
    (a, b)
}

#[test]
fn a_scrape_after_real_traffic_counts_it_and_passes_promtool() {
    let _w = watchdog("metrics_traffic", Duration::from_secs(90));
    let log = EventLog::from_env("metrics-traffic");
    let srv = start(&log, &[]);
    let (_a, _b) = traffic(&srv, "metrics-store");

    let s = scrape_until(&srv, |s| {
        s.get("livestore_broadcast_deliveries_total") == Some(&5.0)
            && s.get(r#"livestore_pushes_accepted_total{protocol="0.4",transport="websocket"}"#)
                == Some(&1.0)
            && s.get(r#"livestore_pushes_rejected_total{protocol="0.4",transport="websocket",reason="wrong_parent"}"#)
                == Some(&1.0)
    });
    let ctx = dump(&s);
    for (series, want) in [
        ("livestore_events_appended_total", 6.0),
        (
            r#"livestore_pushes_accepted_total{protocol="0.3",transport="websocket"}"#,
            1.0,
        ),
        (
            r#"livestore_pushes_accepted_total{protocol="0.4",transport="websocket"}"#,
            1.0,
        ),
        (
            r#"livestore_pushes_accepted_total{protocol="0.4",transport="http"}"#,
            1.0,
        ),
        (
            r#"livestore_pushes_rejected_total{protocol="0.4",transport="websocket",reason="wrong_parent"}"#,
            1.0,
        ),
        (
            r#"livestore_pushes_rejected_total{protocol="0.3",transport="websocket",reason="wrong_parent"}"#,
            0.0,
        ),
        // The 0.3 socket got all three pushes, the 0.4 one the last two.
        ("livestore_broadcast_deliveries_total", 5.0),
        (
            r#"livestore_pull_pages_total{protocol="0.4",transport="websocket"}"#,
            1.0,
        ),
        (
            r#"livestore_pull_events_total{protocol="0.4",transport="websocket"}"#,
            3.0,
        ),
        (
            r#"livestore_pull_events_total{protocol="0.4",transport="http"}"#,
            6.0,
        ),
        (
            r#"livestore_connections_open{protocol="0.3",transport="websocket"}"#,
            1.0,
        ),
        (
            r#"livestore_connections_open{protocol="0.4",transport="websocket"}"#,
            1.0,
        ),
        (r#"livestore_refused_total{reason="bad_auth_token"}"#, 1.0),
        (
            r#"livestore_refused_total{reason="admin_unauthorised"}"#,
            0.0,
        ),
        ("livestore_push_commit_seconds_count", 3.0),
        ("livestore_push_fanout_seconds_count", 3.0),
        (
            r#"livestore_slow_consumers_dropped_total{reason="queue_full"}"#,
            0.0,
        ),
        ("livestore_stores_in_memory", 1.0),
    ] {
        assert_eq!(get(&s, series), want, "{series}\n{ctx}");
    }
    // This scrape's own connection is plain HTTP.
    assert!(
        get(
            &s,
            r#"livestore_connections_open{protocol="none",transport="http"}"#
        ) >= 1.0
    );
    assert!(
        get(&s, "process_resident_memory_bytes") > 1_000_000.0,
        "{ctx}"
    );
    assert!(get(&s, "process_open_fds") >= 5.0, "{ctx}");
    assert!(get(&s, "process_threads") >= 5.0, "{ctx}");
    // 2 threads per WebSocket, 1 for this request.
    assert!(get(&s, "livestore_connection_threads") >= 5.0, "{ctx}");
    assert!(
        get(&s, r#"livestore_db_pool_connections{state="idle"}"#) >= 1.0,
        "{ctx}"
    );
    assert_eq!(get(&s, "livestore_db_pool_waiting"), 0.0, "{ctx}");
    assert!(
        get(&s, r#"livestore_push_commit_seconds_bucket{le="+Inf"}"#) == 3.0,
        "{ctx}"
    );

    let (status, headers, text) = scrape_raw(&srv);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let (ok, said) = promtool_check(&text);
    assert!(
        ok,
        "promtool check metrics failed:\n{said}\n--- the text:\n{text}"
    );
    // The check can fail: a counter without its help line is refused.
    let (ok, said) = promtool_check("# TYPE broken_total counter\nbroken_total 1\n");
    assert!(!ok, "promtool accepted a metric without help: {said}");
}

#[test]
fn metrics_need_the_admin_secret_unless_public_and_are_gone_when_off() {
    let _w = watchdog("metrics_access", Duration::from_secs(90));
    let log = EventLog::from_env("metrics-access");

    // Default: admin.
    let srv = start(&log, &[]);
    for (headers, why) in [
        (vec![], "no header"),
        (vec![("Authorization", "Bearer wrong")], "wrong secret"),
        (vec![("Authorization", SECRET)], "no scheme"),
    ] {
        let (status, h, body) = http(srv.addr, "GET", "/metrics", &headers, "");
        assert_eq!(status, 401, "{why}: {body}");
        assert!(header(&h, "www-authenticate").is_some(), "{why}");
        assert!(!body.contains("livestore_"), "{why}: {body}");
    }
    let (status, _, _) = http(srv.addr, "POST", "/metrics", &[], "");
    assert_eq!(status, 405);
    let s = scrape(&srv);
    assert_eq!(
        get(
            &s,
            r#"livestore_refused_total{reason="admin_unauthorised"}"#
        ),
        3.0
    );
    drop(srv);

    // The well-known default secret opens nothing.
    let srv = ServerProcess::start(&log.url(), &["--auth-token", TOKEN]);
    let auth = format!("Bearer {}", livestore_sync::config::DEFAULT_ADMIN_SECRET);
    let (status, _, body) = http(srv.addr, "GET", "/metrics", &[("Authorization", &auth)], "");
    assert_eq!(status, 403, "{body}");
    drop(srv);

    // METRICS=public: anyone.
    let mut cmd = server_command();
    cmd.args(["--database-url", &log.url(), "--auth-token", TOKEN])
        .env("METRICS", "public");
    let srv = ServerProcess::start_command(cmd);
    let (status, _, body) = http(srv.addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("livestore_events_appended_total 0\n"),
        "{body}"
    );
    drop(srv);

    // --metrics off: not there, whatever the header.
    let srv = start(&log, &["--metrics", "off"]);
    let (status, _, body) = scrape_raw(&srv);
    assert_eq!(status, 404, "{body}");
}

/// The metric names of a scrape, as `# TYPE` lines declare them.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

fn public_server(log: &EventLog) -> ServerProcess {
    let mut cmd = server_command();
    cmd.args(["--database-url", &log.url(), "--auth-token", TOKEN])
        .args(["--metrics", "public"]);
    ServerProcess::start_command(cmd)
}

#[test]
fn every_exported_metric_is_documented_and_every_documented_one_exported() {
    let _w = watchdog("metrics_docs", Duration::from_secs(60));
    let log = EventLog::from_env("metrics-docs");
    let srv = public_server(&log);
    let (_, _, text) = http(srv.addr, "GET", "/metrics", &[], "");
    let exported = families(&text);
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/metrics.md");
    // Rows of the table under "## The metrics": | `name` | type | labels | meaning |
    let table = doc
        .split_once("\n## The metrics\n")
        .expect("a \"## The metrics\" section")
        .1;
    let documented: BTreeMap<String, String> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(2)?.to_string()))
        })
        .collect();
    assert!(
        documented.len() >= 20,
        "docs/metrics.md table: {documented:?}"
    );
    assert_eq!(
        exported.keys().collect::<BTreeSet<_>>(),
        documented.keys().collect::<BTreeSet<_>>(),
        "docs/metrics.md and /metrics differ"
    );
    for (name, kind) in &exported {
        assert_eq!(
            &documented[name], kind,
            "the type of {name} in docs/metrics.md"
        );
    }
}

/// Metric names in a PromQL expression: every name this server could
/// export starts with `livestore_` or `process_`.
fn expr_metrics(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &expr[i..];
        if starts_word && (rest.starts_with("livestore_") || rest.starts_with("process_")) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            i += name.len();
            out.push(name);
        } else {
            i += 1;
        }
    }
    out
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    // Panel queries, and the variables' queries.
                    ("expr" | "definition", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_queries_only_metrics_the_server_exports() {
    let _w = watchdog("metrics_dashboard", Duration::from_secs(90));
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/grafana/livestore-sync.json"
    );
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).unwrap();
    // Ready to import: the datasource is an input, used by every panel.
    assert_eq!(
        dashboard["__inputs"][0]["name"], "DS_PROMETHEUS",
        "__inputs"
    );
    assert_eq!(dashboard["__inputs"][0]["pluginId"], "prometheus");
    let panels = dashboard["panels"].as_array().expect("panels");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            p["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {}",
            p["title"]
        );
    }
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 10, "queries found: {all:?}");

    // After traffic, so every labelled series exists.
    let log = EventLog::from_env("metrics-dashboard");
    let srv = public_server(&log);
    let _open = traffic(&srv, "dashboard-store");
    let (_, _, text) = http(srv.addr, "GET", "/metrics", &[], "");
    let names: BTreeSet<String> = samples(&text)
        .keys()
        .map(|k| k.split('{').next().unwrap().to_string())
        .collect();
    let mut missing = Vec::new();
    for e in &all {
        let used = expr_metrics(e);
        assert!(!used.is_empty(), "a query that names no metric: {e}");
        for m in used {
            if !names.contains(&m) {
                missing.push(format!("{m} (in {e})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the server does not export:\n{}",
        missing.join("\n")
    );
    // The check itself: a made-up name is caught.
    assert_eq!(
        expr_metrics("sum(rate(livestore_nope_total[5m])) / process_open_fds"),
        vec!["livestore_nope_total", "process_open_fds"]
    );
}
