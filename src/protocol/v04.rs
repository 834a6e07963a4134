//! The 0.4 wire format (`makeWsSync` / `makeHttpSync`): Effect-RPC envelopes
//! (`Request`, `Ack`, `Interrupt`, `Ping`, `Eof` in; `Chunk`, `Exit`, `Pong`
//! out) carrying LiveStore payloads. Sans-IO: text in, values out; values in,
//! text out. The same envelope travels one per WebSocket text frame, or as an
//! HTTP POST body answered with a JSON array.
//!
//! Spec: `../shared/protocol/sync-cf-0.4.md` §2.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::json::{push_int, push_json_str, write_encoded_events, Metadata};
use crate::model::{page_len, Event, StoredEvent};

/// A decoded envelope from the client.
#[derive(Debug)]
pub enum Incoming {
    /// An RPC call. `tag` names the method; `payload` is decoded by the
    /// session with [`decode_pull`] / [`decode_push`] once it knows the method.
    /// `None` when the envelope has no `payload`: still a request, answered
    /// with its `Die` like any payload failing the method's schema (ignoring
    /// it would leave the client waiting forever).
    Request {
        id: String,
        tag: String,
        payload: Option<Box<RawValue>>,
    },
    /// The client buffered one `Chunk` of this request (flow control).
    Ack {
        request_id: String,
    },
    /// The client cancels this request.
    Interrupt {
        request_id: String,
    },
    Ping,
    Eof,
}

/// Every field of any envelope, decoded in one pass (the payload is kept
/// raw and decoded once the method is known).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(rename = "_tag")]
    kind: String,
    id: Option<RequestId>,
    #[serde(rename = "tag")]
    method: Option<String>,
    /// `null` kept as `Some("null")` (`Option` alone reads it as absent):
    /// it fails the method's schema and gets the request's `Die` like any
    /// other bad payload, instead of the envelope being ignored.
    #[serde(default, deserialize_with = "raw_keeping_null")]
    payload: Option<Box<RawValue>>,
    request_id: Option<RequestId>,
}

fn raw_keeping_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Request ids are decimal strings in practice; accept a JSON number too and
/// keep it as its text (ids are opaque).
struct RequestId(String);

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(RequestId(s)),
            serde_json::Value::Number(n) => Ok(RequestId(n.to_string())),
            _ => Err(serde::de::Error::custom("request id must be a string")),
        }
    }
}

/// Decodes one envelope; `None` for anything that is not one (ignored).
pub fn decode(text: &str) -> Option<Incoming> {
    if let Some(request_id) = plain_ack(text) {
        return Some(Incoming::Ack {
            request_id: request_id.to_string(),
        });
    }
    let e: Envelope = serde_json::from_str(text).ok()?;
    Some(match e.kind.as_str() {
        "Request" => Incoming::Request {
            id: e.id?.0,
            tag: e.method?,
            payload: e.payload,
        },
        "Ack" => Incoming::Ack {
            request_id: e.request_id?.0,
        },
        "Interrupt" => Incoming::Interrupt {
            request_id: e.request_id?.0,
        },
        "Ping" => Incoming::Ping,
        "Eof" => Incoming::Eof,
        _ => return None,
    })
}

/// The request id of an `Ack` exactly as the real client writes it
/// (`{"_tag":"Ack","requestId":"0"}`, an id without escapes), without a JSON
/// parse: a live 0.4 subscriber answers every chunk with one, so this is
/// the frame a fan-out reads most. Anything else takes the full decode.
fn plain_ack(text: &str) -> Option<&str> {
    let id = text
        .strip_prefix(r#"{"_tag":"Ack","requestId":""#)?
        .strip_suffix(r#""}"#)?;
    (!id.contains(['"', '\\']) && !id.chars().any(char::is_control)).then_some(id)
}

/// Effect's `Schema.Option`: `{"_tag":"None"}` or `{"_tag":"Some","value":x}`.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectOption<T>(pub Option<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for EffectOption<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "_tag")]
            tag: String,
            value: Option<serde_json::Value>,
        }
        let raw = Raw::deserialize(d)?;
        match (raw.tag.as_str(), raw.value) {
            ("None", _) => Ok(EffectOption(None)),
            ("Some", Some(v)) => serde_json::from_value(v)
                .map(|v| EffectOption(Some(v)))
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "expected an Option ({_tag: None} or {_tag: Some, value})",
            )),
        }
    }
}

/// Where a pull starts: after `event_sequence_number` of the store
/// incarnation `backend_id`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    pub backend_id: String,
    pub event_sequence_number: i64,
}

/// `SyncWsRpc.Pull` / `SyncHttpRpc.Pull` payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullPayload {
    pub store_id: String,
    /// Present (and required) only on the WebSocket method.
    pub live: Option<bool>,
    pub cursor: EffectOption<Cursor>,
}

/// `SyncWsRpc.Push` / `SyncHttpRpc.Push` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushPayload {
    pub store_id: String,
    pub batch: Vec<Event>,
    pub backend_id: EffectOption<String>,
}

/// `SyncHttpRpc.Ping` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingPayload {
    pub store_id: String,
}

/// Decodes a method's payload (`None`: the request had none); the error
/// text goes into an `Exit` `Die`.
pub fn decode_payload<T: DeserializeOwned>(payload: Option<&RawValue>) -> Result<T, String> {
    let payload = payload.ok_or("invalid request payload: missing `payload`")?;
    serde_json::from_str(payload.get()).map_err(|e| format!("invalid request payload: {e}"))
}

pub const PULL_WS: &str = "SyncWsRpc.Pull";
pub const PUSH_WS: &str = "SyncWsRpc.Push";
pub const PULL_HTTP: &str = "SyncHttpRpc.Pull";
pub const PUSH_HTTP: &str = "SyncHttpRpc.Push";
pub const PING_HTTP: &str = "SyncHttpRpc.Ping";

/// `{"_tag":"Pong"}`, the answer to an envelope `Ping`.
pub const PONG: &str = r#"{"_tag":"Pong"}"#;

/// A page's `pageInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageInfo {
    MoreKnown(i64),
    NoMore,
}

impl PageInfo {
    pub fn from_remaining(remaining: i64) -> PageInfo {
        if remaining > 0 {
            PageInfo::MoreKnown(remaining)
        } else {
            PageInfo::NoMore
        }
    }
}

/// Appends one `PullResponse` value: `{"batch":[…],"pageInfo":…,"backendId":…}`.
pub fn write_pull_response(
    out: &mut String,
    events: &[StoredEvent],
    info: PageInfo,
    backend_id: &str,
) {
    out.push_str("{\"batch\":[");
    write_encoded_events(out, events, Metadata::Tagged);
    out.push_str("],\"pageInfo\":");
    match info {
        PageInfo::MoreKnown(n) => {
            out.push_str("{\"_tag\":\"MoreKnown\",\"remaining\":");
            push_int(out, n);
            out.push('}');
        }
        PageInfo::NoMore => out.push_str("{\"_tag\":\"NoMore\"}"),
    }
    out.push_str(",\"backendId\":");
    push_json_str(out, backend_id);
    out.push('}');
}

/// The head of a `Chunk` for `request_id`, up to the opening `[` of `values`.
pub fn chunk_head(request_id: &str) -> String {
    let mut out = String::with_capacity(48 + request_id.len());
    write_chunk_head(&mut out, request_id);
    out
}

fn write_chunk_head(out: &mut String, request_id: &str) {
    out.push_str("{\"_tag\":\"Chunk\",\"requestId\":");
    push_json_str(out, request_id);
    out.push_str(",\"values\":[");
}

/// Closes what [`chunk_head`] opened.
pub const CHUNK_TAIL: &str = "]}";

/// A `Chunk` with one `PullResponse`.
pub fn chunk(request_id: &str, events: &[StoredEvent], info: PageInfo, backend_id: &str) -> String {
    let mut out = String::with_capacity(160 + events.len() * 340);
    write_chunk(&mut out, request_id, events, info, backend_id);
    out
}

/// Appends a `Chunk` with one `PullResponse` (an HTTP answer is built in
/// one buffer this way).
pub fn write_chunk(
    out: &mut String,
    request_id: &str,
    events: &[StoredEvent],
    info: PageInfo,
    backend_id: &str,
) {
    write_chunk_head(out, request_id);
    write_pull_response(out, events, info, backend_id);
    out.push_str(CHUNK_TAIL);
}

/// The `values` of a live chunk for an accepted push (without the brackets):
/// the batch cut into `PullResponse`s of at most 100 events and about 900 kB,
/// each `NoMore`. Shared by every live subscription.
pub fn live_values(events: &[StoredEvent], backend_id: &str) -> String {
    let mut out = String::with_capacity(64 + events.len() * 340);
    let mut start = 0;
    while start < events.len() {
        let end = start + page_len(&events[start..]);
        if start > 0 {
            out.push(',');
        }
        write_pull_response(&mut out, &events[start..end], PageInfo::NoMore, backend_id);
        start = end;
    }
    out
}

fn exit(request_id: &str, exit_json: &str) -> String {
    let mut out = String::with_capacity(48 + request_id.len() + exit_json.len());
    out.push_str("{\"_tag\":\"Exit\",\"requestId\":");
    push_json_str(&mut out, request_id);
    out.push_str(",\"exit\":");
    out.push_str(exit_json);
    out.push('}');
    out
}

/// A stream (pull) ended normally.
pub fn exit_stream_done(request_id: &str) -> String {
    exit(request_id, r#"{"_tag":"Success"}"#)
}

/// A push succeeded (`PushAck` is `{}`, and the value is mandatory).
pub fn exit_push_ok(request_id: &str) -> String {
    exit(request_id, r#"{"_tag":"Success","value":{}}"#)
}

/// `SyncHttpRpc.Ping` succeeded.
pub fn exit_http_pong(request_id: &str) -> String {
    exit(
        request_id,
        r#"{"_tag":"Success","value":{"_tag":"SyncMessage.Pong"}}"#,
    )
}

/// The request was cancelled by the client.
pub fn exit_interrupted(request_id: &str) -> String {
    exit(
        request_id,
        r#"{"_tag":"Failure","cause":{"_tag":"Interrupt","fiberId":{"_tag":"None"}}}"#,
    )
}

/// The request itself was malformed (the reference answers a payload that
/// fails its schema this way; an unknown method too, instead of a
/// connection-wide `Defect`).
pub fn exit_die(request_id: &str, message: &str) -> String {
    let mut e = String::from(r#"{"_tag":"Failure","cause":{"_tag":"Die","defect":"#);
    push_json_str(&mut e, message);
    e.push_str("}}");
    exit(request_id, &e)
}

/// A typed failure the client handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// The push's first parent is not the head (the client is behind, or ahead of a reset store).
    ServerAhead {
        minimum_expected: i64,
        provided: i64,
    },
    /// The client's history belongs to another incarnation of the store.
    BackendIdMismatch { expected: String, received: String },
    /// Anything else; the client retries pushes with backoff.
    Unknown { message: String },
}

pub fn exit_fail(request_id: &str, error: &SyncError) -> String {
    let mut e = String::from(r#"{"_tag":"Failure","cause":{"_tag":"Fail","error":{"#);
    // Fields first, `_tag` last: the order the reference's encoder produces.
    match error {
        SyncError::ServerAhead {
            minimum_expected,
            provided,
        } => {
            e.push_str("\"minimumExpectedNum\":");
            push_int(&mut e, *minimum_expected);
            e.push_str(",\"providedNum\":");
            push_int(&mut e, *provided);
            e.push_str(",\"_tag\":\"ServerAheadError\"");
        }
        SyncError::BackendIdMismatch { expected, received } => {
            e.push_str("\"expected\":");
            push_json_str(&mut e, expected);
            e.push_str(",\"received\":");
            push_json_str(&mut e, received);
            e.push_str(",\"_tag\":\"BackendIdMismatchError\"");
        }
        SyncError::Unknown { message } => {
            e.push_str("\"cause\":{\"name\":\"Error\",\"message\":");
            push_json_str(&mut e, message);
            e.push_str("},\"_tag\":\"UnknownError\"");
        }
    }
    e.push_str("}}}");
    exit(request_id, &e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::fixtures::{frames, stored_events};

    #[test]
    fn every_captured_client_frame_decodes() {
        let c2s = frames("frames-v04.log", "c2s");
        let mut kinds = std::collections::BTreeMap::new();
        for f in &c2s {
            let m = decode(f).unwrap_or_else(|| panic!("did not decode: {f}"));
            let kind = match &m {
                Incoming::Request { tag, payload, .. } => {
                    match tag.as_str() {
                        PULL_WS => {
                            let p: PullPayload = decode_payload(payload.as_deref()).unwrap();
                            assert_eq!(p.live, Some(true));
                            assert_eq!(p.cursor, EffectOption(None));
                        }
                        PUSH_WS => {
                            let p: PushPayload = decode_payload(payload.as_deref()).unwrap();
                            assert!(!p.batch.is_empty());
                            assert_eq!(p.backend_id.0.is_some(), p.batch[0].parent_seq_num > 0);
                        }
                        other => panic!("unexpected method {other}"),
                    }
                    "request"
                }
                Incoming::Ack { .. } => "ack",
                Incoming::Interrupt { .. } => "interrupt",
                Incoming::Ping => "ping",
                Incoming::Eof => "eof",
            };
            *kinds.entry(kind).or_insert(0) += 1;
        }
        for k in ["request", "ack", "interrupt", "ping"] {
            assert!(kinds.contains_key(k), "no {k} among the captured frames");
        }
    }

    #[test]
    fn the_ack_shortcut_agrees_with_the_full_decode() {
        let full = |t: &str| -> Option<String> {
            let e: Envelope = serde_json::from_str(t).ok()?;
            (e.kind == "Ack").then_some(e.request_id?.0)
        };
        for t in [
            r#"{"_tag":"Ack","requestId":"0"}"#,
            r#"{"_tag":"Ack","requestId":"17"}"#,
            r#"{"_tag":"Ack","requestId":"é-x"}"#,
            r#"{"_tag":"Ack","requestId":""}"#,
        ] {
            assert_eq!(plain_ack(t), full(t).as_deref(), "{t}");
            assert!(
                matches!(decode(t), Some(Incoming::Ack { request_id }) if Some(request_id.clone()) == full(t))
            );
        }
        // Escapes, control characters, other shapes: the full decode decides.
        for t in [
            r#"{"_tag":"Ack","requestId":"\u0030"}"#,
            "{\"_tag\":\"Ack\",\"requestId\":\"a\nb\"}",
            r#"{"_tag":"Ack","requestId":"a"b"}"#,
            r#"{"_tag":"Ack","requestId":0}"#,
            r#"{"requestId":"0","_tag":"Ack"}"#,
            r#"{"_tag":"Ack","requestId":"0"} "#,
        ] {
            assert_eq!(plain_ack(t), None, "{t}");
        }
        assert!(
            matches!(decode(r#"{"_tag":"Ack","requestId":"\u0030"}"#), Some(Incoming::Ack { request_id }) if request_id == "0")
        );
        assert!(decode("{\"_tag\":\"Ack\",\"requestId\":\"a\nb\"}").is_none());
        assert!(decode(r#"{"_tag":"Ack","requestId":"a"b"}"#).is_none());
    }

    #[test]
    fn captured_server_frames_are_reproduced_byte_for_byte() {
        let mut checked = 0;
        for f in frames("frames-v04.log", "s2c") {
            let v: serde_json::Value = serde_json::from_str(&f).unwrap();
            let id = v["requestId"].as_str().unwrap_or("");
            let ours = match v["_tag"].as_str().unwrap() {
                "Pong" => PONG.to_string(),
                "Chunk" => {
                    let values = v["values"].as_array().unwrap();
                    assert_eq!(values.len(), 1);
                    let r = &values[0];
                    let events = stored_events(&r["batch"]);
                    let info = match r["pageInfo"]["_tag"].as_str().unwrap() {
                        "NoMore" => PageInfo::NoMore,
                        _ => PageInfo::MoreKnown(r["pageInfo"]["remaining"].as_i64().unwrap()),
                    };
                    chunk(id, &events, info, r["backendId"].as_str().unwrap())
                }
                "Exit" => match v["exit"]["_tag"].as_str().unwrap() {
                    "Success" => exit_push_ok(id),
                    _ => match v["exit"]["cause"]["_tag"].as_str().unwrap() {
                        "Fail" => {
                            let e = &v["exit"]["cause"]["error"];
                            exit_fail(
                                id,
                                &SyncError::ServerAhead {
                                    minimum_expected: e["minimumExpectedNum"].as_i64().unwrap(),
                                    provided: e["providedNum"].as_i64().unwrap(),
                                },
                            )
                        }
                        // The reference's interrupt exits carry its fiber ids; ours are simpler.
                        _ => continue,
                    },
                },
                other => panic!("unexpected {other}"),
            };
            assert_eq!(ours, f);
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} frames compared");
    }

    #[test]
    fn undecodable_envelopes_are_none() {
        for f in [
            "",
            "[]",
            "[{\"_tag\":\"Ping\"}]",
            r#"{"_tag":"Nope"}"#,
            r#"{"_tag":"Ack"}"#,
            r#"{"_tag":"Request","id":"1"}"#,
        ] {
            assert!(decode(f).is_none(), "{f}");
        }
        assert!(matches!(decode(r#"{"_tag":"Eof"}"#), Some(Incoming::Eof)));
        assert!(
            matches!(decode(r#"{"_tag":"Ack","requestId":7}"#), Some(Incoming::Ack { request_id }) if request_id == "7")
        );
    }

    #[test]
    fn a_null_payload_is_a_bad_payload_not_a_missing_one() {
        // Found by tests/fuzz (v04_round_trip): `"payload":null` made the
        // whole envelope undecodable, so a WebSocket request went
        // unanswered and an HTTP one got a 400, where any other payload
        // failing its schema gets its request's `Die`.
        let Some(Incoming::Request { id, payload, .. }) = decode(
            r#"{"_tag":"Request","id":"1","tag":"SyncWsRpc.Pull","payload":null,"headers":[]}"#,
        ) else {
            panic!("a request with a null payload is a request")
        };
        let payload = payload.expect("present");
        assert_eq!((id.as_str(), payload.get()), ("1", "null"));
        assert!(decode_payload::<PullPayload>(Some(&payload)).is_err());
    }

    #[test]
    fn a_request_without_a_payload_is_a_request_whose_payload_fails() {
        // Issue 13: it was ignored (WebSocket: no answer ever; HTTP: 400).
        let Some(Incoming::Request { id, tag, payload }) =
            decode(r#"{"_tag":"Request","id":"1","tag":"SyncWsRpc.Pull"}"#)
        else {
            panic!("a request without a payload is a request")
        };
        assert_eq!(
            (id.as_str(), tag.as_str(), payload.is_none()),
            ("1", PULL_WS, true)
        );
        let e = decode_payload::<PullPayload>(None).unwrap_err();
        assert!(e.contains("missing `payload`"), "{e}");
    }

    #[test]
    fn bad_payloads_are_errors_for_the_request() {
        let Some(Incoming::Request { payload, .. }) = decode(
            r#"{"_tag":"Request","id":"9","tag":"SyncWsRpc.Pull","payload":{"storeId":"s","live":true,"cursor":null},"headers":[]}"#,
        ) else {
            panic!()
        };
        assert!(decode_payload::<PullPayload>(payload.as_deref()).is_err());
        let p: PullPayload = decode_payload(Some(
            &RawValue::from_string(r#"{"storeId":"s","live":false,"cursor":{"_tag":"Some","value":{"backendId":"B","eventSequenceNumber":41}}}"#.into())
                .unwrap(),
        ))
        .unwrap();
        assert_eq!(
            p.cursor.0,
            Some(Cursor {
                backend_id: "B".into(),
                event_sequence_number: 41
            })
        );
    }

    #[test]
    fn encodes_exits_and_errors() {
        assert_eq!(
            exit_stream_done("0"),
            r#"{"_tag":"Exit","requestId":"0","exit":{"_tag":"Success"}}"#
        );
        assert_eq!(
            exit_http_pong("0"),
            r#"{"_tag":"Exit","requestId":"0","exit":{"_tag":"Success","value":{"_tag":"SyncMessage.Pong"}}}"#
        );
        let e = exit_fail(
            "1",
            &SyncError::BackendIdMismatch {
                expected: "NEW".into(),
                received: "Xy12".into(),
            },
        );
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(
            v["exit"]["cause"]["error"]["_tag"],
            "BackendIdMismatchError"
        );
        assert_eq!(v["exit"]["cause"]["error"]["expected"], "NEW");
        let e = exit_fail(
            "1",
            &SyncError::Unknown {
                message: "db \"down\"".into(),
            },
        );
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(
            v["exit"]["cause"]["error"]["cause"]["message"],
            "db \"down\""
        );
        let d: serde_json::Value = serde_json::from_str(&exit_die("2", "bad")).unwrap();
        assert_eq!(d["exit"]["cause"]["defect"], "bad");
        let i: serde_json::Value = serde_json::from_str(&exit_interrupted("3")).unwrap();
        assert_eq!(i["exit"]["cause"]["_tag"], "Interrupt");
    }

    #[test]
    fn live_values_split_big_batches() {
        let events: Vec<StoredEvent> = (1..=250)
            .map(|i| StoredEvent {
                event: crate::model::ev(i, "{}"),
                created_at: std::time::SystemTime::UNIX_EPOCH,
            })
            .collect();
        let body = format!("[{}]", live_values(&events, "B"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let sizes: Vec<usize> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["batch"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert!(v
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["pageInfo"]["_tag"] == "NoMore" && r["backendId"] == "B"));
    }
}
