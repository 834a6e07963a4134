//! Events as the bench builds, sends, receives and checks them.
//!
//! An event's `args` are kept as raw JSON text so that what the server sends
//! back can be compared with what was pushed (the protocol requires the same
//! JSON with the same key order).

use std::fmt::Write as _;

/// One LiveStore event (`LiveStoreEvent.AnyEncodedGlobal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    /// Raw JSON text of `args`; `None` when absent (or JSON `null`).
    pub args: Option<String>,
    pub seq_num: u64,
    pub parent_seq_num: u64,
    pub client_id: String,
    pub session_id: String,
}

/// The event name every bench event carries.
pub const EVENT_NAME: &str = "v1.BenchEvent";

/// Builds the `args` JSON of a bench event: about `size` bytes, keys
/// deliberately not in sorted order (a server that reorders keys is caught),
/// and fully determined by `(client_id, seq_num)` so it can be checked later.
pub fn make_args(client_id: &str, seq_num: u64, size: usize) -> String {
    let mut s = String::with_capacity(size + 16);
    s.push_str(r#"{"zeta":"#);
    push_json_str(&mut s, &format!("{client_id}-{seq_num}"));
    write!(s, r#","n":{seq_num},"alpha":""#).unwrap();
    // Fill with a repeating pattern up to the requested size (the closing
    // `"}` takes two bytes).
    let pattern = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut i = seq_num as usize;
    while s.len() + 2 < size {
        s.push(pattern[i % pattern.len()] as char);
        i += 1;
    }
    s.push_str("\"}");
    s
}

/// A chain of `count` events following `parent`: seqNums `parent+1 ..`.
pub fn make_chain(client_id: &str, parent: u64, count: usize, args_bytes: usize) -> Vec<Event> {
    (0..count as u64)
        .map(|i| {
            let seq = parent + 1 + i;
            Event {
                name: EVENT_NAME.to_string(),
                args: Some(make_args(client_id, seq, args_bytes)),
                seq_num: seq,
                parent_seq_num: seq - 1,
                client_id: client_id.to_string(),
                session_id: "bench".to_string(),
            }
        })
        .collect()
}

/// Appends the wire JSON of `e` to `out`.
pub fn write_event_json(out: &mut String, e: &Event) {
    out.push_str(r#"{"name":"#);
    push_json_str(out, &e.name);
    if let Some(args) = &e.args {
        out.push_str(r#","args":"#);
        out.push_str(args);
    }
    write!(
        out,
        r#","seqNum":{},"parentSeqNum":{},"clientId":"#,
        e.seq_num, e.parent_seq_num
    )
    .unwrap();
    push_json_str(out, &e.client_id);
    out.push_str(r#","sessionId":"#);
    push_json_str(out, &e.session_id);
    out.push('}');
}

/// Appends `[e1,e2,…]` to `out`.
pub fn write_batch_json(out: &mut String, batch: &[Event]) {
    out.push('[');
    for (i, e) in batch.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_event_json(out, e);
    }
    out.push(']');
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string always serializes"));
}

/// Compares two JSON texts ignoring whitespace outside strings. Key order
/// and number spelling must match: the protocol requires `args` to come back
/// as pushed.
pub fn same_json_text(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    strip_ws(a) == strip_ws(b)
}

fn strip_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    let mut escaped = false;
    for c in s.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Checks that an event received back equals the one that was pushed:
/// same seqNum, parent, name, clientId, sessionId and args text. Returns a
/// description of the first difference.
pub fn diff_event(expected: &Event, got: &Event) -> Option<String> {
    let args_equal = match (&expected.args, &got.args) {
        (Some(a), Some(b)) => same_json_text(a, b),
        (None, None) => true,
        _ => false,
    };
    if expected.seq_num != got.seq_num
        || expected.parent_seq_num != got.parent_seq_num
        || expected.name != got.name
        || expected.client_id != got.client_id
        || expected.session_id != got.session_id
        || !args_equal
    {
        Some(format!(
            "event e{} differs: expected {:?}, got {:?}",
            expected.seq_num, expected, got
        ))
    } else {
        None
    }
}

/// Tracks what one connection's event stream delivered and checks the
/// stream contract: strictly ascending, no duplicates, no gaps, each event
/// chained to the previous one (`parentSeqNum == seqNum - 1`).
#[derive(Debug, Default, Clone)]
pub struct StreamCheck {
    /// seqNum of the last event delivered (0 before any).
    pub last: u64,
    pub delivered: u64,
    pub duplicates_or_backwards: u64,
    pub gaps: u64,
    pub bad_parents: u64,
    /// The first few problems, worded for a human.
    pub problems: Vec<String>,
}

impl StreamCheck {
    /// A check for a stream that starts after `cursor` (events > cursor expected).
    pub fn after(cursor: u64) -> StreamCheck {
        StreamCheck {
            last: cursor,
            ..Default::default()
        }
    }

    pub fn observe(&mut self, e: &Event) {
        self.delivered += 1;
        if e.seq_num <= self.last {
            self.duplicates_or_backwards += 1;
            self.note(format!(
                "e{} delivered after e{} (duplicate or out of order)",
                e.seq_num, self.last
            ));
            return;
        }
        if e.seq_num != self.last + 1 {
            self.gaps += 1;
            self.note(format!("gap: e{} follows e{}", e.seq_num, self.last));
        }
        if e.parent_seq_num + 1 != e.seq_num {
            self.bad_parents += 1;
            self.note(format!(
                "e{} has parentSeqNum {}",
                e.seq_num, e.parent_seq_num
            ));
        }
        self.last = e.seq_num;
    }

    pub fn ok(&self) -> bool {
        self.duplicates_or_backwards == 0 && self.gaps == 0 && self.bad_parents == 0
    }

    fn note(&mut self, p: String) {
        if self.problems.len() < 5 {
            self.problems.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_have_requested_size_and_unsorted_keys() {
        let a = make_args("c1", 42, 200);
        assert_eq!(a.len(), 200);
        assert!(a.starts_with(r#"{"zeta":"c1-42","n":42,"alpha":""#));
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["n"], 42);
        // Tiny sizes still give valid JSON.
        let small = make_args("c1", 1, 5);
        serde_json::from_str::<serde_json::Value>(&small).unwrap();
    }

    #[test]
    fn event_json_round_trips() {
        let e = &make_chain("c\"1", 7, 1, 60)[0];
        let mut s = String::new();
        write_event_json(&mut s, e);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["seqNum"], 8);
        assert_eq!(v["parentSeqNum"], 7);
        assert_eq!(v["clientId"], "c\"1");
        assert_eq!(v["args"]["n"], 8);
        let mut b = String::new();
        write_batch_json(&mut b, &make_chain("c", 0, 2, 30));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&b)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn json_text_comparison_ignores_only_whitespace() {
        assert!(same_json_text(
            r#"{"b":1,"a":" x "}"#,
            r#"{ "b": 1, "a": " x " }"#
        ));
        assert!(!same_json_text(r#"{"b":1,"a":2}"#, r#"{"a":2,"b":1}"#));
        assert!(!same_json_text(r#"{"a":" x"}"#, r#"{"a":"x"}"#));
        assert!(same_json_text(r#"{"a":"q\"  "}"#, r#"{"a": "q\"  "}"#));
    }

    #[test]
    fn stream_check_finds_duplicates_gaps_and_bad_parents() {
        let chain = make_chain("c", 0, 5, 20);
        let mut ok = StreamCheck::after(0);
        chain.iter().for_each(|e| ok.observe(e));
        assert!(ok.ok());
        assert_eq!(ok.last, 5);

        let mut dup = StreamCheck::after(0);
        for e in [&chain[0], &chain[1], &chain[1], &chain[2]] {
            dup.observe(e);
        }
        assert_eq!(dup.duplicates_or_backwards, 1);
        assert!(!dup.ok());

        let mut gap = StreamCheck::after(0);
        for e in [&chain[0], &chain[2]] {
            gap.observe(e);
        }
        assert_eq!(gap.gaps, 1);

        let mut bad = chain[0].clone();
        bad.parent_seq_num = 5;
        let mut bp = StreamCheck::after(0);
        bp.observe(&bad);
        assert_eq!(bp.bad_parents, 1);

        let mut late = StreamCheck::after(3);
        late.observe(&chain[2]);
        assert_eq!(late.duplicates_or_backwards, 1);
    }

    #[test]
    fn diff_event_reports_changed_args() {
        let e = make_chain("c", 0, 1, 40).remove(0);
        assert!(diff_event(&e, &e.clone()).is_none());
        let mut changed = e.clone();
        changed.args = Some(r#"{"n":1}"#.into());
        assert!(diff_event(&e, &changed).is_some());
    }
}
