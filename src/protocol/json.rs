//! The JSON both wire generations write by hand: events in LiveStore's field
//! order with `args` copied verbatim, and the arrays of `{eventEncoded,
//! metadata}` that pull answers and broadcasts carry. Hand-written because
//! `serde_json::Value` would sort the keys of `args`.

use crate::model::{Event, StoredEvent};
use crate::timefmt::IsoCache;

/// Appends the event's JSON in the field order LiveStore's encoder uses.
/// `args` is copied verbatim; an absent `args` stays absent.
pub fn write_event(out: &mut String, e: &Event) {
    out.push_str("{\"name\":");
    push_json_str(out, &e.name);
    if let Some(args) = &e.args {
        out.push_str(",\"args\":");
        out.push_str(args);
    }
    out.push_str(",\"seqNum\":");
    push_int(out, e.seq_num);
    out.push_str(",\"parentSeqNum\":");
    push_int(out, e.parent_seq_num);
    out.push_str(",\"clientId\":");
    push_json_str(out, &e.client_id);
    out.push_str(",\"sessionId\":");
    push_json_str(out, &e.session_id);
    out.push('}');
}

/// How a generation wraps `createdAt` in an event's `metadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    /// 0.3: `{"_tag":"Some","value":{"createdAt":…}}`.
    Plain,
    /// 0.4: `{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":…}}`.
    Tagged,
}

/// Appends `{"eventEncoded":…,"metadata":…}` for each event, comma-separated
/// (the brackets are the caller's).
pub fn write_encoded_events(out: &mut String, events: &[StoredEvent], metadata: Metadata) {
    let mut stamps = IsoCache::default();
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"eventEncoded\":");
        write_event(out, &e.event);
        out.push_str(match metadata {
            Metadata::Plain => ",\"metadata\":{\"_tag\":\"Some\",\"value\":{\"createdAt\":\"",
            Metadata::Tagged => ",\"metadata\":{\"_tag\":\"Some\",\"value\":{\"_tag\":\"SyncMessage.SyncMetadata\",\"createdAt\":\"",
        });
        stamps.push(out, e.created_at);
        out.push_str("\"}}}");
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                out.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
                out.push(char::from(b"0123456789abcdef"[(b & 0xf) as usize]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends an integer without allocating.
pub fn push_int(out: &mut String, n: i64) {
    use std::fmt::Write as _;
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip_byte_for_byte() {
        let json = r#"{"name":"n","args":{"zeta":1,"alpha":{"b": [1, 2.50],"a":null}},"seqNum":3,"parentSeqNum":2,"clientId":"c","sessionId":"s"}"#;
        let e: Event = serde_json::from_str(json).unwrap();
        let mut out = String::new();
        write_event(&mut out, &e);
        assert_eq!(out, json);
    }

    #[test]
    fn an_absent_args_stays_absent() {
        let absent: Event = serde_json::from_str(
            r#"{"name":"n","seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}"#,
        )
        .unwrap();
        let mut out = String::new();
        write_event(&mut out, &absent);
        assert!(!out.contains("args"));
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }
}
