//! PostgreSQL restarts under running instances: no subscriber misses an
//! event or gets one twice. Each test has its own throwaway cluster
//! (`tests/common/pg_cluster.rs`): restarting the shared one would break
//! the tests running beside it.
//!
//! What happens, as these tests show it: a restart (`pg_ctl restart -m
//! fast`) ends every PostgreSQL session, the pools' and the listeners'.
//! The clients' WebSockets are not touched: they stay open and keep their
//! subscriptions. The pools replace their broken connections on next use;
//! each listener reconnects (backoff 0.2 s doubling to 5 s), reads every
//! store it serves from the log and delivers what it missed, and only then
//! reports `"notices": "ok"` in `/health` again (503 meanwhile). A push
//! that an instance cannot store answers with an error and leaves the
//! socket open; the client pushes it again.
mod common;

use std::time::{Duration, Instant};

use common::node::Target;
use common::*;
use serde_json::Value;

/// How long an instance may take to be whole again after a restart.
const RECOVERY: Duration = Duration::from_secs(30);

fn instance(url: &str) -> ServerProcess {
    ServerProcess::start(url, &["--auth-token", TOKEN, "--admin-secret", ADMIN])
}

/// `/health` of `addr` as (status, JSON body). Waits up to 30 s: without
/// PostgreSQL the answer takes the pool's 10 s wait for a connection.
fn health(addr: std::net::SocketAddr) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (status, _, body) = parse_response(&raw);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Waits until `/health` says 200 with `"notices": "ok"`; returns how long.
fn wait_healthy(name: &str, s: &ServerProcess, pg: &PgCluster) -> Duration {
    let t = Instant::now();
    loop {
        let (status, body) = health(s.addr);
        if status == 200 && body["notices"] == "ok" {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < RECOVERY,
            "{name} not healthy {RECOVERY:?} after the restart: {status} {body}\n{}\n{}",
            s.context(),
            pg.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seq nums of what a subscriber received: a 0.3 broadcast or a 0.4 chunk.
fn received(m: &Value) -> Vec<i64> {
    match m["_tag"].as_str() {
        Some("WSMessage.PullRes") => seqs(&m["batch"]),
        Some("Chunk") => m["values"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| seqs(&v["batch"]))
            .collect(),
        _ => panic!("not a delivery: {m}"),
    }
}

/// A subscriber: a 0.3 socket (subscribed from its first message), or a
/// 0.4 socket with a live pull from the start.
struct Sub {
    name: &'static str,
    ws: Ws,
    v04: bool,
    got: Vec<i64>,
}

impl Sub {
    fn v03(name: &'static str, addr: std::net::SocketAddr) -> Sub {
        let mut ws = Ws::v03(addr, "s");
        ws.ping_v03();
        Sub {
            name,
            ws,
            v04: false,
            got: Vec::new(),
        }
    }

    fn v04(name: &'static str, addr: std::net::SocketAddr) -> Sub {
        let mut ws = Ws::v04(addr, "s");
        ws.send_text(&v04_pull("1", "SyncWsRpc.Pull", "s", Some(true), NONE));
        let first = ws.recv();
        assert_eq!(first["values"][0]["pageInfo"]["_tag"], "NoMore", "{first}");
        Sub {
            name,
            ws,
            v04: true,
            got: received(&first),
        }
    }

    /// Reads deliveries until it has received exactly `want` in all, in
    /// order, each once.
    fn expect(&mut self, want: &[i64]) {
        while self.got.len() < want.len() {
            let m = self
                .ws
                .recv_within(Duration::from_secs(20))
                .unwrap_or_else(|| panic!("{}: has {:?}, waits for {want:?}", self.name, self.got));
            self.got.extend(received(&m));
        }
        assert_eq!(self.got, want, "{}: every event once, in order", self.name);
    }

    /// Nothing more arrives for a while.
    fn expect_quiet(&mut self, within: Duration) {
        if let Some(m) = self.ws.recv_within(within) {
            panic!("{}: after {:?}, unexpected {m}", self.name, self.got);
        }
    }

    /// The socket is still open: a ping is answered.
    fn ping(&mut self) {
        if self.v04 {
            self.ws.ping_v04();
        } else {
            self.ws.ping_v03();
        }
    }
}

#[test]
fn instances_reconnect_after_a_restart_and_every_subscriber_gets_every_event_once() {
    let _w = watchdog("pg_restart", Duration::from_secs(150));
    let pg = PgCluster::start();
    let url = pg.url("livestore");
    let (a, b) = (instance(&url), instance(&url));
    let mut subs = vec![
        Sub::v03("0.3 on A", a.addr),
        Sub::v04("0.4 on A", a.addr),
        Sub::v03("0.3 on B", b.addr),
        Sub::v04("0.4 on B", b.addr),
    ];
    let mut pusher = Ws::v03(a.addr, "s");
    pusher.push_v03_acked("p1", &events(1, 2, "A"));
    for s in &mut subs {
        s.expect(&[1, 2]);
    }

    let t = Instant::now();
    pg.restart();
    let restarted = t.elapsed();
    let (a_back, b_back) = (wait_healthy("A", &a, &pg), wait_healthy("B", &b, &pg));
    eprintln!(
        "restart took {restarted:?}; healthy again after A {a_back:?}, B {b_back:?}; \
         A: {:?}",
        a.log
            .lock()
            .iter()
            .filter(|l| l.contains("notices"))
            .collect::<Vec<_>>()
    );
    // The sockets survived, and so did their subscriptions.
    for s in &mut subs {
        s.ping();
    }
    pusher.push_v03_acked("p2", &events(3, 1, "A"));
    for s in &mut subs {
        s.expect(&[1, 2, 3]);
    }
    let mut through_b = Ws::v03(b.addr, "s");
    through_b.push_v03_acked("p3", &events(4, 2, "B"));
    for s in &mut subs {
        s.expect(&[1, 2, 3, 4, 5]);
        s.expect_quiet(Duration::from_millis(300));
    }
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let stored: Vec<i64> = c
        .query(
            "SELECT seq_num FROM events WHERE store_id = 's' ORDER BY seq_num",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, vec![1, 2, 3, 4, 5]);
}

/// B connects as its own role, which the test forbids to log in across the
/// restart: B's listener (and pool) stay down, deterministically, while A
/// is back. A push through A then cannot reach B live; B delivers it from
/// the log once it may connect again.
#[test]
fn a_push_while_the_listener_of_b_is_down_reaches_b_when_it_is_back() {
    let _w = watchdog("pg_restart_b_down", Duration::from_secs(150));
    let pg = PgCluster::start();
    pg.client()
        .batch_execute("CREATE ROLE lss_b LOGIN SUPERUSER")
        .unwrap();
    let a = instance(&pg.url("livestore"));
    let b = instance(&pg.url_as("lss_b", "livestore"));
    let mut on_a = Sub::v03("0.3 on A", a.addr);
    let mut on_b = vec![Sub::v03("0.3 on B", b.addr), Sub::v04("0.4 on B", b.addr)];
    let mut pusher_a = Ws::v03(a.addr, "s");
    let mut pusher_b = Ws::v03(b.addr, "s");
    pusher_a.push_v03_acked("a1", &events(1, 1, "A"));
    on_a.expect(&[1]);
    for s in &mut on_b {
        s.expect(&[1]);
    }
    assert_eq!(received(&pusher_b.recv()), vec![1]);

    pg.client()
        .batch_execute("ALTER ROLE lss_b NOLOGIN")
        .unwrap();
    pg.restart();
    wait_healthy("A", &a, &pg);
    let sessions_of_b = pg
        .client()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'lss_b'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(sessions_of_b, 0, "B has no session: its listener is down");

    // B cannot reach PostgreSQL at all now: its /health says so, and a
    // push through it is answered with an error (after the pool's 10 s
    // wait), its socket staying open. Both run while A is pushed to.
    let b_addr = b.addr;
    let b_health = std::thread::spawn(move || health(b_addr));
    pusher_b.send_text(&v03_push("b-lost", &events(2, 1, "B")));

    pusher_a.push_v03_acked("a2", &events(2, 2, "A"));
    on_a.expect(&[1, 2, 3]);
    for s in &mut on_b {
        s.expect_quiet(Duration::from_millis(500));
    }
    let refused = pusher_b
        .recv_within(Duration::from_secs(30))
        .expect("B answers the push it cannot store");
    assert_eq!(
        (&refused["_tag"], &refused["requestId"]),
        (&"WSMessage.Error".into(), &"b-lost".into()),
        "{refused}"
    );
    let (status, body) = b_health.join().unwrap();
    assert_eq!(status, 503, "B's /health while it cannot connect: {body}");
    pusher_b.ping_v03();

    // B may log in again: its listener reconnects and reads what it missed.
    pg.client().batch_execute("ALTER ROLE lss_b LOGIN").unwrap();
    for s in &mut on_b {
        s.expect(&[1, 2, 3]);
    }
    assert_eq!(received(&pusher_b.recv()), vec![2, 3]);
    let b_back = wait_healthy("B", &b, &pg);
    eprintln!("B healthy {b_back:?} after it may log in again");

    // Live again both ways, nothing twice.
    pusher_b.push_v03_acked("b2", &events(4, 1, "B"));
    assert_eq!(received(&pusher_a.recv()), vec![4]);
    pusher_a.push_v03_acked("a3", &events(5, 1, "A"));
    assert_eq!(received(&pusher_b.recv()), vec![5]);
    for s in on_b.iter_mut().chain([&mut on_a]) {
        s.expect(&[1, 2, 3, 4, 5]);
        s.expect_quiet(Duration::from_millis(300));
    }
    let mut c = postgres::Client::connect(&pg.url("livestore"), postgres::NoTls).unwrap();
    let stored: Vec<(i64, String)> = c
        .query(
            "SELECT seq_num, client_id FROM events WHERE store_id = 's' ORDER BY seq_num",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        stored,
        vec![
            (1, "A".into()),
            (2, "A".into()),
            (3, "A".into()),
            (4, "B".into()),
            (5, "A".into())
        ],
        "the refused push is not stored"
    );
}
