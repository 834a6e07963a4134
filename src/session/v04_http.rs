//! 0.4 over HTTP (`makeHttpSync`): one RPC `Request` per POST, answered with
//! the JSON array `[Chunk…, Exit]`. Pulls are never live (the client polls
//! every 5 s from the last event it has), so a pull is its backlog up to the
//! head at the time of the request, written page by page into the one answer
//! buffer, up to `max_http_pull_bytes`: a longer backlog ends with a
//! `MoreKnown` page, and the next poll continues.

use super::v04_common::{payload_for_store, pull_failed, pull_refused, push_error};
use super::{push_counted, Env, PanicPoint};
use crate::metrics::{Proto, PushRejected};
use crate::protocol::v04::{self, Incoming, PageInfo, PingPayload, PullPayload, PushPayload};
use crate::sync::pull::{Progress, PullError};

/// Why a body is not an RPC request at all (answered with `400`).
#[derive(Debug, PartialEq, Eq)]
pub struct NotARequest;

/// Handles one POST body for the store of the URL; returns the JSON array.
pub fn handle(env: &Env, store_id: &str, body: &[u8], label: &str) -> Result<String, NotARequest> {
    let text = std::str::from_utf8(body).map_err(|_| NotARequest)?;
    let Some(Incoming::Request { id, tag, payload }) = v04::decode(text) else {
        return Err(NotARequest);
    };
    let answer = match tag.as_str() {
        v04::PULL_HTTP => {
            match payload_for_store(payload.as_deref(), store_id, |p: &PullPayload| &p.store_id) {
                Ok(p) => return Ok(pull(env, store_id, &id, &p, label)),
                Err(e) => v04::exit_die(&id, &e),
            }
        }
        v04::PUSH_HTTP => {
            match payload_for_store(payload.as_deref(), store_id, |p: &PushPayload| &p.store_id) {
                Ok(p) => {
                    let events = p.batch.len();
                    if let Some(why) =
                        super::push_too_large(env, Proto::V04Http, events, body.len(), label)
                    {
                        let e = v04::SyncError::Unknown { message: why };
                        return Ok(format!("[{}]", v04::exit_fail(&id, &e)));
                    }
                    let store = env.hub.store(store_id);
                    env.test_panic(store_id, PanicPoint::BeforeAppend);
                    let result = store.push(&id, p.batch, p.backend_id.0.as_deref(), || {
                        env.test_panic(store_id, PanicPoint::AfterAppend)
                    });
                    match push_counted(env.hub.metrics(), Proto::V04Http, result, label) {
                        Ok(()) => v04::exit_push_ok(&id),
                        Err(e) => v04::exit_fail(&id, &push_error(e, label)),
                    }
                }
                Err(e) => {
                    env.hub
                        .metrics()
                        .push_rejected(Proto::V04Http, PushRejected::InvalidRequest);
                    v04::exit_die(&id, &e)
                }
            }
        }
        v04::PING_HTTP => {
            match payload_for_store(payload.as_deref(), store_id, |p: &PingPayload| &p.store_id) {
                Ok(_) => v04::exit_http_pong(&id),
                Err(e) => v04::exit_die(&id, &e),
            }
        }
        other => v04::exit_die(&id, &format!("unknown request tag: {other}")),
    };
    Ok(format!("[{answer}]"))
}

fn pull(env: &Env, store_id: &str, id: &str, p: &PullPayload, label: &str) -> String {
    let cursor = p.cursor.0.as_ref();
    let from = cursor.map_or(0, |c| c.event_sequence_number);
    let backend_id = cursor.map(|c| c.backend_id.as_str());
    let fail = |e| format!("[{}]", v04::exit_fail(id, &e));
    let mut pull = match env.hub.store(store_id).pull(from, backend_id, None) {
        Ok(p) => p,
        Err(e) => return fail(pull_refused(env.hub.metrics(), e, label)),
    };
    let backend_id = match pull.meta() {
        Some(m) => m.backend_id.clone(),
        None => unreachable!("a new pull has its answer ahead"),
    };
    let mut out = String::from("[");
    loop {
        let step = pull.send_next(|page| {
            let info = PageInfo::from_remaining(page.remaining);
            v04::write_chunk(&mut out, id, &page.events, info, &backend_id);
            out.push(',');
            env.hub
                .metrics()
                .pull_page(Proto::V04Http, page.events.len());
            Ok(())
        });
        match step {
            Ok(Progress::More) if out.len() >= env.max_http_pull_bytes => break,
            Ok(Progress::More) => {}
            Ok(Progress::Done) => break,
            Err(PullError::Storage(e)) => return fail(pull_failed(env.hub.metrics(), &e, label)),
            Err(PullError::Gone) => unreachable!("the answer buffer is never gone"),
        }
    }
    out.push_str(&v04::exit_stream_done(id));
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::testing::env;
    use crate::sync::testing::MemStorage;
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn call(env: &Env, body: Value) -> Vec<Value> {
        let out = handle(env, "s", body.to_string().as_bytes(), "test").unwrap();
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn a_pull_is_every_page_then_the_exit_in_one_answer() {
        let env = env(MemStorage::with_log(150, 10));
        let got = call(
            &env,
            json!({"_tag": "Request", "id": "1", "tag": "SyncHttpRpc.Pull", "headers": [],
                   "payload": {"storeId": "s", "payload": {}, "cursor": {"_tag": "None"}}}),
        );
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0]["values"][0]["pageInfo"],
            json!({"_tag": "MoreKnown", "remaining": 50})
        );
        assert_eq!(got[1]["values"][0]["pageInfo"], json!({"_tag": "NoMore"}));
        assert_eq!(got[1]["values"][0]["batch"].as_array().unwrap().len(), 50);
        assert_eq!(
            got[2],
            json!({"_tag": "Exit", "requestId": "1", "exit": {"_tag": "Success"}})
        );
    }

    #[test]
    fn a_long_backlog_is_answered_in_bounded_parts_that_the_next_poll_continues() {
        let mut env = env(MemStorage::with_log(450, 1_000));
        Arc::get_mut(&mut env).unwrap().max_http_pull_bytes = 150_000;
        let pull = |cursor: Value| {
            json!({"_tag": "Request", "id": "1", "tag": "SyncHttpRpc.Pull", "headers": [],
                   "payload": {"storeId": "s", "payload": {}, "cursor": cursor}})
        };
        let mut cursor = json!({"_tag": "None"});
        let mut seen = Vec::new();
        let mut answers = 0;
        loop {
            let body = pull(cursor.clone()).to_string();
            let text = handle(&env, "s", body.as_bytes(), "t").unwrap();
            // Past the bound by at most one page (~100 kB here).
            assert!(text.len() < 150_000 + 110_000, "{} bytes", text.len());
            let got: Vec<Value> = serde_json::from_str(&text).unwrap();
            answers += 1;
            assert_eq!(got.last().unwrap()["exit"]["_tag"], "Success");
            let pages: Vec<&Value> = got[..got.len() - 1]
                .iter()
                .map(|c| &c["values"][0])
                .collect();
            for p in &pages {
                for e in p["batch"].as_array().unwrap() {
                    seen.push(e["eventEncoded"]["seqNum"].as_i64().unwrap());
                }
            }
            let last = pages.last().unwrap();
            if last["pageInfo"]["_tag"] == "NoMore" {
                break;
            }
            assert_eq!(last["pageInfo"]["remaining"], 450 - *seen.last().unwrap());
            cursor = json!({"_tag": "Some", "value": {"backendId": "B",
                            "eventSequenceNumber": seen.last().unwrap()}});
        }
        assert_eq!(seen, (1..=450).collect::<Vec<_>>());
        assert_eq!(answers, 3, "two pages of ~100 kB per answer");
    }

    #[test]
    fn a_pull_from_another_backend_and_bodies_that_are_no_request() {
        let env = env(MemStorage::with_log(3, 10));
        let got = call(
            &env,
            json!({"_tag": "Request", "id": "1", "tag": "SyncHttpRpc.Pull", "headers": [],
                   "payload": {"storeId": "s", "payload": {},
                               "cursor": {"_tag": "Some", "value": {"backendId": "x", "eventSequenceNumber": 1}}}}),
        );
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0]["exit"]["cause"]["error"]["_tag"],
            "BackendIdMismatchError"
        );
        assert_eq!(handle(&env, "s", b"{}", "t"), Err(NotARequest));
        assert_eq!(handle(&env, "s", &[0xff, 0xfe], "t"), Err(NotARequest));
    }
}
