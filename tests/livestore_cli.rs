//! Our export files against the REAL `@livestore/cli` 0.4.0 (`tests/e2e/cli`):
//!
//! - files our `archive::Writer` writes in LiveStore's format pass `livestore sync import
//!   --dry-run`, which decodes them with LiveStore's own `ExportFileSchema` without connecting;
//! - a broken file does not (so that check can fail), nor a file for another store;
//! - a file in their own pretty-printed form (written by their schema and their pretty-printer,
//!   `tests/e2e/cli/pretty-export.mjs`) reads with our `Reader`, `args` exactly as
//!   `JSON.stringify` gives them, and what we write from it passes their check again.
//!
//! Needs Node.js >= 20 and npm (the first run installs `tests/e2e/cli` from its lockfile); without
//! them these tests FAIL, they never skip.

mod common;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use common::node::{
    dry_run_count, livestore_cli_dry_run, livestore_cli_pretty_export, output_text,
};
use common::TempDir;
use livestore_sync::archive::{Format, Header, Reader, Writer};
use livestore_sync::model::{Event, StoredEvent};

const STORE: &str = "cli-check-store";

fn event(seq: i64, args: Option<&str>) -> StoredEvent {
    StoredEvent {
        event: Event {
            name: "v1.TodoCreated".into(),
            args: args.map(Into::into),
            seq_num: seq,
            parent_seq_num: seq - 1,
            client_id: "client-ü".into(),
            session_id: "session-1".into(),
        },
        created_at: UNIX_EPOCH + Duration::from_micros(1_795_607_516_318_123),
    }
}

/// Writes `events` in LiveStore's format with our Writer into `dir/name`.
fn write_ours(dir: &TempDir, name: &str, events: &[StoredEvent]) -> PathBuf {
    let path = dir.path().join(name);
    let header = Header {
        store_id: STORE.into(),
        exported_at: "2026-12-02T07:50:00.000Z".into(),
        event_count: events.len() as u64,
        backend_id: Some("ignored-in-this-format".into()),
    };
    let file = std::fs::File::create(&path).unwrap();
    let mut w = Writer::new(std::io::BufWriter::new(file), Format::LiveStore, &header).unwrap();
    for e in events {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    path
}

fn assert_accepted(path: &Path, n: u64) {
    let out = livestore_cli_dry_run(path, STORE);
    assert!(
        out.status.success(),
        "their CLI refused {}\n{}",
        path.display(),
        output_text(&out)
    );
    assert_eq!(dry_run_count(&out), Some(n), "{}", output_text(&out));
}

#[test]
fn an_empty_export_passes_their_check() {
    let dir = TempDir::new("cli-empty");
    assert_accepted(&write_ours(&dir, "empty.json", &[]), 0);
}

#[test]
fn unsorted_keys_and_awkward_args_pass_their_check() {
    let dir = TempDir::new("cli-args");
    let args = [
        r#"{"zeta":1,"alpha":2}"#,
        r#"{"text":"é 日本 😀","esc":"a\"b\\c\n\u0001","big":12345678901234567890,"f":1.0,"e":1e3}"#,
        r#"[[1,[2,{"b":null}]],{},[]]"#,
        "null",
        r#""a string""#,
    ];
    let events: Vec<_> = args
        .iter()
        .enumerate()
        .map(|(i, a)| event(i as i64 + 1, Some(a)))
        .collect();
    assert_accepted(&write_ours(&dir, "args.json", &events), 5);
}

#[test]
fn events_without_args_pass_their_check() {
    // Their schema says `args: Schema.Any`: an event without the key must be accepted, which is
    // why our writer leaves the key out for an event stored without args.
    let dir = TempDir::new("cli-noargs");
    let events = [event(1, None), event(2, Some("{}")), event(3, None)];
    let path = write_ours(&dir, "noargs.json", &events);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("\"args\"").count(), 1, "{text}");
    assert_accepted(&path, 3);
}

#[test]
fn a_thousand_events_pass_their_check() {
    let dir = TempDir::new("cli-1000");
    let events: Vec<_> = (1..=1000)
        .map(|i| {
            event(
                i,
                Some(&format!(r#"{{"id":"todo-{i}","text":"item {i}","n":{i}}}"#)),
            )
        })
        .collect();
    assert_accepted(&write_ours(&dir, "thousand.json", &events), 1000);
}

#[test]
fn a_broken_file_or_another_store_fails_their_check() {
    let dir = TempDir::new("cli-broken");
    let good = write_ours(&dir, "good.json", &[event(1, Some("{}")), event(2, None)]);
    assert_accepted(&good, 2);

    // One change: a seqNum as a string.
    let text = std::fs::read_to_string(&good).unwrap();
    let broken_text = text.replacen("\"seqNum\":2", "\"seqNum\":\"2\"", 1);
    assert_ne!(broken_text, text);
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, broken_text).unwrap();
    let out = livestore_cli_dry_run(&broken, STORE);
    assert!(!out.status.success(), "accepted:\n{}", output_text(&out));
    assert_eq!(dry_run_count(&out), None);
    assert!(
        output_text(&out).contains("Invalid export file format"),
        "{}",
        output_text(&out)
    );

    // The store id we wrote is the one they read.
    let out = livestore_cli_dry_run(&good, "another-store");
    assert!(!out.status.success(), "accepted:\n{}", output_text(&out));
    assert!(
        output_text(&out).contains(&format!("file has '{STORE}'")),
        "{}",
        output_text(&out)
    );
}

#[test]
fn their_pretty_printed_export_reads_exactly_and_goes_back() {
    let dir = TempDir::new("cli-pretty");
    // The events as a client would have made them; Node parses this, so what reaches their
    // export is what JSON.parse keeps (a big integer becomes a float, 1.0 becomes 1).
    let data = dir.path().join("data.json");
    std::fs::write(
        &data,
        r#"{"version":1,"storeId":"cli-check-store","exportedAt":"2026-12-02T07:50:00.000Z","eventCount":5,"events":[
{"name":"v1.A","args":{"zeta":1,"alpha":[1,[2,{"b":1.5e3}]],"u":"é \n\"x\u0001 : , [ {","sp":"  "},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"},
{"name":"v1.B","seqNum":2,"parentSeqNum":1,"clientId":"c","sessionId":"s"},
{"name":"v1.C","args":null,"seqNum":3,"parentSeqNum":2,"clientId":"c","sessionId":"s"},
{"name":"v1.D","args":{"big":12345678901234567890,"f":1.0,"nested":[[[]]],"o":{}},"seqNum":4,"parentSeqNum":3,"clientId":"c","sessionId":"s"},
{"name":"v1.E","args":"text","seqNum":5,"parentSeqNum":4,"clientId":"c2","sessionId":"s2"}
]}"#,
    )
    .unwrap();
    let theirs = dir.path().join("theirs.json");
    let stringified = livestore_cli_pretty_export(&data, &theirs);

    let text = std::fs::read_to_string(&theirs).unwrap();
    assert!(
        text.starts_with("{\n  \"version\": 1,\n"),
        "not pretty-printed:\n{text}"
    );
    let reader = Reader::open(Box::new(BufReader::new(
        std::fs::File::open(&theirs).unwrap(),
    )))
    .unwrap();
    assert_eq!(reader.format, Format::LiveStore);
    assert_eq!(reader.header.store_id, STORE);
    assert_eq!(reader.header.event_count, 5);
    let events: Vec<StoredEvent> = reader.collect::<Result<_, _>>().unwrap();
    let args: Vec<Option<String>> = events
        .iter()
        .map(|e| e.event.args.as_deref().map(String::from))
        .collect();
    // What Node's JSON.stringify gives for each, and, written out, what we know it must be.
    assert_eq!(args, stringified);
    let expected = [
        Some(r#"{"zeta":1,"alpha":[1,[2,{"b":1500}]],"u":"é \n\"x\u0001 : , [ {","sp":"  "}"#),
        None,
        Some("null"),
        Some(r#"{"big":12345678901234567000,"f":1,"nested":[[[]]],"o":{}}"#),
        Some(r#""text""#),
    ];
    assert_eq!(
        args,
        expected.map(|a| a.map(String::from)).to_vec(),
        "args read from their file"
    );
    assert_eq!(events[4].event.client_id, "c2");

    // Written again by us, it still passes their check.
    let ours = write_ours(&dir, "again.json", &events);
    assert_accepted(&ours, 5);
}
