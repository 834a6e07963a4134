//! 0.3 and 0.4 clients on one store: one log, one head, every push fanned
//! out to both kinds of subscribers in their own format.
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(300);

/// Checks a raw frame carries each event of `from..from+n` by `client` with
/// its args exactly as pushed.
fn assert_args_verbatim(raw: &str, from: i64, n: i64, client: &str) {
    for i in from..from + n {
        let expected = format!(r#""args":{},"seqNum":{i},"#, args_text(i, client));
        assert!(raw.contains(&expected), "{expected} not in {raw}");
    }
}

/// A 0.4 live-pull chunk for pull `0`: its seqNums, after checking the frame.
fn v04_chunk(raw: &str, backend_id: &str) -> Vec<i64> {
    let m: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(m["_tag"], "Chunk", "{m}");
    assert_eq!(m["requestId"], "0", "{m}");
    let values = m["values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{m}");
    assert_eq!(values[0]["pageInfo"], json!({"_tag": "NoMore"}), "{m}");
    assert_eq!(values[0]["backendId"], backend_id, "{m}");
    assert_eq!(
        values[0]["batch"][0]["metadata"]["value"]["_tag"],
        "SyncMessage.SyncMetadata"
    );
    seqs(&values[0]["batch"])
}

/// A 0.3 broadcast caused by push `push_id`: its seqNums, after checking the frame.
fn v03_broadcast(raw: &str, push_id: &str) -> Vec<i64> {
    let m: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(m["_tag"], "WSMessage.PullRes", "{m}");
    assert_eq!(
        m["requestId"],
        json!({"context": "push", "requestId": push_id}),
        "{m}"
    );
    assert_eq!(m["remaining"], 0, "{m}");
    let meta = &m["batch"][0]["metadata"];
    assert_eq!(meta["_tag"], "Some", "{m}");
    // 0.3 metadata is an untagged struct.
    assert!(meta["value"].get("_tag").is_none(), "{m}");
    assert!(meta["value"]["createdAt"].is_string(), "{m}");
    seqs(&m["batch"])
}

fn assert_strictly_increasing(seen: &[i64], what: &str) {
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "{what} saw {seen:?}: not strictly increasing"
    );
}

#[test]
fn pushes_from_either_generation_reach_both_and_share_one_log() {
    let _w = watchdog("mixed", Duration::from_secs(30));
    let srv = TestServer::start("mixed");
    let mut old = Ws::v03(srv.addr, "m");
    let mut new = Ws::v04(srv.addr, "m");
    // The 0.3 socket is subscribed from the start; make sure it is open.
    old.ping_v03();
    new.send_text(&v04_pull("0", "SyncWsRpc.Pull", "m", Some(true), NONE));
    let first: Value = new.recv();
    assert_eq!(first["values"][0]["batch"], json!([]));
    let bid = first["values"][0]["backendId"]
        .as_str()
        .unwrap()
        .to_string();

    let mut seen_old = Vec::new();
    let mut seen_new = Vec::new();

    // 0.3 push: PushAck + broadcast on the pusher; a live Chunk on 0.4.
    old.send_text(&v03_push("o1", &events(1, 2, "OLD")));
    assert_eq!(
        old.recv(),
        json!({"_tag": "WSMessage.PushAck", "requestId": "o1"})
    );
    let raw = old.recv_text();
    assert_args_verbatim(&raw, 1, 2, "OLD");
    seen_old.extend(v03_broadcast(&raw, "o1"));
    let raw = new.recv_text();
    assert_args_verbatim(&raw, 1, 2, "OLD");
    seen_new.extend(v04_chunk(&raw, &bid));

    // 0.4 push: Exit + Chunk on the pusher; a context-push PullRes on 0.3.
    new.send_text(&v04_push(
        "n1",
        "SyncWsRpc.Push",
        "m",
        &events(3, 3, "NEW"),
        &some_str(&bid),
    ));
    assert_eq!(new.recv(), push_ok("n1"));
    let raw = new.recv_text();
    assert_args_verbatim(&raw, 3, 3, "NEW");
    seen_new.extend(v04_chunk(&raw, &bid));
    let raw = old.recv_text();
    assert_args_verbatim(&raw, 3, 3, "NEW");
    seen_old.extend(v03_broadcast(&raw, "n1"));

    // One head for both: a 0.3 push from the old head is refused …
    old.send_text(&v03_push("o2", &events(3, 1, "OLD")));
    assert_eq!(
        old.recv(),
        json!({"_tag": "WSMessage.Error", "requestId": "o2", "message": "Invalid parent event number. Received e2 but expected e5"})
    );
    // … and so is a 0.4 push from it.
    new.send_text(&v04_push(
        "n2",
        "SyncWsRpc.Push",
        "m",
        &events(2, 1, "NEW"),
        NONE,
    ));
    let e = new.recv();
    assert_eq!(
        e["exit"]["cause"]["error"],
        json!({"_tag": "ServerAheadError", "minimumExpectedNum": 5, "providedNum": 1}),
        "{e}"
    );

    // Another 0.3 push continues the shared chain.
    old.send_text(&v03_push("o3", &events(6, 1, "OLD")));
    assert_eq!(old.recv()["_tag"], "WSMessage.PushAck");
    seen_old.extend(v03_broadcast(&old.recv_text(), "o3"));
    seen_new.extend(v04_chunk(&new.recv_text(), &bid));

    assert_eq!(old.recv_within(QUIET), None);
    assert_eq!(new.recv_within(QUIET), None);
    assert_strictly_increasing(&seen_old, "0.3 socket");
    assert_strictly_increasing(&seen_new, "0.4 pull");
    assert_eq!(seen_old, (1..=6).collect::<Vec<_>>());
    assert_eq!(seen_new, (1..=6).collect::<Vec<_>>());

    // A 0.3 pull sees the whole shared log.
    old.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r"}"#);
    let page = old.recv();
    assert_eq!(
        page["requestId"],
        json!({"context": "pull", "requestId": "r"})
    );
    assert_eq!(page["remaining"], 0);
    assert_eq!(seqs(&page["batch"]), (1..=6).collect::<Vec<_>>());

    // So does an HTTP pull, with both generations' args verbatim.
    let (status, _, body) = http(
        srv.addr,
        "POST",
        &v04_path("m", TOKEN, "http"),
        &[("Content-Type", "application/json")],
        &v04_pull("h", "SyncHttpRpc.Pull", "m", None, NONE),
    );
    assert_eq!(status, 200, "{body}");
    assert_args_verbatim(&body, 1, 2, "OLD");
    assert_args_verbatim(&body, 3, 3, "NEW");
    assert_args_verbatim(&body, 6, 1, "OLD");
    let items: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(items.len(), 2, "{body}");
    assert_eq!(items[0]["values"][0]["backendId"], bid);
    assert_eq!(
        seqs(&items[0]["values"][0]["batch"]),
        (1..=6).collect::<Vec<_>>()
    );
    assert_eq!(
        items[1],
        json!({"_tag": "Exit", "requestId": "h", "exit": {"_tag": "Success"}})
    );
}

#[test]
fn a_0_3_push_during_a_gated_0_4_backlog_is_delivered_after_it_once() {
    let _w = watchdog("mixed_late", Duration::from_secs(30));
    let srv = TestServer::start_with("mixed_late", |c| c.limits.ack_window = 1);
    let mut old = Ws::v03(srv.addr, "m");
    for k in 0..3 {
        old.push_v03_acked(&format!("o{k}"), &events(1 + k * 60, 60, "OLD"));
    }
    let mut new = Ws::v04(srv.addr, "m");
    new.send_text(&v04_pull("0", "SyncWsRpc.Pull", "m", Some(true), NONE));
    let mut seen = Vec::new();
    let m = new.recv();
    assert_eq!(
        m["values"][0]["pageInfo"],
        json!({"_tag": "MoreKnown", "remaining": 80})
    );
    seen.extend(seqs(&m["values"][0]["batch"]));
    // The backlog waits for an Ack; a 0.3 push lands meanwhile.
    old.send_text(&v03_push("late", &events(181, 2, "OLD")));
    assert_eq!(old.recv()["_tag"], "WSMessage.PushAck");
    assert_eq!(v03_broadcast(&old.recv_text(), "late"), vec![181, 182]);
    assert_eq!(
        new.recv_within(QUIET),
        None,
        "live chunk overtook the backlog"
    );
    new.send(json!({"_tag": "Ack", "requestId": "0"}));
    let m = new.recv();
    assert_eq!(m["values"][0]["pageInfo"], json!({"_tag": "NoMore"}));
    seen.extend(seqs(&m["values"][0]["batch"]));
    let raw = new.recv_text();
    assert_args_verbatim(&raw, 181, 2, "OLD");
    let bid = m["values"][0]["backendId"].as_str().unwrap().to_string();
    seen.extend(v04_chunk(&raw, &bid));
    assert_strictly_increasing(&seen, "0.4 pull");
    assert_eq!(seen, (1..=182).collect::<Vec<_>>());
    assert_eq!(new.recv_within(QUIET), None);
}
