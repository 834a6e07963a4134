//! Every way a connection can end frees both of its threads and its socket:
//! a clean close, a TCP reset at any point (during direct replies, a pull, a
//! broadcast, halfway through a frame), an idle timeout, a slow consumer
//! being dropped, and shutdown. Both generations, a few hundred connections.
//!
//! The server runs as a child process, so its thread and descriptor counts
//! (`/proc/<pid>`) hold nothing of the test's own. Its pool has a fixed size,
//! so the database does not move the descriptor count either.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// Connections per scenario and generation.
const N: usize = 24;

/// (threads, open descriptors) of process `pid`. The shared storage-read
/// threads (`src/sync/reads.rs`) are left out: they start on demand and end
/// after a few idle seconds, whatever the connections do.
fn counts(pid: u32) -> (usize, usize) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.trim_end() != "storage-read")
        })
        .count();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (threads, fds)
}

/// Waits until the server is back at `base`; the last counts otherwise.
fn settles_to(pid: u32, base: (usize, usize), within: Duration) -> Result<(), (usize, usize)> {
    let deadline = Instant::now() + within;
    loop {
        let now = counts(pid);
        if now == base {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Gen {
    V03,
    V04,
}

impl Gen {
    fn path(self, store: &str) -> String {
        match self {
            Gen::V03 => v03_path(store, TOKEN),
            Gen::V04 => v04_path(store, TOKEN, "ws"),
        }
    }

    fn ping(self) -> &'static str {
        match self {
            Gen::V03 => r#"{"_tag":"WSMessage.Ping","requestId":"ping"}"#,
            Gen::V04 => r#"{"_tag":"Ping"}"#,
        }
    }

    /// A pull from the start; `live` keeps a 0.4 stream open afterwards
    /// (a 0.3 socket is live from the moment it opens).
    fn pull(self, store: &str, live: bool) -> String {
        match self {
            Gen::V03 => r#"{"_tag":"WSMessage.PullReq","requestId":"pull"}"#.to_string(),
            Gen::V04 => v04_pull("1", "SyncWsRpc.Pull", store, Some(live), NONE),
        }
    }

    /// A live pull from the head (`(head, backendId)`): nothing to page,
    /// live at once.
    fn pull_live_from(self, store: &str, (head, bid): &(i64, String)) -> String {
        match self {
            Gen::V03 => {
                format!(r#"{{"_tag":"WSMessage.PullReq","requestId":"pull","cursor":{head}}}"#)
            }
            Gen::V04 => v04_pull(
                "1",
                "SyncWsRpc.Pull",
                store,
                Some(true),
                &some_cursor(bid, *head),
            ),
        }
    }
}

/// Pushes `n` events in batches of 100 through a 0.3 socket and reads the acks.
fn fill(addr: SocketAddr, store: &str, n: i64) {
    let mut ws = Ws::v03(addr, store);
    let mut from = 1;
    while from <= n {
        let k = 100.min(n - from + 1);
        ws.send_text(&v03_push(&format!("f{from}"), &events(from, k, "fill")));
        ws.await_v03_ack();
        from += k;
    }
    ws.ws.close(None).unwrap();
    while ws.ws.read().is_ok() {}
}

/// A 0.3 pusher that pushes `pushes` batches of `size` events of `blob`
/// bytes each onto a store whose head is `head`, reading what it receives.
fn push_batches(addr: SocketAddr, store: &str, head: i64, pushes: i64, size: i64, blob: usize) {
    let mut ws = Ws::v03(addr, store);
    let blob = "y".repeat(blob);
    let mut seq = head;
    for p in 0..pushes {
        let items: Vec<String> = (seq + 1..=seq + size)
            .map(|i| {
                format!(
                    r#"{{"name":"b","args":{{"blob":"{blob}","i":{i}}},"seqNum":{i},"parentSeqNum":{},"clientId":"p","sessionId":"s"}}"#,
                    i - 1
                )
            })
            .collect();
        ws.send_text(&v03_push(
            &format!("b{p}"),
            &format!("[{}]", items.join(",")),
        ));
        ws.await_v03_ack();
        seq += size;
    }
    ws.ws.close(None).unwrap();
    while ws.ws.read().is_ok() {}
}

/// The store's head and backendId.
fn head_of(addr: SocketAddr, store: &str) -> (i64, String) {
    let mut ws = Ws::v04(addr, store);
    ws.send_text(&v04_pull("1", "SyncWsRpc.Pull", store, Some(false), NONE));
    let mut head = 0;
    loop {
        let m = ws.recv();
        assert_eq!(m["_tag"], "Chunk", "{m}");
        ws.send_text(r#"{"_tag":"Ack","requestId":"1"}"#);
        for v in m["values"].as_array().unwrap() {
            if let Some(last) = seqs(&v["batch"]).last() {
                head = *last;
            }
            if v["pageInfo"]["_tag"] == "NoMore" {
                return (head, v["backendId"].as_str().unwrap().to_string());
            }
        }
    }
}

/// Each way a connection ends, `n` times per generation (the slow consumer
/// scenario drops `n / 4` subscribers per generation).
fn every_ending(srv: &ServerProcess, n: usize) {
    let addr = srv.addr;
    for gen in [Gen::V03, Gen::V04] {
        let store = format!("end-{gen:?}");
        if head_of(addr, &store).0 == 0 {
            fill(addr, &store, 3_000);
        }
        let path = gen.path(&store);

        // A clean close: close frame, the server's reply, FIN.
        for _ in 0..n {
            let mut ws = Ws::connect(addr, &path);
            ws.send_text(gen.ping());
            ws.recv();
            ws.ws.close(None).unwrap();
            while ws.ws.read().is_ok() {}
        }
        // A reset while the server answers 200 pings (direct replies).
        for _ in 0..n {
            let mut s = raw_ws(addr, &path);
            s.write_all(&masked_text(gen.ping()).repeat(200)).unwrap();
            reset(s);
        }
        // A reset 10 ms into a 3,000-event pull answer.
        for _ in 0..n {
            let mut s = raw_ws(addr, &path);
            s.write_all(&masked_text(&gen.pull(&store, false))).unwrap();
            std::thread::sleep(Duration::from_millis(10));
            reset(s);
        }
        // A reset halfway through a frame.
        for _ in 0..n {
            let mut s = raw_ws(addr, &path);
            let frame = masked_text(gen.ping());
            s.write_all(&frame[..frame.len() / 2]).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            reset(s);
        }
        // Resets during broadcasts: live subscribers go away one by one
        // while a pusher's batches fan out to them.
        let at = head_of(addr, &store);
        let subs: Vec<TcpStream> = (0..n)
            .map(|_| {
                let mut s = raw_ws(addr, &path);
                s.write_all(&masked_text(&gen.pull_live_from(&store, &at)))
                    .unwrap();
                s
            })
            .collect();
        let pusher = {
            let store = store.clone();
            std::thread::spawn(move || push_batches(addr, &store, at.0, 40, 20, 2_000))
        };
        for s in subs {
            std::thread::sleep(Duration::from_millis(3));
            reset(s);
        }
        pusher.join().unwrap();
        // Slow consumers: live subscribers that never read are dropped when
        // their queue overflows (`--outbound-queue 8`); the pusher goes on.
        let at = head_of(addr, &store);
        let slow: Vec<TcpStream> = (0..n / 4)
            .map(|_| {
                let mut s = raw_ws(addr, &path);
                s.write_all(&masked_text(&gen.pull_live_from(&store, &at)))
                    .unwrap();
                s
            })
            .collect();
        let dropped_before = dropped_lines(srv);
        push_batches(addr, &store, at.0, 60, 10, 50_000);
        assert!(
            dropped_lines(srv) >= dropped_before + slow.len(),
            "every slow subscriber was dropped for a full queue"
        );
        drop(slow);
    }
    // Plain HTTP: a keep-alive connection reset between requests, and a
    // 0.4 HTTP pull reset before its answer is read.
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).unwrap();
        reset(s);
    }
    let store = "end-V04";
    let body = v04_pull("h", "SyncHttpRpc.Pull", store, None, NONE);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            v04_path(store, TOKEN, "http"),
            body.len()
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(2));
        reset(s);
    }
}

fn dropped_lines(srv: &ServerProcess) -> usize {
    srv.log
        .lock()
        .iter()
        .filter(|l| l.contains("ws dropped ") && l.contains("reason=\"outbound queue full"))
        .count()
}

fn start(db: &TestDb, extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--auth-token",
        TOKEN,
        // A fixed pool: its descriptors do not move during the test.
        "--db-pool-min",
        "4",
        "--db-pool-max",
        "4",
        "--outbound-queue",
        "8",
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(&db.url, &args)
}

#[test]
fn every_ending_frees_threads_and_sockets() {
    let _w = watchdog("connection_end", Duration::from_secs(240));
    let db = TestDb::create("conn_end");
    let srv = start(&db, &[]);
    let pid = srv.child.id();
    // Warm up: stores loaded, pool connections open, allocator arenas made.
    every_ending(&srv, 2);
    std::thread::sleep(Duration::from_millis(500));
    let base = counts(pid);
    let before = open_counts(srv.addr);

    every_ending(&srv, N);

    if let Err(now) = settles_to(pid, base, Duration::from_secs(20)) {
        panic!(
            "after every ending: {now:?} threads/descriptors, {base:?} before; \
             server says {}",
            open_counts(srv.addr)
        );
    }
    // The server's own counts agree: only the /health request is open.
    assert_eq!(open_counts(srv.addr), before);
    assert_eq!(
        before,
        serde_json::json!({"connections": 1, "websockets": 0, "threads": 1})
    );
}

#[test]
fn an_idle_timeout_frees_threads_and_sockets() {
    let _w = watchdog("idle_end", Duration::from_secs(120));
    let db = TestDb::create("idle_end");
    let srv = start(&db, &["--ws-idle-timeout-secs", "1"]);
    let pid = srv.child.id();
    // Warm up the pool and the store.
    head_of(srv.addr, "idle");
    std::thread::sleep(Duration::from_millis(300));
    let base = counts(pid);
    let mut held = Vec::new();
    for gen in [Gen::V03, Gen::V04] {
        for _ in 0..N {
            let mut s = raw_ws(srv.addr, &gen.path("idle"));
            s.write_all(&masked_text(gen.ping())).unwrap();
            held.push(s);
        }
    }
    // Open while held: two threads per socket (the writer starts just
    // after the 101, so give it a moment).
    assert_eq!(open_counts(srv.addr)["websockets"], 2 * N);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counts(pid).0 < base.0 + 4 * N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(counts(pid).0 >= base.0 + 4 * N, "{:?}", counts(pid));
    // The clients stay connected but silent; the server ends them.
    if let Err(now) = settles_to(pid, base, Duration::from_secs(20)) {
        panic!("after idle timeouts: {now:?}, {base:?} before");
    }
    // Each client sees the server close its side.
    for mut s in held {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        assert!(s.read_to_end(&mut buf).is_ok(), "EOF, not a hang");
    }
}

#[test]
fn shutdown_ends_every_connection_and_its_threads() {
    let _w = watchdog("shutdown_end", Duration::from_secs(120));
    let db = TestDb::create("shutdown_end");
    let srv = start(&db, &["--shutdown-grace-secs", "5"]);
    let addr = srv.addr;
    fill(addr, "sd", 3_000);
    let mut held = Vec::new();
    for gen in [Gen::V03, Gen::V04] {
        let path = gen.path("sd");
        for i in 0..N {
            let mut s = raw_ws(addr, &path);
            // Idle sockets, sockets in a pull answer, and sockets that
            // never read what they asked for.
            let msg = if i % 2 == 0 {
                gen.ping().to_string()
            } else {
                gen.pull("sd", true)
            };
            s.write_all(&masked_text(&msg)).unwrap();
            held.push(s);
        }
    }
    for _ in 0..N {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut srv = srv;
    srv.sigterm();
    let exit = srv.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "{exit:?}");
    let log = srv.log.lock().join("\n");
    assert!(log.contains("shutting down:"), "{log}");
    assert!(
        !log.contains("did not finish"),
        "every connection ended within the grace period:\n{log}"
    );
    drop(held);
}
