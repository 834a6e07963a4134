//! The 0.3 catch-up (spec sync-cf-0.3 §5 #1, issue 13) with the REAL 0.3.1 client.
//!
//! The client reaches the server through a small TCP relay the test controls. It boots (pulls
//! the empty store), then the relay cuts its socket and refuses it while another real client
//! writes 10 events; then the relay lets it reconnect. The 0.3 client sends no PullReq on the new
//! socket (a limit of that client), so it does not know those 10 events when it commits its own:
//! its push carries parent 0 on a socket that has received nothing. The server refuses it, then
//! sends the missed events as one push-context `PullRes`; the client rebases and pushes again,
//! and converges without a reload. Without the catch-up its pushing parks for good: it times out
//! with its events pending (checked by hand when the catch-up was written).
mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::node::*;
use common::{watchdog, EventLog, ServerProcess};
use parking_lot::Mutex;

/// A TCP relay to `upstream` that can cut every connection it carries and refuse new ones.
struct Relay {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    /// Connections whose server side answered (the upgrade went through).
    answered: Arc<AtomicUsize>,
    /// Pull answers the server sent (server frames are unmasked: the text shows).
    pull_answers: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    server: Arc<ServerProcess>,
}

impl Relay {
    fn start(server: Arc<ServerProcess>) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let answered = Arc::new(AtomicUsize::new(0));
        let pull_answers = Arc::new(AtomicUsize::new(0));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let upstream = server.addr;
        let (o, a, p, c) = (
            open.clone(),
            answered.clone(),
            pull_answers.clone(),
            conns.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !o.load(SeqCst) {
                    // Refused: the client sees its connection fail before `open`, and retries.
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                c.lock()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    None,
                );
                pump(server, client, Some((a.clone(), p.clone())));
            }
        });
        Relay {
            addr,
            open,
            answered,
            pull_answers,
            conns,
            server,
        }
    }

    /// Ends every connection and refuses new ones.
    fn cut_and_close(&self) {
        self.open.store(false, SeqCst);
        for s in self.conns.lock().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread; from the server, counts the first bytes that pass and
/// the pull answers.
type Counters = (Arc<AtomicUsize>, Arc<AtomicUsize>);
fn pump(mut from: TcpStream, mut to: TcpStream, counters: Option<Counters>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        let mut first = true;
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
            if let Some((answered, pulls)) = &counters {
                if first {
                    first = false;
                    answered.fetch_add(1, SeqCst);
                }
                let pattern = br#""context":"pull""#;
                let n = buf[..n]
                    .windows(pattern.len())
                    .filter(|w| w == pattern)
                    .count();
                pulls.fetch_add(n, SeqCst);
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

impl Target for Relay {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn context(&self) -> String {
        self.server.context()
    }
}

fn wait_until(what: &str, within: Duration, ok: impl Fn() -> bool, target: &dyn Target) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}\n{}",
            target.context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_reconnected_v03_client_pushing_on_a_stale_parent_catches_up_and_converges() {
    let _dog = watchdog("v03_catch_up", Duration::from_secs(170));
    prepare_clients("v03");
    let db = EventLog::sqlite("v03_catch_up");
    let server = Arc::new(ServerProcess::start(
        &db.url(),
        &["--auth-token", E2E_TOKEN],
    ));
    let relay = Relay::start(server.clone());
    let store_id = format!("e2e-catch-up-{}", std::process::id());
    let n = EVENTS_PER_WRITER;

    // A boots through the relay (its pull answer: the empty store) and waits.
    let a_spec = ClientSpec {
        wait_go: true,
        ..ClientSpec::writer(Kind::V03, "A", 2 * n)
    };
    let mut a = spawn_client(&relay, &store_id, &a_spec);
    if a.ready.recv_timeout(BOOT_TIMEOUT).is_err() {
        abort(&relay, vec![a], "A did not boot");
    }
    wait_until(
        "A's pull answered",
        Duration::from_secs(30),
        || relay.pull_answers.load(SeqCst) > 0,
        &relay,
    );

    // A's socket is cut, and its reconnects are refused while B writes.
    relay.cut_and_close();
    let b_spec = ClientSpec::writer(Kind::V03, "B", n);
    let b = spawn_client(&*server, &store_id, &b_spec).finish();
    assert_converged(&b, &b_spec.own_ids().into_iter().collect(), &*server);
    assert_eq!(db.rows(&store_id).len(), n);

    // A reconnects: a new socket, on which the 0.3 client sends no PullReq.
    let before = relay.answered.load(SeqCst);
    relay.open.store(true, SeqCst);
    wait_until(
        "A reconnected",
        Duration::from_secs(30),
        || relay.answered.load(SeqCst) > before,
        &relay,
    );
    // A commits: its push carries parent 0 (it never saw B's events).
    a.stdin
        .take()
        .unwrap()
        .write_all(b"go\n")
        .expect("release A");
    let a = a.finish();

    let all: BTreeSet<String> = a_spec
        .own_ids()
        .into_iter()
        .chain(b_spec.own_ids())
        .collect();
    assert_converged(&a, &all, &relay);
    assert_database(&db, &store_id, &[a_spec, b_spec], &relay);
    let log = server.log.lock().join("\n");
    assert!(
        log.contains("stale push caught up") && log.contains("events=1..10"),
        "the server caught A up\n{}",
        tail(&log, 40)
    );
}
