//! A 0.4 WebSocket (`makeWsSync`): Effect-RPC over one socket, several pull
//! streams at once.
//!
//! Each `SyncWsRpc.Pull` is its own stream, keyed by the RPC request id. A
//! live pull subscribes before its backlog is read; its backlog chunks go
//! out at most `ack_window` ahead of the client's `Ack`s, and live chunks wait
//! until the backlog's last (`NoMore`) chunk is out. `Interrupt` ends a
//! stream and drops its subscription. At most `max_pull_streams` are open.

use std::sync::Arc;

use super::v04_common::{payload_for_store, pull_failed, pull_refused, push_error};
use super::{push_counted, Env};
use crate::metrics::{Proto, PushRejected};
use crate::protocol::v04::{self, Incoming, PageInfo, PullPayload, PushPayload};
use crate::storage::StorageError;
use crate::sync::pull::{Progress, Pull, PullError};
use crate::sync::sink::{Gone, Msg, Sink};
use crate::sync::store::{Attachment, Format, LiveBatch, LiveSink, Store};

pub struct V04WsSession {
    env: Arc<Env>,
    store: Arc<Store>,
    sink: Arc<dyn Sink>,
    pulls: Pulls,
    /// Dropped last: detaches the socket from the store.
    _attached: Attachment,
}

struct PullStream {
    pull: Pull,
    /// Backlog chunks sent and not yet acknowledged.
    in_flight: usize,
}

/// The open pull streams of one socket by request id: a client keeps one
/// or two open, so a short list, kept small for the idle socket.
#[derive(Default)]
struct Pulls(Vec<(String, PullStream)>);

impl Pulls {
    fn get_mut(&mut self, id: &str) -> Option<&mut PullStream> {
        self.0.iter_mut().find(|(k, _)| k == id).map(|(_, p)| p)
    }

    /// Removes (and so unsubscribes) stream `id`; false if it was not open.
    fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.0.iter().position(|(k, _)| k == id) else {
            return false;
        };
        self.0.swap_remove(i);
        true
    }

    /// `id` must not be open (`start_pull` ends an open stream of that id first).
    fn insert(&mut self, id: String, p: PullStream) {
        debug_assert!(self.get_mut(&id).is_none());
        self.0.reserve_exact(1);
        self.0.push((id, p));
    }
}

/// Live chunks for one pull stream: a per-stream head around a body shared
/// by every 0.4 subscriber of the push.
struct Live {
    sink: Arc<dyn Sink>,
    head: Arc<str>,
}

impl LiveSink for Live {
    fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone> {
        let body = batch.encoded(Format::V04, from, |events| {
            v04::live_values(events, &batch.backend_id)
        });
        self.sink.try_send(Msg::Wrapped(Box::new((
            self.head.clone(),
            body,
            v04::CHUNK_TAIL,
        ))))
    }
}

impl V04WsSession {
    pub fn open(
        env: Arc<Env>,
        store_id: &str,
        sink: Arc<dyn Sink>,
    ) -> Result<V04WsSession, StorageError> {
        let store = env.hub.store(store_id);
        let attached = store.attach(sink.clone())?;
        Ok(V04WsSession {
            env,
            store,
            sink,
            pulls: Pulls::default(),
            _attached: attached,
        })
    }

    /// Handles one text frame; frames that are no envelope are ignored.
    pub fn handle_text(&mut self, text: &str) {
        let Some(msg) = v04::decode(text) else {
            log::debug!(
                "ignored undecodable frame {} bytes={}",
                self.sink.label(),
                text.len()
            );
            return;
        };
        match msg {
            Incoming::Ping => {
                let _ = self.sink.send(Msg::Static(v04::PONG));
            }
            Incoming::Eof => {}
            Incoming::Ack { request_id } => {
                if let Some(p) = self.pulls.get_mut(&request_id) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                    self.pump(&request_id);
                }
            }
            Incoming::Interrupt { request_id } => {
                // Interrupts for finished requests (the client sends them
                // after a push's Exit) are ignored.
                if self.pulls.remove(&request_id) {
                    self.reply(v04::exit_interrupted(&request_id));
                }
            }
            Incoming::Request { id, tag, payload } => match tag.as_str() {
                v04::PULL_WS => {
                    match payload_for_store(&payload, self.store.id(), |p: &PullPayload| {
                        &p.store_id
                    }) {
                        Ok(p) if p.live.is_some() => self.start_pull(id, p),
                        Ok(_) => self.reply(v04::exit_die(
                            &id,
                            "invalid request payload: `live` is required",
                        )),
                        Err(e) => self.reply(v04::exit_die(&id, &e)),
                    }
                }
                v04::PUSH_WS => {
                    match payload_for_store(&payload, self.store.id(), |p: &PushPayload| {
                        &p.store_id
                    }) {
                        Ok(p) => self.push(&id, p),
                        Err(e) => {
                            self.env
                                .hub
                                .metrics()
                                .push_rejected(Proto::V04Ws, PushRejected::InvalidRequest);
                            self.reply(v04::exit_die(&id, &e))
                        }
                    }
                }
                other => self.reply(v04::exit_die(&id, &format!("unknown request tag: {other}"))),
            },
        }
    }

    fn reply(&self, text: String) {
        let _ = self.sink.send(text.into());
    }

    fn start_pull(&mut self, id: String, p: PullPayload) {
        self.pulls.remove(&id);
        if self.pulls.0.len() >= self.env.max_pull_streams {
            return self.reply(v04::exit_die(
                &id,
                &format!(
                    "too many pull streams on one socket (at most {})",
                    self.env.max_pull_streams
                ),
            ));
        }
        let cursor = p.cursor.0.as_ref();
        let from = cursor.map_or(0, |c| c.event_sequence_number);
        let live = (p.live == Some(true)).then(|| {
            let sink: Arc<dyn LiveSink> = Arc::new(Live {
                sink: self.sink.clone(),
                head: v04::chunk_head(&id).into(),
            });
            (self.sink.id(), sink)
        });
        let backend_id = cursor.map(|c| c.backend_id.as_str());
        match self.store.pull(from, backend_id, live) {
            Ok(pull) => {
                let stream = PullStream { pull, in_flight: 0 };
                self.pulls.insert(id.clone(), stream);
                self.pump(&id);
            }
            Err(e) => {
                let e = pull_refused(self.env.hub.metrics(), e, self.sink.label());
                self.reply(v04::exit_fail(&id, &e));
            }
        }
    }

    /// Sends backlog chunks while the ack window allows; after the last one,
    /// ends a non-live pull or leaves a live one receiving live chunks.
    fn pump(&mut self, id: &str) {
        let window = self.env.ack_window;
        let metrics = self.env.hub.metrics();
        let sink = &self.sink;
        let Some(PullStream { pull, in_flight }) = self.pulls.get_mut(id) else {
            return;
        };
        let Some(backend_id) = pull.meta().map(|m| m.backend_id.clone()) else {
            return; // live already
        };
        let step = loop {
            if pull.is_done() || *in_flight >= window {
                break Ok(pull.is_done());
            }
            let step = pull.send_next(|page| {
                let info = PageInfo::from_remaining(page.remaining);
                sink.send(v04::chunk(id, &page.events, info, &backend_id).into())?;
                metrics.pull_page(Proto::V04Ws, page.events.len());
                *in_flight += 1;
                Ok(())
            });
            match step {
                Ok(Progress::More) => {}
                Ok(Progress::Done) => break Ok(true),
                Err(e) => break Err(e),
            }
        };
        match step {
            Ok(true) if !self.is_live(id) => {
                self.pulls.remove(id);
                self.reply(v04::exit_stream_done(id));
            }
            Ok(_) => {}
            Err(PullError::Gone) => {
                self.pulls.remove(id);
            }
            Err(PullError::Storage(e)) => {
                self.pulls.remove(id);
                let e = pull_failed(self.env.hub.metrics(), &e, self.sink.label());
                self.reply(v04::exit_fail(id, &e));
            }
        }
    }

    fn is_live(&mut self, id: &str) -> bool {
        self.pulls.get_mut(id).is_some_and(|p| p.pull.is_live())
    }

    fn push(&mut self, id: &str, p: PushPayload) {
        let sink = &self.sink;
        let result = self.store.push(id, p.batch, p.backend_id.0.as_deref(), || {
            let _ = sink.try_send(v04::exit_push_ok(id).into());
        });
        let result = push_counted(self.env.hub.metrics(), Proto::V04Ws, result, sink.label());
        if let Err(e) = result {
            self.reply(v04::exit_fail(id, &push_error(e, self.sink.label())));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each state of a 0.4 WebSocket session, without sockets: frames in,
    //! what the recording sink got out.
    use super::*;
    use crate::session::testing::{env, env_with};
    use crate::sync::testing::{MemStorage, RecordingSink};
    use serde_json::{json, Value};
    use std::sync::atomic::Ordering::SeqCst;

    fn open(env: &Arc<Env>) -> (V04WsSession, Arc<RecordingSink>) {
        let sink = RecordingSink::new(1_000);
        let s = V04WsSession::open(env.clone(), "s", sink.clone()).unwrap();
        (s, sink)
    }

    fn pull(id: &str, live: bool, cursor: Value) -> String {
        json!({"_tag": "Request", "id": id, "tag": "SyncWsRpc.Pull", "headers": [],
               "payload": {"storeId": "s", "payload": {}, "live": live, "cursor": cursor}})
        .to_string()
    }

    fn push(id: &str, from: i64, n: i64, backend_id: Value) -> String {
        let batch: Vec<Value> = (from..from + n)
            .map(|i| {
                json!({"name": "e", "args": {"i": i}, "seqNum": i, "parentSeqNum": i - 1,
                            "clientId": "c", "sessionId": "s"})
            })
            .collect();
        json!({"_tag": "Request", "id": id, "tag": "SyncWsRpc.Push", "headers": [],
               "payload": {"storeId": "s", "batch": batch, "backendId": backend_id}})
        .to_string()
    }

    fn none() -> Value {
        json!({"_tag": "None"})
    }

    /// (seq_nums, pageInfo tag) of a chunk's one value.
    fn page(m: &Value) -> (Vec<i64>, String) {
        assert_eq!(m["_tag"], "Chunk", "{m}");
        let v = &m["values"][0];
        let seqs = v["batch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventEncoded"]["seqNum"].as_i64().unwrap())
            .collect();
        (seqs, v["pageInfo"]["_tag"].as_str().unwrap().to_string())
    }

    #[test]
    fn ping_gets_pong_and_undecodable_frames_get_nothing() {
        let env = env(MemStorage::default());
        let (mut s, sink) = open(&env);
        s.handle_text(r#"{"_tag":"Ping"}"#);
        s.handle_text("not json");
        s.handle_text(r#"{"_tag":"Nope"}"#);
        assert_eq!(sink.take(), vec![v04::PONG.to_string()]);
    }

    #[test]
    fn backlog_chunks_wait_for_acks_then_the_stream_ends() {
        let env = env_with(
            Arc::new(MemStorage::with_log(250, 10)),
            Default::default(),
            2,
        );
        let (mut s, sink) = open(&env);
        s.handle_text(&pull("7", false, none()));
        let got = sink.take_json();
        assert_eq!(
            got.iter().map(page).collect::<Vec<_>>(),
            vec![
                ((1..=100).collect(), "MoreKnown".into()),
                ((101..=200).collect(), "MoreKnown".into())
            ],
            "two chunks ahead of the Acks"
        );
        s.handle_text(r#"{"_tag":"Ack","requestId":"99"}"#);
        assert!(
            sink.take().is_empty(),
            "an Ack for another id releases nothing"
        );
        s.handle_text(r#"{"_tag":"Ack","requestId":"7"}"#);
        let got = sink.take_json();
        assert_eq!(page(&got[0]), ((201..=250).collect(), "NoMore".into()));
        assert_eq!(
            got[1],
            json!({"_tag": "Exit", "requestId": "7", "exit": {"_tag": "Success"}})
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_live_pull_gets_pushes_after_its_backlog_until_interrupted() {
        let env = env(MemStorage::with_log(3, 10));
        let (mut sub, sink) = open(&env);
        let (mut pusher, pusher_sink) = open(&env);
        sub.handle_text(&pull("1", true, none()));
        assert_eq!(page(&sink.take_json()[0]), (vec![1, 2, 3], "NoMore".into()));
        pusher.handle_text(&push("p", 4, 2, none()));
        let ack = &pusher_sink.take_json()[0];
        assert_eq!(ack["exit"]["_tag"], "Success", "{ack}");
        assert_eq!(page(&sink.take_json()[0]), (vec![4, 5], "NoMore".into()));
        sub.handle_text(r#"{"_tag":"Interrupt","requestId":"1"}"#);
        let exit = &sink.take_json()[0];
        assert_eq!(exit["exit"]["cause"]["_tag"], "Interrupt", "{exit}");
        pusher.handle_text(&push("p2", 6, 1, none()));
        assert!(sink.take().is_empty(), "nothing after the interrupt");
    }

    #[test]
    fn a_cursor_from_another_backend_is_refused() {
        let env = env(MemStorage::with_log(3, 10));
        let (mut s, sink) = open(&env);
        let cursor =
            json!({"_tag": "Some", "value": {"backendId": "old", "eventSequenceNumber": 2}});
        s.handle_text(&pull("1", true, cursor));
        let m = &sink.take_json()[0];
        let error = &m["exit"]["cause"]["error"];
        assert_eq!(error["_tag"], "BackendIdMismatchError", "{m}");
        assert_eq!(
            (&error["expected"], &error["received"]),
            (&json!("B"), &json!("old"))
        );
    }

    #[test]
    fn pull_streams_per_socket_are_bounded() {
        let env = env(MemStorage::default());
        let (mut s, sink) = open(&env);
        for i in 0..env.max_pull_streams {
            s.handle_text(&pull(&i.to_string(), true, none()));
        }
        assert_eq!(sink.take().len(), env.max_pull_streams);
        s.handle_text(&pull("extra", true, none()));
        let m = &sink.take_json()[0];
        assert_eq!(m["requestId"], "extra");
        assert_eq!(m["exit"]["cause"]["_tag"], "Die", "{m}");
        // Reusing an open stream's id replaces it rather than adding one.
        s.handle_text(&pull("0", true, none()));
        assert_eq!(page(&sink.take_json()[0]).1, "NoMore");
    }

    #[test]
    fn pushes_and_pull_pages_are_counted_by_outcome() {
        use crate::metrics::{Proto, PushRejected};
        let env = env(MemStorage::with_log(150, 10));
        let m = env.hub.metrics().clone();
        let (mut s, sink) = open(&env);
        s.handle_text(&pull("1", false, none()));
        s.handle_text(&push("p1", 151, 2, none()));
        // Another client's event 151 (an exact copy would be a re-push, acknowledged).
        s.handle_text(
            &push("p2", 151, 1, none()).replace(r#""clientId":"c""#, r#""clientId":"d""#),
        );
        s.handle_text(&push(
            "p3",
            153,
            1,
            json!({"_tag": "Some", "value": "other"}),
        ));
        s.handle_text(
            r#"{"_tag":"Request","id":"p4","tag":"SyncWsRpc.Push","headers":[],"payload":{"storeId":"t","batch":[]}}"#,
        );
        assert!(!sink.take().is_empty());
        assert_eq!(m.pushes_accepted(Proto::V04Ws), 1);
        for (why, n) in [
            (PushRejected::WrongParent, 1),
            (PushRejected::BackendIdMismatch, 1),
            (PushRejected::InvalidRequest, 1),
            (PushRejected::StorageError, 0),
        ] {
            assert_eq!(m.pushes_rejected(Proto::V04Ws, why), n, "{why:?}");
        }
        assert_eq!(m.pushes_accepted(Proto::V03), 0);
        let text = m.render(&Default::default());
        for series in [
            r#"livestore_pull_pages_total{protocol="0.4",transport="websocket"} 2"#,
            r#"livestore_pull_events_total{protocol="0.4",transport="websocket"} 150"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }

    #[test]
    fn a_stale_push_gets_server_ahead() {
        let env = env(MemStorage::with_log(3, 10));
        let (mut s, sink) = open(&env);
        s.handle_text(&push("p", 1, 1, none()));
        let error = &sink.take_json()[0]["exit"]["cause"]["error"];
        assert_eq!(
            *error,
            json!({"minimumExpectedNum": 3, "providedNum": 0, "_tag": "ServerAheadError"})
        );
    }

    #[test]
    fn a_failed_page_read_fails_the_stream_and_nothing_follows() {
        let storage = Arc::new(MemStorage::with_log(250, 10));
        // One page per read, so each chunk reads storage again.
        let limits = crate::sync::Limits {
            read_rows: 100,
            ..Default::default()
        };
        let env = env_with(storage.clone(), limits, 1);
        let (mut s, sink) = open(&env);
        let (mut pusher, _) = open(&env);
        s.handle_text(&pull("1", true, none()));
        assert_eq!(sink.take_json().len(), 1);
        storage.fail_reads.store(true, SeqCst);
        s.handle_text(r#"{"_tag":"Ack","requestId":"1"}"#);
        let m = &sink.take_json()[0];
        assert_eq!(m["exit"]["cause"]["error"]["_tag"], "UnknownError", "{m}");
        storage.fail_reads.store(false, SeqCst);
        pusher.handle_text(&push("p", 251, 1, none()));
        s.handle_text(r#"{"_tag":"Ack","requestId":"1"}"#);
        assert!(sink.take().is_empty(), "no chunk after the failure");
    }
}
