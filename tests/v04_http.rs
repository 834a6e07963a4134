//! 0.4 over HTTP (`makeHttpSync`): one RPC `Request` per POST, answered
//! with the JSON array `[Chunk…, Exit]`.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const PULL: &str = "SyncHttpRpc.Pull";
const PUSH: &str = "SyncHttpRpc.Push";

/// POSTs `body` as the client does; returns status, headers and body text.
fn post(addr: SocketAddr, store: &str, body: &str) -> (u16, Vec<(String, String)>, String) {
    http(
        addr,
        "POST",
        &v04_path(store, TOKEN, "http"),
        &[
            ("Content-Type", "application/json"),
            ("x-livestore-store-id", store),
            ("Origin", "https://app.example"),
        ],
        body,
    )
}

/// POSTs an RPC request and returns the raw body of its `200` JSON answer.
fn rpc_text(addr: SocketAddr, store: &str, body: &str) -> String {
    let (status, headers, text) = post(addr, store, body);
    assert_eq!(status, 200, "{text}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    text
}

/// Like [`rpc_text`], parsed: the array of server messages.
fn rpc(addr: SocketAddr, store: &str, body: &str) -> Vec<Value> {
    let text = rpc_text(addr, store, body);
    match serde_json::from_str(&text) {
        Ok(Value::Array(items)) => items,
        _ => panic!("not a JSON array: {text}"),
    }
}

fn ping_body(id: &str, store: &str) -> String {
    format!(
        r#"{{"_tag":"Request","id":"{id}","tag":"SyncHttpRpc.Ping","payload":{{"storeId":{},"payload":{{"authToken":"{TOKEN}"}}}},"headers":[]}}"#,
        Value::from(store)
    )
}

fn pull_body(id: &str, store: &str, cursor: &str) -> String {
    v04_pull(id, PULL, store, None, cursor)
}

fn push_body(id: &str, store: &str, batch: &str, backend_id: &str) -> String {
    v04_push(id, PUSH, store, batch, backend_id)
}

/// The whole HTTP answer to an accepted push.
fn push_answer(id: &str) -> String {
    format!("[{}]", push_ok_text(id))
}

fn stream_done(id: &str) -> Value {
    json!({"_tag": "Exit", "requestId": id, "exit": {"_tag": "Success"}})
}

fn fail_error(items: &[Value], id: &str) -> Value {
    assert_eq!(items.len(), 1, "{items:?}");
    let m = &items[0];
    assert_eq!(m["_tag"], "Exit", "{m}");
    assert_eq!(m["requestId"], id, "{m}");
    assert_eq!(m["exit"]["_tag"], "Failure", "{m}");
    assert_eq!(m["exit"]["cause"]["_tag"], "Fail", "{m}");
    m["exit"]["cause"]["error"].clone()
}

/// The `PullResponse`s of a pull answer, checking the trailing `Exit`.
fn pull_responses(items: &[Value], id: &str) -> Vec<Value> {
    let (last, chunks) = items.split_last().expect("non-empty answer");
    assert_eq!(*last, stream_done(id), "{items:?}");
    chunks
        .iter()
        .flat_map(|c| {
            assert_eq!(c["_tag"], "Chunk", "{c}");
            assert_eq!(c["requestId"], id, "{c}");
            c["values"].as_array().expect("values").clone()
        })
        .collect()
}

fn backend_id_of(addr: SocketAddr, store: &str) -> String {
    let items = rpc(addr, store, &pull_body("bid", store, NONE));
    let responses = pull_responses(&items, "bid");
    responses[0]["backendId"]
        .as_str()
        .expect("backendId")
        .to_string()
}

#[test]
fn ping_answers_sync_message_pong() {
    let _w = watchdog("http_ping", Duration::from_secs(30));
    let srv = TestServer::start("v04http_ping");
    let (status, headers, body) = post(srv.addr, "s", &ping_body("0", "s"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(
        body,
        r#"[{"_tag":"Exit","requestId":"0","exit":{"_tag":"Success","value":{"_tag":"SyncMessage.Pong"}}}]"#
    );
    // Every POST answer carries the CORS header.
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
}

#[test]
fn push_then_pull_returns_the_events_byte_for_byte() {
    let _w = watchdog("http_push_pull", Duration::from_secs(30));
    let srv = TestServer::start("v04http_push_pull");
    // Empty store: one empty NoMore page, then the Exit.
    let items = rpc(srv.addr, "s", &pull_body("0", "s", NONE));
    let responses = pull_responses(&items, "0");
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0]["batch"], json!([]));
    assert_eq!(responses[0]["pageInfo"], json!({"_tag": "NoMore"}));
    let bid = responses[0]["backendId"].as_str().unwrap().to_string();

    let (status, headers, body) = post(
        srv.addr,
        "s",
        &push_body("1", "s", &events(1, 3, "A"), NONE),
    );
    assert_eq!((status, body), (200, push_answer("1")));
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));

    let text = rpc_text(srv.addr, "s", &pull_body("2", "s", NONE));
    for i in 1..=3 {
        let expected = format!(r#""args":{},"seqNum":{i},"#, args_text(i, "A"));
        assert!(text.contains(&expected), "{expected} not in {text}");
    }
    let items: Vec<Value> = serde_json::from_str(&text).unwrap();
    let responses = pull_responses(&items, "2");
    assert_eq!(responses.len(), 1);
    assert_eq!(seqs(&responses[0]["batch"]), vec![1, 2, 3]);
    assert_eq!(responses[0]["pageInfo"], json!({"_tag": "NoMore"}));
    assert_eq!(responses[0]["backendId"], bid);
    assert_eq!(
        responses[0]["batch"][2]["metadata"]["value"]["_tag"],
        "SyncMessage.SyncMetadata"
    );
    // The trailing Exit of a pull is exactly `{"_tag":"Success"}`.
    assert!(
        text.ends_with(r#",{"_tag":"Exit","requestId":"2","exit":{"_tag":"Success"}}]"#),
        "{text}"
    );
}

#[test]
fn pull_with_a_cursor_returns_only_newer_events_in_pages() {
    let _w = watchdog("http_cursor", Duration::from_secs(30));
    let srv = TestServer::start("v04http_cursor");
    let bid = backend_id_of(srv.addr, "s");
    for k in 0..5 {
        let body = push_body(
            &format!("p{k}"),
            "s",
            &events(1 + k * 50, 50, "A"),
            &some_str(&bid),
        );
        assert_eq!(
            rpc_text(srv.addr, "s", &body),
            push_answer(&format!("p{k}"))
        );
    }
    let items = rpc(srv.addr, "s", &pull_body("c", "s", &some_cursor(&bid, 247)));
    let responses = pull_responses(&items, "c");
    assert_eq!(responses.len(), 1);
    assert_eq!(seqs(&responses[0]["batch"]), vec![248, 249, 250]);
    assert_eq!(responses[0]["pageInfo"], json!({"_tag": "NoMore"}));

    // The whole backlog in one answer, in pages of 100 with exact remaining.
    let items = rpc(srv.addr, "s", &pull_body("all", "s", &some_cursor(&bid, 0)));
    let responses = pull_responses(&items, "all");
    let infos: Vec<&Value> = responses.iter().map(|r| &r["pageInfo"]).collect();
    assert_eq!(
        infos,
        vec![
            &json!({"_tag": "MoreKnown", "remaining": 150}),
            &json!({"_tag": "MoreKnown", "remaining": 50}),
            &json!({"_tag": "NoMore"}),
        ]
    );
    let all: Vec<i64> = responses.iter().flat_map(|r| seqs(&r["batch"])).collect();
    assert_eq!(all, (1..=250).collect::<Vec<_>>());

    // At the head: one empty page.
    let items = rpc(srv.addr, "s", &pull_body("h", "s", &some_cursor(&bid, 250)));
    let responses = pull_responses(&items, "h");
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0]["batch"], json!([]));
    assert_eq!(responses[0]["pageInfo"], json!({"_tag": "NoMore"}));
}

#[test]
fn foreign_backend_id_is_backend_id_mismatch_for_pull_and_push() {
    let _w = watchdog("http_mismatch", Duration::from_secs(30));
    let srv = TestServer::start("v04http_mismatch");
    let bid = backend_id_of(srv.addr, "s");
    let items = rpc(srv.addr, "s", &pull_body("1", "s", &some_cursor("old", 3)));
    assert_eq!(
        fail_error(&items, "1"),
        json!({"_tag": "BackendIdMismatchError", "expected": bid, "received": "old"})
    );
    let items = rpc(
        srv.addr,
        "s",
        &push_body("2", "s", &events(1, 1, "A"), &some_str("old")),
    );
    assert_eq!(
        fail_error(&items, "2"),
        json!({"_tag": "BackendIdMismatchError", "expected": bid, "received": "old"})
    );
    assert_eq!(srv.db.all_event_rows(), 0);
}

#[test]
fn stale_push_is_server_ahead_error() {
    let _w = watchdog("http_stale", Duration::from_secs(30));
    let srv = TestServer::start("v04http_stale");
    assert_eq!(
        rpc_text(
            srv.addr,
            "s",
            &push_body("1", "s", &events(1, 4, "A"), NONE)
        ),
        push_answer("1")
    );
    let items = rpc(
        srv.addr,
        "s",
        &push_body("2", "s", &events(3, 1, "B"), NONE),
    );
    assert_eq!(
        fail_error(&items, "2"),
        json!({"_tag": "ServerAheadError", "minimumExpectedNum": 4, "providedNum": 2})
    );
    // An empty push is acknowledged whatever the head.
    assert_eq!(
        rpc_text(srv.addr, "s", &push_body("3", "s", "[]", NONE)),
        push_answer("3")
    );
}

#[test]
fn a_body_that_is_not_one_rpc_request_is_400() {
    let _w = watchdog("http_400", Duration::from_secs(30));
    let srv = TestServer::start("v04http_400");
    let request = ping_body("0", "s");
    for body in [
        String::new(),
        "not json".to_string(),
        "[]".to_string(),
        format!("[{request}]"),
        r#"{"_tag":"Ping"}"#.to_string(),
        r#"{"_tag":"Ack","requestId":"0"}"#.to_string(),
        r#"{"_tag":"Request","id":"0"}"#.to_string(),
    ] {
        let (status, headers, text) = post(srv.addr, "s", &body);
        assert_eq!(
            (status, text.as_str()),
            (400, "The body must be one JSON RPC Request"),
            "{body}"
        );
        assert!(is_plain_text(&headers), "{headers:?}");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    }
    // A well-formed request with an unknown method or another store dies per request.
    let unknown = request.replace("SyncHttpRpc.Ping", "SyncHttpRpc.Nope");
    let items = rpc(srv.addr, "s", &unknown);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["exit"]["cause"]["_tag"], "Die", "{items:?}");
    let items = rpc(srv.addr, "s", &ping_body("x", "other"));
    assert_eq!(items[0]["requestId"], "x");
    assert_eq!(items[0]["exit"]["cause"]["_tag"], "Die", "{items:?}");
    let items = rpc(srv.addr, "s", &pull_body("y", "s", "null"));
    assert_eq!(items[0]["exit"]["cause"]["_tag"], "Die", "{items:?}");
    // A request whose payload is null or missing dies per request too (issue
    // 13; it was a 400, which the client does not read as the request's end).
    for (body, what) in [
        (
            r#"{"_tag":"Request","id":"n","tag":"SyncHttpRpc.Push","payload":null,"headers":[]}"#,
            "invalid type: null",
        ),
        (
            r#"{"_tag":"Request","id":"m","tag":"SyncHttpRpc.Pull","headers":[]}"#,
            "missing `payload`",
        ),
    ] {
        let items = rpc(srv.addr, "s", body);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0]["exit"]["cause"]["_tag"], "Die", "{items:?}");
        let defect = items[0]["exit"]["cause"]["defect"].to_string();
        assert!(defect.contains(what), "{what} not in {items:?}");
    }
    assert_eq!(srv.db.event_rows("s"), 0);
}

/// Reads one HTTP response (head and `Content-Length` body) from `s`,
/// leaving the connection open.
fn read_response(s: &mut TcpStream) -> (u16, Vec<(String, String)>, String) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read response head");
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.push(byte[0]);
    }
    let (status, headers, _) = parse_response(&String::from_utf8(raw).unwrap());
    let len: usize = header(&headers, "content-length")
        .expect("content-length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read body");
    (status, headers, String::from_utf8(body).unwrap())
}

fn request_text(addr: SocketAddr, store: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        v04_path(store, TOKEN, "http"),
        body.len()
    )
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let _w = watchdog("http_keep_alive", Duration::from_secs(30));
    let srv = TestServer::start("v04http_keepalive");
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    s.write_all(
        request_text(
            srv.addr,
            "s",
            &push_body("1", "s", &events(1, 2, "A"), NONE),
            "",
        )
        .as_bytes(),
    )
    .unwrap();
    let (status, headers, body) = read_response(&mut s);
    assert_eq!((status, body), (200, push_answer("1")));
    assert_eq!(header(&headers, "connection"), Some("keep-alive"));

    s.write_all(request_text(srv.addr, "s", &ping_body("2", "s"), "").as_bytes())
        .unwrap();
    let (status, headers, body) = read_response(&mut s);
    assert_eq!(status, 200);
    assert!(body.contains(r#""requestId":"2""#), "{body}");
    assert_eq!(header(&headers, "connection"), Some("keep-alive"));

    // Two pipelined requests in one write, both answered in order.
    let two = format!(
        "{}{}",
        request_text(srv.addr, "s", &pull_body("3", "s", NONE), ""),
        request_text(srv.addr, "s", &ping_body("4", "s"), "")
    );
    s.write_all(two.as_bytes()).unwrap();
    let (_, _, body) = read_response(&mut s);
    let items: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(seqs(&pull_responses(&items, "3")[0]["batch"]), vec![1, 2]);
    let (_, _, body) = read_response(&mut s);
    assert!(body.contains(r#""requestId":"4""#), "{body}");

    // `Connection: close` ends it after the answer.
    s.write_all(
        request_text(srv.addr, "s", &ping_body("5", "s"), "Connection: close\r\n").as_bytes(),
    )
    .unwrap();
    let (status, headers, _) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "the server kept the connection"
    );
}

/// A server over an existing database, for restarts (a [`TestServer`] owns
/// its database and drops it with itself).
struct Instance {
    addr: SocketAddr,
    handle: livestore_sync::server::ShutdownHandle,
    thread: std::thread::JoinHandle<usize>,
}

impl Instance {
    fn start(db: &EventLog) -> Instance {
        let (addr, handle, thread) = serve(test_config(&db.url()));
        Instance {
            addr,
            handle,
            thread,
        }
    }

    fn stop(self) {
        self.handle.trigger();
        assert_eq!(self.thread.join().expect("server thread"), 0);
    }
}

#[test]
fn backend_id_is_stable_across_requests_and_restarts() {
    let _w = watchdog("http_restart", Duration::from_secs(60));
    let db = EventLog::from_env("v04http_restart");
    let first = Instance::start(&db);
    let bid = backend_id_of(first.addr, "s");
    assert_eq!(bid.len(), 21, "{bid}");
    assert_eq!(
        rpc_text(
            first.addr,
            "s",
            &push_body("1", "s", &events(1, 3, "A"), &some_str(&bid))
        ),
        push_answer("1")
    );
    assert_eq!(backend_id_of(first.addr, "s"), bid);
    let other = backend_id_of(first.addr, "t");
    assert_ne!(other, bid, "two stores share a backend id");
    first.stop();

    let second = Instance::start(&db);
    assert_eq!(backend_id_of(second.addr, "s"), bid);
    assert_eq!(backend_id_of(second.addr, "t"), other);
    // History and head survived: a cursor of the old incarnation still works.
    let items = rpc(
        second.addr,
        "s",
        &pull_body("p", "s", &some_cursor(&bid, 1)),
    );
    assert_eq!(seqs(&pull_responses(&items, "p")[0]["batch"]), vec![2, 3]);
    assert_eq!(
        rpc_text(
            second.addr,
            "s",
            &push_body("2", "s", &events(4, 1, "B"), &some_str(&bid))
        ),
        push_answer("2")
    );
    let items = rpc(
        second.addr,
        "s",
        &push_body("3", "s", &events(1, 1, "C"), NONE),
    );
    assert_eq!(
        fail_error(&items, "3"),
        json!({"_tag": "ServerAheadError", "minimumExpectedNum": 4, "providedNum": 0})
    );
    second.stop();
}
