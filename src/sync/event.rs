//! The LiveStore event as both protocol generations carry it, and the rules
//! a pushed batch must follow.
//!
//! `args` stays raw JSON text from the frame to the database and back: the
//! client confirms its own events by comparing `JSON.stringify(args)`, so a
//! re-ordered key would make it push the event again as a duplicate.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// One global event: `{"name","args","seqNum","parentSeqNum","clientId","sessionId"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub name: String,
    /// The raw JSON text of `args`, exactly as the client sent it (checked
    /// to be JSON when decoded, and by the `json` column when stored).
    /// `None` when the key was absent; `Some("null")` when it was `null`:
    /// the two must stay distinct (the client compares `JSON.stringify(args)`).
    #[serde(default, deserialize_with = "raw_keeping_null")]
    pub args: Option<Box<str>>,
    pub seq_num: i64,
    pub parent_seq_num: i64,
    pub client_id: String,
    pub session_id: String,
}

/// `args` compare as text: that is the equality the client applies.
impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.args == o.args
            && self.seq_num == o.seq_num
            && self.parent_seq_num == o.parent_seq_num
            && self.client_id == o.client_id
            && self.session_id == o.session_id
    }
}

fn raw_keeping_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<str>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(|raw| Some(raw.into()))
}

/// An event as stored: the event plus the time the server accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: Event,
    pub created_at: SystemTime,
}

impl Event {
    /// Appends the event's JSON in the field order LiveStore's encoder uses.
    /// `args` is copied verbatim; an absent `args` stays absent.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"name\":");
        push_json_str(out, &self.name);
        if let Some(args) = &self.args {
            out.push_str(",\"args\":");
            out.push_str(args);
        }
        out.push_str(",\"seqNum\":");
        push_int(out, self.seq_num);
        out.push_str(",\"parentSeqNum\":");
        push_int(out, self.parent_seq_num);
        out.push_str(",\"clientId\":");
        push_json_str(out, &self.client_id);
        out.push_str(",\"sessionId\":");
        push_json_str(out, &self.session_id);
        out.push('}');
    }

    /// Rough size of the event's JSON, for byte-limited pages.
    pub fn json_len_estimate(&self) -> usize {
        80 + self.name.len()
            + self.args.as_ref().map_or(0, |a| a.len())
            + self.client_id.len()
            + self.session_id.len()
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

/// Why a pushed batch does not continue the store's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// `batch[0].parentSeqNum` is not the store's head: another client
    /// pushed first (or this client is ahead of a reset store).
    WrongParent { head: i64, parent: i64 },
    /// Inside the batch an event does not follow the one before it
    /// (`seqNum != parentSeqNum + 1`, or `parentSeqNum` is not the previous `seqNum`).
    Broken {
        index: usize,
        seq_num: i64,
        parent_seq_num: i64,
        expected_parent: i64,
    },
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The reference server's wording; clients show it in logs.
            ChainError::WrongParent { head, parent } => {
                write!(f, "Invalid parent event number. Received e{parent} but expected e{head}")
            }
            ChainError::Broken { index, seq_num, parent_seq_num, expected_parent } => write!(
                f,
                "Invalid batch: event {index} (e{seq_num}, parent e{parent_seq_num}) must have parent e{expected_parent} and seqNum e{}",
                expected_parent + 1
            ),
        }
    }
}

/// Checks that `batch` continues a log whose last event is `head`:
/// `batch[0].parentSeqNum == head` and every event is `parent + 1` of the one before.
pub fn check_chain(head: i64, batch: &[Event]) -> Result<(), ChainError> {
    let mut expected_parent = head;
    for (index, e) in batch.iter().enumerate() {
        if e.parent_seq_num != expected_parent {
            return Err(if index == 0 {
                ChainError::WrongParent {
                    head,
                    parent: e.parent_seq_num,
                }
            } else {
                ChainError::Broken {
                    index,
                    seq_num: e.seq_num,
                    parent_seq_num: e.parent_seq_num,
                    expected_parent,
                }
            });
        }
        if e.seq_num != e.parent_seq_num.wrapping_add(1) {
            return Err(ChainError::Broken {
                index,
                seq_num: e.seq_num,
                parent_seq_num: e.parent_seq_num,
                expected_parent,
            });
        }
        expected_parent = e.seq_num;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn ev(seq: i64, args: &str) -> Event {
    Event {
        name: "v1.TodoCreated".into(),
        args: Some(args.into()),
        seq_num: seq,
        parent_seq_num: seq - 1,
        client_id: "c".into(),
        session_id: "s".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip_byte_for_byte() {
        let json = r#"{"name":"n","args":{"zeta":1,"alpha":{"b": [1, 2.50],"a":null}},"seqNum":3,"parentSeqNum":2,"clientId":"c","sessionId":"s"}"#;
        let e: Event = serde_json::from_str(json).unwrap();
        let mut out = String::new();
        e.write_json(&mut out);
        assert_eq!(out, json);
    }

    #[test]
    fn absent_and_null_args_stay_distinct() {
        let absent: Event = serde_json::from_str(
            r#"{"name":"n","seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}"#,
        )
        .unwrap();
        let null: Event = serde_json::from_str(r#"{"name":"n","args":null,"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}"#).unwrap();
        assert!(absent.args.is_none());
        assert_eq!(null.args.as_deref(), Some("null"));
        let mut out = String::new();
        absent.write_json(&mut out);
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

    #[test]
    fn fractional_or_string_seq_nums_are_rejected() {
        assert!(serde_json::from_str::<Event>(
            r#"{"name":"n","seqNum":1.5,"parentSeqNum":0,"clientId":"c","sessionId":"s"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Event>(
            r#"{"name":"n","seqNum":"1","parentSeqNum":0,"clientId":"c","sessionId":"s"}"#
        )
        .is_err());
    }

    #[test]
    fn chain_rules() {
        assert_eq!(check_chain(0, &[]), Ok(()));
        assert_eq!(
            check_chain(0, &[ev(1, "1"), ev(2, "2"), ev(3, "3")]),
            Ok(())
        );
        assert_eq!(
            check_chain(3, &[ev(1, "1")]),
            Err(ChainError::WrongParent { head: 3, parent: 0 })
        );
        assert_eq!(
            check_chain(0, &[ev(1, "1"), ev(3, "3")]),
            Err(ChainError::Broken {
                index: 1,
                seq_num: 3,
                parent_seq_num: 2,
                expected_parent: 1
            })
        );
        let mut skip = ev(2, "2");
        skip.seq_num = 5;
        assert!(matches!(
            check_chain(1, &[skip]),
            Err(ChainError::Broken { index: 0, .. })
        ));
        let mut dup = ev(2, "2");
        dup.parent_seq_num = 1;
        assert!(matches!(
            check_chain(0, &[ev(1, "1"), dup.clone(), dup]),
            Err(ChainError::Broken { index: 2, .. })
        ));
        assert_eq!(
            ChainError::WrongParent { head: 3, parent: 0 }.to_string(),
            "Invalid parent event number. Received e0 but expected e3"
        );
    }
}
