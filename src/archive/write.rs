//! Writing an export, one event at a time (never the whole file in memory).

use std::io::Write;

use super::{check_next, compact_json, ArchiveError, Format, Header, NDJSON_FORMAT};
use crate::model::{Event, StoredEvent};
use crate::timefmt::to_micros;

/// Writes one export file. `new` writes the header, `write` each event, `finish` the end.
///
/// Each event is built in a buffer and handed to `out` in one `write_all`, so an unbuffered
/// `out` costs a system call per event; wrap a file in a `BufWriter` for many small events.
/// A `Writer` dropped without `finish` leaves a file every reader refuses (cut short).
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    declared: u64,
    written: u64,
    /// seqNum of the last event written (0 before the first).
    prev_seq: i64,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Starts a file; `header.event_count` must be the number of events that will follow
    /// (LiveStore's format puts it first). `header.backend_id` is written in NDJSON only.
    pub fn new(mut out: W, format: Format, header: &Header) -> Result<Self, ArchiveError> {
        let mut buf = Vec::with_capacity(256);
        match format {
            Format::LiveStore => {
                // The field order of LiveStore's ExportFileSchema.
                buf.extend_from_slice(b"{\"version\":1,\"storeId\":");
                push_str(&mut buf, &header.store_id);
                buf.extend_from_slice(b",\"exportedAt\":");
                push_str(&mut buf, &header.exported_at);
                write_num(&mut buf, ",\"eventCount\":", header.event_count);
                buf.extend_from_slice(b",\"events\":[");
            }
            Format::Ndjson => {
                buf.extend_from_slice(b"{\"format\":");
                push_str(&mut buf, NDJSON_FORMAT);
                buf.extend_from_slice(b",\"version\":1,\"storeId\":");
                push_str(&mut buf, &header.store_id);
                buf.extend_from_slice(b",\"exportedAt\":");
                push_str(&mut buf, &header.exported_at);
                write_num(&mut buf, ",\"eventCount\":", header.event_count);
                buf.extend_from_slice(b",\"backendId\":");
                match &header.backend_id {
                    Some(id) => push_str(&mut buf, id),
                    None => buf.extend_from_slice(b"null"),
                }
                buf.extend_from_slice(b"}\n");
            }
        }
        out.write_all(&buf)?;
        Ok(Writer {
            out,
            format,
            declared: header.event_count,
            written: 0,
            prev_seq: 0,
            buf,
        })
    }

    /// Writes the next event. Refuses one more event than the header declared, and an event that
    /// does not continue the log (`seqNum` 1, 2, … from parent 0): a reader would refuse the file.
    pub fn write(&mut self, event: &StoredEvent) -> Result<(), ArchiveError> {
        if self.written == self.declared {
            return Err(ArchiveError::Count {
                header: self.declared,
                found: self.written + 1,
            });
        }
        check_next(self.prev_seq, self.written == 0, &event.event)?;
        let buf = &mut self.buf;
        buf.clear();
        match self.format {
            Format::LiveStore => {
                // One event a line inside the array.
                buf.extend_from_slice(if self.written == 0 { b"\n" } else { b",\n" });
                push_event(buf, &event.event, false);
                buf.push(b'}');
            }
            Format::Ndjson => {
                push_event(buf, &event.event, true);
                write_num(buf, ",\"createdAt\":", to_micros(event.created_at));
                buf.extend_from_slice(b"}\n");
            }
        }
        self.out.write_all(buf)?;
        self.written += 1;
        self.prev_seq = event.event.seq_num;
        Ok(())
    }

    /// Ends the file, flushes and returns the output; errors if the count written differs from
    /// the header's (the file is then incomplete and must not be used).
    pub fn finish(mut self) -> Result<W, ArchiveError> {
        if self.written != self.declared {
            return Err(ArchiveError::Count {
                header: self.declared,
                found: self.written,
            });
        }
        if self.format == Format::LiveStore {
            self.out.write_all(b"\n]}\n")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The event's fields in LiveStore's order (`Global.Encoded`), without the closing brace.
/// `args` is copied byte for byte; absent `args` stay absent. `one_line`: a line break inside the
/// args (possible only as whitespace between tokens) is taken out with the rest of that
/// whitespace, so the event stays one NDJSON line; the value is unchanged.
pub(super) fn push_event(buf: &mut Vec<u8>, e: &Event, one_line: bool) {
    buf.extend_from_slice(b"{\"name\":");
    push_str(buf, &e.name);
    if let Some(args) = &e.args {
        buf.extend_from_slice(b",\"args\":");
        if one_line && args.contains(['\n', '\r']) {
            buf.extend_from_slice(compact_json(args).as_bytes());
        } else {
            buf.extend_from_slice(args.as_bytes());
        }
    }
    write_num(buf, ",\"seqNum\":", e.seq_num);
    write_num(buf, ",\"parentSeqNum\":", e.parent_seq_num);
    buf.extend_from_slice(b",\"clientId\":");
    push_str(buf, &e.client_id);
    buf.extend_from_slice(b",\"sessionId\":");
    push_str(buf, &e.session_id);
}

fn push_str(buf: &mut Vec<u8>, s: &str) {
    // Writing a `&str` to a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

fn write_num(buf: &mut Vec<u8>, key: &str, n: impl std::fmt::Display) {
    buf.extend_from_slice(key.as_bytes());
    let _ = write!(buf, "{n}");
}
