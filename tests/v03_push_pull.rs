//! 0.3 push and pull over real sockets against a real PostgreSQL.
mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn push(ws: &mut Ws, id: &str, batch: &str) {
    ws.send_text(&v03_push(id, batch));
}

#[test]
fn push_is_acked_then_broadcast_to_every_socket_including_the_pusher() {
    let _w = watchdog("push_broadcast", Duration::from_secs(30));
    let srv = TestServer::start("v03_push");
    let mut a = Ws::v03(srv.addr, "s1");
    let mut b = Ws::v03(srv.addr, "s1");
    let mut other = Ws::v03(srv.addr, "s2");
    // Make sure both sockets are registered before the push.
    for ws in [&mut a, &mut b, &mut other] {
        ws.ping_v03();
    }
    push(&mut a, "p1", &events(1, 3, "A"));
    assert_eq!(
        a.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "p1"})
    );
    for ws in [&mut a, &mut b] {
        let res = ws.recv();
        assert_eq!(res["_tag"], "WSMessage.PullRes");
        assert_eq!(
            res["requestId"],
            json!({"context": "push", "requestId": "p1"})
        );
        assert_eq!(res["remaining"], 0);
        assert_eq!(seqs(&res["batch"]), vec![1, 2, 3]);
        assert_eq!(res["batch"][0]["metadata"]["_tag"], "Some");
    }
    // Another store's socket hears nothing.
    assert_eq!(other.recv_within(Duration::from_millis(300)), None);
}

#[test]
fn stale_parent_gets_an_error_and_no_broadcast() {
    let _w = watchdog("stale_parent", Duration::from_secs(30));
    let srv = TestServer::start("v03_stale");
    let mut a = Ws::v03(srv.addr, "s");
    a.push_v03_acked("p1", &events(1, 2, "A"));
    push(&mut a, "p2", &events(1, 1, "B"));
    assert_eq!(
        a.recv(),
        json!({"_tag": "WSMessage.Error", "requestId": "p2", "message": "Invalid parent event number. Received e0 but expected e2"})
    );
    // A broken chain inside the batch is refused whole.
    let broken = events(3, 2, "A").replace(r#""seqNum":4"#, r#""seqNum":9"#);
    push(&mut a, "p3", &broken);
    let e = a.recv();
    assert_eq!(
        (e["_tag"].as_str(), e["requestId"].as_str()),
        (Some("WSMessage.Error"), Some("p3"))
    );
    assert_eq!(
        a.recv_within(Duration::from_millis(300)),
        None,
        "no broadcast after a refused push"
    );
    assert_eq!(srv.db.all_event_rows(), 2);
}

#[test]
fn empty_batch_is_acked_without_broadcast() {
    let _w = watchdog("empty_batch", Duration::from_secs(30));
    let srv = TestServer::start("v03_empty");
    let mut a = Ws::v03(srv.addr, "s");
    push(&mut a, "e", "[]");
    assert_eq!(
        a.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "e"})
    );
    assert_eq!(a.recv_within(Duration::from_millis(300)), None);
}

#[test]
fn pull_pages_of_100_with_exact_remaining_and_args_byte_for_byte() {
    let _w = watchdog("pull_pages", Duration::from_secs(60));
    let srv = TestServer::start("v03_pages");
    let mut a = Ws::v03(srv.addr, "s");
    for k in 0..5 {
        a.push_v03_acked(&format!("p{k}"), &events(1 + k * 50, 50, "A"));
    }
    let mut b = Ws::v03(srv.addr, "s");
    b.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r1"}"#);
    let mut seen = Vec::new();
    for expected_remaining in [150, 50, 0] {
        let m = b.recv();
        assert_eq!(
            m["requestId"],
            json!({"context": "pull", "requestId": "r1"})
        );
        assert_eq!(m["remaining"], expected_remaining);
        seen.extend(seqs(&m["batch"]));
    }
    assert_eq!(seen, (1..=250).collect::<Vec<_>>());
    // Raw text check: the key order of args survives storage.
    b.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r2","cursor":248}"#);
    let raw = b.recv_text();
    assert!(
        raw.contains(&format!(r#""args":{},"seqNum":249"#, args_text(249, "A"))),
        "{raw}"
    );
    let stored = srv.db.rows("s")[6].args.clone();
    assert_eq!(stored.as_deref(), Some(args_text(7, "A").as_str()));
}

#[test]
fn empty_store_and_cursor_beyond_head_get_one_empty_page() {
    let _w = watchdog("empty_pull", Duration::from_secs(30));
    let srv = TestServer::start("v03_emptypull");
    let mut a = Ws::v03(srv.addr, "nothing here");
    a.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r"}"#);
    assert_eq!(
        a.recv(),
        json!({"_tag": "WSMessage.PullRes", "batch": [], "requestId": {"context": "pull", "requestId": "r"}, "remaining": 0})
    );
    a.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r2","cursor":2.5}"#);
    assert_eq!(a.recv()["remaining"], 0);
    assert_eq!(a.recv_within(Duration::from_millis(200)), None);
}

#[test]
fn undecodable_frames_are_ignored_and_the_socket_stays_open() {
    let _w = watchdog("garbage", Duration::from_secs(30));
    let srv = TestServer::start("v03_garbage");
    let mut a = Ws::v03(srv.addr, "s");
    a.send_text("not json");
    a.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r","cursor":null}"#);
    a.send_text(r#"{"_tag":"WSMessage.Unknown"}"#);
    a.ws.send(tungstenite::Message::binary(
        b"{\"_tag\":\"WSMessage.Ping\",\"requestId\":\"ping\"}".to_vec(),
    ))
    .unwrap();
    assert_eq!(a.recv_within(Duration::from_millis(300)), None);
    a.send_text(r#"{ "_tag": "WSMessage.Ping", "requestId": "ping" }"#);
    assert_eq!(
        a.recv(),
        json!({"_tag": "WSMessage.Pong", "requestId": "ping"})
    );
}

#[test]
fn store_ids_are_exact_strings() {
    let _w = watchdog("store_ids", Duration::from_secs(30));
    let srv = TestServer::start("v03_ids");
    // The reference's table names would make these two share one log.
    let mut a = Ws::v03(srv.addr, "a-b");
    let mut b = Ws::v03(srv.addr, "a_b");
    let mut c = Ws::v03(srv.addr, "ü x/1 🙂");
    for ws in [&mut a, &mut b, &mut c] {
        push(ws, "p", &events(1, 1, "X"));
        assert_eq!(
            ws.recv()["_tag"],
            "WSMessage.PushAck",
            "each store starts at head 0"
        );
    }
    let ids = srv.db.store_ids();
    assert_eq!(ids, vec!["a-b", "a_b", "ü x/1 🙂"]);
}
