//! What the clients send and the server answers, as raw JSON text: events,
//! 0.3 and 0.4 requests, Option values, and the parts of answers the tests
//! compare. Raw text, because a `serde_json::Value` would sort the keys.

use serde_json::Value;

use super::server::TOKEN;

/// Events `from..from+n` chaining from `from - 1`, as raw JSON text (a
/// `serde_json::Value` would sort the keys), with args whose keys are
/// deliberately not sorted.
pub fn events(from: i64, n: i64, client: &str) -> String {
    let items: Vec<String> = (from..from + n)
        .map(|i| {
            format!(
                r#"{{"name":"v1.TodoCreated","args":{},"seqNum":{i},"parentSeqNum":{},"clientId":"{client}","sessionId":"s"}}"#,
                args_text(i, client),
                i - 1
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A 0.3 `PushReq` frame.
pub fn v03_push(request_id: &str, batch: &str) -> String {
    format!(r#"{{"_tag":"WSMessage.PushReq","requestId":"{request_id}","batch":{batch}}}"#)
}

/// A 0.4 `Push` request; `backend_id` is the raw Option JSON (`{"_tag":"None"}` …).
pub fn v04_push(id: &str, tag: &str, store: &str, batch: &str, backend_id: &str) -> String {
    format!(
        r#"{{"_tag":"Request","id":"{id}","tag":"{tag}","payload":{{"storeId":{},"payload":{{"authToken":"{TOKEN}"}},"batch":{batch},"backendId":{backend_id}}},"headers":[]}}"#,
        Value::from(store)
    )
}

/// The raw text of one event's args as `events` builds it.
pub fn args_text(i: i64, client: &str) -> String {
    format!(
        r#"{{"text":"todo {i}","id":"{client}-{i}","nested":{{"zeta":1,"alpha":[2,{{"b":1,"a":0}}]}}}}"#
    )
}

/// A 0.4 `Pull` request. `live` is `Some(b)` for `SyncWsRpc.Pull` (the field
/// is left out with `None`, as `SyncHttpRpc.Pull` does); `cursor` is the raw
/// Option JSON (`{"_tag":"None"}` …).
pub fn v04_pull(id: &str, tag: &str, store: &str, live: Option<bool>, cursor: &str) -> String {
    let live = match live {
        Some(b) => format!(r#","live":{b}"#),
        None => String::new(),
    };
    format!(
        r#"{{"_tag":"Request","id":"{id}","tag":"{tag}","payload":{{"storeId":{},"payload":{{"authToken":"{TOKEN}"}}{live},"cursor":{cursor}}},"headers":[]}}"#,
        Value::from(store)
    )
}

/// `{"_tag":"Some","value":{"backendId":…,"eventSequenceNumber":…}}`.
pub fn some_cursor(backend_id: &str, seq: i64) -> String {
    format!(
        r#"{{"_tag":"Some","value":{{"backendId":{},"eventSequenceNumber":{seq}}}}}"#,
        Value::from(backend_id)
    )
}

/// `{"_tag":"Some","value":backend_id}` (a push's `backendId`).
pub fn some_str(s: &str) -> String {
    format!(r#"{{"_tag":"Some","value":{}}}"#, Value::from(s))
}

pub const NONE: &str = r#"{"_tag":"None"}"#;

/// The seqNums of the events in a 0.4 `PullResponse` or 0.3 `PullRes` batch.
pub fn seqs(batch: &Value) -> Vec<i64> {
    batch
        .as_array()
        .expect("batch is an array")
        .iter()
        .map(|e| e["eventEncoded"]["seqNum"].as_i64().expect("seqNum"))
        .collect()
}

/// The exact `Exit` a 0.4 server sends for an accepted push `id`.
pub fn push_ok_text(id: &str) -> String {
    format!(
        r#"{{"_tag":"Exit","requestId":{},"exit":{{"_tag":"Success","value":{{}}}}}}"#,
        Value::from(id)
    )
}

/// [`push_ok_text`] as JSON.
pub fn push_ok(id: &str) -> Value {
    serde_json::from_str(&push_ok_text(id)).unwrap()
}
