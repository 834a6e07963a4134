//! The two wire protocols of `@livestore/sync-cf`, as far as the bench
//! needs them: connection URLs, the frames a client sends, and the frames a
//! server answers, decoded into one protocol-neutral [`Incoming`] type.
//!
//! 0.3: flat `WSMessage.*` messages (spec sync-cf-0.3.md §2).
//! 0.4: Effect-RPC envelope around `SyncWsRpc.*` payloads (sync-cf-0.4.md §2).

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::events::{push_json_str, write_batch_json, Event};

/// Which protocol generation a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    V03,
    V04,
}

impl Proto {
    pub fn parse(s: &str) -> Result<Proto, String> {
        match s {
            "0.3" | "v03" | "03" => Ok(Proto::V03),
            "0.4" | "v04" | "04" => Ok(Proto::V04),
            other => Err(format!("unknown protocol {other:?} (use 0.3 or 0.4)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Proto::V03 => "0.3",
            Proto::V04 => "0.4",
        }
    }
}

// ---------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------

/// `application/x-www-form-urlencoded` serialization as `URLSearchParams`
/// does it: `*-._` and alphanumerics stay, space becomes `+`, every other
/// byte is `%XX`.
pub fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'*' | b'-' | b'.' | b'_' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => write!(out, "%{b:02X}").unwrap(),
        }
    }
    out
}

/// JavaScript's `encodeURIComponent`: leaves `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
pub fn encode_uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => out.push(b as char),
            _ => write!(out, "%{b:02X}").unwrap(),
        }
    }
    out
}

/// A parsed `ws://host:port/path` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub host: String,
    pub port: u16,
    /// Path without a trailing slash ("" for the root).
    pub path: String,
}

impl BaseUrl {
    /// Accepts `ws://` and `http://` (same thing for a plain-TCP client).
    /// TLS (`wss://`, `https://`) is not supported by the bench.
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| {
                format!("--url {url:?}: only ws:// or http:// URLs are supported (no TLS)")
            })?;
        if rest.contains('?') {
            return Err(format!("--url {url:?} must not contain a query"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("--url {url:?}: bad port {p:?}"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("--url {url:?}: no host"));
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(BaseUrl {
            host,
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The URL a client of `proto` opens for `store_id` with the sync
    /// payload `payload_json` (already JSON text).
    pub fn connect_url(&self, proto: Proto, store_id: &str, payload_json: Option<&str>) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut url = format!("ws://{}:{}{}", host, self.port, self.path);
        match proto {
            // `${url}/websocket?…` (plain concatenation in the 0.3 client).
            Proto::V03 => url.push_str("/websocket?"),
            // `${url}?…`; a root URL gets its `/`.
            Proto::V04 => url.push_str("/?"),
        }
        url.push_str("storeId=");
        url.push_str(&form_urlencode(store_id));
        if let Some(p) = payload_json {
            url.push_str("&payload=");
            url.push_str(&form_urlencode(&encode_uri_component(p)));
        }
        if proto == Proto::V04 {
            url.push_str("&transport=ws");
        }
        url
    }
}

// ---------------------------------------------------------------------------
// Client → server frames
// ---------------------------------------------------------------------------

pub fn ping_frame(proto: Proto) -> &'static str {
    match proto {
        Proto::V03 => r#"{"_tag":"WSMessage.Ping","requestId":"ping"}"#,
        Proto::V04 => r#"{"_tag":"Ping"}"#,
    }
}

/// 0.3 `PullReq`; `cursor` 0 is left out, as the real client does.
pub fn pull_req_v03(request_id: &str, cursor: u64) -> String {
    let mut s = String::from(r#"{"_tag":"WSMessage.PullReq","requestId":"#);
    push_json_str(&mut s, request_id);
    if cursor > 0 {
        write!(s, r#","cursor":{cursor}"#).unwrap();
    }
    s.push('}');
    s
}

/// 0.3 `PushReq`.
pub fn push_req_v03(request_id: &str, batch: &[Event]) -> String {
    let mut s = String::with_capacity(64 + batch.len() * 300);
    s.push_str(r#"{"_tag":"WSMessage.PushReq","requestId":"#);
    push_json_str(&mut s, request_id);
    s.push_str(r#","batch":"#);
    write_batch_json(&mut s, batch);
    s.push('}');
    s
}

/// 0.4 `SyncWsRpc.Pull` request. `cursor` is used only when a backendId is
/// known (the real client sends `None` otherwise).
pub fn pull_req_v04(
    id: &str,
    store_id: &str,
    payload_json: Option<&str>,
    live: bool,
    cursor: Option<(&str, u64)>,
) -> String {
    let mut s = String::from(r#"{"_tag":"Request","id":"#);
    push_json_str(&mut s, id);
    s.push_str(r#","tag":"SyncWsRpc.Pull","payload":{"storeId":"#);
    push_json_str(&mut s, store_id);
    if let Some(p) = payload_json {
        s.push_str(r#","payload":"#);
        s.push_str(p);
    }
    write!(s, r#","live":{live},"cursor":"#).unwrap();
    match cursor {
        None => s.push_str(r#"{"_tag":"None"}"#),
        Some((backend_id, seq)) => {
            s.push_str(r#"{"_tag":"Some","value":{"backendId":"#);
            push_json_str(&mut s, backend_id);
            write!(s, r#","eventSequenceNumber":{seq}}}}}"#).unwrap();
        }
    }
    s.push_str(r#"},"headers":[]}"#);
    s
}

/// 0.4 `SyncWsRpc.Push` request.
pub fn push_req_v04(
    id: &str,
    store_id: &str,
    payload_json: Option<&str>,
    batch: &[Event],
    backend_id: Option<&str>,
) -> String {
    let mut s = String::with_capacity(128 + batch.len() * 300);
    s.push_str(r#"{"_tag":"Request","id":"#);
    push_json_str(&mut s, id);
    s.push_str(r#","tag":"SyncWsRpc.Push","payload":{"storeId":"#);
    push_json_str(&mut s, store_id);
    if let Some(p) = payload_json {
        s.push_str(r#","payload":"#);
        s.push_str(p);
    }
    s.push_str(r#","batch":"#);
    write_batch_json(&mut s, batch);
    s.push_str(r#","backendId":"#);
    match backend_id {
        None => s.push_str(r#"{"_tag":"None"}"#),
        Some(b) => {
            s.push_str(r#"{"_tag":"Some","value":"#);
            push_json_str(&mut s, b);
            s.push('}');
        }
    }
    s.push_str(r#"},"headers":[]}"#);
    s
}

/// 0.4 flow-control `Ack` for a received `Chunk`.
pub fn ack_v04(request_id: &str) -> String {
    let mut s = String::from(r#"{"_tag":"Ack","requestId":"#);
    push_json_str(&mut s, request_id);
    s.push('}');
    s
}

// ---------------------------------------------------------------------------
// Server → client frames
// ---------------------------------------------------------------------------

/// One decoded server message, the same for both protocols.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A page of events. 0.3: a `PullRes` (`broadcast` when its context is
    /// "push"). 0.4: one value of a `Chunk` addressed to `request_id`.
    Page {
        request_id: String,
        broadcast: bool,
        events: Vec<Event>,
        /// Events still to come after this page; `Some(0)` on the last page
        /// (0.3 `remaining:0`, 0.4 `NoMore`), `None` for 0.4 `MoreUnknown`.
        remaining: Option<u64>,
        backend_id: Option<String>,
        /// Whether every item carried a well-formed `metadata` Option.
        metadata_ok: bool,
    },
    /// 0.3 `PushAck`.
    PushAck {
        request_id: String,
    },
    /// 0.3 `Error`.
    Error {
        request_id: String,
        message: String,
    },
    /// 0.4 `Exit`: `Ok` for Success, `Err(text)` for a Failure (the error's
    /// `_tag` first, e.g. `ServerAheadError: {…}`).
    Exit {
        request_id: String,
        result: Result<(), String>,
    },
    /// 0.4 `Defect` (kills every request of the connection).
    Defect {
        defect: String,
    },
    Pong,
    /// Anything else (unknown tag); the raw frame, shortened.
    Other(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
    seq_num: u64,
    parent_seq_num: u64,
    #[serde(borrow)]
    client_id: Cow<'a, str>,
    #[serde(borrow)]
    session_id: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireItem<'a> {
    #[serde(borrow)]
    event_encoded: WireEvent<'a>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Tagged<'a> {
    #[serde(rename = "_tag", borrow)]
    tag: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Msg03<'a> {
    #[serde(rename = "_tag", borrow)]
    tag: Cow<'a, str>,
    #[serde(borrow, default)]
    request_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    batch: Option<Vec<WireItem<'a>>>,
    #[serde(default)]
    remaining: Option<f64>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullResRequestId {
    context: String,
    request_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Msg04<'a> {
    #[serde(rename = "_tag", borrow)]
    tag: Cow<'a, str>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(borrow, default)]
    values: Option<Vec<PullResponse04<'a>>>,
    #[serde(borrow, default)]
    exit: Option<&'a RawValue>,
    #[serde(borrow, default)]
    defect: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullResponse04<'a> {
    #[serde(borrow)]
    batch: Vec<WireItem<'a>>,
    page_info: PageInfo04,
    backend_id: String,
}

#[derive(Deserialize)]
struct PageInfo04 {
    #[serde(rename = "_tag")]
    tag: String,
    #[serde(default)]
    remaining: Option<f64>,
}

fn convert_items(items: Vec<WireItem<'_>>, metadata_ok: &mut bool) -> Vec<Event> {
    items
        .into_iter()
        .map(|it| {
            match it.metadata {
                Some(m) => {
                    // An Option: {"_tag":"None"} or {"_tag":"Some","value":…}.
                    match serde_json::from_str::<Tagged>(m.get()) {
                        Ok(t) if t.tag == "None" || t.tag == "Some" => {}
                        _ => *metadata_ok = false,
                    }
                }
                None => *metadata_ok = false,
            }
            let e = it.event_encoded;
            Event {
                name: e.name.into_owned(),
                args: e.args.map(|a| a.get().to_string()).filter(|a| a != "null"),
                seq_num: e.seq_num,
                parent_seq_num: e.parent_seq_num,
                client_id: e.client_id.into_owned(),
                session_id: e.session_id.into_owned(),
            }
        })
        .collect()
}

fn shorten(s: &str) -> String {
    if s.len() <= 300 {
        s.to_string()
    } else {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

/// Decodes one 0.3 server frame.
pub fn parse_v03(frame: &str) -> Result<Incoming, String> {
    let m: Msg03 = serde_json::from_str(frame)
        .map_err(|e| format!("undecodable 0.3 frame ({e}): {}", shorten(frame)))?;
    let plain_id = |m: &Msg03| -> Result<String, String> {
        let raw = m
            .request_id
            .ok_or_else(|| format!("{} without requestId", m.tag))?;
        serde_json::from_str::<String>(raw.get())
            .map_err(|_| format!("{} with a non-string requestId", m.tag))
    };
    match m.tag.as_ref() {
        "WSMessage.PullRes" => {
            let raw = m.request_id.ok_or("PullRes without requestId")?;
            let rid: PullResRequestId = serde_json::from_str(raw.get()).map_err(|e| {
                format!(
                    "PullRes requestId is not {{context,requestId}} ({e}): {}",
                    shorten(frame)
                )
            })?;
            let broadcast = match rid.context.as_str() {
                "pull" => false,
                "push" => true,
                other => return Err(format!("PullRes with context {other:?}")),
            };
            let remaining = m.remaining.ok_or("PullRes without remaining")?;
            let batch = m.batch.ok_or("PullRes without batch")?;
            let mut metadata_ok = true;
            let events = convert_items(batch, &mut metadata_ok);
            Ok(Incoming::Page {
                request_id: rid.request_id,
                broadcast,
                events,
                remaining: Some(remaining.max(0.0) as u64),
                backend_id: None,
                metadata_ok,
            })
        }
        "WSMessage.PushAck" => Ok(Incoming::PushAck {
            request_id: plain_id(&m)?,
        }),
        "WSMessage.Error" => Ok(Incoming::Error {
            request_id: plain_id(&m)?,
            message: m.message.clone().unwrap_or_default(),
        }),
        "WSMessage.Pong" => Ok(Incoming::Pong),
        _ => Ok(Incoming::Other(shorten(frame))),
    }
}

/// Decodes one 0.4 server frame into zero or more messages (a `Chunk` may
/// carry several PullResponses).
pub fn parse_v04(frame: &str) -> Result<Vec<Incoming>, String> {
    let m: Msg04 = serde_json::from_str(frame)
        .map_err(|e| format!("undecodable 0.4 frame ({e}): {}", shorten(frame)))?;
    match m.tag.as_ref() {
        "Chunk" => {
            let request_id = m.request_id.ok_or("Chunk without requestId")?;
            let values = m.values.ok_or("Chunk without values")?;
            if values.is_empty() {
                return Err("Chunk with an empty values array".into());
            }
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                let remaining = match v.page_info.tag.as_str() {
                    "NoMore" => Some(0),
                    "MoreKnown" => {
                        let r = v.page_info.remaining.ok_or("MoreKnown without remaining")?;
                        if r <= 0.0 {
                            return Err(format!("MoreKnown with remaining {r}"));
                        }
                        Some(r as u64)
                    }
                    "MoreUnknown" => None,
                    other => return Err(format!("unknown pageInfo {other:?}")),
                };
                let mut metadata_ok = true;
                let events = convert_items(v.batch, &mut metadata_ok);
                out.push(Incoming::Page {
                    request_id: request_id.clone(),
                    broadcast: false,
                    events,
                    remaining,
                    backend_id: Some(v.backend_id),
                    metadata_ok,
                });
            }
            Ok(out)
        }
        "Exit" => {
            let request_id = m.request_id.ok_or("Exit without requestId")?;
            let exit = m.exit.ok_or("Exit without exit")?;
            let v: serde_json::Value =
                serde_json::from_str(exit.get()).map_err(|e| e.to_string())?;
            let result = match v.get("_tag").and_then(|t| t.as_str()) {
                Some("Success") => Ok(()),
                Some("Failure") => {
                    let cause = &v["cause"];
                    let err = &cause["error"];
                    match err.get("_tag").and_then(|t| t.as_str()) {
                        Some(tag) => Err(format!("{tag}: {err}")),
                        None => Err(format!(
                            "{}: {cause}",
                            cause.get("_tag").and_then(|t| t.as_str()).unwrap_or("?")
                        )),
                    }
                }
                _ => return Err(format!("Exit with unknown exit: {}", shorten(exit.get()))),
            };
            Ok(vec![Incoming::Exit { request_id, result }])
        }
        "Defect" => Ok(vec![Incoming::Defect {
            defect: m.defect.map(|d| shorten(d.get())).unwrap_or_default(),
        }]),
        "Pong" => Ok(vec![Incoming::Pong]),
        _ => Ok(vec![Incoming::Other(shorten(frame))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::make_chain;

    #[test]
    fn urls_are_encoded_like_the_real_clients() {
        let b = BaseUrl::parse("ws://localhost:8787").unwrap();
        assert_eq!(
            b,
            BaseUrl {
                host: "localhost".into(),
                port: 8787,
                path: "".into()
            }
        );
        assert_eq!(
            b.connect_url(Proto::V03, "my store/1", None),
            "ws://localhost:8787/websocket?storeId=my+store%2F1"
        );
        assert_eq!(
            b.connect_url(Proto::V03, "s", Some(r#"{"authToken":"tok"}"#)),
            "ws://localhost:8787/websocket?storeId=s&payload=%257B%2522authToken%2522%253A%2522tok%2522%257D"
        );
        // The 0.4 example of sync-cf-0.4.md §1.2.
        let b = BaseUrl::parse("ws://h:1/sync/").unwrap();
        assert_eq!(
            b.connect_url(Proto::V04, "store 1/ä", Some(r#"{"authToken":"a&b=c d%"}"#)),
            "ws://h:1/sync/?storeId=store+1%2F%C3%A4&payload=%257B%2522authToken%2522%253A%2522a%2526b%253Dc%2520d%2525%2522%257D&transport=ws"
        );
        assert_eq!(encode_uri_component("\"str\""), "%22str%22");
        assert_eq!(form_urlencode("a*b-c.d_e~"), "a*b-c.d_e%7E");
        assert!(BaseUrl::parse("wss://h").is_err());
        assert!(BaseUrl::parse("ws://h:x").is_err());
        assert_eq!(BaseUrl::parse("http://127.0.0.1").unwrap().port, 80);
    }

    #[test]
    fn client_frames_match_the_spec() {
        assert_eq!(
            pull_req_v03("r1", 0),
            r#"{"_tag":"WSMessage.PullReq","requestId":"r1"}"#
        );
        assert_eq!(
            pull_req_v03("r1", 5),
            r#"{"_tag":"WSMessage.PullReq","requestId":"r1","cursor":5}"#
        );
        let batch = make_chain("cA", 3, 1, 10);
        let push: serde_json::Value = serde_json::from_str(&push_req_v03("p", &batch)).unwrap();
        assert_eq!(push["_tag"], "WSMessage.PushReq");
        assert_eq!(push["batch"][0]["seqNum"], 4);

        let p = pull_req_v04(
            "0",
            "s1",
            Some(r#"{"authToken":"t"}"#),
            true,
            Some(("Xy12", 41)),
        );
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["tag"], "SyncWsRpc.Pull");
        assert_eq!(v["payload"]["payload"]["authToken"], "t");
        assert_eq!(v["payload"]["live"], true);
        assert_eq!(v["payload"]["cursor"]["value"]["eventSequenceNumber"], 41);
        assert_eq!(v["payload"]["cursor"]["value"]["backendId"], "Xy12");
        assert_eq!(v["headers"], serde_json::json!([]));
        let p = pull_req_v04("1", "s1", None, false, None);
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["payload"]["cursor"]["_tag"], "None");
        assert!(v["payload"].get("payload").is_none());

        let v: serde_json::Value =
            serde_json::from_str(&push_req_v04("2", "s1", None, &batch, Some("B"))).unwrap();
        assert_eq!(v["payload"]["backendId"]["value"], "B");
        assert_eq!(v["payload"]["batch"][0]["parentSeqNum"], 3);
        let v: serde_json::Value =
            serde_json::from_str(&push_req_v04("2", "s1", None, &batch, None)).unwrap();
        assert_eq!(v["payload"]["backendId"]["_tag"], "None");
        assert_eq!(ack_v04("7"), r#"{"_tag":"Ack","requestId":"7"}"#);
    }

    #[test]
    fn parses_v03_server_frames() {
        let f = r#"{"_tag":"WSMessage.PullRes","batch":[{"eventEncoded":{"name":"todoCreated","args":{"id":"t1"},"seqNum":1,"parentSeqNum":0,"clientId":"cA","sessionId":"sA"},"metadata":{"_tag":"Some","value":{"createdAt":"2025-01-01T00:00:00.000Z"}}}],"requestId":{"context":"pull","requestId":"Q7x"},"remaining":0}"#;
        match parse_v03(f).unwrap() {
            Incoming::Page {
                request_id,
                broadcast,
                events,
                remaining,
                metadata_ok,
                ..
            } => {
                assert_eq!(request_id, "Q7x");
                assert!(!broadcast);
                assert_eq!(remaining, Some(0));
                assert!(metadata_ok);
                assert_eq!(events[0].args.as_deref(), Some(r#"{"id":"t1"}"#));
                assert_eq!(events[0].seq_num, 1);
            }
            other => panic!("{other:?}"),
        }
        let b = r#"{"_tag":"WSMessage.PullRes","batch":[],"requestId":{"context":"push","requestId":"P"},"remaining":0}"#;
        assert!(matches!(
            parse_v03(b).unwrap(),
            Incoming::Page {
                broadcast: true,
                ..
            }
        ));
        assert_eq!(
            parse_v03(r#"{"_tag":"WSMessage.PushAck","requestId":"P1"}"#).unwrap(),
            Incoming::PushAck {
                request_id: "P1".into()
            }
        );
        assert_eq!(
            parse_v03(r#"{"_tag":"WSMessage.Error","requestId":"P1","message":"Invalid parent"}"#)
                .unwrap(),
            Incoming::Error {
                request_id: "P1".into(),
                message: "Invalid parent".into()
            }
        );
        assert_eq!(
            parse_v03(r#"{"_tag":"WSMessage.Pong","requestId":"ping"}"#).unwrap(),
            Incoming::Pong
        );
        assert!(parse_v03("[1]").is_err());
        // Missing metadata is flagged.
        let nm = r#"{"_tag":"WSMessage.PullRes","batch":[{"eventEncoded":{"name":"x","seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}}],"requestId":{"context":"pull","requestId":"Q"},"remaining":0}"#;
        assert!(matches!(
            parse_v03(nm).unwrap(),
            Incoming::Page {
                metadata_ok: false,
                ..
            }
        ));
    }

    #[test]
    fn parses_v04_server_frames() {
        let f = r#"{"_tag":"Chunk","requestId":"0","values":[{"batch":[{"eventEncoded":{"name":"v1.TodoCreated","args":{"id":"B","text":"t"},"seqNum":1,"parentSeqNum":0,"clientId":"B","sessionId":"static"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-11-25T11:52:06.379Z"}}}],"pageInfo":{"_tag":"MoreKnown","remaining":3},"backendId":"8l1O"},{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"8l1O"}]}"#;
        let v = parse_v04(f).unwrap();
        assert_eq!(v.len(), 2);
        assert!(
            matches!(&v[0], Incoming::Page { remaining: Some(3), backend_id: Some(b), events, .. } if b == "8l1O" && events.len() == 1)
        );
        assert!(matches!(
            &v[1],
            Incoming::Page {
                remaining: Some(0),
                ..
            }
        ));
        assert_eq!(
            parse_v04(r#"{"_tag":"Exit","requestId":"1","exit":{"_tag":"Success","value":{}}}"#)
                .unwrap(),
            vec![Incoming::Exit {
                request_id: "1".into(),
                result: Ok(())
            }]
        );
        let fail = r#"{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"_tag":"ServerAheadError","minimumExpectedNum":43,"providedNum":42}}}}"#;
        match &parse_v04(fail).unwrap()[0] {
            Incoming::Exit { result: Err(e), .. } => {
                assert!(e.starts_with("ServerAheadError"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let die = r#"{"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Die","defect":"x"}}}"#;
        assert!(
            matches!(&parse_v04(die).unwrap()[0], Incoming::Exit { result: Err(e), .. } if e.starts_with("Die"))
        );
        assert_eq!(
            parse_v04(r#"{"_tag":"Pong"}"#).unwrap(),
            vec![Incoming::Pong]
        );
        assert!(matches!(
            &parse_v04(r#"{"_tag":"Defect","defect":"boom"}"#).unwrap()[0],
            Incoming::Defect { .. }
        ));
        assert!(parse_v04(r#"{"_tag":"Chunk","requestId":"0","values":[]}"#).is_err());
    }
}
