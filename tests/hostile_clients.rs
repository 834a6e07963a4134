//! Issue 13's hostile clients, each against the server binary (a child
//! process, so its memory is its own) while a well-behaved 0.4 client keeps
//! pushing ~150 kB events and a subscriber of the same store receives every
//! one of them live. For each attack:
//!
//! - the attacker is cut off or refused as designed;
//! - every good push is acknowledged and every broadcast arrives, in order;
//! - the server's resident memory (VmRSS) after the attack's work is at
//!   most [`RSS_MARGIN`] above what it was before. The good traffic alone
//!   is ~[`GOOD_PUSHES`] × 150 kB = 45 MB, so a bound that did not hold
//!   (the never-reading socket's queue, the never-acking pull's held
//!   batches) would pass the margin.
//!
//! Latency (the issue's "within 2×") is not asserted here: timed assertions
//! fail on a loaded machine. benches/hostile.sh measures it (BENCHMARKS.md).
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

/// What one attack may add to the server's resident memory. The largest
/// bound in play is one socket's queue, MAX_QUEUED_BYTES (16 MiB); the
/// rest is allocator slack and thread stacks.
const RSS_MARGIN: u64 = 32 << 20;
const GOOD_PUSHES: i64 = 300;
const STORE: &str = "good";

/// One server at a time: parallel servers would share the machine's two
/// cores and make the good client's run needlessly long.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// One ~150 kB event `seq`.
fn fat_event(seq: i64) -> String {
    format!(
        r#"[{{"name":"big","args":{{"blob":"{}","i":{seq}}},"seqNum":{seq},"parentSeqNum":{},"clientId":"good","sessionId":"s"}}]"#,
        "x".repeat(150_000),
        seq - 1
    )
}

/// The well-behaved client: a pusher, and a live subscriber that acks
/// every chunk, on the same store.
struct Good {
    pusher: Ws,
    sub: Ws,
    next: i64,
    received: i64,
}

impl Good {
    fn connect(addr: SocketAddr) -> Good {
        let pusher = Ws::v04(addr, STORE);
        let mut sub = Ws::v04(addr, STORE);
        sub.send_text(&v04_pull("sub", "SyncWsRpc.Pull", STORE, Some(true), NONE));
        let mut good = Good {
            pusher,
            sub,
            next: 1,
            received: 0,
        };
        // The (empty) backlog's one chunk, then live.
        good.receive_until(0);
        good
    }

    /// Pushes `n` events one by one, each acknowledged, and reads the
    /// subscriber's copies as they come.
    fn push(&mut self, n: i64) {
        for _ in 0..n {
            let id = format!("g{}", self.next);
            self.pusher.send_text(&v04_push(
                &id,
                "SyncWsRpc.Push",
                STORE,
                &fat_event(self.next),
                NONE,
            ));
            assert_eq!(self.pusher.recv(), push_ok(&id), "good push {}", self.next);
            self.next += 1;
            self.receive_until(self.next - 1);
        }
    }

    /// Reads the subscriber's chunks (acking each) until it has `seq`.
    fn receive_until(&mut self, seq: i64) {
        loop {
            let m = self.sub.recv();
            assert_eq!(m["_tag"], "Chunk", "{m}");
            let batch = &m["values"][0]["batch"];
            for s in seqs(batch) {
                assert_eq!(s, self.received + 1, "broadcasts in order, none lost");
                self.received = s;
            }
            self.sub.send(json!({"_tag": "Ack", "requestId": "sub"}));
            if self.received >= seq {
                return;
            }
        }
    }
}

/// Starts a server, warms the good client up, runs `attack` beside
/// `GOOD_PUSHES` good pushes, and checks memory; `attack` returns a check
/// run after the good pushes (that the attacker was cut or refused).
fn under_attack(
    name: &'static str,
    flags: &[&str],
    attack: impl FnOnce(&ServerProcess) -> Box<dyn FnOnce(&ServerProcess)>,
) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog(name, Duration::from_secs(240));
    let dir = TempDir::new(name);
    let mut args = vec!["--auth-token", TOKEN, "--admin-secret", ADMIN];
    args.extend_from_slice(flags);
    let srv = ServerProcess::start(&dir.db_url(), &args);
    let pid = srv.child.id();
    let mut good = Good::connect(srv.addr);
    // Warm up: the allocator's arenas, SQLite's cache, the threads.
    good.push(30);
    let before = rss_bytes(pid);
    let check = attack(&srv);
    good.push(GOOD_PUSHES);
    let after = rss_bytes(pid);
    check(&srv);
    eprintln!(
        "{name}: VmRSS before {} MiB, after {} MiB",
        before >> 20,
        after >> 20
    );
    assert!(
        after <= before + RSS_MARGIN,
        "{name}: VmRSS grew from {before} to {after} bytes (margin {RSS_MARGIN})"
    );
    assert_eq!(good.received, 30 + GOOD_PUSHES);
}

#[test]
fn a_client_that_never_reads_is_dropped() {
    under_attack("never_reads", &[], |srv| {
        // Subscribes to the good store, then reads nothing: its socket
        // buffers fill, then its queue, and the server cuts it off.
        let mut s = raw_ws(srv.addr, &v04_path(STORE, TOKEN, "ws"));
        socket2::SockRef::from(&s)
            .set_recv_buffer_size(4096)
            .unwrap();
        s.write_all(&masked_text(&v04_pull(
            "p",
            "SyncWsRpc.Pull",
            STORE,
            Some(true),
            NONE,
        )))
        .unwrap();
        Box::new(move |srv: &ServerProcess| {
            srv.wait_for_log("outbound queue full", Duration::from_secs(30));
            drop(s);
        })
    });
}

#[test]
fn a_client_that_never_acks_holds_only_its_window() {
    // ACK_WINDOW 2 so that the good store's warm-up (30 events of 150 kB:
    // 5 pages of ~900 kB) is a backlog longer than the window.
    under_attack("never_acks", &["--ack-window", "2"], |srv| {
        // Pulls the good store, reads everything, never acks: it gets 2
        // backlog pages and stays in its backlog; the live batches of the
        // good pushes are held for it up to MAX_HELD_BYTES (4 MiB), then
        // dropped (to be read from the log if it ever acks).
        let mut ws = Ws::v04(srv.addr, STORE);
        ws.send_text(&v04_pull("p", "SyncWsRpc.Pull", STORE, Some(true), NONE));
        let chunks = Arc::new(Mutex::new(0usize));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (chunks, stop) = (chunks.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Some(m) = ws.recv_within(Duration::from_millis(200)) {
                        assert_eq!(m["_tag"], "Chunk", "{m}");
                        *chunks.lock().unwrap() += 1;
                    }
                }
            })
        };
        Box::new(move |_: &ServerProcess| {
            stop.store(true, Ordering::SeqCst);
            reader.join().unwrap();
            let n = *chunks.lock().unwrap();
            assert_eq!(n, 2, "chunks sent without an Ack");
        })
    });
}

#[test]
fn a_client_opening_thousands_of_pull_streams_is_refused_past_the_limit() {
    under_attack("pull_streams", &[], |srv| {
        let mut ws = Ws::v04(srv.addr, "other");
        let streams = 5000;
        for i in 0..streams {
            ws.send_text(&v04_pull(
                &format!("p{i}"),
                "SyncWsRpc.Pull",
                "other",
                Some(true),
                NONE,
            ));
        }
        // Each of the first MAX_PULL_STREAMS (8) gets its (empty) backlog;
        // every other is refused with a Die.
        let (mut refused, mut chunks) = (0, 0);
        while refused + chunks < streams {
            let m = ws.recv();
            if m["_tag"] == "Chunk" {
                chunks += 1;
                continue;
            }
            assert_eq!(m["exit"]["cause"]["_tag"], "Die", "{m}");
            assert_eq!(
                m["exit"]["cause"]["defect"],
                "too many pull streams on one socket (at most 8)"
            );
            refused += 1;
        }
        assert_eq!((chunks, refused), (8, streams - 8));
        Box::new(move |_: &ServerProcess| drop(ws))
    });
}

#[test]
fn clients_trickling_request_heads_get_408() {
    under_attack("trickle", &["--request-head-timeout-secs", "2"], |srv| {
        // 100 connections, each sending its head a byte every 500 ms.
        let addr = srv.addr;
        let tricklers: Vec<_> = (0..100)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
                    let mut answer = Vec::new();
                    for b in head {
                        if s.write_all(&[*b]).is_err() {
                            break;
                        }
                        let mut buf = [0u8; 256];
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => answer.extend_from_slice(&buf[..n]),
                            Err(_) => {} // nothing yet: next byte
                        }
                        if !answer.is_empty() {
                            break;
                        }
                    }
                    String::from_utf8_lossy(&answer).into_owned()
                })
            })
            .collect();
        Box::new(move |_: &ServerProcess| {
            for t in tricklers {
                let answer = t.join().unwrap();
                assert!(
                    answer.starts_with("HTTP/1.1 408")
                        && answer.ends_with("Request head not received in time"),
                    "{answer:?}"
                );
            }
        })
    });
}

#[test]
fn a_client_opening_connections_from_one_address_is_refused() {
    under_attack("one_address", &["--max-connections-per-ip", "200"], |srv| {
        // Connections that send nothing (each costs a thread until the
        // request-head timeout, 10 s, closes it) from 127.0.0.2, until refused.
        let held: Vec<TcpStream> = (0..200)
            .map(|_| connect_from([127, 0, 0, 2], srv.addr))
            .collect();
        // All 200 accepted (the good client's 2 sockets besides).
        wait_open_connections(srv.addr, 202, Duration::from_secs(10));
        let mut s = connect_from([127, 0, 0, 2], srv.addr);
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.ends_with("Too many connections from your address"));
        Box::new(move |_: &ServerProcess| drop(held))
    });
}
