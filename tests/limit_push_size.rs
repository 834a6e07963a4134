//! MAX_PUSH_EVENTS and MAX_PUSH_BYTES: a push over either is refused with
//! the protocol's push error (0.3 `WSMessage.Error`, 0.4 an `UnknownError`
//! failure over WebSocket and HTTP), nothing is stored, the socket stays
//! open, and a push within both is then accepted.
mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// The message of a 0.4 `UnknownError` failure for `id`.
fn unknown_error(m: &Value, id: &str) -> String {
    assert_eq!(m["requestId"], id, "{m}");
    assert_eq!(m["exit"]["cause"]["_tag"], "Fail", "{m}");
    let e = &m["exit"]["cause"]["error"];
    assert_eq!(e["_tag"], "UnknownError", "{m}");
    e["cause"]["message"].as_str().unwrap().to_string()
}

/// One event of about `bytes` bytes (its args carry the padding).
fn fat_event(seq: i64, bytes: usize) -> String {
    format!(
        r#"[{{"name":"big","args":{{"blob":"{}"}},"seqNum":{seq},"parentSeqNum":{},"clientId":"c","sessionId":"s"}}]"#,
        "x".repeat(bytes),
        seq - 1
    )
}

#[test]
fn pushes_over_the_event_or_byte_bound_are_refused_and_nothing_is_stored() {
    let _w = watchdog("limit_push_size", Duration::from_secs(60));
    let srv = TestServer::start_with("push_size", |c| {
        c.limits.max_push_events = 5;
        c.limits.max_push_bytes = 4000;
    });

    // 0.3
    let mut ws = Ws::v03(srv.addr, "a");
    ws.send_text(&v03_push("r1", &events(1, 6, "c")));
    let m = ws.recv();
    assert_eq!(m["_tag"], "WSMessage.Error", "{m}");
    assert_eq!(m["requestId"], "r1");
    assert_eq!(
        m["message"],
        "push too large: 6 events (at most 5, MAX_PUSH_EVENTS)"
    );
    ws.send_text(&v03_push("r2", &fat_event(1, 5000)));
    let m = ws.recv();
    assert_eq!(m["_tag"], "WSMessage.Error", "{m}");
    assert!(
        m["message"]
            .as_str()
            .unwrap()
            .ends_with("bytes (at most 4000, MAX_PUSH_BYTES)"),
        "{m}"
    );
    assert_eq!(srv.db.event_rows("a"), 0);
    // The same socket pushes within the bounds.
    ws.push_v03_acked("r3", &events(1, 5, "c"));
    assert_eq!(srv.db.event_rows("a"), 5);

    // 0.4 over WebSocket
    let mut ws = Ws::v04(srv.addr, "b");
    ws.send_text(&v04_push(
        "p1",
        "SyncWsRpc.Push",
        "b",
        &events(1, 6, "c"),
        NONE,
    ));
    assert_eq!(
        unknown_error(&ws.recv(), "p1"),
        "push too large: 6 events (at most 5, MAX_PUSH_EVENTS)"
    );
    ws.send_text(&v04_push(
        "p2",
        "SyncWsRpc.Push",
        "b",
        &fat_event(1, 5000),
        NONE,
    ));
    assert!(unknown_error(&ws.recv(), "p2").contains("MAX_PUSH_BYTES"));
    assert_eq!(srv.db.event_rows("b"), 0);
    ws.send_text(&v04_push(
        "p3",
        "SyncWsRpc.Push",
        "b",
        &events(1, 5, "c"),
        NONE,
    ));
    assert_eq!(ws.recv(), push_ok("p3"));

    // 0.4 over HTTP
    let path = v04_path("h", TOKEN, "http");
    let post = |body: &str| {
        let (status, _, text) = http(srv.addr, "POST", &path, &[], body);
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        v[0].clone()
    };
    let m = post(&v04_push(
        "h1",
        "SyncHttpRpc.Push",
        "h",
        &events(1, 6, "c"),
        NONE,
    ));
    assert!(unknown_error(&m, "h1").contains("MAX_PUSH_EVENTS"));
    assert_eq!(srv.db.event_rows("h"), 0);
    let m = post(&v04_push(
        "h2",
        "SyncHttpRpc.Push",
        "h",
        &events(1, 5, "c"),
        NONE,
    ));
    assert_eq!(m, push_ok("h2"));

    let auth = format!("Bearer {ADMIN}");
    let (_, _, metrics) = http(srv.addr, "GET", "/metrics", &[("Authorization", &auth)], "");
    for (protocol, transport, n) in [
        ("0.3", "websocket", 2),
        ("0.4", "websocket", 2),
        ("0.4", "http", 1),
    ] {
        let line = format!(
            "livestore_pushes_rejected_total{{protocol=\"{protocol}\",transport=\"{transport}\",reason=\"too_large\"}} {n}\n"
        );
        assert!(metrics.contains(&line), "{line}{metrics}");
    }
}
