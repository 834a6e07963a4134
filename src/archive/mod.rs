//! Export files: a store's whole log in a file, and back (`docs/formats.md`).
//!
//! Two formats, both written by [`Writer`] and read by [`Reader`], which tells them apart by their
//! content:
//!
//! - [`Format::LiveStore`]: the one JSON document `livestore sync export` (`@livestore/cli` 0.4)
//!   writes and `livestore sync import` reads. Ours is written streaming; theirs is pretty-printed.
//!   Reading one holds the whole text in memory (it is one JSON document whose header may follow
//!   the events), never a `serde_json::Value` of it.
//! - [`Format::Ndjson`]: ours. A header line, then one event a line with its `createdAt`; written and
//!   read line by line in bounded memory, and it keeps everything the server stores.
//!
//! `args` stay text, as everywhere in this server (`model::Event`): the writer copies them byte for
//! byte, so keys keep their order and numbers their spelling.
//!
//! No I/O of its own beyond the `Read`/`Write` it is handed; uses only `model` and `timefmt`.

mod read;
mod write;

#[cfg(test)]
mod tests;

pub use read::{validate, Reader};
pub use write::Writer;

use std::borrow::Cow;

use crate::model::{check_chain, ChainError, Event};

/// The `format` of our NDJSON header line.
pub const NDJSON_FORMAT: &str = "livestore-sync-ndjson";
/// The one version of either format this program writes and reads.
pub const VERSION: u64 = 1;

/// Which file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `@livestore/cli`'s `sync export` document: `{"version":1,…,"events":[…]}`.
    LiveStore,
    /// Ours: a header line and one event a line, with `createdAt`.
    Ndjson,
}

/// What a file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub store_id: String,
    /// When the export was made: ISO-8601 UTC with milliseconds, `2026-12-02T07:50:00.000Z`
    /// (what `new Date().toISOString()` gives; written and read as given, not checked).
    pub exported_at: String,
    /// How many events follow.
    pub event_count: u64,
    /// The store's backend id at export time. Only our NDJSON carries it (written as `null` when
    /// `None`); [`Format::LiveStore`] has no such field, so it is not written and reads as `None`.
    pub backend_id: Option<String>,
}

/// Why a file could not be written or read. `Display` is one line for an operator.
#[derive(Debug)]
pub enum ArchiveError {
    /// Reading or writing failed (file missing, disk full, pipe closed). Fix the cause and run
    /// again; a file whose writing failed is incomplete and must not be imported.
    Io(std::io::Error),
    /// The input is not a well-formed export at `line_or_event` (not JSON, a field missing or of
    /// the wrong type, cut short). Export the store again, or repair the file at that place.
    Syntax { line_or_event: String, msg: String },
    /// A format name or version this program does not know (`what` says which). Use the program
    /// (version) that wrote the file, or export again in a format this one reads.
    Unsupported { what: String },
    /// The header's `eventCount` differs from the events there are. Reading: the file was cut short
    /// or edited, export again. Writing: the caller wrote another number of events than it
    /// declared in the header (the store changed during the export?): export again.
    Count { header: u64, found: u64 },
    /// The events are not the log `1..n` starting from parent 0 with each event the parent of the
    /// next (a gap, a duplicate, events out of order or not from the start). `at_seq` is the
    /// `seqNum` of the first event that breaks it. The file was edited or cut from the middle of a
    /// log: export the whole store again.
    Chain { at_seq: i64, msg: String },
    /// The file is an export of store `file`, not of `expected`. Import it into its own store, or
    /// (when moving a log to another store on purpose) say so explicitly to the importer.
    StoreMismatch { file: String, expected: String },
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveError::Io(e) => write!(f, "export file I/O error: {e}"),
            ArchiveError::Syntax { line_or_event, msg } => {
                write!(f, "invalid export file at {line_or_event}: {msg}")
            }
            ArchiveError::Unsupported { what } => write!(f, "unsupported export file: {what}"),
            ArchiveError::Count { header, found } => write!(
                f,
                "event count mismatch: the header says {header} events, there are {found}"
            ),
            ArchiveError::Chain { at_seq, msg } => {
                write!(f, "broken event chain at seqNum {at_seq}: {msg}")
            }
            ArchiveError::StoreMismatch { file, expected } => write!(
                f,
                "the file is an export of store {file:?}, not of store {expected:?}"
            ),
        }
    }
}

impl std::error::Error for ArchiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArchiveError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ArchiveError {
    fn from(e: std::io::Error) -> Self {
        ArchiveError::Io(e)
    }
}

/// Checks that `e` continues a log whose last event is `prev` (0 before the first event):
/// `model::check_chain`'s rule, one event at a time, worded for a file.
fn check_next(prev: i64, first: bool, e: &Event) -> Result<(), ArchiveError> {
    check_chain(prev, std::slice::from_ref(e)).map_err(|err| {
        let msg = match err {
            ChainError::WrongParent { parent, .. } if first => format!(
                "the first event has parentSeqNum {parent}; an export starts at the beginning \
                 of the log (parentSeqNum 0)"
            ),
            ChainError::WrongParent { head, parent } => format!(
                "its parentSeqNum is {parent} but the event before it is seqNum {head} \
                 (a gap, a duplicate, or events out of order)"
            ),
            ChainError::Broken { parent_seq_num, .. } => format!(
                "seqNum must be parentSeqNum + 1 = {}",
                parent_seq_num.wrapping_add(1)
            ),
        };
        ArchiveError::Chain {
            at_seq: e.seq_num,
            msg,
        }
    })
}

/// `raw` (valid JSON) without the whitespace outside strings: what `JSON.stringify` gives for the
/// value, key order and number spelling untouched.
pub fn compact_json(raw: &str) -> Cow<'_, str> {
    if !raw
        .bytes()
        .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    Cow::Owned(out)
}
