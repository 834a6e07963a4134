//! The subtle rule: a push that lands while a pull answer is being sent must
//! reach that socket after the answer's last page (or before its first),
//! and every socket's stream stays strictly increasing without duplicates.
//!
//! Each test first forces one push to land inside the answer, so the rule
//! is exercised on every run, then lets more pushes race the rest of it.
mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;

const SEED: i64 = 4000;
const LIVE_PUSHES: i64 = 30;

/// Seeds `SEED` events with one socket, in batches of 200.
fn seed(srv: &TestServer, store: &str) {
    let mut w = Ws::v03(srv.addr, store);
    for k in 0..SEED / 200 {
        w.push_v03_acked(&format!("seed{k}"), &events(1 + k * 200, 200, "S"));
    }
}

/// Pushes `LIVE_PUSHES` single events on top of the seed from another
/// thread; `first_acked` hears when the first one is accepted.
fn pusher(
    addr: std::net::SocketAddr,
    store: &'static str,
    first_acked: mpsc::Sender<()>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut p = Ws::v03(addr, store);
        for i in 0..LIVE_PUSHES {
            let seq = SEED + 1 + i;
            p.send_text(&v03_push(&format!("live{i}"), &events(seq, 1, "P")));
            p.await_v03_ack();
            if i == 0 {
                let _ = first_acked.send(());
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
    a.ping_v03();
    // 0.3 has no flow control to hold an answer open, so the database does:
    // with events locked, the pull takes its snapshot (head SEED) and waits
    // to read its first page; then the first live push takes the store and
    // waits to insert. Released, that push lands after the snapshot and
    // before the answer can end (ending it needs the store the push holds).
    let lock = srv.db.pg().lock_events();
    a.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"pull"}"#);
    srv.db
        .pg()
        .wait_for_lock_waiters(READ_SQL_FRAGMENT, 1, Duration::from_secs(10));
    let (first_tx, first_acked) = mpsc::channel();
    let push_thread = pusher(srv.addr, "s", first_tx);
    srv.db
        .pg()
        .wait_for_lock_waiters(APPEND_SQL_FRAGMENT, 1, Duration::from_secs(10));
    // The overlap, seen in the database: the answer still waits for its
    // first page while the push waits to land.
    assert_eq!(
        srv.db.pg().lock_waiters(READ_SQL_FRAGMENT),
        1,
        "the answer ended early"
    );
    lock.release();
    first_acked
        .recv_timeout(Duration::from_secs(10))
        .expect("the first live push was accepted");

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
    // The answer is the snapshot, 1..=SEED; every live push came after it,
    // the first one (held during the answer) included, in order, once.
    assert_eq!(answer, (1..=SEED).collect::<Vec<_>>());
    assert_eq!(
        before,
        Vec::<i64>::new(),
        "no push landed before the snapshot"
    );
    assert_eq!(
        after,
        (SEED + 1..=SEED + LIVE_PUSHES).collect::<Vec<_>>(),
        "strictly increasing, no gap, no duplicate"
    );
    assert_eq!(a.recv_within(Duration::from_millis(200)), None);
}

#[test]
fn v04_pushes_during_an_acked_backlog_come_after_no_more() {
    let _w = watchdog("v04_ordering", Duration::from_secs(60));
    let srv = TestServer::start_with("order_v04", |c| c.limits.ack_window = 1);
    seed(&srv, "s");
    let mut a = Ws::v04(srv.addr, "s");
    a.send_text(r#"{"_tag":"Request","id":"7","tag":"SyncWsRpc.Pull","payload":{"storeId":"s","live":true,"cursor":{"_tag":"None"}},"headers":[]}"#);

    let mut backlog_done = false;
    let mut got: Vec<i64> = Vec::new();
    let mut head_at_pull = 0;
    let mut more_known = Vec::new();
    let mut push_thread = None;
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
        if push_thread.is_none() {
            // The first chunk is out (the snapshot is taken) and the rest
            // waits for our Ack: the first live push lands inside the backlog.
            assert!(!backlog_done, "the backlog fit one chunk: {m}");
            let (first_tx, first_acked) = mpsc::channel();
            push_thread = Some(pusher(srv.addr, "s", first_tx));
            first_acked
                .recv_timeout(Duration::from_secs(10))
                .expect("the first live push was accepted");
        }
        // Slow acks widen the window in which more pushes land during the backlog.
        thread::sleep(Duration::from_millis(1));
        a.send_text(r#"{"_tag":"Ack","requestId":"7"}"#);
    }
    push_thread.unwrap().join().unwrap();
    assert_eq!(
        head_at_pull, SEED,
        "the snapshot is the head before any live push"
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
