//! Retries that do not wedge clients: a client that lost the echo of its
//! push (and reloaded) pushes the same events again. An exact re-push is
//! acknowledged without storing or sending anything again; one that runs
//! past the head stores only the rest; one that differs is refused as
//! stale, as before. Both generations, on the backend `TEST_BACKEND` names.
mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

#[test]
fn v03_an_exact_re_push_is_acked_and_nothing_is_sent_again() {
    let _w = watchdog("v03_re_push", Duration::from_secs(30));
    let srv = TestServer::start("re_push_v03");
    let mut a = Ws::v03(srv.addr, "s");
    let mut watcher = Ws::v03(srv.addr, "s");
    watcher.ping_v03();
    a.push_v03_acked("p1", &events(1, 3, "A"));
    assert_eq!(seqs(&watcher.recv()["batch"]), vec![1, 2, 3]);

    // The same batch from a new socket (the client reloaded).
    let mut again = Ws::v03(srv.addr, "s");
    again.send_text(&v03_push("p2", &events(1, 3, "A")));
    assert_eq!(
        again.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "p2"})
    );
    assert_eq!(again.recv_within(QUIET), None, "no echo of a re-push");
    assert_eq!(watcher.recv_within(QUIET), None, "nothing sent again");

    // Past the head: only 4 and 5 are new, and only they go out.
    again.send_text(&v03_push("p3", &events(2, 4, "A")));
    assert_eq!(
        again.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "p3"})
    );
    assert_eq!(seqs(&watcher.recv()["batch"]), vec![4, 5]);
    assert_eq!(srv.db.event_rows("s"), 5);

    // Another client's events at those numbers: refused as stale.
    again.send_text(&v03_push("p4", &events(5, 1, "B")));
    let e = again.recv();
    // (the broadcast of 4..5 came first on this socket)
    let e = if e["_tag"] == "WSMessage.PullRes" {
        again.recv()
    } else {
        e
    };
    assert_eq!(
        e,
        json!({"_tag": "WSMessage.Error", "requestId": "p4", "message": "Invalid parent event number. Received e4 but expected e5"})
    );
    assert_eq!(srv.db.event_rows("s"), 5);
}

#[test]
fn v04_an_exact_re_push_is_acked_and_nothing_is_sent_again() {
    let _w = watchdog("v04_re_push", Duration::from_secs(30));
    let srv = TestServer::start("re_push_v04");
    let mut a = Ws::v04(srv.addr, "s");
    a.send_text(&v04_pull("0", "SyncWsRpc.Pull", "s", Some(true), NONE));
    assert_eq!(a.recv()["_tag"], "Chunk");
    a.send_text(&v04_push(
        "1",
        "SyncWsRpc.Push",
        "s",
        &events(1, 2, "A"),
        NONE,
    ));
    assert_eq!(a.recv(), push_ok("1"));
    assert_eq!(seqs(&a.recv()["values"][0]["batch"]), vec![1, 2]);

    a.send_text(&v04_push(
        "2",
        "SyncWsRpc.Push",
        "s",
        &events(1, 2, "A"),
        NONE,
    ));
    assert_eq!(a.recv(), push_ok("2"));
    assert_eq!(a.recv_within(QUIET), None, "nothing sent again");

    // Over HTTP too (makeHttpSync retries a push whose answer it lost).
    let body = v04_push("3", "SyncHttpRpc.Push", "s", &events(2, 1, "A"), NONE);
    let (status, _, text) = http(srv.addr, "POST", &v04_path("s", TOKEN, "http"), &[], &body);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""_tag":"Success""#), "{text}");
    assert_eq!(a.recv_within(QUIET), None);
    assert_eq!(srv.db.event_rows("s"), 2);
}
