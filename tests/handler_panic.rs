//! A connection's handler panics (the binary's test-only hook,
//! `LSS_TEST_PANIC_ON_STORE` / `LSS_TEST_PANIC_AT`, issue 13): that
//! connection ends, the server goes on serving, the store's head and log
//! stay consistent (`livestore-sync check`), and the panic is one log line.
mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const QUIET: Duration = Duration::from_millis(500);

/// The real binary on a SQLite log, armed to panic on the first push to `boom` at `at`.
fn start(log: &EventLog, at: &str) -> ServerProcess {
    let mut cmd = server_command();
    cmd.args(["--database-url", &log.url(), "--auth-token", TOKEN])
        .env("LSS_TEST_PANIC_ON_STORE", "boom")
        .env("LSS_TEST_PANIC_AT", at);
    ServerProcess::start_command(cmd)
}

fn lines_with(srv: &ServerProcess, text: &str) -> Vec<String> {
    srv.log
        .lock()
        .iter()
        .filter(|l| l.contains(text))
        .cloned()
        .collect()
}

/// The connection's end and the panic are logged once each, after they happen.
fn assert_logged_once(srv: &ServerProcess) {
    srv.wait_for_log("reason=\"handler panicked\"", Duration::from_secs(10));
    let panics = lines_with(srv, "panic thread=");
    assert_eq!(panics.len(), 1, "{panics:?}");
    assert!(
        panics[0].contains("thread=conn ") && panics[0].contains("test-only panic"),
        "{panics:?}"
    );
    assert!(!panics[0].contains("e2e"), "no token in the panic line");
    assert_eq!(lines_with(srv, "handler panicked").len(), 1);
}

/// The server goes on: another store's socket pushes and hears its broadcast.
fn assert_serving(srv: &ServerProcess) {
    let mut other = Ws::v03(srv.addr, "other");
    other.ping_v03();
    other.send_text(&v03_push("o1", &events(1, 2, "O")));
    assert_eq!(
        other.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "o1"})
    );
    assert_eq!(seqs(&other.recv()["batch"]), vec![1, 2]);
}

/// `livestore-sync check` on the same log, next to the running server.
fn assert_checked(log: &EventLog) {
    let out = tool_command(&log.url())
        .args(["check"])
        .output()
        .expect("run livestore-sync check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "check found a problem: {text}");
}

#[test]
fn a_panic_before_the_append_ends_one_connection_and_stores_nothing() {
    let _w = watchdog("panic_before", Duration::from_secs(60));
    let log = EventLog::sqlite("panic_before");
    let srv = start(&log, "before-append");
    assert!(srv.logged("TEST-ONLY panic hook armed"));
    let mut watcher = Ws::v03(srv.addr, "boom");
    let mut pusher = Ws::v03(srv.addr, "boom");
    watcher.ping_v03();
    pusher.ping_v03();
    pusher.send_text(&v03_push("p1", &events(1, 1, "P")));
    // The socket ends without an answer (no close frame: the thread
    // unwound and the stream was shut down).
    assert_eq!(pusher.until_closed(), Vec::<serde_json::Value>::new());
    assert_logged_once(&srv);
    assert_eq!(watcher.recv_within(QUIET), None, "nothing was stored");
    assert!(log.rows("boom").is_empty());
    // The store's other socket still works, and the store takes pushes.
    watcher.ping_v03();
    watcher.send_text(&v03_push("w1", &events(1, 1, "W")));
    assert_eq!(watcher.recv()["_tag"], "WSMessage.PushAck");
    assert_eq!(seqs(&watcher.recv()["batch"]), vec![1]);
    assert_serving(&srv);
    assert_checked(&log);
    assert_eq!(log.rows("boom").len(), 1);
}

#[test]
fn a_panic_after_the_append_leaves_it_stored_and_broadcast_and_a_retry_is_acked() {
    let _w = watchdog("panic_after", Duration::from_secs(60));
    let log = EventLog::sqlite("panic_after");
    let srv = start(&log, "after-append");
    let mut watcher = Ws::v03(srv.addr, "boom");
    let mut pusher = Ws::v03(srv.addr, "boom");
    watcher.ping_v03();
    pusher.ping_v03();
    let batch = events(1, 2, "P");
    pusher.send_text(&v03_push("p1", &batch));
    // Stored, never acknowledged: the connection ends first.
    let got = pusher.until_closed();
    assert!(
        got.iter().all(|m| m["_tag"] != "WSMessage.PushAck"),
        "{got:?}"
    );
    assert_logged_once(&srv);
    // The other socket of the store got the broadcast (the store fans a
    // stored batch out even when the pusher's callback panics).
    let res = watcher.recv();
    assert_eq!(seqs(&res["batch"]), vec![1, 2]);
    assert_eq!(log.rows("boom").len(), 2);
    assert_checked(&log);
    // The client reconnects and pushes the same batch again: acknowledged
    // by the idempotent rule, nothing stored or broadcast twice.
    let mut retry = Ws::v03(srv.addr, "boom");
    retry.send_text(&v03_push("p1-again", &batch));
    assert_eq!(
        retry.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "p1-again"})
    );
    assert_eq!(watcher.recv_within(QUIET), None);
    assert_eq!(log.rows("boom").len(), 2);
    assert_serving(&srv);
    assert_checked(&log);
}

#[test]
fn a_panic_in_a_v04_http_push_ends_that_request_and_its_retry_is_acked() {
    use std::io::{Read, Write};
    let _w = watchdog("panic_http", Duration::from_secs(60));
    let log = EventLog::sqlite("panic_http");
    let srv = start(&log, "after-append");
    let path = v04_path("boom", TOKEN, "http");
    let body = v04_push("1", "SyncHttpRpc.Push", "boom", &events(1, 1, "H"), NONE);
    // The connection ends without a response.
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    assert_logged_once(&srv);
    assert_eq!(log.rows("boom").len(), 1);
    assert_checked(&log);
    // The client's retry is acknowledged (the idempotent rule), nothing stored twice.
    let (status, _, text) = http(srv.addr, "POST", &path, &[], &body);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"Success\""), "{text}");
    assert_eq!(log.rows("boom").len(), 1);
    assert_serving(&srv);
}
