//! A minimal `log` backend: one line per record on stderr. Level from
//! `LOG_LEVEL` (see `config`).
//!
//! Two line formats ([`Format`]): on a terminal or in a file, a timestamp
//! and the level (`2025-01-01T00:00:00.000Z INFO  listening on …`); under
//! systemd, when stderr is the journal's stream, a priority prefix and no
//! timestamp of our own (`<6>listening on …`): journald stamps each line
//! itself and reads `<N>` as its priority (sd-daemon(3), `SD_INFO` …).

use std::io::Write as _;

use crate::timefmt;

/// How a log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<timestamp> <LEVEL> <message>`.
    Plain,
    /// `<N><message>`, `N` the syslog priority journald reads; every line
    /// of a multi-line message carries it (journald splits at newlines).
    Journal,
}

impl Format {
    /// `Journal` when `journal_stream` (the `JOURNAL_STREAM` variable,
    /// `device:inode`) names the file stderr is (`stderr`: its device and
    /// inode). systemd sets the variable for a service whose stderr goes to
    /// the journal; a process started from it with stderr elsewhere
    /// inherits the variable, hence the comparison (systemd.exec(5)).
    pub fn detect(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> Format {
        let named = journal_stream.and_then(|v| {
            let (dev, ino) = v.trim().split_once(':')?;
            Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?))
        });
        match (named, stderr) {
            (Some(n), Some(s)) if n == s => Format::Journal,
            _ => Format::Plain,
        }
    }

    /// This process's format: `JOURNAL_STREAM` compared with stderr.
    pub fn of_this_process() -> Format {
        let journal_stream = std::env::var("JOURNAL_STREAM").ok();
        if journal_stream.is_none() {
            return Format::Plain;
        }
        Format::detect(journal_stream.as_deref(), stderr_id())
    }
}

/// Device and inode of stderr (a duplicate of it, to read its metadata
/// without owning fd 2).
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let m = std::fs::File::from(fd).metadata().ok()?;
    Some((m.dev(), m.ino()))
}

/// journald's priority for a level: `SD_ERR` 3, `SD_WARNING` 4, `SD_INFO`
/// 6, `SD_DEBUG` 7 (debug and trace alike).
pub fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// One record as written, ending in a newline. `timestamp` is used by
/// [`Format::Plain`] only.
pub fn format_line(
    format: Format,
    level: log::Level,
    message: &str,
    timestamp: impl FnOnce() -> String,
) -> String {
    match format {
        Format::Plain => format!("{} {:<5} {message}\n", timestamp(), level),
        Format::Journal => {
            let mut out = String::with_capacity(message.len() + 8);
            let p = priority(level);
            for line in message.split('\n') {
                out.push('<');
                out.push(char::from(b'0' + p));
                out.push('>');
                out.push_str(line);
                out.push('\n');
            }
            out
        }
    }
}

struct StderrLogger {
    level: log::LevelFilter,
    format: Format,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
            // Dependencies (postgres, tungstenite) log chatty internals at debug/trace.
            && (metadata.level() <= log::Level::Info || metadata.target().starts_with("livestore_sync"))
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let line = format_line(self.format, record.level(), &message, timefmt::iso8601_now);
        // One write per record so lines from different threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger once (its format from [`Format::of_this_process`]);
/// later calls change nothing.
pub fn init(level: log::LevelFilter) {
    let format = Format::of_this_process();
    if log::set_boxed_logger(Box::new(StderrLogger { level, format })).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    fn stamp() -> String {
        "2025-01-02T03:04:05.678Z".to_string()
    }

    #[test]
    fn plain_lines_have_a_timestamp_and_the_level() {
        assert_eq!(
            format_line(Format::Plain, Level::Info, "listening on 1.2.3.4:5", stamp),
            "2025-01-02T03:04:05.678Z INFO  listening on 1.2.3.4:5\n"
        );
        assert_eq!(
            format_line(Format::Plain, Level::Error, "x", stamp),
            "2025-01-02T03:04:05.678Z ERROR x\n"
        );
    }

    #[test]
    fn journal_lines_have_the_priority_and_no_timestamp() {
        let cases = [
            (Level::Error, "<3>"),
            (Level::Warn, "<4>"),
            (Level::Info, "<6>"),
            (Level::Debug, "<7>"),
            (Level::Trace, "<7>"),
        ];
        for (level, prefix) in cases {
            let line = format_line(Format::Journal, level, "a b", || {
                panic!("no timestamp is made in journal mode")
            });
            assert_eq!(line, format!("{prefix}a b\n"));
        }
        // journald splits at newlines: each part keeps the priority.
        assert_eq!(
            format_line(Format::Journal, Level::Warn, "one\ntwo", stamp),
            "<4>one\n<4>two\n"
        );
    }

    #[test]
    fn the_journal_format_needs_the_stream_to_be_stderr() {
        let err = Some((64769, 123456));
        assert_eq!(Format::detect(Some("64769:123456"), err), Format::Journal);
        // Inherited by a process whose stderr is something else.
        assert_eq!(Format::detect(Some("64769:999"), err), Format::Plain);
        assert_eq!(Format::detect(None, err), Format::Plain);
        assert_eq!(Format::detect(Some("garbage"), err), Format::Plain);
        assert_eq!(Format::detect(Some("64769:123456"), None), Format::Plain);
    }
}
