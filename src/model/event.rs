//! The LiveStore event as both protocol generations carry it.
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
    /// Rough size of the event's JSON, for byte-limited pages.
    pub fn json_len_estimate(&self) -> usize {
        80 + self.name.len()
            + self.args.as_ref().map_or(0, |a| a.len())
            + self.client_id.len()
            + self.session_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_null_args_stay_distinct() {
        let absent: Event = serde_json::from_str(
            r#"{"name":"n","seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}"#,
        )
        .unwrap();
        let null: Event = serde_json::from_str(r#"{"name":"n","args":null,"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}"#).unwrap();
        assert!(absent.args.is_none());
        assert_eq!(null.args.as_deref(), Some("null"));
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
}
