//! Hostile clients against the sessions (issue 13; docs/fuzzing.md):
//! sequences of frames, captured ones mutated and generated ones (pushes
//! that continue the log or not, pulls from any cursor, acks and
//! interrupts of any id, admin requests with any secret), sent by several
//! 0.3 and 0.4 WebSockets and 0.4 HTTP requests to one store over the
//! in-memory storage.
//!
//! Properties: nothing panics; everything a session sends is JSON (a
//! whole `[…]` array for HTTP); the store's log stays contiguous.
//! `FUZZ_CASES` and `FUZZ_SEED` as in `tests/fuzz`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Value};

use super::testing::{env_with, ADMIN};
use super::v03::V03Session;
use super::v04_http;
use super::v04_ws::V04WsSession;
use super::Env;
use crate::protocol::fixtures::frames;
use crate::storage::Storage;
use crate::sync::testing::{MemStorage, RecordingSink};
use crate::sync::Limits;

/// Messages the sessions sent and events they stored, for the report.
static MESSAGES: AtomicU64 = AtomicU64::new(0);
static STORED: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy)]
enum Edit {
    Set(Index, u8),
    Insert(Index, &'static str),
    Delete(Index, usize),
    Truncate(Index),
}

const TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "-1",
    "0",
    "1e999",
    "9223372036854775807",
    "-9223372036854775808",
    "2.5",
    "\"None\"",
    "\"Some\"",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<Index>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut b = text.as_bytes().to_vec();
    for e in edits {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match e {
            Edit::Set(i, v) if !b.is_empty() => {
                let i = i.index(b.len());
                b[i] = *v;
            }
            Edit::Insert(i, t) => {
                let i = at(i, b.len());
                b.splice(i..i, t.bytes());
            }
            Edit::Delete(i, n) => {
                let i = at(i, b.len());
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Edit::Truncate(i) => {
                let i = at(i, b.len());
                b.truncate(i);
            }
            _ => {}
        }
    }
    // Text frames are UTF-8 (tungstenite refuses others).
    String::from_utf8_lossy(&b).into_owned()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    V03,
    V04,
}

#[derive(Debug, Clone)]
enum Frame {
    Captured(Index, Vec<Edit>),
    /// A push of `n` events continuing the log `offset` away from its head.
    Push {
        n: i64,
        offset: i64,
        backend: u8,
    },
    Pull {
        cursor: Option<i64>,
        live: Option<bool>,
        backend: u8,
    },
    Ack(u8),
    Interrupt(u8),
    Ping,
    Admin {
        reset: bool,
        right: bool,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Open(Kind),
    Send(Index, Frame),
    Http(Frame),
    Close(Index),
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        4 => (any::<Index>(), prop::collection::vec(edit(), 0..4)).prop_map(|(i, e)| Frame::Captured(i, e)),
        4 => (1i64..4, prop_oneof![4 => Just(0i64), 1 => -2i64..3], 0u8..3)
            .prop_map(|(n, offset, backend)| Frame::Push { n, offset, backend }),
        3 => (prop::option::of(prop_oneof![0i64..10, Just(i64::MAX), Just(i64::MIN), Just(-1)]),
              prop::option::of(any::<bool>()), 0u8..3)
            .prop_map(|(cursor, live, backend)| Frame::Pull { cursor, live, backend }),
        2 => (0u8..4).prop_map(Frame::Ack),
        1 => (0u8..4).prop_map(Frame::Interrupt),
        1 => Just(Frame::Ping),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(reset, right)| Frame::Admin { reset, right }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => prop_oneof![Just(Kind::V03), Just(Kind::V04)].prop_map(Op::Open),
        8 => (any::<Index>(), frame()).prop_map(|(i, f)| Op::Send(i, f)),
        2 => frame().prop_map(Op::Http),
        1 => any::<Index>().prop_map(Op::Close),
    ]
}

enum Session {
    V03(V03Session),
    V04(V04WsSession),
}

struct Socket {
    kind: Kind,
    session: Session,
    sink: Arc<RecordingSink>,
    /// Request ids this socket used (the 0.4 answers name only these).
    next_id: u64,
}

struct World {
    env: Arc<Env>,
    storage: Arc<MemStorage>,
    sockets: Vec<Socket>,
    v03_frames: Vec<String>,
    v04_frames: Vec<String>,
}

impl World {
    fn head(&self) -> i64 {
        self.storage
            .store_summary("s")
            .unwrap()
            .map_or(0, |s| s.head)
    }

    fn backend(&self, choice: u8) -> Value {
        match choice {
            0 => json!({"_tag": "None"}),
            1 => {
                let b = self.storage.open_store("s").unwrap().backend_id;
                json!({"_tag": "Some", "value": b})
            }
            _ => json!({"_tag": "Some", "value": "wrong"}),
        }
    }

    /// The frame's text as `kind` sends it (`http`: a 0.4 HTTP body).
    fn text(&self, kind: Kind, http: bool, id: &str, f: &Frame) -> String {
        let captured = match kind {
            Kind::V03 => &self.v03_frames,
            Kind::V04 => &self.v04_frames,
        };
        let (pull, push) = if http {
            ("SyncHttpRpc.Pull", "SyncHttpRpc.Push")
        } else {
            ("SyncWsRpc.Pull", "SyncWsRpc.Push")
        };
        match (kind, f) {
            (_, Frame::Captured(i, edits)) => {
                let t = &captured[i.index(captured.len())];
                let t = if http { t.replace("SyncWsRpc", "SyncHttpRpc") } else { t.clone() };
                mutate(&t, edits)
            }
            (_, Frame::Push { n, offset, backend }) => {
                let parent = self.head() + offset;
                let batch: Vec<Value> = (1..=*n)
                    .map(|k| {
                        json!({"name": "e", "args": {"k": k}, "seqNum": parent + k,
                               "parentSeqNum": parent + k - 1, "clientId": "c", "sessionId": "s"})
                    })
                    .collect();
                match kind {
                    Kind::V03 => json!({"_tag": "WSMessage.PushReq", "requestId": id, "batch": batch}),
                    Kind::V04 => json!({"_tag": "Request", "id": id, "tag": push, "payload":
                        {"storeId": "s", "batch": batch, "backendId": self.backend(*backend)}, "headers": []}),
                }
                .to_string()
            }
            (Kind::V03, Frame::Pull { cursor, .. }) => match cursor {
                Some(c) => json!({"_tag": "WSMessage.PullReq", "requestId": id, "cursor": c}),
                None => json!({"_tag": "WSMessage.PullReq", "requestId": id}),
            }
            .to_string(),
            (Kind::V04, Frame::Pull { cursor, live, backend }) => {
                let cursor = match (cursor, self.backend(*backend)) {
                    (Some(c), Value::Object(b)) if b["_tag"] == "Some" => json!({"_tag": "Some",
                        "value": {"backendId": b["value"], "eventSequenceNumber": c}}),
                    _ => json!({"_tag": "None"}),
                };
                let mut payload = json!({"storeId": "s", "cursor": cursor});
                if let Some(l) = live {
                    payload["live"] = json!(l);
                }
                json!({"_tag": "Request", "id": id, "tag": pull, "payload": payload, "headers": []}).to_string()
            }
            (Kind::V03, Frame::Ack(_) | Frame::Interrupt(_) | Frame::Ping) => {
                r#"{"_tag":"WSMessage.Ping","requestId":"ping"}"#.into()
            }
            (Kind::V04, Frame::Ack(i)) => json!({"_tag": "Ack", "requestId": i.to_string()}).to_string(),
            (Kind::V04, Frame::Interrupt(i)) => {
                json!({"_tag": "Interrupt", "requestId": i.to_string(), "interruptors": []}).to_string()
            }
            (Kind::V04, Frame::Ping) => r#"{"_tag":"Ping"}"#.into(),
            (_, Frame::Admin { reset, right }) => json!({
                "_tag": if *reset { "WSMessage.AdminResetRoomReq" } else { "WSMessage.AdminInfoReq" },
                "requestId": id,
                "adminSecret": if *right { ADMIN } else { "nope" },
            })
            .to_string(),
        }
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Open(kind) if self.sockets.len() < 4 => {
                let sink = RecordingSink::new(10_000);
                let session = match kind {
                    Kind::V03 => {
                        Session::V03(V03Session::open(self.env.clone(), "s", sink.clone()).unwrap())
                    }
                    Kind::V04 => Session::V04(
                        V04WsSession::open(self.env.clone(), "s", sink.clone()).unwrap(),
                    ),
                };
                self.sockets.push(Socket {
                    kind,
                    session,
                    sink,
                    next_id: 0,
                });
            }
            Op::Open(_) => {}
            Op::Send(i, f) if !self.sockets.is_empty() => {
                let n = i.index(self.sockets.len());
                let s = &mut self.sockets[n];
                // Ids repeat (0..4), so requests collide with open streams.
                let id = (s.next_id % 4).to_string();
                s.next_id += 1;
                let kind = s.kind;
                let text = self.text(kind, false, &id, &f);
                let s = &mut self.sockets[n];
                if s.sink.is_gone() {
                    // The server stops reading a closed socket.
                    return Ok(());
                }
                match &mut s.session {
                    Session::V03(v) => v.handle_text(&text),
                    Session::V04(v) => v.handle_text(&text),
                }
            }
            Op::Send(..) => {}
            Op::Http(f) => {
                let body = self.text(Kind::V04, true, "7", &f);
                if let Ok(answer) = v04_http::handle(&self.env, "s", body.as_bytes(), "fuzz") {
                    let v: Value = serde_json::from_str(&answer)
                        .map_err(|e| TestCaseError::fail(format!("{e}: {answer}")))?;
                    prop_assert!(v.is_array(), "an HTTP answer is an array: {}", answer);
                }
            }
            Op::Close(i) if !self.sockets.is_empty() => {
                let n = i.index(self.sockets.len());
                drop(self.sockets.swap_remove(n));
            }
            Op::Close(_) => {}
        }
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for s in &self.sockets {
            let sent = s.sink.take();
            MESSAGES.fetch_add(sent.len() as u64, Relaxed);
            for text in sent {
                prop_assert!(
                    serde_json::from_str::<Value>(&text).is_ok(),
                    "not JSON: {}",
                    text
                );
            }
        }
        let log = self.storage.read("s", 0, i64::MAX, usize::MAX).unwrap();
        for (k, e) in log.iter().enumerate() {
            prop_assert_eq!(e.event.seq_num, k as i64 + 1);
            prop_assert_eq!(e.event.parent_seq_num, k as i64);
        }
        Ok(())
    }
}

#[test]
fn hostile_frames_through_the_sessions() {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("FUZZ_CASES is a count"))
        .unwrap_or(200);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .map(|v| v.parse().expect("FUZZ_SEED is a number"))
        .unwrap_or(13);
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed ^ 0x5e55_1000_0000_0013),
        ..Config::default()
    };
    // The captured 0.4 frames name the store of the capture; ours is `s`.
    let v03_frames = frames("frames-v03.log", "c2s");
    let v04_frames: Vec<String> = frames("frames-v04.log", "c2s")
        .iter()
        .map(|f| f.replace("ref04-1795607524-7135", "s"))
        .collect();
    let ops = AtomicU64::new(0);
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let strategy = (1usize..4, prop::collection::vec(op(), 1..30));
    let result = runner.run(&strategy, |(window, list)| {
        ops.fetch_add(list.len() as u64, Relaxed);
        let storage = Arc::new(MemStorage::default());
        let limits = Limits {
            read_rows: 100,
            ..Limits::default()
        };
        let mut world = World {
            env: env_with(storage.clone(), limits, window),
            storage,
            sockets: Vec::new(),
            v03_frames: v03_frames.clone(),
            v04_frames: v04_frames.clone(),
        };
        world.apply(Op::Open(Kind::V03))?;
        world.apply(Op::Open(Kind::V04))?;
        for op in list {
            world.apply(op)?;
            world.check()?;
        }
        STORED.fetch_add(world.head() as u64, Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("fuzz sessions (FUZZ_SEED={seed}): {e}");
    }
    println!(
        "fuzz sessions: {cases} inputs ({} operations), 0 panics, {:.1} s (FUZZ_SEED={seed}; {} messages sent, {} events stored)",
        ops.load(Relaxed),
        started.elapsed().as_secs_f64(),
        MESSAGES.load(Relaxed),
        STORED.load(Relaxed)
    );
}
