//! 0.4 over WebSocket (`makeWsSync`): Effect-RPC envelopes, live pulls,
//! pushes, typed errors, Ack flow control, Interrupt, and robustness.
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const PULL: &str = "SyncWsRpc.Pull";
const PUSH: &str = "SyncWsRpc.Push";
const QUIET: Duration = Duration::from_millis(300);

fn pull(ws: &mut Ws, id: &str, store: &str, live: bool, cursor: &str) {
    ws.send_text(&v04_pull(id, PULL, store, Some(live), cursor));
}

fn push(ws: &mut Ws, id: &str, store: &str, batch: &str, backend_id: &str) {
    ws.send_text(&v04_push(id, PUSH, store, batch, backend_id));
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The single `PullResponse` of a `Chunk` for `id`.
fn chunk_value<'a>(m: &'a Value, id: &str) -> &'a Value {
    assert_eq!(m["_tag"], "Chunk", "{m}");
    assert_eq!(m["requestId"], id, "{m}");
    let values = m["values"].as_array().expect("values");
    assert_eq!(values.len(), 1, "{m}");
    &values[0]
}

/// The typed error of an `Exit` `Failure` `Fail` for `id`.
fn fail_error<'a>(m: &'a Value, id: &str) -> &'a Value {
    assert_eq!(m["_tag"], "Exit", "{m}");
    assert_eq!(m["requestId"], id, "{m}");
    assert_eq!(m["exit"]["_tag"], "Failure", "{m}");
    assert_eq!(m["exit"]["cause"]["_tag"], "Fail", "{m}");
    &m["exit"]["cause"]["error"]
}

/// The defect text of an `Exit` `Failure` `Die` for `id`.
fn die_defect(m: &Value, id: &str) -> String {
    assert_eq!(m["_tag"], "Exit", "{m}");
    assert_eq!(m["requestId"], id, "{m}");
    assert_eq!(m["exit"]["_tag"], "Failure", "{m}");
    assert_eq!(m["exit"]["cause"]["_tag"], "Die", "{m}");
    m["exit"]["cause"]["defect"]
        .as_str()
        .unwrap_or_else(|| panic!("defect is a string: {m}"))
        .to_string()
}

/// Starts a live pull `id` on an empty store and returns the backend id
/// from its one empty chunk.
fn live_pull_empty(ws: &mut Ws, id: &str, store: &str) -> String {
    pull(ws, id, store, true, NONE);
    let m = ws.recv();
    let v = chunk_value(&m, id);
    assert_eq!(v["batch"], json!([]), "{m}");
    assert_eq!(v["pageInfo"], json!({"_tag": "NoMore"}), "{m}");
    v["backendId"].as_str().expect("backendId").to_string()
}

/// Pushes events 1..=n into `store` from a socket that has no pull.
fn fill(srv: &TestServer, store: &str, n: i64) {
    let mut w = Ws::v04(srv.addr, store);
    let mut next = 1;
    while next <= n {
        let k = (n - next + 1).min(50);
        let id = format!("fill{next}");
        push(&mut w, &id, store, &events(next, k, "F"), NONE);
        assert_eq!(w.recv(), push_ok(&id));
        next += k;
    }
}

fn db_backend_id(srv: &TestServer, store: &str) -> String {
    srv.db.backend_id(store)
}

#[test]
fn live_pull_on_an_empty_store_gets_one_empty_nomore_chunk() {
    let _w = watchdog("empty_live_pull", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_empty");
    let mut a = Ws::v04(srv.addr, "s");
    pull(&mut a, "0", "s", true, NONE);
    let m = a.recv();
    let bid = db_backend_id(&srv, "s");
    assert!(!bid.is_empty());
    assert_eq!(
        m,
        json!({"_tag": "Chunk", "requestId": "0", "values": [
            {"batch": [], "pageInfo": {"_tag": "NoMore"}, "backendId": bid}
        ]})
    );
    // A live pull stays open: no Exit.
    assert_eq!(a.recv_within(QUIET), None);
}

#[test]
fn push_is_acked_and_reaches_the_live_pulls_of_every_socket_of_the_store() {
    let _w = watchdog("push_fanout", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_push");
    let mut a = Ws::v04(srv.addr, "s");
    let mut b = Ws::v04(srv.addr, "s");
    let mut other = Ws::v04(srv.addr, "t");
    let bid = live_pull_empty(&mut a, "0", "s");
    assert_eq!(live_pull_empty(&mut b, "0", "s"), bid);
    live_pull_empty(&mut other, "0", "t");

    push(&mut a, "1", "s", &events(1, 3, "A"), NONE);
    assert_eq!(a.recv(), push_ok("1"));
    let from_a = a.recv_text();
    let from_b = b.recv_text();
    // Same pull id on both sockets: the frames are identical to the byte.
    assert_eq!(from_a, from_b);
    for i in 1..=3 {
        let expected = format!(r#""args":{},"seqNum":{i},"#, args_text(i, "A"));
        assert!(from_a.contains(&expected), "{expected} not in {from_a}");
    }
    let m = parse(&from_a);
    let v = chunk_value(&m, "0");
    assert_eq!(seqs(&v["batch"]), vec![1, 2, 3]);
    assert_eq!(v["pageInfo"], json!({"_tag": "NoMore"}));
    assert_eq!(v["backendId"], bid);
    let item = &v["batch"][0];
    assert_eq!(
        item["eventEncoded"],
        json!({"name": "v1.TodoCreated", "args": {"text": "todo 1", "id": "A-1", "nested": {"zeta": 1, "alpha": [2, {"b": 1, "a": 0}]}}, "seqNum": 1, "parentSeqNum": 0, "clientId": "A", "sessionId": "s"})
    );
    assert_eq!(item["metadata"]["_tag"], "Some");
    assert_eq!(
        item["metadata"]["value"]["_tag"],
        "SyncMessage.SyncMetadata"
    );
    let created = item["metadata"]["value"]["createdAt"].as_str().unwrap();
    assert!(
        created.len() == 24 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    // Another store hears nothing.
    assert_eq!(other.recv_within(QUIET), None);

    // A push with the right backend id from the other socket.
    push(&mut b, "2", "s", &events(4, 1, "B"), &some_str(&bid));
    assert_eq!(b.recv(), push_ok("2"));
    for ws in [&mut a, &mut b] {
        let m = ws.recv();
        assert_eq!(seqs(&chunk_value(&m, "0")["batch"]), vec![4]);
        assert_eq!(ws.recv_within(QUIET), None, "exactly one chunk per push");
    }
    assert_eq!(srv.db.event_rows("s"), 4);
}

#[test]
fn stale_or_future_parent_is_server_ahead_error() {
    let _w = watchdog("server_ahead", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_ahead");
    let mut a = Ws::v04(srv.addr, "s");
    live_pull_empty(&mut a, "0", "s");
    push(&mut a, "1", "s", &events(1, 2, "A"), NONE);
    assert_eq!(a.recv(), push_ok("1"));
    assert_eq!(seqs(&chunk_value(&a.recv(), "0")["batch"]), vec![1, 2]);

    push(&mut a, "2", "s", &events(1, 1, "B"), NONE);
    assert_eq!(
        *fail_error(&a.recv(), "2"),
        json!({"_tag": "ServerAheadError", "minimumExpectedNum": 2, "providedNum": 0})
    );
    push(&mut a, "3", "s", &events(6, 1, "B"), NONE);
    assert_eq!(
        *fail_error(&a.recv(), "3"),
        json!({"_tag": "ServerAheadError", "minimumExpectedNum": 2, "providedNum": 5})
    );
    // Nothing was broadcast or stored for the refused pushes.
    assert_eq!(a.recv_within(QUIET), None);
    assert_eq!(srv.db.event_rows("s"), 2);
}

#[test]
fn push_with_a_foreign_backend_id_is_backend_id_mismatch() {
    let _w = watchdog("push_mismatch", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_push_bid");
    let mut a = Ws::v04(srv.addr, "s");
    let bid = live_pull_empty(&mut a, "0", "s");
    push(
        &mut a,
        "1",
        "s",
        &events(1, 1, "A"),
        &some_str("not-the-id"),
    );
    assert_eq!(
        *fail_error(&a.recv(), "1"),
        json!({"_tag": "BackendIdMismatchError", "expected": bid, "received": "not-the-id"})
    );
    assert_eq!(a.recv_within(QUIET), None);
    assert_eq!(srv.db.event_rows("s"), 0);
}

#[test]
fn pull_with_a_foreign_backend_id_fails_and_does_not_subscribe() {
    let _w = watchdog("pull_mismatch", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_pull_bid");
    let mut a = Ws::v04(srv.addr, "s");
    let bid = db_backend_id_after_open(&srv, &mut a, "s");
    for (id, live) in [("live", true), ("once", false)] {
        pull(&mut a, id, "s", live, &some_cursor("stale-id", 0));
        assert_eq!(
            *fail_error(&a.recv(), id),
            json!({"_tag": "BackendIdMismatchError", "expected": bid, "received": "stale-id"})
        );
    }
    // The failed live pull was not registered: a push only answers the pusher.
    push(&mut a, "p", "s", &events(1, 1, "A"), NONE);
    assert_eq!(a.recv(), push_ok("p"));
    assert_eq!(a.recv_within(QUIET), None);
}

/// The store's backend id, read after `ws` opened it (the store row exists
/// once a socket is attached).
fn db_backend_id_after_open(srv: &TestServer, ws: &mut Ws, store: &str) -> String {
    ws.ping_v04();
    db_backend_id(srv, store)
}

#[test]
fn pull_with_a_cursor_gets_only_newer_events() {
    let _w = watchdog("pull_cursor", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_cursor");
    fill(&srv, "s", 10);
    let bid = db_backend_id(&srv, "s");
    let mut a = Ws::v04(srv.addr, "s");
    pull(&mut a, "7", "s", false, &some_cursor(&bid, 7));
    let m = a.recv();
    let v = chunk_value(&m, "7");
    assert_eq!(seqs(&v["batch"]), vec![8, 9, 10]);
    assert_eq!(v["pageInfo"], json!({"_tag": "NoMore"}));
    assert_eq!(v["backendId"], bid);
    assert_eq!(
        a.recv_text(),
        r#"{"_tag":"Exit","requestId":"7","exit":{"_tag":"Success"}}"#
    );

    // Live from the head: one empty chunk, then only what is pushed later.
    pull(&mut a, "live", "s", true, &some_cursor(&bid, 10));
    let m = a.recv();
    let v = chunk_value(&m, "live");
    assert_eq!(
        (v["batch"].clone(), v["pageInfo"].clone()),
        (json!([]), json!({"_tag": "NoMore"}))
    );
    let mut w = Ws::v04(srv.addr, "s");
    push(&mut w, "p", "s", &events(11, 2, "W"), &some_str(&bid));
    assert_eq!(w.recv(), push_ok("p"));
    assert_eq!(seqs(&chunk_value(&a.recv(), "live")["batch"]), vec![11, 12]);
    assert_eq!(a.recv_within(QUIET), None);
}

#[test]
fn backlog_of_250_comes_in_pages_of_100_100_50() {
    let _w = watchdog("pages", Duration::from_secs(60));
    let srv = TestServer::start("v04ws_pages");
    fill(&srv, "s", 250);
    let mut a = Ws::v04(srv.addr, "s");
    let mut seen = Vec::new();
    for (live, id) in [(true, "L"), (false, "N")] {
        pull(&mut a, id, "s", live, NONE);
        let mut got = Vec::new();
        for info in [
            json!({"_tag": "MoreKnown", "remaining": 150}),
            json!({"_tag": "MoreKnown", "remaining": 50}),
            json!({"_tag": "NoMore"}),
        ] {
            let m = a.recv();
            let v = chunk_value(&m, id);
            assert_eq!(v["pageInfo"], info, "{id}");
            got.extend(seqs(&v["batch"]));
            a.send(json!({"_tag": "Ack", "requestId": id}));
        }
        assert_eq!(got, (1..=250).collect::<Vec<_>>(), "{id}");
        seen.push(got.len());
    }
    // The non-live pull ends; the live one does not.
    assert_eq!(
        a.recv_text(),
        r#"{"_tag":"Exit","requestId":"N","exit":{"_tag":"Success"}}"#
    );
    assert_eq!(a.recv_within(QUIET), None);
    // And the live one then gets new events only.
    let mut w = Ws::v04(srv.addr, "s");
    push(&mut w, "p", "s", &events(251, 1, "W"), NONE);
    assert_eq!(w.recv(), push_ok("p"));
    assert_eq!(seqs(&chunk_value(&a.recv(), "L")["batch"]), vec![251]);
    assert_eq!(a.recv_within(QUIET), None);
    assert_eq!(seen, vec![250, 250]);
}

#[test]
fn ack_window_of_one_gates_each_backlog_chunk_and_holds_live_events() {
    let _w = watchdog("ack_gating", Duration::from_secs(60));
    let srv = TestServer::start_with("v04ws_ack", |c| c.limits.ack_window = 1);
    fill(&srv, "s", 250);
    let mut a = Ws::v04(srv.addr, "s");
    pull(&mut a, "42", "s", true, NONE);
    let first = a.recv();
    assert_eq!(
        chunk_value(&first, "42")["pageInfo"],
        json!({"_tag": "MoreKnown", "remaining": 150})
    );
    assert_eq!(
        a.recv_within(QUIET),
        None,
        "second chunk sent before an Ack"
    );

    // A push while the backlog is gated is held for this pull.
    let mut w = Ws::v04(srv.addr, "s");
    push(&mut w, "p", "s", &events(251, 1, "W"), NONE);
    assert_eq!(w.recv(), push_ok("p"));
    assert_eq!(
        a.recv_within(QUIET),
        None,
        "live chunk overtook the backlog"
    );

    // An Ack for another id releases nothing.
    a.send(json!({"_tag": "Ack", "requestId": "41"}));
    assert_eq!(a.recv_within(QUIET), None);

    a.send(json!({"_tag": "Ack", "requestId": "42"}));
    let second = a.recv();
    let v = chunk_value(&second, "42");
    assert_eq!(v["pageInfo"], json!({"_tag": "MoreKnown", "remaining": 50}));
    assert_eq!(seqs(&v["batch"]), (101..=200).collect::<Vec<_>>());
    assert_eq!(a.recv_within(QUIET), None, "third chunk sent before an Ack");

    a.send(json!({"_tag": "Ack", "requestId": "42"}));
    let third = a.recv();
    let v = chunk_value(&third, "42");
    assert_eq!(v["pageInfo"], json!({"_tag": "NoMore"}));
    assert_eq!(seqs(&v["batch"]), (201..=250).collect::<Vec<_>>());
    // Then the held live event, once.
    let live = a.recv();
    let v = chunk_value(&live, "42");
    assert_eq!(seqs(&v["batch"]), vec![251]);
    assert_eq!(v["pageInfo"], json!({"_tag": "NoMore"}));
    assert_eq!(a.recv_within(QUIET), None);
}

#[test]
fn two_live_pulls_on_one_socket_each_get_the_live_chunk_under_their_own_id() {
    let _w = watchdog("two_pulls", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_two");
    let mut a = Ws::v04(srv.addr, "s");
    let big = "18446744073709551615";
    let bid = live_pull_empty(&mut a, big, "s");
    assert_eq!(live_pull_empty(&mut a, "abc", "s"), bid);
    push(&mut a, "p", "s", &events(1, 2, "A"), NONE);
    // The push's Exit and one chunk per pull (the chunks' order is free).
    let mut got: Vec<Value> = (0..3).map(|_| a.recv()).collect();
    assert_eq!(got.remove(0), push_ok("p"));
    got.sort_by_key(|m| m["requestId"].as_str().unwrap().to_string());
    assert_eq!(seqs(&chunk_value(&got[0], big)["batch"]), vec![1, 2]);
    assert_eq!(seqs(&chunk_value(&got[1], "abc")["batch"]), vec![1, 2]);
    assert_eq!(got[0]["values"], got[1]["values"]);
    assert_eq!(a.recv_within(QUIET), None);
}

#[test]
fn interrupt_ends_one_live_pull_and_leaves_the_other() {
    let _w = watchdog("interrupt", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_interrupt");
    let mut a = Ws::v04(srv.addr, "s");
    live_pull_empty(&mut a, "1", "s");
    live_pull_empty(&mut a, "2", "s");
    a.send(json!({"_tag": "Interrupt", "requestId": "1"}));
    let m = a.recv();
    assert_eq!(m["_tag"], "Exit", "{m}");
    assert_eq!(m["requestId"], "1", "{m}");
    assert_eq!(m["exit"]["_tag"], "Failure", "{m}");
    assert_eq!(m["exit"]["cause"]["_tag"], "Interrupt", "{m}");

    // An Interrupt for an unknown (or already ended) id gets no answer.
    a.send(json!({"_tag": "Interrupt", "requestId": "1"}));
    a.send(json!({"_tag": "Interrupt", "requestId": "nope"}));
    assert_eq!(a.recv_within(QUIET), None);

    let mut w = Ws::v04(srv.addr, "s");
    push(&mut w, "p", "s", &events(1, 1, "W"), NONE);
    assert_eq!(w.recv(), push_ok("p"));
    assert_eq!(seqs(&chunk_value(&a.recv(), "2")["batch"]), vec![1]);
    assert_eq!(
        a.recv_within(QUIET),
        None,
        "the interrupted pull still gets chunks"
    );
}

#[test]
fn unknown_request_tag_dies_for_that_id_and_the_socket_keeps_working() {
    let _w = watchdog("unknown_tag", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_unknown");
    let mut a = Ws::v04(srv.addr, "s");
    a.send_text(
        r#"{"_tag":"Request","id":"u1","tag":"SyncWsRpc.Nope","payload":{"storeId":"s"},"headers":[]}"#,
    );
    let defect = die_defect(&a.recv(), "u1");
    assert!(defect.contains("SyncWsRpc.Nope"), "{defect}");
    // An HTTP method on the WebSocket is unknown there too.
    a.send_text(
        r#"{"_tag":"Request","id":"u2","tag":"SyncHttpRpc.Ping","payload":{"storeId":"s"},"headers":[]}"#,
    );
    die_defect(&a.recv(), "u2");
    // No connection-wide Defect, the socket still works.
    live_pull_empty(&mut a, "0", "s");
    push(&mut a, "p", "s", &events(1, 1, "A"), NONE);
    assert_eq!(a.recv(), push_ok("p"));
    assert_eq!(seqs(&chunk_value(&a.recv(), "0")["batch"]), vec![1]);
}

#[test]
fn malformed_payloads_die_for_their_request_only() {
    let _w = watchdog("malformed", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_malformed");
    let mut a = Ws::v04(srv.addr, "s");
    let token = format!(r#""payload":{{"authToken":"{TOKEN}"}}"#);
    let cases = [
        // cursor null (an Option must be {_tag: None})
        (
            format!(
                r#"{{"_tag":"Request","id":"c1","tag":"{PULL}","payload":{{"storeId":"s",{token},"live":true,"cursor":null}},"headers":[]}}"#
            ),
            "invalid type: null",
        ),
        // cursor missing
        (
            format!(
                r#"{{"_tag":"Request","id":"c2","tag":"{PULL}","payload":{{"storeId":"s",{token},"live":true}},"headers":[]}}"#
            ),
            "missing field `cursor`",
        ),
        // live missing on the WebSocket method
        (
            format!(
                r#"{{"_tag":"Request","id":"c3","tag":"{PULL}","payload":{{"storeId":"s",{token},"cursor":{NONE}}},"headers":[]}}"#
            ),
            "`live` is required",
        ),
        // a bare cursor value instead of an Option
        (
            format!(
                r#"{{"_tag":"Request","id":"c4","tag":"{PULL}","payload":{{"storeId":"s",{token},"live":true,"cursor":{{"backendId":"x","eventSequenceNumber":1}}}},"headers":[]}}"#
            ),
            "missing field `_tag`",
        ),
        // push batch that is not an array
        (
            format!(
                r#"{{"_tag":"Request","id":"c5","tag":"{PUSH}","payload":{{"storeId":"s",{token},"batch":{{}},"backendId":{NONE}}},"headers":[]}}"#
            ),
            "invalid type: map, expected a sequence",
        ),
        // push event with a fractional seqNum
        (
            format!(
                r#"{{"_tag":"Request","id":"c6","tag":"{PUSH}","payload":{{"storeId":"s",{token},"batch":[{{"name":"x","args":{{}},"seqNum":1.5,"parentSeqNum":0,"clientId":"c","sessionId":"s"}}],"backendId":{NONE}}},"headers":[]}}"#
            ),
            "invalid type: floating point `1.5`, expected i64",
        ),
        // payload null (issue 13; it was ignored: the client waited forever)
        (
            format!(r#"{{"_tag":"Request","id":"c7","tag":"{PULL}","payload":null,"headers":[]}}"#),
            "invalid type: null",
        ),
        // no payload at all (issue 13, likewise)
        (
            format!(r#"{{"_tag":"Request","id":"c8","tag":"{PUSH}","headers":[]}}"#),
            "missing `payload`",
        ),
    ];
    // Each defect says what is wrong with the payload (the Effect client
    // shows it as the request's failure): the decoder's own message.
    for (i, (frame, what)) in cases.iter().enumerate() {
        a.send_text(frame);
        let id = format!("c{}", i + 1);
        let defect = die_defect(&a.recv(), &id);
        assert!(
            defect.starts_with("invalid request payload: ") && defect.contains(what),
            "{id}: `{what}` not in {defect:?}"
        );
    }
    assert_eq!(srv.db.event_rows("s"), 0);
    assert_eq!(a.recv_within(QUIET), None);
}

#[test]
fn request_for_another_store_than_the_url_dies() {
    let _w = watchdog("store_mismatch", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_store");
    let mut a = Ws::v04(srv.addr, "s");
    pull(&mut a, "x", "other", true, NONE);
    let defect = die_defect(&a.recv(), "x");
    assert!(defect.contains("other"), "{defect}");
    push(&mut a, "y", "other", &events(1, 1, "A"), NONE);
    die_defect(&a.recv(), "y");
    assert_eq!(a.recv_within(QUIET), None);
    assert_eq!(srv.db.all_event_rows(), 0);
    assert_eq!(
        srv.db
            .count("SELECT count(*) FROM stores WHERE store_id = 'other'"),
        0,
        "the foreign store was created"
    );
    // The URL's store still works on this socket.
    live_pull_empty(&mut a, "ok", "s");
}

#[test]
fn ping_pong_and_garbage_is_ignored() {
    let _w = watchdog("ping_garbage", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_garbage");
    let mut a = Ws::v04(srv.addr, "s");
    a.send_text(r#"{"_tag":"Ping"}"#);
    assert_eq!(a.recv_text(), r#"{"_tag":"Pong"}"#);
    for garbage in [
        "not json",
        "",
        "[1,2]",
        r#"[{"_tag":"Ping"}]"#,
        r#"[{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","payload":{"storeId":"s","live":true,"cursor":{"_tag":"None"}},"headers":[]}]"#,
        r#"{"_tag":"Nope"}"#,
        r#"{"no":"tag"}"#,
        r#"{"_tag":"Ack"}"#,
        r#"{"_tag":"Request","tag":"SyncWsRpc.Pull"}"#,
        r#"{"_tag":"Eof"}"#,
        r#"{"_tag":"WSMessage.Ping","requestId":"ping"}"#,
    ] {
        a.send_text(garbage);
    }
    assert_eq!(a.recv_within(QUIET), None);
    // Extra fields are ignored; a binary UTF-8 frame is accepted on 0.4.
    a.send_text(r#"{"_tag":"Ping","extra":1}"#);
    assert_eq!(a.recv_text(), r#"{"_tag":"Pong"}"#);
    a.ws.send(tungstenite::Message::binary(
        b"{\"_tag\":\"Ping\"}".to_vec(),
    ))
    .unwrap();
    assert_eq!(a.recv_text(), r#"{"_tag":"Pong"}"#);
    // Request envelopes with the extra tracing fields work.
    a.send_text(&format!(
        r#"{{"_tag":"Request","id":"9","tag":"{PULL}","payload":{{"storeId":"s","live":false,"cursor":{NONE}}},"traceId":"t","spanId":"s","sampled":true,"headers":[]}}"#
    ));
    assert_eq!(chunk_value(&a.recv(), "9")["batch"], json!([]));
    assert_eq!(
        a.recv_text(),
        r#"{"_tag":"Exit","requestId":"9","exit":{"_tag":"Success"}}"#
    );
}

#[test]
fn request_ids_are_opaque_strings() {
    let _w = watchdog("opaque_ids", Duration::from_secs(30));
    let srv = TestServer::start("v04ws_ids");
    let mut a = Ws::v04(srv.addr, "s");
    for (i, id) in ["18446744073709551615", "abc", "a \"quoted\" \\ id", "ü🙂"]
        .iter()
        .enumerate()
    {
        let i = i as i64 + 1;
        let frame = v04_push("X", PUSH, "s", &events(i, 1, "A"), NONE).replacen(
            r#""id":"X""#,
            &format!(r#""id":{}"#, Value::from(*id)),
            1,
        );
        a.send_text(&frame);
        assert_eq!(a.recv(), push_ok(id), "{id}");
    }
    // An id beyond u64 and with leading zeros is kept as its text.
    pull(
        &mut a,
        "000123456789012345678901234567890",
        "s",
        false,
        NONE,
    );
    let m = a.recv();
    assert_eq!(
        seqs(&chunk_value(&m, "000123456789012345678901234567890")["batch"]),
        vec![1, 2, 3, 4]
    );
    assert_eq!(m["requestId"], "000123456789012345678901234567890");
}
