//! The 0.3 wire format (`makeCfSync`): one `WSMessage.*` JSON object per text
//! frame. Sans-IO: text in, [`Request`] out; values in, text out.
//!
//! Spec: `../shared/protocol/sync-cf-0.3.md` §2. Decoding follows the client's
//! Effect schemas: unknown fields are ignored, anything that does not match
//! is `None` (the caller ignores the frame and keeps the socket).

use serde::Deserialize;

use super::json::{push_json_str, write_encoded_events, Metadata};
use crate::model::{Event, StoredEvent};

/// A decoded client message.
#[derive(Debug, PartialEq)]
pub enum Request {
    Pull {
        request_id: String,
        cursor: Option<f64>,
    },
    Push {
        request_id: String,
        batch: Vec<Event>,
    },
    Ping,
    AdminInfo {
        request_id: String,
        admin_secret: String,
    },
    AdminResetRoom {
        request_id: String,
        admin_secret: String,
    },
}

/// Every field any client message has, decoded in one pass over the frame
/// (pushes are the hot path; a first pass for `_tag` alone would scan the
/// whole batch twice). A field of the wrong type fails the frame even where
/// the message kind does not use it; real clients never send such frames.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Frame {
    #[serde(rename = "_tag")]
    tag: String,
    request_id: Option<String>,
    /// `None` when absent; `Some(Value::Null)` when `null`, which the client
    /// schema rejects (so do we).
    #[serde(default, deserialize_with = "present")]
    cursor: Option<serde_json::Value>,
    batch: Option<Vec<Event>>,
    admin_secret: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// Decodes one text frame; `None` for anything the protocol does not define.
pub fn decode(text: &str) -> Option<Request> {
    let f: Frame = serde_json::from_str(text).ok()?;
    Some(match f.tag.as_str() {
        "WSMessage.PullReq" => {
            let cursor = match f.cursor {
                None => None,
                Some(v) => Some(v.as_f64()?),
            };
            Request::Pull {
                request_id: f.request_id?,
                cursor,
            }
        }
        "WSMessage.PushReq" => Request::Push {
            request_id: f.request_id?,
            batch: f.batch?,
        },
        "WSMessage.Ping" if f.request_id.as_deref() == Some("ping") => Request::Ping,
        "WSMessage.AdminInfoReq" => Request::AdminInfo {
            request_id: f.request_id?,
            admin_secret: f.admin_secret?,
        },
        "WSMessage.AdminResetRoomReq" => Request::AdminResetRoom {
            request_id: f.request_id?,
            admin_secret: f.admin_secret?,
        },
        _ => return None,
    })
}

/// A 0.3 cursor is any JSON number: events strictly greater than it are
/// wanted, so a fractional cursor counts from its floor.
pub fn cursor_from_f64(c: f64) -> i64 {
    if c.is_nan() || c < 0.0 {
        0
    } else if c >= i64::MAX as f64 {
        i64::MAX
    } else {
        c.floor() as i64
    }
}

/// Which request a `PullRes` answers: a pull page, or a broadcast caused by a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Pull,
    Push,
}

/// `WSMessage.PullRes` with `events`, for `request_id` in `context`.
pub fn pull_res(
    events: &[StoredEvent],
    context: Context,
    request_id: &str,
    remaining: i64,
) -> String {
    let mut out = String::with_capacity(96 + events.len() * 320);
    out.push_str("{\"_tag\":\"WSMessage.PullRes\",\"batch\":[");
    write_encoded_events(&mut out, events, Metadata::Plain);
    out.push_str("],\"requestId\":{\"context\":");
    out.push_str(match context {
        Context::Pull => "\"pull\"",
        Context::Push => "\"push\"",
    });
    out.push_str(",\"requestId\":");
    push_json_str(&mut out, request_id);
    out.push_str("},\"remaining\":");
    out.push_str(&remaining.to_string());
    out.push('}');
    out
}

fn with_request_id(tag: &str, request_id: &str, rest: &str) -> String {
    let mut out = String::with_capacity(64 + request_id.len() + rest.len());
    out.push_str("{\"_tag\":\"");
    out.push_str(tag);
    out.push_str("\",\"requestId\":");
    push_json_str(&mut out, request_id);
    out.push_str(rest);
    out.push('}');
    out
}

pub fn push_ack(request_id: &str) -> String {
    with_request_id("WSMessage.PushAck", request_id, "")
}

pub fn error(request_id: &str, message: &str) -> String {
    let mut rest = String::from(",\"message\":");
    push_json_str(&mut rest, message);
    with_request_id("WSMessage.Error", request_id, &rest)
}

/// The one Pong there is.
pub const PONG: &str = r#"{"_tag":"WSMessage.Pong","requestId":"ping"}"#;

pub fn admin_reset_res(request_id: &str) -> String {
    with_request_id("WSMessage.AdminResetRoomRes", request_id, "")
}

/// `info` must be a JSON object with at least `durableObjectId`.
pub fn admin_info_res(request_id: &str, info: &serde_json::Value) -> String {
    with_request_id(
        "WSMessage.AdminInfoRes",
        request_id,
        &format!(",\"info\":{info}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::fixtures::{frames, stored_events};

    #[test]
    fn cursors_from_json_numbers() {
        assert_eq!(cursor_from_f64(2.5), 2);
        assert_eq!(cursor_from_f64(-3.0), 0);
        assert_eq!(cursor_from_f64(7.0), 7);
        assert_eq!(cursor_from_f64(f64::NAN), 0);
        assert_eq!(cursor_from_f64(1e300), i64::MAX);
    }

    #[test]
    fn every_captured_client_frame_decodes() {
        let c2s = frames("frames-v03.log", "c2s");
        assert!(c2s.len() >= 8);
        for f in &c2s {
            assert!(decode(f).is_some(), "did not decode: {f}");
        }
        let pushes: Vec<_> = c2s
            .iter()
            .filter_map(|f| match decode(f) {
                Some(Request::Push { batch, .. }) => Some(batch),
                _ => None,
            })
            .collect();
        assert_eq!(pushes.len(), 3);
        assert_eq!(
            pushes[0][0].args.as_deref().unwrap(),
            r#"{"id":"A-18062-0000","text":"todo 0 from A-18062"}"#
        );
        assert_eq!(pushes[2][0].parent_seq_num, 3);
    }

    #[test]
    fn captured_server_frames_are_reproduced_byte_for_byte() {
        // Re-encode every PullRes the reference sent from its decoded content.
        let mut checked = 0;
        for f in frames("frames-v03.log", "s2c") {
            let v: serde_json::Value = serde_json::from_str(&f).unwrap();
            let ours = match v["_tag"].as_str().unwrap() {
                "WSMessage.PullRes" => {
                    let events = stored_events(&v["batch"]);
                    let ctx = if v["requestId"]["context"] == "pull" {
                        Context::Pull
                    } else {
                        Context::Push
                    };
                    pull_res(
                        &events,
                        ctx,
                        v["requestId"]["requestId"].as_str().unwrap(),
                        v["remaining"].as_i64().unwrap(),
                    )
                }
                "WSMessage.PushAck" => push_ack(v["requestId"].as_str().unwrap()),
                "WSMessage.Error" => error(
                    v["requestId"].as_str().unwrap(),
                    v["message"].as_str().unwrap(),
                ),
                "WSMessage.Pong" => PONG.to_string(),
                other => panic!("unexpected {other}"),
            };
            assert_eq!(ours, f);
            checked += 1;
        }
        assert!(checked >= 10);
    }

    #[test]
    fn undecodable_frames_are_none() {
        for f in [
            "not json",
            "[]",
            r#"{"_tag":"WSMessage.Nope"}"#,
            r#"{"_tag":"WSMessage.PullReq"}"#,
            r#"{"_tag":"WSMessage.PullReq","requestId":"r","cursor":null}"#,
            r#"{"_tag":"WSMessage.PullReq","requestId":"r","cursor":"5"}"#,
            r#"{"_tag":"WSMessage.Ping","requestId":"pong"}"#,
            r#"{"_tag":"WSMessage.PushReq","requestId":"r","batch":[{"name":"n","seqNum":1.5,"parentSeqNum":0,"clientId":"c","sessionId":"s"}]}"#,
            r#"{"_tag":"WSMessage.AdminInfoReq","requestId":"r"}"#,
        ] {
            assert_eq!(decode(f), None, "{f}");
        }
    }

    #[test]
    fn decodes_every_request_kind() {
        assert_eq!(
            decode(r#"{"_tag":"WSMessage.PullReq","requestId":"r1","cursor":5,"extra":true}"#),
            Some(Request::Pull {
                request_id: "r1".into(),
                cursor: Some(5.0)
            })
        );
        assert_eq!(
            decode(r#"{ "_tag" : "WSMessage.Ping", "requestId": "ping" }"#),
            Some(Request::Ping)
        );
        assert_eq!(
            decode(r#"{"_tag":"WSMessage.AdminInfoReq","requestId":"r4","adminSecret":"s"}"#),
            Some(Request::AdminInfo {
                request_id: "r4".into(),
                admin_secret: "s".into()
            })
        );
        assert_eq!(
            decode(r#"{"_tag":"WSMessage.AdminResetRoomReq","requestId":"r5","adminSecret":"s"}"#),
            Some(Request::AdminResetRoom {
                request_id: "r5".into(),
                admin_secret: "s".into()
            })
        );
        assert_eq!(
            decode(r#"{"_tag":"WSMessage.PushReq","requestId":"e","batch":[]}"#),
            Some(Request::Push {
                request_id: "e".into(),
                batch: vec![]
            })
        );
    }

    #[test]
    fn encodes_admin_answers() {
        assert_eq!(
            admin_reset_res("r2"),
            r#"{"_tag":"WSMessage.AdminResetRoomRes","requestId":"r2"}"#
        );
        assert_eq!(
            admin_info_res("i1", &serde_json::json!({"durableObjectId": "x"})),
            r#"{"_tag":"WSMessage.AdminInfoRes","requestId":"i1","info":{"durableObjectId":"x"}}"#
        );
    }
}
