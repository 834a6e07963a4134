//! Three instances on one PostgreSQL behind the real reverse proxies,
//! nginx and Caddy, each run with its committed configuration
//! (`docs/deploy/nginx.conf`, `docs/deploy/Caddyfile`; only the addresses
//! are changed, see `tests/common/proxy.rs`):
//!
//! - the real LiveStore clients (0.3 and 0.4 WebSocket writers racing,
//!   then fresh 0.4 HTTP, 0.3 and 0.4 WebSocket readers) converge through
//!   the proxy, which spreads them over the instances;
//! - `kill -9` of one instance during a storm of raw 0.3 pushers through
//!   the proxy: the pushers whose socket dropped reconnect through the
//!   proxy (which skips the dead instance: no connection attempt fails),
//!   pull from their head and go on; every acknowledged event is stored
//!   exactly once, the log is contiguous, no push is acknowledged twice,
//!   and everything each pusher received matches the log;
//! - the case the storm meets only by chance, made certain: a push that
//!   PostgreSQL holds when its instance is killed is committed all the
//!   same and announced to the other instances; its client, unanswered,
//!   finds it in its pull after reconnecting and does not push it again.
//!
//! A missing nginx or Caddy fails the test with what to install.
//! `SHOW_PROXY_LOG=1` echoes Caddy's log, `KEEP_PROXY_DIR=1` keeps the
//! proxy's directory (its config, nginx's logs) in the temporary directory.
mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::node::*;
use common::*;
use serde_json::Value;

impl Deployment {
    /// How many WebSockets of `store` each instance opened so far.
    fn sockets_per_instance(&self, store: &str) -> Vec<usize> {
        let needle = format!("ws open store={store:?} ");
        self.servers
            .iter()
            .map(|s| s.log.lock().iter().filter(|l| l.contains(&needle)).count())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The real clients through the proxy
// ---------------------------------------------------------------------------------------------

fn real_clients_converge(kind: ProxyKind) {
    let tag = format!("proxy_e2e_{}", kind.name());
    let _w = watchdog("proxy_real_clients", Duration::from_secs(170));
    prepare_clients("v03");
    prepare_clients("v04");
    let d = Deployment::start(kind, &tag, E2E_TOKEN, E2E_ADMIN_SECRET, false);
    let (status, _, body) = http(d.proxy.addr, "GET", "/health", &[], "");
    assert_eq!(status, 200, "/health through {}: {body}", kind.name());
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&health["database"], &health["notices"]),
        (&"ok".into(), &"ok".into())
    );

    let store = format!("proxy-{}-{}", kind.name(), std::process::id());
    // Writers land on two instances; their racing first pushes meet in PostgreSQL.
    let t = Instant::now();
    let (writers, all_ids) = d.race_writers(&store, "writer-p");
    let spread = d.sockets_per_instance(&store);
    assert!(
        spread.iter().filter(|&&n| n > 0).count() >= 2,
        "the writers' sockets all reached one instance: {spread:?}\n{}",
        d.context()
    );
    eprintln!(
        "[{tag}] writers converged in {:?}; sockets per instance {spread:?}",
        t.elapsed()
    );

    // Fresh readers of every transport, the 0.4 HTTP one polling with
    // POSTs that the proxy spreads over the instances.
    let readers: Vec<ClientSpec> = [
        (Kind::V04Http, "carol04hp"),
        (Kind::V03, "dave03p"),
        (Kind::V04Ws, "erin04wp"),
    ]
    .into_iter()
    .map(|(k, id)| ClientSpec::reader(k, id, all_ids.len()))
    .collect();
    let t = Instant::now();
    for r in run_all(&d, &d.log, &store, &readers) {
        assert_converged(&r, &all_ids, &d);
    }
    assert_database(&d.log, &store, &writers, &d);
    eprintln!(
        "[{tag}] readers converged in {:?}; sockets per instance {:?}",
        t.elapsed(),
        d.sockets_per_instance(&store)
    );
}

#[test]
fn nginx_real_clients_converge_across_three_instances() {
    real_clients_converge(ProxyKind::Nginx);
}

#[test]
fn caddy_real_clients_converge_across_three_instances() {
    real_clients_converge(ProxyKind::Caddy);
}

// ---------------------------------------------------------------------------------------------
// SIGKILL of an instance during a push storm through the proxy
// ---------------------------------------------------------------------------------------------

const STORES: [&str; 2] = ["storm-a", "storm-b"];
const PUSHERS_PER_STORE: usize = 3;

/// Shared by the pushers and the test's main thread.
#[derive(Default)]
struct Storm {
    /// Acknowledged pushes per pusher, before and after the kill.
    acks: Vec<AtomicUsize>,
    acks_after_kill: Vec<AtomicUsize>,
    killed: AtomicBool,
    stop: AtomicBool,
    /// Connection attempts through the proxy that failed, as they happen.
    failed_connects: parking_lot::Mutex<Vec<String>>,
}

impl Storm {
    fn new(pushers: usize) -> Storm {
        Storm {
            acks: (0..pushers).map(|_| AtomicUsize::new(0)).collect(),
            acks_after_kill: (0..pushers).map(|_| AtomicUsize::new(0)).collect(),
            ..Default::default()
        }
    }

    fn total(&self) -> usize {
        self.acks.iter().map(|a| a.load(Ordering::SeqCst)).sum()
    }
    /// Whether every pusher has at least `n` acknowledged pushes (after the kill).
    fn each_has(&self, n: usize, after_kill: bool) -> bool {
        let counts = if after_kill {
            &self.acks_after_kill
        } else {
            &self.acks
        };
        counts.iter().all(|a| a.load(Ordering::SeqCst) >= n)
    }
}

/// What one pusher did and saw.
#[derive(Default, Debug)]
struct PusherReport {
    client: String,
    store: String,
    /// Request id → the event ids it carried, for every `PushAck`.
    acked: Vec<(String, Vec<String>)>,
    acks_after_kill: usize,
    /// Every event this pusher's sockets delivered: seq → event id.
    seen: BTreeMap<i64, String>,
    /// Why each socket that dropped under it ended (the killed instance's).
    dropped: Vec<String>,
    /// Connection attempts through the proxy that failed (must be none:
    /// the proxy skips the dead instance).
    failed_connects: Vec<String>,
    /// Pushes refused as stale (another pusher won the round).
    refused: usize,
    /// Pushes whose socket dropped before their answer, and which the pull
    /// after the reconnect showed stored (the dead instance committed them).
    stored_unanswered: usize,
}

fn event_json(seq: i64, id: &str, client: &str) -> String {
    format!(
        r#"{{"name":"v1.TodoCreated","args":{{"id":"{id}"}},"seqNum":{seq},"parentSeqNum":{},"clientId":"{client}","sessionId":"s"}}"#,
        seq - 1
    )
}

/// The seq nums and event ids of a 0.3 `PullRes`.
fn batch_ids(m: &Value) -> Vec<(i64, String)> {
    m["batch"]
        .as_array()
        .unwrap_or_else(|| panic!("no batch: {m}"))
        .iter()
        .map(|e| {
            let ev = &e["eventEncoded"];
            let args: Value = match &ev["args"] {
                Value::String(s) => serde_json::from_str(s).unwrap(),
                v => v.clone(),
            };
            (
                ev["seqNum"].as_i64().unwrap(),
                args["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

enum Read {
    Msg(Value),
    /// The socket ended (close frame, reset, EOF): its instance died.
    Dropped(String),
}

fn read(ws: &mut Ws) -> Read {
    loop {
        match ws.ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                return Read::Msg(serde_json::from_str(t.as_str()).unwrap())
            }
            Ok(tungstenite::Message::Close(f)) => return Read::Dropped(format!("close {f:?}")),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("no message within the read timeout (10 s): a push went unanswered")
            }
            Err(e) => return Read::Dropped(e.to_string()),
        }
    }
}

struct Pusher {
    /// Index in `Storm`'s counters.
    n: usize,
    report: PusherReport,
    proxy: SocketAddr,
    head: i64,
    next_id: usize,
    next_request: usize,
}

impl Pusher {
    fn new(n: usize, client: &str, store: &str, proxy: SocketAddr) -> Pusher {
        Pusher {
            n,
            report: PusherReport {
                client: client.to_string(),
                store: store.to_string(),
                ..Default::default()
            },
            proxy,
            head: 0,
            next_id: 0,
            next_request: 0,
        }
    }

    /// Appends what a socket delivered; a socket's stream continues exactly
    /// where the last one ended (no gap, no repeat).
    fn apply(&mut self, m: &Value) {
        for (seq, id) in batch_ids(m) {
            assert_eq!(
                seq,
                self.head + 1,
                "{}: after {} got seq {seq}: {m}",
                self.report.client,
                self.head
            );
            self.head = seq;
            self.report.seen.insert(seq, id);
        }
    }

    /// A socket through the proxy, pulled up to date from `head`.
    fn connect(&mut self, storm: &Storm) -> Option<Ws> {
        let path = v03_path(&self.report.store, TOKEN);
        let mut ws = match Ws::try_connect(self.proxy, &path) {
            Ok(ws) => ws,
            Err(e) => {
                self.report.failed_connects.push(e.to_string());
                storm
                    .failed_connects
                    .lock()
                    .push(format!("{}: {e}", self.report.client));
                std::thread::sleep(Duration::from_millis(200));
                return None;
            }
        };
        let rid = format!("{}-pull{}", self.report.client, self.next_request);
        self.next_request += 1;
        ws.send_text(&format!(
            r#"{{"_tag":"WSMessage.PullReq","requestId":"{rid}","cursor":{}}}"#,
            self.head
        ));
        loop {
            match read(&mut ws) {
                Read::Dropped(why) => {
                    self.report.dropped.push(why);
                    return None;
                }
                Read::Msg(m) => {
                    // Broadcasts from before the pull took over the socket's
                    // subscription are within what the pull returns.
                    if m["requestId"]["context"] != "pull" {
                        continue;
                    }
                    self.apply(&m);
                    if m["remaining"] == 0 {
                        return Some(ws);
                    }
                }
            }
        }
    }

    /// Sends the push of `pending` (new ids when empty, or the ids of a
    /// push whose answer was lost, unless the log shows them stored) on
    /// the head; returns its request id and the seq num of its last event.
    fn send_push(&mut self, socket: &mut Ws, pending: &mut Vec<String>) -> (String, i64) {
        let client = self.report.client.clone();
        let seen: HashSet<&String> = self.report.seen.values().collect();
        if pending.iter().any(|id| seen.contains(id)) {
            // Stored before the socket dropped (a batch is all or nothing).
            assert!(
                pending.iter().all(|id| seen.contains(id)),
                "{client}: half a batch"
            );
            pending.clear();
            self.report.stored_unanswered += 1;
        }
        if pending.is_empty() {
            let n = 1 + self.next_id % 3;
            *pending = (0..n)
                .map(|i| format!("{client}-{:04}", self.next_id + i))
                .collect();
            self.next_id += n;
        }
        let rid = format!("{client}-r{}", self.next_request);
        self.next_request += 1;
        let events: Vec<String> = pending
            .iter()
            .enumerate()
            .map(|(i, id)| event_json(self.head + 1 + i as i64, id, &client))
            .collect();
        socket.send_text(&v03_push(&rid, &format!("[{}]", events.join(","))));
        (rid, self.head + pending.len() as i64)
    }

    /// Reads until the answer to `rid`, and after an ack until the push's
    /// own broadcast (it follows the ack), so the next push starts on it.
    fn await_answer(
        &mut self,
        socket: &mut Ws,
        (rid, last): (String, i64),
        pending: &mut Vec<String>,
        storm: &Storm,
    ) -> Outcome {
        let client = self.report.client.clone();
        let mut acked = false;
        while !acked || self.head < last {
            let m = match read(socket) {
                Read::Msg(m) => m,
                Read::Dropped(why) => {
                    self.report.dropped.push(why);
                    return Outcome::Dropped;
                }
            };
            match m["_tag"].as_str() {
                Some("WSMessage.PullRes") => self.apply(&m),
                Some("WSMessage.PushAck") => {
                    assert_eq!(m["requestId"], rid.as_str(), "{client}: {m}");
                    assert!(
                        !self.report.acked.iter().any(|(r, _)| *r == rid),
                        "{client}: {rid} acknowledged twice"
                    );
                    self.report
                        .acked
                        .push((rid.clone(), std::mem::take(pending)));
                    storm.acks[self.n].fetch_add(1, Ordering::SeqCst);
                    if storm.killed.load(Ordering::SeqCst) {
                        self.report.acks_after_kill += 1;
                        storm.acks_after_kill[self.n].fetch_add(1, Ordering::SeqCst);
                    }
                    acked = true;
                }
                Some("WSMessage.Error") => {
                    // Another pusher won the round; its events arrived
                    // before this answer. Push again on the new head.
                    assert_eq!(m["requestId"], rid.as_str(), "{client}: {m}");
                    let message = m["message"].as_str().unwrap_or("");
                    assert!(
                        message.starts_with("Invalid parent event number"),
                        "{client}: a refusal other than a stale parent: {m}"
                    );
                    self.report.refused += 1;
                    return Outcome::Refused;
                }
                _ => panic!("{client}: unexpected {m}"),
            }
        }
        Outcome::Acked
    }

    fn run(mut self, storm: &Storm) -> PusherReport {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut ws: Option<Ws> = None;
        // The ids of the push being made. When a socket drops before its
        // answer, they may be stored or not; the next pull says which.
        let mut pending: Vec<String> = Vec::new();
        while !storm.stop.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "{}: still pushing after 120 s",
                self.report.client
            );
            let Some(mut socket) = ws.take() else {
                ws = self.connect(storm);
                continue;
            };
            let sent = self.send_push(&mut socket, &mut pending);
            match self.await_answer(&mut socket, sent, &mut pending, storm) {
                Outcome::Acked | Outcome::Refused => ws = Some(socket),
                Outcome::Dropped => {}
            }
        }
        self.report
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Acked,
    Refused,
    /// The socket ended before the answer.
    Dropped,
}

/// `kill -9` of an instance; returns once it is dead (its port refuses:
/// its sockets close as it exits; the zombie is reaped when dropped).
fn kill_9(victim: &ServerProcess) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &victim.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL: {status}");
    while std::net::TcpStream::connect(victim.addr).is_ok() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn sigkill_during_push_storm(kind: ProxyKind) {
    let tag = format!("proxy_kill_{}", kind.name());
    let _w = watchdog("proxy_sigkill", Duration::from_secs(170));
    let d = Deployment::start(kind, &tag, TOKEN, ADMIN, false);
    let count = STORES.len() * PUSHERS_PER_STORE;
    let storm = Arc::new(Storm::new(count));
    // However this test ends, the pushers stop.
    struct StopOnDrop(Arc<Storm>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::SeqCst);
        }
    }
    let _stop = StopOnDrop(storm.clone());
    let started = Instant::now();
    let pushers: Vec<_> = (0..count)
        .map(|i| {
            let pusher = Pusher::new(i, &format!("p{i}"), STORES[i % STORES.len()], d.proxy.addr);
            let storm = storm.clone();
            std::thread::spawn(move || pusher.run(&storm))
        })
        .collect();
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within 60 s"
            );
            assert!(
                !pushers.iter().any(|p| p.is_finished()),
                "a pusher ended early (see its panic above)"
            );
            let failed = storm.failed_connects.lock().clone();
            assert!(
                failed.is_empty(),
                "connecting through the proxy failed: {failed:?}\n{}",
                d.context()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // Every pusher is in full swing (each instance has some of them).
    wait_for("2 acknowledged pushes of every pusher", &|| {
        storm.each_has(2, false)
    });
    // Mid-storm: pushes in flight on the instance's sockets die with it.
    kill_9(&d.servers[0]);
    storm.killed.store(true, Ordering::SeqCst);
    let acks_at_kill = storm.total();
    let killed_at = Instant::now();
    // Every pusher goes on, those that lost their socket too.
    wait_for(
        "3 acknowledged pushes of every pusher after the kill",
        &|| storm.each_has(3, true),
    );
    let recovered_in = killed_at.elapsed();
    storm.stop.store(true, Ordering::SeqCst);
    let reports: Vec<PusherReport> = pushers
        .into_iter()
        .map(|p| {
            p.join()
                .unwrap_or_else(|_| panic!("a pusher failed\n{}", d.context()))
        })
        .collect();
    let ctx = || {
        let lines: Vec<String> = reports
            .iter()
            .map(|r| {
                format!(
                    "  {} on {}: {} acked, {} after the kill, {} refused, dropped {:?}, failed connects {:?}",
                    r.client,
                    r.store,
                    r.acked.len(),
                    r.acks_after_kill,
                    r.refused,
                    r.dropped,
                    r.failed_connects
                )
            })
            .collect();
        format!("{}\n{}", lines.join("\n"), d.context())
    };

    // The kill hit the storm, and the proxy hid the dead instance: every
    // pusher went on (those that lost their socket too), and no attempt to
    // connect through the proxy failed.
    assert!(
        reports.iter().any(|r| !r.dropped.is_empty()),
        "no pusher lost its socket: the kill missed the storm\n{}",
        ctx()
    );
    for r in &reports {
        assert!(
            r.failed_connects.is_empty(),
            "{}: {:?}\n{}",
            r.client,
            r.failed_connects,
            ctx()
        );
    }
    let recovered: usize = reports
        .iter()
        .filter(|r| !r.dropped.is_empty() && r.acks_after_kill > 0)
        .count();
    assert!(
        recovered > 0,
        "no pusher that lost its socket pushed again\n{}",
        ctx()
    );

    for store in STORES {
        let rows = d
            .db()
            .client()
            .query(
                "SELECT seq_num, parent_seq_num, client_id, args::text FROM events \
                 WHERE store_id = $1 ORDER BY seq_num",
                &[&store],
            )
            .unwrap();
        let log: Vec<(i64, String)> = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let (seq, parent): (i64, i64) = (row.get(0), row.get(1));
                assert_eq!(
                    (seq, parent),
                    (i as i64 + 1, i as i64),
                    "{store}: not contiguous\n{}",
                    ctx()
                );
                let args: Value = serde_json::from_str(row.get::<_, &str>(3)).unwrap();
                let id = args["id"].as_str().unwrap().to_string();
                let client: String = row.get(2);
                assert!(
                    id.starts_with(&format!("{client}-")),
                    "{store} seq {seq}: {id} by {client}"
                );
                (seq, id)
            })
            .collect();
        let stored: Vec<&String> = log.iter().map(|(_, id)| id).collect();
        let unique: HashSet<&String> = stored.iter().copied().collect();
        assert_eq!(
            unique.len(),
            stored.len(),
            "{store}: an event stored twice\n{}",
            ctx()
        );
        for r in reports.iter().filter(|r| r.store == store) {
            for (rid, ids) in &r.acked {
                for id in ids {
                    assert!(
                        unique.contains(id),
                        "{}: {rid} acked {id}, not stored\n{}",
                        r.client,
                        ctx()
                    );
                }
            }
            // What the pusher's sockets delivered is the log, seq for seq.
            for (seq, id) in &r.seen {
                assert_eq!(
                    Some(id),
                    log.get(*seq as usize - 1).map(|(_, id)| id),
                    "{}: seq {seq}\n{}",
                    r.client,
                    ctx()
                );
            }
        }
        // And a fresh client through the proxy reads the same log.
        let mut fresh = Ws::v03(d.proxy.addr, store);
        fresh.send_text(r#"{"_tag":"WSMessage.PullReq","requestId":"fresh"}"#);
        let mut pulled = Vec::new();
        loop {
            let m = fresh.recv();
            if m["requestId"]["context"] != "pull" {
                continue;
            }
            pulled.extend(batch_ids(&m));
            if m["remaining"] == 0 {
                break;
            }
        }
        assert_eq!(pulled, log, "{store}: a fresh pull through the proxy");
    }
    let acked: usize = reports.iter().map(|r| r.acked.len()).sum();
    eprintln!(
        "[{tag}] {acked} pushes acked ({} before the kill), {} refused as stale, {} sockets dropped, \
         {} unanswered pushes found stored; \
         {:?} from the kill to 3 more acks of every pusher; {:?} in all; events stored: {}",
        acks_at_kill,
        reports.iter().map(|r| r.refused).sum::<usize>(),
        reports.iter().map(|r| r.dropped.len()).sum::<usize>(),
        reports.iter().map(|r| r.stored_unanswered).sum::<usize>(),
        recovered_in,
        started.elapsed(),
        d.db().all_event_rows()
    );
}

#[test]
fn nginx_sigkill_of_an_instance_during_a_push_storm() {
    sigkill_during_push_storm(ProxyKind::Nginx);
}

#[test]
fn caddy_sigkill_of_an_instance_during_a_push_storm() {
    sigkill_during_push_storm(ProxyKind::Caddy);
}

// ---------------------------------------------------------------------------------------------
// A push in PostgreSQL's hands when its instance dies
// ---------------------------------------------------------------------------------------------

/// The case the storm meets only by chance, made certain: PostgreSQL holds
/// a push (the events table is locked) when its instance is killed. Once
/// the lock goes, PostgreSQL commits it all the same, notice included,
/// though nobody is left to answer the client. A subscriber on another
/// instance gets the events live; the client reconnects through the proxy,
/// finds its unanswered events in its pull, does not push them again, and
/// goes on from there.
fn push_held_in_postgresql_when_its_instance_dies(kind: ProxyKind) {
    let tag = format!("proxy_held_{}", kind.name());
    let _w = watchdog("proxy_held", Duration::from_secs(90));
    let d = Deployment::start(kind, &tag, TOKEN, ADMIN, false);
    let storm = Storm::new(1);
    let mut p = Pusher::new(0, "q", "held", d.proxy.addr);
    let mut socket = p.connect(&storm).expect("a socket through the proxy");
    let mut pending = Vec::new();
    let sent = p.send_push(&mut socket, &mut pending);
    assert_eq!(
        p.await_answer(&mut socket, sent, &mut pending, &storm),
        Outcome::Acked
    );
    let spread = d.sockets_per_instance("held");
    assert_eq!(spread.iter().sum::<usize>(), 1, "{spread:?}");
    let victim = spread.iter().position(|&n| n == 1).unwrap();
    let mut watcher = Ws::v03(d.servers[(victim + 1) % 3].addr, "held");
    watcher.ping_v03();

    let lock = d.db().lock_events();
    let sent = p.send_push(&mut socket, &mut pending);
    let held = pending.clone();
    d.db()
        .wait_for_lock_waiters(APPEND_SQL_FRAGMENT, 1, Duration::from_secs(10));
    kill_9(&d.servers[victim]);
    lock.release();
    assert_eq!(
        p.await_answer(&mut socket, sent, &mut pending, &storm),
        Outcome::Dropped,
        "the push had no answer: its instance is dead"
    );
    let announced = watcher.recv_within(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "no live delivery on another instance: the dead instance's commit was not announced\n{}",
            d.context()
        )
    });
    let live: Vec<String> = batch_ids(&announced)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(
        live, held,
        "committed after its instance died, and announced"
    );

    let mut socket = p.connect(&storm).expect("a socket through the proxy again");
    let sent = p.send_push(&mut socket, &mut pending);
    assert_eq!(
        p.report.stored_unanswered, 1,
        "the pull showed the unanswered push stored, so it was not pushed again"
    );
    assert_eq!(
        p.await_answer(&mut socket, sent, &mut pending, &storm),
        Outcome::Acked
    );
    let rows: Vec<(i64, String)> = d
        .db()
        .client()
        .query(
            "SELECT seq_num, args::text FROM events WHERE store_id = 'held' ORDER BY seq_num",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let args: Value = serde_json::from_str(r.get::<_, &str>(1)).unwrap();
            (r.get(0), args["id"].as_str().unwrap().to_string())
        })
        .collect();
    let expected: Vec<(i64, String)> = ["q-0000", "q-0001", "q-0002", "q-0003"]
        .iter()
        .enumerate()
        .map(|(i, id)| (i as i64 + 1, id.to_string()))
        .collect();
    assert_eq!(rows, expected, "each event once, in order\n{}", d.context());
    assert_eq!(
        p.report
            .acked
            .iter()
            .map(|(_, ids)| ids.clone())
            .collect::<Vec<_>>(),
        vec![vec!["q-0000".to_string()], vec!["q-0003".to_string()]],
        "acknowledged: the first and the last push, not the held one"
    );
    assert_eq!(batch_ids(&watcher.recv()), vec![(4, "q-0003".to_string())]);
}

#[test]
fn nginx_a_push_held_in_postgresql_when_its_instance_dies_is_stored_once() {
    push_held_in_postgresql_when_its_instance_dies(ProxyKind::Nginx);
}

#[test]
fn caddy_a_push_held_in_postgresql_when_its_instance_dies_is_stored_once() {
    push_held_in_postgresql_when_its_instance_dies(ProxyKind::Caddy);
}
