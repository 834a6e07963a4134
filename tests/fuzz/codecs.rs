//! Both codecs (0.3 `WSMessage.*`, 0.4 Effect-RPC), the JSON writers they
//! share, and the timestamps in them.
//!
//! Properties: decoding never panics on any text (mutated real frames,
//! JSON-aware mutations of them, plain strings); a client message built
//! from generated values decodes to those values, `args` byte for byte;
//! what decodes re-encodes (as the server's answers and broadcasts carry
//! it) to text that decodes to the same events; every answer the server
//! writes is JSON that reads back as the values it was written from.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use livestore_sync::model::{Event, StoredEvent};
use livestore_sync::protocol::json::{push_json_str, write_event};
use livestore_sync::protocol::v03;
use livestore_sync::protocol::v04::{
    self, Cursor, EffectOption, Incoming, PageInfo, PingPayload, PullPayload, PushPayload,
    SyncError,
};
use livestore_sync::timefmt;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Deserialize;
use serde_json::Value;

use crate::support::{accepted, captured, json_mutated, json_text, mutated, run, text};

/// A JSON string literal, by serde_json (independent of the writer under test).
fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Any string: mostly short, any Unicode (control characters, quotes,
/// backslashes, astral planes).
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,12}",
        1 => "[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}]{0,6}",
        1 => Just(String::new()),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        string(),
        prop::option::weighted(0.9, json_text()),
        any::<i64>(),
        any::<i64>(),
        string(),
        string(),
    )
        .prop_map(
            |(name, args, seq_num, parent_seq_num, client_id, session_id)| Event {
                name,
                args: args.map(Into::into),
                seq_num,
                parent_seq_num,
                client_id,
                session_id,
            },
        )
}

/// The event as a client writes it, in `order` (a permutation of its six
/// fields, so the decoder cannot depend on LiveStore's order), with an
/// unknown field sometimes.
fn client_event(e: &Event, order: &[usize], extra: bool) -> String {
    let mut fields = [
        Some(format!("\"name\":{}", lit(&e.name))),
        e.args.as_ref().map(|a| format!("\"args\":{a}")),
        Some(format!("\"seqNum\":{}", e.seq_num)),
        Some(format!("\"parentSeqNum\":{}", e.parent_seq_num)),
        Some(format!("\"clientId\":{}", lit(&e.client_id))),
        Some(format!("\"sessionId\":{}", lit(&e.session_id))),
    ];
    let mut out: Vec<String> = order.iter().filter_map(|&i| fields[i].take()).collect();
    if extra {
        out.push("\"meta\":{\"x\":[1,2]}".into());
    }
    format!("{{{}}}", out.join(","))
}

fn batch() -> impl Strategy<Value = (Vec<Event>, Vec<usize>, bool)> {
    (
        prop::collection::vec(event(), 0..5),
        Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        any::<bool>(),
    )
}

fn client_batch(events: &[Event], order: &[usize], extra: bool) -> String {
    let items: Vec<String> = events
        .iter()
        .map(|e| client_event(e, order, extra))
        .collect();
    format!("[{}]", items.join(","))
}

/// Times from year 0001 to 9999 in whole milliseconds (what is stored and sent).
fn created_at() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0i64..253_402_300_800_000).prop_map(from_ms),
        (-62_135_596_800_000i64..0).prop_map(from_ms),
        Just(UNIX_EPOCH),
    ]
}

fn from_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn stored_events() -> impl Strategy<Value = Vec<StoredEvent>> {
    prop::collection::vec((event(), created_at(), any::<bool>()), 0..6).prop_map(|items| {
        // Runs of one timestamp, as one push stores them (the writer caches it).
        let mut last = UNIX_EPOCH;
        items
            .into_iter()
            .map(|(event, t, same)| {
                let created_at = if same { last } else { t };
                last = created_at;
                StoredEvent { event, created_at }
            })
            .collect()
    })
}

/// What `write_event` writes reads back as the same event, `args` byte for
/// byte; `args` is JSON.
fn check_event(e: &Event) -> Result<(), TestCaseError> {
    if let Some(args) = &e.args {
        prop_assert!(
            serde_json::from_str::<&serde_json::value::RawValue>(args).is_ok(),
            "args kept are not JSON: {args:?}"
        );
    }
    let mut out = String::new();
    write_event(&mut out, e);
    let back: Event =
        serde_json::from_str(&out).map_err(|err| TestCaseError::fail(format!("{err}: {out}")))?;
    prop_assert_eq!(&back, e);
    Ok(())
}

/// An event of a pull page or broadcast, as the client reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EncodedBack {
    event_encoded: Event,
    metadata: MetadataBack,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataBack {
    #[serde(rename = "_tag")]
    tag: String,
    value: MetadataValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetadataValue {
    #[serde(rename = "_tag")]
    tag: Option<String>,
    created_at: String,
}

fn check_encoded(
    back: &[EncodedBack],
    events: &[StoredEvent],
    tag: Option<&str>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(back.len(), events.len());
    for (b, e) in back.iter().zip(events) {
        prop_assert_eq!(&b.event_encoded, &e.event);
        prop_assert_eq!(b.metadata.tag.as_str(), "Some");
        prop_assert_eq!(b.metadata.value.tag.as_deref(), tag);
        prop_assert_eq!(
            &b.metadata.value.created_at,
            &timefmt::iso8601(e.created_at)
        );
        prop_assert_eq!(
            timefmt::parse_iso8601(&b.metadata.value.created_at),
            Some(e.created_at)
        );
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PullResBack {
    #[serde(rename = "_tag")]
    tag: String,
    batch: Vec<EncodedBack>,
    request_id: PullResId,
    remaining: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PullResId {
    context: String,
    request_id: String,
}

// ---------------------------------------------------------------- 0.3

/// What any text does to the 0.3 decoder: no panic; a push's events
/// re-encode (into the broadcast) as the same events.
fn check_v03(text: &str) -> Result<(), TestCaseError> {
    let decoded = v03::decode(text);
    if decoded.is_some() {
        accepted();
    }
    match decoded {
        Some(v03::Request::Push { request_id, batch }) => {
            for e in &batch {
                check_event(e)?;
            }
            let stored: Vec<StoredEvent> = batch
                .into_iter()
                .map(|event| StoredEvent {
                    event,
                    created_at: UNIX_EPOCH,
                })
                .collect();
            let res = v03::pull_res(&stored, v03::Context::Push, &request_id, 0);
            let back: PullResBack = serde_json::from_str(&res)
                .map_err(|e| TestCaseError::fail(format!("{e}: {res}")))?;
            check_encoded(&back.batch, &stored, None)?;
            prop_assert_eq!(back.request_id.request_id, request_id);
        }
        Some(v03::Request::Pull {
            cursor: Some(c), ..
        }) => {
            prop_assert!(v03::cursor_from_f64(c) >= 0);
        }
        Some(_) | None => {}
    }
    Ok(())
}

fn v03_seeds() -> Vec<String> {
    captured("frames-v03.log", "c2s", "text")
}

#[test]
fn v03_decode_never_panics_on_mutated_frames() {
    let strategy = prop_oneof![
        3 => mutated(v03_seeds()).prop_map(|b| text(&b)),
        3 => json_mutated(v03_seeds()),
        1 => ".{0,64}",
    ];
    run("v03_decode_mutated", 3_000, strategy, |t| check_v03(&t));
}

#[derive(Debug, Clone)]
enum V03Msg {
    Pull(String, Option<String>),
    Push(String, (Vec<Event>, Vec<usize>, bool)),
    Ping,
    AdminInfo(String, String),
    AdminReset(String, String),
}

fn v03_message() -> impl Strategy<Value = V03Msg> {
    let cursor = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-1e20f64..1e20).prop_map(|f| Value::from(f).to_string()),
        prop::sample::select(vec!["0", "-0", "1e3", "2.5", "1e400", "-1e400"])
            .prop_map(str::to_string),
    ];
    prop_oneof![
        (string(), prop::option::of(cursor)).prop_map(|(r, c)| V03Msg::Pull(r, c)),
        (string(), batch()).prop_map(|(r, b)| V03Msg::Push(r, b)),
        Just(V03Msg::Ping),
        (string(), string()).prop_map(|(r, s)| V03Msg::AdminInfo(r, s)),
        (string(), string()).prop_map(|(r, s)| V03Msg::AdminReset(r, s)),
    ]
}

#[test]
fn v03_client_messages_decode_to_what_was_sent() {
    run(
        "v03_round_trip",
        1_500,
        v03_message(),
        |m| -> Result<(), TestCaseError> {
            let (frame, want) = match &m {
                V03Msg::Pull(r, cursor) => {
                    let c = cursor
                        .as_ref()
                        .map(|c| format!(",\"cursor\":{c}"))
                        .unwrap_or_default();
                    (
                        format!("{{\"_tag\":\"WSMessage.PullReq\",\"requestId\":{}{c}}}", lit(r)),
                        // A number too large for an f64 is not a number to serde_json.
                        match cursor.as_deref().map(serde_json::from_str::<f64>) {
                            Some(Err(_)) => None,
                            Some(Ok(c)) => Some(v03::Request::Pull {
                                request_id: r.clone(),
                                cursor: Some(c),
                            }),
                            None => Some(v03::Request::Pull {
                                request_id: r.clone(),
                                cursor: None,
                            }),
                        },
                    )
                }
                V03Msg::Push(r, (events, order, extra)) => (
                    format!(
                        "{{\"_tag\":\"WSMessage.PushReq\",\"requestId\":{},\"batch\":{}}}",
                        lit(r),
                        client_batch(events, order, *extra)
                    ),
                    Some(v03::Request::Push {
                        request_id: r.clone(),
                        batch: events.clone(),
                    }),
                ),
                V03Msg::Ping => (
                    r#"{"_tag":"WSMessage.Ping","requestId":"ping"}"#.to_string(),
                    Some(v03::Request::Ping),
                ),
                V03Msg::AdminInfo(r, s) => (
                    format!(
                        "{{\"adminSecret\":{},\"_tag\":\"WSMessage.AdminInfoReq\",\"requestId\":{}}}",
                        lit(s),
                        lit(r)
                    ),
                    Some(v03::Request::AdminInfo {
                        request_id: r.clone(),
                        admin_secret: s.clone(),
                    }),
                ),
                V03Msg::AdminReset(r, s) => (
                    format!(
                        "{{\"_tag\":\"WSMessage.AdminResetRoomReq\",\"requestId\":{},\"adminSecret\":{}}}",
                        lit(r),
                        lit(s)
                    ),
                    Some(v03::Request::AdminResetRoom {
                        request_id: r.clone(),
                        admin_secret: s.clone(),
                    }),
                ),
            };
            prop_assert_eq!(v03::decode(&frame), want, "{}", frame);
            check_v03(&frame)
        },
    );
}

#[test]
fn v03_answers_read_back_as_what_was_written() {
    let strategy = (
        stored_events(),
        any::<bool>(),
        string(),
        any::<i64>(),
        string(),
    );
    run(
        "v03_answers",
        1_500,
        strategy,
        |(events, pull, request_id, remaining, message)| {
            let context = if pull {
                v03::Context::Pull
            } else {
                v03::Context::Push
            };
            let res = v03::pull_res(&events, context, &request_id, remaining);
            let back: PullResBack = serde_json::from_str(&res)
                .map_err(|e| TestCaseError::fail(format!("{e}: {res}")))?;
            prop_assert_eq!(back.tag.as_str(), "WSMessage.PullRes");
            check_encoded(&back.batch, &events, None)?;
            prop_assert_eq!(back.request_id.context, if pull { "pull" } else { "push" });
            prop_assert_eq!(&back.request_id.request_id, &request_id);
            prop_assert_eq!(back.remaining, remaining);
            for (text, tag) in [
                (v03::push_ack(&request_id), "WSMessage.PushAck"),
                (v03::error(&request_id, &message), "WSMessage.Error"),
                (
                    v03::admin_reset_res(&request_id),
                    "WSMessage.AdminResetRoomRes",
                ),
                (
                    v03::admin_info_res(
                        &request_id,
                        &serde_json::json!({"durableObjectId": message}),
                    ),
                    "WSMessage.AdminInfoRes",
                ),
            ] {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                prop_assert_eq!(&v["_tag"], tag);
                prop_assert_eq!(&v["requestId"], &Value::from(request_id.as_str()));
                if tag == "WSMessage.Error" {
                    prop_assert_eq!(&v["message"], &Value::from(message.as_str()));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------- 0.4

/// What any text does to the 0.4 decoder: no panic; a request's payload
/// goes through every payload decoder without a panic; a push's events
/// re-encode (into a live chunk) as the same events.
fn check_v04(text: &str) -> Result<(), TestCaseError> {
    let decoded = v04::decode(text);
    if decoded.is_some() {
        accepted();
    }
    let Some(Incoming::Request { id, payload, .. }) = decoded else {
        return Ok(());
    };
    let _ = v04::decode_payload::<PullPayload>(payload.as_deref());
    let _ = v04::decode_payload::<PingPayload>(payload.as_deref());
    if let Ok(p) = v04::decode_payload::<PushPayload>(payload.as_deref()) {
        for e in &p.batch {
            check_event(e)?;
        }
        let stored: Vec<StoredEvent> = p
            .batch
            .into_iter()
            .map(|event| StoredEvent {
                event,
                created_at: UNIX_EPOCH,
            })
            .collect();
        let backend = p.backend_id.0.unwrap_or_default();
        check_chunk(
            &v04::chunk(&id, &stored, PageInfo::NoMore, &backend),
            &id,
            &stored,
            PageInfo::NoMore,
            &backend,
        )?;
        check_live_values(&v04::live_values(&stored, &backend), &stored, &backend)?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChunkBack {
    #[serde(rename = "_tag")]
    tag: String,
    request_id: String,
    values: Vec<PullResponseBack>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PullResponseBack {
    batch: Vec<EncodedBack>,
    page_info: Value,
    backend_id: String,
}

fn page_info_back(v: &Value) -> Option<PageInfo> {
    match v["_tag"].as_str()? {
        "NoMore" => Some(PageInfo::NoMore),
        "MoreKnown" => Some(PageInfo::MoreKnown(v["remaining"].as_i64()?)),
        _ => None,
    }
}

fn check_chunk(
    text: &str,
    request_id: &str,
    events: &[StoredEvent],
    info: PageInfo,
    backend_id: &str,
) -> Result<(), TestCaseError> {
    let back: ChunkBack =
        serde_json::from_str(text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    prop_assert_eq!(back.tag.as_str(), "Chunk");
    prop_assert_eq!(back.request_id.as_str(), request_id);
    prop_assert_eq!(back.values.len(), 1);
    let r = &back.values[0];
    check_encoded(&r.batch, events, Some("SyncMessage.SyncMetadata"))?;
    prop_assert_eq!(page_info_back(&r.page_info), Some(info));
    prop_assert_eq!(r.backend_id.as_str(), backend_id);
    Ok(())
}

fn check_live_values(
    values: &str,
    events: &[StoredEvent],
    backend_id: &str,
) -> Result<(), TestCaseError> {
    let text = format!("[{values}]");
    let back: Vec<PullResponseBack> =
        serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    let mut at = 0;
    for r in &back {
        prop_assert!(!r.batch.is_empty() && r.batch.len() <= 100);
        check_encoded(
            &r.batch,
            &events[at..at + r.batch.len()],
            Some("SyncMessage.SyncMetadata"),
        )?;
        at += r.batch.len();
        prop_assert_eq!(page_info_back(&r.page_info), Some(PageInfo::NoMore));
        prop_assert_eq!(r.backend_id.as_str(), backend_id);
    }
    prop_assert_eq!(at, events.len());
    Ok(())
}

fn v04_seeds() -> Vec<String> {
    captured("frames-v04.log", "c2s", "text")
}

#[test]
fn v04_decode_never_panics_on_mutated_frames() {
    let strategy = prop_oneof![
        3 => mutated(v04_seeds()).prop_map(|b| text(&b)),
        3 => json_mutated(v04_seeds()),
        1 => ".{0,64}",
    ];
    run("v04_decode_mutated", 3_000, strategy, |t| check_v04(&t));
}

#[derive(Debug, Clone)]
enum Payload {
    Pull(PullPayload),
    Push(String, (Vec<Event>, Vec<usize>, bool), Option<String>),
    Ping(String),
    Other(String),
}

#[derive(Debug, Clone)]
enum V04Msg {
    Request(String, bool, String, Payload),
    Ack(String, bool),
    Interrupt(String, bool),
    Ping,
    Eof,
}

/// A request id: a string, or (accepted too) a JSON number kept as its text.
fn request_id() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        3 => string().prop_map(|s| (s, false)),
        1 => any::<u64>().prop_map(|n| (n.to_string(), true)),
        1 => any::<i64>().prop_map(|n| (n.to_string(), true)),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    let cursor = prop::option::of((string(), any::<i64>())).prop_map(|c| {
        EffectOption(c.map(|(backend_id, event_sequence_number)| Cursor {
            backend_id,
            event_sequence_number,
        }))
    });
    prop_oneof![
        (string(), prop::option::of(any::<bool>()), cursor).prop_map(|(store_id, live, cursor)| {
            Payload::Pull(PullPayload {
                store_id,
                live,
                cursor,
            })
        }),
        (string(), batch(), prop::option::of(string()))
            .prop_map(|(s, b, backend)| Payload::Push(s, b, backend)),
        string().prop_map(Payload::Ping),
        json_text().prop_map(Payload::Other),
    ]
}

fn option_json(v: Option<String>) -> String {
    match v {
        None => r#"{"_tag":"None"}"#.into(),
        Some(v) => format!(r#"{{"_tag":"Some","value":{v}}}"#),
    }
}

/// The payload as the client writes it (with the `payload` field its
/// schema carries and ours ignores).
fn client_payload(p: &Payload) -> String {
    match p {
        Payload::Pull(p) => {
            let live = p.live.map(|l| format!(",\"live\":{l}")).unwrap_or_default();
            let cursor = option_json(p.cursor.0.as_ref().map(|c| {
                format!(
                    "{{\"backendId\":{},\"eventSequenceNumber\":{}}}",
                    lit(&c.backend_id),
                    c.event_sequence_number
                )
            }));
            format!(
                "{{\"storeId\":{},\"payload\":{{\"authToken\":\"t\"}}{live},\"cursor\":{cursor}}}",
                lit(&p.store_id)
            )
        }
        Payload::Push(store, (events, order, extra), backend) => format!(
            "{{\"storeId\":{},\"payload\":{{\"authToken\":\"t\"}},\"batch\":{},\"backendId\":{}}}",
            lit(store),
            client_batch(events, order, *extra),
            option_json(backend.as_deref().map(lit))
        ),
        Payload::Ping(store) => format!("{{\"storeId\":{}}}", lit(store)),
        Payload::Other(text) => text.clone(),
    }
}

fn id_json((id, number): &(String, bool)) -> String {
    if *number {
        id.clone()
    } else {
        lit(id)
    }
}

fn v04_message() -> impl Strategy<Value = V04Msg> {
    prop_oneof![
        4 => (request_id(), prop_oneof![
                prop::sample::select(vec![v04::PULL_WS, v04::PUSH_WS, v04::PULL_HTTP, v04::PUSH_HTTP, v04::PING_HTTP]).prop_map(str::to_string),
                string(),
            ], payload())
            .prop_map(|((id, n), tag, p)| V04Msg::Request(id, n, tag, p)),
        1 => request_id().prop_map(|(id, n)| V04Msg::Ack(id, n)),
        1 => request_id().prop_map(|(id, n)| V04Msg::Interrupt(id, n)),
        1 => Just(V04Msg::Ping),
        1 => Just(V04Msg::Eof),
    ]
}

#[test]
fn v04_client_messages_decode_to_what_was_sent() {
    run("v04_round_trip", 1_500, v04_message(), |m| {
        let frame = match &m {
            V04Msg::Request(id, n, tag, p) => format!(
                "{{\"_tag\":\"Request\",\"id\":{},\"tag\":{},\"traceId\":\"t\",\"payload\":{},\"spanId\":\"s\",\"sampled\":false,\"headers\":[]}}",
                id_json(&(id.clone(), *n)),
                lit(tag),
                client_payload(p)
            ),
            V04Msg::Ack(id, n) => format!("{{\"_tag\":\"Ack\",\"requestId\":{}}}", id_json(&(id.clone(), *n))),
            V04Msg::Interrupt(id, n) => format!(
                "{{\"_tag\":\"Interrupt\",\"requestId\":{},\"interruptors\":[]}}",
                id_json(&(id.clone(), *n))
            ),
            V04Msg::Ping => r#"{"_tag":"Ping"}"#.into(),
            V04Msg::Eof => r#"{"_tag":"Eof"}"#.into(),
        };
        let decoded = v04::decode(&frame);
        match (&m, decoded) {
            (
                V04Msg::Request(id, _, tag, p),
                Some(Incoming::Request {
                    id: i,
                    tag: t,
                    payload,
                }),
            ) => {
                prop_assert_eq!(&i, id);
                prop_assert_eq!(&t, tag);
                let raw = client_payload(p);
                let payload = payload.expect("a generated request has a payload");
                prop_assert_eq!(payload.get(), raw.as_str(), "payload kept as sent");
                match p {
                    Payload::Pull(want) => {
                        let got: PullPayload =
                            v04::decode_payload(Some(&payload)).map_err(TestCaseError::fail)?;
                        prop_assert_eq!(&got, want);
                    }
                    Payload::Push(store, (events, _, _), backend) => {
                        let got: PushPayload =
                            v04::decode_payload(Some(&payload)).map_err(TestCaseError::fail)?;
                        prop_assert_eq!(&got.store_id, store);
                        prop_assert_eq!(&got.batch, events);
                        prop_assert_eq!(&got.backend_id.0, backend);
                    }
                    Payload::Ping(store) => {
                        let got: PingPayload =
                            v04::decode_payload(Some(&payload)).map_err(TestCaseError::fail)?;
                        prop_assert_eq!(&got.store_id, store);
                    }
                    Payload::Other(_) => {}
                }
            }
            (V04Msg::Ack(id, _), Some(Incoming::Ack { request_id })) => {
                prop_assert_eq!(&request_id, id)
            }
            (V04Msg::Interrupt(id, _), Some(Incoming::Interrupt { request_id })) => {
                prop_assert_eq!(&request_id, id)
            }
            (V04Msg::Ping, Some(Incoming::Ping)) | (V04Msg::Eof, Some(Incoming::Eof)) => {}
            (m, got) => {
                return Err(TestCaseError::fail(format!(
                    "{m:?} decoded as {got:?}: {frame}"
                )))
            }
        }
        check_v04(&frame)
    });
}

fn sync_error() -> impl Strategy<Value = SyncError> {
    prop_oneof![
        (any::<i64>(), any::<i64>()).prop_map(|(minimum_expected, provided)| {
            SyncError::ServerAhead {
                minimum_expected,
                provided,
            }
        }),
        (string(), string())
            .prop_map(|(expected, received)| SyncError::BackendIdMismatch { expected, received }),
        string().prop_map(|message| SyncError::Unknown { message }),
    ]
}

#[test]
fn v04_answers_read_back_as_what_was_written() {
    let info = prop_oneof![
        Just(PageInfo::NoMore),
        (1i64..=i64::MAX).prop_map(PageInfo::MoreKnown)
    ];
    let strategy = (
        stored_events(),
        string(),
        info,
        string(),
        sync_error(),
        string(),
    );
    run(
        "v04_answers",
        1_500,
        strategy,
        |(events, request_id, info, backend_id, error, message)| {
            check_chunk(
                &v04::chunk(&request_id, &events, info, &backend_id),
                &request_id,
                &events,
                info,
                &backend_id,
            )?;
            // A live chunk: a per-stream head around the shared values.
            let live = format!(
                "{}{}{}",
                v04::chunk_head(&request_id),
                v04::live_values(&events, &backend_id),
                v04::CHUNK_TAIL
            );
            let back: ChunkBack = serde_json::from_str(&live)
                .map_err(|e| TestCaseError::fail(format!("{e}: {live}")))?;
            prop_assert_eq!(&back.request_id, &request_id);
            check_live_values(
                &v04::live_values(&events, &backend_id),
                &events,
                &backend_id,
            )?;
            let exit = |text: String| -> Result<Value, TestCaseError> {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                if v["_tag"] != "Exit" || v["requestId"] != request_id.as_str() {
                    return Err(TestCaseError::fail(format!(
                        "not an Exit for the id: {text}"
                    )));
                }
                Ok(v["exit"].clone())
            };
            prop_assert_eq!(
                &exit(v04::exit_stream_done(&request_id))?["_tag"],
                "Success"
            );
            prop_assert_eq!(
                exit(v04::exit_push_ok(&request_id))?["value"].clone(),
                serde_json::json!({})
            );
            prop_assert_eq!(
                &exit(v04::exit_http_pong(&request_id))?["value"]["_tag"],
                "SyncMessage.Pong"
            );
            prop_assert_eq!(
                &exit(v04::exit_interrupted(&request_id))?["cause"]["_tag"],
                "Interrupt"
            );
            prop_assert_eq!(
                exit(v04::exit_die(&request_id, &message))?["cause"]["defect"].clone(),
                Value::from(message.as_str())
            );
            let e = exit(v04::exit_fail(&request_id, &error))?["cause"]["error"].clone();
            match &error {
                SyncError::ServerAhead {
                    minimum_expected,
                    provided,
                } => {
                    prop_assert_eq!(&e["_tag"], "ServerAheadError");
                    prop_assert_eq!(e["minimumExpectedNum"].as_i64(), Some(*minimum_expected));
                    prop_assert_eq!(e["providedNum"].as_i64(), Some(*provided));
                }
                SyncError::BackendIdMismatch { expected, received } => {
                    prop_assert_eq!(&e["_tag"], "BackendIdMismatchError");
                    prop_assert_eq!(&e["expected"], &Value::from(expected.as_str()));
                    prop_assert_eq!(&e["received"], &Value::from(received.as_str()));
                }
                SyncError::Unknown { message } => {
                    prop_assert_eq!(&e["_tag"], "UnknownError");
                    prop_assert_eq!(&e["cause"]["message"], &Value::from(message.as_str()));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------- shared writers

#[test]
fn json_strings_and_timestamps_read_back() {
    let strategy = (prop_oneof![3 => string(), 1 => ".{0,200}"], created_at());
    run("json_str_and_time", 3_000, strategy, |(s, t)| {
        let mut out = String::new();
        push_json_str(&mut out, &s);
        let back: String =
            serde_json::from_str(&out).map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
        prop_assert_eq!(back, s);
        let iso = timefmt::iso8601(t);
        prop_assert_eq!(iso.len(), 24, "{}", iso);
        prop_assert_eq!(timefmt::parse_iso8601(&iso), Some(t), "{}", iso);
        Ok(())
    });
}
