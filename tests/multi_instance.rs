//! Several instances on one PostgreSQL: every instance's sockets get every
//! push made through another, live, with the per-socket guarantees (strictly
//! increasing, never twice); pulls and pushes never act on a stale head;
//! resets reach everyone; a dropped listener connection catches up from the
//! log. PostgreSQL is the coordination engine (`LISTEN`/`NOTIFY`).
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn instances(db: &TestDb, n: usize) -> Vec<ServerProcess> {
    (0..n)
        .map(|_| ServerProcess::start(&db.url, &["--auth-token", TOKEN, "--admin-secret", ADMIN]))
        .collect()
}

/// Seq nums of a 0.3 broadcast (`PullRes` with context push).
fn v03_broadcast(m: &Value) -> Vec<i64> {
    assert_eq!(m["_tag"], "WSMessage.PullRes", "{m}");
    assert_eq!(m["requestId"]["context"], "push", "{m}");
    seqs(&m["batch"])
}

/// Seq nums of a 0.4 live chunk.
fn v04_chunk(m: &Value) -> Vec<i64> {
    assert_eq!(m["_tag"], "Chunk", "{m}");
    m["values"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| seqs(&v["batch"]))
        .collect()
}

/// A 0.4 live pull from the start; returns the socket after its backlog
/// (and the backend id).
fn v04_live(addr: std::net::SocketAddr, store: &str) -> (Ws, String) {
    let mut ws = Ws::v04(addr, store);
    ws.send_text(&v04_pull("1", "SyncWsRpc.Pull", store, Some(true), NONE));
    let m = ws.recv();
    let v = &m["values"][0];
    assert_eq!(v["pageInfo"]["_tag"], "NoMore", "{m}");
    (ws, v["backendId"].as_str().unwrap().to_string())
}

/// Every instance's listener connection ended and kept out: new
/// connections to the database are refused, open pool connections stay.
struct ListenersOut {
    admin: postgres::Client,
    db: String,
}

impl ListenersOut {
    fn cut(db: &TestDb) -> ListenersOut {
        let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                db.name
            ))
            .unwrap();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = 'livestore-sync listener'",
                &[&db.name],
            )
            .unwrap();
        ListenersOut {
            admin,
            db: db.name.clone(),
        }
    }

    /// Connections are allowed again; the listeners reconnect by themselves.
    fn let_back(mut self) {
        self.admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.db
            ))
            .unwrap();
    }
}

/// Waits until `/health` of `addr` answers `status`; its body.
fn wait_health(addr: std::net::SocketAddr, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (got, _, body) = http(addr, "GET", "/health", &[], "");
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/health did not answer {status} within {within:?}: {got} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pushes_through_one_instance_reach_every_other_live() {
    let _w = watchdog("multi_live", Duration::from_secs(90));
    let db = TestDb::create("multi_live");
    let srv = instances(&db, 3);
    let (a, b, c) = (srv[0].addr, srv[1].addr, srv[2].addr);
    let mut sub03 = Ws::v03(b, "s");
    sub03.ping_v03();
    let (mut sub04, bid) = v04_live(c, "s");
    let mut pusher = Ws::v03(a, "s");
    pusher.push_v03_acked("p1", &events(1, 3, "A"));
    assert_eq!(v03_broadcast(&sub03.recv()), vec![1, 2, 3]);
    assert_eq!(v04_chunk(&sub04.recv()), vec![1, 2, 3]);

    // A fresh pull through another instance returns what A stored, and a
    // push on A's head through B is accepted (both failed before).
    let mut fresh = Ws::v03(b, "s");
    fresh.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r"}"#);
    let page = fresh.recv();
    assert_eq!(seqs(&page["batch"]), vec![1, 2, 3], "{page}");
    fresh.push_v03_acked("p2", &events(4, 1, "B"));
    assert_eq!(v04_chunk(&sub04.recv()), vec![4]);
    // sub03 is on B itself: it gets the broadcast from its own instance once.
    assert_eq!(v03_broadcast(&sub03.recv()), vec![4]);

    // 0.4 over HTTP through C sees everything, from the stored head.
    let body = v04_pull("h", "SyncHttpRpc.Pull", "s", None, &some_cursor(&bid, 2));
    let (status, _, text) = http(c, "POST", &v04_path("s", TOKEN, "http"), &[], &body);
    assert_eq!(status, 200, "{text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(seqs(&got[0]["values"][0]["batch"]), vec![3, 4]);

    // A 0.4 push through C reaches the 0.3 socket on B and the pusher on A.
    let push = v04_push(
        "q",
        "SyncWsRpc.Push",
        "s",
        &events(5, 2, "C"),
        &some_str(&bid),
    );
    let mut c04 = Ws::v04(c, "s");
    c04.send_text(&push);
    assert_eq!(c04.recv(), push_ok("q"));
    assert_eq!(v03_broadcast(&sub03.recv()), vec![5, 6]);
    assert_eq!(v04_chunk(&sub04.recv()), vec![5, 6]);
    let mut seen = Vec::new();
    while let Some(m) = pusher.recv_within(Duration::from_secs(5)) {
        seen.extend(v03_broadcast(&m));
        if seen.last() == Some(&6) {
            break;
        }
    }
    // (1..=3 it read with its own ack.)
    assert_eq!(seen, vec![4, 5, 6], "the pusher on A, each event once");
    assert_eq!(db.event_rows("s"), 6);
}

#[test]
fn a_race_spread_over_instances_has_one_winner_per_round_and_one_order() {
    let _w = watchdog("multi_race", Duration::from_secs(120));
    let db = TestDb::create("multi_race");
    // Pushers on three instances; on the fourth only listeners, which hear
    // of each round through notices alone (the others also learn it when
    // their own pushers lose).
    let srv = instances(&db, 4);
    let mut clients: Vec<Ws> = (0..20).map(|i| Ws::v03(srv[i % 3].addr, "r")).collect();
    let mut listeners: Vec<Ws> = (0..3).map(|_| Ws::v03(srv[3].addr, "r")).collect();
    for c in clients.iter_mut().chain(&mut listeners) {
        c.ping_v03();
    }
    let rounds: i64 = 5;
    for round in 0..rounds {
        let head = round; // the winner of each round is event round + 1
                          // Everyone pushes on the same parent at once.
        for (i, c) in clients.iter_mut().enumerate() {
            c.send_text(&v03_push(
                &format!("r{round}c{i}"),
                &events(head + 1, 1, &format!("c{i}")),
            ));
        }
        let mut winners = 0;
        for c in clients.iter_mut() {
            // Each socket: its answer, plus the winning broadcast (once).
            let mut answered = false;
            let mut got = Vec::new();
            while !answered || got.is_empty() {
                let m = c.recv();
                match m["_tag"].as_str().unwrap() {
                    "WSMessage.PushAck" => {
                        winners += 1;
                        answered = true;
                    }
                    "WSMessage.Error" => answered = true,
                    _ => got.extend(v03_broadcast(&m)),
                }
            }
            assert_eq!(
                got,
                vec![head + 1],
                "round {round}: one broadcast of the winner"
            );
        }
        assert_eq!(winners, 1, "round {round}");
        for l in &mut listeners {
            assert_eq!(v03_broadcast(&l.recv()), vec![head + 1], "round {round}");
        }
    }
    // Nothing else arrives: no event twice.
    for c in clients.iter_mut().chain(&mut listeners) {
        assert_eq!(c.recv_within(Duration::from_millis(200)), None);
    }
    let contiguous = db.count(
        "SELECT count(*) FROM events WHERE store_id = 'r' AND seq_num BETWEEN 1 AND $1",
        &[&rounds],
    );
    assert_eq!((contiguous, db.event_rows("r")), (rounds, rounds));
}

#[test]
fn a_reset_closes_the_store_everywhere_and_the_new_backend_id_is_served_everywhere() {
    let _w = watchdog("multi_reset", Duration::from_secs(60));
    let db = TestDb::create("multi_reset");
    let srv = instances(&db, 2);
    let (a, b) = (srv[0].addr, srv[1].addr);
    let mut pusher = Ws::v03(a, "s");
    pusher.push_v03_acked("p", &events(1, 2, "A"));
    let mut other03 = Ws::v03(b, "s");
    other03.ping_v03();
    let (mut other04, old_bid) = v04_live(b, "s");
    let mut untouched = Ws::v03(b, "other-store");
    untouched.ping_v03();

    let mut admin = Ws::v03(a, "s");
    admin.send_text(&format!(
        r#"{{"_tag":"WSMessage.AdminResetRoomReq","requestId":"x","adminSecret":"{ADMIN}"}}"#
    ));
    assert_eq!(admin.recv()["_tag"], "WSMessage.AdminResetRoomRes");
    assert_eq!(other03.expect_close(), Some(4001));
    assert_eq!(other04.expect_close(), Some(4001));
    untouched.ping_v03(); // another store is not disturbed

    // B serves the new backend id: an old cursor is refused there.
    let mut again = Ws::v04(b, "s");
    again.send_text(&v04_pull(
        "2",
        "SyncWsRpc.Pull",
        "s",
        Some(false),
        &some_cursor(&old_bid, 2),
    ));
    let m = again.recv();
    let error = &m["exit"]["cause"]["error"];
    assert_eq!(error["_tag"], "BackendIdMismatchError", "{m}");
    assert_ne!(error["expected"], old_bid.as_str());
    assert_eq!(db.event_rows("s"), 0);
}

#[test]
fn a_dropped_listener_reconnects_catches_up_and_health_says_so_meanwhile() {
    let _w = watchdog("multi_listener", Duration::from_secs(90));
    let db = TestDb::create("multi_listener");
    let srv = instances(&db, 2);
    let (a, b) = (srv[0].addr, srv[1].addr);
    let mut sub = Ws::v03(b, "s");
    sub.ping_v03();
    let mut pusher = Ws::v03(a, "s");
    pusher.push_v03_acked("p1", &events(1, 1, "A"));
    assert_eq!(v03_broadcast(&sub.recv()), vec![1]);

    // Cut both listeners and keep them out (the pools' open connections stay).
    let out = ListenersOut::cut(&db);
    let body = wait_health(b, 503, Duration::from_secs(10));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&v["notices"], &v["database"]),
        (&"down".into(), &"ok".into())
    );
    // Pushed while B cannot hear it.
    pusher.push_v03_acked("p2", &events(2, 2, "A"));
    assert_eq!(sub.recv_within(Duration::from_millis(500)), None);

    out.let_back();
    // B's listener reconnects and reads what it missed from the log.
    let m = sub.recv_within(Duration::from_secs(15)).expect("caught up");
    assert_eq!(v03_broadcast(&m), vec![2, 3]);
    wait_health(b, 200, Duration::from_secs(10));
    // And live delivery works again.
    pusher.push_v03_acked("p3", &events(4, 1, "A"));
    assert_eq!(v03_broadcast(&sub.recv()), vec![4]);
}

/// While an instance cannot hear the others (its listener is down, its
/// pool still works), a pull through it reads the stored head, not the
/// head it last heard of: a fresh client gets everything, and the
/// instance's live subscribers get the missed events once, in order.
#[test]
fn a_pull_through_an_instance_that_missed_notices_reads_the_stored_head() {
    let _w = watchdog("multi_stale_pull", Duration::from_secs(90));
    let db = TestDb::create("multi_stale_pull");
    let srv = instances(&db, 2);
    let (a, b) = (srv[0].addr, srv[1].addr);
    let mut sub = Ws::v03(b, "s");
    sub.ping_v03();
    let mut pusher = Ws::v03(a, "s");
    pusher.push_v03_acked("p1", &events(1, 1, "A"));
    assert_eq!(v03_broadcast(&sub.recv()), vec![1]);

    // B's listener cut and kept out; its pool's connections stay open.
    let out = ListenersOut::cut(&db);
    wait_health(b, 503, Duration::from_secs(10));
    pusher.push_v03_acked("p2", &events(2, 2, "A"));
    assert_eq!(sub.recv_within(Duration::from_millis(300)), None);

    // A fresh 0.3 pull and a 0.4 HTTP pull through B.
    let mut fresh = Ws::v03(b, "s");
    fresh.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"r"}"#);
    let page = fresh.recv();
    assert_eq!(seqs(&page["batch"]), vec![1, 2, 3], "{page}");
    let body = v04_pull("h", "SyncHttpRpc.Pull", "s", None, NONE);
    let (status, _, text) = http(b, "POST", &v04_path("s", TOKEN, "http"), &[], &body);
    assert_eq!(status, 200, "{text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(seqs(&got[0]["values"][0]["batch"]), vec![1, 2, 3], "{text}");
    // B's subscriber got the missed events on the way, once.
    assert_eq!(v03_broadcast(&sub.recv()), vec![2, 3]);

    out.let_back();
    wait_health(b, 200, Duration::from_secs(15));
    // The listener's catch-up finds nothing new: nothing twice.
    pusher.push_v03_acked("p3", &events(4, 1, "A"));
    assert_eq!(v03_broadcast(&sub.recv()), vec![4]);
    assert_eq!(sub.recv_within(Duration::from_millis(300)), None);
}
