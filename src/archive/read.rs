//! Reading an export of either format, told apart by its first line.

use std::io::BufRead;
use std::ops::Range;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{check_next, compact_json, ArchiveError, Format, Header, NDJSON_FORMAT, VERSION};
use crate::model::{Event, StoredEvent};
use crate::timefmt;

/// Reads either format, detected from the content (not the file name): when the first line that
/// is not blank is a JSON object with a `format` key, our NDJSON; otherwise a LiveStore document.
///
/// The header is read by [`Reader::open`]; the events come from the iterator, each checked as it
/// comes: its JSON, that it continues the log (`seqNum` 1, 2, … from parent 0), and at the end
/// that there were as many as the header says. The first error is the last item.
///
/// Memory: NDJSON is read a line at a time (the largest event bounds it). A LiveStore document is
/// read whole into memory first, as one text (its header fields may come after its events, and
/// their CLI writes it as one JSON value); only the events' positions are kept beside it, each
/// event is parsed when the iterator reaches it.
pub struct Reader {
    pub format: Format,
    pub header: Header,
    source: Source,
    /// The `createdAt` of events from a file without one: when `open` ran.
    read_at: SystemTime,
    /// seqNum of the last event read (0 before the first).
    prev_seq: i64,
    found: u64,
    done: bool,
}

enum Source {
    Document {
        text: String,
        events: std::vec::IntoIter<Range<usize>>,
    },
    Ndjson {
        input: Box<dyn BufRead>,
        line_no: u64,
        buf: Vec<u8>,
    },
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("format", &self.format)
            .field("header", &self.header)
            .field("found", &self.found)
            .finish_non_exhaustive()
    }
}

/// Just enough of a first line to tell the formats apart.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    format: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NdjsonHeader {
    store_id: String,
    exported_at: String,
    event_count: u64,
    #[serde(default)]
    backend_id: Option<String>,
}

/// LiveStore's `ExportFileSchema`, the events left as raw text. Header fields are optional here
/// so that the version is judged before anything else.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    version: Option<serde_json::Value>,
    store_id: Option<String>,
    exported_at: Option<String>,
    event_count: Option<u64>,
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
}

/// One event of either format (`Global.Encoded`, plus our `createdAt` in microseconds).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventIn<'a> {
    name: String,
    /// Absent stays `None`; `null` is `Some("null")` (as in `model::Event`).
    #[serde(borrow, default, deserialize_with = "raw_some")]
    args: Option<&'a RawValue>,
    seq_num: i64,
    parent_seq_num: i64,
    client_id: String,
    session_id: String,
    #[serde(default)]
    created_at: Option<i64>,
}

fn raw_some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn syntax(line_or_event: impl Into<String>, msg: impl Into<String>) -> ArchiveError {
    ArchiveError::Syntax {
        line_or_event: line_or_event.into(),
        msg: msg.into(),
    }
}

/// serde_json's message without its " at line L column C" (the caller says where).
fn message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&tail).unwrap_or(&text).to_string()
}

impl Reader {
    /// Reads the header: the first line of NDJSON, or the whole of a LiveStore document (which is
    /// then checked as JSON, and its `eventCount` against its events).
    pub fn open(mut input: Box<dyn BufRead>) -> Result<Reader, ArchiveError> {
        let read_at = timefmt::now_ms();
        // Everything read so far: a document needs it all, from its first byte.
        let mut text = Vec::new();
        let mut line_no = 0u64;
        let first = loop {
            let start = text.len();
            if input.read_until(b'\n', &mut text)? == 0 {
                return Err(syntax(
                    "the start",
                    "the input is empty (expected a LiveStore export document or an NDJSON export)",
                ));
            }
            line_no += 1;
            if line_no == 1 && text.starts_with(b"\xEF\xBB\xBF") {
                text.drain(..3); // a UTF-8 byte order mark
            }
            if !text[start..].trim_ascii().is_empty() {
                break start;
            }
        };
        let first_line = text[first..].trim_ascii();
        let is_ndjson = serde_json::from_slice::<Probe>(first_line)
            .map(|p| p.format.is_some())
            .unwrap_or(false);
        if is_ndjson {
            let header = ndjson_header(first_line, line_no)?;
            return Ok(Reader {
                format: Format::Ndjson,
                header,
                source: Source::Ndjson {
                    input,
                    line_no,
                    buf: Vec::new(),
                },
                read_at,
                prev_seq: 0,
                found: 0,
                done: false,
            });
        }
        input.read_to_end(&mut text)?;
        let text = String::from_utf8(text).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            syntax(format!("line {line}"), "the file is not UTF-8 text")
        })?;
        let (header, events) = document_header(&text)?;
        Ok(Reader {
            format: Format::LiveStore,
            header,
            source: Source::Document {
                text,
                events: events.into_iter(),
            },
            read_at,
            prev_seq: 0,
            found: 0,
            done: false,
        })
    }

    /// The next event, unchecked against the chain and the count; `None` at the end of the input.
    fn next_event(&mut self) -> Result<Option<StoredEvent>, ArchiveError> {
        match &mut self.source {
            Source::Document { text, events } => {
                let Some(range) = events.next() else {
                    return Ok(None);
                };
                let index = self.found + 1;
                let where_ = || {
                    let line = text[..range.start].bytes().filter(|&b| b == b'\n').count() + 1;
                    format!("event {index} (line {line})")
                };
                let e: EventIn = serde_json::from_str(&text[range.clone()])
                    .map_err(|err| syntax(where_(), message(&err)))?;
                Ok(Some(StoredEvent {
                    event: to_event(e, true),
                    created_at: self.read_at,
                }))
            }
            Source::Ndjson {
                input,
                line_no,
                buf,
            } => loop {
                buf.clear();
                if input.read_until(b'\n', buf)? == 0 {
                    return Ok(None);
                }
                *line_no += 1;
                let line = buf.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                if self.found == self.header.event_count {
                    // One more than declared: count the rest for the message.
                    let mut found = self.found + 1;
                    loop {
                        buf.clear();
                        if input.read_until(b'\n', buf)? == 0 {
                            break;
                        }
                        found += u64::from(!buf.trim_ascii().is_empty());
                    }
                    return Err(ArchiveError::Count {
                        header: self.header.event_count,
                        found,
                    });
                }
                let where_ = format!("line {line_no} (event {})", self.found + 1);
                let e: EventIn =
                    serde_json::from_slice(line).map_err(|err| syntax(&where_, message(&err)))?;
                let Some(created_at) = e.created_at else {
                    return Err(syntax(where_, "missing field `createdAt`"));
                };
                return Ok(Some(StoredEvent {
                    event: to_event(e, false),
                    created_at: crate::timefmt::from_micros(created_at),
                }));
            },
        }
    }
}

impl Iterator for Reader {
    type Item = Result<StoredEvent, ArchiveError>;

    /// The next event, checked (see [`Reader`]); after an error, `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.next_event() {
            Ok(Some(e)) => check_next(self.prev_seq, self.found == 0, &e.event).map(|()| {
                self.prev_seq = e.event.seq_num;
                self.found += 1;
                Some(e)
            }),
            Ok(None) if self.found != self.header.event_count => Err(ArchiveError::Count {
                header: self.header.event_count,
                found: self.found,
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match item {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads the whole input once and checks it: it parses, the events are the log `1..n` from
/// parent 0 with no gap, their number is the header's, and (when given) the store id is
/// `expected_store_id`. Returns the header.
pub fn validate(
    input: Box<dyn BufRead>,
    expected_store_id: Option<&str>,
) -> Result<Header, ArchiveError> {
    let reader = Reader::open(input)?;
    if let Some(expected) = expected_store_id {
        if reader.header.store_id != expected {
            return Err(ArchiveError::StoreMismatch {
                file: reader.header.store_id,
                expected: expected.to_string(),
            });
        }
    }
    let header = reader.header.clone();
    for event in reader {
        event?;
    }
    Ok(header)
}

/// `compact`: a LiveStore document's args lose the whitespace between tokens (their export
/// pretty-prints them); NDJSON args are kept as written.
fn to_event(e: EventIn, compact: bool) -> Event {
    let args = e.args.map(|raw| {
        if compact {
            compact_json(raw.get()).into()
        } else {
            raw.get().into()
        }
    });
    Event {
        name: e.name,
        args,
        seq_num: e.seq_num,
        parent_seq_num: e.parent_seq_num,
        client_id: e.client_id,
        session_id: e.session_id,
    }
}

fn ndjson_header(line: &[u8], line_no: u64) -> Result<Header, ArchiveError> {
    let at = format!("line {line_no} (the header)");
    // The header line is small: a Value lets the format and version be judged before the rest.
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| syntax(&at, message(&e)))?;
    let format = &value["format"];
    if format != NDJSON_FORMAT {
        return Err(ArchiveError::Unsupported {
            what: format!(
                "format {format} (this program reads {NDJSON_FORMAT:?} and LiveStore's export)"
            ),
        });
    }
    if value["version"] != VERSION {
        return Err(ArchiveError::Unsupported {
            what: format!(
                "{NDJSON_FORMAT} version {} (this program reads version {VERSION})",
                value["version"]
            ),
        });
    }
    let h: NdjsonHeader = serde_json::from_value(value).map_err(|e| syntax(&at, message(&e)))?;
    Ok(Header {
        store_id: h.store_id,
        exported_at: h.exported_at,
        event_count: h.event_count,
        backend_id: h.backend_id,
    })
}

/// The header of a LiveStore document and where each of its events is in `text`.
fn document_header(text: &str) -> Result<(Header, Vec<Range<usize>>), ArchiveError> {
    let doc: Document = serde_json::from_str(text).map_err(|e| {
        syntax(
            format!("line {}, column {}", e.line(), e.column()),
            format!("not a LiveStore export document: {}", message(&e)),
        )
    })?;
    let missing = |field: &str| syntax("the document", format!("missing field `{field}`"));
    match &doc.version {
        None => return Err(missing("version")),
        Some(v) if *v == VERSION => {}
        Some(v) => {
            return Err(ArchiveError::Unsupported {
                what: format!(
                    "LiveStore export version {v} (this program reads version {VERSION})"
                ),
            })
        }
    }
    let store_id = doc.store_id.ok_or_else(|| missing("storeId"))?;
    let exported_at = doc.exported_at.ok_or_else(|| missing("exportedAt"))?;
    let event_count = doc.event_count.ok_or_else(|| missing("eventCount"))?;
    let events = doc.events.ok_or_else(|| missing("events"))?;
    if events.len() as u64 != event_count {
        return Err(ArchiveError::Count {
            header: event_count,
            found: events.len() as u64,
        });
    }
    // A borrowed RawValue is a slice of `text`: its offset is where the event is.
    let base = text.as_ptr() as usize;
    let ranges = events
        .iter()
        .map(|raw| {
            let start = raw.get().as_ptr() as usize - base;
            start..start + raw.get().len()
        })
        .collect();
    Ok((
        Header {
            store_id,
            exported_at,
            event_count,
            backend_id: None,
        },
        ranges,
    ))
}
