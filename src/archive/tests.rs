//! Both formats: round trips byte for byte, LiveStore's pretty-printed export, and every refusal.

use std::io::{BufRead, Cursor};
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::model::StoredEvent;
use crate::timefmt;

const EXPORTED_AT: &str = "2026-12-02T07:50:00.000Z";

/// Args that a re-encoding would change: key order, unicode, escapes, big and float numbers,
/// nesting, `null`, whitespace inside strings.
const TRICKY_ARGS: &[&str] = &[
    r#"{"zeta":1,"alpha":2}"#,
    r#"{"text":"é ü 日本 😀","esc":"a\"b\\c\n\t\u0001\u00e9","sp":"  two  spaces "}"#,
    r#"{"big":12345678901234567890,"neg":-0,"f":1.0,"e":1e3,"E":2.5E-7}"#,
    r#"[[1,[2,[3,{"b":null,"a":[]}]]],{},"x"]"#,
    "null",
    "12345678901234567890",
    r#""just a string""#,
];

fn event(seq: i64, args: Option<&str>) -> StoredEvent {
    StoredEvent {
        event: Event {
            name: "v1.TodoCreated".into(),
            args: args.map(Into::into),
            seq_num: seq,
            parent_seq_num: seq - 1,
            client_id: "client-ü".into(),
            session_id: "session \"1\"".into(),
        },
        // Microsecond precision, as both storages keep it.
        created_at: UNIX_EPOCH + Duration::from_micros(1_795_607_516_318_123 + seq as u64),
    }
}

/// Events 1..n cycling through the tricky args, with a no-args event among them.
fn tricky_events() -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = TRICKY_ARGS
        .iter()
        .enumerate()
        .map(|(i, a)| event(i as i64 + 1, Some(a)))
        .collect();
    let n = out.len() as i64;
    out.push(event(n + 1, None));
    out
}

fn header(n: usize) -> Header {
    Header {
        store_id: "store-é \"1\"".into(),
        exported_at: EXPORTED_AT.into(),
        event_count: n as u64,
        backend_id: Some("b4ck3nd-1d_xxxxxxxxxx".into()),
    }
}

fn write(format: Format, header: &Header, events: &[StoredEvent]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), format, header).unwrap();
    for e in events {
        w.write(e).unwrap();
    }
    w.finish().unwrap()
}

fn input(bytes: impl Into<Vec<u8>>) -> Box<dyn BufRead> {
    Box::new(Cursor::new(bytes.into()))
}

fn read_all(bytes: impl Into<Vec<u8>>) -> Result<(Reader, Vec<StoredEvent>), ArchiveError> {
    let mut r = Reader::open(input(bytes))?;
    let events = r.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((r, events))
}

/// The error reading `bytes` ends with (at open or from the iterator).
fn read_err(bytes: impl Into<Vec<u8>>) -> ArchiveError {
    match read_all(bytes) {
        Ok((r, events)) => panic!("read {} events of {r:?} without error", events.len()),
        Err(e) => e,
    }
}

fn args_of(events: &[StoredEvent]) -> Vec<Option<&str>> {
    events.iter().map(|e| e.event.args.as_deref()).collect()
}

// ----- round trips ------------------------------------------------------------------------------

#[test]
fn ndjson_round_trips_byte_for_byte_with_created_at() {
    let events = tricky_events();
    let first = write(Format::Ndjson, &header(events.len()), &events);
    let (r, back) = read_all(first.clone()).unwrap();
    assert_eq!(r.format, Format::Ndjson);
    assert_eq!(r.header, header(events.len()));
    assert_eq!(back, events, "events, args and createdAt exactly");
    let second = write(Format::Ndjson, &r.header, &back);
    assert_eq!(
        String::from_utf8(second).unwrap(),
        String::from_utf8(first).unwrap()
    );
}

#[test]
fn livestore_round_trips_byte_for_byte() {
    let events = tricky_events();
    let mut h = header(events.len());
    let first = write(Format::LiveStore, &h, &events);
    let (r, back) = read_all(first.clone()).unwrap();
    assert_eq!(r.format, Format::LiveStore);
    h.backend_id = None; // not in LiveStore's format
    assert_eq!(r.header, h);
    assert_eq!(args_of(&back), args_of(&events));
    let events_only = |v: &[StoredEvent]| v.iter().map(|e| e.event.clone()).collect::<Vec<_>>();
    assert_eq!(events_only(&back), events_only(&events));
    let second = write(Format::LiveStore, &r.header, &back);
    assert_eq!(
        String::from_utf8(second).unwrap(),
        String::from_utf8(first).unwrap()
    );
}

#[test]
fn the_written_shapes_are_as_documented() {
    let events = [event(1, Some(r#"{"zeta":1,"alpha":2}"#)), event(2, None)];
    let h = Header {
        store_id: "s".into(),
        exported_at: EXPORTED_AT.into(),
        event_count: 2,
        backend_id: None,
    };
    let ls = String::from_utf8(write(Format::LiveStore, &h, &events)).unwrap();
    assert_eq!(
        ls,
        concat!(
            r#"{"version":1,"storeId":"s","exportedAt":"2026-12-02T07:50:00.000Z","eventCount":2,"events":["#,
            "\n",
            r#"{"name":"v1.TodoCreated","args":{"zeta":1,"alpha":2},"seqNum":1,"parentSeqNum":0,"clientId":"client-ü","sessionId":"session \"1\""},"#,
            "\n",
            r#"{"name":"v1.TodoCreated","seqNum":2,"parentSeqNum":1,"clientId":"client-ü","sessionId":"session \"1\""}"#,
            "\n]}\n"
        )
    );
    let nd = String::from_utf8(write(Format::Ndjson, &h, &events)).unwrap();
    assert_eq!(
        nd,
        concat!(
            r#"{"format":"livestore-sync-ndjson","version":1,"storeId":"s","exportedAt":"2026-12-02T07:50:00.000Z","eventCount":2,"backendId":null}"#,
            "\n",
            r#"{"name":"v1.TodoCreated","args":{"zeta":1,"alpha":2},"seqNum":1,"parentSeqNum":0,"clientId":"client-ü","sessionId":"session \"1\"","createdAt":1795607516318124}"#,
            "\n",
            r#"{"name":"v1.TodoCreated","seqNum":2,"parentSeqNum":1,"clientId":"client-ü","sessionId":"session \"1\"","createdAt":1795607516318125}"#,
            "\n"
        )
    );
}

#[test]
fn null_args_and_missing_args_stay_distinct() {
    let events = [event(1, Some("null")), event(2, None)];
    for format in [Format::LiveStore, Format::Ndjson] {
        let (_, back) = read_all(write(format, &header(2), &events)).unwrap();
        assert_eq!(args_of(&back), vec![Some("null"), None], "{format:?}");
    }
}

#[test]
fn an_empty_store_makes_a_valid_file_of_either_format() {
    for format in [Format::LiveStore, Format::Ndjson] {
        let bytes = write(format, &header(0), &[]);
        let (r, back) = read_all(bytes.clone()).unwrap();
        assert_eq!((r.format, r.header.event_count, back.len()), (format, 0, 0));
        assert_eq!(
            validate(input(bytes), Some("store-é \"1\""))
                .unwrap()
                .event_count,
            0
        );
    }
}

#[test]
fn a_thousand_events_stream_through() {
    let events: Vec<_> = (1..=1000)
        .map(|i| event(i, Some(&format!(r#"{{"i":{i},"z":"{}"}}"#, "x".repeat(50)))))
        .collect();
    for format in [Format::LiveStore, Format::Ndjson] {
        let bytes = write(format, &header(1000), &events);
        let (_, back) = read_all(bytes).unwrap();
        assert_eq!(back.len(), 1000);
        assert_eq!(back[999].event.args, events[999].event.args);
    }
}

#[test]
fn created_at_survives_to_the_microsecond_before_and_after_1970() {
    for us in [0i64, 1, -1, -1_000_001, 1_795_607_516_318_123] {
        assert_eq!(timefmt::to_micros(timefmt::from_micros(us)), us);
    }
    let mut e = event(1, None);
    e.created_at = UNIX_EPOCH - Duration::from_micros(86_400_000_123);
    let (_, back) = read_all(write(Format::Ndjson, &header(1), &[e.clone()])).unwrap();
    assert_eq!(back[0].created_at, e.created_at);
}

#[test]
fn ndjson_args_with_a_line_break_are_compacted_to_stay_one_line() {
    // A client may have sent whitespace between tokens; a line break would split the event.
    let e = event(1, Some("{\"a\": [1,\n 2],\r\n \"b\":\"x y\\n\"}"));
    let bytes = write(Format::Ndjson, &header(1), &[e]);
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 2);
    let (_, back) = read_all(bytes).unwrap();
    assert_eq!(args_of(&back), vec![Some(r#"{"a":[1,2],"b":"x y\n"}"#)]);
    // Spaces alone stay as stored.
    let e = event(1, Some(r#"{"a": 1}"#));
    let (_, back) = read_all(write(Format::Ndjson, &header(1), &[e])).unwrap();
    assert_eq!(args_of(&back), vec![Some(r#"{"a": 1}"#)]);
}

// ----- LiveStore's own (pretty-printed) export --------------------------------------------------

/// What `livestore sync export` writes (`JSON.stringify(data, null, 2)`), by hand;
/// tests/livestore_cli.rs checks the same with their real code.
const THEIR_EXPORT: &str = r#"{
  "version": 1,
  "storeId": "todo-store",
  "exportedAt": "2026-12-02T07:50:00.000Z",
  "eventCount": 3,
  "events": [
    {
      "name": "v1.TodoCreated",
      "args": {
        "zeta": 1,
        "alpha": [
          1,
          [
            2,
            {
              "b": 1500
            }
          ]
        ],
        "u": "é \n\"x\u0001 : , [ {",
        "empty": {},
        "none": []
      },
      "seqNum": 1,
      "parentSeqNum": 0,
      "clientId": "c1",
      "sessionId": "s1"
    },
    {
      "name": "v1.Tick",
      "seqNum": 2,
      "parentSeqNum": 1,
      "clientId": "c1",
      "sessionId": "s1"
    },
    {
      "name": "v1.Nulled",
      "args": null,
      "seqNum": 3,
      "parentSeqNum": 2,
      "clientId": "c2",
      "sessionId": "s2"
    }
  ]
}"#;

#[test]
fn their_pretty_printed_export_reads_with_compact_args_in_their_order() {
    let before = timefmt::now_ms();
    let (r, events) = read_all(THEIR_EXPORT).unwrap();
    assert_eq!(r.format, Format::LiveStore);
    assert_eq!(
        r.header,
        Header {
            store_id: "todo-store".into(),
            exported_at: EXPORTED_AT.into(),
            event_count: 3,
            backend_id: None,
        }
    );
    assert_eq!(
        args_of(&events),
        vec![
            Some(
                r#"{"zeta":1,"alpha":[1,[2,{"b":1500}]],"u":"é \n\"x\u0001 : , [ {","empty":{},"none":[]}"#
            ),
            None,
            Some("null"),
        ]
    );
    assert_eq!(events[2].event.client_id, "c2");
    // No createdAt in their format: the time of reading.
    assert!(events.iter().all(|e| e.created_at >= before));
}

#[test]
fn detection_looks_at_the_content() {
    // Their format on one line, with leading blank lines and a byte order mark.
    let one_line: String = {
        let doc: serde_json::Value = serde_json::from_str(THEIR_EXPORT).unwrap();
        serde_json::to_string(&doc).unwrap()
    };
    for text in [
        one_line.clone(),
        format!("\n  \r\n{one_line}"),
        format!("\u{feff}{THEIR_EXPORT}"),
    ] {
        let (r, events) = read_all(text.clone()).unwrap();
        assert_eq!((r.format, events.len()), (Format::LiveStore, 3), "{text}");
    }
    let nd = write(Format::Ndjson, &header(1), &[event(1, None)]);
    let mut padded = b"\n\n".to_vec();
    padded.extend_from_slice(&nd);
    let (r, events) = read_all(padded).unwrap();
    assert_eq!((r.format, events.len()), (Format::Ndjson, 1));
}

// ----- refusals ---------------------------------------------------------------------------------

fn ndjson_lines(events: &[StoredEvent]) -> Vec<String> {
    String::from_utf8(write(Format::Ndjson, &header(events.len()), events))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn empty_input_is_refused() {
    for text in ["", "\n \n\t"] {
        let e = read_err(text);
        assert!(
            matches!(&e, ArchiveError::Syntax { msg, .. } if msg.contains("empty")),
            "{e}"
        );
    }
}

#[test]
fn a_truncated_file_is_refused() {
    let events = tricky_events();
    let ls = write(Format::LiveStore, &header(events.len()), &events);
    for cut in [ls.len() - 3, ls.len() / 2, 10] {
        let e = read_err(ls[..cut].to_vec());
        assert!(
            matches!(&e, ArchiveError::Syntax { msg, .. } if msg.contains("EOF")),
            "cut at {cut}: {e}"
        );
    }
    let nd = write(Format::Ndjson, &header(events.len()), &events);
    // Cut inside the last line, then at a line boundary.
    let e = read_err(nd[..nd.len() - 5].to_vec());
    assert!(
        matches!(&e, ArchiveError::Syntax { line_or_event, .. } if line_or_event == "line 9 (event 8)"),
        "{e}"
    );
    let lines = ndjson_lines(&events);
    let e = read_err(lines[..5].join("\n"));
    assert!(
        matches!(
            e,
            ArchiveError::Count {
                header: 8,
                found: 4
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_json_at_event_n_is_refused_where_it_is() {
    let events: Vec<_> = (1..=4).map(|i| event(i, Some("1"))).collect();
    // NDJSON: line 4 is event 3.
    let mut lines = ndjson_lines(&events);
    lines[3] = lines[3].replace("\"seqNum\":3", "\"seqNum\":3,,");
    let mut r = Reader::open(input(lines.join("\n"))).unwrap();
    assert!(r.next().unwrap().is_ok());
    assert!(r.next().unwrap().is_ok());
    let e = r.next().unwrap().unwrap_err();
    assert!(
        matches!(&e, ArchiveError::Syntax { line_or_event, .. } if line_or_event == "line 4 (event 3)"),
        "{e}"
    );
    assert!(r.next().is_none(), "nothing after an error");

    // A document with a JSON syntax error is refused whole, at its line.
    let ls = String::from_utf8(write(Format::LiveStore, &header(4), &events)).unwrap();
    let broken = ls.replace("\"seqNum\":3", "\"seqNum\":3,,");
    let e = read_err(broken);
    assert!(
        matches!(&e, ArchiveError::Syntax { line_or_event, .. } if line_or_event.starts_with("line 4, column")),
        "{e}"
    );
    // Valid JSON but not an event (seqNum a string): refused at that event.
    let wrong = ls.replace("\"seqNum\":3", "\"seqNum\":\"3\"");
    let e = read_err(wrong);
    assert!(
        matches!(&e, ArchiveError::Syntax { line_or_event, msg } if line_or_event == "event 3 (line 4)" && msg.contains("invalid type")),
        "{e}"
    );
    // NDJSON events need their createdAt.
    let mut lines = ndjson_lines(&events[..1]);
    lines[1] = lines[1].split(",\"createdAt\"").next().unwrap().to_string() + "}";
    let e = read_err(lines.join("\n"));
    assert!(
        matches!(&e, ArchiveError::Syntax { msg, .. } if msg.contains("createdAt")),
        "{e}"
    );
}

#[test]
fn a_wrong_version_or_format_is_refused() {
    let ls = String::from_utf8(write(Format::LiveStore, &header(0), &[])).unwrap();
    let e = read_err(ls.replace("\"version\":1", "\"version\":2"));
    assert!(
        matches!(&e, ArchiveError::Unsupported { what } if what.contains("LiveStore export version 2")),
        "{e}"
    );
    let e = read_err(ls.replace("\"version\":1,", ""));
    assert!(
        matches!(&e, ArchiveError::Syntax { msg, .. } if msg.contains("version")),
        "{e}"
    );
    let nd = String::from_utf8(write(Format::Ndjson, &header(0), &[])).unwrap();
    let e = read_err(nd.replace("\"version\":1", "\"version\":2"));
    assert!(
        matches!(&e, ArchiveError::Unsupported { what } if what.contains("version 2")),
        "{e}"
    );
    let e = read_err(nd.replace("livestore-sync-ndjson", "something-else"));
    assert!(
        matches!(&e, ArchiveError::Unsupported { what } if what.contains("\"something-else\"")),
        "{e}"
    );
    let e = read_err("[1,2,3]");
    assert!(matches!(e, ArchiveError::Syntax { .. }), "{e}");
}

#[test]
fn a_count_mismatch_is_refused() {
    let events: Vec<_> = (1..=3).map(|i| event(i, None)).collect();
    // The header says 5 (document: at open; NDJSON: at the end) or 2 (NDJSON: at event 3).
    let ls = String::from_utf8(write(Format::LiveStore, &header(3), &events)).unwrap();
    let e = Reader::open(input(ls.replace("\"eventCount\":3", "\"eventCount\":5"))).unwrap_err();
    assert!(
        matches!(
            e,
            ArchiveError::Count {
                header: 5,
                found: 3
            }
        ),
        "{e}"
    );
    let lines = ndjson_lines(&events);
    for (declared, found) in [(5, 3), (2, 3), (0, 3)] {
        let mut l = lines.clone();
        l[0] = l[0].replace("\"eventCount\":3", &format!("\"eventCount\":{declared}"));
        let e = read_err(l.join("\n"));
        assert!(
            matches!(e, ArchiveError::Count { header, found: f } if header == declared && f == found),
            "{declared}: {e}"
        );
        // No event past the declared count comes out: an importer stops before it.
        let ok = Reader::open(input(l.join("\n")))
            .unwrap()
            .take_while(Result::is_ok)
            .count() as u64;
        assert_eq!(ok, declared.min(3), "declared {declared}");
    }
}

#[test]
fn chain_gaps_duplicates_and_a_late_start_are_refused() {
    let chain = |seqs: &[(i64, i64)]| -> Vec<StoredEvent> {
        seqs.iter()
            .map(|&(s, p)| {
                let mut e = event(s, None);
                e.event.parent_seq_num = p;
                e
            })
            .collect()
    };
    // (seqNum, parentSeqNum) of each event, the seqNum refused, the reason.
    type Case = (&'static [(i64, i64)], i64, &'static str);
    let cases: &[Case] = &[
        (
            &[(1, 0), (2, 1), (4, 3)],
            4,
            "parentSeqNum is 3 but the event before it is seqNum 2",
        ),
        (
            &[(1, 0), (2, 1), (2, 1)],
            2,
            "parentSeqNum is 1 but the event before it is seqNum 2",
        ),
        (&[(6, 5), (7, 6)], 6, "the first event has parentSeqNum 5"),
        (&[(1, 0), (3, 1)], 3, "seqNum must be parentSeqNum + 1 = 2"),
    ];
    for &(seqs, at, msg) in cases {
        let events = chain(seqs);
        // Written by hand: the Writer refuses these too (below).
        let mut lines = vec![ndjson_lines(&[])[0].replace(
            "\"eventCount\":0",
            &format!("\"eventCount\":{}", events.len()),
        )];
        let mut ls = format!(
            r#"{{"version":1,"storeId":"s","exportedAt":"x","eventCount":{},"events":["#,
            events.len()
        );
        for (i, e) in events.iter().enumerate() {
            let mut line = Vec::new();
            super::write::push_event(&mut line, &e.event, false);
            let line = String::from_utf8(line).unwrap() + "}";
            ls.push_str(if i > 0 { "," } else { "" });
            ls.push_str(&line);
            lines.push(format!("{},\"createdAt\":0}}", &line[..line.len() - 1]));
        }
        ls.push_str("]}");
        for text in [ls, lines.join("\n")] {
            let e = read_err(text.clone());
            assert!(
                matches!(&e, ArchiveError::Chain { at_seq, msg: m } if *at_seq == at && m.contains(msg)),
                "{text}\n{e}"
            );
        }
        let mut w = Writer::new(Vec::new(), Format::Ndjson, &header(events.len())).unwrap();
        let refused = events.iter().map(|e| w.write(e)).find_map(Result::err);
        assert!(
            matches!(refused, Some(ArchiveError::Chain { at_seq, .. }) if at_seq == at),
            "writer: {refused:?}"
        );
    }
}

#[test]
fn a_store_mismatch_is_refused_by_validate() {
    let events = tricky_events();
    for format in [Format::LiveStore, Format::Ndjson] {
        let bytes = write(format, &header(events.len()), &events);
        let e = validate(input(bytes.clone()), Some("other")).unwrap_err();
        assert!(
            matches!(&e, ArchiveError::StoreMismatch { file, expected } if file == "store-é \"1\"" && expected == "other"),
            "{e}"
        );
        let h = validate(input(bytes.clone()), Some("store-é \"1\"")).unwrap();
        assert_eq!(h.event_count, events.len() as u64);
        assert!(validate(input(bytes), None).is_ok());
    }
}

#[test]
fn validate_reads_to_the_end() {
    // A flaw in the last event is found.
    let events: Vec<_> = (1..=50).map(|i| event(i, None)).collect();
    let mut lines = ndjson_lines(&events);
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("\"seqNum\":50", "\"seqNum\":51");
    let e = validate(input(lines.join("\n")), None).unwrap_err();
    assert!(matches!(e, ArchiveError::Chain { at_seq: 51, .. }), "{e}");
}

#[test]
fn ndjson_with_crlf_line_endings_reads() {
    let events = tricky_events();
    let lines = ndjson_lines(&events);
    let crlf = lines.join("\r\n") + "\r\n\r\n";
    let (r, back) = read_all(crlf).unwrap();
    assert_eq!(r.header, header(events.len()));
    assert_eq!(back, events);
}

#[test]
fn a_file_that_is_not_utf8_is_refused() {
    let e = read_err(b"{\n\"version\":1,\xff\n}".to_vec());
    assert!(
        matches!(&e, ArchiveError::Syntax { line_or_event, .. } if line_or_event == "line 2"),
        "{e}"
    );
}

#[test]
fn the_writer_holds_to_its_header_count() {
    let events: Vec<_> = (1..=3).map(|i| event(i, None)).collect();
    for format in [Format::LiveStore, Format::Ndjson] {
        let mut w = Writer::new(Vec::new(), format, &header(2)).unwrap();
        w.write(&events[0]).unwrap();
        w.write(&events[1]).unwrap();
        let e = w.write(&events[2]).unwrap_err();
        assert!(
            matches!(
                e,
                ArchiveError::Count {
                    header: 2,
                    found: 3
                }
            ),
            "{e}"
        );

        let mut w = Writer::new(Vec::new(), format, &header(3)).unwrap();
        w.write(&events[0]).unwrap();
        let e = w.finish().unwrap_err();
        assert!(
            matches!(
                e,
                ArchiveError::Count {
                    header: 3,
                    found: 1
                }
            ),
            "{e}"
        );
    }
}

#[test]
fn write_errors_are_io_errors() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let e = Writer::new(Full, Format::Ndjson, &header(0)).err().unwrap();
    assert_eq!(e.to_string(), "export file I/O error: disk full");
}

#[test]
fn messages_are_one_line() {
    let all = [
        ArchiveError::Io(std::io::Error::other("x")),
        ArchiveError::Syntax {
            line_or_event: "line 3".into(),
            msg: "expected value".into(),
        },
        ArchiveError::Unsupported { what: "x".into() },
        ArchiveError::Count {
            header: 2,
            found: 1,
        },
        ArchiveError::Chain {
            at_seq: 3,
            msg: "m".into(),
        },
        ArchiveError::StoreMismatch {
            file: "a".into(),
            expected: "b".into(),
        },
    ];
    for e in all {
        let text = e.to_string();
        assert!(!text.contains('\n') && !text.is_empty(), "{text}");
    }
    assert_eq!(
        ArchiveError::Count {
            header: 2,
            found: 1
        }
        .to_string(),
        "event count mismatch: the header says 2 events, there are 1"
    );
}

#[test]
fn compacting_keeps_strings_and_order() {
    assert_eq!(compact_json("{ \"a\" : [ 1 , 2 ] }"), "{\"a\":[1,2]}");
    assert_eq!(
        compact_json(r#"{"k": "a \" b \\", "z" :"\\"}"#),
        r#"{"k":"a \" b \\","z":"\\"}"#
    );
    assert!(matches!(
        compact_json("[1,2]"),
        std::borrow::Cow::Borrowed(_)
    ));
}
