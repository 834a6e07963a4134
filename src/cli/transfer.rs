//! `export`, `import` and `copy`: a store's log to a file, from a file, and
//! from one event log to another.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::progress::Progress;
use super::stores::summary;
use super::Failed;
use crate::archive::{self, Format, Header, Reader, Writer};
use crate::model::StoredEvent;
use crate::storage::{ImportError, Storage, StorageError};

/// Rows per storage read while streaming a log.
const READ_ROWS: usize = 2_000;

/// A store's events `1..=head` read in pages, as an iterator (what an export
/// and a copy stream from). `head` is fixed when it starts: appends made
/// meanwhile are not included.
pub(super) struct LogReader<'a> {
    storage: &'a dyn Storage,
    store_id: &'a str,
    after: i64,
    head: i64,
    page: std::vec::IntoIter<StoredEvent>,
    failed: bool,
}

impl<'a> LogReader<'a> {
    pub(super) fn new(storage: &'a dyn Storage, store_id: &'a str, head: i64) -> Self {
        LogReader {
            storage,
            store_id,
            after: 0,
            head,
            page: Vec::new().into_iter(),
            failed: false,
        }
    }
}

impl Iterator for LogReader<'_> {
    type Item = Result<StoredEvent, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.page.next() {
            self.after = e.event.seq_num;
            return Some(Ok(e));
        }
        if self.after >= self.head {
            return None;
        }
        match self
            .storage
            .read(self.store_id, self.after, self.head, READ_ROWS)
        {
            Ok(rows) if rows.is_empty() => None,
            Ok(rows) => {
                self.page = rows.into_iter();
                self.next()
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// `export ID [FILE]`: the store's events up to its head now. A file is
/// written beside its final name and renamed when complete, so a failed
/// export never leaves a partial file under the name asked for.
pub(super) fn export(
    storage: &dyn Storage,
    id: &str,
    file: Option<&Path>,
    format: Format,
) -> Result<(), Failed> {
    let s = summary(storage, id)?;
    let header = Header {
        store_id: id.to_string(),
        exported_at: crate::timefmt::iso8601_now(),
        event_count: s.head.max(0) as u64,
        backend_id: Some(s.backend_id.clone()),
    };
    let progress = Progress::new(header.event_count, "exporting");
    let write_all = |out: Box<dyn Write>| -> Result<Box<dyn Write>, Failed> {
        let mut writer = Writer::new(out, format, &header)?;
        for e in LogReader::new(storage, id, s.head) {
            writer.write(&e?)?;
            progress.inc(1);
        }
        writer.finish().map_err(|e| {
            Failed(format!(
                "{e} (the store's log does not hold 1..{}: `livestore-sync check {id}` says more)",
                s.head
            ))
        })
    };
    match file.filter(|f| f.as_os_str() != "-") {
        None => {
            let out = write_all(Box::new(BufWriter::new(std::io::stdout().lock())))?;
            flush(out)?;
        }
        Some(path) => {
            let partial = partial_name(path);
            let result = File::create(&partial)
                .map_err(|e| Failed(format!("cannot create {}: {e}", partial.display())))
                .and_then(|f| write_all(Box::new(BufWriter::new(f))))
                .and_then(flush);
            if let Err(e) = result {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
            std::fs::rename(&partial, path).map_err(|e| {
                Failed(format!(
                    "cannot rename {} to {}: {e}",
                    partial.display(),
                    path.display()
                ))
            })?;
        }
    }
    progress.finish();
    eprintln!("exported {} events of store {id:?}", header.event_count);
    Ok(())
}

fn flush(mut out: Box<dyn Write>) -> Result<(), Failed> {
    out.flush()
        .map_err(|e| Failed(format!("writing the export: {e}")))
}

fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

pub(super) struct ImportOptions {
    pub replace: bool,
    pub force: bool,
    pub keep_backend_id: bool,
}

/// `import ID [FILE]`: the whole file is validated first (syntax, count,
/// chain, store id), then written in one transaction. Standard input is
/// read into memory once to be read twice.
pub(super) fn import(
    storage: &dyn Storage,
    id: &str,
    file: Option<&Path>,
    options: ImportOptions,
) -> Result<(), Failed> {
    let source: Source = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => Source::File(path.to_path_buf()),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Failed(format!("reading standard input: {e}")))?;
            Source::Memory(buf)
        }
    };
    let expected = (!options.force).then_some(id);
    let header = archive::validate(source.open()?, expected)
        .map_err(|e| Failed(format!("{}: {e}; nothing was imported", source.name())))?;
    if let Some(existing) = storage.store_summary(id)? {
        if existing.events > 0 && !options.replace {
            return Err(Failed(format!(
                "store {id:?} already has {} events (head {}); nothing was imported. \
                 Use --replace to overwrite it, or import into another store id",
                existing.events, existing.head
            )));
        }
    }
    let backend_id = if options.keep_backend_id {
        Some(header.backend_id.clone().ok_or_else(|| {
            Failed(format!(
                "{} records no backendId (only this server's NDJSON exports do); drop --keep-backend-id",
                source.name()
            ))
        })?)
    } else {
        None
    };
    let progress = Progress::new(header.event_count, "importing");
    let mut reader = Reader::open(source.open()?)?;
    let mut events = (&mut reader).map(|r| {
        progress.inc(1);
        r.map_err(|e| e.to_string())
    });
    let written = storage
        .import(id, backend_id.as_deref(), options.replace, &mut events)
        .map_err(|e| import_failed(id, e))?;
    progress.finish();
    eprintln!(
        "imported {written} events into store {id:?} from {}",
        source.name()
    );
    Ok(())
}

fn import_failed(id: &str, e: ImportError) -> Failed {
    let why = match e {
        ImportError::NotEmpty { head } => {
            format!("store {id:?} is not empty (head {head}); use --replace to overwrite it")
        }
        ImportError::Chain(m) => format!("the events do not chain: {m}"),
        ImportError::Source(m) => m,
        ImportError::Storage(e) => e.to_string(),
    };
    Failed(format!("{why}; nothing was imported"))
}

enum Source {
    File(PathBuf),
    Memory(Vec<u8>),
}

impl Source {
    fn open(&self) -> Result<Box<dyn BufRead>, Failed> {
        Ok(match self {
            Source::File(p) => {
                Box::new(BufReader::new(File::open(p).map_err(|e| {
                    Failed(format!("cannot open {}: {e}", p.display()))
                })?))
            }
            Source::Memory(b) => Box::new(std::io::Cursor::new(b.clone())),
        })
    }

    fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Memory(_) => "standard input".into(),
        }
    }
}

/// What `copy` did with one store.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Copied {
    Whole(u64),
    /// The target held the start of this log (an earlier copy); it now
    /// holds all of it: (events before, events now).
    Caught {
        from: i64,
        to: u64,
    },
    /// The target already holds exactly these events and backendId.
    Identical,
}

/// `copy --from --to [--store ID…]`: per store all or nothing (one import
/// transaction); a store the target already holds identically is skipped
/// and one it holds the start of (an earlier copy) is brought up to date,
/// so a rerun copies only what is missing or new. The backendId moves with
/// the store, so clients do not notice the move.
pub(super) fn copy(
    source: &dyn Storage,
    target: &dyn Storage,
    only: &[String],
    replace: bool,
) -> Result<ExitCode, Failed> {
    let ids: Vec<String> = if only.is_empty() {
        source
            .list_stores()?
            .into_iter()
            .map(|s| s.store_id)
            .collect()
    } else {
        only.to_vec()
    };
    let mut failed = 0;
    for id in &ids {
        match copy_store(source, target, id, replace) {
            Ok(Copied::Whole(n)) => println!("copied     {id:?}: {n} events"),
            Ok(Copied::Caught { from, to }) => {
                println!("updated    {id:?}: {from} -> {to} events")
            }
            Ok(Copied::Identical) => println!("identical  {id:?}: skipped"),
            Err(Failed(e)) => {
                failed += 1;
                println!("FAILED     {id:?}: {e}");
            }
        }
    }
    println!(
        "{} stores: {} copied or identical, {failed} failed",
        ids.len(),
        ids.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) fn copy_store(
    source: &dyn Storage,
    target: &dyn Storage,
    id: &str,
    replace: bool,
) -> Result<Copied, Failed> {
    let s = summary(source, id)?;
    let mut behind = None;
    if let Some(t) = target.store_summary(id)? {
        let same_start = t.backend_id == s.backend_id
            && t.head <= s.head
            && t.events == t.head
            && same_log(source, target, id, t.head)?;
        if same_start && t.head == s.head {
            return Ok(Copied::Identical);
        }
        if same_start {
            // An earlier copy of this store, which has grown since.
            behind = Some(t.head);
        } else if t.events > 0 && !replace {
            return Err(Failed(format!(
                "the target holds other events (head {}, backendId {}); nothing copied. \
                 Use --replace to overwrite it",
                t.head, t.backend_id
            )));
        }
    }
    let progress = Progress::new(s.head.max(0) as u64, id);
    let mut events = LogReader::new(source, id, s.head).map(|r| {
        progress.inc(1);
        r.map_err(|e| e.to_string())
    });
    // Rewritten whole, in one transaction, with the source's backendId.
    let n = target
        .import(
            id,
            Some(&s.backend_id),
            replace || behind.is_some(),
            &mut events,
        )
        .map_err(|e| import_failed(id, e))?;
    progress.finish();
    Ok(match behind {
        Some(from) => Copied::Caught { from, to: n },
        None => Copied::Whole(n),
    })
}

/// Both logs hold the same events `1..=head` (created_at included).
fn same_log(a: &dyn Storage, b: &dyn Storage, id: &str, head: i64) -> Result<bool, Failed> {
    let mut left = LogReader::new(a, id, head);
    let mut right = LogReader::new(b, id, head);
    loop {
        match (left.next().transpose()?, right.next().transpose()?) {
            (None, None) => return Ok(true),
            (Some(x), Some(y)) if x == y => continue,
            _ => return Ok(false),
        }
    }
}
