//! The subtle rule: a push that lands while a pull answer is being sent must
//! reach that socket after the answer's last page (or before its first),
//! and every socket's stream stays strictly increasing without duplicates.
mod common;

use std::thread;
use std::time::Duration;

use common::*;
use serde_json::Value;

const SEED: i64 = 4000;
const LIVE_PUSHES: i64 = 30;

fn seqs(batch: &Value) -> Vec<i64> {
    batch
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventEncoded"]["seqNum"].as_i64().unwrap())
        .collect()
}

/// Seeds `SEED` events with one socket, in batches of 200.
fn seed(srv: &TestServer, store: &str) {
    let mut w = Ws::v03(srv.addr, store);
    for k in 0..SEED / 200 {
        w.send_text(&v03_push(
            &format!("seed{k}"),
            &events(1 + k * 200, 200, "S"),
        ));
        assert_eq!(w.recv()["_tag"], "WSMessage.PushAck");
        assert_eq!(w.recv()["_tag"], "WSMessage.PullRes");
    }
}

/// Pushes `LIVE_PUSHES` single events on top of the seed from another thread.
fn pusher(addr: std::net::SocketAddr, store: &'static str) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut p = Ws::v03(addr, store);
        for i in 0..LIVE_PUSHES {
            let seq = SEED + 1 + i;
            p.send_text(&v03_push(&format!("live{i}"), &events(seq, 1, "P")));
            loop {
                let m = p.recv();
                if m["_tag"] == "WSMessage.PushAck" {
                    break;
                }
                assert_ne!(m["_tag"], "WSMessage.Error", "{m}");
            }
        }
    })
}

#[test]
fn v03_pushes_during_a_long_pull_come_after_its_last_page() {
    let _w = watchdog("v03_ordering", Duration::from_secs(60));
    let srv = TestServer::start("order_v03");
    seed(&srv, "s");
    let mut a = Ws::v03(srv.addr, "s");
    a.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"pull"}"#);
    let push_thread = pusher(srv.addr, "s");

    let mut in_answer = false;
    let mut answer_done = false;
    let mut answer: Vec<i64> = Vec::new();
    let mut after: Vec<i64> = Vec::new();
    let mut before: Vec<i64> = Vec::new();
    while !(answer_done && after.last() == Some(&(SEED + LIVE_PUSHES))) {
        let m = a.recv();
        assert_eq!(m["_tag"], "WSMessage.PullRes");
        match m["requestId"]["context"].as_str().unwrap() {
            "pull" => {
                assert!(!answer_done, "a second pull answer");
                in_answer = true;
                answer.extend(seqs(&m["batch"]));
                answer_done = m["remaining"] == 0;
            }
            _ => {
                assert!(
                    !in_answer || answer_done,
                    "broadcast between two pages of the pull answer"
                );
                if answer_done {
                    after.extend(seqs(&m["batch"]))
                } else {
                    before.extend(seqs(&m["batch"]))
                }
            }
        }
    }
    push_thread.join().unwrap();
    // The answer is contiguous from 1; what follows continues it exactly.
    let head_at_pull = *answer.last().unwrap();
    assert_eq!(answer, (1..=head_at_pull).collect::<Vec<_>>());
    assert_eq!(
        after,
        (head_at_pull + 1..=SEED + LIVE_PUSHES).collect::<Vec<_>>(),
        "strictly increasing, no gap, no duplicate"
    );
    // Broadcasts before the answer are allowed (the client stashes them) and lie inside it.
    assert!(before.iter().all(|s| *s <= head_at_pull));
    assert_eq!(a.recv_within(Duration::from_millis(200)), None);
}

#[test]
fn v04_pushes_during_an_acked_backlog_come_after_no_more() {
    let _w = watchdog("v04_ordering", Duration::from_secs(60));
    let srv = TestServer::start_with("order_v04", |c| c.limits.ack_window = 1);
    seed(&srv, "s");
    let mut a = Ws::v04(srv.addr, "s");
    a.send_text(r#"{"_tag":"Request","id":"7","tag":"SyncWsRpc.Pull","payload":{"storeId":"s","live":true,"cursor":{"_tag":"None"}},"headers":[]}"#);
    let push_thread = pusher(srv.addr, "s");

    let mut backlog_done = false;
    let mut got: Vec<i64> = Vec::new();
    let mut head_at_pull = 0;
    let mut more_known = Vec::new();
    while got.last() != Some(&(SEED + LIVE_PUSHES)) {
        let m = a.recv();
        assert_eq!(m["_tag"], "Chunk", "{m}");
        assert_eq!(m["requestId"], "7");
        for v in m["values"].as_array().unwrap() {
            let s = seqs(&v["batch"]);
            if backlog_done {
                assert_eq!(v["pageInfo"]["_tag"], "NoMore", "live chunks are NoMore");
            } else if v["pageInfo"]["_tag"] == "NoMore" {
                backlog_done = true;
                head_at_pull = *s.last().unwrap();
            } else {
                more_known.push((
                    *s.last().unwrap(),
                    v["pageInfo"]["remaining"].as_i64().unwrap(),
                ));
            }
            got.extend(s);
        }
        // Slow acks widen the window in which pushes land during the backlog.
        thread::sleep(Duration::from_millis(1));
        a.send_text(r#"{"_tag":"Ack","requestId":"7"}"#);
    }
    push_thread.join().unwrap();
    assert!(head_at_pull >= SEED);
    assert!(
        head_at_pull < SEED + LIVE_PUSHES,
        "some pushes landed after the pull's snapshot"
    );
    assert!(more_known.len() >= 39);
    for (last, remaining) in more_known {
        assert_eq!(
            last + remaining,
            head_at_pull,
            "MoreKnown.remaining counts down to the snapshot head"
        );
    }
    assert_eq!(
        got,
        (1..=SEED + LIVE_PUSHES).collect::<Vec<_>>(),
        "strictly increasing, complete, no duplicate"
    );
}
