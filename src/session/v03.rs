//! A 0.3 WebSocket (`makeCfSync`).
//!
//! Every socket of a store receives every push as a `PullRes` with context
//! `push`, from the moment it connects (the client stashes broadcasts that
//! arrive before its pull answer). A `PullReq` replaces the socket's
//! subscription with a live pull from the cursor: its pages go out back to
//! back, and broadcasts wait until the last one is out. A pull that fails
//! part-way closes the socket (1011), so the client reconnects and pulls
//! again instead of going on with a gap.
//!
//! A stale push (parent behind the head) on a socket that has been sent no
//! events yet (no `PullReq`, no broadcast: a reconnected client) gets the
//! catch-up of the spec's §5 #1 after its `Error`: one `PullRes` with
//! context `push` and the events after its parent (one page), so the client
//! rebases and pushes again. See `Store::catch_up_stale`.

use std::sync::Arc;

use super::{push_counted, Env, PanicPoint};
use crate::logfmt;
use crate::metrics::Proto;
use crate::model::ChainError;
use crate::protocol::query::ct_eq;
use crate::protocol::v03::{self, cursor_from_f64, Context, Request};
use crate::storage::StorageError;
use crate::sync::pull::{Progress, Pull, PullError, PullRefused};
use crate::sync::sink::{Gone, Msg, Sink};
use crate::sync::store::{Attachment, Format, LiveBatch, LiveSink, PushError, Store};

pub struct V03Session {
    env: Arc<Env>,
    store: Arc<Store>,
    sink: Arc<dyn Sink>,
    /// The socket's subscription: live from the start, replaced by each pull.
    pull: Option<Pull>,
    /// A `PullReq` came: the socket's stream is a pull answer now, which the
    /// client merges by its own rules; no catch-up on it.
    pulled: bool,
    /// `PUSHES_PER_SECOND`: an early push waits.
    pace: super::Pace,
    /// Dropped last: detaches the socket from the store.
    _attached: Attachment,
}

/// Broadcasts for a 0.3 socket: one frame per push, shared by all 0.3 sockets.
struct Live(Arc<dyn Sink>);

impl LiveSink for Live {
    fn send_live(&self, batch: &LiveBatch, from: usize) -> Result<(), Gone> {
        let text = batch.encoded(Format::V03, from, |events| {
            v03::pull_res(events, Context::Push, &batch.origin, 0)
        });
        self.0.try_send(Msg::Shared(text))
    }
}

impl V03Session {
    /// Attaches the socket to its store and subscribes it to broadcasts.
    pub fn open(
        env: Arc<Env>,
        store_id: &str,
        sink: Arc<dyn Sink>,
    ) -> Result<V03Session, StorageError> {
        let pace = super::Pace::new(env.pushes_per_second);
        let store = env.hub.store(store_id);
        let attached = store.attach(sink.clone())?;
        let follow = store.follow(sink.id(), Arc::new(Live(sink.clone())))?;
        Ok(V03Session {
            env,
            store,
            sink,
            pull: Some(follow),
            pulled: false,
            pace,
            _attached: attached,
        })
    }

    /// Handles one text frame; undecodable frames are ignored.
    pub fn handle_text(&mut self, text: &str) {
        let Some(request) = v03::decode(text) else {
            log::debug!(
                "ignored undecodable frame {} bytes={}",
                self.sink.label(),
                text.len()
            );
            return;
        };
        match request {
            Request::Ping => {
                let _ = self.sink.send(Msg::Static(v03::PONG));
            }
            Request::Pull { request_id, cursor } => {
                self.pull(&request_id, cursor.map_or(0, cursor_from_f64))
            }
            Request::Push { request_id, batch } => self.push(&request_id, batch, text.len()),
            Request::AdminInfo {
                request_id,
                admin_secret,
            } => self.admin_info(&request_id, &admin_secret),
            Request::AdminResetRoom {
                request_id,
                admin_secret,
            } => self.admin_reset(&request_id, &admin_secret),
        }
    }

    fn reply(&self, text: String) {
        let _ = self.sink.send(text.into());
    }

    fn pull(&mut self, request_id: &str, cursor: i64) {
        // The old subscription ends first; the new pull's backlog covers
        // whatever is pushed in between (it reads up to the head at its start).
        self.pull = None;
        self.pulled = true;
        let live = Arc::new(Live(self.sink.clone()));
        let live: Arc<dyn LiveSink> = live;
        let mut pull = match self.store.pull(cursor, None, Some((self.sink.id(), live))) {
            Ok(p) => p,
            Err(PullRefused::Storage(e)) => return self.pull_failed(request_id, &e),
            Err(PullRefused::BackendIdMismatch { .. }) => {
                unreachable!("0.3 pulls name no backend id")
            }
        };
        let metrics = self.env.hub.metrics();
        loop {
            let sink = &self.sink;
            let step = pull.send_next(|page| {
                sink.send(
                    v03::pull_res(&page.events, Context::Pull, request_id, page.remaining).into(),
                )?;
                metrics.pull_page(Proto::V03, page.events.len());
                Ok(())
            });
            match step {
                Ok(Progress::More) => {}
                Ok(Progress::Done) => break,
                Err(PullError::Gone) => return,
                Err(PullError::Storage(e)) => return self.pull_failed(request_id, &e),
            }
        }
        self.pull = Some(pull);
    }

    /// The socket has no subscription now: answer, then close it so the
    /// client reconnects and pulls again (it would miss events otherwise).
    fn pull_failed(&self, request_id: &str, e: &StorageError) {
        log::error!(
            "pull failed {} reason={}",
            self.sink.label(),
            logfmt::value(&e.to_string())
        );
        self.env
            .hub
            .metrics()
            .error(&format!("pull failed: {e}"), self.sink.label());
        self.reply(v03::error(request_id, &e.to_string()));
        self.sink.close(1011, "pull failed, reconnect");
    }

    fn push(&mut self, request_id: &str, batch: Vec<crate::model::Event>, bytes: usize) {
        self.pace.wait();
        let sink = &self.sink;
        let label = sink.label();
        if let Some(why) = super::push_too_large(&self.env, Proto::V03, batch.len(), bytes, label) {
            return self.reply(v03::error(request_id, &why));
        }
        let (env, store) = (&self.env, self.store.id());
        env.test_panic(store, PanicPoint::BeforeAppend);
        let result = self.store.push(request_id, batch, None, || {
            env.test_panic(store, PanicPoint::AfterAppend);
            let _ = sink.try_send(v03::push_ack(request_id).into());
        });
        let result = push_counted(self.env.hub.metrics(), Proto::V03, result, sink.label());
        match result {
            Ok(()) => {}
            Err(PushError::Chain(e)) => {
                self.reply(v03::error(request_id, &e.to_string()));
                if let ChainError::WrongParent { head, parent } = e {
                    if parent < head {
                        self.catch_up(request_id, parent);
                    }
                }
            }
            Err(PushError::Storage(e)) => {
                log::error!(
                    "push failed {} reason={}",
                    self.sink.label(),
                    logfmt::value(&e.to_string())
                );
                self.reply(v03::error(request_id, &e.to_string()));
            }
            Err(PushError::BackendIdMismatch { .. }) => {
                unreachable!("0.3 pushes carry no backend id")
            }
        }
    }

    /// After the `Error` of a stale push: the events the client missed, if
    /// this socket has had none yet (its follow subscription decides, under
    /// the store's mutex, so no broadcast slips in between).
    fn catch_up(&self, request_id: &str, parent: i64) {
        if self.pulled {
            return;
        }
        let Some(follow) = self.pull.as_ref() else {
            return;
        };
        match follow.catch_up_stale(request_id, parent) {
            Ok(Some((first, last))) => log::info!(
                "stale push caught up {} parent={parent} events={first}..{last}",
                self.sink.label()
            ),
            Ok(None) => {}
            // The client stays parked, as without the catch-up.
            Err(e) => log::warn!(
                "stale push catch-up failed {} reason={}",
                self.sink.label(),
                logfmt::value(&e.to_string())
            ),
        }
    }

    fn admin_allowed(&self, request_id: &str, secret: &str) -> bool {
        if ct_eq(secret.as_bytes(), self.env.admin_secret.as_bytes()) {
            return true;
        }
        log::warn!(
            "refused admin request {} reason=\"invalid admin secret\"",
            self.sink.label()
        );
        self.reply(v03::error(request_id, "Invalid admin secret"));
        false
    }

    fn admin_info(&self, request_id: &str, secret: &str) {
        if !self.admin_allowed(request_id, secret) {
            return;
        }
        match self.store.info() {
            Ok(info) => self.reply(v03::admin_info_res(
                request_id,
                &serde_json::json!({
                    // Any stable string: the store id is one per store, as a DO id is.
                    "durableObjectId": self.store.id(),
                    "storeId": self.store.id(),
                    "head": info.head,
                    "eventCount": info.head,
                    "backendId": info.backend_id,
                    "connectedSockets": info.sockets,
                    "subscriptions": info.subscriptions,
                    "server": concat!("livestore-sync ", env!("CARGO_PKG_VERSION")),
                }),
            )),
            Err(e) => self.reply(v03::error(request_id, &e.to_string())),
        }
    }

    fn admin_reset(&self, request_id: &str, secret: &str) {
        if !self.admin_allowed(request_id, secret) {
            return;
        }
        let sink = &self.sink;
        let result = self.store.reset(|| {
            let _ = sink.try_send(v03::admin_reset_res(request_id).into());
        });
        match result {
            Ok(()) => log::warn!("store reset {} reason=\"admin request\"", self.sink.label()),
            Err(e) => {
                log::error!(
                    "reset failed {} reason={}",
                    self.sink.label(),
                    logfmt::value(&e.to_string())
                );
                self.reply(v03::error(request_id, &e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each state of a 0.3 session, without sockets.
    use super::*;
    use crate::session::testing::{env, env_with, ADMIN};
    use crate::sync::testing::{MemStorage, RecordingSink};
    use serde_json::{json, Value};
    use std::sync::atomic::Ordering::SeqCst;

    fn open(env: &Arc<Env>) -> (V03Session, Arc<RecordingSink>) {
        let sink = RecordingSink::new(1_000);
        let s = V03Session::open(env.clone(), "s", sink.clone()).unwrap();
        (s, sink)
    }

    fn push(id: &str, from: i64, n: i64) -> String {
        let batch: Vec<Value> = (from..from + n)
            .map(|i| {
                json!({"name": "e", "args": {"i": i}, "seqNum": i, "parentSeqNum": i - 1,
                            "clientId": "c", "sessionId": "s"})
            })
            .collect();
        json!({"_tag": "WSMessage.PushReq", "requestId": id, "batch": batch}).to_string()
    }

    /// (context, seq_nums, remaining) of a PullRes.
    fn res(m: &Value) -> (String, Vec<i64>, i64) {
        assert_eq!(m["_tag"], "WSMessage.PullRes", "{m}");
        let seqs = m["batch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["eventEncoded"]["seqNum"].as_i64().unwrap())
            .collect();
        let ctx = m["requestId"]["context"].as_str().unwrap().to_string();
        (ctx, seqs, m["remaining"].as_i64().unwrap())
    }

    #[test]
    fn a_push_is_acked_then_broadcast_to_every_socket_the_pusher_included() {
        let env = env(MemStorage::default());
        let (mut a, a_sink) = open(&env);
        let (_b, b_sink) = open(&env);
        a.handle_text(&push("r1", 1, 2));
        let got = a_sink.take_json();
        assert_eq!(
            got[0],
            json!({"_tag": "WSMessage.PushAck", "requestId": "r1"})
        );
        assert_eq!(res(&got[1]), ("push".into(), vec![1, 2], 0));
        assert_eq!(got[1]["requestId"]["requestId"], "r1");
        assert_eq!(res(&b_sink.take_json()[0]), ("push".into(), vec![1, 2], 0));
    }

    #[test]
    fn a_pull_pages_back_to_back_then_broadcasts_follow() {
        let env = env(MemStorage::with_log(150, 10));
        let (mut a, a_sink) = open(&env);
        let (mut b, _) = open(&env);
        a.handle_text(r#"{"_tag":"WSMessage.PullReq","requestId":"q","cursor":20}"#);
        let got = a_sink.take_json();
        assert_eq!(
            got.iter().map(res).collect::<Vec<_>>(),
            vec![
                ("pull".into(), (21..=120).collect(), 30),
                ("pull".into(), (121..=150).collect(), 0)
            ]
        );
        b.handle_text(&push("r", 151, 1));
        assert_eq!(res(&a_sink.take_json()[0]), ("push".into(), vec![151], 0));
    }

    #[test]
    fn a_failed_pull_answers_with_an_error_and_closes_the_socket() {
        // Before: the socket went live after a failed page, so the client
        // missed the rest of the backlog without knowing.
        let storage = Arc::new(MemStorage::with_log(250, 10));
        let limits = crate::sync::Limits {
            read_rows: 100,
            ..Default::default()
        };
        let env = env_with(storage.clone(), limits, 16);
        let (mut a, a_sink) = open(&env);
        let (mut b, _) = open(&env);
        storage.fail_reads.store(true, SeqCst);
        a.handle_text(r#"{"_tag":"WSMessage.PullReq","requestId":"q"}"#);
        let got = a_sink.take_json();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["_tag"], "WSMessage.Error");
        assert_eq!(*a_sink.closed.lock(), Some(1011));
        storage.fail_reads.store(false, SeqCst);
        b.handle_text(&push("r", 251, 1));
        assert!(a_sink.take().is_empty(), "no broadcast after the gap");
    }

    #[test]
    fn a_stale_push_on_a_socket_sent_nothing_yet_gets_the_missed_events_after_its_error() {
        // Before: only the Error, and the reconnected client parked for good.
        let env = env(MemStorage::with_log(5, 10));
        let (mut a, sink) = open(&env);
        // Another client's events 3..5 are stored; this one pushes on e2.
        a.handle_text(&push("stale", 3, 1).replace("\"c\"", "\"other\""));
        let got = sink.take_json();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["_tag"], "WSMessage.Error");
        assert_eq!(got[0]["requestId"], "stale");
        assert_eq!(res(&got[1]), ("push".into(), vec![3, 4, 5], 0));
        assert_eq!(got[1]["requestId"]["requestId"], "stale");
        // The rebased push is accepted; its broadcast follows the catch-up.
        a.handle_text(&push("again", 6, 1));
        let got = sink.take_json();
        assert_eq!(got[0]["_tag"], "WSMessage.PushAck");
        assert_eq!(res(&got[1]), ("push".into(), vec![6], 0));
        // The socket has events now: a later stale push gets its Error only.
        a.handle_text(&push("stale2", 3, 1).replace("\"c\"", "\"other\""));
        let got = sink.take_json();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["_tag"], "WSMessage.Error");
    }

    #[test]
    fn no_catch_up_on_a_socket_that_had_a_broadcast_or_a_pull() {
        let env = env(MemStorage::with_log(5, 10));
        let (mut a, a_sink) = open(&env);
        let (mut b, b_sink) = open(&env);
        let (mut c, _) = open(&env);
        a.handle_text(r#"{"_tag":"WSMessage.PullReq","requestId":"q","cursor":5}"#);
        c.handle_text(&push("c", 6, 1));
        assert_eq!(res(&b_sink.take_json()[0]), ("push".into(), vec![6], 0));
        a_sink.take();
        for (s, sink) in [(&mut a, &a_sink), (&mut b, &b_sink)] {
            s.handle_text(&push("stale", 3, 1).replace("\"c\"", "\"other\""));
            let got = sink.take_json();
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0]["_tag"], "WSMessage.Error");
        }
    }

    #[test]
    fn a_long_gap_is_caught_up_one_page_per_stale_push() {
        let env = env(MemStorage::with_log(250, 10));
        let (mut a, sink) = open(&env);
        let stale = |id: &str, parent: i64| push(id, parent + 1, 1).replace("\"c\"", "\"o\"");
        a.handle_text(&stale("p0", 0));
        let got = sink.take_json();
        assert_eq!(res(&got[1]), ("push".into(), (1..=100).collect(), 0));
        // Rebased on e100: refused again, gets the next page.
        a.handle_text(&stale("p100", 100));
        let got = sink.take_json();
        assert_eq!(res(&got[1]), ("push".into(), (101..=200).collect(), 0));
        // A parent other than the end of the last catch-up would repeat events.
        a.handle_text(&stale("p50", 50));
        assert_eq!(sink.take_json().len(), 1);
        a.handle_text(&stale("p200", 200));
        let got = sink.take_json();
        assert_eq!(res(&got[1]), ("push".into(), (201..=250).collect(), 0));
        a.handle_text(&stale("p250", 250));
        assert_eq!(sink.take_json()[0]["_tag"], "WSMessage.PushAck");
    }

    #[test]
    fn ping_admin_and_undecodable_frames() {
        let env = env(MemStorage::with_log(3, 10));
        let (mut a, sink) = open(&env);
        a.handle_text(r#"{"_tag":"WSMessage.Ping","requestId":"ping"}"#);
        a.handle_text(r#"{"_tag":"WSMessage.Ping","requestId":"other"}"#);
        a.handle_text("[1,2");
        assert_eq!(sink.take(), vec![v03::PONG.to_string()]);
        a.handle_text(r#"{"_tag":"WSMessage.AdminInfoReq","requestId":"i","adminSecret":"wrong"}"#);
        assert_eq!(sink.take_json()[0]["message"], "Invalid admin secret");
        let info = format!(
            r#"{{"_tag":"WSMessage.AdminInfoReq","requestId":"i","adminSecret":"{ADMIN}"}}"#
        );
        a.handle_text(&info);
        let m = &sink.take_json()[0];
        assert_eq!(m["info"]["head"], 3, "{m}");
        assert_eq!(m["info"]["connectedSockets"], 1, "{m}");
    }

    #[test]
    fn an_admin_reset_answers_then_closes_every_socket() {
        let env = env(MemStorage::with_log(3, 10));
        let (mut a, a_sink) = open(&env);
        let (_b, b_sink) = open(&env);
        let reset = format!(
            r#"{{"_tag":"WSMessage.AdminResetRoomReq","requestId":"x","adminSecret":"{ADMIN}"}}"#
        );
        a.handle_text(&reset);
        assert_eq!(a_sink.take_json()[0]["_tag"], "WSMessage.AdminResetRoomRes");
        assert_eq!(*a_sink.closed.lock(), Some(4001));
        assert_eq!(*b_sink.closed.lock(), Some(4001));
        assert_eq!(env.hub.store("s").meta().unwrap().head, 0);
    }
}
